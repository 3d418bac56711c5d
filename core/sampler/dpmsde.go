package sampler

import (
	"context"
	"math"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	sde := append([]Param{pSteps(25), pEtaAncestral, pSNoise, pSigmas, pRho}, pCFG...)
	register(Info{
		Name:         "dpmpp_2s_ancestral",
		Display:      "DPM-Solver++(2S) ancestral",
		Summary:      "DPM-Solver++(2S) to σ_down plus fresh noise σ_up, Lu et al. 2022 (k-diffusion sample_dpmpp_2s_ancestral)",
		Stochastic:   true,
		DefaultSteps: 25,
		Params:       sde,
		Func:         DPMPP2SAncestral,
		Resumable:    true,
	})
	register(Info{
		Name:         "dpmpp_sde",
		Display:      "DPM-Solver++ SDE",
		Summary:      "DPM-Solver++ SDE, two stages per step with ancestral noise, Lu et al. 2022 (k-diffusion sample_dpmpp_sde; per-step noise, not a Brownian tree)",
		Stochastic:   true,
		DefaultSteps: 25,
		Params:       sde,
		Func:         DPMPPSDE,
		Resumable:    true,
	})
	register(Info{
		Name:         "dpmpp_2m_sde",
		Display:      "DPM-Solver++(2M) SDE",
		Summary:      "SDE-DPM-Solver++(2M), Lu et al. 2022 (k-diffusion sample_dpmpp_2m_sde, midpoint)",
		Stochastic:   true,
		DefaultSteps: 25,
		Params:       sde,
		Func:         DPMPP2MSDE,
		Resumable:    true,
		Multistep:    true,
	})
	register(Info{
		Name:         "dpmpp_3m_sde",
		Display:      "DPM-Solver++(3M) SDE",
		Summary:      "SDE-DPM-Solver++(3M), Lu et al. 2022 (k-diffusion sample_dpmpp_3m_sde, with dpmpp_3m's exact 2nd difference)",
		Stochastic:   true,
		DefaultSteps: 25,
		Params:       sde,
		Func:         DPMPP3MSDE,
		Resumable:    true,
		Multistep:    true,
	})
}

// The samplers of this file work in k-diffusion's variables (kStart): the
// state x = x_t/α, levels σ, t = -log σ and h = t' - t (so that h is the
// step in λ = log(α/σ) of Lu et al.); with α = 1 there, DPM-Solver++'s
// first-order step from σ to σ' is x' = (σ'/σ)x - (e^{-h}-1)·D.
// Their noise is drawn per step through Space.Noise (draw 0, and draw 1 for
// a second stage): k-diffusion's dpmpp_sde and the SDE multistep samplers
// draw from a Brownian tree instead, whose sub-step increments are
// correlated; ours are independent, which keeps each step's transition
// exact in distribution but gives other samples for a seed.

// sNoise is k-diffusion's s_noise, the factor on every fresh noise draw
// of its ancestral and SDE samplers (Options.SNoise, default 1).
func (r *runner) sNoise() float64 {
	if r.o.SNoise == 0 {
		return 1
	}
	return r.o.SNoise
}

// etaOf is o's η for the samplers whose default η is 1.
func etaOf(o *Options) float64 {
	if o != nil && o.Eta != 0 {
		return o.Eta
	}
	return 1
}

// DPMPP2SAncestral is k-diffusion's sample_dpmpp_2s_ancestral: the
// single-step DPM-Solver++(2S) (Lu et al. 2022, "DPM-Solver++", Algorithm
// 1 with r = 1/2) from σ to σ_down, then fresh noise σ_up (ancestral split
// with η, default 1). With η = 0 it is DPM-Solver++(2S), second order.
func DPMPP2SAncestral(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return dpmpp2SAncestral(ctx, m, noise, o, etaOf(o))
}

