package sampler

import (
	"context"
	"errors"
	"math"
)

func init() {
	register(Info{
		Name:         "consistency",
		Display:      "Consistency (multistep)",
		Summary:      "multistep consistency sampling, Song et al. 2023 (Alg. 1; diffusers' CMStochasticIterativeScheduler)",
		Stochastic:   true,
		DefaultSteps: 1,
		Params:       append([]Param{pSteps(1)}, pCFG...),
		Func:         Consistency,
		Resumable:    true,
		Requires:     RequiresConsistency,
	})
}

var errNotConsistency = errors.New("sampler: the consistency sampler needs a consistency model (prediction_type \"consistency\", a CMStochasticIterativeScheduler config)")

// Consistency is the multistep consistency sampler of Song, Dhariwal, Chen
// & Sutskever 2023 ("Consistency Models", Algorithm 1), step for step as
// diffusers' CMStochasticIterativeScheduler with its pipeline: starting at
// x = σ_max·z, each step maps x at σ_i to x̂0 = c_skip·x + c_out·F(c_in·x,
// σ_i) (PredictionFor; clipped to [-1, 1] when clip_denoised is on), then
// re-noises it to the next σ, x = x̂0 + s_noise·sqrt(σ_{i+1}² - σ_min²)·z.
// The last step goes to σ_min, where that noise term is 0: the result is
// the last x̂0. The σ grid is schedule.ConsistencyGrid. One network
// evaluation per step. As in diffusers, a one-step run draws no noise
// after the start; a multistep run draws fresh noise at every step.
func Consistency(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 1)
	if err != nil {
		return nil, err
	}
	defer r.close()
	c := r.s.Config
	if c.PredictionType != "consistency" {
		return nil, errNotConsistency
	}
	g, err := r.s.ConsistencyGrid(r.o.Steps)
	if err != nil {
		return nil, err
	}
	r.total = len(g.Steps)
	i0, x, err := r.start(g, noise, oneEval)
	if err != nil {
		return nil, err
	}
	clip := c.ClipDenoised != nil && *c.ClipDenoised
	lo := f32(*c.SigmaMin)
	hi := f32(*c.SigmaMax)
	z := r.sp.New()
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		x0, eps, err := r.denoise(st.From, x)
		if err != nil {
			return nil, err
		}
		r.free(eps)
		if clip {
			r.sp.Clamp(x0, x0, -1, 1)
		}
		r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
		if err := r.report(st.From, 1, x, x0); err != nil {
			return nil, err
		}
		// σ̂ = clamp(σ_next, σ_min, σ_max); noise std s_noise·sqrt(σ̂² - σ_min²)
		sh := math.Min(math.Max(st.To.Level, lo), hi)
		sd := c.SNoise * math.Sqrt(math.Max(sh*sh-lo*lo, 0))
		if sd > 0 && len(g.Steps) > 1 {
			r.noise(i, 0, z)
			r.sp.Lincomb(x, T(1, x0), T(sd, z))
		} else {
			r.sp.Lincomb(x, T(1, x0))
		}
		r.free(x0)
	}
	return r.result(x)
}

// f32 rounds to float32, as diffusers keeps the consistency σs.
func f32(v float64) float64 { return float64(float32(v)) }
