package sampler

import (
	"context"
	"fmt"
	"math"
)

func init() {
	params := append([]Param{pSteps(20), pOrder(2), pSigmas, pRho}, pCFG...)
	register(Info{
		Name:         "unipc",
		Display:      "UniPC (bh2)",
		Summary:      "UniPC predictor–corrector, B(h) = e^h - 1, Zhao et al. 2023 (diffusers UniPCMultistepScheduler, bh2)",
		Order:        3,
		DefaultSteps: 20,
		Params:       params,
		Func:         UniPC,
		Resumable:    true,
		Multistep:    true,
	})
	register(Info{
		Name:         "unipc_bh1",
		Display:      "UniPC (bh1)",
		Summary:      "UniPC predictor–corrector, B(h) = h, Zhao et al. 2023 (diffusers UniPCMultistepScheduler, bh1)",
		Order:        3,
		DefaultSteps: 20,
		Params:       params,
		Func:         UniPCBH1,
		Resumable:    true,
		Multistep:    true,
	})
}

// UniPC is uniPC with B(h) = e^h - 1 (diffusers' default solver_type bh2).
func UniPC(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return uniPC(ctx, m, noise, o, true)
}

// UniPCBH1 is uniPC with B(h) = h (solver_type bh1).
func UniPCBH1(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	return uniPC(ctx, m, noise, o, false)
}

// uniCoeffs are the coefficients of a UniP or UniC update of order p
// (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for
// Fast Sampling of Diffusion Models", NeurIPS 2023, Algorithms 2-3 in
// data-prediction form, B(h) variants of section 3.3; as diffusers'
// multistep_uni_p_bh_update / multistep_uni_c_bh_update). With hh = -h,
// h the step in λ = log(α/σ), and rks the ratios r_k = (λ_{s_k} - λ_{s0})/h
// followed by 1, it returns hφ1 = e^{hh} - 1, B(h) and the ρ solving
// R ρ = b with R_{ik} = r_k^{i-1}, b_i = i!·hφ_{i+1}/B(h) (φ_k the
// exponential integrator's φ functions, hφ_{k+1} = hφ_k/hh - 1/k!):
// for the predictor (corr false) the first p-1 rows and columns (ρ = ½
// for p = 2), for the corrector all p (ρ = ½ for p = 1).
func uniCoeffs(h float64, rks []float64, bh2, corr bool) (hphi1, bh float64, rho []float64) {
	p := len(rks)
	hh := -h
	hphi1 = math.Expm1(hh)
	bh = hh
	if bh2 {
		bh = hphi1
	}
	b := make([]float64, p)
	hphik := hphi1/hh - 1
	fact := 1.0
	for i := 1; i <= p; i++ {
		b[i-1] = hphik * fact / bh
		fact *= float64(i + 1)
		hphik = hphik/hh - 1/fact
	}
	size := p
	if !corr {
		size = p - 1
	}
	switch {
	case size == 0:
		return hphi1, bh, nil
	case !corr && p == 2, corr && p == 1:
		return hphi1, bh, []float64{0.5}
	}
	a := make([][]float64, size)
	for i := range a {
		a[i] = make([]float64, size+1)
		for k := 0; k < size; k++ {
			a[i][k] = math.Pow(rks[k], float64(i))
		}
		a[i][size] = b[i]
	}
	return hphi1, bh, solveSmall(a)
}

// solveSmall solves the linear system in augmented form a = [A | b] by
// Gaussian elimination with partial pivoting (a is overwritten).
func solveSmall(a [][]float64) []float64 {
	n := len(a)
	for c := 0; c < n; c++ {
		piv := c
		for r := c + 1; r < n; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[piv][c]) {
				piv = r
			}
		}
		a[c], a[piv] = a[piv], a[c]
		for r := c + 1; r < n; r++ {
			f := a[r][c] / a[c][c]
			for k := c; k <= n; k++ {
				a[r][k] -= f * a[c][k]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := a[r][n]
		for k := r + 1; k < n; k++ {
			s -= a[r][k] * x[k]
		}
		x[r] = s / a[r][r]
	}
	return x
}

