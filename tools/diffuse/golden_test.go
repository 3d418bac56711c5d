package main

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/diffuse-web/diffuse/core/npy"
)

// goldenArgs made testdata/golden_mnist_ddim10.npy with the shipped MNIST
// weights; regenerate it with
//
//	go run ./tools/diffuse sample --out-npy tools/diffuse/testdata/golden_mnist_ddim10.npy <goldenArgs>
//
// only when a change is meant to alter samples, and say why in the commit.
var goldenArgs = []string{"--weights", "../../weights/mnist.safetensors", "--sampler", "ddim", "--steps", "10",
	"--n", "2", "--batch", "2", "--class", "7", "--guidance", "2", "--seed", "42", "--quiet"}

// TestGoldenMNISTSample guards the whole chain (file loading, network, schedule,
// guidance, DDIM, seeded noise) on both backends: any regression moves
// these pixels. The
// tolerance, 1e-3 on a [-1, 1] image, allows for summation-order and FMA
// differences between machines, not for a changed model or sampler.
func TestGoldenMNISTSample(t *testing.T) {
	if runtime.GOOS == "js" {
		t.Skip("the browser tests compare the wasm build with the native CLI")
	}
	for _, backend := range []string{backendFast, backendReference} {
		t.Run(backend, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.npy")
			if err := runSample(append(goldenArgs, "--backend", backend, "--out-npy", out)); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, out)
		})
	}
}

// checkGolden compares the sample written to out with the golden one.
func checkGolden(t *testing.T, out string) {
	t.Helper()
	got, err := npy.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := npy.ReadFile("testdata/golden_mnist_ddim10.npy")
	if err != nil {
		t.Fatal(err)
	}
	g, w := got.Float32(), want.Float32()
	if len(g) != len(w) || len(w) != 2*28*28 {
		t.Fatalf("got %d values, golden has %d", len(g), len(w))
	}
	var maxErr float32
	for i := range w {
		d := g[i] - w[i]
		if d < 0 {
			d = -d
		}
		maxErr = max(maxErr, d)
	}
	t.Logf("max abs difference from the golden sample: %g", maxErr)
	if maxErr > 1e-3 {
		t.Errorf("sample moved from the golden one by %g (tolerance 1e-3)", maxErr)
	}
}
