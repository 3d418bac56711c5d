//go:build js && wasm

package gpu

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func testDevice(t *testing.T) *Device {
	t.Helper()
	ctx := context.Background()
	a, err := RequestAdapter(ctx)
	if errors.Is(err, ErrNoWebGPU) {
		t.Skip("no WebGPU in this JavaScript host (run through make test-webgpu)")
	}
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.RequestDevice(ctx, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Destroy)
	return d
}

const doubleWGSL = `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
override K: f32 = 2.0;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
	if (id.x < arrayLength(&X)) { Y[id.x] = K * X[id.x]; }
}
`

// TestRoundTrip runs one kernel end to end: upload, override constant,
// dispatch, copy, map and read back.
func TestRoundTrip(t *testing.T) {
	d := testDevice(t)
	ctx := context.Background()
	m, err := d.CreateShaderModule(ctx, "double", doubleWGSL)
	if err != nil {
		t.Fatal(err)
	}
	layout := d.CreateBindGroupLayout("double", []BindingType{ReadOnlyStorage, StorageBinding})
	p, err := d.StartComputePipeline(PipelineRequest{Label: "double", Module: m, Entry: "main", Layout: layout,
		Constants: map[string]float64{"K": 3}}).Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 100
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i)
	}
	in := d.CreateBuffer("x", uint64(4*n), Storage|CopyDst)
	out := d.CreateBuffer("y", uint64(4*n), Storage|CopySrc)
	st := d.CreateBuffer("staging", uint64(4*n), MapRead|CopyDst)
	d.WriteBuffer(in, 0, Float32Bytes(x))
	bg := d.CreateBindGroup("double", layout, []Binding{{Buffer: in}, {Buffer: out}})
	if err := d.Scoped(ctx, "double", func() {
		e := d.NewEncoder("double")
		e.Dispatch(p, bg, 2, 1, 1)
		e.Copy(out, 0, st, 0, uint64(4*n))
		e.Submit()
	}); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, n)
	if err := d.ReadMapped(ctx, st, unsafe.Slice((*byte)(unsafe.Pointer(&y[0])), 4*n)); err != nil {
		t.Fatal(err)
	}
	for i := range y {
		if y[i] != 3*x[i] {
			t.Fatalf("y[%d] = %v, want %v", i, y[i], 3*x[i])
		}
	}
}

// TestCompileError checks that WGSL errors come back with line information.
func TestCompileError(t *testing.T) {
	d := testDevice(t)
	_, err := d.CreateShaderModule(context.Background(), "bad", "fn main() { let x: f32 = 1u; }")
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a CompileError", err)
	}
	t.Log(ce)
}

// TestValidationScope checks that a validation error is caught and named.
func TestValidationScope(t *testing.T) {
	d := testDevice(t)
	err := d.Scoped(context.Background(), "bad copy", func() {
		a := d.CreateBuffer("a", 16, Storage)
		b := d.CreateBuffer("b", 16, Storage)
		e := d.NewEncoder("bad")
		e.Copy(a, 0, b, 0, 16) // neither has copy usage
		e.Submit()
	})
	var ge *Error
	if !errors.As(err, &ge) || ge.Kind != Validation {
		t.Fatalf("got %v, want a validation error", err)
	}
	t.Log(ge)
}

// TestDestroyedDevice checks that a destroyed device gives ErrDeviceLost.
func TestDestroyedDevice(t *testing.T) {
	d := testDevice(t)
	ctx := context.Background()
	b := d.CreateBuffer("b", 16, MapRead|CopyDst)
	d.Destroy()
	err := d.ReadMapped(ctx, b, make([]byte, 16))
	if !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("got %v, want ErrDeviceLost", err)
	}
	t.Log(err)
}

// waitUncaptured lets the event loop run until d has reported n
// uncaptured errors in all (the event arrives asynchronously), or fails.
func waitUncaptured(t *testing.T, d *Device, n int) {
	t.Helper()
	for i := 0; i < 200 && d.UncapturedCount() < n; i++ {
		if err := d.WorkDone(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if got := d.UncapturedCount(); got < n {
		t.Fatalf("the device reported %d uncaptured errors, want %d", got, n)
	}
}

// TestUncaptured: errors raised outside any error scope are recorded (the
// device's uncapturederror event) and handed out once by TakeUncaptured, as
// one *Error that counts the others; a scoped error is not reported again.
func TestUncaptured(t *testing.T) {
	d := testDevice(t)
	if err := d.TakeUncaptured(); err != nil {
		t.Fatalf("a new device has an uncaptured error: %v", err)
	}
	d.CreateBuffer("no usage", 16, 0) // a validation error: no usage
	waitUncaptured(t, d, 1)
	err := d.TakeUncaptured()
	var ge *Error
	if !errors.As(err, &ge) || ge.Kind != Validation || ge.What != "uncaptured" || !IsFault(err) {
		t.Fatalf("TakeUncaptured = %v, want an uncaptured validation error", err)
	}
	t.Log(err)
	if err := d.TakeUncaptured(); err != nil {
		t.Errorf("taken twice: %v", err)
	}
	d.CreateBuffer("no usage", 16, 0)
	d.CreateBuffer("no usage", 16, 0)
	waitUncaptured(t, d, 3)
	if err := d.TakeUncaptured(); err == nil || !strings.Contains(err.Error(), "and 1 more") {
		t.Errorf("two errors: %v, want the first and a count", err)
	}
	if err := d.Scoped(context.Background(), "scoped", func() { d.CreateBuffer("no usage", 16, 0) }); err == nil {
		t.Fatal("the scope caught nothing")
	}
	d.WorkDone(context.Background())
	if err := d.TakeUncaptured(); err != nil || d.UncapturedCount() != 3 {
		t.Errorf("a scoped error was reported as uncaptured: %v (%d in all)", err, d.UncapturedCount())
	}
}

// TestOutOfMemoryFirst: a buffer too large to allocate and a copy into it
// give an out-of-memory and a validation error in one scope; Wait reports
// the out-of-memory one (the cause), and mapping the invalid buffer fails
// with a fault. (On SwiftShader a maxBufferSize buffer does not allocate;
// an adapter that allocates it skips the test.)
func TestOutOfMemoryFirst(t *testing.T) {
	testDevice(t)
	ctx := context.Background()
	a, err := RequestAdapter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.RequestDevice(ctx, "test", map[string]uint64{"maxBufferSize": a.Limits.MaxBufferSize}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy()
	src := d.CreateBuffer("src", 16, CopySrc)
	var big *Buffer
	err = d.Scoped(ctx, "too big", func() {
		big = d.CreateBuffer("big", d.Limits.MaxBufferSize, MapRead|CopyDst)
		e := d.NewEncoder("copy")
		e.Copy(src, 0, big, 0, 16)
		e.Submit()
	})
	if err == nil {
		t.Skipf("this adapter allocated a %d-byte buffer", d.Limits.MaxBufferSize)
	}
	var ge *Error
	if !errors.As(err, &ge) || ge.Kind != OutOfMemory || !IsFault(err) {
		t.Fatalf("got %v, want an out-of-memory error", err)
	}
	t.Log(err)
	err = d.ReadMapped(ctx, big, make([]byte, 16))
	if err == nil || !IsFault(err) || errors.Is(err, ErrDeviceLost) {
		t.Fatalf("mapping the invalid buffer: %v, want a fault other than device loss", err)
	}
	t.Log(err)
	for _, e := range []error{context.Canceled, errors.New("sampler: bad"), &CompileError{Label: "x"}} {
		if IsFault(e) {
			t.Errorf("IsFault(%v) is true", e)
		}
	}
}
