package graphtest

import (
	"math/rand"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Case is a small graph with random weights and inputs.
type Case struct {
	Name   string
	Params map[string]*tensor.Tensor
	// Inputs holds the inputs that need chosen values (times, class
	// labels); the others are filled with N(0,1) values by Graph.
	Inputs map[string][]float32
	Build  func(b *graph.Builder, in func(name string, shape ...int) graph.Value) graph.Value
	// Fusions names the epilogue patterns the case is for (none for an op
	// case): a backend runs these with its fusion on.
	Fusions []string
}

// NMSEOp is the bar on the normalised MSE Σ(got-want)²/Σwant² of one case
// against the reference. Both sides compute in f32 with different
// summation orders: most kernels measure 0 to 3e-13; fourier_embed with log
// input ~5e-10 on WebGPU (a one-ulp difference in log moves arguments of
// ~1e3 by ~1e-4).
const NMSEOp = 1e-8

// Graph builds c's graph over params (c.Params, or a rounded copy of them)
// and returns it with its inputs: c.Inputs, completed from r. The same r
// seed gives the same inputs.
func (c *Case) Graph(r *rand.Rand, params map[string]*tensor.Tensor) (*graph.Graph, map[string][]float32, error) {
	g := graph.New(params)
	b := graph.NewBuilder(g)
	inputs := map[string][]float32{}
	for k, v := range c.Inputs {
		inputs[k] = v
	}
	in := func(name string, shape ...int) graph.Value {
		if _, ok := inputs[name]; !ok {
			inputs[name] = RandT(r, 1, shape...).Data
		}
		return g.Input(name, shape...)
	}
	g.Output = c.Build(b, in)
	return g, inputs, b.Err()
}

// Reference runs g on core/cpu.
func Reference(g *graph.Graph, inputs map[string][]float32) (*tensor.Tensor, error) {
	return cpu.Run(g, inputs)
}

// Cases is the table: every op kind's cases, then the fusion patterns.
func Cases() []*Case {
	r := rand.New(rand.NewSource(1))
	cs := opCases(r)
	cs = append(cs, lucidCases(r)...)
	return append(cs, fusionCases(r)...)
}

// RandT is a tensor of N(0, scale²) values.
func RandT(r *rand.Rand, scale float64, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(scale * r.NormFloat64())
	}
	return t
}

// NMSE is Σ(got-want)²/Σwant² (Σ(got-want)² when want is all zero).
func NMSE(got, want []float32) float64 {
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

// CheckCoverage fails t for every kind of graph.Kinds() (but OpInput) that no
// case's graph holds, and for every fusion pattern of graph.Patterns() no
// case is for: a new op or pattern must enter the table.
func CheckCoverage(t testing.TB, cases []*Case) {
	t.Helper()
	seen := map[graph.Kind]bool{}
	fused := map[string]bool{}
	for _, c := range cases {
		g, _, err := c.Graph(rand.New(rand.NewSource(0)), c.Params)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		for _, n := range g.Nodes {
			seen[n.Op] = true
		}
		for _, p := range c.Fusions {
			fused[p] = true
		}
	}
	for _, k := range graph.Kinds() {
		if k != graph.OpInput && !seen[k] {
			t.Errorf("op %q has no case in graphtest", k)
		}
	}
	for _, p := range Patterns {
		if !fused[p] {
			t.Errorf("fusion pattern %q has no case in graphtest", p)
		}
	}
}

// Compare runs every case through run (one backend) and fails t where the
// NMSE against the reference is over NMSEOp. run returns the backend's
// output for g on inputs; a backend fuses where len(c.Fusions) > 0.
func Compare(t *testing.T, run func(t *testing.T, c *Case, g *graph.Graph, inputs map[string][]float32) []float32) {
	cases := Cases()
	CheckCoverage(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			g, inputs, err := c.Graph(rand.New(rand.NewSource(int64(len(c.Name))*7919)), c.Params)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Reference(g, inputs)
			if err != nil {
				t.Fatal(err)
			}
			got := run(t, c, g, inputs)
			if t.Failed() {
				return
			}
			if len(got) != len(want.Data) {
				t.Fatalf("%d outputs, want %d", len(got), len(want.Data))
			}
			if e := NMSE(got, want.Data); !(e <= NMSEOp) {
				t.Errorf("NMSE %.3g over %g", e, NMSEOp)
			}
		})
	}
}
