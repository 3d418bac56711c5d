package sampler

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	register(Info{
		Name:         "rk45",
		Display:      "RK45",
		Summary:      "adaptive Dormand–Prince RK45 on the probability-flow ODE (rtol/atol), Song et al. 2021",
		Order:        0,
		DefaultSteps: 0,
		Params: append([]Param{
			pRTol, pATol,
		}, pCFG...),
		Func:      RK45,
		Resumable: true,
	})
}

// Dormand & Prince 1980, "A family of embedded Runge-Kutta formulae", table 2
// (RK5(4)7M): nodes c, coefficients a, 5th-order weights b (FSAL: the 7th
// stage is the derivative at the new point) and e = b - b̂, the difference to
// the embedded 4th-order weights.
var (
	dpC = [7]float64{0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1}
	dpA = [7][6]float64{
		{},
		{1.0 / 5},
		{3.0 / 40, 9.0 / 40},
		{44.0 / 45, -56.0 / 15, 32.0 / 9},
		{19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
		{9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
		{35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
	}
	dpE = [7]float64{71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40}
)

// DormandPrince returns the Dormand–Prince 5(4) tableau dopri45 uses:
// nodes c, stage coefficients a (row s: stage s's weights of the earlier
// slopes; row 6 is the 5th-order solution) and error weights e = b - b̂.
func DormandPrince() (c [7]float64, a [7][6]float64, e [7]float64) { return dpC, dpA, dpE }

// The step-size controller of dopri45 (Hairer, Nørsett & Wanner I, II.4,
// eq. 4.13; scipy's RK45): after an attempt with error norm err the step
// is multiplied by RK45Safety·err^RK45Exponent, within [RK45MinFactor,
// RK45MaxFactor] (at most 1 right after a rejection; RK45MaxFactor when
// err is 0). RK45MaxNFE bounds the rk45 sampler's evaluations.
const (
	RK45Safety    = 0.9
	RK45Exponent  = -1.0 / 5
	RK45MinFactor = 0.2
	RK45MaxFactor = 10
	RK45MaxNFE    = 100000
)

// The starting step size of dopri45 (Hairer, Nørsett & Wanner I, II.4,
// "Starting step size"), as dopriStart and the GPU rk45 sampler compute it
// from the scaled norms d0 = ‖y‖, d1 = ‖f(y)‖ and d2 = ‖f(y + h0·f(y)) −
// f(y)‖/h0: h0 = RK45StartFrac·d0/d1, or RK45StartMinH when d0 or d1 is
// below RK45StartTiny; h1 = (RK45StartFrac/max(d1, d2))^(−RK45Exponent),
// or max(RK45StartMinH, RK45StartShrink·h0) when both are below
// RK45StartZero; the first step is min(RK45StartGrow·h0, h1).
const (
	RK45StartFrac   = 0.01
	RK45StartMinH   = 1e-6
	RK45StartTiny   = 1e-5
	RK45StartZero   = 1e-15
	RK45StartShrink = 1e-3
	RK45StartGrow   = 100
)

// RK45Tolerances resolves the rk45 sampler's rtol and atol (default 1e-5).
func RK45Tolerances(rtol, atol float64) (float64, float64, error) {
	if rtol == 0 {
		rtol = 1e-5
	}
	if atol == 0 {
		atol = 1e-5
	}
	if rtol < 0 || atol < 0 {
		return 0, 0, fmt.Errorf("sampler: rtol and atol must be positive, got %v and %v", rtol, atol)
	}
	return rtol, atol, nil
}

// RK45Span is where the rk45 sampler integrates dx/du = x - D(x; e^u):
// from u0 = log(σ/α) at the start time to u1 at the end time, starting
// from x = scale·noise (scale² is the prior's variance of x_T/α).
func RK45Span(s *schedule.Schedule) (u0, u1, scale float64) {
	lmax, lmin := s.MaxLevel(), s.MinLevel()
	return math.Log(lmax), math.Log(lmin), math.Sqrt(s.PriorVar(lmax))
}

// odeFunc writes dy/du at (u, y) into dy.
type odeFunc func(u float64, y, dy []float64) error

type dopriOptions struct {
	rtol, atol float64
	maxNFE     int
	// norm reduces the scaled error vector to one number (the step is
	// accepted when it is at most 1).
	norm func(w []float64) float64
	// accept is called after every accepted step with the new point, the
	// derivative there and the step size to try next.
	accept func(u float64, y, dy []float64, h float64) error
	// resume, when set, starts at an accepted step of an earlier run (u0
	// and y0 are its point), skipping the initial step selection.
	resume *dopriResume
}

// dopriResume is the rest of dopri45's state at an accepted step: the
// derivative there (FSAL), the step size to try next and the evaluations
// made so far.
type dopriResume struct {
	dy  []float64
	h   float64
	nfe int
}

// dopri45 integrates dy/du = f from u0 to u1 (either direction) with the
// Dormand–Prince 5(4) pair and the step-size control of Hairer, Nørsett &
// Wanner, "Solving Ordinary Differential Equations I", section II.4 (as in
// scipy's RK45, which the score_sde code calls): error scale
// atol + rtol·max(|y|, |y_new|), step factor 0.9·err^(-1/5) within [0.2, 10]
// (no growth right after a rejection), and the initial step of section II.4
// ("Starting step size"). It returns y(u1), the derivative there and the
// number of f evaluations.
func dopri45(f odeFunc, u0, u1 float64, y0 []float64, o dopriOptions) ([]float64, []float64, int, error) {
	n := len(y0)
	y := append([]float64(nil), y0...)
	dir := 1.0
	if u1 < u0 {
		dir = -1
	}
	span := math.Abs(u1 - u0)
	nfe := 0
	eval := func(u float64, y, dy []float64) error {
		if o.maxNFE > 0 && nfe >= o.maxNFE {
			return fmt.Errorf("sampler: RK45 needed more than %d evaluations (loosen rtol/atol)", o.maxNFE)
		}
		nfe++
		return f(u, y, dy)
	}
	var k [7][]float64
	for i := range k {
		k[i] = make([]float64, n)
	}
	w := make([]float64, n)
	yn := make([]float64, n)
	tmp := make([]float64, n)
	var h float64
	if c := o.resume; c != nil {
		copy(k[0], c.dy)
		h, nfe = c.h, c.nfe
	} else {
		if err := eval(u0, y, k[0]); err != nil {
			return nil, nil, nfe, err
		}
		if span == 0 {
			return y, k[0], nfe, nil
		}
		var err error
		if h, err = dopriStart(eval, u0, dir, span, y, k, w, tmp, o); err != nil {
			return nil, nil, nfe, err
		}
	}

	u := u0
	rejected := false
	for dir*(u1-u) > 0 {
		minStep := 10 * math.Abs(math.Nextafter(u, u+dir)-u)
		if h < minStep {
			return nil, nil, nfe, errors.New("sampler: RK45 step size underflow")
		}
		un := u + dir*h
		if dir*(un-u1) > 0 {
			un = u1
		}
		hs := un - u // signed
		for s := 1; s < 7; s++ {
			for i := range y {
				acc := 0.0
				for j := 0; j < s; j++ {
					acc += dpA[s][j] * k[j][i]
				}
				tmp[i] = y[i] + hs*acc
			}
			if s == 6 {
				copy(yn, tmp)
			}
			if err := eval(u+dpC[s]*hs, tmp, k[s]); err != nil {
				return nil, nil, nfe, err
			}
		}
		for i := range y {
			e := 0.0
			for j := 0; j < 7; j++ {
				e += dpE[j] * k[j][i]
			}
			w[i] = hs * e / (o.atol + math.Max(math.Abs(y[i]), math.Abs(yn[i]))*o.rtol)
		}
		errNorm := o.norm(w)
		if errNorm <= 1 {
			factor := float64(RK45MaxFactor)
			if errNorm > 0 {
				factor = math.Min(RK45MaxFactor, RK45Safety*math.Pow(errNorm, RK45Exponent))
			}
			if rejected {
				factor = math.Min(1, factor)
			}
			h = math.Abs(hs) * factor
			rejected = false
			u = un
			y, yn = yn, y
			k[0], k[6] = k[6], k[0]
			if o.accept != nil {
				if err := o.accept(u, y, k[0], h); err != nil {
					return nil, nil, nfe, err
				}
			}
		} else {
			h = math.Abs(hs) * math.Max(RK45MinFactor, RK45Safety*math.Pow(errNorm, RK45Exponent))
			rejected = true
		}
	}
	return y, k[0], nfe, nil
}

// dopriStart is the initial step size for dopri45 at (u0, y) with the
// derivative k[0] there (Hairer et al. II.4, "Starting step size"; scipy's
// select_initial_step); its trial evaluation goes into k[1].
func dopriStart(eval odeFunc, u0, dir, span float64, y []float64, k [7][]float64, w, tmp []float64, o dopriOptions) (float64, error) {
	for i := range y {
		w[i] = y[i] / (o.atol + math.Abs(y[i])*o.rtol)
	}
	d0 := o.norm(w)
	for i := range y {
		w[i] = k[0][i] / (o.atol + math.Abs(y[i])*o.rtol)
	}
	d1 := o.norm(w)
	h0 := RK45StartMinH
	if d0 >= RK45StartTiny && d1 >= RK45StartTiny {
		h0 = RK45StartFrac * d0 / d1
	}
	h0 = math.Min(h0, span)
	for i := range y {
		tmp[i] = y[i] + dir*h0*k[0][i]
	}
	if err := eval(u0+dir*h0, tmp, k[1]); err != nil {
		return 0, err
	}
	for i := range y {
		w[i] = (k[1][i] - k[0][i]) / (o.atol + math.Abs(y[i])*o.rtol)
	}
	d2 := o.norm(w) / h0
	var h1 float64
	if d1 <= RK45StartZero && d2 <= RK45StartZero {
		h1 = math.Max(RK45StartMinH, h0*RK45StartShrink)
	} else {
		h1 = math.Pow(RK45StartFrac/math.Max(d1, d2), -RK45Exponent)
	}
	return math.Min(math.Min(RK45StartGrow*h0, h1), span), nil
}

// rmsMax is the error norm of a batch: the largest per-sample RMS over
// groups of `size` consecutive values (scipy takes one RMS over the whole
// batch; per-sample keeps a sample's accuracy from depending on its batch).
func rmsMax(size int) func([]float64) float64 {
	return func(w []float64) float64 {
		m := 0.0
		for b := 0; b+size <= len(w); b += size {
			s := 0.0
			for _, v := range w[b : b+size] {
				s += v * v
			}
			m = math.Max(m, math.Sqrt(s/float64(size)))
		}
		return m
	}
}

// pointAtLog is the point at noise level e^u (u = log σ/α).
func pointAtLog(s *schedule.Schedule, u float64) schedule.Point {
	l := math.Exp(u)
	return s.PointAtLevel(l, s.TimeAt(l))
}

// rk45Accepted, when set (tests), sees each accepted step's point and next
// step size, what a checkpoint needs beyond Step.
var rk45Accepted func(u, h float64)

// RK45 solves the probability-flow ODE (Song et al. 2021, eq. 13) with the
// adaptive Dormand–Prince 5(4) method and rtol/atol error control, as the
// score_sde code does with scipy's RK45, from the largest noise level down to
// that of the end time ε, then denoises once with Tweedie's formula (their
// "noise removal"; here free, since the last derivative gives D). The ODE is
// written in Karras et al.'s form with the log noise level as the variable:
// for x = x_t/α and u = log(σ/α), dx/du = x - D(x; e^u), which is the same
// trajectory as eq. 13 for every schedule and keeps the step sizes well
// scaled. The error norm is the largest per-sample RMS. Network
// evaluations: about 6 per accepted step plus 2.
func RK45(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 1)
	if err != nil {
		return nil, err
	}
	rtol, atol, err := RK45Tolerances(r.o.RTol, r.o.ATol)
	if err != nil {
		return nil, err
	}
	s := r.s
	u0, u1, sc := RK45Span(s)
	xt := scaled(sc, noise)
	r.total = -1
	f := func(u float64, y, dy []float64) error {
		p := pointAtLog(s, u)
		x0, err := r.evalTilde(p, y)
		if err != nil {
			return err
		}
		for i := range y {
			dy[i] = y[i] - x0[i]
		}
		return nil
	}
	x0 := make([]float64, len(xt))
	accept := func(u float64, y, dy []float64, h float64) error {
		if rk45Accepted != nil {
			rk45Accepted(u, h)
		}
		if r.o.Progress == nil {
			r.index++
			return r.ctx.Err()
		}
		for i := range y {
			x0[i] = y[i] - dy[i]
		}
		return r.reportTilde(pointAtLog(s, u), y, x0)
	}
	do := dopriOptions{rtol: rtol, atol: atol, maxNFE: RK45MaxNFE, norm: rmsMax(r.n), accept: accept}
	if c := r.o.Resume; c != nil && (c.Step != 0 || c.H != 0) {
		// An accepted step of an earlier run: X at log level U, its data
		// prediction (the FSAL derivative's complement) and the next step.
		if !(c.H > 0) || len(c.X) != len(noise) || len(c.History) < 1 || len(c.History[0]) != len(noise) {
			return nil, errors.New("sampler: an rk45 checkpoint needs X, its data prediction as History[0] and a step size H > 0")
		}
		a := pointAtLog(s, c.U).Alpha
		dy := make([]float64, len(noise))
		for i, v := range c.X {
			xt[i] = v / a
			dy[i] = xt[i] - c.History[0][i]
		}
		u0 = c.U
		do.resume = &dopriResume{dy: dy, h: c.H, nfe: c.NFE}
		r.nfe, r.index = c.NFE, c.Step
	}
	y, dy, _, err := dopri45(f, u0, u1, xt, do)
	if err != nil {
		return nil, err
	}
	for i := range y {
		y[i] -= dy[i] // D(x; σ_min) = x - dx/du
	}
	return r.result(y), nil
}
