package main

import (
	"github.com/diffuse-web/diffuse/core/fixtures"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
)

// fixturesDir is where third-party reference outputs live (see the README of
// ../shared/fixtures); FIXTURES_DIR overrides it.
func fixturesDir(t *testing.T) string {
	dir := fixtures.Dir()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("fixtures not found at %s (set FIXTURES_DIR)", dir)
	}
	return dir
}

// Tolerances, as a fraction of max|y|. f32 is the bar; the f16 bound
// was measured on the fixtures (worst case 1.1e-3, mnist_cond) and set with headroom.
const (
	tolF32 = 1e-4
	tolF16 = 5e-3
)

// TestDiffusersConformance runs every case folder under
// $FIXTURES_DIR/diffusers through eval, with the fp32 weights as shipped (on
// the reference and the fast backend) and after conversion to our fp16
// file, and compares with diffusers' own output.
func TestDiffusersConformance(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(fixturesDir(t), "diffusers", "*", "config.json"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no diffusers cases found: %v", err)
	}
	for _, cfg := range cases {
		dir := filepath.Dir(cfg)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := npy.ReadFile(filepath.Join(dir, "y.npy"))
			if err != nil {
				t.Fatal(err)
			}
			classPath := filepath.Join(dir, "class_labels.npy")
			if _, err := os.Stat(classPath); err != nil {
				classPath = ""
			}
			m, err := model.FromDiffusersDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			check := func(name string, m *model.Model, tol float64, backend string) {
				y, err := evalFiles(m, filepath.Join(dir, "x.npy"), filepath.Join(dir, "t.npy"), classPath, backend)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				checkClose(t, name, y.Data, want.Float32(), tol)
			}
			check("f32", m, tolF32, backendReference)
			check("f32 fast backend", m, tolF32, backendFast)

			out := filepath.Join(t.TempDir(), "model.safetensors")
			if err := runConvert([]string{"--from", "diffusers", "-o", out, dir}); err != nil {
				t.Fatal(err)
			}
			m16, err := model.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			check("f16", m16, tolF16, backendReference)
		})
	}
}

// checkClose fails unless max|got-want| <= tol·max|want| (the measure).
func checkClose(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: output has %d values, want %d", name, len(got), len(want))
	}
	var maxAbs, maxErr float64
	for i := range want {
		maxAbs = math.Max(maxAbs, math.Abs(float64(want[i])))
		maxErr = math.Max(maxErr, math.Abs(float64(got[i]-want[i])))
	}
	rel := maxErr / maxAbs
	t.Logf("%s: max abs error %.3g, max|y| %.3g, relative %.3g (tolerance %g)", name, maxErr, maxAbs, rel, tol)
	if !(rel <= tol) {
		t.Errorf("%s: max abs error %.3g is %.3g of max|y|, over %g", name, maxErr, rel, tol)
	}
}
