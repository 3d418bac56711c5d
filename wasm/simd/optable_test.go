package simd

import (
	"fmt"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/graph/graphtest"
)

// TestOpTable runs the backend test table (every op kind, lucidrains'
// included, and every fusion pattern) through a plan, with the conv rule
// and with Winograd forced, against the reference.
func TestOpTable(t *testing.T) {
	defer func(m int) { winogradMode = m }(winogradMode)
	k := newK(t)
	run := func(t *testing.T, c *graphtest.Case, g *graph.Graph, inputs map[string][]float32) []float32 {
		p, err := newPlan(k, newWeights(k, g.Params), g)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range inputs {
			copy(p.inputs[name], v)
		}
		if err := p.run(nil, nil); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), p.vals[g.Output]...)
	}
	for _, mode := range []int{0, 1} { // the rule, Winograd forced
		winogradMode = mode
		t.Run(fmt.Sprintf("winograd=%d", mode), func(t *testing.T) { graphtest.Compare(t, run) })
	}
}
