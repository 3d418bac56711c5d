//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"sync"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// Thresholds on the normalised MSE Σ(gpu-cpu)²/Σcpu² against the CPU
// reference. Both sides compute in f32 with different summation orders, so
// most kernels measure 0 to 3e-13 (SwiftShader and an NVIDIA H200 alike);
// the exception is fourier_embed with log input, ~5e-10, where the
// arguments x·W·2π reach ~1e3 and a one-ulp difference between WGSL's log
// and the CPU's correctly rounded one moves them by ~1e-4. f16-packed
// weights are compared with a CPU run on the same f16-rounded weights, so
// the bar is the same. Networks measure ~3e-12.
const (
	nmseOp      = 1e-8 // single kernels
	nmseNetwork = 1e-8 // a whole UNet (errors compound through ~100 layers)
)

var (
	sharedOnce sync.Once
	sharedDev  *Device
	sharedErr  error
)

// testDevice opens one device for the package's tests, or skips when the
// JavaScript host has no WebGPU (plain `go test` under Node without the
// setup module: run `make test-webgpu`).
func testDevice(t *testing.T) *Device {
	t.Helper()
	sharedOnce.Do(func() { sharedDev, sharedErr = Open(context.Background()) })
	if errors.Is(sharedErr, ErrNoWebGPU) {
		t.Skip("no WebGPU in this JavaScript host (run make test-webgpu)")
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedDev
}

// ownDevice opens a device of the test's own, for tests that destroy it
// (the shared one must survive); it skips without WebGPU.
func ownDevice(t *testing.T) *Device {
	t.Helper()
	testDevice(t)
	d, err := Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func nmse(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return num
	}
	return num / den
}

func randT(r *rand.Rand, scale float64, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(scale * r.NormFloat64())
	}
	return t
}

// opCase is a small graph with random weights and inputs.
type opCase struct {
	name   string
	params map[string]*tensor.Tensor
	inputs map[string][]float32
	build  func(b *graph.Builder, in func(name string, shape ...int) graph.Value) graph.Value
}

// graphOf builds c's graph over params and fills random inputs.
func (c *opCase) graphOf(r *rand.Rand, params map[string]*tensor.Tensor) (*graph.Graph, error) {
	g := graph.New(params)
	b := graph.NewBuilder(g)
	fill := c.inputs == nil
	if fill {
		c.inputs = map[string][]float32{}
	}
	in := func(name string, shape ...int) graph.Value {
		if fill {
			c.inputs[name] = randT(r, 1, shape...).Data
		}
		return g.Input(name, shape...)
	}
	g.Output = c.build(b, in)
	return g, b.Err()
}

// compare runs c on the CPU and on the GPU and returns the NMSE.
func compare(t *testing.T, d *Device, c *opCase, o Options) float64 {
	t.Helper()
	r := rand.New(rand.NewSource(int64(len(c.name)) * 7919))
	cpuParams := c.params
	if o.Weights == WeightsF16 {
		cpuParams = RoundF16(c.params)
	}
	g, err := c.graphOf(r, c.params)
	if err != nil {
		t.Fatal(err)
	}
	gc, _ := c.graphOf(r, cpuParams)
	want, err := cpu.Run(gc, c.inputs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Compile(context.Background(), g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	got, err := p.Run(context.Background(), c.inputs)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
	}
	for i, v := range got.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("output[%d] = %v", i, v)
		}
	}
	return nmse(got.Data, want.Data)
}

