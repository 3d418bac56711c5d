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
	"github.com/diffuse-web/diffuse/core/graph/graphtest"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// Thresholds on the normalised MSE Σ(gpu-cpu)²/Σcpu² against the CPU
// reference: graphtest.NMSEOp for single kernels (most measure 0 to 3e-13,
// SwiftShader and an NVIDIA H200 alike). f16-packed weights are compared
// with a CPU run on the same f16-rounded weights, so the bar is the same.
// Networks measure ~3e-12.
const (
	nmseOp      = graphtest.NMSEOp // single kernels
	nmseNetwork = 1e-8             // a whole UNet (errors compound through ~100 layers)
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

func nmse(got, want []float32) float64 { return graphtest.NMSE(got, want) }

func randT(r *rand.Rand, scale float64, shape ...int) *tensor.Tensor {
	return graphtest.RandT(r, scale, shape...)
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

// opCases is graphtest's table without its fusion cases: every op kind,
// lucidrains' included, on awkward shapes (odd sizes, channel counts that
// are not multiples of 4, tiles only partly filled, batch 1 and 7).
func opCases(*rand.Rand) []*opCase {
	var cs []*opCase
	for _, c := range graphtest.Cases() {
		if len(c.Fusions) == 0 {
			cs = append(cs, tableCase(c))
		}
	}
	return cs
}

// tableCase is graphtest's case c as this package's opCase.
func tableCase(c *graphtest.Case) *opCase {
	return &opCase{name: c.Name, params: c.Params, inputs: c.Inputs, build: c.Build}
}

// TestOpTable runs graphtest's table: each op case unfused, with the GPU
// and the serial kernels and with f32 and f16-packed weights, and each
// fusion case fused, under the same options and split-K; it fails when a
// kind of graph.Kinds() or a fusion pattern has no case.
func TestOpTable(t *testing.T) {
	d := testDevice(t)
	cases := graphtest.Cases()
	graphtest.CheckCoverage(t, cases)
	for _, mode := range []WeightMode{WeightsF32, WeightsF16} {
		for _, tc := range cases {
			c := tableCase(tc)
			fused := len(tc.Fusions) > 0
			name := c.name + "/" + map[WeightMode]string{WeightsF32: "f32", WeightsF16: "f16"}[mode]
			t.Run(name, func(t *testing.T) {
				// The GPU and the serial kernels (Options.Serial), the
				// latter with every 3×3 stride-1 conv2d direct and as
				// Winograd F(2×2) and F(4×4) (winograd.go).
				opts := []Options{{Serial: -1}, {Serial: 1, winograd: -1}, {Serial: 1, winograd: 1, winoTile: 2}, {Serial: 1, winograd: 1, winoTile: 4}}
				if fused {
					opts = append(opts, Options{Serial: -1, SplitK: 4})
				}
				for _, o := range opts {
					o.Weights, o.Unfused = mode, !fused
					e := compare(t, d, c, o)
					t.Logf("serial %d winograd %d tile %d split %d: NMSE %.3g", o.Serial, o.winograd, o.winoTile, o.SplitK, e)
					if !(e <= nmseOp) {
						t.Errorf("serial %d winograd %d tile %d split %d: NMSE %.3g over %g", o.Serial, o.winograd, o.winoTile, o.SplitK, e, nmseOp)
					}
				}
			})
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

// TestFusions checks how the fused kernels are laid out on graphtest's
// resnet pattern (conv + add_channel + residual, group_norm + scale_shift
// + SiLU; the residual's producer after the convolution in graph order):
// their step counts, and that under split-K conv1's partial sums go
// straight into norm2. TestOpTable compares the same cases' outputs under
// the same options.
func TestFusions(t *testing.T) {
	d := testDevice(t)
	r := rand.New(rand.NewSource(2))
	var resnet []*opCase
	for _, tc := range graphtest.Cases() {
		if !strings.HasPrefix(tc.Name, "fusion/resnet/") {
			continue
		}
		c := tableCase(tc)
		resnet = append(resnet, c)
		g, err := c.graphOf(r, c.params)
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.Compile(context.Background(), g, Options{SplitK: 1, Serial: -1})
		if err != nil {
			t.Fatal(err)
		}
		// 2 norms, 2 convs with epilogues, 1 shortcut, and in the default
		// variant the time embedding's linear.
		want := 5
		if strings.HasSuffix(tc.Name, "scale_shift=false") {
			want = 6
		}
		if p.Steps() != want {
			t.Errorf("%s: fused program has %d steps, want %d", c.name, p.Steps(), want)
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
	}
	if len(resnet) != 2 {
		t.Fatalf("%d resnet cases in graphtest, want 2", len(resnet))
	}
	testMLPFusion(t, d, r)
	// A resnet block with dispatches issued one by one from Go (the fallback
	// where a Content-Security-Policy forbids the JavaScript replay function).
	gpu.ReplayInJS = false
	defer func() { gpu.ReplayInJS = true }()
	if e := compare(t, d, resnet[0], Options{}); !(e <= nmseOp) {
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
