package sampler

import (
	"context"
	"math"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	register(Info{
		Name:         "dpm_2",
		Display:      "DPM-2",
		Summary:      "DPM-Solver-2 in σ (k-diffusion sample_dpm_2; Lu et al. 2022, Karras et al. 2022), midpoint in log σ",
		Order:        2,
		DefaultSteps: 25,
		Params:       append([]Param{pSteps(25), pSigmas, pRho}, pCFG...),
		Func:         DPM2,
		Resumable:    true,
	})
	register(Info{
		Name:         "dpm_2_ancestral",
		Display:      "DPM-2 ancestral",
		Summary:      "DPM-2 to σ_down plus fresh noise σ_up (k-diffusion sample_dpm_2_ancestral)",
		Stochastic:   true,
		DefaultSteps: 25,
		Params:       append([]Param{pSteps(25), pEtaAncestral, pSNoise, pSigmas, pRho}, pCFG...),
		Func:         DPM2Ancestral,
		Resumable:    true,
	})
}

// kStart is the start of the k-diffusion-style samplers (these files):
// Euler-type state x = x_t/α on EulerGrid, from which every formula of
// k-diffusion's sampling.py applies as written with σ the noise level;
// the first grid step to take (a checkpoint's, when resuming: see
// eulerStart). The caller defers r.close().
func kStart(ctx context.Context, m *Model, noise []float64, o *Options, defSteps int, evalsBefore func(schedule.Grid, int) int) (*runner, schedule.Grid, int, Vec, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, defSteps)
	if err != nil {
		return nil, schedule.Grid{}, 0, nil, err
	}
	g, i0, xt, err := eulerStart(r, noise, evalsBefore)
	if err != nil {
		r.close()
		return nil, g, 0, nil, err
	}
	return r, g, i0, xt, nil
}

// oneEvalGrid is the evaluation count before grid step i of a sampler
// that evaluates once per step.
func oneEvalGrid(_ schedule.Grid, i int) int { return i }

// pointAt is the schedule's point at noise level l (a sub-step's level).
func (r *runner) pointAt(l float64) schedule.Point { return r.s.PointAtLevel(l, r.s.TimeAt(l)) }

// evalReport evaluates D at Euler-type state xt at p and reports it.
func (r *runner) evalReport(p schedule.Point, xt Vec) (Vec, error) {
	x0, err := r.evalTilde(p, xt)
	if err != nil {
		return nil, err
	}
	if err := r.report(p, p.Alpha, xt, x0); err != nil {
		r.free(x0)
		return nil, err
	}
	return x0, nil
}

// twoStage is one step of the two-stage samplers of k-diffusion's family
// (dpm_2, dpmpp_2s_ancestral, dpmpp_sde): from x at σ with D = D(x; σ),
//
//	x2 = a1·x + b1·D + up1·z₀,  then D2 = D(x2; σ_mid),
//	x' = a2·x [+ c2·x2] + b2·D2 + up2·z_draw2
//
// (the c2·x2 term only where withX2; a zero up leaves its draw out). The
// samplers differ only in these coefficients: their midpoint rule.
type twoStage struct {
	mid          float64 // σ_mid, the second evaluation's level
	a1, b1, up1  float64
	a2, b2, up2  float64
	c2           float64
	withX2       bool
	draw2        int  // Space.Noise's draw index of z in x'
	eulerToClean bool // no second stage: x' = D (Euler's step to σ = 0)
}

// midpointRule gives grid step st's twoStage with the ancestral η.
type midpointRule func(st schedule.Step, eta float64) twoStage

// kTwoStage runs a two-stage sampler on the k-diffusion grid: per step
// two evaluations (one for the step to σ = 0), the update of rule.
func kTwoStage(ctx context.Context, m *Model, noise []float64, o *Options, eta float64, rule midpointRule) (*Result, error) {
	r, g, i0, xt, err := kStart(ctx, m, noise, o, 25, HeunEvals)
	if err != nil {
		return nil, err
	}
	defer r.close()
	r.total = HeunEvals(g, len(g.Steps))
	x2, z := r.sp.New(), r.sp.New()
	defer r.free(x2, z)
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		r.boundary(Checkpoint{Step: i, NFE: r.nfe})
		x0, err := r.evalReport(st.From, xt)
		if err != nil {
			return nil, err
		}
		s := rule(st, eta)
		if s.eulerToClean {
			r.sp.Lincomb(xt, T(1, x0))
			r.free(x0)
			continue
		}
		terms := []Term{T(s.a1, xt), T(s.b1, x0)}
		if s.up1 > 0 {
			r.noise(i, 0, z)
			terms = append(terms, T(r.sNoise()*s.up1, z))
		}
		r.sp.Lincomb(x2, terms...)
		r.free(x0)
		x0b, err := r.evalReport(r.pointAt(s.mid), x2)
		if err != nil {
			return nil, err
		}
		terms = []Term{T(s.a2, xt)}
		if s.withX2 {
			terms = append(terms, T(s.c2, x2))
		}
		terms = append(terms, T(s.b2, x0b))
		if s.up2 > 0 {
			r.noise(i, s.draw2, z)
			terms = append(terms, T(r.sNoise()*s.up2, z))
		}
		r.sp.Lincomb(xt, terms...)
		r.free(x0b)
	}
	return r.result(xt)
}

// DPM2 is k-diffusion's sample_dpm_2: a second-order Runge–Kutta step on
// the probability-flow ODE dx/dσ = (x - D(x; σ))/σ whose second slope is
// taken at the geometric midpoint σ_mid = sqrt(σ·σ') (DPM-Solver-2 of Lu et
// al. 2022, "DPM-Solver", Algorithm 1 with r = 1/2, written in σ as in
// Karras et al. 2022's k-diffusion); the step to σ = 0 is an Euler step.
func DPM2(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return dpm2(ctx, m, noise, o, 0)
}

// DPM2Ancestral is k-diffusion's sample_dpm_2_ancestral: DPM2's step to
// σ_down, then fresh noise of standard deviation σ_up (the ancestral
// split of EulerAncestral, scaled by η, default 1).
func DPM2Ancestral(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return dpm2(ctx, m, noise, o, etaOf(o))
}

func dpm2(ctx context.Context, m *Model, noise []float64, o *Options, eta float64) (*Result, error) {
	return kTwoStage(ctx, m, noise, o, eta, ancestralRule(dpm2Step))
}

// ancestralRule is the midpoint rule of a deterministic two-stage step
// from σ to σ_down followed by fresh noise σ_up (the ancestral split of
// EulerAncestral): step gives the deterministic part; σ_down = 0 is
// Euler's step to D.
func ancestralRule(step func(l, down float64) twoStage) midpointRule {
	return func(st schedule.Step, eta float64) twoStage {
		down, up := ancestralLevelsEta(st.From.Level, st.To.Level, eta)
		if down == 0 {
			return twoStage{eulerToClean: true}
		}
		s := step(st.From.Level, down)
		s.up2 = up
		return s
	}
}

// dpm2Step: the midpoint σ_mid = exp((log σ + log σ_down)/2), reached by
// an Euler step x2 = x + d·(σ_mid - σ), d = (x - D)/σ; then x' = x +
// d2·(σ_down - σ) with d2 = (x2 - D2)/σ_mid.
func dpm2Step(l, down float64) twoStage {
	mid := math.Exp((math.Log(l) + math.Log(down)) / 2)
	q := (mid - l) / l
	c := (down - l) / mid
	return twoStage{mid: mid, a1: 1 + q, b1: -q, a2: 1, withX2: true, c2: c, b2: -c}
}
