//go:build js && wasm

package gpu

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall/js"
	"unsafe"
)

// BufferUsage is a GPUBufferUsage bit set.
type BufferUsage uint32

// GPUBufferUsage flags, from the WebGPU specification.
const (
	MapRead  BufferUsage = 0x0001
	MapWrite BufferUsage = 0x0002
	CopySrc  BufferUsage = 0x0004
	CopyDst  BufferUsage = 0x0008
	Uniform  BufferUsage = 0x0040
	Storage  BufferUsage = 0x0080
)

const (
	shaderStageCompute = 0x4
	mapModeRead        = 0x1
)

// Buffer is a GPUBuffer.
type Buffer struct {
	v     js.Value
	Size  uint64
	Label string
}

// CreateBuffer allocates a buffer. Errors (size over the limits, out of
// memory) surface through error scopes, as WebGPU reports them.
func (d *Device) CreateBuffer(label string, size uint64, usage BufferUsage) *Buffer {
	v := d.v.Call("createBuffer", obj(map[string]any{
		"label": label, "size": float64(size), "usage": int(usage),
	}))
	return &Buffer{v: v, Size: size, Label: label}
}

// Destroy frees the buffer's memory now rather than at garbage collection.
func (b *Buffer) Destroy() { b.v.Call("destroy") }

// bytesToJS copies Go bytes into a new Uint8Array.
func bytesToJS(p []byte) js.Value {
	u := js.Global().Get("Uint8Array").New(len(p))
	js.CopyBytesToJS(u, p)
	return u
}

// WriteBuffer queues a write of data (length a multiple of 4) at offset.
func (d *Device) WriteBuffer(b *Buffer, offset uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	d.queue.Call("writeBuffer", b.v, float64(offset), bytesToJS(data))
}

// Float32Bytes views a float32 slice as bytes (wasm is little-endian, as
// WebGPU buffers are).
func Float32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// Uint32Bytes views a uint32 slice as bytes.
func Uint32Bytes(u []uint32) []byte {
	if len(u) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&u[0])), 4*len(u))
}

// ReadMapped maps b (created with MapRead) for reading, copies its first
// len(dst) bytes into dst and unmaps it.
func (d *Device) ReadMapped(ctx context.Context, b *Buffer, dst []byte) error {
	return d.StartRead(b, len(dst)).Wait(ctx, dst)
}

// PendingRead is a buffer being mapped for reading.
type PendingRead struct {
	d   *Device
	b   *Buffer
	n   int
	f   *future
	err error
}

// StartRead begins mapping the first n bytes of b (created with MapRead).
func (d *Device) StartRead(b *Buffer, n int) *PendingRead {
	r := &PendingRead{d: d, b: b, n: n, err: d.LostErr()}
	if r.err == nil {
		var p js.Value
		if p, r.err = call(b.v, "mapAsync", mapModeRead, 0, float64(n)); r.err == nil {
			r.f = start(p)
		}
	}
	return r
}

// Wait copies the mapped bytes into dst (len(dst) bytes) and unmaps.
func (r *PendingRead) Wait(ctx context.Context, dst []byte) error {
	if r.err != nil {
		return r.err
	}
	d, b := r.d, r.b
	if _, err := r.f.wait(ctx, d.lost, d.lostError); err != nil {
		if lost := d.lostAfter(ctx); lost != nil {
			return lost
		}
		return fmt.Errorf("reading back %s: %w", b.Label, err)
	}
	ab, err := call(b.v, "getMappedRange", 0, float64(r.n))
	if err != nil {
		return err
	}
	js.CopyBytesToGo(dst, js.Global().Get("Uint8Array").New(ab))
	b.v.Call("unmap")
	return nil
}

// Unmap releases a mapping that Wait was not called for (the map must have
// settled; a pending or failed map is left alone).
func (r *PendingRead) Unmap(ctx context.Context) {
	if r.err == nil {
		if _, err := r.f.wait(ctx, r.d.lost, r.d.lostError); err == nil {
			r.b.v.Call("unmap")
		}
	}
}

// lostAfter tells a failure caused by device loss from others: a destroyed
// device rejects pending maps, and its lost promise may settle a moment later.
func (d *Device) lostAfter(ctx context.Context) error {
	p := d.queue.Call("onSubmittedWorkDone")
	d.Await(ctx, p)
	return d.LostErr()
}

// ShaderModule is a compiled GPUShaderModule.
type ShaderModule struct{ v js.Value }

// CompileError lists a WGSL module's error messages.
type CompileError struct {
	Label    string
	Messages []string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("webgpu: WGSL module %s does not compile:\n%s", e.Label, strings.Join(e.Messages, "\n"))
}

