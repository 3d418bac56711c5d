//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall/js"
	"time"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/engine"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/simd"
	"github.com/diffuse-web/diffuse/wasm/webgpu"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// choice is what the page is told about the backend picked for a model.
type choice struct {
	Name      string  `json:"name"`      // "webgpu" or "cpu"
	Requested string  `json:"requested"` // "auto", "webgpu" or "cpu"
	Reason    string  `json:"reason"`    // one line: why this one
	Detail    string  `json:"detail"`    // the implementation, e.g. "WebAssembly SIMD"
	CPUms     float64 `json:"cpuMs,omitempty"`
	GPUms     float64 `json:"gpuMs,omitempty"`
}

// backendUserError is a backend request the page can explain to the user
// ("WebGPU is not available here").
type backendUserError struct{ msg string }

func (e *backendUserError) Error() string { return e.msg }

func isBackendUserError(err error) bool {
	var b *backendUserError
	return errors.As(err, &b)
}

// backend is one model's denoiser on the chosen backend. Its calls are
// serialised, so several jobs on one model (several embeds on a page) take
// turns step by step instead of racing on one backend's buffers.
type backend struct {
	choice choice
	net    model.Denoiser

	l       *engine.Loaded
	mu      sync.Mutex
	inner   model.Denoiser
	name    string
	release func()
	// callCtx is the context of the job whose call runs now (b.mu held),
	// lastYield when a call last let the event loop run (check).
	callCtx   context.Context
	lastYield time.Time
}

func (b *backend) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	return b.denoise(context.Background(), x, t, class)
}

// jobNet is a job's view of its model's backend: calls carry the job's
// context, so the CPU backend stops a cancelled job inside a network call
// (check). Sample and Supports are the backend's.
type jobNet struct {
	*backend
	ctx context.Context
}

func (j jobNet) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	return j.backend.denoise(j.ctx, x, t, class)
}

// check runs between the SIMD plan's steps (simd.Denoiser.SetCheck), b.mu
// held by the call: at most every 100 ms it lets the worker's event loop
// run (a cancel message, other jobs' frames), then ends the call if its
// job was cancelled meanwhile. Without it a cancel waits for the end of a
// call, minutes at 256×256.
func (b *backend) check() error {
	if time.Since(b.lastYield) < 100*time.Millisecond {
		return nil
	}
	yield()
	b.lastYield = time.Now()
	if b.callCtx != nil {
		return b.callCtx.Err()
	}
	return nil
}

// hook installs check on a SIMD denoiser.
func (b *backend) hook() {
	if d, ok := b.inner.(*simd.Denoiser); ok {
		d.SetCheck(b.check)
	}
}

func (b *backend) denoise(ctx context.Context, x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.callCtx, b.lastYield = ctx, time.Now()
	defer func() { b.callCtx = nil }()
	y, err := b.inner.Denoise(x, t, class)
	if err != nil && b.name == "webgpu" && webgpu.IsFault(err) {
		// The GPU went away (driver reset, tab in the background on some
		// systems) or reported an error (validation, out of memory,
		// internal): finish on the CPU, redoing this step.
		b.toCPU(err)
		return b.inner.Denoise(x, t, class)
	}
	return y, err
}

// toCPU switches the backend from WebGPU to the CPU for good after the
// fault err (webgpu.IsFault), which goes to the console: the page sees
// only that frames and results now say "cpu". b.mu is held.
func (b *backend) toCPU(err error) {
	fmt.Fprintf(os.Stderr, "diffuse: WebGPU failed, going on on the CPU: %v\n", err)
	b.release()
	b.inner, _ = cpuDenoiser(b.l)
	b.name, b.release = "cpu", func() {}
	b.hook()
}

// Supports reports whether the backend runs the sampler `name` whole on the
// GPU (engine.ResidentSampler): on WebGPU, every core/sampler sampler.
func (b *backend) Supports(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	dn, ok := b.inner.(*webgpu.Denoiser)
	return ok && b.name == "webgpu" && dn.Supports(name)
}

