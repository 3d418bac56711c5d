package sampler

import (
	"context"
	"errors"

	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	register(Info{
		Name:         "flow_euler",
		Display:      "Flow matching Euler",
		Summary:      "Euler in t on the flow-matching ODE dx/dt = v (Lipman et al. 2023; diffusers' FlowMatchEulerDiscreteScheduler)",
		Order:        1,
		DefaultSteps: 28,
		Params:       append([]Param{pSteps(28), pSigmas, pShift}, pCFG...),
		Func:         FlowEuler,
		Resumable:    true,
		Requires:     RequiresFlow,
	})
	register(Info{
		Name:         "flow_heun",
		Display:      "Flow matching Heun",
		Summary:      "Heun's 2nd-order method in t on the flow-matching ODE (diffusers' FlowMatchHeunDiscreteScheduler)",
		Order:        2,
		DefaultSteps: 28,
		Params:       append([]Param{pSteps(28), pSigmas, pShift}, pCFG...),
		Func:         FlowHeun,
		Resumable:    true,
		Requires:     RequiresFlow,
	})
}

var errNotFlow = errors.New("sampler: flow_euler and flow_heun need a flow-matching schedule (sde \"flow\", e.g. a FlowMatchEulerDiscreteScheduler config)")

// velocity is the flow velocity v̂ = ε̂ - x̂0 at p on x (x_t form), with the
// x̂0 it comes from (the prediction converter's; with ClipDenoised, the
// clipped x̂0 and its ε̂). The caller frees both.
func (r *runner) velocity(p schedule.Point, x Vec) (v, x0 Vec, err error) {
	x0, eps, err := r.denoise(p, x)
	if err != nil {
		return nil, nil, err
	}
	r.sp.Lincomb(eps, T(1, eps), T(-1, x0))
	return eps, x0, nil
}

// flowStart builds the flow grid and the starting state (x_t form: the
// noise itself at t = 1).
func flowStart(r *runner, noise []float64, evalsBefore func(schedule.Grid, int) int) (schedule.Grid, int, Vec, error) {
	if r.s.Kind != schedule.Flow {
		return schedule.Grid{}, 0, nil, errNotFlow
	}
	g, err := r.s.FlowGrid(r.o.Steps, r.o.Sigmas)
	if err != nil {
		return g, 0, nil, err
	}
	i0, x, err := r.start(g, noise, func(i int) int { return evalsBefore(g, i) })
	return g, i0, x, err
}

// FlowEuler is Euler's method in the flow time t on the flow-matching ODE
// dx_t/dt = v(x_t, t), v = ε - x0 for x_t = (1-t)x0 + tε (Lipman et al.
// 2023, "Flow Matching for Generative Modeling", eq. 1 and 20; Liu et al.
// 2023, "Flow Straight and Fast", eq. 1): x_{t'} = x_t + (t'-t)·v̂, on the
// grid of diffusers' FlowMatchEulerDiscreteScheduler (schedule.FlowGrid,
// with its shift), whose step() this is. One network evaluation per step.
// (On a flow schedule this is also DDIM with η = 0 on the same grid: both
// are exact for a constant v̂.)
func FlowEuler(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 28)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, i0, x, err := flowStart(r, noise, func(_ schedule.Grid, i int) int { return i })
	if err != nil {
		return nil, err
	}
	r.total = len(g.Steps)
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		v, x0, err := r.velocity(st.From, x)
		if err != nil {
			return nil, err
		}
		r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
		if err := r.report(st.From, 1, x, x0); err != nil {
			return nil, err
		}
		r.sp.Lincomb(x, T(1, x), T(st.To.T-st.From.T, v))
		r.free(v, x0)
	}
	return r.result(x)
}

// FlowHeun is Heun's second-order method in t on the flow-matching ODE, as
// diffusers' FlowMatchHeunDiscreteScheduler (without churn): an Euler step
// x2 = x + dt·v̂(x, t), then x' = x + dt·(v̂(x, t) + v̂(x2, t'))/2; the
// step to t = 0 is a plain Euler step. 2·steps - 1 network evaluations
// (HeunEvals).
func FlowHeun(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error) {
	r, err := newRunnerResumable(ctx, m, noise, o, 28)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, i0, x, err := flowStart(r, noise, HeunEvals)
	if err != nil {
		return nil, err
	}
	r.total = HeunEvals(g, len(g.Steps))
	x2 := r.sp.New()
	for i := i0; i < len(g.Steps); i++ {
		st := g.Steps[i]
		v, x0, err := r.velocity(st.From, x)
		if err != nil {
			return nil, err
		}
		r.boundary(Checkpoint{Step: i, NFE: r.nfe - 1})
		if err := r.report(st.From, 1, x, x0); err != nil {
			return nil, err
		}
		r.free(x0)
		dt := st.To.T - st.From.T
		if st.To.Clean() {
			r.sp.Lincomb(x, T(1, x), T(dt, v))
			r.free(v)
			continue
		}
		r.sp.Lincomb(x2, T(1, x), T(dt, v))
		v2, x0b, err := r.velocity(st.To, x2)
		if err != nil {
			return nil, err
		}
		if err := r.report(st.To, 1, x2, x0b); err != nil {
			return nil, err
		}
		r.sp.Lincomb(x, T(1, x), T(dt/2, v), T(dt/2, v2))
		r.free(v, v2, x0b)
	}
	return r.result(x)
}
