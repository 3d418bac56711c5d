//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// updateKind is a family of GPU-resident sampler updates (an entry point of
// sampler.wgsl, Heun's two).
type updateKind int

const (
	kindDDIM updateKind = iota
	kindDDPM
	kindEuler // euler and euler_ancestral
	kindHeun
	kindDPM    // dpmpp_2m, dpmpp_3m, dpmpp_3m_diffusers
	kindEM     // em, and pc's predictor
	kindPC     // pc
	kindInvert // DDIM inversion (InvertDDIM)
	kindRK45   // rk45 (sample_rk45.go)
)

// invertName is the InterruptedError.Sampler of an interrupted InvertDDIM.
const invertName = "invert_ddim"

type residentSampler struct {
	kind      updateKind
	ancestral bool // euler_ancestral
	order     int  // DPM-Solver++
	halfD2    bool // dpmpp_3m_diffusers
}

// resident lists the samplers that Sample runs with the state on the GPU.
var resident = map[string]residentSampler{
	"ddim":               {kind: kindDDIM},
	"ddpm":               {kind: kindDDPM},
	"euler":              {kind: kindEuler},
	"euler_ancestral":    {kind: kindEuler, ancestral: true},
	"heun":               {kind: kindHeun},
	"dpmpp_2m":           {kind: kindDPM, order: 2},
	"dpmpp_3m":           {kind: kindDPM, order: 3},
	"dpmpp_3m_diffusers": {kind: kindDPM, order: 3, halfD2: true},
	"em":                 {kind: kindEM},
	"pc":                 {kind: kindPC},
	"rk45":               {kind: kindRK45},
}

// eulerType samplers keep x_t/α (see core/sampler).
func (r residentSampler) eulerType() bool { return r.kind == kindEuler || r.kind == kindHeun }

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

// InterruptedError is a GPU-resident run cut short by a fault (IsFault):
// the loss of the device, a WebGPU validation, out-of-memory or internal
// error, or a failed readback. Checkpoint is the last state read back
// before the fault (step 0, the starting noise, when none was): with it as
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

