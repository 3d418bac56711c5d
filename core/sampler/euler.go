package sampler

import (
	"context"
	"math"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	register(Info{
		Name:         "euler",
		Display:      "Euler",
		Summary:      "Euler on the probability-flow ODE, Karras et al. 2022 (Alg. 1 without churn)",
		Order:        1,
		DefaultSteps: 50,
		Params:       append([]Param{pSteps(50), pSigmas, pRho}, pCFG...),
		Func:         Euler,
		Resumable:    true,
	})
	register(Info{
		Name:         "euler_ancestral",
		Display:      "Euler ancestral",
		Summary:      "Euler ancestral: Euler step to σ_down plus fresh noise σ_up (k-diffusion, Karras et al. 2022)",
		Stochastic:   true,
		DefaultSteps: 50,
		Params:       append([]Param{pSteps(50), pEtaAncestral, pSNoise, pSigmas, pRho}, pCFG...),
		Func:         EulerAncestral,
		Resumable:    true,
	})
	register(Info{
		Name:         "heun",
		Display:      "Heun",
		Summary:      "Heun's 2nd-order method on the probability-flow ODE, Karras et al. 2022 (Alg. 1)",
		Order:        2,
		DefaultSteps: 25,
		Params:       append([]Param{pSteps(25), pSigmas, pRho}, pCFG...),
		Func:         Heun,
		Resumable:    true,
	})
}

// eulerStart is the Euler-type starting step and state: 0 and x_T/α =
// InitSigma·noise, or a checkpoint's step and X/α there. The caller defers
// r.close().
func eulerStart(r *runner, noise []float64, evalsBefore func(schedule.Grid, int) int) (schedule.Grid, int, Vec, error) {
	g, err := r.s.EulerGrid(r.o.Steps, r.o.Sigmas)
	if err != nil {
		return g, 0, nil, err
	}
	r.eulerType = true
	i0, x, err := r.start(g, noise, func(i int) int { return evalsBefore(g, i) })
	if err != nil {
		return g, i0, x, err
	}
	if r.o.Resume == nil {
		r.checkpoint(scaled(g.Steps[0].From.Alpha*g.InitSigma, noise))
		return g, i0, x, nil
	}
	r.sp.Load(x, divided(r.o.Resume.X, startPoint(g, i0).Alpha))
	return g, i0, x, nil
}

// ancestralLevels splits an ancestral step from level l to lt into a
// deterministic step to `down` and fresh noise of standard deviation `up`:
// up² = lt²(l²-lt²)/l², down² = lt² - up² (see EulerAncestral).
func ancestralLevels(l, lt float64) (down, up float64) { return ancestralLevelsEta(l, lt, 1) }

// ancestralLevelsEta is ancestralLevels with the noise scaled by η
// (k-diffusion's get_ancestral_step): up = min(lt, η·sqrt(lt²(l²-lt²)/l²));
// η = 0 is the deterministic step to lt.
func ancestralLevelsEta(l, lt, eta float64) (down, up float64) {
	up = math.Min(lt, eta*math.Sqrt(math.Max(lt*lt*(l*l-lt*lt)/(l*l), 0)))
	return math.Sqrt(math.Max(lt*lt-up*up, 0)), up
}

// HeunEvals is the number of network evaluations Heun makes before grid
// step i: two per step (one for a step that ends at σ = 0).
func HeunEvals(g schedule.Grid, i int) int {
	n := 0
	for _, st := range g.Steps[:i] {
		n++
		if !st.To.Clean() {
			n++
		}
	}
	return n
}

// evalTilde evaluates D at Euler-type state xt (= x_t/α) at p.
func (r *runner) evalTilde(p schedule.Point, xt Vec) (Vec, error) {
	x := r.sp.New()
	r.sp.Lincomb(x, T(p.Alpha, xt))
	x0, eps, err := r.denoise(p, x)
	r.free(x, eps)
	return x0, err
}

