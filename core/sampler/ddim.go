package sampler

import (
	"context"
	"math"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	register(Info{
		Name:         "ddim",
		Display:      "DDIM",
		Summary:      "DDIM, Song, Meng & Ermon 2021 (eq. 12); eta 0 deterministic, eta 1 DDPM-like",
		Stochastic:   true,
		Order:        1,
		DefaultSteps: 50,
		Params: append([]Param{pSteps(50),
			pEta, pSigmas, pRho}, pCFG...),
		Func:      DDIM,
		Resumable: true,
	})
}

// DDIM is the sampler of Song, Meng & Ermon 2021, "Denoising Diffusion
// Implicit Models", eq. 12, on the grid of diffusers' DDIMScheduler (see
// schedule.DDIMGrid):
//
//	x_s = α_s·x̂0 + sqrt(σ_s² - c²)·ε̂ + c·z,
//	c² = η²·σ_s²·(1 - (α_t σ_s)²/(α_s σ_t)²)
//
// which for variance-preserving schedules is eq. 16's
// c² = η²·(1-ᾱ_s)/(1-ᾱ_t)·(1-ᾱ_t/ᾱ_s). x̂0 is clipped when clip_sample is on;
// ε̂ is then re-derived from it, ε̂ = (x_t - α_t x̂0)/σ_t, only with
// use_clipped_model_output (as in diffusers). η = 0 is the first-order
// deterministic solver of the probability-flow ODE.
func DDIM(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return diffusersLoop(ctx, m, noise, o, 50, (*schedule.Schedule).DDIMGrid, true,
		func(r *runner, st schedule.Step, x, x0, eps Vec) ([]Term, float64) {
			dir, c := ddimCoeffs(st.From, st.To, r.o.Eta)
			return []Term{T(st.To.Alpha, x0), T(dir, eps)}, c
		})
}

// diffusersLoop is the loop of DDIM and DDPM, the samplers that step as
// diffusers' DDIMScheduler and DDPMScheduler do: on grid's steps
// (defSteps by default), one evaluation each, x̂0 clipped when clip_sample
// is on (and ε̂ re-derived from it where rederive and the config's
// use_clipped_model_output say so), then x = Σ terms + c·z with step's
// terms and c (no draw for c = 0).
func diffusersLoop(ctx context.Context, m *Model, noise []float64, o *Options, defSteps int,
	grid func(*schedule.Schedule, int, string) (schedule.Grid, error), rederive bool,
	step func(r *runner, st schedule.Step, x, x0, eps Vec) (terms []Term, c float64)) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, defSteps)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, err := grid(r.s, r.o.Steps, r.o.Sigmas)
	if err != nil {
		return nil, err
	}
	r.total = len(g.Steps)
	i0, x, err := r.start(g, noise, oneEval)
	if err != nil {
		return nil, err
	}
	z := r.sp.New()
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		x0, eps, err := r.denoise(st.From, x)
		if err != nil {
			return nil, err
		}
		r.clip(x0)
		if rederive && r.s.Config.ClipSampleOn() && r.s.Config.UseClippedModelOutput {
			r.rederive(st.From, x, x0, eps)
		}
		r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
		if err := r.report(st.From, 1, x, x0); err != nil {
			return nil, err
		}
		terms, c := step(r, st, x, x0, eps)
		if c > 0 {
			r.noise(i, 0, z)
			terms = append(terms, T(c, z))
		}
		r.sp.Lincomb(x, terms...)
		r.free(x0, eps)
	}
	return r.result(x)
}

// ddimCoeffs are the coefficients of one DDIM step from `from` to `to`
// (Song, Meng & Ermon 2021, eq. 12; see DDIM):
// x_to = α_to·x̂0 + dir·ε̂ + c·z, with c = 0 for η = 0 or a clean `to`.
func ddimCoeffs(from, to schedule.Point, eta float64) (dir, c float64) {
	at, sgt, as, ss := from.Alpha, from.Sigma, to.Alpha, to.Sigma
	if eta != 0 && ss > 0 {
		q := (at * ss) / (as * sgt)
		c = eta * math.Sqrt(math.Max(ss*ss*(1-q*q), 0))
	}
	return math.Sqrt(math.Max(ss*ss-c*c, 0)), c
}