// Sample is the core/sampler sampler `name` (one that Supports lists; same
// options, grid, noise and result) with the sample kept on the GPU: each
// network evaluation writes only the time, the update's coefficients
// (computed in float64 by core/sampler's step functions) and, for
// stochastic steps, that step's noise (drawn on the host from core/rng as
// the CPU sampler draws it), then submits the network and the update
// kernel (sampler.wgsl) together. Guidance mixing, the prediction types,
// clipping, DPM-Solver++'s history and Heun's slope all stay on the GPU.
// m.Net is not used (the network is dn's model); m.Schedule, m.Shape and
// m.NullClass are.
//
// The state is float32 where the CPU sampler keeps float64, so results
// agree to float32 rounding, not bit for bit.
//
// Progress, when set, is called for every evaluation, in order, a few
// evaluations behind the submissions. X and X0 are read back only at the
// evaluations o.Preview picks (default: every DefaultPreviewEvery-th and the
// last) and are nil at the others; the copy to a staging buffer is part of
// that evaluation's submission and its map is awaited while later steps are
// already queued. Without Progress and Preview nothing is read back but the
// result. Two to eight steps are in flight (about 10 ms of work:
// sample_run.go's pacer), and each wait lets the JavaScript event loop run.
//
// rk45 is adaptive: its step control runs on the GPU too (sample_rk45.go,
// rk45.wgsl), in float32 where core/sampler's runs in float64, so its
// accepted steps agree with the CPU's to float32 rounding of the error
// norms (the same steps unless the network amplifies the rounding of its
// inputs; the result then still agrees within the tolerances). Progress
// is called at every accepted step, a batch of attempts late, with X and
// X0 at the accepted steps Preview picks (index, -1) and the last.
//
// On a fault (IsFault) the error is an *InterruptedError holding the last
// state read back before it (a checkpoint at each preview), from which the
// CPU backend can finish the run. Device loss is noticed at the next wait.
// WebGPU errors are caught by error scopes around the loop, popped after
// each step with previews, so a preview becomes the checkpoint only when
// nothing submitted up to it failed; the error is attributed to a kernel.
// Errors no scope caught (the device's uncapturederror event) end the run
// at the next step.
func (dn *Denoiser) Sample(ctx context.Context, name string, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	info, ok := sampler.Get(name)
	if !ok {
		return nil, fmt.Errorf("webgpu: unknown sampler %q", name)
	}
	return dn.runSpace(ctx, name, info.Func, m, noise, o)
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

// sampleResident is the GPU-resident sampler `name` (sampler.wgsl,
// rk45.wgsl), kept to measure Sample against (BenchmarkSampleDDIMPaths).
func (dn *Denoiser) sampleResident(ctx context.Context, name string, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	rs, ok := resident[name]
	if !ok {
		return nil, fmt.Errorf("webgpu: sampler %q does not run on the GPU (Supports)", name)
	}
	info, _ := sampler.Get(name)
	return dn.sample(ctx, name, info.DefaultSteps, rs, m, noise, o)
}

// InvertDDIM is core/sampler.InvertDDIM (data to unit noise along DDIM's
// deterministic steps, run backwards; same options, grid and result to
// float32 rounding) with the batch kept on the GPU, as Sample runs the
// samplers: each step is ddim_step from the cleaner grid point to the
// noisier one, and the first step, from σ = 0, evaluates the model at the
// noisier point with x̂0 = x. Progress, previews and device loss work as
// for Sample; an *InterruptedError's Finish runs core/sampler.InvertDDIM
// from the checkpoint (Step counts the inversion steps taken).
func (dn *Denoiser) InvertDDIM(ctx context.Context, m *sampler.Model, data []float64, o *sampler.Options) (*sampler.Result, error) {
	return dn.runSpace(ctx, invertName, sampler.InvertDDIM, m, data, o)
}

func (dn *Denoiser) sample(ctx context.Context, name string, defSteps int, rs residentSampler, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	if m == nil || m.Schedule == nil {
		return nil, errors.New("webgpu: Sample needs a schedule")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var opt sampler.Options
	if o != nil {
		opt = *o
	}
	if opt.Resume != nil {
		return nil, errors.New("webgpu: Sample does not resume checkpoints (use the CPU sampler)")
	}
	if opt.Steps == 0 {
		opt.Steps = defSteps
	}
	if opt.Steps < 0 {
		return nil, fmt.Errorf("sampler: steps must be positive, got %d", opt.Steps)
	}
	if len(m.Shape) != 3 {
		return nil, fmt.Errorf("webgpu: sample shape %v is not [C,H,W]", m.Shape)
	}
	per := tensor.Numel(m.Shape)
	if per == 0 || len(noise) == 0 || len(noise)%per != 0 {
		return nil, fmt.Errorf("sampler: %d input values are not a whole batch of shape %v", len(noise), m.Shape)
	}
	B := len(noise) / per
	s, err := m.Schedule.WithEndTime(opt.EndTime)
	if err != nil {
		return nil, err
	}
	var g schedule.Grid
	switch rs.kind {
	case kindDDIM, kindInvert:
		g, err = s.DDIMGrid(opt.Steps, opt.Sigmas)
	case kindDDPM, kindEM, kindPC: // EM and PC: core/sampler's sdeGrid
		g, err = s.DDPMGrid(opt.Steps, opt.Sigmas)
	case kindEuler, kindHeun:
		g, err = s.EulerGrid(opt.Steps, opt.Sigmas)
	case kindDPM:
		g, err = s.DPMGrid(opt.Steps, opt.Sigmas)
	case kindRK45:
		// adaptive: no grid
		if _, _, err = sampler.RK45Tolerances(opt.RTol, opt.ATol); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	pred := map[string]uint32{"epsilon": 0, "sample": 1, "v_prediction": 2, "score": 3}
	pt, ok := pred[s.Config.PredictionType]
	if !ok {
		return nil, fmt.Errorf("sampler: unsupported prediction_type %q", s.Config.PredictionType)
	}

	// Labels and guidance, as the CPU sampler resolves them.
	var cls []int
	switch len(opt.Class) {
	case 0:
		if m.NullClass >= 0 {
			cls = make([]int, B)
			for i := range cls {
				cls[i] = m.NullClass
			}
		}
	case 1, B:
		cls = make([]int, B)
		for i := range cls {
			cls[i] = opt.Class[i%len(opt.Class)]
		}
	default:
		return nil, fmt.Errorf("sampler: %d class labels for a batch of %d", len(opt.Class), B)
	}
	guided := false
	if w := opt.Guidance; w != 0 && w != 1 {
		if len(opt.Class) == 0 {
			return nil, errors.New("sampler: guidance needs class labels")
		}
		if m.NullClass < 0 {
			return nil, errors.New("sampler: guidance needs the model's null class (metadata " + model.KeyNullClass + ")")
		}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("sampler: bad guidance scale %v", w)
		}
		guided = true
	}
	copies := 1
	if guided {
		copies = 2
	}
	chunk, err := dn.chunk(m.Shape[1], m.Shape[2], copies*B)
	if err != nil {
		return nil, err
	}
	// The sampler's state buffer holds stateRegions values per sample value.
	lim := dn.dev.limits
	regions := stateRegions
	if rs.kind == kindRK45 {
		regions = rkRegions + 2*rkSlots
	}
	if c := int(min(lim.MaxStorageBufferBindingSize, lim.MaxBufferSize) / uint64(4*regions*per)); c*copies < chunk {
		chunk = max(c, 1) * copies
	}
	if chunk < copies {
		return nil, &LimitError{What: "a guided sample", Limit: "maxStorageBufferBindingSize", Need: 2, Have: uint64(chunk)}
	}
	chunk /= copies
	j := &sampleJob{dn: dn, name: name, rs: rs, m: m, s: s, g: g, o: &opt, pred: pt, guided: guided,
		cls: cls, per: per, B: B, noise: noise}
	j.snr, j.nc = sampler.PCSettings(opt.SNR, opt.CorrectorSteps)
	j.total = j.evalsBefore(len(g.Steps))
	if rs.kind == kindRK45 {
		j.total = -1
	}
	if opt.Progress != nil || opt.Preview != nil {
		j.preview = opt.Preview
		if j.preview == nil {
			j.preview = func(i, total int) bool { return i%DefaultPreviewEvery == DefaultPreviewEvery-1 || i == total-1 }
		}
	}
	for b0 := 0; b0 < B; b0 += chunk {
		j.chunks = append(j.chunks, &sampleChunk{b0: b0, b: min(chunk, B-b0)})
	}
	if rs.kind == kindRK45 {
		return j.runRK45(ctx)
	}
	return j.run(ctx)
}
