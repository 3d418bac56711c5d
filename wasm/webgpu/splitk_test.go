//go:build js && wasm

package webgpu

import (
	"context"
	"math/rand"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
)

// TestSplitK checks the split-K path of every GEMM-shaped op (conv2d,
// conv_transpose2d, linear) against the CPU: never split, split in 3 (slices
// that do not divide K evenly, the last one short or empty) and the
// automatic choice, which on these small shapes splits most of them.
func TestSplitK(t *testing.T) {
	d := testDevice(t)
	gemmy := map[graph.Kind]bool{graph.OpConv2D: true, graph.OpConvTranspose2D: true, graph.OpLinear: true}
	splitSeen := false
	for _, c := range opCases(rand.New(rand.NewSource(1))) {
		g, _ := c.graphOf(rand.New(rand.NewSource(0)), c.params)
		use := false
		for _, n := range g.Nodes {
			use = use || gemmy[n.Op]
		}
		if !use {
			continue
		}
		for _, k := range []int{1, 3, 0} {
			o := Options{SplitK: k, Unfused: true, Serial: -1} // split-K is for the GPU kernels
			p, err := d.Compile(context.Background(), g, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range p.steps {
				splitSeen = splitSeen || len(s.what) > 9 && s.what[len(s.what)-8:] == "(reduce)"
			}
			p.Release()
			if e := compare(t, d, c, o); !(e <= nmseOp) {
				t.Errorf("%s, SplitK %d: NMSE %.3g over %g", c.name, k, e, nmseOp)
			}
		}
	}
	if !splitSeen {
		t.Error("no case compiled to a split-K reduce step")
	}
}