// Sample runs a sampler whole with the sample kept on the GPU, previews
// read back as o.Preview asks (engine.ResidentSampler). The backend's lock
// is not held meanwhile (the progress callback asks for current()); the
// GPU program's own lock orders this run against other jobs' calls. If the
// device is lost or WebGPU reports an error mid-run (webgpu.IsFault: the
// run ends in an *webgpu.InterruptedError), the backend switches to the
// CPU, as Denoise does, and the run finishes there from the last
// checkpoint read back before the fault, with the same noise: the frames
// after that say "cpu".
func (b *backend) Sample(ctx context.Context, name string, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	b.mu.Lock()
	dn, ok := b.inner.(*webgpu.Denoiser)
	ok = ok && b.name == "webgpu"
	b.mu.Unlock()
	cm := *m
	cm.Net = b
	if !ok {
		return sampler.Run(ctx, name, &cm, noise, o)
	}
	res, err := dn.Sample(ctx, name, m, noise, o)
	var ce *gpu.CompileError
	if errors.As(err, &ce) {
		// The vector kernels did not compile here (before any step ran):
		// sample call by call instead.
		return sampler.Run(ctx, name, &cm, noise, o)
	}
	var ie *webgpu.InterruptedError
	if err == nil || !errors.As(err, &ie) {
		return res, err
	}
	b.mu.Lock()
	if b.inner == model.Denoiser(dn) {
		b.toCPU(err)
	}
	b.mu.Unlock()
	return ie.Finish(ctx, &cm, noise, o)
}

func (b *backend) current() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.name
}

func newBackend(l *engine.Loaded, c choice, net model.Denoiser, release func()) *backend {
	if release == nil {
		release = func() {}
	}
	b := &backend{l: l, choice: c, inner: net, name: c.Name, release: release}
	b.net = b
	b.hook()
	return b
}

// pickBackend is the one place that decides which backend runs a model:
// want is "auto", "webgpu" or "cpu". "auto" takes WebGPU when an adapter
// exists and a short calibration shows it faster than the CPU, else the CPU.
//
// The CPU backend is wasm/simd (core/cpu where WebAssembly SIMD is missing);
// the WebGPU backend is wasm/webgpu.
func pickBackend(ctx context.Context, want string, l *engine.Loaded) (*backend, error) {
	switch want {
	case "", "auto":
		cpuNet, cpuDetail := cpuDenoiser(l)
		// A software adapter (SwiftShader, say) is never faster than the CPU
		// path and its kernel compilation alone takes seconds: skip it. The
		// worker sets diffuseSoftwareGPU to the adapter's description.
		if sw := js.Global().Get("diffuseSoftwareGPU"); sw.Type() == js.TypeString {
			return newBackend(l, choice{Name: "cpu", Requested: "auto", Detail: cpuDetail,
				Reason: "the WebGPU adapter is a software renderer (" + sw.String() + ")"}, cpuNet, nil), nil
		}
		gpu, why := gpuDenoiser(ctx, l)
		if gpu == nil {
			return newBackend(l, choice{Name: "cpu", Requested: "auto", Reason: why, Detail: cpuDetail}, cpuNet, nil), nil
		}
		c := choice{Requested: "auto"}
		var err error
		if c.CPUms, err = calibrate(cpuNet, l, 1); err != nil {
			return nil, err
		}
		// The GPU's first call includes pipeline compilation; when even that
		// is far slower than the CPU (a software adapter, say) it is not
		// worth a second one.
		first, err := calibrate(gpu.net, l, 0)
		if err == nil {
			c.GPUms = first
			if first < max(1000, 20*c.CPUms) {
				c.GPUms, err = calibrate(gpu.net, l, 0)
			}
		}
		if err != nil {
			gpu.release()
			c.Name, c.Reason, c.Detail = "cpu", "WebGPU failed its calibration run: "+err.Error(), cpuDetail
			return newBackend(l, c, cpuNet, nil), nil
		}
		if c.GPUms < c.CPUms {
			c.Name, c.Detail = "webgpu", gpu.detail
			c.Reason = fmt.Sprintf("WebGPU was faster in calibration (%.0f ms vs %.0f ms per call on the CPU)", c.GPUms, c.CPUms)
			return newBackend(l, c, gpu.net, gpu.release), nil
		}
		gpu.release()
		c.Name, c.Detail = "cpu", cpuDetail
		c.Reason = fmt.Sprintf("the CPU was faster in calibration (%.0f ms vs %.0f ms per call on WebGPU)", c.CPUms, c.GPUms)
		return newBackend(l, c, cpuNet, nil), nil
	case "webgpu":
		gpu, why := gpuDenoiser(ctx, l)
		if gpu == nil {
			return nil, &backendUserError{"WebGPU backend unavailable: " + why}
		}
		return newBackend(l, choice{Name: "webgpu", Requested: "webgpu", Reason: "requested", Detail: gpu.detail}, gpu.net, gpu.release), nil
	case "cpu":
		net, detail := cpuDenoiser(l)
		return newBackend(l, choice{Name: "cpu", Requested: "cpu", Reason: "requested", Detail: detail}, net, nil), nil
	}
	return nil, &backendUserError{fmt.Sprintf("unknown backend %q (auto, webgpu or cpu)", want)}
}

