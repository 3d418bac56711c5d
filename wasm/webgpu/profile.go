//go:build js && wasm

package webgpu

import (
	"context"
	"sort"
	"time"
)

// StepTime is what one kernel dispatch costs.
type StepTime struct {
	Kernel string
	Time   time.Duration
}

// Profile measures each step on its own: the step dispatched reps+1 times
// in one pass minus dispatched once, over reps (median of 5 tries each), so
// the cost includes the dispatch and the barrier after it but not the
// submission and the wait. Inputs are as last written. It is for finding
// the slow kernels; the sum is close to a GPU-resident call's time.
func (p *Program) Profile(ctx context.Context, reps int) ([]StepTime, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	gd := p.dev.gpu
	run := func(s step, n int) (time.Duration, error) {
		ts := make([]time.Duration, 5)
		for i := range ts {
			t0 := time.Now()
			e := gd.NewEncoder(s.what)
			for r := 0; r < n; r++ {
				e.Dispatch(s.pipe, s.bg, s.grid[0], s.grid[1], s.grid[2])
			}
			e.Submit()
			if err := gd.WorkDone(ctx); err != nil {
				return 0, err
			}
			ts[i] = time.Since(t0)
		}
		sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
		return ts[len(ts)/2], nil
	}
	out := make([]StepTime, 0, len(p.steps))
	for _, s := range p.steps {
		many, err := run(s, reps+1)
		if err != nil {
			return out, err
		}
		one, err := run(s, 1)
		if err != nil {
			return out, err
		}
		out = append(out, StepTime{Kernel: s.what, Time: (many - one) / time.Duration(max(reps, 1))})
	}
	return out, nil
}
