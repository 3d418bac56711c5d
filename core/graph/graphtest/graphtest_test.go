package graphtest

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// TestTableOnReference checks the table itself: every kind and fusion
// pattern has a case, every case builds and runs on the reference with
// finite outputs, and every node agrees with graph.Info on its inputs and
// parameters.
func TestTableOnReference(t *testing.T) {
	cases := Cases()
	CheckCoverage(t, cases)
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.Name] {
			t.Errorf("two cases named %q", c.Name)
		}
		names[c.Name] = true
		g, inputs, err := c.Graph(rand.New(rand.NewSource(1)), c.Params)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		for _, n := range g.Nodes {
			info, ok := graph.Info(n.Op)
			if !ok {
				t.Fatalf("%s: kind %q not in graph.Kinds()", c.Name, n.Op)
			}
			if len(n.In) != info.Inputs || (n.Weight != "" && !info.Weight) || (n.Bias != "" && !info.Bias) {
				t.Errorf("%s: node %s %v reads %d values, weight %q, bias %q; Info says %+v", c.Name, n.Op, n.Name, len(n.In), n.Weight, n.Bias, info)
			}
		}
		out, err := Reference(g, inputs)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		for i, v := range out.Data {
			if v != v || v > 1e30 || v < -1e30 {
				t.Fatalf("%s: output[%d] = %v", c.Name, i, v)
			}
		}
	}
}

// allCaps lets every head kind that has an epilogue anywhere fold all of it.
var allCaps = graph.Caps{
	graph.OpConv2D: 0xff, graph.OpConvTranspose2D: 0xff, graph.OpGroupNorm: 0xff,
	graph.OpLinear: 0xff, graph.OpRMSNormChannel: 0xff,
}

// TestFusePatterns checks graph.Fuse on the fusion cases: each pattern a
// case is for is a step, every node is covered exactly once (head or
// absorbed), a step's operands exist before the node it runs at, and with
// nil caps nothing is folded; op cases fold nothing (they test one kernel).
func TestFusePatterns(t *testing.T) {
	for _, c := range Cases() {
		g, _, err := c.Graph(rand.New(rand.NewSource(1)), c.Params)
		if err != nil {
			t.Fatal(err)
		}
		steps := graph.Fuse(g, allCaps)
		got := map[string]bool{}
		covered := make([]int, len(g.Nodes))
		for _, s := range steps {
			got[s.Pattern(g)] = true
			covered[s.Head]++
			for _, j := range s.Nodes {
				covered[j]++
			}
			for _, v := range append(append([]graph.Value(nil), g.Nodes[s.Head].In...), s.E, s.Res) {
				if v >= 0 && int(v) > s.Last {
					t.Errorf("%s: step %s at node %d reads value %d made later", c.Name, s.Pattern(g), s.Last, v)
				}
			}
		}
		for i, n := range g.Nodes {
			if want := map[bool]int{true: 0, false: 1}[n.Op == graph.OpInput]; covered[i] != want {
				t.Errorf("%s: node %d (%s) covered %d times", c.Name, i, n.Op, covered[i])
			}
		}
		for _, p := range c.Fusions {
			if !got[p] {
				t.Errorf("%s: no %s step; steps: %v", c.Name, p, got)
			}
		}
		if len(c.Fusions) == 0 {
			for p := range got {
				if strings.Contains(p, "+") {
					t.Errorf("%s: an op case fused %s", c.Name, p)
				}
			}
		}
		if n := len(graph.Fuse(g, nil)); n != len(g.Nodes)-len(g.Inputs) {
			t.Errorf("%s: %d steps without caps, want one per node (%d)", c.Name, n, len(g.Nodes)-len(g.Inputs))
		}
	}
}

// TestFuseRefusals checks what the pass must not fold: a value read twice,
// the graph's output, Add(h, h), and a residual after an AddChannel
// unless the caps say the kernel binds both operands.
func TestFuseRefusals(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	params := map[string]*tensor.Tensor{"c.weight": RandT(r, 1, 4, 4, 1, 1)}
	g := graph.New(params)
	b := graph.NewBuilder(g)
	x := g.Input("x", 1, 4, 3, 3)
	e := g.Input("e", 1, 4)
	h := b.AddChannel(b.Conv2D("c", x, 1, [4]int{}), e)
	y := b.Add(h, x)
	z := b.Conv2D("c", y, 1, [4]int{})
	w := b.Add(z, z)                   // Add(h, h)
	v := b.Conv2D("c", w, 1, [4]int{}) // the output
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	g.Output = v
	patterns := func(caps graph.Caps) []string {
		var s []string
		for _, f := range graph.Fuse(g, caps) {
			s = append(s, f.Pattern(g))
		}
		return s
	}
	conv := graph.EpiAddChannel | graph.EpiResidual
	if got, want := strings.Join(patterns(graph.Caps{graph.OpConv2D: conv}), " "), "conv2d+add_channel add conv2d add conv2d"; got != want {
		t.Errorf("without EpiResidualWithE: %s, want %s", got, want)
	}
	if got, want := strings.Join(patterns(graph.Caps{graph.OpConv2D: conv | graph.EpiResidualWithE}), " "), "conv2d+add_channel+add conv2d add conv2d"; got != want {
		t.Errorf("with EpiResidualWithE: %s, want %s", got, want)
	}
}
