//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/fixtures"
	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// fixturesDir is $FIXTURES_DIR, or ../shared/fixtures beside the checkout
// (Go's js/wasm reaches the file system through Node's fs module).
func fixturesDir(t *testing.T) string {
	dir := fixtures.Dir()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("fixtures not found at %s (set FIXTURES_DIR)", dir)
	}
	return dir
}

type fixture struct {
	name  string
	m     *model.Model
	x     *tensor.Tensor
	t     []float32
	class []int
	y     []float32 // diffusers' output
}

func loadFixtures(t *testing.T) []fixture {
	cases, err := filepath.Glob(filepath.Join(fixturesDir(t), "diffusers", "*", "config.json"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no diffusers cases found: %v", err)
	}
	var fs []fixture
	for _, cfg := range cases {
		dir := filepath.Dir(cfg)
		f := fixture{name: filepath.Base(dir)}
		if f.m, err = model.FromDiffusersDir(dir); err != nil {
			t.Fatal(err)
		}
		read := func(name string) *npy.Array {
			a, err := npy.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		f.x = read("x.npy").Tensor()
		f.t = read("t.npy").Float32()
		for len(f.t) < f.x.Shape[0] {
			f.t = append(f.t, f.t[0])
		}
		f.y = read("y.npy").Float32()
		if _, err := os.Stat(filepath.Join(dir, "class_labels.npy")); err == nil {
			ls, err := read("class_labels.npy").Int64()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ls {
				f.class = append(f.class, int(l))
			}
		}
		fs = append(fs, f)
	}
	return fs
}

// TestNetworks runs every diffusers fixture through the GPU denoiser and
// the CPU reference (checkNetwork).
func TestNetworks(t *testing.T) {
	d := testDevice(t)
	for _, f := range loadFixtures(t) {
		t.Run(f.name, func(t *testing.T) { checkNetwork(t, d, f, "diffusers") })
	}
}

// checkNetwork runs fixture f through the GPU denoiser and the CPU
// reference: with the fixture's f32 weights (uploaded as f32, as they are
// not exact in f16), and with the weights rounded to f16 (uploaded packed,
// asked for with WeightsF16, since the serial kernels would store them as
// f32) against the CPU on the same rounded weights; the bar is nmseNetwork.
// It also checks the format WeightsAuto picks on this device. ref names the
// implementation that produced f.y, logged when f.y is set.
func checkNetwork(t *testing.T, d *Device, f fixture, ref string) {
	t.Helper()
	m16, err := model.New(f.m.Arch, f.m.Config, f.m.Scheduler, RoundF16(f.m.Params))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		format string
		m      *model.Model
	}{{"f32", f.m}, {"f16", m16}} {
		want, err := cpu.NewDenoiser(c.m).Denoise(f.x, f.t, f.class)
		if err != nil {
			t.Fatal(err)
		}
		o := Options{}
		if c.format == "f16" {
			o.Weights = WeightsF16
		}
		dn, err := d.NewDenoiserWith(c.m, o)
		if err != nil {
			t.Fatal(err)
		}
		if dn.WeightFormat() != c.format {
			t.Errorf("%s: weights stored as %s", c.format, dn.WeightFormat())
		}
		// WeightsAuto: f16 when exact, except with the serial kernels (software adapters).
		auto := c.format
		if useSerial(d, Options{}) {
			auto = "f32"
		}
		if got := newWeightStore(d, c.m.Params, Options{}).format.String(); got != auto {
			t.Errorf("%s: WeightsAuto stores them as %s on this device, want %s", c.format, got, auto)
		}
		if got := chooseFormat(c.m.Params, WeightsAuto, false).String(); got != c.format {
			t.Errorf("%s: the GPU kernels would store weights as %s", c.format, got)
		}
		if got := chooseFormat(c.m.Params, WeightsAuto, true).String(); got != "f32" {
			t.Errorf("%s: the serial kernels would store weights as %s", c.format, got)
		}
		got, err := dn.Denoise(f.x, f.t, f.class)
		if p, ok := dn.programs[[3]int{f.x.Shape[0], f.x.Shape[2], f.x.Shape[3]}]; ok && c.format == "f32" {
			t.Logf("%v: %d dispatches", f.x.Shape, p.Steps())
		}
		dn.Release()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: output[%d] = %v", c.format, i, v)
			}
		}
		e := nmse(got.Data, want.Data)
		t.Logf("%s weights, %v: NMSE vs CPU %.3g", c.format, f.x.Shape, e)
		if f.y != nil {
			t.Logf("%s weights: NMSE vs %s %.3g", c.format, ref, nmse(got.Data, f.y))
		}
		if !(e <= nmseNetwork) {
			t.Errorf("%s weights: NMSE vs CPU %.3g over %g", c.format, e, nmseNetwork)
		}
	}
}

// withLimits returns a view of d whose plans are checked against lowered
// limits (the hardware is unchanged), to exercise batch splitting and refusal.
func withLimits(d *Device, f func(l *gpu.Limits)) *Device {
	nd := *d
	f(&nd.limits)
	return &nd
}

