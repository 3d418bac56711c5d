//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// fixturesDir is $FIXTURES_DIR, or ../shared/fixtures beside the checkout
// (Go's js/wasm reaches the file system through Node's fs module).
func fixturesDir(t *testing.T) string {
	dir := os.Getenv("FIXTURES_DIR")
	if dir == "" {
		dir = "../../../shared/fixtures"
	}
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
// the CPU reference: with the fixture's f32 weights (uploaded as f32, as
// they are not exact in f16), and with the weights rounded to f16 (uploaded
// packed) against the CPU on the same rounded weights.
func TestNetworks(t *testing.T) {
	d := testDevice(t)
	for _, f := range loadFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			m16, err := model.New(f.m.Arch, f.m.Config, f.m.Scheduler, RoundF16(f.m.Params))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name, format string
				m            *model.Model
			}{{"f32", "f32", f.m}, {"f16", "f16", m16}} {
				want, err := cpu.NewDenoiser(c.m).Denoise(f.x, f.t, f.class)
				if err != nil {
					t.Fatal(err)
				}
				dn, err := d.NewDenoiser(c.m)
				if err != nil {
					t.Fatal(err)
				}
				if dn.WeightFormat() != c.format {
					t.Errorf("%s: weights stored as %s, want %s", c.name, dn.WeightFormat(), c.format)
				}
				got, err := dn.Denoise(f.x, f.t, f.class)
				dn.Release()
				if err != nil {
					t.Fatal(err)
				}
				e := nmse(got.Data, want.Data)
				t.Logf("%s weights: NMSE vs CPU %.3g, vs diffusers %.3g", c.name, e, nmse(got.Data, f.y))
				if !(e <= nmseNetwork) {
					t.Errorf("%s weights: NMSE vs CPU %.3g over %g", c.name, e, nmseNetwork)
				}
			}
		})
	}
}

// withLimits returns a view of d whose plans are checked against lowered
// limits (the hardware is unchanged), to exercise batch splitting and refusal.
func withLimits(d *Device, f func(l *gpu.Limits)) *Device {
	nd := *d
	f(&nd.limits)
	return &nd
}

// TestBatchSplit lowers the binding limit so that only two samples fit, and
// checks that a batch of 5 is split and still equals the CPU.
func TestBatchSplit(t *testing.T) {
	d := testDevice(t)
	f := smallestFixture(t)
	g, err := f.m.Graph(1, f.x.Shape[2], f.x.Shape[3])
	if err != nil {
		t.Fatal(err)
	}
	per := perSampleBytes(g)
	small := withLimits(d, func(l *gpu.Limits) { l.MaxStorageBufferBindingSize = 2*per + per/2 })
	const B = 5
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
	dn, err := small.NewDenoiser(f.m)
	if err != nil {
		t.Fatal(err)
	}
	defer dn.Release()
	if c, _ := dn.chunk(f.x.Shape[2], f.x.Shape[3], B); c != 2 {
		t.Errorf("chunk %d, want 2", c)
	}
	got, err := dn.Denoise(x, ts, class)
	if err != nil {
		t.Fatal(err)
	}
	e := nmse(got.Data, want.Data)
	t.Logf("batch %d in chunks of 2: NMSE vs CPU %.3g", B, e)
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

// TestDeviceLost destroys the device between submitting a run and reading
// it back: the run must fail with ErrDeviceLost (not hang or crash), later
// calls too, and the CPU backend can redo the same step.
func TestDeviceLost(t *testing.T) {
	testDevice(t) // skip without WebGPU
	d, err := Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f := smallestFixture(t)
	dn, err := d.NewDenoiser(f.m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dn.Denoise(f.x, f.t, f.class); err != nil {
		t.Fatal(err)
	}
	testHookSubmitted = d.Destroy
	_, err = dn.Denoise(f.x, f.t, f.class)
	testHookSubmitted = nil
	if !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("Denoise after destroy: %v, want ErrDeviceLost", err)
	}
	t.Log(err)
	if _, err := dn.Denoise(f.x, f.t, f.class); !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("second Denoise: %v, want ErrDeviceLost", err)
	}
	if _, err := d.NewDenoiser(f.m); !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("NewDenoiser on a lost device: %v, want ErrDeviceLost", err)
	}
	y, err := cpu.NewDenoiser(f.m).Denoise(f.x, f.t, f.class)
	if err != nil || math.IsNaN(float64(y.Data[0])) {
		t.Fatalf("CPU fallback: %v", err)
	}
}