func dpmpp2SAncestral(ctx context.Context, m *Model, noise []float64, o *Options, eta float64) (*Result, error) {
	return kTwoStage(ctx, m, noise, o, eta, ancestralRule(dpmpp2SStep))
}

// dpmpp2SStep: with h = log σ - log σ_down, the midpoint s = t + h/2,
// σ_s = sqrt(σ·σ_down); first-order DPM-Solver++ steps x2 = (σ_s/σ)x -
// (e^{-h/2}-1)·D and x' = (σ_down/σ)x - (e^{-h}-1)·D2.
func dpmpp2SStep(l, down float64) twoStage {
	h := math.Log(l) - math.Log(down)
	mid := math.Sqrt(l * down)
	return twoStage{mid: mid, a1: mid / l, b1: -math.Expm1(-h / 2), a2: down / l, b2: -math.Expm1(-h)}
}

// DPMPPSDE is k-diffusion's sample_dpmpp_sde with r = 1/2: stage 1 is a
// first-order DPM-Solver++ step from σ towards the midpoint σ_s =
// sqrt(σσ') (to its ancestral σ_down, plus noise σ_up); stage 2 restarts
// from x and steps to σ' (again split ancestrally) with the data prediction
// at the stage-1 point (fac = 1/(2r) = 1). Lu et al. 2022, "DPM-Solver++",
// section 5 (SDE solvers). With η = 0 it is a second-order single-step
// solver. Its noise is per step, not k-diffusion's Brownian tree (see above).
func DPMPPSDE(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return dpmppSDE(ctx, m, noise, o, etaOf(o))
}

func dpmppSDE(ctx context.Context, m *Model, noise []float64, o *Options, eta float64) (*Result, error) {
	return kTwoStage(ctx, m, noise, o, eta, dpmppSDERule)
}

// dpmppSDERule: σ_s = sqrt(σσ'); stage 1 to σ_down of (σ, σ_s), x2 =
// (σd/σ)x + (1-σd/σ)D + σu·z (draw 0); stage 2 from x to σ_down of (σ, σ')
// with D2, noise draw 1.
func dpmppSDERule(st schedule.Step, eta float64) twoStage {
	if st.To.Clean() {
		return twoStage{eulerToClean: true}
	}
	l, lt := st.From.Level, st.To.Level
	mid := math.Sqrt(l * lt)
	d1, u1 := ancestralLevelsEta(l, mid, eta)
	d2, u2 := ancestralLevelsEta(l, lt, eta)
	return twoStage{mid: mid, a1: d1 / l, b1: 1 - d1/l, up1: u1, a2: d2 / l, b2: 1 - d2/l, up2: u2, draw2: 1}
}

// DPMPP2MSDE is k-diffusion's sample_dpmpp_2m_sde (midpoint form), the
// SDE-DPM-Solver++(2M) of Lu et al. 2022, "DPM-Solver++", section 5 and
// Appendix B: with h = t' - t and ηh,
//
//	x' = (σ'/σ)e^{-ηh}·x + (1 - e^{-h-ηh})·D
//	     + ½(1 - e^{-h-ηh})(D - D_prev)/r,   r = h_prev/h
//	     + σ'·sqrt(1 - e^{-2ηh})·z
//
// η = 1 (the default) is the SDE solver; η = 0 is DPM-Solver++(2M).
func DPMPP2MSDE(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return dpmppMSDE(ctx, m, noise, o, etaOf(o), 2, 2)
}

// DPMPP3MSDE is k-diffusion's sample_dpmpp_3m_sde: DPMPP2MSDE's update
// with the third-order terms φ2·D1 - φ3·D2 of DPM-Solver++(3M) (see
// DPMSolverPP), φ2 = (e^{-ηh'}-1)/ηh' + 1, φ3 = φ2/ηh' - 1/2 with
// ηh' = (1+η)h. As in dpmpp_3m, D2 is the full second divided difference
// 2(D1_0 - D1_1)/(r0 + r1) (k-diffusion halves it, which makes the method
// second-order: see DPMSolverPP3MDiffusers); with η = 0 it is third order.
func DPMPP3MSDE(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return dpmppMSDE(ctx, m, noise, o, etaOf(o), 3, 2)
}

