//go:build js && wasm

package webgpu

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/lucid"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// TestLucidFusion checks rms_norm with a fused scale_shift and SiLU (the
// first half of lucidrains' ResnetBlock), with a SiLU and the residual add
// (its second), and with a residual alone (LinearAttention's to_out).
func TestLucidFusion(t *testing.T) {
	d := testDevice(t)
	r := rand.New(rand.NewSource(4))
	const B, C, H, W = 3, 6, 5, 7
	params := map[string]*tensor.Tensor{"n1.g": randT(r, 1, 1, C, 1, 1), "n2.g": randT(r, 1, 1, C, 1, 1), "n3.g": randT(r, 1, C)}
	c := &opCase{name: "lucid resnet norms", params: params,
		build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			x := in("x", B, C, H, W)
			h := b.Unary(graph.OpSiLU, b.ScaleShift(b.RMSNormChannel("n1.g", x), in("e", B, 2*C)))
			h = b.Add(b.Unary(graph.OpSiLU, b.RMSNormChannel("n2.g", h)), x)
			return b.Add(x, b.RMSNormChannel("n3.g", h)) // residual first, as attention's x + to_out(...)
		}}
	g, err := c.graphOf(r, params)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Compile(t.Context(), g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Steps() != 3 {
		t.Errorf("fused program has %d steps, want 3", p.Steps())
	}
	p.Release()
	for _, o := range []Options{{}, {Weights: WeightsF16}} {
		e := compare(t, d, c, o)
		t.Logf("weights %v: NMSE %.3g", o.Weights, e)
		if !(e <= nmseOp) {
			t.Errorf("weights %v: NMSE %.3g over %g", o.Weights, e, nmseOp)
		}
	}
}

// lucidSize is the side the whole-network test runs at ($WEBGPU_LUCID_SIZE
// overrides it): the network is
// convolutional (any multiple of its down factor, 4), and the fixture's
// 28×28 takes a minute on SwiftShader (measured there: NMSE vs CPU 9.4e-13
// f32, 8.9e-13 f16 at 28×28 batch 2; 17 s at 12×12).
const lucidSize = 12

// TestLucidNetwork runs the lucidrains fixture (denoising-diffusion-pytorch
// 2.3.1: RMSNorm, linear attention, full attention with memory key/values,
// pixel-unshuffle) through the GPU denoiser and the CPU reference on the
// same graph, cropped to lucidSize, with f32 weights and with weights
// rounded to f16 (uploaded packed).
func TestLucidNetwork(t *testing.T) {
	d := testDevice(t)
	size := lucidSize
	if s, err := strconv.Atoi(os.Getenv("WEBGPU_LUCID_SIZE")); err == nil && s > 0 {
		size = s // 28: the fixture's own size, also compared with PyTorch's output
	}
	f := lucidFixture(t, size)
	kinds := map[graph.Kind]bool{}
	g, err := f.m.Graph(1, size, size)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		kinds[n.Op] = true
	}
	for _, k := range []graph.Kind{graph.OpRMSNormChannel, graph.OpPixelUnshuffle, graph.OpLinearAttention, graph.OpAttentionMemKV} {
		if !kinds[k] {
			t.Errorf("the fixture's graph has no %s", k)
		}
	}
	checkNetwork(t, d, f, "denoising-diffusion-pytorch")
}

// lucidFixture loads $FIXTURES_DIR/lucidrains/lucid_small (a Trainer
// checkpoint with x, t and denoising-diffusion-pytorch's y) as a model of
// size×size samples, its input cropped to that size (y dropped unless it is
// the native 28).
func lucidFixture(t *testing.T, size int) fixture {
	dir := filepath.Join(fixturesDir(t), "lucidrains", "lucid_small")
	data, err := os.ReadFile(filepath.Join(dir, "model-1.pt"))
	if err != nil {
		t.Skipf("no lucidrains fixture: %v", err)
	}
	m, err := model.FromLucidrains(data, true, lucid.Overrides{ImageSize: [2]int{size, size}})
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []float32 {
		a, err := npy.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return a.Float32()
	}
	xa, err := npy.ReadFile(filepath.Join(dir, "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{name: "lucid_small", m: m, x: tensor.From(xa.Float32(), xa.Shape...), t: read("t.npy"), y: read("y.npy")}
	for len(f.t) < f.x.Shape[0] {
		f.t = append(f.t, f.t[0])
	}
	if size != f.x.Shape[2] || size != f.x.Shape[3] {
		f = f.crop(size)
	}
	return f
}

// BenchmarkLucidDenoise times one Denoise call of the lucidrains fixture at
// its 28×28, batch 1 and 16 (a measurement, not a test).
func BenchmarkLucidDenoise(b *testing.B) {
	t := &testing.T{}
	d := testDevice(t)
	f := lucidFixture(t, 28)
	for _, B := range []int{1, 16} {
		b.Run(fmt.Sprintf("b%d", B), func(b *testing.B) { benchDenoise(b, d, f, B, Options{}) })
	}
}
