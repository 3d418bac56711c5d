package model_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/torchpt"
)

const binDir = "testdata/diffusers_bin" // made by testdata/make_bin.py

// A folder with only diffusion_pytorch_model.bin (a pickled state dict, as
// older hub repositories ship) loads and matches PyTorch's output.
func TestFromDiffusersDirBin(t *testing.T) {
	m, err := model.FromDiffusersDir(binDir)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) *npy.Array {
		a, err := npy.ReadFile(filepath.Join(binDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	x, tt, want := read("x.npy"), read("t.npy"), read("y.npy")
	y, err := cpu.NewDenoiser(m).Denoise(x.Tensor(), tt.Float32(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var maxAbs, maxErr float64
	for i, w := range want.Float32() {
		maxAbs = math.Max(maxAbs, math.Abs(float64(w)))
		maxErr = math.Max(maxErr, math.Abs(float64(y.Data[i]-w)))
	}
	t.Logf("max abs error %.3g, relative %.3g", maxErr, maxErr/maxAbs)
	if maxErr > 1e-4*maxAbs {
		t.Errorf("max abs error %.3g over 1e-4 of max|y| %.3g", maxErr, maxAbs)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// safetensors wins when both files are there: a broken one is not skipped.
func TestFromDiffusersDirPrefersSafetensors(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(binDir, "config.json"), filepath.Join(dir, "config.json"))
	copyFile(t, filepath.Join(binDir, "diffusion_pytorch_model.bin"), filepath.Join(dir, "diffusion_pytorch_model.bin"))
	if err := os.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), []byte("not safetensors"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := model.FromDiffusersDir(dir); err == nil {
		t.Fatal("a broken .safetensors beside the .bin was ignored")
	}
}

// A hostile .bin is refused by the restricted unpickler with a typed error.
func TestFromDiffusersDirHostileBin(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(binDir, "config.json"), filepath.Join(dir, "config.json"))
	copyFile(t, "../scoresde/testdata/hostile.pth", filepath.Join(dir, "diffusion_pytorch_model.bin"))
	os.Remove("/tmp/diffuse-pwned")
	_, err := model.FromDiffusersDir(dir)
	var te *torchpt.Error
	if !errors.As(err, &te) || te.Kind != torchpt.ErrForbiddenGlobal {
		t.Fatalf("got %v, want a torchpt ErrForbiddenGlobal error", err)
	}
	if _, err := os.Stat("/tmp/diffuse-pwned"); err == nil {
		t.Fatal("the hostile payload ran")
	}
}