// opCases covers every graph op kind on awkward shapes: odd sizes, channel
// counts that are not multiples of 4, tiles only partly filled, batch 1 and 7.
func opCases(r *rand.Rand) []*opCase {
	var cs []*opCase
	p := func(kv ...any) map[string]*tensor.Tensor {
		m := map[string]*tensor.Tensor{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(*tensor.Tensor)
		}
		return m
	}
	type convCase struct {
		B, I, H, W, O, K, stride int
		pad                      [4]int
		bias                     bool
	}
	for _, cc := range []convCase{
		{1, 3, 5, 7, 4, 3, 1, [4]int{1, 1, 1, 1}, true},
		{7, 5, 6, 6, 9, 3, 2, [4]int{1, 1, 1, 1}, true},
		{2, 4, 8, 7, 6, 3, 2, [4]int{0, 0, 1, 1}, true}, // Downsample2D with padding 0
		{3, 6, 5, 5, 10, 1, 1, [4]int{}, false},         // 1x1 shortcut
		{1, 3, 9, 7, 5, 3, 1, [4]int{}, true},           // unpadded 3x3
		{2, 70, 9, 9, 67, 3, 1, [4]int{1, 1, 1, 1}, true},
		{1, 2, 4, 5, 3, 2, 1, [4]int{1, 0, 0, 1}, true}, // even kernel, asymmetric
	} {
		cc := cc
		params := p("c.weight", randT(r, 1/math.Sqrt(float64(cc.I*cc.K*cc.K)), cc.O, cc.I, cc.K, cc.K))
		if cc.bias {
			params["c.bias"] = randT(r, 0.5, cc.O)
		}
		cs = append(cs, &opCase{name: fmt.Sprintf("conv2d/%v", cc), params: params,
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Conv2D("c", in("x", cc.B, cc.I, cc.H, cc.W), cc.stride, cc.pad)
			}})
	}
	type convtCase struct{ B, I, H, W, O, K, stride, pad, outPad int }
	for _, cc := range []convtCase{
		{2, 3, 5, 5, 4, 4, 2, 1, 0},
		{1, 5, 4, 3, 3, 3, 2, 1, 1},
		{7, 2, 3, 3, 5, 3, 1, 0, 0},
		// ScoreNet's shape (no padding, output padding 1, more channels
		// than a serial block's 8), a 5×5 kernel, and stride 3 with a 2×2
		// kernel (output rows no tap reaches).
		{1, 9, 5, 5, 11, 3, 2, 0, 1},
		{2, 4, 3, 4, 6, 5, 2, 2, 1},
		{2, 3, 4, 3, 5, 2, 3, 0, 2},
	} {
		cc := cc
		cs = append(cs, &opCase{name: fmt.Sprintf("conv_transpose2d/%v", cc),
			params: p("c.weight", randT(r, 0.3, cc.I, cc.O, cc.K, cc.K), "c.bias", randT(r, 0.5, cc.O)),
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.ConvTranspose2D("c", in("x", cc.B, cc.I, cc.H, cc.W), cc.stride, cc.pad, cc.outPad)
			}})
	}
	for _, gc := range []struct {
		shape  []int
		groups int
		bias   bool
		offset float64 // added to the input: a mean far from zero tests the variance's stability
	}{
		{[]int{2, 12, 5, 5}, 3, true, 1.5},
		{[]int{1, 32, 7, 9}, 8, true, 1.5},
		{[]int{7, 10, 3, 11}, 5, false, 1.5},
		{[]int{3, 6, 33}, 2, true, 1.5},
		{[]int{1, 4, 40, 40}, 1, true, 1.5}, // a group larger than the workgroup many times over
		{[]int{2, 8, 9, 9}, 2, true, 1000},
	} {
		gc := gc
		params := p("n.weight", randT(r, 1, gc.shape[1]))
		if gc.bias {
			params["n.bias"] = randT(r, 1, gc.shape[1])
		}
		cs = append(cs, &opCase{name: fmt.Sprintf("group_norm/%v/%d/%g", gc.shape, gc.groups, gc.offset), params: params,
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				x := in("x", gc.shape...)
				return b.GroupNorm("n", b.Affine(x, 3, gc.offset), gc.groups, 1e-5)
			}})
	}
	for _, lc := range []struct {
		shape []int
		O     int
		bias  bool
	}{
		{[]int{3, 5}, 7, true},
		{[]int{2, 17, 33}, 70, true},
		{[]int{1, 130}, 3, false},
		{[]int{7, 65, 64}, 64, true},
	} {
		lc := lc
		I := lc.shape[len(lc.shape)-1]
		params := p("l.weight", randT(r, 1/math.Sqrt(float64(I)), lc.O, I))
		if lc.bias {
			params["l.bias"] = randT(r, 0.5, lc.O)
		}
		cs = append(cs, &opCase{name: fmt.Sprintf("linear/%v->%d", lc.shape, lc.O), params: params,
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Linear("l", in("x", lc.shape...))
			}})
	}
	for _, shape := range [][]int{{7, 3, 5, 5}, {1, 13}} {
		shape := shape
		for _, op := range []graph.Kind{graph.OpSiLU, graph.OpGELU} {
			op := op
			cs = append(cs, &opCase{name: fmt.Sprintf("%s/%v", op, shape), params: p(),
				build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
					return b.Unary(op, b.Affine(in("x", shape...), 3, 0))
				}})
		}
		cs = append(cs, &opCase{name: fmt.Sprintf("affine/%v", shape), params: p(),
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Affine(in("x", shape...), -0.7, 0.25)
			}})
		cs = append(cs, &opCase{name: fmt.Sprintf("add/%v", shape), params: p(),
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Add(in("x", shape...), in("y", shape...))
			}})
	}
	cs = append(cs,
		&opCase{name: "add_channel", params: p(), build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.AddChannel(in("x", 3, 5, 4, 3), in("e", 3, 5))
		}},
		&opCase{name: "scale_shift", params: p(), build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.ScaleShift(in("x", 2, 5, 3, 3), in("e", 2, 10))
		}},
		&opCase{name: "concat", params: p(), build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.Concat(in("x", 3, 2, 4, 5), in("y", 3, 5, 4, 5))
		}},
		&opCase{name: "upsample_nearest2x", params: p(), build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.UpsampleNearest2x(in("x", 2, 3, 5, 7))
		}},
		&opCase{name: "to_tokens", params: p(), build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.ToTokens(in("x", 2, 5, 3, 4))
		}},
		&opCase{name: "from_tokens", params: p(), build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.FromTokens(in("x", 7, 12, 5), 3, 4)
		}},
		&opCase{name: "div_batch", params: p(), build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			s := b.Affine(b.Unary(graph.OpSiLU, in("s", 3)), 1, 2) // divisors in (1.7, ∞)
			return b.DivBatch(in("x", 3, 2, 4, 4), s)
		}},
	)
	for _, ac := range []struct{ B, N, C, heads int }{
		{2, 10, 12, 3}, {1, 70, 8, 1}, {7, 5, 6, 2}, {1, 300, 16, 2},
	} {
		ac := ac
		cs = append(cs, &opCase{name: fmt.Sprintf("attention/%v", ac), params: p(),
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Attention("a", in("q", ac.B, ac.N, ac.C), in("k", ac.B, ac.N, ac.C), in("v", ac.B, ac.N, ac.C), ac.heads)
			}})
	}
	times := func(n int, lo, hi float32) []float32 {
		t := make([]float32, n)
		for i := range t {
			t[i] = lo + (hi-lo)*r.Float32()
		}
		t[0] = hi
		return t
	}
	cs = append(cs,
		&opCase{name: "reshape", params: p(), build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.Reshape(in("x", 7, 2, 1, 1), 7, 2)
		}},
		&opCase{name: "ve_marginal_std", params: p(), inputs: map[string][]float32{"t": times(7, 1e-3, 1)},
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.VEMarginalStd(in("t", 7), 25)
			}},
	)
	for _, tc := range []struct {
		B, dim int
		flip   bool
		shift  float64
	}{{2, 32, false, 1}, {7, 33, true, 0}, {1, 128, true, 1}} {
		tc := tc
		cs = append(cs, &opCase{name: fmt.Sprintf("timestep_embed/%v", tc), params: p(),
			inputs: map[string][]float32{"t": times(tc.B, 0, 999)},
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.TimestepEmbed(in("t", tc.B), tc.dim, tc.flip, tc.shift, 1)
			}})
	}
	// Times as the models use them: σ in [0.01, 50] through log for VE
	// (score-SDE) models, t in [0, 1] otherwise. (Arguments reach |x·W·2π| ~
	// 1e3, where one ulp of the f32 argument is already 1e-4.)
	for _, fc := range []struct {
		B, half       int
		log, cosFirst bool
		tmax          float32
	}{{3, 8, true, false, 50}, {7, 5, false, true, 1}} {
		fc := fc
		lo := float32(0)
		if fc.log {
			lo = 0.01
		}
		cs = append(cs, &opCase{name: fmt.Sprintf("fourier_embed/%v", fc), params: p("f.W", randT(r, 16, fc.half)),
			inputs: map[string][]float32{"t": times(fc.B, lo, fc.tmax)},
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.FourierEmbed("f.W", in("t", fc.B), fc.log, fc.cosFirst)
			}})
	}
	cs = append(cs, &opCase{name: "embedding", params: p("e.weight", randT(r, 1, 10, 13)),
		inputs: map[string][]float32{"class": {3, 0, 9, 9, 1, 4, 2}},
		build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.Embedding("e", in("class", 7))
		}})
	return cs
}

