package sampler

import (
	"context"
	"math"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	register(Info{
		Name:         "em",
		Display:      "Euler–Maruyama",
		Summary:      "Euler–Maruyama on the reverse-time SDE (VP or VE), Song et al. 2021",
		Stochastic:   true,
		Order:        0,
		DefaultSteps: 1000,
		Params: append([]Param{pSteps(1000),
			pSigmas, pRho}, pCFG...),
		Func:      EulerMaruyama,
		Resumable: true,
	})
	register(Info{
		Name:         "pc",
		Display:      "predictor–corrector",
		Summary:      "predictor–corrector: Euler–Maruyama + Langevin corrector, Song et al. 2021 (Alg. 2-3)",
		Stochastic:   true,
		DefaultSteps: 1000,
		Params: append([]Param{pSteps(1000),
			pSNR, pCorrectorSteps,
			pSigmas, pRho}, pCFG...),
		Func:      PredictorCorrector,
		Resumable: true,
	})
}

// emCoeffs are the coefficients of one Euler–Maruyama step of the
// reverse-time SDE dx = [f(t)x - g(t)² ∇log p_t(x)]dt + g(t)dw̄ (Song et al.
// 2021, eq. 6) from st.From to st.To, with the score ∇log p_t = -ε̂/σ and the
// step's integrals of the coefficients taken exactly from the end points:
//
//	VP (f = -β/2, g² = β):  B = ∫β dt = 2 log(α_s/α_t),
//	                        x ← x + (x/2 + ∇log p)·B + sqrt(B)·z
//	VE (f = 0, g² = dσ²/dt): V = σ_t² - σ_s²,
//	                        x ← x + V·∇log p + sqrt(V)·z
//
// in the form x ← x + cx·x + ce·ε̂ + cz·z. (A step to the clean point is not
// an SDE step: see emStep.)
func emCoeffs(s *schedule.Schedule, st schedule.Step) (cx, ce, cz float64) {
	sg := st.From.Sigma
	if s.Kind == schedule.VE {
		v := sg*sg - st.To.Sigma*st.To.Sigma
		return 0, -v / sg, math.Sqrt(math.Max(v, 0))
	}
	b := 2 * math.Log(st.To.Alpha/st.From.Alpha)
	return 0.5 * b, -b / sg, math.Sqrt(math.Max(b, 0))
}

// langevinCoeff is the predictor–corrector's Langevin step-size numerator
// c = 2·a·r²·D (see PredictorCorrector): the step at grid step st is
// ε_L = c/‖∇log p‖², with a = 1 for VE and α_t²/α_s² (at most 1) for VP.
func langevinCoeff(s *schedule.Schedule, st schedule.Step, snr float64, n int) float64 {
	a := 1.0
	if s.Kind != schedule.VE && !st.To.Clean() {
		p := st.From
		a = math.Min((p.Alpha*p.Alpha)/(st.To.Alpha*st.To.Alpha), 1)
	}
	return 2 * a * snr * snr * float64(n)
}

// emStep moves x (x_t form) from st.From to st.To by one Euler–Maruyama step
// (emCoeffs). A step to the clean point returns the denoised mean x̂0
// (Tweedie's formula, the "noise removal" step of Song et al. 2021,
// appendix G).
func (r *runner) emStep(st schedule.Step, x, x0, eps, z Vec, step int) {
	if st.To.Clean() {
		r.sp.Lincomb(x, T(1, x0))
		return
	}
	cx, ce, cz := emCoeffs(r.s, st)
	r.noise(step, 0, z)
	r.sp.Lincomb(x, T(1+cx, x), T(ce, eps), T(cz, z))
}

// sdeGrid is the grid of the SDE samplers: diffusers' DDPM timesteps for
// discrete schedules, time-uniform from 1 to ε for SDE schedules, ending at
// the clean point.
func (r *runner) sdeGrid() (schedule.Grid, error) {
	return r.s.DDPMGrid(r.o.Steps, r.o.Sigmas)
}

