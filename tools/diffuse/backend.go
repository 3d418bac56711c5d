package main

import (
	"flag"
	"fmt"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/model"
)

// The network backends of the commands that run a model (--backend): fast
// is the SIMD backend's plan over its native Go kernel set (wasm/simd:
// Winograd and packed GEMMs in AVX2+FMA on all cores), reference the
// plain-Go core/cpu, the oracle the other backends are tested against.
const (
	backendFast      = "fast"
	backendReference = "reference"
)

// addBackendFlag registers --backend on fs.
func addBackendFlag(fs *flag.FlagSet) *string {
	return fs.String("backend", backendFast, "network backend: fast (native SIMD kernels, all cores) or reference (plain-Go core/cpu, the oracle)")
}

// checkBackend validates --backend before any model is loaded.
func checkBackend(name string) error {
	switch name {
	case backendFast, backendReference:
		return nil
	}
	return fmt.Errorf("--backend %q: want %s or %s", name, backendFast, backendReference)
}

// newNet builds m's network on the named backend.
func newNet(m *model.Model, backend string) (model.Denoiser, error) {
	if err := checkBackend(backend); err != nil {
		return nil, err
	}
	if backend == backendReference {
		return cpu.NewDenoiser(m), nil
	}
	return fastDenoiser(m), nil
}