// TestOps checks every kernel against the CPU reference, with f32 and with
// f16-packed weights.
func TestOps(t *testing.T) { checkOpCases(t, opCases, allKinds) }

// checkOpCases runs every case of cases, unfused, with the GPU and the
// serial kernels and with f32 and f16-packed weights, against the CPU, and checks
// that every op kind in kinds has a case.
func checkOpCases(t *testing.T, cases func(*rand.Rand) []*opCase, kinds []graph.Kind) {
	d := testDevice(t)
	seen := map[graph.Kind]bool{}
	for _, mode := range []WeightMode{WeightsF32, WeightsF16} {
		for _, c := range cases(rand.New(rand.NewSource(1))) {
			name := c.name + "/" + map[WeightMode]string{WeightsF32: "f32", WeightsF16: "f16"}[mode]
			t.Run(name, func(t *testing.T) {
				// The GPU and the serial kernels (Options.Serial), the
				// latter with every 3×3 stride-1 conv2d direct and as
				// Winograd F(2×2) and F(4×4) (winograd.go).
				for _, o := range []Options{{Serial: -1}, {Serial: 1, winograd: -1}, {Serial: 1, winograd: 1, winoTile: 2}, {Serial: 1, winograd: 1, winoTile: 4}} {
					o.Weights, o.Unfused = mode, true
					e := compare(t, d, c, o)
					t.Logf("serial %d winograd %d tile %d: NMSE %.3g", o.Serial, o.winograd, o.winoTile, e)
					if !(e <= nmseOp) {
						t.Errorf("serial %d winograd %d tile %d: NMSE %.3g over %g", o.Serial, o.winograd, o.winoTile, e, nmseOp)
					}
				}
			})
			g, _ := c.graphOf(rand.New(rand.NewSource(0)), c.params)
			for _, n := range g.Nodes {
				seen[n.Op] = true
			}
		}
	}
	for _, k := range kinds {
		if !seen[k] {
			t.Errorf("op %q has no test case", k)
		}
	}
}

