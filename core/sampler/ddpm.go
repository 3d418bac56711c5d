package sampler

import (
	"context"
	"math"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	register(Info{
		Name:         "ddpm",
		Display:      "DDPM",
		Summary:      "DDPM ancestral sampling, Ho, Jain & Abbeel 2020 (Alg. 2, posterior eq. 6-7)",
		Stochastic:   true,
		DefaultSteps: 1000,
		Params:       append([]Param{pSteps(1000), pSigmas, pRho}, pCFG...),
		Func:         DDPM,
		Resumable:    true,
	})
}

// DDPM is ancestral sampling from the reverse process of Ho, Jain & Abbeel
// 2020, "Denoising Diffusion Probabilistic Models" (Algorithm 2), on the grid
// of diffusers' DDPMScheduler (schedule.DDPMGrid, so fewer steps than
// training timesteps skip timesteps as diffusers does). From t to s it draws
// from the posterior q(x_s | x_t, x̂0) (eq. 6-7), written for any α, σ with
// α_ts = α_t/α_s, σ_ts² = σ_t² - α_ts²σ_s²:
//
//	mean = (α_ts σ_s²/σ_t²)·x_t + (α_s σ_ts²/σ_t²)·x̂0
//	var  = σ_ts² σ_s²/σ_t²  (variance_type fixed_small, β̃_t)  or  σ_ts²  (fixed_large, β_t)
//
// clamped below at 1e-20, with noise added only while the timestep is above 0
// (as diffusers). x̂0 is clipped when clip_sample is on.
func DDPM(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return diffusersLoop(ctx, m, noise, o, 1000, (*schedule.Schedule).DDPMGrid, false,
		func(r *runner, st schedule.Step, x, x0, _ Vec) ([]Term, float64) {
			cx, c0, std, addNoise := ddpmCoeffs(r.s, st.From, st.To)
			if !addNoise {
				std = 0
			}
			return []Term{T(cx, x), T(c0, x0)}, std
		})
}

// ddpmCoeffs are the coefficients of one DDPM step of schedule s from `from`
// to `to` (the posterior of Ho et al. 2020, eq. 6-7; see DDPM):
// x_to = cx·x + c0·x̂0 + std·z, the noise term only when addNoise.
func ddpmCoeffs(s *schedule.Schedule, from, to schedule.Point) (cx, c0, std float64, addNoise bool) {
	large := s.Config.Variance() == "fixed_large" || s.Config.Variance() == "fixed_large_log"
	at, sgt, as, ss := from.Alpha, from.Sigma, to.Alpha, to.Sigma
	ats := at / as
	sts2 := sgt*sgt - ats*ats*ss*ss
	cx = ats * ss * ss / (sgt * sgt)
	c0 = as * sts2 / (sgt * sgt)
	v := sts2 * ss * ss / (sgt * sgt)
	if large {
		v = sts2
	}
	addNoise = from.T > 0 && !(s.Kind != schedule.Discrete && to.Clean())
	return cx, c0, math.Sqrt(math.Max(v, 1e-20)), addNoise
}
