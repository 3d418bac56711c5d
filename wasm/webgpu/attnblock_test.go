//go:build js && wasm

package webgpu

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// TestAttnBlock checks the fused attention block (attnblock.go) against the
// CPU on awkward shapes: several heads, channels not a multiple of 4, one
// token row shorter than a tile, batch 1 and 7, with and without biases,
// f32 and f16 weights, split-K on and off, heads up to 256 wide (one
// attention kernel) and wider (three); and that the fusion happened (three
// or five dispatches, more with split-K, instead of eleven).
func TestAttnBlock(t *testing.T) {
	d := testDevice(t)
	type shape struct{ B, C, H, W, heads int }
	for _, s := range []shape{{1, 6, 5, 3, 2}, {7, 8, 3, 3, 1}, {2, 12, 9, 8, 3}, {2, 258, 3, 2, 1}} {
		for _, bias := range []bool{true, false} {
			s, bias := s, bias
			r := rand.New(rand.NewSource(int64(s.C*100 + s.B)))
			params := map[string]*tensor.Tensor{}
			for _, n := range []string{"q", "k", "v", "o"} {
				params["a."+n+".weight"] = randT(r, 1/math.Sqrt(float64(s.C)), s.C, s.C)
				if bias {
					params["a."+n+".bias"] = randT(r, 0.5, s.C)
				}
			}
			c := &opCase{name: fmt.Sprintf("attnblock/%v/bias=%v", s, bias), params: params,
				build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
					x := in("x", s.B, s.C, s.H, s.W)
					h := b.ToTokens(x)
					q, k, v := b.Linear("a.q", h), b.Linear("a.k", h), b.Linear("a.v", h)
					o := b.Linear("a.o", b.Attention("a", q, k, v, s.heads))
					return b.Add(b.FromTokens(o, s.H, s.W), x)
				}}
			g, err := c.graphOf(r, params)
			if err != nil {
				t.Fatal(err)
			}
			// The GPU kernels: one attention step unless the heads are too
			// wide; the serial ones: always scores, softmax, weighted sum.
			for _, serial := range []int{-1, 1} {
				p, err := d.Compile(context.Background(), g, Options{SplitK: 1, Serial: serial})
				if err != nil {
					t.Fatal(err)
				}
				want := 3
				if s.C/s.heads > maxHeadDim || serial > 0 {
					want = 5
				}
				if p.Steps() != want {
					t.Errorf("%s serial %d: %d steps, want %d", c.name, serial, p.Steps(), want)
				}
				p.Release()
			}
			compareAll(t, d, c, Options{SplitK: 1, Serial: -1}, Options{SplitK: 2, Weights: WeightsF16, Serial: -1}, Options{Serial: 1})
		}
	}
}