// CreateShaderModule compiles WGSL and returns a *CompileError carrying the
// compiler's messages (from getCompilationInfo) when it has errors.
func (d *Device) CreateShaderModule(ctx context.Context, label, code string) (*ShaderModule, error) {
	var m js.Value
	err := d.Scoped(ctx, "shader module "+label, func() {
		m = d.v.Call("createShaderModule", obj(map[string]any{"label": label, "code": code}))
	})
	info, ierr := d.Await(ctx, m.Call("getCompilationInfo"))
	if ierr != nil {
		return nil, ierr
	}
	var errs []string
	msgs := info.Get("messages")
	lines := strings.Split(code, "\n")
	for i := 0; i < msgs.Length(); i++ {
		msg := msgs.Index(i)
		if msg.Get("type").String() != "error" {
			continue
		}
		ln := msg.Get("lineNum").Int()
		s := fmt.Sprintf("%s:%d:%d: %s", label, ln, msg.Get("linePos").Int(), msg.Get("message").String())
		if ln >= 1 && ln <= len(lines) {
			s += "\n    " + strings.TrimSpace(lines[ln-1])
		}
		errs = append(errs, s)
	}
	if len(errs) > 0 {
		return nil, &CompileError{Label: label, Messages: errs}
	}
	if err != nil {
		return nil, err
	}
	return &ShaderModule{v: m}, nil
}

// BindingType is a buffer binding's type in a bind group layout.
type BindingType string

const (
	UniformBinding  BindingType = "uniform"
	ReadOnlyStorage BindingType = "read-only-storage"
	StorageBinding  BindingType = "storage"
)

// BindGroupLayout is a GPUBindGroupLayout of buffer bindings 0..n-1.
type BindGroupLayout struct {
	v     js.Value
	Types []BindingType
}

// CreateBindGroupLayout makes a compute-stage layout whose binding i has types[i].
func (d *Device) CreateBindGroupLayout(label string, types []BindingType) *BindGroupLayout {
	entries := make([]any, len(types))
	for i, t := range types {
		entries[i] = map[string]any{
			"binding": i, "visibility": shaderStageCompute,
			"buffer": map[string]any{"type": string(t)},
		}
	}
	v := d.v.Call("createBindGroupLayout", obj(map[string]any{"label": label, "entries": entries}))
	return &BindGroupLayout{v: v, Types: types}
}

// ComputePipeline is a GPUComputePipeline.
type ComputePipeline struct {
	v     js.Value
	Label string
}

// PipelineRequest describes a compute pipeline over one bind group layout;
// Constants sets WGSL override constants by name.
type PipelineRequest struct {
	Label     string
	Module    *ShaderModule
	Entry     string
	Layout    *BindGroupLayout
	Constants map[string]float64
}

// StartComputePipeline begins createComputePipelineAsync; Wait on the result.
func (d *Device) StartComputePipeline(r PipelineRequest) *PendingPipeline {
	pl := d.v.Call("createPipelineLayout", obj(map[string]any{
		"label": r.Label, "bindGroupLayouts": []any{r.Layout.v},
	}))
	consts := map[string]any{}
	for k, v := range r.Constants {
		consts[k] = v
	}
	p, err := call(d.v, "createComputePipelineAsync", obj(map[string]any{
		"label":  r.Label,
		"layout": pl,
		"compute": map[string]any{
			"module": r.Module.v, "entryPoint": r.Entry, "constants": consts,
		},
	}))
	return &PendingPipeline{d: d, p: p, err: err, label: r.Label}
}

// PendingPipeline is a pipeline being compiled.
type PendingPipeline struct {
	d     *Device
	p     js.Value
	err   error
	label string
}

// Wait returns the compiled pipeline, or the GPUPipelineError as an *Error.
func (pp *PendingPipeline) Wait(ctx context.Context) (*ComputePipeline, error) {
	if pp.err != nil {
		return nil, pp.err
	}
	v, err := pp.d.Await(ctx, pp.p)
	if err != nil {
		if je, ok := err.(*JSError); ok {
			return nil, &Error{Kind: Validation, What: "pipeline " + pp.label, Message: je.Message}
		}
		return nil, err
	}
	return &ComputePipeline{v: v, Label: pp.label}, nil
}

// Binding is one buffer range bound at a binding index.
type Binding struct {
	Buffer *Buffer
	Offset uint64
	Size   uint64 // 0: the rest of the buffer
}

// BindGroup is a GPUBindGroup.
type BindGroup struct{ v js.Value }

