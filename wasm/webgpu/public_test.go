//go:build js && wasm

package webgpu

import (
	"os"
	"testing"

	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/unet"
	"github.com/diffuse-web/diffuse/core/unet/unettest"
)

// WebGPU's default limits (https://www.w3.org/TR/webgpu/#limit-default):
// what any adapter grants without asking.
const (
	defaultBindingLimit = 128 << 20 // maxStorageBufferBindingSize
	defaultBufferLimit  = 256 << 20 // maxBufferSize
)

// TestPublic256FitsDefaultLimits: the google/ddpm-church-256 network
// (core/unet/testdata; shapes only, nothing allocated or uploaded) plans
// one 256×256 sample within WebGPU's default limits with either kernel set:
// every weight and every value, scratch included, fits one binding. With
// the serial kernels that needs the Winograd convolutions whose scratch
// does not fit to run direct (winoFits): at 256×256 and 256 channels
// Winograd alone would need more than the limit, which the test also checks,
// so it fails if the rule is lost.
func TestPublic256FitsDefaultLimits(t *testing.T) {
	cfg, err := os.ReadFile("../../core/unet/testdata/ddpm_church_256_config.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := unet.ParseConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]*tensor.Tensor{}
	for n, s := range unettest.Shapes(c) {
		params[n] = &tensor.Tensor{Shape: s}
	}
	for n, w := range unet.FixedParams(c) {
		params[n] = w
	}
	g, err := unet.Build(c, params, 1, 256, 256)
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(min(defaultBindingLimit, defaultBufferLimit))
	for n, p := range g.Params {
		if b := valBytes(p.Shape); b > limit {
			t.Errorf("weight %s: %d bytes, over the %d-byte binding limit", n, b, limit)
		}
	}
	for _, serial := range []bool{false, true} {
		per := perSampleBytes(g, serial, limit)
		t.Logf("serial %v: largest binding for one sample %.1f MiB", serial, float64(per)/(1<<20))
		if per > limit {
			t.Errorf("serial %v: one sample needs a %d-byte binding, over the default %d", serial, per, limit)
		}
	}
	if all := winoScratch(g, 1<<62); all <= limit {
		t.Errorf("Winograd everywhere needs only %d bytes: the test no longer exercises winoFits", all)
	}
}
