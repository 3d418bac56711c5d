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

// lucidCases covers the ops of lucidrains' U-Net (lucid.wgsl) on awkward
// shapes: odd sizes, channel counts that are not multiples of 4, batch 1
// and 7, with and without memory key/values, more than 64 tokens (several
// chunks of the attention kernels) and head widths past 64, 128 and 192
// (every accumulator lane).
func lucidCases(r *rand.Rand) []*opCase {
	var cs []*opCase
	type in = func(string, ...int) graph.Value
	for _, rc := range []struct {
		shape []int
		flat  bool // gain stored as [C] instead of [1,C,1,1]
	}{
		{[]int{1, 5, 3, 7}, false},
		{[]int{7, 6, 5, 3}, true},
		{[]int{2, 67, 4, 5}, false},
		{[]int{3, 10}, true},
	} {
		rc := rc
		C := rc.shape[1]
		gain := randT(r, 1, 1, C, 1, 1)
		if rc.flat {
			gain = randT(r, 1, C)
		}
		cs = append(cs, &opCase{name: fmt.Sprintf("rms_norm_channel/%v", rc.shape), params: map[string]*tensor.Tensor{"n.g": gain},
			build: func(b *graph.Builder, in in) graph.Value {
				return b.RMSNormChannel("n.g", b.Affine(in("x", rc.shape...), 3, 1.5))
			}})
	}
	for _, pc := range []struct {
		shape []int
		r     int
	}{{[]int{1, 3, 6, 10}, 2}, {[]int{7, 5, 4, 4}, 2}, {[]int{2, 3, 9, 6}, 3}} {
		pc := pc
		cs = append(cs, &opCase{name: fmt.Sprintf("pixel_unshuffle/%v/%d", pc.shape, pc.r), params: map[string]*tensor.Tensor{},
			build: func(b *graph.Builder, in in) graph.Value {
				return b.PixelUnshuffle(in("x", pc.shape...), pc.r)
			}})
	}
	for _, sc := range []struct {
		shape    []int
		start, n int
	}{{[]int{7, 6, 3, 5}, 1, 3}, {[]int{1, 5, 7}, 4, 1}, {[]int{2, 9, 2, 3}, 0, 9}} {
		sc := sc
		cs = append(cs, &opCase{name: fmt.Sprintf("slice_channels/%v/%d+%d", sc.shape, sc.start, sc.n), params: map[string]*tensor.Tensor{},
			build: func(b *graph.Builder, in in) graph.Value {
				return b.SliceChannels(in("x", sc.shape...), sc.start, sc.n)
			}})
	}
	type attCase struct {
		B, heads, D, H, W, M int
		sharp                float64 // input scale: larger makes the softmaxes peakier
	}
	for _, full := range []bool{false, true} {
		for _, ac := range []attCase{
			{1, 2, 5, 3, 7, 3, 1},
			{7, 1, 8, 2, 3, 0, 1},
			{2, 4, 32, 5, 5, 4, 3}, // lucidrains' defaults: 4 heads of 32, 4 memory tokens
			{1, 2, 3, 10, 9, 4, 2}, // 94 keys: two chunks of 64
			{1, 1, 70, 3, 3, 2, 1},
			{1, 1, 197, 2, 2, 1, 1},
		} {
			ac := ac
			op := graph.OpLinearAttention
			memShape := []int{2, ac.heads, ac.D, ac.M}
			if full {
				op = graph.OpAttentionMemKV
				memShape = []int{2, ac.heads, ac.M, ac.D}
			}
			params := map[string]*tensor.Tensor{}
			mem := ""
			if ac.M > 0 {
				mem = "a.mem_kv"
				params[mem] = randT(r, 1, memShape...)
			}
			cs = append(cs, &opCase{name: fmt.Sprintf("%s/%+v", op, ac), params: params,
				build: func(b *graph.Builder, in in) graph.Value {
					qkv := b.Affine(in("qkv", ac.B, 3*ac.heads*ac.D, ac.H, ac.W), ac.sharp, 0)
					if full {
						return b.AttentionMemKV("a", qkv, mem, ac.heads, ac.D)
					}
					return b.LinearAttention("a", qkv, mem, ac.heads, ac.D)
				}})
		}
	}
	return cs
}

var lucidKinds = []graph.Kind{
	graph.OpRMSNormChannel, graph.OpPixelUnshuffle, graph.OpSliceChannels,
	graph.OpLinearAttention, graph.OpAttentionMemKV,
}

// TestLucidOps checks every lucid kernel against the CPU reference, with f32
// and with f16-packed weights.
func TestLucidOps(t *testing.T) { checkOpCases(t, lucidCases, lucidKinds) }

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
