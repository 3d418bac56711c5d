package simd

import (
	"math/rand"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// fusionGraph exercises every fusion and its refusals: operands defined
// after the fused head (so the fused step must run later), a fusable value
// that is also the graph output or read twice, Add(h, h), and the attention
// path, with a fallback op in between.
func fusionGraph(t *testing.T, batch int) *graph.Graph {
	r := rand.New(rand.NewSource(int64(batch)))
	params := map[string]*tensor.Tensor{}
	p := func(name string, shape ...int) {
		params[name] = tensor.From(randn(r, tensor.Numel(shape)), shape...)
		for i := range params[name].Data {
			params[name].Data[i] *= 0.5
		}
	}
	p("te.weight", 8, 16)
	p("te.bias", 8)
	p("c1.weight", 8, 4, 3, 3)
	p("c1.bias", 8)
	p("p1.weight", 8, 8)
	p("n1.weight", 8)
	p("n1.bias", 8)
	p("p2.weight", 16, 8)
	p("p2.bias", 16)
	p("c2.weight", 8, 8, 3, 3)
	p("sc.weight", 8, 4, 1, 1)
	p("sc.bias", 8)
	p("n2.weight", 8)
	p("q.weight", 8, 8)
	p("k.weight", 8, 8)
	p("v.weight", 8, 8)
	p("o.weight", 8, 8)
	p("o.bias", 8)
	p("c3.weight", 5, 8, 3, 3)
	p("c3.bias", 5)
	p("c4.weight", 5, 5, 1, 1)
	p("c5.weight", 5, 5, 1, 1)

	g := graph.New(params)
	b := graph.NewBuilder(g)
	x := g.Input("x", batch, 4, 6, 5)
	tt := g.Input("t", batch)
	temb := b.Unary(graph.OpSiLU, b.Linear("te", b.TimestepEmbed(tt, 16, true, 0, 1)))
	h1 := b.Conv2D("c1", x, 1, [4]int{1, 1, 1, 1})
	e := b.Linear("p1", temb) // defined after c1: conv+add_channel runs later
	h2 := b.AddChannel(h1, e)
	g1 := b.GroupNorm("n1", h2, 4, 1e-5)
	e2 := b.Linear("p2", temb) // after the norm it scales
	s := b.Unary(graph.OpSiLU, b.ScaleShift(g1, e2))
	h3 := b.Conv2D("c2", s, 1, [4]int{1, 1, 1, 1})
	sc := b.Conv2D("sc", x, 1, [4]int{}) // 1x1 shortcut, defined after c2
	res := b.Add(sc, h3)
	g2 := b.GroupNorm("n2", res, 2, 1e-5) // read twice: no SiLU fusion
	u := b.Add(g2, res)
	w := b.Add(u, b.Unary(graph.OpSiLU, g2))
	tok := b.ToTokens(w)
	a := b.Attention("attn", b.Linear("q", tok), b.Linear("k", tok), b.Linear("v", tok), 2)
	w = b.Add(b.FromTokens(b.Linear("o", a), 6, 5), w)
	c3 := b.Conv2D("c3", w, 2, [4]int{0, 0, 1, 1})
	y := b.Add(b.Conv2D("c4", c3, 1, [4]int{}), c3) // the conv as the first operand
	c5 := b.Conv2D("c5", y, 1, [4]int{})
	out := b.Affine(b.Add(c5, c5), 0.5, 0.25) // Add(h, h) is not a residual
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	g.Output = out
	return g
}

func TestPlanMatchesCPURun(t *testing.T) {
	defer func(m int) { winogradMode = m }(winogradMode)
	for _, mode := range []int{0, 1} { // the rule (no Winograd: few channels), Winograd forced
		winogradMode = mode
		testPlanMatchesCPURun(t)
	}
}

func testPlanMatchesCPURun(t *testing.T) {
	for _, batch := range []int{1, 3} {
		g := fusionGraph(t, batch)
		k := newK(t)
		p, err := newPlan(k, newWeights(k, g.Params), g)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]bool{}
		written := map[graph.Value]bool{}
		for _, st := range p.steps {
			kinds[st.kind] = true
			if written[st.out] {
				t.Fatalf("value %d written by two steps", st.out)
			}
			written[st.out] = true
		}
		for _, want := range []string{"conv2d+add_channel", "group_norm+scale_shift+silu", "conv2d+add", "group_norm", "conv2d"} {
			if !kinds[want] {
				t.Errorf("no %s step; steps: %v", want, kinds)
			}
		}
		r := rand.New(rand.NewSource(9))
		x := randn(r, batch*4*6*5)
		ts := []float32{3, 700, 41}[:batch]
		copy(p.inputs["x"], x)
		copy(p.inputs["t"], ts)
		for run := 0; run < 2; run++ {
			if err := p.run(nil, nil); err != nil {
				t.Fatal(err)
			}
			want, err := cpu.Run(g, map[string][]float32{"x": x, "t": ts})
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, "fusion graph", p.vals[g.Output], want.Data, 1e-5)
		}
	}
}
