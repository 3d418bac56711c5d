package schedule

import "math"

// The flow-matching schedule (sde "flow"): x_t = (1-t)·x0 + t·ε for t in
// [0, 1], the conditional optimal-transport path of Lipman et al. 2023
// ("Flow Matching for Generative Modeling", eq. 20 with σ_min = 0) and the
// straight interpolation of rectified flow (Liu et al. 2023, "Flow Straight
// and Fast", eq. 1), as diffusers' FlowMatchEulerDiscreteScheduler writes it
// (its "sigma" is t). In this package's terms a Point has T = t,
// Alpha = 1-t, Sigma = t and Level = t/(1-t): the same x_t as any other
// schedule, so the converter (prediction_type "flow_prediction", the
// velocity v = ε - x0) and every sampler written over Points apply
// unchanged. t = 1 is pure noise (Level = +Inf): the flow samplers, which
// step in t on x_t itself, start there as diffusers does; the samplers that
// step in the level (Euler-type, DPM-Solver, rk45, likelihood) start at
// FlowStartTime, where the level is finite.

// FlowStartTime is where samplers other than the flow-matching ones start
// on a flow schedule: t = 0.999, level 999 (x_t/α = x0 + 999·ε), as close
// to pure noise as the level parameterisation allows without overflow; the
// data term left in x_t there has weight 1e-3.
const FlowStartTime = 0.999

// flowPoint is the point of flow time t.
func flowPoint(t float64) Point {
	if t <= 0 {
		return Point{T: 0, Alpha: 1}
	}
	return Point{T: t, Alpha: 1 - t, Sigma: t, Level: t / (1 - t)}
}

// FlowShift is the shift of the flow schedule's grids (config "shift",
// default 1: none).
func (c *Config) FlowShift() float64 {
	if c.Shift == 0 {
		return 1
	}
	return c.Shift
}

// WithShift returns a copy of s whose flow shift is shift (shift <= 0 or
// a schedule that is not a flow: s itself).
func (s *Schedule) WithShift(shift float64) *Schedule {
	if shift <= 0 || s.Kind != Flow {
		return s
	}
	c := *s
	c.Config.Shift = shift
	return &c
}

// ShiftTime is the timestep shift of Esser et al. 2024 ("Scaling Rectified
// Flow Transformers for High-Resolution Image Synthesis", eq. 23 with
// shift = sqrt(m/n)): t' = shift·t/(1 + (shift-1)·t), which moves a uniform
// grid towards the noise end for shift > 1. It is diffusers'
// FlowMatchEulerDiscreteScheduler shift (use_dynamic_shifting off).
func ShiftTime(shift, t float64) float64 { return shift * t / (1 + (shift-1)*t) }

// FlowGrid is the grid of diffusers' FlowMatchEulerDiscreteScheduler and
// FlowMatchHeunDiscreteScheduler (set_timesteps without custom sigmas):
// the training sigmas are (N..1)/N shifted, so σ_max = 1 and
// σ_min = shift(1/N) (float32); the grid is steps values linspace(σ_max·N,
// σ_min·N)/N, shifted again (as diffusers does: σ_min is shifted twice),
// rounded to float32, then 0. It starts at pure noise (t = 1, InitSigma 1).
// With use_karras_sigmas / use_exponential_sigmas (or that override) the
// shifted sigmas are re-spaced between their ends, as diffusers'
// _convert_to_karras / _convert_to_exponential do.
func (s *Schedule) FlowGrid(steps int, sigmas string) (Grid, error) {
	if steps < 1 {
		return Grid{}, errSteps
	}
	sp, err := s.sigmaSpacing(sigmas)
	if err != nil {
		return Grid{}, err
	}
	n := float64(s.Config.NumTrainTimesteps)
	sh := s.Config.FlowShift()
	// __init__: sigmas = shift·(t/N)/(1+(shift-1)·(t/N)) in float32.
	shift32 := func(v float64) float64 {
		v = f32(v)
		return f32(f32(f32(sh)*v) / f32(1+f32(f32(sh-1)*v)))
	}
	smax, smin := shift32(n/n), shift32(f32(1/n))
	ts := linspace(smax*n, smin*n, steps) // float64, as np.linspace
	lv := make([]float64, steps)
	for i, t := range ts {
		u := t / n
		lv[i] = f32(sh * u / (1 + (sh-1)*u))
	}
	switch sp {
	case SigmasKarras:
		lv = karrasLevels(lv[steps-1], lv[0], steps, s.rhoOr(7))
	case SigmasExponential:
		lv = exponentialLevels(lv[steps-1], lv[0], steps)
	}
	pts := make([]Point, steps)
	for i, t := range lv {
		pts[i] = flowPoint(f32(t))
	}
	return Grid{Steps: chain(pts, s.CleanPoint()), InitSigma: 1}, nil
}

// flowPoints are the evaluation points of the samplers that step in the
// noise level on a flow schedule: t uniform from 1 to the end time ε,
// shifted (ShiftTime), and capped at FlowStartTime; or Karras/exponential
// in the level between the levels of FlowStartTime and ε.
func (s *Schedule) flowPoints(steps int, spacing string) []Point {
	pts := make([]Point, steps)
	switch spacing {
	case SigmasKarras, SigmasExponential:
		lo, hi := s.LevelAt(s.EndTime()), s.LevelAt(s.StartTime())
		var lv []float64
		if spacing == SigmasKarras {
			lv = karrasLevels(lo, hi, steps, s.rhoOr(7))
		} else {
			lv = exponentialLevels(lo, hi, steps)
		}
		for i, l := range lv {
			pts[i] = s.PointAtLevel(l, s.TimeAt(l))
		}
		return pts
	}
	sh := s.Config.FlowShift()
	for i, u := range linspace(1, s.EndTime(), steps) {
		pts[i] = flowPoint(math.Min(ShiftTime(sh, u), s.StartTime()))
	}
	return pts
}
