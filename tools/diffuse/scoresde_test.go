package main

import (
	"errors"
	"math"
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
		y, err := evalFiles(m, filepath.Join(scoreTestdata, "x.npy"), filepath.Join(scoreTestdata, "t.npy"), "")
		if err != nil {
			t.Fatal(err)
		}
		want, err := npy.ReadFile(filepath.Join(scoreTestdata, "y.npy"))
		if err != nil {
			t.Fatal(err)
		}
		w := want.Float32()
		var maxAbs, maxErr float64
		for i := range w {
			maxAbs = math.Max(maxAbs, math.Abs(float64(w[i])))
			maxErr = math.Max(maxErr, math.Abs(float64(y.Data[i]-w[i])))
		}
		// Measured: 1.3e-6 (f32) and 7e-4 (f16) of max|y|.
		tol := map[string]float64{"f32": 1e-4, "f16": 5e-3}[dtype]
		t.Logf("%s: max abs error %.3g of max|y| %.3g", dtype, maxErr, maxAbs)
		if !(maxErr <= tol*maxAbs) {
			t.Errorf("%s: max abs error %.3g over %g of max|y| %.3g", dtype, maxErr, tol, maxAbs)
		}
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
