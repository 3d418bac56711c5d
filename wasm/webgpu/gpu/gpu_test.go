//go:build js && wasm

package gpu

import (
	"context"
	"errors"
	"testing"
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