// EulerMaruyama integrates the reverse-time SDE of Song, Sohl-Dickstein,
// Kingma, Kumar, Ermon & Poole 2021, "Score-Based Generative Modeling through
// Stochastic Differential Equations" (eq. 6; the EulerMaruyamaPredictor of
// their code), for variance-preserving schedules (VP-SDE, eq. 11, and
// discrete DDPM schedules read as one) and for the VE-SDE (eq. 9); see emStep.
// The last step denoises with Tweedie's formula.
func EulerMaruyama(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 1000)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, err := r.sdeGrid()
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
		r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
		if err := r.report(st.From, 1, x, x0); err != nil {
			return nil, err
		}
		r.emStep(st, x, x0, eps, z, i)
		r.free(x0, eps)
	}
	return r.result(x)
}

// PCSettings resolves the predictor–corrector's options: the snr r
// (default 0.16) and the corrector steps per noise level (default 1, none
// when negative).
func PCSettings(snr float64, corrector int) (float64, int) {
	if snr == 0 {
		snr = 0.16
	}
	if corrector == 0 {
		corrector = 1
	}
	return snr, max(corrector, 0)
}

// PredictorCorrector is the predictor–corrector sampler of Song et al. 2021
// (Algorithms 2 and 3, section 4.2): at each noise level, CorrectorSteps
// Langevin MCMC steps
//
//	ε_L = 2·a·(r·‖z‖/‖∇log p‖)²,  x ← x + ε_L·∇log p + sqrt(2ε_L)·z
//
// with r the snr and a = 1 for VE, a = α_t²/α_s² (1 - β_t for one training
// step) for VP, then one Euler–Maruyama predictor step (emStep). The
// reference code averages both norms over the batch, which would make a
// sample depend on its batch; here ‖∇log p‖ is the sample's own and ‖z‖ is
// replaced by its typical value sqrt(D), D = C·H·W (using the drawn z's own
// norm correlates the step with its noise and inflates the variance by
// O(r·sqrt(2/D))). A per-sample step size still biases the stationary
// variance by about 2/D relative (the invariant density of Langevin with a
// state-dependent step ε(x) is p/ε), negligible for images but not for
// problems of a few dimensions. Network evaluations: steps·(CorrectorSteps+1).
func PredictorCorrector(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 1000)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, err := r.sdeGrid()
	if err != nil {
		return nil, err
	}
	snr, nc := PCSettings(r.o.SNR, r.o.CorrectorSteps)
	r.total = len(g.Steps) * (nc + 1)
	i0, x, err := r.start(g, noise, func(i int) int { return i * (nc + 1) })
	if err != nil {
		return nil, err
	}
	z := r.sp.New()
	es, ze := make([]float64, r.b), make([]float64, r.b)
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		p := st.From
		c := langevinCoeff(r.s, st, snr, r.n)
		for j := 0; j < nc; j++ {
			x0, eps, err := r.denoise(p, x)
			if err != nil {
				return nil, err
			}
			if j == 0 {
				r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
			}
			if err := r.report(p, 1, x, x0); err != nil {
				return nil, err
			}
			r.noise(i, 1+j, z)
			// Per sample: ‖∇log p‖² = ‖ε̂‖²/σ², ε_L = c/‖∇log p‖²,
			// x += ε_L·∇log p + sqrt(2ε_L)·z (none when the score is 0).
			for b, q := range r.sp.SumSq(eps, ErrScale{}) {
				es[b], ze[b] = 0, 0
				if gn := q / (p.Sigma * p.Sigma); gn != 0 {
					e := c / gn
					es[b], ze[b] = -e/p.Sigma, math.Sqrt(2*e)
				}
			}
			r.sp.Lincomb(x, T(1, x), Term{V: eps, PerSample: es}, Term{V: z, PerSample: ze})
			r.free(x0, eps)
		}
		x0, eps, err := r.denoise(p, x)
		if err != nil {
			return nil, err
		}
		if nc == 0 {
			r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
		}
		if err := r.report(p, 1, x, x0); err != nil {
			return nil, err
		}
		r.emStep(st, x, x0, eps, z, i)
		r.free(x0, eps)
	}
	return r.result(x)
}
