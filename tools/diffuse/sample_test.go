package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/sampler"
)

// toyWeights converts the toy2d test model (a 2-D MLP, fast on the CPU
// backend) into a temporary file.
func toyWeights(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "toy.safetensors")
	if err := runConvert([]string{"--from", "toy2d", "../../core/toy2d/testdata/toy.safetensors", "-o", out}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSampleListsEverySampler(t *testing.T) {
	var b bytes.Buffer
	printSamplers(&b)
	for _, i := range sampler.List() {
		if !strings.Contains(b.String(), i.Name+" ") || !strings.Contains(b.String(), i.Summary) {
			t.Errorf("sampler list lacks %s", i.Name)
		}
	}
}

// TestSampleBatchInvariant: the same request in different batch sizes gives
// the same samples, for a deterministic and a stochastic sampler.
func TestSampleBatchInvariant(t *testing.T) {
	w := toyWeights(t)
	dir := t.TempDir()
	for _, name := range []string{"dpmpp_2m", "ddpm", "euler_ancestral"} {
		var got [][]float32
		for _, batch := range []string{"2", "5"} {
			out := filepath.Join(dir, name+batch+".npy")
			if err := runSample([]string{"--weights", w, "--sampler", name, "--steps", "15", "--n", "5", "--batch", batch, "--seed", "7", "--out-npy", out, "--quiet"}); err != nil {
				t.Fatal(err)
			}
			a, err := npy.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Shape) != 4 || a.Shape[0] != 5 || a.Shape[1] != 2 {
				t.Fatalf("%s: shape %v", name, a.Shape)
			}
			got = append(got, a.Float32())
		}
		for i := range got[0] {
			if got[0][i] != got[1][i] {
				t.Fatalf("%s: value %d is %v with batch 2, %v with batch 5", name, i, got[0][i], got[1][i])
			}
		}
	}
}

func TestWriteGrid(t *testing.T) {
	// two 1×2×3 gray images with values -1, 0, 1 → 0, 128, 255
	data := []float32{-1, 0, 1, 1, 0, -1, 0.5, 0.5, 0.5, -2, 2, 0}
	path := filepath.Join(t.TempDir(), "g.png")
	if err := writeGrid(path, data, []int{2, 1, 2, 3}, -1, 1, 1); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 2 images → 2 columns, 1 row: width 3+2+3, height 2
	if b := img.Bounds(); b.Dx() != 8 || b.Dy() != 2 {
		t.Fatalf("grid size %v", b)
	}
	gray := func(x, y int) uint32 { r, _, _, _ := img.At(x, y).RGBA(); return r >> 8 }
	for _, c := range []struct {
		x, y int
		want uint32
	}{{0, 0, 0}, {1, 0, 128}, {2, 0, 255}, {5, 0, 191}, {5, 1, 0}, {6, 1, 255}} {
		if g := gray(c.x, c.y); g != c.want {
			t.Errorf("pixel (%d,%d) = %d, want %d", c.x, c.y, g, c.want)
		}
	}
	if err := writeGrid(path, make([]float32, 8), []int{2, 2, 1, 2}, -1, 1, 1); err == nil {
		t.Error("2-channel PNG: no error")
	}
}

