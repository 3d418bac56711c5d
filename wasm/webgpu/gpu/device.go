//go:build js && wasm

package gpu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall/js"
)

// ErrNoWebGPU means the JavaScript host has no navigator.gpu, or it offered
// no adapter: the caller should use a CPU backend.
var ErrNoWebGPU = errors.New("webgpu: not available (no navigator.gpu or no adapter)")

// ErrDeviceLost is matched (errors.Is) by every error caused by a lost or
// destroyed device, so a caller can fall back to the CPU and redo the step.
var ErrDeviceLost = errors.New("webgpu: device lost")

// DeviceLostError says why the device went away (GPUDeviceLostInfo).
type DeviceLostError struct {
	Reason  string // "destroyed" or "unknown"
	Message string
}

func (e *DeviceLostError) Error() string {
	return fmt.Sprintf("webgpu: device lost (%s): %s", e.Reason, e.Message)
}

// Is makes errors.Is(err, ErrDeviceLost) true.
func (e *DeviceLostError) Is(target error) bool { return target == ErrDeviceLost }

// ErrorKind is the class of a GPUError caught by an error scope.
type ErrorKind string

const (
	Validation  ErrorKind = "validation"
	OutOfMemory ErrorKind = "out-of-memory"
	Internal    ErrorKind = "internal"
)

// Error is a WebGPU error caught by an error scope, with what we were doing.
type Error struct {
	Kind    ErrorKind
	What    string // the kernel or object being created or run
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("webgpu: %s error in %s: %s", e.Kind, e.What, strings.TrimSpace(e.Message))
}

// IsFault reports whether err is a failure of the GPU rather than of the
// request: a lost device (ErrDeviceLost), a WebGPU error caught by an
// error scope or reported as uncaptured (*Error), or a WebGPU call or
// promise that threw or was rejected (*JSError: a failed mapAsync, say).
// Work that met a fault may have computed garbage; a caller should redo
// it elsewhere (the CPU) rather than use or retry it.
func IsFault(err error) bool {
	var e *Error
	var je *JSError
	return errors.Is(err, ErrDeviceLost) || errors.As(err, &e) || errors.As(err, &je)
}

// Limits are the adapter or device limits this project reads (GPUSupportedLimits).
type Limits struct {
	MaxStorageBufferBindingSize       uint64
	MaxBufferSize                     uint64
	MaxComputeWorkgroupStorageSize    uint64
	MaxStorageBuffersPerShaderStage   uint64
	MaxComputeInvocationsPerWorkgroup uint64
	MaxComputeWorkgroupsPerDimension  uint64
	MaxUniformBufferBindingSize       uint64
	MinUniformBufferOffsetAlignment   uint64
	MinStorageBufferOffsetAlignment   uint64
	MaxBindGroups                     uint64
}

func readLimits(v js.Value) Limits {
	u := func(name string) uint64 {
		f := v.Get(name)
		if f.Type() != js.TypeNumber {
			return 0
		}
		return uint64(f.Float())
	}
	return Limits{
		MaxStorageBufferBindingSize:       u("maxStorageBufferBindingSize"),
		MaxBufferSize:                     u("maxBufferSize"),
		MaxComputeWorkgroupStorageSize:    u("maxComputeWorkgroupStorageSize"),
		MaxStorageBuffersPerShaderStage:   u("maxStorageBuffersPerShaderStage"),
		MaxComputeInvocationsPerWorkgroup: u("maxComputeInvocationsPerWorkgroup"),
		MaxComputeWorkgroupsPerDimension:  u("maxComputeWorkgroupsPerDimension"),
		MaxUniformBufferBindingSize:       u("maxUniformBufferBindingSize"),
		MinUniformBufferOffsetAlignment:   u("minUniformBufferOffsetAlignment"),
		MinStorageBufferOffsetAlignment:   u("minStorageBufferOffsetAlignment"),
		MaxBindGroups:                     u("maxBindGroups"),
	}
}

// featureSet reads a GPUSupportedFeatures set (iterable, so Array.from works
// where an implementation lacks forEach).
func featureSet(v js.Value) map[string]bool {
	m := map[string]bool{}
	if v.Type() != js.TypeObject {
		return m
	}
	arr := js.Global().Get("Array").Call("from", v)
	for i := 0; i < arr.Length(); i++ {
		m[arr.Index(i).String()] = true
	}
	return m
}

// Adapter is a GPUAdapter.
type Adapter struct {
	v        js.Value
	Limits   Limits
	Features map[string]bool
	// Info is the adapter's vendor, architecture, device and description
	// (GPUAdapterInfo), joined by spaces; empty where the browser hides it.
	Info string
	// Software is true for a CPU implementation of WebGPU (SwiftShader,
	// llvmpipe/lavapipe, or an adapter that says it is a fallback).
	Software bool
}

