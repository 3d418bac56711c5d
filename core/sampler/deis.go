package sampler

import (
	"context"
	"fmt"
	"math"
)

func init() {
	register(Info{
		Name:         "deis",
		Display:      "DEIS",
		Summary:      "DEIS multistep exponential integrator (ρAB, log-ρ interpolation), Zhang & Chen 2023 (diffusers DEISMultistepScheduler)",
		Order:        2,
		DefaultSteps: 20,
		Params:       append([]Param{pSteps(20), pOrder(2), pSigmas, pRho}, pCFG...),
		Func:         DEIS,
		Resumable:    true,
		Multistep:    true,
	})
}

// DEIS is the multistep Diffusion Exponential Integrator Sampler of Zhang
// & Chen 2023, "Fast Sampling of Diffusion Models with Exponential
// Integrator" (ICLR 2023), as diffusers' DEISMultistepScheduler
// (algorithm_type "deis", its "logrho" variant of ρAB-DEIS, section 4 and
// eq. 15): with ρ = σ/α the probability-flow ODE is exactly dx̃/dρ = ε̂ for
// x̃ = x/α, and the noise predictions ε_j at the last `order` points are
// interpolated by a polynomial in log ρ and integrated over the step,
//
//	x_t = α_t·(x_s/α_s + Σ_j c_j ε_j),  c_j = ∫_{ρ_s}^{ρ_t} L_j(log ρ) dρ,
//
// L_j the Lagrange basis of the nodes log ρ_{s_j} (diffusers writes these
// integrals in closed form; lagrangeIntegral computes them by quadrature).
// Order Options.Order (1 to 3, default 2, as diffusers' solver_order),
// lower at the first steps and, as diffusers' lower_order_final, at the
// last two of fewer than 15; the step to σ = 0 is first order (DDIM). On
// DPMGrid, one evaluation per step (diffusers' DEIS ends at the level of
// timestep 0: final_sigmas_type sigma_min). Its checkpoints' History holds the noise predictions.
func DEIS(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	order := 2
	if o != nil && o.Order != 0 {
		order = o.Order
	}
	if order < 1 || order > 3 {
		// (orders 1-3 are the tested ones: TestSolverOrders)
		return nil, &OptionError{"order", fmt.Sprintf("deis takes order 1, 2 or 3, not %d", order)}
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
	eps, err := r.history(min(i0, order-1), "DEIS") // newest first
	if err != nil {
		return nil, err
	}
	defer func() { r.free(eps...) }()
	n := len(g.Steps)
	for i := i0; i < n; i++ {
		st := g.Steps[i]
		r.boundary(Checkpoint{Step: i, NFE: r.nfe}, eps[:min(len(eps), order-1)]...)
		x0, e, err := r.denoise(st.From, x)
		if err != nil {
			return nil, err
		}
		if err := r.report(st.From, 1, x, x0); err != nil {
			return nil, err
		}
		r.free(x0)
		if len(eps) == order {
			r.free(eps[order-1])
			eps = eps[:order-1]
		}
		eps = append([]Vec{e}, eps...)
		// diffusers' order rule: lower at the first steps, and (with
		// lower_order_final and under 15 steps) at the last two; the step
		// to σ = 0 is first order
		ord := min(order, len(eps))
		lof := r.s.Config.LowerOrderFinalOn() && n < 15
		switch {
		case i == n-1 && (lof || st.To.Clean()):
			ord = 1
		case i == n-2 && lof:
			ord = min(ord, 2)
		}
		as, at := st.From.Alpha, st.To.Alpha
		rs, rt := st.From.Sigma/as, st.To.Sigma/at
		terms := []Term{T(at/as, x)}
		if ord == 1 {
			terms = append(terms, T(at*(rt-rs), eps[0]))
		} else {
			nodes := make([]float64, ord)
			for j := range nodes {
				p := g.Steps[i-j].From
				nodes[j] = math.Log(p.Sigma / p.Alpha)
			}
			logRho := func(rho float64) (float64, float64) { return math.Log(rho), 1 }
			for j := 0; j < ord; j++ {
				terms = append(terms, T(at*lagrangeIntegral(nodes, j, rs, rt, logRho), eps[j]))
			}
		}
		r.sp.Lincomb(x, terms...)
	}
	return r.result(x)
}
