//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"

	"github.com/diffuse-web/diffuse/core/sampler"
)

// invertName is the InterruptedError.Sampler of an interrupted InvertDDIM.
const invertName = "invert_ddim"

// SupportsSampler reports whether Sample runs the core/sampler sampler
// `name` on the GPU: every one in the registry does.
func SupportsSampler(name string) bool {
	_, ok := sampler.Get(name)
	return ok
}

// Supports is SupportsSampler.
func (dn *Denoiser) Supports(name string) bool { return SupportsSampler(name) }

// DefaultPreviewEvery is how often (in network evaluations) Sample reads X
// and X0 back for Progress when Options.Preview is nil: every
// DefaultPreviewEvery-th evaluation and the last.
const DefaultPreviewEvery = sampler.DefaultPreviewEvery

// InterruptedError is a GPU run cut short by a fault (IsFault): the loss
// of the device, a WebGPU validation, out-of-memory or internal error, or
// a failed readback. Checkpoint is the last state read back before the
// fault (Options.Checkpoint: the start, or a step boundary a preview read
// back, once the error scopes before it were clean): with it as
// sampler.Options.Resume, the same sampler on another backend finishes the
// run with the same noise (Finish does that). Err is the fault:
// errors.Is(err, ErrDeviceLost) holds after a loss, errors.As(err, **Error)
// after a WebGPU error.
type InterruptedError struct {
	Sampler    string
	Err        error
	Checkpoint *sampler.Checkpoint
}

func (e *InterruptedError) Error() string {
	if e.Checkpoint.H > 0 {
		return fmt.Sprintf("%s interrupted after %d accepted steps: %v", e.Sampler, e.Checkpoint.Step, e.Err)
	}
	return fmt.Sprintf("%s interrupted before grid step %d: %v", e.Sampler, e.Checkpoint.Step, e.Err)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// Finish completes the interrupted run with m (whose Net is another
// backend's denoiser) from the checkpoint; noise and o are the interrupted
// call's. Progress repeats the evaluations after the checkpoint.
func (e *InterruptedError) Finish(ctx context.Context, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	var opt sampler.Options
	if o != nil {
		opt = *o
	}
	if e.Checkpoint.X != nil { // else the start: run it again
		opt.Resume = e.Checkpoint
	}
	if e.Sampler == invertName {
		return sampler.InvertDDIM(ctx, m, noise, &opt)
	}
	return sampler.Run(ctx, e.Sampler, m, noise, &opt)
}

// SampleDDIM is Sample(ctx, "ddim", m, noise, o).
func (dn *Denoiser) SampleDDIM(ctx context.Context, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	return dn.Sample(ctx, "ddim", m, noise, o)
}

// Sample runs the core/sampler sampler `name` (any in the registry: the
// same function, options, grid, noise and result) with its vectors on the
// GPU (WithSpace, space.go): each network evaluation is the network
// program between two copies plus a few generic vector kernels
// (vec.wgsl) with coefficients computed in float64 on the host; the noise
// is drawn on the host from core/rng as on the CPU. m.Net is not used
// (the network is dn's model); m.Schedule, m.Shape and m.NullClass are.
//
// The vectors are float32 where the host's are float64, so results agree
// to float32 rounding, not bit for bit (rk45's float32 error norms may
// pick other steps when the network amplifies the rounding).
//
// Progress, when set, is called for every evaluation (every accepted step
// for rk45), in order. X and X0 are read back only at the evaluations
// o.Preview picks (default: every DefaultPreviewEvery-th and the last) and
// are nil at the others. Without Progress, Preview and Checkpoint nothing
// is read back but the result (and rk45's error norms, B floats per
// attempt, and pc's score norms).
//
// On a fault (IsFault) the error is an *InterruptedError holding the last
// checkpoint read back before it, from which the CPU backend can finish
// the run. Device loss and errors no scope caught (the device's
// uncapturederror event) are noticed at the next network evaluation;
// WebGPU errors in scopes at the next readback.
func (dn *Denoiser) Sample(ctx context.Context, name string, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	info, ok := sampler.Get(name)
	if !ok {
		return nil, fmt.Errorf("webgpu: unknown sampler %q", name)
	}
	return dn.runSpace(ctx, name, info.Func, m, noise, o)
}

// InvertDDIM is core/sampler.InvertDDIM (data to unit noise along DDIM's
// deterministic steps, run backwards) with its vectors on the GPU, as
// Sample runs the samplers; an *InterruptedError's Finish runs
// core/sampler.InvertDDIM from the checkpoint.
func (dn *Denoiser) InvertDDIM(ctx context.Context, m *sampler.Model, data []float64, o *sampler.Options) (*sampler.Result, error) {
	return dn.runSpace(ctx, invertName, sampler.InvertDDIM, m, data, o)
}

// runSpace runs the core/sampler function f with its vectors on the GPU
// (WithSpace). Options.Checkpoint collects the state at the step
// boundaries the previews read back; on a fault (IsFault) the error is an
// *InterruptedError with the last of them (the start when none was).
func (dn *Denoiser) runSpace(ctx context.Context, name string, f sampler.Func, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	if m == nil || m.Schedule == nil {
		return nil, errors.New("webgpu: Sample needs a schedule")
	}
	var opt sampler.Options
	if o != nil {
		opt = *o
	}
	if opt.Resume != nil {
		return nil, errors.New("webgpu: Sample does not resume checkpoints (use the CPU sampler)")
	}
	ck := &sampler.Checkpoint{}
	user := opt.Checkpoint
	opt.Checkpoint = func(c *sampler.Checkpoint) {
		ck = c
		if user != nil {
			user(c)
		}
	}
	cm := *m
	cm.Net = dn.WithSpace()
	res, err := f(ctx, &cm, noise, &opt)
	if err != nil && IsFault(err) {
		var ie *InterruptedError
		if !errors.As(err, &ie) {
			err = &InterruptedError{Sampler: name, Err: err, Checkpoint: ck}
		}
		return nil, err
	}
	return res, err
}