// compareAll checks c against the CPU under each of opts.
func compareAll(t *testing.T, d *Device, c *opCase, opts ...Options) {
	t.Helper()
	for _, o := range opts {
		e := compare(t, d, c, o)
		t.Logf("%s %+v: NMSE %.3g", c.name, o, e)
		if !(e <= nmseOp) {
			t.Errorf("%s %+v: NMSE %.3g over %g", c.name, o, e, nmseOp)
		}
	}
}

var allKinds = []graph.Kind{
	graph.OpConv2D, graph.OpConvTranspose2D, graph.OpGroupNorm, graph.OpLinear, graph.OpSiLU,
	graph.OpGELU, graph.OpAdd, graph.OpAddChannel, graph.OpScaleShift, graph.OpAffine,
	graph.OpConcat, graph.OpUpsampleNearest2x, graph.OpToTokens, graph.OpFromTokens,
	graph.OpAttention, graph.OpTimestepEmbed, graph.OpFourierEmbed, graph.OpDivBatch, graph.OpEmbedding,
	graph.OpReshape, graph.OpVEMarginalStd,
}

// TestFusions checks the fused kernels (conv + add_channel + residual,
// group_norm + scale_shift + SiLU) on the resnet pattern, where the
// residual's producer comes after the convolution in graph order.
func TestFusions(t *testing.T) {
	d := testDevice(t)
	r := rand.New(rand.NewSource(2))
	const B, C, O, H, W = 3, 6, 10, 7, 5
	params := map[string]*tensor.Tensor{
		"n1.weight": randT(r, 1, C), "n1.bias": randT(r, 1, C),
		"c1.weight": randT(r, 0.2, O, C, 3, 3), "c1.bias": randT(r, 1, O),
		"n2.weight": randT(r, 1, O), "n2.bias": randT(r, 1, O),
		"c2.weight": randT(r, 0.2, O, O, 3, 3), "c2.bias": randT(r, 1, O),
		"s.weight": randT(r, 0.3, O, C, 1, 1), "s.bias": randT(r, 1, O),
	}
	// The two time conditionings of diffusers' ResnetBlock2D: "default" adds
	// the embedding after conv1, "scale_shift" applies it after norm2.
	for _, scaleShift := range []bool{false, true} {
		c := &opCase{name: fmt.Sprintf("resnet/scale_shift=%v", scaleShift), params: params,
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				x := in("x", B, C, H, W)
				h := b.Unary(graph.OpSiLU, b.GroupNorm("n1", x, 2, 1e-5))
				h = b.Conv2D("c1", h, 1, [4]int{1, 1, 1, 1})
				if scaleShift {
					h = b.ScaleShift(b.GroupNorm("n2", h, 5, 1e-5), in("e", B, 2*O))
				} else {
					h = b.GroupNorm("n2", b.AddChannel(h, in("e", B, O)), 5, 1e-5)
				}
				h = b.Conv2D("c2", b.Unary(graph.OpSiLU, h), 1, [4]int{1, 1, 1, 1})
				return b.Add(b.Conv2D("s", x, 1, [4]int{}), h)
			}}
		g, err := c.graphOf(r, params)
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.Compile(context.Background(), g, Options{SplitK: 1, Serial: -1})
		if err != nil {
			t.Fatal(err)
		}
		if p.Steps() != 5 {
			t.Errorf("%s: fused program has %d steps, want 5 (2 norms, 2 convs with epilogues, 1 shortcut)", c.name, p.Steps())
		}
		p.Release()
		// SplitK 4: the fused epilogues run in the split-K reduce steps, and
		// conv1's partial sums go straight into norm2 (convIntoNorm).
		p, err = d.Compile(context.Background(), g, Options{SplitK: 4, Serial: -1})
		if err != nil {
			t.Fatal(err)
		}
		splitC1, reduceC1 := false, false
		for _, s := range p.steps {
			splitC1 = splitC1 || strings.HasPrefix(s.what, "conv2d c1 (split-K)")
			reduceC1 = reduceC1 || strings.HasPrefix(s.what, "conv2d c1 (reduce)")
		}
		if !splitC1 || reduceC1 {
			t.Errorf("%s: under split-K conv1 has split step %v, reduce step %v; want its partial sums read by norm2", c.name, splitC1, reduceC1)
		}
		p.Release()
		compareAll(t, d, c, Options{Serial: -1}, Options{Weights: WeightsF16, Serial: -1}, Options{SplitK: 4, Serial: -1},
			Options{SplitK: 4, Weights: WeightsF16, Serial: -1}, Options{Serial: 1, winograd: -1}, Options{Serial: 1, Weights: WeightsF16, winograd: -1},
			Options{Serial: 1, winograd: 1, winoTile: 2}, Options{Serial: 1, Weights: WeightsF16, winograd: 1, winoTile: 2},
			Options{Serial: 1, winograd: 1, winoTile: 4}, Options{Serial: 1, Weights: WeightsF16, winograd: 1, winoTile: 4})
	}
	testMLPFusion(t, d, r)
	c := &opCase{name: "conv+residual", params: params,
		build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			x := in("x", B, C, H, W)
			return b.Add(b.Conv2D("s", x, 1, [4]int{}), b.Conv2D("c1", x, 1, [4]int{1, 1, 1, 1}))
		}}
	// The same with dispatches issued one by one from Go (the fallback where
	// a Content-Security-Policy forbids the JavaScript replay function).
	gpu.ReplayInJS = false
	defer func() { gpu.ReplayInJS = true }()
	if e := compare(t, d, c, Options{}); !(e <= nmseOp) {
		t.Errorf("replayed from Go: NMSE %.3g over %g", e, nmseOp)
	}
}