// dpmppMSDE is DPMPP2MSDE or DPMPP3MSDE; d2Scale is 2 for the full second
// divided difference, 1 for k-diffusion's halved one (its parity test).
func dpmppMSDE(ctx context.Context, m *Model, noise []float64, o *Options, eta float64, order int, d2Scale float64) (*Result, error) {
	r, g, i0, xt, err := kStart(ctx, m, noise, o, 25, oneEvalGrid)
	if err != nil {
		return nil, err
	}
	defer r.close()
	r.total = len(g.Steps)
	z := r.sp.New()
	var hist [3]Vec // D at the last points, newest first
	defer func() { r.free(z, hist[0], hist[1], hist[2]) }()
	hv, err := r.history(min(i0, order-1), "DPM-Solver++ SDE")
	if err != nil {
		return nil, err
	}
	copy(hist[:], hv)
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		r.boundary(Checkpoint{Step: i, NFE: r.nfe}, hist[:min(i, order-1)]...)
		x0, err := r.evalReport(st.From, xt)
		if err != nil {
			return nil, err
		}
		r.free(hist[2])
		hist[2], hist[1], hist[0] = hist[1], hist[0], x0
		l, lt := st.From.Level, st.To.Level
		if st.To.Clean() {
			r.sp.Lincomb(xt, T(1, x0))
			continue
		}
		h := logStep(g, i)
		he := h * (1 + eta) // k-diffusion's h_eta (3M) = h + ηh (2M)
		c0 := -math.Expm1(-he)
		var w [3]float64 // weights of D, D_prev, D_prev2
		w[0] = c0
		n := min(i, order-1) // history steps available and used
		switch {
		case n == 1 && order == 2:
			// ½(1-e^{-h-ηh})(D - D_1)/r
			c := 0.5 * c0 * h / logStep(g, i-1)
			w[0] += c
			w[1] -= c
		case n == 1:
			// φ2·(D - D_1)/r0
			phi2 := math.Expm1(-he)/he + 1
			c := phi2 * h / logStep(g, i-1)
			w[0] += c
			w[1] -= c
		case n == 2:
			phi2 := math.Expm1(-he)/he + 1
			phi3 := phi2/he - 0.5
			r0, r1 := logStep(g, i-1)/h, logStep(g, i-2)/h
			// D1_0 = (D-D_1)/r0, D1_1 = (D_1-D_2)/r1,
			// D1 = D1_0 + r0/(r0+r1)(D1_0-D1_1), D2 = d2Scale(D1_0-D1_1)/(r0+r1):
			// φ2·D1 - φ3·D2 = a·D1_0 + b·D1_1
			rho := r0 / (r0 + r1)
			kap := d2Scale / (r0 + r1)
			a := phi2*(1+rho) - phi3*kap
			b := -phi2*rho + phi3*kap
			w[0] += a / r0
			w[1] += -a/r0 + b/r1
			w[2] += -b / r1
		}
		terms := []Term{T(lt/l*math.Exp(-eta*h), xt)}
		for k := 0; k <= n; k++ {
			terms = append(terms, T(w[k], hist[k]))
		}
		if eta > 0 {
			r.noise(i, 0, z)
			terms = append(terms, T(r.sNoise()*lt*math.Sqrt(-math.Expm1(-2*eta*h)), z))
		}
		r.sp.Lincomb(xt, terms...)
	}
	return r.result(xt)
}

// logStep is grid step i's h = log σ - log σ' (the step in λ = log(α/σ)).
func logStep(g schedule.Grid, i int) float64 {
	return math.Log(g.Steps[i].From.Level) - math.Log(g.Steps[i].To.Level)
}