// uniPC is UniPC-p (p = Options.Order, 1 to 3, default 2 as diffusers'
// solver_order) on DPMGrid: at each point the network is evaluated once;
// its data prediction first corrects the state just reached (UniC of the
// previous step's order, using the new evaluation), then drives the next
// UniP step of order min(p, steps made, steps left) (the last as
// diffusers' lower_order_final, its default; 1 for a step to σ = 0). The corrector raises the order by one (Zhao et al.
// 2023, Theorem 3.1) at no extra evaluation; the last step, which has no
// evaluation after it, is not corrected. Its checkpoints' History holds
// the corrected state of the previous point, then the data predictions.
func uniPC(ctx context.Context, m *Model, noise []float64, o *Options, bh2 bool) (*Result, error) {
	order := 2
	if o != nil && o.Order != 0 {
		order = o.Order
	}
	if order < 1 || order > 3 {
		// (orders 1-3 are the tested ones: TestSolverOrders)
		return nil, &OptionError{"order", fmt.Sprintf("unipc takes order 1, 2 or 3, not %d", order)}
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
	n := len(g.Steps)
	r.total = n
	i0, x, err := r.start(g, noise, oneEval)
	if err != nil {
		return nil, err
	}
	// stepOrder is the UniP order of step i.
	stepOrder := func(i int) int {
		if i == n-1 && g.Steps[i].To.Clean() {
			return 1
		}
		if r.s.Config.LowerOrderFinalOn() {
			return min(order, n-i, i+1)
		}
		return min(order, i+1)
	}
	need := 0
	if i0 > 0 {
		need = 1 + min(i0, order)
	}
	hv, err := r.history(need, "UniPC")
	if err != nil {
		return nil, err
	}
	last := r.sp.New() // the corrected state at the previous point
	var ms []Vec       // data predictions, newest first
	if need > 0 {
		r.sp.Lincomb(last, T(1, hv[0]))
		r.free(hv[0])
		ms = hv[1:]
	}
	defer func() { r.free(last); r.free(ms...) }()
	lam := func(i int) float64 { return g.Steps[i].From.Lambda() }
	for i := i0; i < n; i++ {
		st := g.Steps[i]
		var hist []Vec
		if i > 0 {
			hist = append([]Vec{last}, ms[:min(len(ms), order)]...)
		}
		r.boundary(Checkpoint{Step: i, NFE: r.nfe}, hist...)
		x0, eps, err := r.denoise(st.From, x)
		if err != nil {
			return nil, err
		}
		r.free(eps)
		// The progress call (and checkpoint) sees the state the network
		// saw, before its correction.
		if err := r.report(st.From, 1, x, x0); err != nil {
			return nil, err
		}
		if i > 0 {
			// UniC from the previous point s0 to here, of the order p the
			// previous UniP step used, with m_t = x0.
			p := stepOrder(i - 1)
			s0 := g.Steps[i-1].From
			h := st.From.Lambda() - lam(i-1)
			rks := make([]float64, 0, p)
			for k := 1; k < p; k++ {
				rks = append(rks, (lam(i-1-k)-lam(i-1))/h)
			}
			rks = append(rks, 1)
			hphi1, bh, rho := uniCoeffs(h, rks, bh2, true)
			at := st.From.Alpha
			// x = σ_t/σ_s0·last - α_t·hφ1·m0 - α_t·B(h)·(Σ ρ_k (m_k-m0)/r_k + ρ_p (x0-m0))
			wm0 := -at * hphi1
			terms := []Term{T(st.From.Sigma/s0.Sigma, last)}
			for k := 1; k < p; k++ {
				c := -at * bh * rho[k-1] / rks[k-1]
				terms = append(terms, T(c, ms[k]))
				wm0 -= c
			}
			c := -at * bh * rho[p-1]
			terms = append(terms, T(c, x0))
			wm0 -= c
			terms = append(terms, T(wm0, ms[0]))
			r.sp.Lincomb(x, terms...)
		}
		if len(ms) == order {
			r.free(ms[order-1])
			ms = ms[:order-1]
		}
		ms = append([]Vec{x0}, ms...)
		r.sp.Lincomb(last, T(1, x))
		// UniP of order p from here to st.To.
		if st.To.Clean() {
			r.sp.Lincomb(x, T(st.To.Alpha, x0)) // λ_t = ∞: x_t = α_t·m0
			continue
		}
		p := stepOrder(i)
		h := st.To.Lambda() - lam(i)
		rks := make([]float64, 0, p)
		for k := 1; k < p; k++ {
			rks = append(rks, (lam(i-k)-lam(i))/h)
		}
		rks = append(rks, 1)
		hphi1, bh, rho := uniCoeffs(h, rks, bh2, false)
		at := st.To.Alpha
		// x_t = σ_t/σ_s0·x - α_t·hφ1·m0 - α_t·B(h)·Σ ρ_k (m_k - m0)/r_k
		wm0 := -at * hphi1
		terms := []Term{T(st.To.Sigma/st.From.Sigma, x)}
		for k := 1; k < p; k++ {
			c := -at * bh * rho[k-1] / rks[k-1]
			terms = append(terms, T(c, ms[k]))
			wm0 -= c
		}
		terms = append(terms, T(wm0, ms[0]))
		r.sp.Lincomb(x, terms...)
	}
	return r.result(x)
}