// testMLPFusion checks the 2-D MLP's pattern: a linear absorbs the SiLU
// after it, and a reshape that is not the output is an alias, no step. Both
// linear kernels of the serial set (linear_rows below 8 rows, GEMM_serial
// from 8) and the split-K reduce apply the SiLU.
func testMLPFusion(t *testing.T, d *Device, r *rand.Rand) {
	params := map[string]*tensor.Tensor{
		"a.weight": randT(r, 0.3, 9, 5), "a.bias": randT(r, 1, 9),
		"b.weight": randT(r, 0.3, 6, 9), "b.bias": randT(r, 1, 6),
		"c.weight": randT(r, 0.3, 2, 3),
	}
	for _, rows := range []int{1, 7, 8, 33} {
		c := &opCase{name: fmt.Sprintf("mlp/rows=%d", rows), params: params,
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				h := b.Unary(graph.OpSiLU, b.Linear("a", b.Reshape(in("x", rows, 5, 1, 1), rows, 5)))
				h = b.Reshape(b.Unary(graph.OpSiLU, b.Linear("b", h)), 2*rows, 3)
				return b.Reshape(b.Linear("c", h), rows, 4)
			}}
		// Three linears and the output's reshape (a copy into the output buffer).
		checkSteps(t, d, c, r, 4)
		compareAll(t, d, c, Options{Serial: -1}, Options{Serial: -1, Weights: WeightsF16}, Options{Serial: -1, SplitK: 2},
			Options{Serial: 1}, Options{Serial: 1, Weights: WeightsF16})
	}
	// Reshapes of merged linears' views (a chain of two, and one), added:
	// the aliases bind the views' scratch at their offsets.
	params["m.weight"], params["m.bias"] = randT(r, 0.3, 9, 5), randT(r, 1, 9)
	c := &opCase{name: "mlp/views", params: params,
		build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			x := in("x", 3, 5)
			p, q := b.Linear("a", x), b.Linear("m", x)
			return b.Add(b.Reshape(b.Reshape(p, 27), 3, 9), b.Reshape(q, 3, 9))
		}}
	checkSteps(t, d, c, r, 2) // the merged linears and the add
	compareAll(t, d, c, Options{Serial: -1}, Options{Serial: -1, SplitK: 2}, Options{Serial: 1}, Options{Serial: 1, Weights: WeightsF16})
}