// TestWriteGridScale: --scale K makes every pixel of the unscaled grid
// (gaps included) a K×K block of the same colour, for gray and RGB images.
func TestWriteGridScale(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		shape []int
		data  []float32
	}{
		{[]int{3, 1, 2, 3}, []float32{-1, 0, 1, 1, 0, -1, 0.5, 0.5, 0.5, -2, 2, 0, -0.25, 0.25, 0.75, 1, -1, 0}},
		{[]int{2, 3, 1, 2}, []float32{-1, 1, 0, 0.5, 1, -1, 0.2, -0.2, 0.9, -0.9, 0, 1}},
	} {
		decode := func(scale int) image.Image {
			path := filepath.Join(dir, "g.png")
			if err := writeGrid(path, c.data, c.shape, -1, 1, scale); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
		one := decode(1)
		for _, k := range []int{2, 5, maxScale} {
			big := decode(k)
			b1, bk := one.Bounds(), big.Bounds()
			if bk.Dx() != k*b1.Dx() || bk.Dy() != k*b1.Dy() {
				t.Fatalf("%v scale %d: %v, want %d×%d", c.shape, k, bk, k*b1.Dx(), k*b1.Dy())
			}
			if w, h := gridSize(c.shape[0], c.shape[2], c.shape[3], k); w != bk.Dx() || h != bk.Dy() {
				t.Errorf("gridSize says %d×%d, the PNG is %v", w, h, bk)
			}
			for y := 0; y < bk.Dy(); y++ {
				for x := 0; x < bk.Dx(); x++ {
					r1, g1, b1, a1 := one.At(x/k, y/k).RGBA()
					r, g, b, a := big.At(x, y).RGBA()
					if r != r1 || g != g1 || b != b1 || a != a1 {
						t.Fatalf("%v scale %d: pixel (%d,%d) differs from (%d,%d) of the unscaled grid", c.shape, k, x, y, x/k, y/k)
					}
				}
			}
		}
	}
	for _, k := range []int{0, -1, maxScale + 1} {
		if err := writeGrid(filepath.Join(dir, "bad.png"), make([]float32, 6), []int{1, 1, 2, 3}, -1, 1, k); err == nil {
			t.Errorf("scale %d: no error", k)
		}
	}
}

