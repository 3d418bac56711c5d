//go:build js && wasm

package webgpu

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// TestMergedLinears checks linears.go: three linears of one input (output
// sizes 7, 3 and 7, so the views sit at different aligned offsets) compile
// to one GEMM whose outputs feed a fused conv epilogue (add_channel), an
// elementwise add and a concat, on batch 1 and 7, with and without split-K,
// f32 and f16 weights, against the CPU.
func TestMergedLinears(t *testing.T) {
	d := testDevice(t)
	for _, B := range []int{1, 7} {
		B := B
		r := rand.New(rand.NewSource(int64(B)))
		const I, H, W = 70, 3, 2
		params := map[string]*tensor.Tensor{
			"cv.weight": randT(r, 0.3, 7, 4, 3, 3), "cv.bias": randT(r, 0.3, 7),
			"cw.weight": randT(r, 0.3, 3, 4, 1, 1),
		}
		for name, O := range map[string]int{"l1": 7, "l2": 3, "l3": 7} {
			params[name+".weight"] = randT(r, 1/math.Sqrt(I), O, I)
			params[name+".bias"] = randT(r, 0.5, O)
		}
		c := &opCase{name: fmt.Sprintf("merged-linears/b%d", B), params: params,
			build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				e := b.Unary(graph.OpSiLU, in("e", B, I))
				y := in("y", B, 4, H, W)
				l1, l2, l3 := b.Linear("l1", e), b.Linear("l2", e), b.Linear("l3", e)
				h7 := b.AddChannel(b.Conv2D("cv", y, 1, [4]int{1, 1, 1, 1}), l1)
				h7 = b.AddChannel(h7, b.Add(l3, l1))
				h3 := b.AddChannel(b.Conv2D("cw", y, 1, [4]int{}), l2)
				return b.Concat(h7, h3)
			}}
		g, err := c.graphOf(r, params)
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.Compile(context.Background(), g, Options{SplitK: 1})
		if err != nil {
			t.Fatal(err)
		}
		merged := 0
		for _, s := range p.steps {
			if strings.Contains(s.what, "(+2 merged)") {
				merged++
			}
		}
		if merged != 1 {
			t.Errorf("%s: %d merged linear steps, want 1", c.name, merged)
		}
		p.Release()
		compareAll(t, d, c, Options{SplitK: 1}, Options{SplitK: 3, Weights: WeightsF16}, Options{}, Options{Serial: 1}, Options{Serial: -1})
	}
}