// cpuDenoiser is the CPU backend: the SIMD128 kernels (wasm/simd) where the
// worker could attach them, else the plain-Go reference (core/cpu). detail
// says which.
func cpuDenoiser(l *engine.Loaded) (net model.Denoiser, detail string) {
	d, err := simd.NewDenoiser(l.Model)
	if err != nil {
		return cpu.NewDenoiser(l.Model), "plain Go (no WebAssembly SIMD: " + err.Error() + ")"
	}
	// The worker sets diffuseSimdThreads to the threads the glue gives large
	// GEMMs (1 where the page is not cross-origin isolated).
	if n := js.Global().Get("diffuseSimdThreads"); n.Type() == js.TypeNumber && n.Int() > 1 {
		return d, fmt.Sprintf("WebAssembly SIMD, %d threads", n.Int())
	}
	return d, "WebAssembly SIMD"
}

type gpuNet struct {
	net     model.Denoiser
	detail  string
	release func()
}

var (
	gpuMu  sync.Mutex
	gpuDev *webgpu.Device
)

// openGPU opens the worker's one WebGPU device, or reopens it after a loss.
func openGPU(ctx context.Context) (*webgpu.Device, error) {
	gpuMu.Lock()
	defer gpuMu.Unlock()
	if gpuDev != nil {
		select {
		case <-gpuDev.Lost():
			gpuDev = nil
		default:
			return gpuDev, nil
		}
	}
	d, err := webgpu.Open(ctx)
	if err != nil {
		return nil, err
	}
	gpuDev = d
	return d, nil
}

// gpuDenoiser opens WebGPU and builds the model on it (which compiles its
// kernels for one sample), or says why not.
func gpuDenoiser(ctx context.Context, l *engine.Loaded) (*gpuNet, string) {
	d, err := openGPU(ctx)
	if err != nil {
		if errors.Is(err, webgpu.ErrNoWebGPU) {
			return nil, "this browser offers no WebGPU adapter"
		}
		return nil, "WebGPU did not start: " + err.Error()
	}
	dn, err := d.NewDenoiser(l.Model)
	if err != nil {
		var le *webgpu.LimitError
		if errors.As(err, &le) {
			return nil, "the model does not fit this GPU's limits: " + err.Error()
		}
		return nil, "the model could not be built on WebGPU: " + err.Error()
	}
	return &gpuNet{net: dn, detail: dn.WeightFormat() + " weights", release: dn.Release}, ""
}

// calibrate times one denoiser call on a batch of one at a mid-schedule
// time, after `warm` untimed calls (pipeline compilation, first-use
// allocation), and returns milliseconds.
func calibrate(net model.Denoiser, l *engine.Loaded, warm int) (float64, error) {
	shape := append([]int{1}, l.Info.Shape...)
	x := tensor.New(shape...)
	for i := range x.Data {
		x.Data[i] = float32(i%7)/7 - 0.5
	}
	t := []float32{l.Schedule.NetTime(l.Schedule.PointAt(l.Schedule.StartTime() / 2))}
	var class []int
	if l.Info.Conditional {
		class = []int{0}
	}
	var ms float64
	for i := 0; i < warm+1; i++ {
		start := now()
		if _, err := net.Denoise(x, t, class); err != nil {
			return 0, err
		}
		ms = now() - start
		yield()
	}
	return ms, nil
}

// epoch anchors now: durations from time.Since read Go's monotonic clock,
// which under js/wasm is performance.now(); the wall clock (time.Now's
// UnixNano) is Date.now(), in whole milliseconds, too coarse to calibrate.
var epoch = time.Now()

// now is milliseconds on the monotonic clock (performance.now() in a browser).
func now() float64 { return float64(time.Since(epoch).Nanoseconds()) / 1e6 }