// RequestAdapter asks navigator.gpu for a high-performance adapter.
func RequestAdapter(ctx context.Context) (*Adapter, error) {
	nav := js.Global().Get("navigator")
	if nav.Type() != js.TypeObject {
		return nil, ErrNoWebGPU
	}
	g := nav.Get("gpu")
	if g.Type() != js.TypeObject {
		return nil, ErrNoWebGPU
	}
	p, err := call(g, "requestAdapter", obj(map[string]any{"powerPreference": "high-performance"}))
	if err != nil {
		return nil, err
	}
	a, err := await(ctx, p, nil, nil)
	if err != nil {
		return nil, err
	}
	if a.IsNull() || a.IsUndefined() {
		return nil, ErrNoWebGPU
	}
	ad := &Adapter{v: a, Limits: readLimits(a.Get("limits")), Features: featureSet(a.Get("features"))}
	if info := a.Get("info"); info.Type() == js.TypeObject {
		var parts []string
		for _, k := range []string{"vendor", "architecture", "device", "description"} {
			if v := info.Get(k); v.Type() == js.TypeString && v.String() != "" {
				parts = append(parts, v.String())
			}
		}
		ad.Info = strings.Join(parts, " ")
	}
	low := strings.ToLower(ad.Info)
	ad.Software = a.Get("isFallbackAdapter").Truthy() || strings.Contains(low, "swiftshader") ||
		strings.Contains(low, "llvmpipe") || strings.Contains(low, "lavapipe")
	return ad, nil
}

// Device is a GPUDevice and its queue.
type Device struct {
	v, queue js.Value
	Limits   Limits
	Features map[string]bool

	lost     chan struct{}
	lostOnce sync.Once
	lostErr  *DeviceLostError

	uncMu      sync.Mutex
	uncaptured []*Error // reported and not yet taken (TakeUncaptured)
	uncCount   int      // reported in all
}

// RequestDevice creates a device with the given limits (by their WebGPU
// names) and features; each must be within what the adapter offers.
func (a *Adapter) RequestDevice(ctx context.Context, label string, limits map[string]uint64, features []string) (*Device, error) {
	lim := map[string]any{}
	for k, v := range limits {
		lim[k] = float64(v)
	}
	fs := make([]any, len(features))
	for i, f := range features {
		fs[i] = f
	}
	p, err := call(a.v, "requestDevice", obj(map[string]any{
		"label": label, "requiredLimits": lim, "requiredFeatures": fs,
	}))
	if err != nil {
		return nil, err
	}
	dv, err := await(ctx, p, nil, nil)
	if err != nil {
		return nil, err
	}
	d := &Device{v: dv, queue: dv.Get("queue"), Limits: readLimits(dv.Get("limits")),
		Features: featureSet(dv.Get("features")), lost: make(chan struct{})}
	var onLost js.Func
	onLost = js.FuncOf(func(_ js.Value, args []js.Value) any {
		e := &DeviceLostError{Reason: "unknown"}
		if len(args) > 0 && args[0].Type() == js.TypeObject {
			if r := args[0].Get("reason"); r.Type() == js.TypeString {
				e.Reason = r.String()
			}
			if m := args[0].Get("message"); m.Type() == js.TypeString {
				e.Message = m.String()
			}
		}
		d.markLost(e)
		onLost.Release()
		return nil
	})
	dv.Get("lost").Call("then", onLost)
	d.listenUncaptured()
	return d, nil
}

// listenUncaptured records the device's "uncapturederror" events: WebGPU
// errors raised where no error scope was open, which would otherwise only
// reach the console. The listener stays for the device's life.
func (d *Device) listenUncaptured() {
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		// A panic in a JavaScript callback would end the Go program.
		defer func() { recover() }()
		e := &Error{Kind: Internal, What: "uncaptured", Message: "an uncaptured WebGPU error"}
		if len(args) > 0 && args[0].Type() == js.TypeObject {
			if v := args[0].Get("error"); v.Type() == js.TypeObject {
				e = scopeError(v, "uncaptured")
			}
		}
		d.uncMu.Lock()
		d.uncaptured = append(d.uncaptured, e)
		d.uncCount++
		d.uncMu.Unlock()
		return nil
	})
	if d.v.Get("addEventListener").Type() == js.TypeFunction {
		if _, err := call(d.v, "addEventListener", "uncapturederror", fn); err == nil {
			return
		}
	}
	d.v.Set("onuncapturederror", fn)
}

// TakeUncaptured returns the uncaptured errors reported since the last
// call (nil if none) as one *Error (the first, with a count of the others)
// and forgets them. Runs call it as they go, so an error no scope caught
// fails the run in progress, or the next one, instead of going unnoticed.
func (d *Device) TakeUncaptured() error {
	d.uncMu.Lock()
	defer d.uncMu.Unlock()
	if len(d.uncaptured) == 0 {
		return nil
	}
	e := *d.uncaptured[0]
	if n := len(d.uncaptured) - 1; n > 0 {
		e.Message = fmt.Sprintf("%s (and %d more)", strings.TrimSpace(e.Message), n)
	}
	d.uncaptured = nil
	return &e
}

