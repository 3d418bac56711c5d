package main

import (
	"bytes"
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
	if err := writeGrid(path, data, []int{2, 1, 2, 3}, -1, 1); err != nil {
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
	if err := writeGrid(path, make([]float32, 8), []int{2, 2, 1, 2}, -1, 1); err == nil {
		t.Error("2-channel PNG: no error")
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
