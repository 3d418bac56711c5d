package simd

import (
	"errors"
	"github.com/diffuse-web/diffuse/core/fixtures"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/lucid"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Whole-network tolerances, as max|got-want| / max|want|: against the CPU
// reference (same float32 model, different summation order and a float32
// exp) and against diffusers' own output.
const (
	tolVsCPU       = 2e-5
	tolVsDiffusers = 1e-4
)

func fixturesDir() string { return fixtures.Dir() }

func relErr(got, want []float32) float64 {
	var maxAbs, maxErr float64
	for i := range want {
		maxAbs = math.Max(maxAbs, math.Abs(float64(want[i])))
		maxErr = math.Max(maxErr, math.Abs(float64(got[i]-want[i])))
	}
	if math.IsNaN(maxErr) {
		return math.Inf(1)
	}
	return maxErr / maxAbs
}

func readNpy(t *testing.T, path string) []float32 {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a.Float32()
}

func TestDenoiserMatchesCPUOnFixtures(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(fixturesDir(), "diffusers", "*", "config.json"))
	if len(cases) == 0 {
		t.Skipf("no fixtures under %s (set FIXTURES_DIR)", fixturesDir())
	}
	for _, cfg := range cases {
		dir := filepath.Dir(cfg)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := model.FromDiffusersDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			xa, err := npy.ReadFile(filepath.Join(dir, "x.npy"))
			if err != nil {
				t.Fatal(err)
			}
			x := tensor.From(xa.Float32(), xa.Shape...)
			ts := readNpy(t, filepath.Join(dir, "t.npy"))
			y := readNpy(t, filepath.Join(dir, "y.npy"))
			var class []int
			if _, err := os.Stat(filepath.Join(dir, "class_labels.npy")); err == nil {
				for _, c := range readNpy(t, filepath.Join(dir, "class_labels.npy")) {
					class = append(class, int(c))
				}
			}

			d, err := newTestDenoiser(m)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ref := cpu.NewDenoiser(m)

			// The fixture batch, against diffusers and the CPU reference; twice,
			// so the second call runs on the cached plan and reused buffers.
			for run := 0; run < 2; run++ {
				got, err := d.Denoise(x, ts, class)
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(got.Data, y); !(e <= tolVsDiffusers) {
					t.Errorf("run %d: vs diffusers: relative error %.3g > %g", run, e, tolVsDiffusers)
				} else {
					t.Logf("run %d: vs diffusers: relative error %.3g", run, e)
				}
				want, err := ref.Denoise(x, ts, class)
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(got.Data, want.Data); !(e <= tolVsCPU) {
					t.Errorf("run %d: vs core/cpu: relative error %.3g > %g", run, e, tolVsCPU)
				} else {
					t.Logf("run %d: vs core/cpu: relative error %.3g", run, e)
				}
			}

			// Batches of 1 and 7 built from the fixture samples, other times.
			per := tensor.Numel(x.Shape[1:])
			for _, b := range []int{1, 7} {
				if b == 7 && testing.Short() {
					continue
				}
				xb := tensor.New(append([]int{b}, x.Shape[1:]...)...)
				tb := make([]float32, b)
				var cb []int
				for i := 0; i < b; i++ {
					src := i % x.Shape[0]
					copy(xb.Data[i*per:], x.Data[src*per:(src+1)*per])
					tb[i] = float32((i*137 + 11) % 1000)
					if class != nil {
						cb = append(cb, i%10)
					}
				}
				got, err := d.Denoise(xb, tb, cb)
				if err != nil {
					t.Fatal(err)
				}
				want, err := ref.Denoise(xb, tb, cb)
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(got.Data, want.Data); !(e <= tolVsCPU) {
					t.Errorf("batch %d: vs core/cpu: relative error %.3g > %g", b, e, tolVsCPU)
				} else {
					t.Logf("batch %d: vs core/cpu: relative error %.3g", b, e)
				}
			}
			t.Logf("kernel memory in use: %.1f MiB", float64(d.MemoryBytes())/(1<<20))
		})
	}
}