// TestBatchSplit lowers the binding limit so that only a few samples fit,
// and checks that a larger batch is split and still equals the CPU.
func TestBatchSplit(t *testing.T) {
	d := testDevice(t)
	f := smallestFixture(t).crop(16)
	g, err := f.m.Graph(1, f.x.Shape[2], f.x.Shape[3])
	if err != nil {
		t.Fatal(err)
	}
	// The limit must still hold every weight (f32 here: the fixture is not f16).
	per := perSampleBytes(g, useSerial(d, Options{}), min(d.limits.MaxStorageBufferBindingSize, d.limits.MaxBufferSize))
	limit := 2*per + per/2
	for _, p := range f.m.Params {
		limit = max(limit, valBytes(p.Shape))
	}
	small := withLimits(d, func(l *gpu.Limits) { l.MaxStorageBufferBindingSize = limit })
	chunk := int(limit / per)
	B := 2*chunk + 1
	sample := tensor.Numel(f.x.Shape[1:])
	x := tensor.New(B, f.x.Shape[1], f.x.Shape[2], f.x.Shape[3])
	ts := make([]float32, B)
	var class []int
	for b := 0; b < B; b++ {
		src := b % f.x.Shape[0]
		copy(x.Data[b*sample:], f.x.Data[src*sample:(src+1)*sample])
		ts[b] = f.t[src] + float32(b)
		if f.class != nil {
			class = append(class, (f.class[src]+b)%10)
		}
	}
	want, err := cpu.NewDenoiser(f.m).Denoise(x, ts, class)
	if err != nil {
		t.Fatal(err)
	}
	dn, err := d.NewDenoiser(f.m)
	if err != nil {
		t.Fatal(err)
	}
	defer dn.Release()
	dn.dev = small // after NewDenoiser, whose check at the native size would fail
	if c, _ := dn.chunk(f.x.Shape[2], f.x.Shape[3], B); c != chunk {
		t.Errorf("chunk %d, want %d", c, chunk)
	}
	got, err := dn.Denoise(x, ts, class)
	if err != nil {
		t.Fatal(err)
	}
	e := nmse(got.Data, want.Data)
	t.Logf("batch %d in chunks of %d: NMSE vs CPU %.3g", B, chunk, e)
	if !(e <= nmseNetwork) {
		t.Errorf("NMSE %.3g over %g", e, nmseNetwork)
	}
}

// TestRefuseTooLarge checks the clear refusal when one sample cannot fit.
func TestRefuseTooLarge(t *testing.T) {
	d := testDevice(t)
	f := smallestFixture(t)
	tiny := withLimits(d, func(l *gpu.Limits) { l.MaxStorageBufferBindingSize = 1024 })
	_, err := tiny.NewDenoiser(f.m)
	var le *LimitError
	if !errors.As(err, &le) || le.BatchSplittable {
		t.Fatalf("got %v, want a LimitError that batch splitting cannot fix", err)
	}
	t.Log(err)
}

func smallestFixture(t *testing.T) fixture {
	fs := loadFixtures(t)
	best := fs[0]
	for _, f := range fs[1:] {
		if len(f.x.Data) < len(best.x.Data) {
			best = f
		}
	}
	return best
}

// smallestDenoiser is a Denoiser of the smallest fixture on d, and the
// fixture; the caller releases it.
func smallestDenoiser(t *testing.T, d *Device) (*Denoiser, fixture) {
	t.Helper()
	f := smallestFixture(t)
	dn, err := d.NewDenoiser(f.m)
	if err != nil {
		t.Fatal(err)
	}
	return dn, f
}

// crop returns f with its input cropped to s×s (the networks are
// convolutional, so they run at any multiple of their down factor): tests
// that check plumbing rather than numerics run far faster on SwiftShader.
// NewDenoiser still checks the model at its native size.
func (f fixture) crop(s int) fixture {
	B, C, H, W := f.x.Shape[0], f.x.Shape[1], f.x.Shape[2], f.x.Shape[3]
	x := tensor.New(B, C, s, s)
	for bc := 0; bc < B*C; bc++ {
		for y := 0; y < s; y++ {
			copy(x.Data[(bc*s+y)*s:(bc*s+y+1)*s], f.x.Data[(bc*H+y)*W:(bc*H+y)*W+s])
		}
	}
	f.x, f.y = x, nil
	return f
}

// TestDeviceLost destroys the device between submitting a run and reading
// it back: the run must fail with ErrDeviceLost (not hang or crash), and so
// must later runs, compiles and new denoisers, so that a caller can redo the
// step on the CPU backend. (A small program on its own device: pipelines are
// per device, and compiling a whole UNet's again is slow on SwiftShader.)
func TestDeviceLost(t *testing.T) {
	d := ownDevice(t)
	// A conv and a chain of affine maps: more steps than Run's first
	// submission (runChunks), so the loss comes after several.
	c := opCases(rand.New(rand.NewSource(1)))[1] // a conv2d
	conv := c.build
	c.build = func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
		h := conv(b, in)
		for k := 0; k < 12; k++ {
			h = b.Affine(h, 1.01, 0.1)
		}
		return h
	}
	g, err := c.graphOf(rand.New(rand.NewSource(1)), c.params)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Compile(context.Background(), g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(runChunks(p.Steps())) - 1; n < 2 {
		t.Fatalf("%d steps in %d submission(s), want several", p.Steps(), n)
	}
	if _, err := p.Run(context.Background(), c.inputs); err != nil {
		t.Fatal(err)
	}
	testHookSubmitted = d.Destroy
	_, err = p.Run(context.Background(), c.inputs)
	testHookSubmitted = nil
	if !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("Run destroyed mid-run: %v, want ErrDeviceLost", err)
	}
	t.Log(err)
	if _, err := p.Run(context.Background(), c.inputs); !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("Run after the loss: %v, want ErrDeviceLost", err)
	}
	if _, err := d.Compile(context.Background(), g, Options{}); !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("Compile after the loss: %v, want ErrDeviceLost", err)
	}
	f := smallestFixture(t).crop(8)
	if _, err := d.NewDenoiser(f.m); !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("NewDenoiser after the loss: %v, want ErrDeviceLost", err)
	}
	want, err := cpu.Run(g, c.inputs)
	if err != nil || math.IsNaN(float64(want.Data[0])) {
		t.Fatalf("CPU fallback: %v", err)
	}
}
