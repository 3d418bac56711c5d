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
		l := st.From.Level
		down, up := ancestralLevelsEta(l, st.To.Level, eta)
		if down == 0 {
			// Euler to 0: x = D
			r.sp.Lincomb(xt, T(1, x0))
			r.free(x0)
			continue
		}
		mid := math.Exp((math.Log(l) + math.Log(down)) / 2)
		q := (mid - l) / l
		r.sp.Lincomb(x2, T(1+q, xt), T(-q, x0)) // x + d·(σ_mid - σ)
		r.free(x0)
		x0b, err := r.evalReport(r.pointAt(mid), x2)
		if err != nil {
			return nil, err
		}
		// x += d2·(σ_down - σ), d2 = (x2 - D(x2))/σ_mid
		c := (down - l) / mid
		terms := []Term{T(1, xt), T(c, x2), T(-c, x0b)}
		if up > 0 {
			r.noise(i, 0, z)
			terms = append(terms, T(r.sNoise()*up, z))
		}
		r.sp.Lincomb(xt, terms...)
		r.free(x0b)
	}
	return r.result(xt)
}
