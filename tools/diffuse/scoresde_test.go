package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/torchpt"
)

const scoreTestdata = "../../core/scoresde/testdata"

// The tutorial-format checkpoint made by core/scoresde/testdata/make.py
// (a small ScoreNet in PyTorch, saved as a DataParallel state dict) converts
// and evaluates to PyTorch's output.
func TestConvertScoreSDE(t *testing.T) {
	for _, dtype := range []string{"f32", "f16"} {
		out := filepath.Join(t.TempDir(), "score.safetensors")
		if err := runConvert([]string{"--from", "scoresde", filepath.Join(scoreTestdata, "tiny_scorenet.pth"), "-o", out, "--dtype", dtype}); err != nil {
			t.Fatal(err)
		}
		m, err := model.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if m.Arch != model.ArchScoreNet {
			t.Fatalf("arch %q", m.Arch)
		}
		y, err := evalFiles(m, filepath.Join(scoreTestdata, "x.npy"), filepath.Join(scoreTestdata, "t.npy"), "", backendReference)
		if err != nil {
			t.Fatal(err)
		}
		want, err := npy.ReadFile(filepath.Join(scoreTestdata, "y.npy"))
		if err != nil {
			t.Fatal(err)
		}
		// Measured: 1.3e-6 (f32) and 7e-4 (f16) of max|y|.
		checkClose(t, dtype, y.Data, want.Float32(), map[string]float64{"f32": 1e-4, "f16": 5e-3}[dtype])
	}
}

// A checkpoint whose pickle would call os.system is refused, and nothing runs.
func TestConvertRefusesHostilePickle(t *testing.T) {
	os.Remove("/tmp/diffuse-pwned")
	err := runConvert([]string{"--from", "scoresde", filepath.Join(scoreTestdata, "hostile.pth"), "-o", filepath.Join(t.TempDir(), "x.safetensors")})
	var te *torchpt.Error
	if !errors.As(err, &te) || te.Kind != torchpt.ErrForbiddenGlobal {
		t.Fatalf("got %v, want a torchpt ErrForbiddenGlobal error", err)
	}
	t.Logf("refused with: %v", err)
	if _, statErr := os.Stat("/tmp/diffuse-pwned"); statErr == nil {
		t.Fatal("the hostile payload ran")
	}
}

// The toy model file written by the toy training script (core/toy2d/testdata/make.py
// saves a random one the same way) converts and matches PyTorch.
func TestConvertToy2D(t *testing.T) {
	dir := "../../core/toy2d/testdata"
	out := filepath.Join(t.TempDir(), "toy.safetensors")
	if err := runConvert([]string{"--from", "toy2d", filepath.Join(dir, "toy.safetensors"), "-o", out, "--dtype", "f32"}); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.InShape(); len(s) != 3 || s[0] != 2 {
		t.Fatalf("InShape %v, want [2 1 1]", s)
	}
	y, err := evalFiles(m, filepath.Join(dir, "x.npy"), filepath.Join(dir, "t.npy"), "", backendReference)
	if err != nil {
		t.Fatal(err)
	}
	want, err := npy.ReadFile(filepath.Join(dir, "y.npy"))
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "toy2d", y.Data, want.Float32(), 1e-5)
}
