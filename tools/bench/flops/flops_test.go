package flops

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// A hand-counted graph: conv 3x3 (4->8 channels, 6x6, bias), linear
// (8->5, bias), attention over 36 tokens of 8 channels, SiLU.
func TestHandCounted(t *testing.T) {
	p := map[string]*tensor.Tensor{
		"c.weight": tensor.New(8, 4, 3, 3), "c.bias": tensor.New(8),
		"l.weight": tensor.New(5, 8), "l.bias": tensor.New(5),
	}
	g := graph.New(p)
	b := graph.NewBuilder(g)
	x := g.Input("x", 2, 4, 6, 6)
	y := b.Conv2D("c", x, 1, [4]int{1, 1, 1, 1}) // [2,8,6,6]
	y = b.Unary(graph.OpSiLU, y)
	tok := b.ToTokens(y) // [2,36,8]
	a := b.Attention("a", tok, tok, tok, 2)
	out := b.Linear("l", a) // [2,36,5]
	g.Output = out
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	c := Of(g)
	conv := 2.0 * (2 * 8 * 6 * 6) * (4 * 3 * 3)
	attn := 4.0 * 2 * 36 * 36 * 8
	lin := 2.0 * (2 * 36 * 5) * 8
	if want := conv + attn + lin; c.GEMM != want {
		t.Errorf("GEMM = %v, want %v", c.GEMM, want)
	}
	other := float64(2*8*6*6) /*conv bias*/ + 4*float64(2*8*6*6) /*silu*/ + 5*float64(2*2*36*36) + float64(2*36*5)
	if c.Other != other {
		t.Errorf("Other = %v, want %v", c.Other, other)
	}
	if c.Params != 8*4*9+8+5*8+5 {
		t.Errorf("Params = %d", c.Params)
	}
	if c.ByOp["conv2d"] != conv+float64(2*8*6*6) {
		t.Errorf("ByOp[conv2d] = %v", c.ByOp["conv2d"])
	}
}

// The shipped models: counts grow linearly with the batch, the weights
// counted are the file's, and the emoji UNet is the ~2.2 GFLOP network
// BENCHMARKS.md quotes.
func TestShippedModels(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	for _, name := range []string{"mnist", "emoji", "scoresde-mnist", "toy2d"} {
		m, err := model.Load(filepath.Join(root, "weights", name+".safetensors"))
		if err != nil {
			t.Skip(err)
		}
		s := m.InShape()
		g1, err := m.Graph(1, s[1], s[2])
		if err != nil {
			t.Fatal(err)
		}
		g16, err := m.Graph(16, s[1], s[2])
		if err != nil {
			t.Fatal(err)
		}
		c1, c16 := Of(g1), Of(g16)
		if c1.GEMM <= 0 || c16.GEMM < 15.9*c1.GEMM || c16.GEMM > 16.1*c1.GEMM {
			t.Errorf("%s: GEMM b1 %v, b16 %v: not linear in the batch", name, c1.GEMM, c16.GEMM)
		}
		var n int64
		for _, p := range m.Params {
			n += int64(tensor.Numel(p.Shape))
		}
		if c1.Params != n {
			t.Errorf("%s: graph uses %d weights, file has %d", name, c1.Params, n)
		}
		if name == "emoji" && (c1.GEMM < 2.1e9 || c1.GEMM > 2.4e9) {
			t.Errorf("emoji: %v GFLOP", c1.GEMM/1e9)
		}
	}
}
