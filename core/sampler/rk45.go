package sampler

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	register(Info{
		Name:         "rk45",
		Display:      "RK45",
		Summary:      "adaptive Dormand–Prince RK45 on the probability-flow ODE (rtol/atol), Song et al. 2021",
		Order:        0,
		DefaultSteps: 0,
		Params: append([]Param{
			pRTol, pATol,
		}, pCFG...),
		Func:      RK45,
		Resumable: true,
	})
}

// Dormand & Prince 1980, "A family of embedded Runge-Kutta formulae", table 2
// (RK5(4)7M): nodes c, coefficients a, 5th-order weights b (FSAL: the 7th
// stage is the derivative at the new point) and e = b - b̂, the difference to
// the embedded 4th-order weights.
var (
	dpC = [7]float64{0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1}
	dpA = [7][6]float64{
		{},
		{1.0 / 5},
		{3.0 / 40, 9.0 / 40},
		{44.0 / 45, -56.0 / 15, 32.0 / 9},
		{19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
		{9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
		{35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
	}
	dpE = [7]float64{71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40}
)

// The step-size controller of dopri45 (Hairer, Nørsett & Wanner I, II.4,
// eq. 4.13; scipy's RK45): after an attempt with error norm err the step
// is multiplied by rk45Safety·err^rk45Exponent, within [rk45MinFactor,
// rk45MaxFactor] (at most 1 right after a rejection; rk45MaxFactor when
// err is 0). rk45MaxNFE bounds the rk45 sampler's evaluations.
const (
	rk45Safety    = 0.9
	rk45Exponent  = -1.0 / 5
	rk45MinFactor = 0.2
	rk45MaxFactor = 10
	rk45MaxNFE    = 100000
)

// The starting step size of dopri45 (Hairer, Nørsett & Wanner I, II.4,
// "Starting step size"), as dopriStart computes it
// from the scaled norms d0 = ‖y‖, d1 = ‖f(y)‖ and d2 = ‖f(y + h0·f(y)) −
// f(y)‖/h0: h0 = rk45StartFrac·d0/d1, or rk45StartMinH when d0 or d1 is
// below rk45StartTiny; h1 = (rk45StartFrac/max(d1, d2))^(−rk45Exponent),
// or max(rk45StartMinH, rk45StartShrink·h0) when both are below
// rk45StartZero; the first step is min(rk45StartGrow·h0, h1).
const (
	rk45StartFrac   = 0.01
	rk45StartMinH   = 1e-6
	rk45StartTiny   = 1e-5
	rk45StartZero   = 1e-15
	rk45StartShrink = 1e-3
	rk45StartGrow   = 100
)

// rk45Tolerances resolves the rk45 sampler's rtol and atol (default 1e-5).
func rk45Tolerances(rtol, atol float64) (float64, float64, error) {
	if rtol == 0 {
		rtol = 1e-5
	}
	if atol == 0 {
		atol = 1e-5
	}
	if rtol < 0 || atol < 0 {
		return 0, 0, fmt.Errorf("sampler: rtol and atol must be positive, got %v and %v", rtol, atol)
	}
	return rtol, atol, nil
}

// RK45Span is where the rk45 sampler integrates dx/du = x - D(x; e^u):
// from u0 = log(σ/α) at the start time to u1 at the end time, starting
// from x = scale·noise (scale² is the prior's variance of x_T/α).
func RK45Span(s *schedule.Schedule) (u0, u1, scale float64) {
	lmax, lmin := s.MaxLevel(), s.MinLevel()
	return math.Log(lmax), math.Log(lmin), math.Sqrt(s.PriorVar(lmax))
}

// odeFunc writes dy/du at (u, y) into dy.
type odeFunc func(u float64, y, dy Vec) error

type dopriOptions struct {
	rtol, atol float64
	maxNFE     int
	// norm reduces the error vector e, scaled elementwise by
	// atol + rtol·max(|y|, |y2|) (y2 may be nil), to one number (the step
	// is accepted when it is at most 1).
	norm func(e, y, y2 Vec) float64
	// accept is called after every accepted step with the new point, the
	// derivative there and the step size to try next.
	accept func(u float64, y, dy Vec, h float64) error
	// resume, when set, starts at an accepted step of an earlier run (u0
	// and y0 are its point), skipping the initial step selection.
	resume *dopriResume
}

// dopriResume is the rest of dopri45's state at an accepted step: the
// derivative there (FSAL), the step size to try next and the evaluations
// made so far.
type dopriResume struct {
	dy  Vec
	h   float64
	nfe int
}

// dopri45 integrates dy/du = f from u0 to u1 (either direction) with the
// Dormand–Prince 5(4) pair and the step-size control of Hairer, Nørsett &
// Wanner, "Solving Ordinary Differential Equations I", section II.4 (as in
// scipy's RK45, which the score_sde code calls): error scale
// atol + rtol·max(|y|, |y_new|), step factor 0.9·err^(-1/5) within [0.2, 10]
// (no growth right after a rejection), and the initial step of section II.4
// ("Starting step size"). Its vectors live in sp (y0 is taken over). It
// returns y(u1), the derivative there and the number of f evaluations.
func dopri45(sp Space, f odeFunc, u0, u1 float64, y0 Vec, o dopriOptions) (Vec, Vec, int, error) {
	y := y0
	dir := 1.0
	if u1 < u0 {
		dir = -1
	}
	span := math.Abs(u1 - u0)
	nfe := 0
	eval := func(u float64, y, dy Vec) error {
		if o.maxNFE > 0 && nfe >= o.maxNFE {
			return fmt.Errorf("sampler: RK45 needed more than %d evaluations (loosen rtol/atol)", o.maxNFE)
		}
		nfe++
		return f(u, y, dy)
	}
	var k [7]Vec
	for i := range k {
		k[i] = sp.New()
	}
	yn, tmp := sp.New(), sp.New()
	defer func() {
		for _, v := range append(k[1:], tmp) {
			sp.Free(v)
		}
	}()
	var h float64
	if c := o.resume; c != nil {
		sp.Lincomb(k[0], T(1, c.dy))
		h, nfe = c.h, c.nfe
	} else {
		if err := eval(u0, y, k[0]); err != nil {
			return nil, nil, nfe, err
		}
		if span == 0 {
			return y, k[0], nfe, nil
		}
		var err error
		if h, err = dopriStart(sp, eval, u0, dir, span, y, k, tmp, o); err != nil {
			return nil, nil, nfe, err
		}
	}

	u := u0
	rejected := false
	terms := make([]Term, 0, 8)
	for dir*(u1-u) > 0 {
		minStep := 10 * math.Abs(math.Nextafter(u, u+dir)-u)
		if h < minStep {
			return nil, nil, nfe, errors.New("sampler: RK45 step size underflow")
		}
		un := u + dir*h
		if dir*(un-u1) > 0 {
			un = u1
		}
		hs := un - u // signed
		for s := 1; s < 7; s++ {
			// stage s at y + hs·Σ_j a_sj·k_j (stage 6 is the new point)
			out := tmp
			if s == 6 {
				out = yn
			}
			terms = append(terms[:0], T(1, y))
			for j := 0; j < s; j++ {
				if dpA[s][j] != 0 {
					terms = append(terms, T(hs*dpA[s][j], k[j]))
				}
			}
			sp.Lincomb(out, terms...)
			if err := eval(u+dpC[s]*hs, out, k[s]); err != nil {
				return nil, nil, nfe, err
			}
		}
		// the error estimate hs·Σ_j e_j·k_j
		terms = terms[:0]
		for j := 0; j < 7; j++ {
			if dpE[j] != 0 {
				terms = append(terms, T(hs*dpE[j], k[j]))
			}
		}
		sp.Lincomb(tmp, terms...)
		errNorm := o.norm(tmp, y, yn)
		if errNorm <= 1 {
			factor := float64(rk45MaxFactor)
			if errNorm > 0 {
				factor = math.Min(rk45MaxFactor, rk45Safety*math.Pow(errNorm, rk45Exponent))
			}
			if rejected {
				factor = math.Min(1, factor)
			}
			h = math.Abs(hs) * factor
			rejected = false
			u = un
			y, yn = yn, y
			k[0], k[6] = k[6], k[0]
			if o.accept != nil {
				if err := o.accept(u, y, k[0], h); err != nil {
					return nil, nil, nfe, err
				}
			}
		} else {
			h = math.Abs(hs) * math.Max(rk45MinFactor, rk45Safety*math.Pow(errNorm, rk45Exponent))
			rejected = true
		}
	}
	sp.Free(yn)
	return y, k[0], nfe, nil
}

// dopriStart is the initial step size for dopri45 at (u0, y) with the
// derivative k[0] there (Hairer et al. II.4, "Starting step size"; scipy's
// select_initial_step); its trial evaluation goes into k[1].
func dopriStart(sp Space, eval odeFunc, u0, dir, span float64, y Vec, k [7]Vec, tmp Vec, o dopriOptions) (float64, error) {
	d0 := o.norm(y, y, nil)
	d1 := o.norm(k[0], y, nil)
	h0 := rk45StartMinH
	if d0 >= rk45StartTiny && d1 >= rk45StartTiny {
		h0 = rk45StartFrac * d0 / d1
	}
	h0 = math.Min(h0, span)
	sp.Lincomb(tmp, T(1, y), T(dir*h0, k[0]))
	if err := eval(u0+dir*h0, tmp, k[1]); err != nil {
		return 0, err
	}
	sp.Lincomb(tmp, T(1, k[1]), T(-1, k[0]))
	d2 := o.norm(tmp, y, nil) / h0
	var h1 float64
	if d1 <= rk45StartZero && d2 <= rk45StartZero {
		h1 = math.Max(rk45StartMinH, h0*rk45StartShrink)
	} else {
		h1 = math.Pow(rk45StartFrac/math.Max(d1, d2), -rk45Exponent)
	}
	return math.Min(math.Min(rk45StartGrow*h0, h1), span), nil
}

// rmsMax is the error norm of a batch in sp: the largest per-sample RMS
// over its samples of n values (scipy takes one RMS over the whole batch;
// per-sample keeps a sample's accuracy from depending on its batch).
func rmsMax(sp Space, n int, atol, rtol float64) func(e, y, y2 Vec) float64 {
	return func(e, y, y2 Vec) float64 {
		m := 0.0
		for _, q := range sp.SumSq(e, ErrScale{Y: y, Y2: y2, ATol: atol, RTol: rtol}) {
			m = math.Max(m, math.Sqrt(q/float64(n)))
		}
		return m
	}
}

// pointAtLog is the point at noise level e^u (u = log σ/α).
func pointAtLog(s *schedule.Schedule, u float64) schedule.Point {
	l := math.Exp(u)
	return s.PointAtLevel(l, s.TimeAt(l))
}

// rk45Accepted, when set (tests), sees each accepted step's point and next
// step size, what a checkpoint needs beyond Step.
var rk45Accepted func(u, h float64)

// RK45 solves the probability-flow ODE (Song et al. 2021, eq. 13) with the
// adaptive Dormand–Prince 5(4) method and rtol/atol error control, as the
// score_sde code does with scipy's RK45, from the largest noise level down to
// that of the end time ε, then denoises once with Tweedie's formula (their
// "noise removal"; here free, since the last derivative gives D). The ODE is
// written in Karras et al.'s form with the log noise level as the variable:
// for x = x_t/α and u = log(σ/α), dx/du = x - D(x; e^u), which is the same
// trajectory as eq. 13 for every schedule and keeps the step sizes well
// scaled. The error norm is the largest per-sample RMS. Network
// evaluations: about 6 per accepted step plus 2.
func RK45(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 1)
	if err != nil {
		return nil, err
	}
	rtol, atol, err := rk45Tolerances(r.o.RTol, r.o.ATol)
	if err != nil {
		return nil, err
	}
	defer r.close()
	s := r.s
	u0, u1, sc := RK45Span(s)
	xt := r.load(sc, noise)
	if r.o.Resume == nil {
		r.checkpoint(scaled(sc, noise)) // Step 0, H 0: the start
	}
	r.total = -1
	f := func(u float64, y, dy Vec) error {
		p := pointAtLog(s, u)
		x0, err := r.evalTilde(p, y)
		if err != nil {
			return err
		}
		r.sp.Lincomb(dy, T(1, y), T(-1, x0))
		r.free(x0)
		return nil
	}
	x0 := r.sp.New()
	accept := func(u float64, y, dy Vec, h float64) error {
		if rk45Accepted != nil {
			rk45Accepted(u, h)
		}
		if r.o.Progress == nil && r.o.Checkpoint == nil {
			r.index++
			return r.ctx.Err()
		}
		p := pointAtLog(s, u)
		r.sp.Lincomb(x0, T(1, y), T(-1, dy))
		// X after index+1 accepted steps, its data prediction, the next step
		r.boundary(Checkpoint{Step: r.index + 1, NFE: r.nfe, U: u, H: h}, x0)
		r.last = u == u1 // the result's preview
		return r.report(p, p.Alpha, y, x0)
	}
	do := dopriOptions{rtol: rtol, atol: atol, maxNFE: rk45MaxNFE, norm: rmsMax(r.sp, r.n, atol, rtol), accept: accept}
	if c := r.o.Resume; c != nil && (c.Step != 0 || c.H != 0) {
		// An accepted step of an earlier run: X at log level U, its data
		// prediction (the FSAL derivative's complement) and the next step.
		if !(c.H > 0) || len(c.X) != len(noise) || len(c.History) < 1 || len(c.History[0]) != len(noise) {
			return nil, errors.New("sampler: an rk45 checkpoint needs X, its data prediction as History[0] and a step size H > 0")
		}
		r.sp.Load(xt, divided(c.X, pointAtLog(s, c.U).Alpha))
		h0 := r.load(1, c.History[0])
		dy := r.sp.New()
		r.sp.Lincomb(dy, T(1, xt), T(-1, h0))
		r.free(h0)
		u0 = c.U
		do.resume = &dopriResume{dy: dy, h: c.H, nfe: c.NFE}
		r.nfe, r.index = c.NFE, c.Step
	}
	y, dy, _, err := dopri45(r.sp, f, u0, u1, xt, do)
	if err != nil {
		return nil, err
	}
	r.sp.Lincomb(y, T(1, y), T(-1, dy)) // D(x; σ_min) = x - dx/du
	return r.result(y)
}
