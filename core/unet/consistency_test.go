package unet_test

import (
	"os"
	"testing"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/unet"
	"github.com/diffuse-web/diffuse/core/unet/unettest"
)

// TestConsistencyImageNet64Builds: the public config.json of
// openai/diffusers-cd_imagenet64_l2 (unet/config.json, revision
// b3163073330d94da85ef6a1858a668afeda394c5; the CT and LPIPS ImageNet-64
// checkpoints share it) parses, and the graph of its full-size network
// builds for one 64×64 sample from the diffusers parameter names and
// shapes (unettest.Shapes; shapes only, nothing allocated), with every
// parameter used. Its weights (as float32, how they are held in memory)
// and one call's activations fit the native budget; the 1 GiB wasm
// budget they do not (logged).
func TestConsistencyImageNet64Builds(t *testing.T) {
	cfg, err := os.ReadFile("testdata/cd_imagenet64_l2_config.json")
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
	g, err := unet.Build(c, params, 1, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	mem := g.Memory()
	weights := limits.Mul(unettest.Count(c), 4)
	t.Logf("cd_imagenet64: %d parameters (%s as float32), activations %s for one sample, %d nodes",
		unettest.Count(c), limits.Bytes(weights), limits.Bytes(mem.Activations), len(g.Nodes))
	// The published model has 295.9M parameters (the openai
	// consistency_models ImageNet-64 EDM architecture).
	if n := unettest.Count(c); n < 280e6 || n > 310e6 {
		t.Errorf("%d parameters, want about 296M", n)
	}
	need := limits.Add(weights, mem.Activations)
	if need > limits.NativeBudget {
		t.Errorf("needs %s, over the native budget %s", limits.Bytes(need), limits.Bytes(limits.NativeBudget))
	}
	if need > limits.WasmBudget {
		t.Logf("needs %s: over the page's %s wasm budget (the CLI and a native server run it)", limits.Bytes(need), limits.Bytes(limits.WasmBudget))
	}
}