// Euler is Euler's method on the probability-flow ODE
// dx/dσ = (x - D(x; σ))/σ (Karras et al. 2022, "Elucidating the Design Space
// of Diffusion-Based Generative Models", eq. 3 and Algorithm 1 with
// S_churn = 0), x = x_t/α, on the grid of diffusers' EulerDiscreteScheduler
// (schedule.EulerGrid). First order; one network evaluation per step.
func Euler(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 50)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, i0, xt, err := eulerStart(r, noise, func(_ schedule.Grid, i int) int { return i })
	if err != nil {
		return nil, err
	}
	r.total = len(g.Steps)
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		x0, err := r.evalTilde(st.From, xt)
		if err != nil {
			return nil, err
		}
		r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
		if err := r.report(st.From, st.From.Alpha, xt, x0); err != nil {
			return nil, err
		}
		// x += (x - D)/σ·dσ
		q := (st.To.Level - st.From.Level) / st.From.Level
		r.sp.Lincomb(xt, T(1+q, xt), T(-q, x0))
		r.free(x0)
	}
	return r.result(xt)
}

// EulerAncestral is the ancestral Euler sampler of k-diffusion
// (sample_euler_ancestral; diffusers' EulerAncestralDiscreteScheduler): from
// level σ to σ' it takes an Euler step to σ_down and adds fresh noise of
// standard deviation σ_up, where σ_up² = σ'²(σ²-σ'²)/σ² and
// σ_down² = σ'² - σ_up² (the ancestral split of the DDPM posterior, Ho et al.
// 2020 eq. 7, in Karras et al.'s x/α parameterisation); as k-diffusion's,
// σ_up is scaled by η (Options.Eta, default 1) and the noise by s_noise.
func EulerAncestral(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 50)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, i0, xt, err := eulerStart(r, noise, func(_ schedule.Grid, i int) int { return i })
	if err != nil {
		return nil, err
	}
	r.total = len(g.Steps)
	z := r.sp.New()
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		x0, err := r.evalTilde(st.From, xt)
		if err != nil {
			return nil, err
		}
		r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
		if err := r.report(st.From, st.From.Alpha, xt, x0); err != nil {
			return nil, err
		}
		l := st.From.Level
		down, up := ancestralLevelsEta(l, st.To.Level, etaOf(&r.o))
		q := (down - l) / l
		if up > 0 {
			r.noise(i, 0, z)
			r.sp.Lincomb(xt, T(1+q, xt), T(-q, x0), T(r.sNoise()*up, z))
		} else {
			r.sp.Lincomb(xt, T(1+q, xt), T(-q, x0))
		}
		r.free(x0)
	}
	return r.result(xt)
}

// Heun is Heun's second-order method on the probability-flow ODE (Karras et
// al. 2022, Algorithm 1 with S_churn = 0): an Euler step to the next level,
// then the average of the slopes at both ends; the step to σ = 0 is a plain
// Euler step. 2·steps - 1 network evaluations, as diffusers'
// HeunDiscreteScheduler (whose step() calls are the evaluations here).
func Heun(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 25)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, i0, xt, err := eulerStart(r, noise, HeunEvals)
	if err != nil {
		return nil, err
	}
	r.total = 2*len(g.Steps) - 1
	if !g.Steps[len(g.Steps)-1].To.Clean() {
		r.total++
	}
	d, x2 := r.sp.New(), r.sp.New()
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		x0, err := r.evalTilde(st.From, xt)
		if err != nil {
			return nil, err
		}
		r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
		if err := r.report(st.From, st.From.Alpha, xt, x0); err != nil {
			return nil, err
		}
		l, lt := st.From.Level, st.To.Level
		dl := lt - l
		// d = (x - D)/σ, x2 = x + d·dσ
		r.sp.Lincomb(d, T(1/l, xt), T(-1/l, x0))
		r.free(x0)
		if st.To.Clean() {
			r.sp.Lincomb(xt, T(1, xt), T(dl, d))
			continue
		}
		r.sp.Lincomb(x2, T(1, xt), T(dl, d))
		x0b, err := r.evalTilde(st.To, x2)
		if err != nil {
			return nil, err
		}
		if err := r.report(st.To, st.To.Alpha, x2, x0b); err != nil {
			return nil, err
		}
		// x += (d + d2)/2·dσ, d2 = (x2 - D(x2))/σ'
		h := dl / 2
		r.sp.Lincomb(xt, T(1, xt), T(h, d), T(h/lt, x2), T(-h/lt, x0b))
		r.free(x0b)
	}
	return r.result(xt)
}
