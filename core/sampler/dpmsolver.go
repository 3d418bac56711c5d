package sampler

import (
	"context"
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	params := append([]Param{pSteps(20), pSigmas, pRho}, pCFG...)
	register(Info{
		Name:         "dpmpp_2m",
		Display:      "DPM-Solver++(2M)",
		Summary:      "DPM-Solver++(2M), multistep 2nd order, Lu et al. 2022 (lower order at the last steps)",
		Order:        2,
		DefaultSteps: 20,
		Params:       params,
		Func:         DPMSolverPP2M,
		Resumable:    true,
		Multistep:    true,
	})
	register(Info{
		Name:         "dpmpp_3m",
		Display:      "DPM-Solver++(3M)",
		Summary:      "DPM-Solver++(3M), multistep 3rd order, Lu et al. 2022 (exact 2nd-difference term)",
		Order:        3,
		DefaultSteps: 20,
		Params:       params,
		Func:         DPMSolverPP3M,
		Resumable:    true,
		Multistep:    true,
	})
	register(Info{
		Name:         "dpmpp_3m_diffusers",
		Display:      "DPM-Solver++(3M), diffusers",
		Summary:      "DPM-Solver++(3M) exactly as diffusers/k-diffusion (halved 2nd difference: 2nd-order accurate)",
		Order:        2,
		DefaultSteps: 20,
		Params:       params,
		Func:         DPMSolverPP3MDiffusers,
		Resumable:    true,
		Multistep:    true,
	})
}

// DPMSolverPP2M is DPMSolverPP of order 2.
func DPMSolverPP2M(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return DPMSolverPP(ctx, m, noise, o, 2)
}

// DPMSolverPP3M is DPMSolverPP of order 3.
func DPMSolverPP3M(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return DPMSolverPP(ctx, m, noise, o, 3)
}

// DPMSolverPP3MDiffusers is the third-order multistep update exactly as
// diffusers' DPMSolverMultistepScheduler (solver_order 3), k-diffusion and the
// reference dpm-solver code write it: with D2 = (D1_0-D1_1)/(r0+r1), which
// approximates h²x0”/2 rather than the h²x0” its coefficient
// -α_t((e^{-h}-1+h)/h² - 1/2) multiplies in the Taylor expansion (Lu et al.
// 2022, "DPM-Solver", eq. 3.6 in data-prediction form), so the local error is
// O(h³) and the method is second-order accurate. It exists to reproduce
// diffusers' trajectories; DPMSolverPP3M is the third-order method.
func DPMSolverPP3MDiffusers(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return dpmSolverPP(ctx, m, noise, o, 3, true)
}

// DPMSolverPP is the multistep DPM-Solver++ of Lu, Zhou, Bao, Chen, Li & Zhu
// 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
// Probabilistic Models" (Algorithm 2 for order 2; the order-3 update of
// DPM-Solver, Lu et al. 2022, "DPM-Solver", Algorithm 3, in data-prediction
// form), on the grid of diffusers' DPMSolverMultistepScheduler. With
// λ = log(α/σ), h = λ_t - λ_s0 and data predictions m0, m1, m2 at the last
// points:
//
//	order 1: x_t = (σ_t/σ_s0)·x - α_t(e^{-h}-1)·m0
//	order 2: D1 = (m0-m1)/r0, r0 = h0/h;
//	         midpoint: x_t = (σ_t/σ_s0)x - α_t(e^{-h}-1)(m0 + D1/2)
//	         heun:     x_t = (σ_t/σ_s0)x - α_t(e^{-h}-1)m0 + α_t((e^{-h}-1)/h+1)D1
//	order 3: D1 = D1_0 + r0/(r0+r1)(D1_0-D1_1), D2 = (D1_0-D1_1)/(r0+r1),
//	         x_t = (σ_t/σ_s0)x - α_t(e^{-h}-1)m0 + α_t((e^{-h}-1)/h+1)D1
//	               - α_t((e^{-h}-1+h)/h² - 1/2)D2
//
// The first steps use lower orders until enough history exists; the last
// step is first order when it ends at σ = 0 (or euler_at_final, or
// lower_order_final with fewer than 15 steps), and with lower_order_final and
// fewer than 15 steps the second-to-last step is at most second order. The
// config's solver_type (midpoint or heun) selects the order-2 formula.
//
// D2 here is 2(D1_0-D1_1)/(r0+r1) ≈ h²·x0”: with three points the second
// divided difference of the data prediction is (D1_0-D1_1)/(r0+r1) ≈ h²x0”/2,
// and the Taylor term ∫e^τ τ²/2 dτ·x0” = -h²((e^{-h}-1+h)/h² - 1/2)·x0”
// needs twice that (see DPMSolverPP3MDiffusers for the halved variant).
func DPMSolverPP(ctx context.Context, m *Model, noise []float64, o *Options, order int) (*Result, error) {
	return dpmSolverPP(ctx, m, noise, o, order, false)
}