func TestDenoiserRejectsBadInput(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(fixturesDir(), "diffusers", "mnist_cond", "config.json"))
	if len(cases) == 0 {
		t.Skip("no fixtures")
	}
	m, err := model.FromDiffusersDir(filepath.Dir(cases[0]))
	if err != nil {
		t.Fatal(err)
	}
	d, err := newTestDenoiser(m)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	x := tensor.New(2, 1, 28, 28)
	if _, err := d.Denoise(x, []float32{1}, []int{1, 2}); err == nil {
		t.Error("wrong number of times accepted")
	}
	if _, err := d.Denoise(x, []float32{1, 2}, nil); err == nil {
		t.Error("missing class labels accepted")
	}
	if _, err := d.Denoise(x, []float32{1, 2}, []int{1, 99}); err == nil {
		t.Error("class label out of range accepted")
	}
	if _, err := d.Denoise(tensor.New(2, 1, 27, 28), []float32{1, 2}, []int{1, 2}); err == nil {
		t.Error("odd image size accepted")
	}
}

// Another network family (lucidrains' Unet: RMSNorm, linear attention,
// attention with memory key/values, pixel-unshuffle downsampling): the plan
// must equal the reference and denoising-diffusion-pytorch.
func TestDenoiserMatchesCPUOnLucidrains(t *testing.T) {
	dir := filepath.Join(fixturesDir(), "lucidrains", "lucid_small")
	data, err := os.ReadFile(filepath.Join(dir, "model-1.pt"))
	if err != nil {
		t.Skipf("no lucidrains fixture: %v", err)
	}
	m, err := model.FromLucidrains(data, true, lucid.Overrides{ImageSize: [2]int{28, 28}})
	if err != nil {
		t.Fatal(err)
	}
	xa, err := npy.ReadFile(filepath.Join(dir, "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.From(xa.Float32(), xa.Shape...)
	ts := readNpy(t, filepath.Join(dir, "t.npy"))
	d, err := newTestDenoiser(m)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := d.Denoise(x, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := cpu.NewDenoiser(m).Denoise(x, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(got.Data, want.Data); !(e <= tolVsCPU) {
		t.Errorf("vs core/cpu: relative error %.3g > %g", e, tolVsCPU)
	} else {
		t.Logf("vs core/cpu: relative error %.3g", e)
	}
	if e := relErr(got.Data, readNpy(t, filepath.Join(dir, "y.npy"))); !(e <= tolVsDiffusers) {
		t.Errorf("vs denoising-diffusion-pytorch: relative error %.3g > %g", e, tolVsDiffusers)
	} else {
		t.Logf("vs denoising-diffusion-pytorch: relative error %.3g", e)
	}
	// Batches of 1 and 7 from the fixture samples, other times.
	per := tensor.Numel(x.Shape[1:])
	for _, b := range []int{1, 7} {
		if b == 7 && testing.Short() {
			continue
		}
		xb := tensor.New(append([]int{b}, x.Shape[1:]...)...)
		tb := make([]float32, b)
		for i := 0; i < b; i++ {
			copy(xb.Data[i*per:], x.Data[(i%x.Shape[0])*per:(i%x.Shape[0]+1)*per])
			tb[i] = float32((i*137 + 11) % 1000)
		}
		got, err := d.Denoise(xb, tb, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cpu.NewDenoiser(m).Denoise(xb, tb, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(got.Data, want.Data); !(e <= tolVsCPU) {
			t.Errorf("batch %d: vs core/cpu: relative error %.3g > %g", b, e, tolVsCPU)
		} else {
			t.Logf("batch %d: vs core/cpu: relative error %.3g", b, e)
		}
	}
}

// The score-SDE tutorial's ScoreNet (unpadded strided convs, transposed
// convs, Fourier time features, the division by the marginal std): the tiny
// conformance network against PyTorch's output and the reference, and the
// shipped MNIST weights against the reference at batches 1, 2 and 7.
func TestDenoiserMatchesCPUOnScoreNet(t *testing.T) {
	compare := func(t *testing.T, m *model.Model, x *tensor.Tensor, ts []float32) []float32 {
		t.Helper()
		d, err := newTestDenoiser(m)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		got, err := d.Denoise(x, ts, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cpu.NewDenoiser(m).Denoise(x, ts, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(got.Data, want.Data); !(e <= tolVsCPU) {
			t.Errorf("batch %d: vs core/cpu: relative error %.3g > %g", x.Shape[0], e, tolVsCPU)
		} else {
			t.Logf("batch %d: vs core/cpu: relative error %.3g", x.Shape[0], e)
		}
		return got.Data
	}
	t.Run("tiny", func(t *testing.T) {
		dir := filepath.Join("..", "..", "core", "scoresde", "testdata")
		data, err := os.ReadFile(filepath.Join(dir, "tiny_scorenet.pth"))
		if err != nil {
			t.Skip(err)
		}
		m, err := model.FromScoreSDE(data, 25, 28)
		if err != nil {
			t.Fatal(err)
		}
		xa, err := npy.ReadFile(filepath.Join(dir, "x.npy"))
		if err != nil {
			t.Fatal(err)
		}
		got := compare(t, m, tensor.From(xa.Float32(), xa.Shape...), readNpy(t, filepath.Join(dir, "t.npy")))
		if e := relErr(got, readNpy(t, filepath.Join(dir, "y.npy"))); !(e <= tolVsDiffusers) {
			t.Errorf("vs PyTorch: relative error %.3g > %g", e, tolVsDiffusers)
		} else {
			t.Logf("vs PyTorch: relative error %.3g", e)
		}
	})
	t.Run("shipped", func(t *testing.T) {
		path := filepath.Join("..", "..", "weights", "scoresde-mnist.safetensors")
		if _, err := os.Stat(path); err != nil {
			t.Skip(err)
		}
		m, err := model.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []int{1, 2, 7} {
			if b == 7 && testing.Short() {
				continue
			}
			x := tensor.New(b, 1, 28, 28)
			for i := range x.Data {
				x.Data[i] = float32(math.Sin(float64(i)*0.37)) * 0.8
			}
			ts := make([]float32, b)
			for i := range ts {
				ts[i] = 0.01 + 0.98*float32(i)/float32(max(b-1, 1))
			}
			compare(t, m, x, ts)
		}
	})
}

// SetCheck: the check runs between the plan's steps, an error from it ends
// the call with that error partway through (the worker's cancel inside a
// network call), and a check that returns nil changes nothing.
func TestDenoiserCheck(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(fixturesDir(), "diffusers", "mnist_cond", "config.json"))
	if len(cases) == 0 {
		t.Skip("no fixtures")
	}
	m, err := model.FromDiffusersDir(filepath.Dir(cases[0]))
	if err != nil {
		t.Fatal(err)
	}
	d, err := newTestDenoiser(m)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	x := tensor.New(1, 1, 28, 28)
	for i := range x.Data {
		x.Data[i] = float32(i%7) - 3
	}
	want, err := d.Denoise(x, []float32{500}, []int{3})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	d.SetCheck(func() error { calls++; return nil })
	got, err := d.Denoise(x, []float32{500}, []int{3})
	if err != nil {
		t.Fatal(err)
	}
	steps := calls
	if steps < 10 {
		t.Fatalf("check called %d times in a call, want once per step", steps)
	}
	for i := range got.Data {
		if got.Data[i] != want.Data[i] {
			t.Fatalf("output %d: %g with a check, %g without", i, got.Data[i], want.Data[i])
		}
	}
	stop := errors.New("stopped")
	calls = 0
	d.SetCheck(func() error {
		if calls++; calls > steps/2 {
			return stop
		}
		return nil
	})
	if _, err := d.Denoise(x, []float32{500}, []int{3}); !errors.Is(err, stop) {
		t.Fatalf("got %v, want the check's error", err)
	}
	if calls != steps/2+1 {
		t.Errorf("the call went on for %d checks after the error", calls-(steps/2+1))
	}
	d.SetCheck(nil)
	if _, err := d.Denoise(x, []float32{500}, []int{3}); err != nil {
		t.Fatalf("after the check is removed: %v", err)
	}
}
