package sampler

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// InvertDDIM maps data to noise along the probability-flow ODE by running
// deterministic DDIM (Song, Meng & Ermon 2021, section 4.3 and eq. 13, the
// ODE view that makes the encoding possible) backwards over the same grid as
// DDIM: each step from the cleaner point s to the noisier point t evaluates
// the model at s and moves x_t = α_t·x̂0 + σ_t·ε̂. At the clean end point
// (σ = 0) the model cannot be evaluated, so the first step takes ε̂ from the
// model at t on the clean input (as diffusers' DDIMInverseScheduler does at
// every step), keeping x̂0 = x. The result is unit-scaled noise: DDIM (eta 0,
// same steps and schedule) started from it returns approximately x, with a
// first-order error in the step size. data is a batch like a sampler's
// output; Options.Steps, Sigmas, EndTime, Class and Guidance apply, and
// the schedule's clip_sample (with use_clipped_model_output) as DDIM
// applies it, so that DDIM from the result retraces the same steps.
//
// Options.Resume continues from a checkpoint whose Step counts the
// inversion steps already taken (X is the batch after them, x_t form at
// the noisier point of the last one; the data for Step 0).
func InvertDDIM(ctx context.Context, m *Model, data []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, data, o, 50)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, err := r.s.DDIMGrid(r.o.Steps, r.o.Sigmas)
	if err != nil {
		return nil, err
	}
	if !(g.InitSigma > 0) || math.IsInf(g.InitSigma, 0) {
		return nil, errors.New("sampler: bad initial sigma")
	}
	r.total = len(g.Steps)
	start := data
	done := 0
	if c := r.o.Resume; c != nil {
		if c.Step < 0 || c.Step > len(g.Steps) || len(c.X) != len(data) {
			return nil, fmt.Errorf("sampler: inversion checkpoint at step %d of %d with %d values for %d", c.Step, len(g.Steps), len(c.X), len(data))
		}
		done, start = c.Step, c.X
		r.nfe, r.index = c.NFE, c.Step
	}
	r.checkpoint(start)
	x := r.load(1, start)
	for i := len(g.Steps) - 1 - done; i >= 0; i-- {
		st := g.Steps[i]
		s, t := st.To, st.From
		// The DDIM step (η = 0) from s to t: x_t = α_t·x̂0 + σ_t·ε̂.
		dir, _ := ddimCoeffs(s, t, 0)
		if s.Clean() {
			x0, eps, err := r.denoise(t, x)
			if err != nil {
				return nil, err
			}
			r.free(x0)
			// x̂0 = x itself
			r.boundary(Checkpoint{Step: len(g.Steps) - 1 - i, NFE: r.nfe - 1})
			if err := r.report(t, 1, x, x); err != nil {
				return nil, err
			}
			r.sp.Lincomb(x, T(t.Alpha, x), T(dir, eps))
			r.free(eps)
			continue
		}
		x0, eps, err := r.denoise(s, x)
		if err != nil {
			return nil, err
		}
		// The forward DDIM's clip_sample, mirrored, so that DDIM from
		// the result retraces the same steps.
		if r.s.Config.ClipSampleOn() {
			r.clip(x0)
			if r.s.Config.UseClippedModelOutput {
				r.rederive(s, x, x0, eps)
			}
		}
		r.boundary(Checkpoint{Step: len(g.Steps) - 1 - i, NFE: r.nfe - 1})
		if err := r.report(s, 1, x, x0); err != nil {
			return nil, err
		}
		r.sp.Lincomb(x, T(t.Alpha, x0), T(dir, eps))
		r.free(x0, eps)
	}
	r.sp.Lincomb(x, T(1/g.InitSigma, x))
	return r.result(x)
}

// Slerp interpolates spherically between a and b (Shoemake 1985, "Animating
// rotation with quaternion curves", eq. for slerp):
//
//	slerp(a, b; t) = sin((1-t)θ)/sin θ·a + sin(tθ)/sin θ·b,  cos θ = a·b/(|a||b|),
//
// which keeps interpolated Gaussian noise at the norm the model expects
// (linear interpolation would shrink it). Nearly parallel vectors fall back to
// linear interpolation. a and b must have the same length; apply it per
// sample to interpolate between two seeds' starting noises.
func Slerp(a, b []float64, t float64) []float64 {
	if len(a) != len(b) {
		panic("sampler.Slerp: length mismatch")
	}
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	out := make([]float64, len(a))
	c := ab / math.Sqrt(aa*bb)
	if aa == 0 || bb == 0 || math.Abs(c) > 0.9995 {
		for i := range a {
			out[i] = (1-t)*a[i] + t*b[i]
		}
		return out
	}
	th := math.Acos(c)
	sa, sb := math.Sin((1-t)*th)/math.Sin(th), math.Sin(t*th)/math.Sin(th)
	for i := range a {
		out[i] = sa*a[i] + sb*b[i]
	}
	return out
}
