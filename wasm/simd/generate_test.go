//go:build !(js && wasm)

package simd

import (
	"bytes"
	"os"
	"testing"

	"github.com/diffuse-web/diffuse/wasm/simd/internal/kernelgen"
)

// The checked-in kernels.wasm and bindings must be exactly what the
// generator writes: they are never edited by hand (run go generate).
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := kernelgen.Generate(kernelgen.Default)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output: run go generate ./wasm/simd", name)
		}
	}
	if !bytes.Equal(kernelsWasm, files["kernels.wasm"]) {
		t.Error("embedded kernels.wasm is stale")
	}
}

// The warmup export (run by simd_glue.js on a throwaway instance) must stay
// inside its 256 KiB scratch: here the scratch sits between guards.
func TestWarmupStaysInScratch(t *testing.T) {
	if testGoKernels {
		t.Skip("warmup is for the browser's kernels.wasm")
	}
	k := newK(t)
	s, g := mk(k, 64<<10, 0, nil)
	for i := range s {
		s[i] = float32(i%17) - 8
	}
	k.warmup(int(k.addrF32(s)), 3)
	g.check(t, "warmup")
}