// UncapturedCount is the number of uncaptured errors the device has
// reported in all, taken or not.
func (d *Device) UncapturedCount() int {
	d.uncMu.Lock()
	defer d.uncMu.Unlock()
	return d.uncCount
}

func (d *Device) markLost(e *DeviceLostError) {
	d.lostOnce.Do(func() {
		d.lostErr = e
		close(d.lost)
	})
}

// Lost is closed when the device is lost.
func (d *Device) Lost() <-chan struct{} { return d.lost }

// LostErr returns the *DeviceLostError once the device is lost, else nil.
func (d *Device) LostErr() error {
	select {
	case <-d.lost:
		return d.lostErr
	default:
		return nil
	}
}

func (d *Device) lostError() error {
	if err := d.LostErr(); err != nil {
		return err
	}
	return &DeviceLostError{Reason: "unknown"}
}

// Await waits for a promise, failing with a DeviceLostError if the device is
// lost first.
func (d *Device) Await(ctx context.Context, p js.Value) (js.Value, error) {
	return await(ctx, p, d.lost, d.lostError)
}

// Destroy destroys the device (its lost promise then resolves with reason
// "destroyed"). Tests use it to simulate a loss.
func (d *Device) Destroy() { d.v.Call("destroy") }

// PushErrorScope opens an error scope for the given kind of error.
func (d *Device) PushErrorScope(k ErrorKind) { d.v.Call("pushErrorScope", string(k)) }

// PopErrorScope closes the innermost scope and returns the error it caught
// (an *Error naming what), nil if none, or a DeviceLostError.
func (d *Device) PopErrorScope(ctx context.Context, what string) error {
	if err := d.LostErr(); err != nil {
		return err
	}
	p, err := call(d.v, "popErrorScope")
	if err != nil {
		return err
	}
	v, err := d.Await(ctx, p)
	if err != nil {
		return err
	}
	if v.IsNull() || v.IsUndefined() {
		return nil
	}
	return scopeError(v, what)
}

// Scoped runs f inside validation, out-of-memory and internal error scopes
// and returns the first error caught, attributed to what.
func (d *Device) Scoped(ctx context.Context, what string, f func()) error {
	return d.StartScoped(what, f).Wait(ctx)
}

// StartScoped is Scoped without the wait: the three scopes are popped at
// once and their promises settle together, so a caller can start its
// readback before waiting for them (one trip through the event loop, not four).
func (d *Device) StartScoped(what string, f func()) *PendingScopes {
	d.PushScopes()
	f()
	return d.PopScopes(what)
}

// PushScopes opens internal, out-of-memory and validation error scopes.
func (d *Device) PushScopes() {
	d.PushErrorScope(Internal)
	d.PushErrorScope(OutOfMemory)
	d.PushErrorScope(Validation)
}

// PopScopes pops the three scopes of PushScopes without waiting.
func (d *Device) PopScopes(what string) *PendingScopes {
	ps := &PendingScopes{d: d, what: what}
	for i := 0; i < 3; i++ {
		p, err := call(d.v, "popErrorScope")
		if err != nil {
			if ps.err == nil {
				ps.err = err
			}
			continue
		}
		ps.ps = append(ps.ps, start(p))
	}
	return ps
}

// PendingScopes are popped error scopes whose results are not yet known.
type PendingScopes struct {
	d    *Device
	what string
	ps   []*future
	err  error
}

// Wait returns the error the scopes caught (an *Error), nil, or a
// DeviceLostError. Where several kinds were caught, out-of-memory wins,
// then internal, then validation: a failed allocation leaves an invalid
// object behind, and every later use of it is a validation error.
func (p *PendingScopes) Wait(ctx context.Context) error {
	if p.err != nil {
		return p.err
	}
	rank := map[ErrorKind]int{OutOfMemory: 3, Internal: 2, Validation: 1}
	var worst *Error
	for _, pr := range p.ps {
		v, err := pr.wait(ctx, p.d.lost, p.d.lostError)
		if err != nil {
			return err
		}
		if !v.IsNull() && !v.IsUndefined() {
			if e := scopeError(v, p.what); worst == nil || rank[e.Kind] > rank[worst.Kind] {
				worst = e
			}
		}
	}
	if err := p.d.LostErr(); err != nil {
		return err
	}
	if worst == nil {
		return nil
	}
	return worst
}

func scopeError(v js.Value, what string) *Error {
	kind := Internal
	name := ""
	if c := v.Get("constructor"); c.Type() == js.TypeFunction || c.Type() == js.TypeObject {
		name = c.Get("name").String()
	}
	switch name {
	case "GPUValidationError":
		kind = Validation
	case "GPUOutOfMemoryError":
		kind = OutOfMemory
	}
	return &Error{Kind: kind, What: what, Message: v.Get("message").String()}
}
