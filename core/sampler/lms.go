package sampler

import (
	"context"
	"fmt"
	"math"
)

func init() {
	register(Info{
		Name:         "lms",
		Display:      "LMS",
		Summary:      "linear multistep (Adams–Bashforth in σ), k-diffusion sample_lms / diffusers LMSDiscreteScheduler, order 4",
		Order:        4,
		DefaultSteps: 50,
		Params:       append([]Param{pSteps(50), pOrder(4), pSigmas, pRho}, pCFG...),
		Func:         LMS,
		Resumable:    true,
		Multistep:    true,
	})
}

// LMS is k-diffusion's sample_lms (diffusers' LMSDiscreteScheduler): the
// explicit linear multistep (Adams–Bashforth) method on the
// probability-flow ODE dx/dσ = d(x; σ) = (x - D(x; σ))/σ in Karras et al.'s
// x = x_t/α. With slopes d_j at the last `order` levels σ_{i-j},
//
//	x_{i+1} = x_i + Σ_j c_j·d_{i-j},  c_j = ∫_{σ_i}^{σ_{i+1}} L_j(τ) dτ,
//
// L_j the Lagrange basis polynomial of node σ_{i-j} (Hairer, Nørsett &
// Wanner, "Solving Ordinary Differential Equations I", section III.1, the
// Adams methods on a variable grid). k-diffusion integrates L_j with
// scipy's quad; here lagrangeIntegral does it with Gauss–Legendre
// quadrature, exact for these polynomials. Order Options.Order (default
// 4), lower at the first steps; one evaluation per step. Its checkpoints'
// History holds the slopes d (not data predictions).
func LMS(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	order := 4
	if o != nil && o.Order != 0 {
		order = o.Order
	}
	if order < 1 || order > 4 {
		return nil, fmt.Errorf("sampler: lms order %d (want 1 to 4)", order)
	}
	r, g, i0, xt, err := kStart(ctx, m, noise, o, 50, oneEvalGrid)
	if err != nil {
		return nil, err
	}
	defer r.close()
	r.total = len(g.Steps)
	// slopes at the last points, newest first (a checkpoint's History)
	ds, err := r.history(min(i0, order-1), "LMS")
	if err != nil {
		return nil, err
	}
	defer func() { r.free(ds...) }()
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		r.boundary(Checkpoint{Step: i, NFE: r.nfe}, ds[:min(len(ds), order-1)]...)
		x0, err := r.evalReport(st.From, xt)
		if err != nil {
			return nil, err
		}
		l := st.From.Level
		var d Vec
		if len(ds) == order {
			d = ds[order-1]
			ds = ds[:order-1]
		} else {
			d = r.sp.New()
		}
		r.sp.Lincomb(d, T(1/l, xt), T(-1/l, x0))
		r.free(x0)
		ds = append([]Vec{d}, ds...)
		nodes := make([]float64, len(ds))
		for j := range nodes {
			nodes[j] = g.Steps[i-j].From.Level
		}
		terms := []Term{T(1, xt)}
		for j := range ds {
			terms = append(terms, T(lagrangeIntegral(nodes, j, l, st.To.Level, nil), ds[j]))
		}
		r.sp.Lincomb(xt, terms...)
	}
	return r.result(xt)
}

// lagrangeIntegral is ∫_a^b L_j(u(τ))·w(τ) dτ for the Lagrange basis
// polynomial L_j of nodes (L_j(nodes[k]) = δ_jk) in the variable u, where
// u and w are the identity and 1 when warp is nil, else warp(τ) = (u, w).
// It uses 12-point Gauss–Legendre quadrature (Abramowitz & Stegun 25.4.29),
// exact for polynomials of degree up to 23 in τ and, for the smooth
// integrands of DEIS, accurate to rounding for the step sizes samplers
// take.
func lagrangeIntegral(nodes []float64, j int, a, b float64, warp func(float64) (float64, float64)) float64 {
	xs, ws := glX, glW
	half, mid := (b-a)/2, (a+b)/2
	sum := 0.0
	for k := range xs {
		tau := mid + half*xs[k]
		u, w := tau, 1.0
		if warp != nil {
			u, w = warp(tau)
		}
		p := 1.0
		for m, nm := range nodes {
			if m != j {
				p *= (u - nm) / (nodes[j] - nm)
			}
		}
		sum += ws[k] * p * w
	}
	return sum * half
}

// glX, glW are lagrangeIntegral's Gauss–Legendre nodes and weights.
var glX, glW = gaussLegendre(12)

// gaussLegendre returns the n Gauss–Legendre nodes and weights on
// [-1, 1]: the roots of P_n by Newton's method from Chebyshev guesses
// (Press et al., "Numerical Recipes", section 4.6, gauleg), weights
// 2/((1-x²)P'_n(x)²).
func gaussLegendre(n int) ([]float64, []float64) {
	xs, ws := make([]float64, n), make([]float64, n)
	for i := 0; i < n; i++ {
		x := math.Cos(math.Pi * (float64(i) + 0.75) / (float64(n) + 0.5))
		var dp float64
		for it := 0; it < 100; it++ {
			p0, p1 := 1.0, x
			for k := 2; k <= n; k++ {
				p0, p1 = p1, ((2*float64(k)-1)*x*p1-(float64(k)-1)*p0)/float64(k)
			}
			dp = float64(n) * (x*p1 - p0) / (x*x - 1)
			dx := p1 / dp
			x -= dx
			if math.Abs(dx) < 1e-16 {
				break
			}
		}
		xs[i], ws[i] = x, 2/((1-x*x)*dp*dp)
	}
	return xs, ws
}