// TestSampleScaleFlag runs the CLI on the shipped MNIST model (one step,
// one sample) with --scale 4: a 28×28 sample becomes a 112×112 PNG.
func TestSampleScaleFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the MNIST UNet")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "g.png")
	if err := runSample([]string{"--weights", "../../weights/mnist.safetensors", "--steps", "1", "--n", "1", "--class", "3",
		"--scale", "4", "--out-png", out, "--quiet"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 112 || cfg.Height != 112 {
		t.Errorf("--scale 4 on one 28×28 sample: %d×%d PNG, want 112×112", cfg.Width, cfg.Height)
	}
}

func TestSampleErrors(t *testing.T) {
	w := toyWeights(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--weights", w, "--sampler", "nope", "--out-npy", "x.npy"}, "unknown"},
		{[]string{"--weights", w}, "--out-png"},
		{[]string{"--sampler", "ddim", "--out-npy", "x.npy"}, "--weights"},
		{[]string{"--weights", w, "--class", "3", "--out-npy", "x.npy"}, "not class-conditional"},
		{[]string{"--weights", w, "--guidance", "3", "--out-npy", "x.npy"}, "guidance"},
		{[]string{"--weights", w, "--n", "0", "--out-npy", "x.npy"}, "--n"},
		{[]string{"--weights", w, "--out-png", filepath.Join(t.TempDir(), "g.png")}, "channels"},
		{[]string{"--weights", w, "--steps", "5000", "--out-npy", filepath.Join(t.TempDir(), "x.npy"), "--quiet"}, "num_train_timesteps"},
		{[]string{"--weights", w, "--scale", "0", "--out-npy", "x.npy"}, "--scale"},
		{[]string{"--weights", w, "--scale", "17", "--out-npy", "x.npy"}, "--scale"},
		{[]string{"--weights", w, "--timestep-spacing", "even", "--out-npy", "x.npy"}, "--timestep-spacing"},
		{[]string{"--weights", "../../weights/scoresde-mnist.safetensors", "--timestep-spacing", "trailing", "--out-npy", "x.npy"}, "continuous-time"},
		// 4000 samples of 64×64 at scale 16 make a 67552×66496 grid (18 GB), over
		// the 8 GiB default budget alone: refused before anything is sampled.
		{[]string{"--weights", "../../weights/mnist.safetensors", "--class", "1", "--size", "64", "--n", "4000", "--batch", "1",
			"--scale", "16", "--out-png", filepath.Join(t.TempDir(), "g.png")}, "PNG grid 16.7 GiB), over"},
	} {
		err := runSample(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line mentioning %q", c.args, err, c.want)
		}
	}
}

func TestSampleAndLikelihoodCommands(t *testing.T) {
	w := toyWeights(t)
	x := filepath.Join(t.TempDir(), "x.npy")
	if _, stderr, code := runMain(t, "sample", "--weights", w, "--sampler", "heun", "--steps", "10", "--n", "3", "--out-npy", x); code != 0 || !strings.Contains(stderr, "3 samples with heun") {
		t.Fatalf("sample: exit %d, stderr %q", code, stderr)
	}
	stdout, stderr, code := runMain(t, "likelihood", "--weights", w, "--x", x, "--each", "--quiet")
	if code != 0 || !strings.Contains(stdout, "bits/dim:") || strings.Count(stdout, "\n") != 4 {
		t.Fatalf("likelihood: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, stderr, code := runMain(t, "likelihood", "--weights", w, "--x", w); code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("likelihood of a non-npy file: exit %d, stderr %q", code, stderr)
	}
	stdout, _, code = runMain(t, "sample", "--sampler", "list")
	if code != 0 || !strings.Contains(stdout, "dpmpp_3m") {
		t.Errorf("sample --sampler list: exit %d, %q", code, stdout)
	}
}

// TestSampleTimestepSpacing: --timestep-spacing replaces the model's
// timestep_spacing. The toy model's config names none, so DDIM's default is
// trailing (schedule.DDIMDefaultSpacing) and leading gives other samples.
func TestSampleTimestepSpacing(t *testing.T) {
	w := toyWeights(t)
	dir := t.TempDir()
	run := func(extra ...string) []float32 {
		t.Helper()
		out := filepath.Join(dir, "x.npy")
		args := append([]string{"--weights", w, "--sampler", "ddim", "--steps", "2", "--n", "4", "--seed", "3", "--out-npy", out, "--quiet"}, extra...)
		if err := runSample(args); err != nil {
			t.Fatal(err)
		}
		a, err := npy.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return a.Float32()
	}
	def, trailing, leading := run(), run("--timestep-spacing", "trailing"), run("--timestep-spacing", "leading")
	same := func(a, b []float32) bool {
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return len(a) == len(b)
	}
	if !same(def, trailing) {
		t.Error("the default spacing of a config that names none is not trailing")
	}
	if same(def, leading) {
		t.Error("--timestep-spacing leading changed nothing")
	}
}

// TestSampleClipDenoised: --clip-denoised keeps an ODE sampler's samples in
// the data range; without it the same MNIST run leaves pixels outside it
// (weights/mnist.md explains why).
func TestSampleClipDenoised(t *testing.T) {
	w := filepath.Join("..", "..", "weights", "mnist.safetensors")
	if _, err := os.Stat(w); err != nil {
		t.Skip("weights/mnist.safetensors not present")
	}
	outside := func(clip bool) int {
		x := filepath.Join(t.TempDir(), "x.npy")
		args := []string{"sample", "--weights", w, "--sampler", "euler", "--steps", "3", "--class", "7", "--n", "1", "--seed", "3", "--quiet", "--out-npy", x}
		if clip {
			args = append(args, "--clip-denoised")
		}
		if _, stderr, code := runMain(t, args...); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		a, err := npy.ReadFile(x)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range a.Float64() {
			if v < -1-1e-6 || v > 1+1e-6 {
				n++
			}
		}
		return n
	}
	if n := outside(true); n != 0 {
		t.Errorf("--clip-denoised: %d pixels outside [-1, 1]", n)
	}
	if n := outside(false); n == 0 {
		t.Errorf("plain Euler: no pixel outside [-1, 1]; the test no longer shows the option's effect")
	}
}