func dpmSolverPP(ctx context.Context, m *Model, noise []float64, o *Options, order int, halfD2 bool) (*Result, error) {
	if order < 1 || order > 3 {
		return nil, fmt.Errorf("sampler: DPM-Solver++ order %d (want 1, 2 or 3)", order)
	}
	r, err := newRunnerResumable(ctx, m, noise, o, 20)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, err := r.s.DPMGrid(r.o.Steps, r.o.Sigmas)
	if err != nil {
		return nil, err
	}
	r.total = len(g.Steps)
	i0, x, err := r.start(g, noise, oneEval)
	if err != nil {
		return nil, err
	}
	var hist [3]Vec // m0, m1, m2: data predictions at the last points
	hv, err := r.history(min(i0, order-1), "DPM-Solver++")
	if err != nil {
		return nil, err
	}
	copy(hist[:], hv)
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		x0, eps, err := r.denoise(st.From, x)
		if err != nil {
			return nil, err
		}
		r.free(eps)
		r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1}, hist[:min(i, order-1)]...)
		if err := r.report(st.From, 1, x, x0); err != nil {
			return nil, err
		}
		r.free(hist[2])
		hist[2], hist[1], hist[0] = hist[1], hist[0], x0
		c := dpmSolverStep(r.s.Config, g, i, order, halfD2)
		wx, wm := c.Weights()
		terms := []Term{T(wx, x)}
		if c.Order == 0 {
			terms = terms[:0] // x's weight is 0
		}
		for k := 0; k < max(c.Order, 1); k++ {
			terms = append(terms, T(wm[k], hist[k]))
		}
		r.sp.Lincomb(x, terms...)
	}
	return r.result(x)
}

// Weights are the step's update as a linear combination of the state x
// and the data predictions m0, m1, m2 (DPMSolverPP's formulas with the
// divided differences expanded): x_t = wx·x + Σ wm[k]·m_k, m_k unused
// beyond the step's order.
func (c dpmStep) Weights() (wx float64, wm [3]float64) {
	switch c.Order {
	case 0:
		// σ_t = 0, λ_t = ∞: the first-order update is x_t = α_t·m0.
		return 0, [3]float64{c.A}
	case 1:
		return c.Ratio, [3]float64{-c.A * c.Em1}
	case 2:
		// D1 = (m0 - m1)/r0, weighted C2 (heun) or -α_t(e^{-h}-1)/2 (midpoint).
		w1 := c.C2
		if !c.Heun {
			w1 = -0.5 * c.A * c.Em1
		}
		w1 /= c.R0
		return c.Ratio, [3]float64{-c.A*c.Em1 + w1, -w1}
	}
	// D1_0 = (m0-m1)/r0, D1_1 = (m1-m2)/r1, D1 = (1+ρ)D1_0 - ρD1_1 with
	// ρ = r0/(r0+r1), D2 = κ(D1_0 - D1_1) with κ = D2Scale/(r0+r1):
	// C2·D1 - C3·D2 = w10·D1_0 + w11·D1_1.
	rho := c.R0 / (c.R0 + c.R1)
	kappa := c.D2Scale / (c.R0 + c.R1)
	w10 := c.C2*(1+rho) - c.C3*kappa
	w11 := -c.C2*rho + c.C3*kappa
	return c.Ratio, [3]float64{-c.A*c.Em1 + w10/c.R0, -w10/c.R0 + w11/c.R1, -w11 / c.R1}
}

// dpmStep is one step of DPMSolverPP in coefficient form (see there for the
// formulas, Lu et al. 2022): Order 0 is the step to σ = 0, x = A·m0; order
// 1 is x = Ratio·x - A·Em1·m0; orders 2 and 3 add the divided differences
// of the data predictions with the ratios R0, R1 of the λ steps and the
// coefficients C2, C3 (order 2: the heun form when Heun, else midpoint;
// order 3: D2 scaled by D2Scale).
type dpmStep struct {
	Order            int
	Ratio, A, Em1, H float64 // σ_t/σ_s, α_t, e^{-h}-1, h = λ_t - λ_s
	R0, R1           float64
	C2, C3, D2Scale  float64
	Heun             bool
}

// dpmSolverStep is step i of DPMSolverPP of the given order (halfD2: the
// diffusers variant) on grid g with config cfg: the order that step uses
// (lower at the start, and at the end as the config asks) and its
// coefficients.
func dpmSolverStep(cfg schedule.Config, g schedule.Grid, i, order int, halfD2 bool) dpmStep {
	n := len(g.Steps)
	st := g.Steps[i]
	lowerFinal := i == n-1 && (cfg.EulerAtFinal || (cfg.LowerOrderFinalOn() && n < 15) || st.To.Clean())
	lowerSecond := i == n-2 && cfg.LowerOrderFinalOn() && n < 15
	ord := 3
	switch {
	case order == 1 || i < 1 || lowerFinal:
		ord = 1
	case order == 2 || i < 2 || lowerSecond:
		ord = 2
	}
	to, from := st.To, st.From
	if to.Clean() {
		return dpmStep{Order: 0, A: to.Alpha}
	}
	lam0 := from.Lambda()
	h := to.Lambda() - lam0
	em1 := math.Expm1(-h) // e^{-h} - 1
	c := dpmStep{Order: ord, Ratio: to.Sigma / from.Sigma, A: to.Alpha, Em1: em1, H: h, D2Scale: 2}
	if ord >= 2 {
		c.R0 = (lam0 - g.Steps[i-1].From.Lambda()) / h
		c.C2 = c.A * (em1/h + 1)
		c.Heun = cfg.SolverType == "heun"
	}
	if ord == 3 {
		c.R1 = (g.Steps[i-1].From.Lambda() - g.Steps[i-2].From.Lambda()) / h
		c.C3 = c.A * ((em1+h)/(h*h) - 0.5)
		if halfD2 {
			c.D2Scale = 1
		}
	}
	return c
}
