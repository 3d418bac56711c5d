package graphtest

import (
	"math/rand"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
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
