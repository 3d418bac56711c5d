package unet_test

import (
	"os"
	"testing"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/unet"
	"github.com/diffuse-web/diffuse/core/unet/unettest"
)

// TestDDPMQuickstartBuilds: the public configs of the diffusers quick-start
// DDPM models (testdata/README.md says where each file comes from) parse,
// their scheduler configs parse, and the full-size graph builds for one
// sample at the model's sample_size from the diffusers parameter names and
// shapes (shapes only, nothing allocated), with every parameter used. The
// parameter counts are the published ones (Ho et al. 2020, "Denoising
// Diffusion Probabilistic Models", Appendix B: 35.7M for CIFAR10, 114M for
// the 256×256 LSUN and CelebA-HQ models), which a wrong channel or block
// layout in unettest or the builder would miss by millions. Weights as
// float32 plus one call's activations fit the page's 1 GiB wasm budget.
func TestDDPMQuickstartBuilds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lo, hi float64 // parameter count range
		side   int
	}{
		{"ddpm_church_256", 113e6, 115e6, 256},
		{"ddpm_cifar10_32", 35.5e6, 36e6, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := os.ReadFile("testdata/" + tc.name + "_config.json")
			if err != nil {
				t.Fatal(err)
			}
			c, err := unet.ParseConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := os.ReadFile("testdata/" + tc.name + "_scheduler_config.json")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := schedule.Parse(sc); err != nil {
				t.Fatalf("scheduler_config.json: %v", err)
			}
			params := map[string]*tensor.Tensor{}
			for n, s := range unettest.Shapes(c) {
				params[n] = &tensor.Tensor{Shape: s}
			}
			for n, w := range unet.FixedParams(c) {
				params[n] = w
			}
			g, err := unet.Build(c, params, 1, tc.side, tc.side)
			if err != nil {
				t.Fatal(err)
			}
			n := unettest.Count(c)
			mem := g.Memory()
			weights := limits.Mul(n, 4)
			t.Logf("%s: %d parameters (%s as float32), activations %s for one %d² sample, %d nodes",
				tc.name, n, limits.Bytes(weights), limits.Bytes(mem.Activations), tc.side, len(g.Nodes))
			if float64(n) < tc.lo || float64(n) > tc.hi {
				t.Errorf("%d parameters, want %.1fM–%.1fM", n, tc.lo/1e6, tc.hi/1e6)
			}
			if need := limits.Add(weights, mem.Activations); need > limits.WasmBudget {
				t.Errorf("needs %s, over the page's %s wasm budget", limits.Bytes(need), limits.Bytes(limits.WasmBudget))
			}
		})
	}
}