// checkSteps compiles c with the GPU kernels (no split-K) and with the
// serial ones and checks that each program has want steps.
func checkSteps(t *testing.T, d *Device, c *opCase, r *rand.Rand, want int) {
	t.Helper()
	g, err := c.graphOf(r, c.params)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{Serial: -1, SplitK: 1}, {Serial: 1}} {
		p, err := d.Compile(context.Background(), g, o)
		if err != nil {
			t.Fatal(err)
		}
		if p.Steps() != want {
			t.Errorf("%s %+v: %d steps, want %d", c.name, o, p.Steps(), want)
		}
		p.Release()
	}
}

// TestLabelOutOfRange checks that a bad class label is refused, as on the CPU.
func TestLabelOutOfRange(t *testing.T) {
	d := testDevice(t)
	r := rand.New(rand.NewSource(3))
	c := &opCase{name: "embedding", params: map[string]*tensor.Tensor{"e.weight": randT(r, 1, 4, 3)},
		build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.Embedding("e", in("class", 2))
		}}
	g, _ := c.graphOf(r, c.params)
	p, err := d.Compile(context.Background(), g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	if _, err := p.Run(context.Background(), map[string][]float32{"class": {1, 4}}); err == nil {
		t.Fatal("label 4 of 4 rows accepted")
	}
}

// TestRunChunks checks Run's submissions: every step once, in order, the
// first 8 and then twice as many each time.
func TestRunChunks(t *testing.T) {
	for n := 0; n <= 300; n++ {
		b := runChunks(n)
		if len(b) < 2 || b[0] != 0 || b[len(b)-1] != n {
			t.Fatalf("n=%d: boundaries %v", n, b)
		}
		for k := 1; k < len(b); k++ {
			size, most := b[k]-b[k-1], 8<<(k-1)
			if n > 0 && (size <= 0 || size > most || size < most && k < len(b)-1) {
				t.Fatalf("n=%d: chunk %d has %d steps (boundaries %v)", n, k, size, b)
			}
		}
	}
}
