//go:build js && wasm

package webgpu

import (
	"fmt"
	"math"
	"slices"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// linears merges every linear that reads the same input as node i (a UNet
// has one time_emb_proj per resnet, all on the time embedding) into one GEMM
// over their concatenated weights. On a large GPU each of those tiny
// products costs a dispatch's latency, not arithmetic. Each linear's output
// is a view (offset aligned to the device's minimum) into one scratch
// buffer, so its consumers bind it like any value. It reports whether it
// compiled node i; a lone linear is left to the ordinary path.
func (c *compiler) linears(i int) (bool, error) {
	g := c.g
	in := g.Nodes[i].In[0]
	bias := g.Nodes[i].Bias != ""
	I := g.Params[g.Nodes[i].Weight].Shape[1]
	var js []int // the merged nodes, node i first
	for _, j := range c.cons[in] {
		n := &g.Nodes[j]
		if n.Op != graph.OpLinear || c.skip[j] || j < i || n.Out == g.Output || slices.Contains(js, j) {
			continue
		}
		if (n.Bias != "") != bias || g.Params[n.Weight].Shape[1] != I {
			continue
		}
		js = append(js, j)
	}
	if len(js) < 2 || js[0] != i {
		return false, nil
	}
	var ws, bs []string
	for _, j := range js {
		ws = append(ws, g.Nodes[j].Weight)
		bs = append(bs, g.Nodes[j].Bias)
	}
	if !c.fits(ws...) {
		return false, nil
	}
	rows := tensor.Numel(g.Shapes[in]) / I
	align := max(c.lim.MinStorageBufferOffsetAlignment, 4)
	var cols []float32 // per output column: destination base, row stride (u32 bits)
	var off uint64
	tmp := len(c.temps)
	if c.views == nil {
		c.views = map[graph.Value]view{}
	}
	for _, j := range js {
		O := g.Params[g.Nodes[j].Weight].Shape[0]
		for k := 0; k < O; k++ {
			cols = append(cols, math.Float32frombits(uint32(off/4)+uint32(k)), math.Float32frombits(uint32(O)))
		}
		c.views[g.Nodes[j].Out] = view{temp: tmp, off: off}
		off += roundUp(4*uint64(rows*O), align)
	}
	// Node i is being compiled now; the others must not be compiled again.
	for _, j := range js[1:] {
		c.skip[j] = true
	}
	c.temps = append(c.temps, off)
	ci := len(c.consts)
	c.consts = append(c.consts, cols)
	O := len(cols) / 2
	w := c.w.concat(ws...)
	b := ""
	if bias {
		b = c.w.concat(bs...)
	}
	what := fmt.Sprintf("linear %s (+%d merged)", g.Nodes[i].Name, len(js)-1)
	binds := []ref{c.val(in), c.weight(w), c.weight(b), {k: rTemp, i: tmp}, {k: rConst, i: ci}}
	return true, c.linearSteps(what, rows, I, O, c.flags(b, flagCols), binds, -1, i, tmp)
}

// linearSteps adds the steps of a linear (rows × I by O) with the given
// flags and linear.wgsl bindings, writing value v (-1: scratch): split-K
// GEMM steps (gemmSteps; split, the GEMM step stores plain partial sums and
// only the reduce applies the epilogue), or with serial kernels and fewer
// than 8 rows linear_rows, which does not compute GEMM_serial's 8 copies of
// one row.
func (c *compiler) linearSteps(what string, rows, I, O, flags int, binds []ref, v graph.Value, order int, temps ...int) error {
	grid, err := c.gemmGrid(what, rows, O, 1)
	if err != nil {
		return err
	}
	split := c.splitFor(grid, I, rows*O)
	params := words(rows, I, O, flags, split, 0, 0, 0)
	if c.serial() && rows < 8 && split == 1 {
		g, err := c.grid(what, (rows*((O+3)/4)+15)/16)
		if err != nil {
			return err
		}
		c.add(pstep{what: what, key: kernelKey{fam: "linear", entry: "linear_rows"}, params: params, binds: binds, out: v, temps: temps, grid: g}, order)
		return nil
	}
	return c.gemmSteps("linear", "linear_main", "linear_reduce", what, params, binds, 0, 3, v, grid, split, rows*O, order, temps...)
}