// CreateBindGroup binds buffers in layout order.
func (d *Device) CreateBindGroup(label string, layout *BindGroupLayout, bs []Binding) *BindGroup {
	entries := make([]any, len(bs))
	for i, b := range bs {
		res := map[string]any{"buffer": b.Buffer.v, "offset": float64(b.Offset)}
		if b.Size > 0 {
			res["size"] = float64(b.Size)
		}
		entries[i] = map[string]any{"binding": i, "resource": res}
	}
	return &BindGroup{v: d.v.Call("createBindGroup", obj(map[string]any{
		"label": label, "layout": layout.v, "entries": entries,
	}))}
}

// Encoder records one command buffer with at most one open compute pass.
type Encoder struct {
	d    *Device
	v    js.Value
	pass js.Value
}

// NewEncoder starts a command encoder.
func (d *Device) NewEncoder(label string) *Encoder {
	return &Encoder{d: d, v: d.v.Call("createCommandEncoder", obj(map[string]any{"label": label}))}
}

// Dispatch records one compute dispatch, opening a compute pass if needed.
// Dispatches in one pass run in order, each seeing the previous ones' writes.
func (e *Encoder) Dispatch(p *ComputePipeline, bg *BindGroup, x, y, z uint32) {
	if e.pass.IsUndefined() {
		e.pass = e.v.Call("beginComputePass")
	}
	e.pass.Call("setPipeline", p.v)
	e.pass.Call("setBindGroup", 0, bg.v)
	e.pass.Call("dispatchWorkgroups", x, y, z)
}

func (e *Encoder) endPass() {
	if !e.pass.IsUndefined() {
		e.pass.Call("end")
		e.pass = js.Undefined()
	}
}

// Copy records a buffer-to-buffer copy (size a multiple of 4).
func (e *Encoder) Copy(src *Buffer, srcOff uint64, dst *Buffer, dstOff, size uint64) {
	e.endPass()
	e.v.Call("copyBufferToBuffer", src.v, float64(srcOff), dst.v, float64(dstOff), float64(size))
}

// Submit finishes the command buffer and submits it to the queue.
func (e *Encoder) Submit() {
	e.endPass()
	e.d.queue.Call("submit", []any{e.v.Call("finish")})
}

// WorkDone waits until the queue has finished all submitted work.
func (d *Device) WorkDone(ctx context.Context) error {
	if err := d.LostErr(); err != nil {
		return err
	}
	_, err := d.Await(ctx, d.queue.Call("onSubmittedWorkDone"))
	return err
}

// Dispatch is one recorded compute dispatch.
type Dispatch struct {
	Pipeline *ComputePipeline
	Group    *BindGroup
	X, Y, Z  uint32
}

// Recording is a list of dispatches kept as a JavaScript array, so that
// replaying it costs one call from Go instead of three per dispatch (each
// syscall/js call costs microseconds, and a UNet has a few hundred
// dispatches).
type Recording struct {
	list js.Value
	ds   []Dispatch
}

// Record builds a Recording.
func Record(ds []Dispatch) *Recording {
	arr := make([]any, len(ds))
	for i, d := range ds {
		arr[i] = []any{d.Pipeline.v, d.Group.v, d.X, d.Y, d.Z}
	}
	return &Recording{list: js.ValueOf(arr), ds: ds}
}

// ReplayInJS enables the one-call replay; when false (or where the page's
// Content-Security-Policy forbids creating functions), Replay calls each
// dispatch from Go.
var ReplayInJS = true

var replayFn = sync.OnceValue(func() (fn js.Value) {
	defer func() {
		if recover() != nil { // EvalError under a strict CSP
			fn = js.Undefined()
		}
	}()
	return js.Global().Get("Function").New("pass", "list",
		"let last = null; for (let i = 0; i < list.length; i++) { const s = list[i]; "+
			"if (s[0] !== last) { pass.setPipeline(s[0]); last = s[0]; } "+
			"pass.setBindGroup(0, s[1]); pass.dispatchWorkgroups(s[2], s[3], s[4]); }")
})

// Replay records every dispatch of r, in order, in the encoder's compute pass.
// The JavaScript replay skips setPipeline when consecutive dispatches share
// a pipeline (the pass keeps it), saving a call into the WebGPU binding.
func (e *Encoder) Replay(r *Recording) {
	if e.pass.IsUndefined() {
		e.pass = e.v.Call("beginComputePass")
	}
	if fn := replayFn(); ReplayInJS && !fn.IsUndefined() {
		fn.Invoke(e.pass, r.list)
		return
	}
	for _, d := range r.ds {
		e.Dispatch(d.Pipeline, d.Group, d.X, d.Y, d.Z)
	}
}
