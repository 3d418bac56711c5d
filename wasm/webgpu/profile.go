//go:build js && wasm

package webgpu

import (
	"context"
	"time"
)

// StepTime is the wall time of one kernel dispatch.
type StepTime struct {
	Kernel string
	Time   time.Duration
}

// Profile runs the program's steps one submission at a time, waiting for
// each, and returns their wall times (inputs as last written). It measures
// with submission overhead included, so it is for finding the slow kernels,
// not for throughput.
func (p *Program) Profile(ctx context.Context) ([]StepTime, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	gd := p.dev.gpu
	out := make([]StepTime, 0, len(p.steps))
	for _, s := range p.steps {
		t0 := time.Now()
		e := gd.NewEncoder(s.what)
		e.Dispatch(s.pipe, s.bg, s.grid[0], s.grid[1], s.grid[2])
		e.Submit()
		if err := gd.WorkDone(ctx); err != nil {
			return out, err
		}
		out = append(out, StepTime{Kernel: s.what, Time: time.Since(t0)})
	}
	return out, nil
}
