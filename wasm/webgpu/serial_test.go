//go:build js && wasm

package webgpu

import (
	"context"
	"math/rand"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// TestSerialKernels checks which kernel set a program uses: with
// Options.Serial 1 every GEMM, convolution, GroupNorm and attention step
// runs a serial entry point (a padded convolution its conv_pad, the 3×3
// stride-1 one Winograd's three steps, a transposed one convt_pad and a
// conv2d), with -1 none does, and a software
// adapter picks the serial set by itself. The outputs of both sets are
// checked against the CPU by TestOpTable, TestFusions and TestAttnBlock.
func TestSerialKernels(t *testing.T) {
	d := testDevice(t)
	r := rand.New(rand.NewSource(3))
	const B, C, H, W = 2, 8, 6, 5
	params := map[string]*tensor.Tensor{
		"n.weight": randT(r, 1, C), "n.bias": randT(r, 1, C),
		"c.weight": randT(r, 0.2, C, C, 3, 3), "c.bias": randT(r, 1, C),
		"p.weight": randT(r, 0.2, C, C, 2, 2), "t.weight": randT(r, 0.2, C, C, 3, 3),
		"a.group_norm.weight": randT(r, 1, C), "a.group_norm.bias": randT(r, 1, C),
		"a.to_q.weight": randT(r, 0.3, C, C), "a.to_k.weight": randT(r, 0.3, C, C),
		"a.to_v.weight": randT(r, 0.3, C, C), "a.to_out.0.weight": randT(r, 0.3, C, C),
		"l.weight": randT(r, 0.3, 4, C*H*W), "m.weight": randT(r, 0.3, 3, 1),
	}
	c := &opCase{name: "serial", params: params,
		build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			x := in("x", B, C, H, W)
			h := b.Conv2D("c", b.GroupNorm("n", x, 4, 1e-5), 1, [4]int{1, 1, 1, 1})
			h = b.ConvTranspose2D("t", b.Conv2D("p", h, 1, [4]int{0, 0, 1, 1}), 1, 1, 0)
			tok := b.ToTokens(b.GroupNorm("a.group_norm", h, 4, 1e-5))
			q, k, v := b.Linear("a.to_q", tok), b.Linear("a.to_k", tok), b.Linear("a.to_v", tok)
			h = b.Add(b.FromTokens(b.Linear("a.to_out.0", b.Attention("a", q, k, v, 2)), H, W), h)
			// l has 2 rows (linear_rows), m 8 (GEMM_serial).
			return b.Linear("m", b.Reshape(b.Linear("l", b.Reshape(h, B, C*H*W)), 4*B, 1))
		}}
	g, err := c.graphOf(r, params)
	if err != nil {
		t.Fatal(err)
	}
	entries := func(o Options) []string {
		p, err := d.Compile(context.Background(), g, o)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Release()
		var es []string
		for _, s := range p.steps {
			es = append(es, s.pipe.Label)
		}
		return es
	}
	serialSet := map[string]bool{"norm:group_norm_serial": true, "attention:scorescm_serial": true,
		"attention:softmax_serial": true, "attention:pvcm_serial": true,
		"conv:conv2d_serial": true, "conv:conv_pad": true, "conv:convt_pad": true, "linear:linear_serial": true, "linear:linear_rows": true,
		"winograd:wino2_in": true, "winograd:wino_serial": true, "winograd:wino2_out": true}
	gpuSet := map[string]bool{"norm:group_norm": true, "lucid:mem_attention": true,
		"conv:conv2d_main": true, "conv:convt_main": true, "linear:linear_main": true}
	check := func(o Options, want, other map[string]bool) {
		seen := map[string]bool{}
		for _, e := range entries(o) {
			seen[e] = true
			if other[e] || strings.HasSuffix(e, "_main") && want["conv:conv_pad"] {
				t.Errorf("%+v: step runs %s", o, e)
			}
		}
		for e := range want {
			if !seen[e] {
				t.Errorf("%+v: no step runs %s (steps: %v)", o, e, seen)
			}
		}
	}
	check(Options{Serial: 1}, serialSet, gpuSet)
	// Its 6×5 maps make 8 tiles of 2×2 at batch 2, so F(2×2); F(4×4) forced:
	f4 := map[string]bool{"winograd:wino4_in": true, "winograd:wino4_out": true}
	check(Options{Serial: 1, winoTile: 4}, f4, map[string]bool{"winograd:wino2_in": true, "winograd:wino2_out": true})
	check(Options{Serial: -1}, gpuSet, serialSet)
	if d.Software() {
		check(Options{}, serialSet, gpuSet)
	}
	compareAll(t, d, c, Options{Serial: 1}, Options{Serial: 1, winoTile: 4}, Options{Serial: -1})
}
