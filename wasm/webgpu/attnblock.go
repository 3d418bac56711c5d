//go:build js && wasm

package webgpu

import "github.com/diffuse-web/diffuse/core/graph"

// The diffusers attention block is, in graph ops,
//
//	to_tokens → linear q, linear k, linear v → attention → linear out
//	→ from_tokens → add (residual)
//
// eleven dispatches, most of them tiny on a small image, and on a large GPU a
// dispatch costs about as much as the work in it. attnBlock recognises the
// pattern and compiles it to three: q, k and v as one 1×1 convolution (their
// weights concatenated) that writes a channel-major [B, 3C, N] buffer, the
// attention in one kernel reading that layout and writing [B, C, N] (the
// layout lucidrains' attention uses too, so lucid.wgsl's mem_attention
// serves; heads wider than 256 take attention.wgsl's *cm scores, softmax
// and weighted sum instead), and the output projection as a 1×1
// convolution with the residual in its epilogue. The transposes disappear:
// a token-major [B, N, C] tensor is the channel-major one read with other
// strides.

// attnBlock compiles the block starting at to_tokens node i and reports
// whether it matched; when it does not, the ops compile one by one.
func (c *compiler) attnBlock(i int) (bool, error) {
	g := c.g
	tok := &g.Nodes[i]
	// Three linears on the tokens, all feeding one attention as q, k, v.
	cons := c.cons[tok.Out]
	if len(cons) != 3 {
		return false, nil
	}
	att := -1
	for _, j := range cons {
		l := &g.Nodes[j]
		if l.Op != graph.OpLinear || c.skip[j] {
			return false, nil
		}
		a := c.only(l.Out)
		if a < 0 || g.Nodes[a].Op != graph.OpAttention || (att >= 0 && a != att) {
			return false, nil
		}
		att = a
	}
	an := &g.Nodes[att]
	var qkv [3]*graph.Node
	for _, j := range cons {
		for p, v := range an.In {
			if v == g.Nodes[j].Out {
				qkv[p] = &g.Nodes[j]
			}
		}
	}
	if qkv[0] == nil || qkv[1] == nil || qkv[2] == nil {
		return false, nil // one linear used twice
	}
	bias := qkv[0].Bias != ""
	for _, l := range qkv {
		if (l.Bias != "") != bias {
			return false, nil
		}
	}
	lo := c.only(an.Out)
	if lo < 0 || g.Nodes[lo].Op != graph.OpLinear {
		return false, nil
	}
	ft := c.only(g.Nodes[lo].Out)
	if ft < 0 || g.Nodes[ft].Op != graph.OpFromTokens {
		return false, nil
	}
	ad := c.only(g.Nodes[ft].Out)
	if ad < 0 || g.Nodes[ad].Op != graph.OpAdd {
		return false, nil
	}
	res := g.Nodes[ad].In[0]
	if res == g.Nodes[ft].Out {
		res = g.Nodes[ad].In[1]
	}
	if res == g.Nodes[ft].Out {
		return false, nil
	}

	xs := g.Shapes[tok.In[0]]
	B, C, H, W := xs[0], xs[1], xs[2], xs[3]
	N := H * W
	Ca := g.Shapes[an.Out][2]
	heads := an.Ints[0]
	if g.Shapes[qkv[0].Out][2] != Ca || g.Shapes[g.Nodes[lo].Out][2] != C {
		return false, nil
	}
	if !c.fits(qkv[0].Weight, qkv[1].Weight, qkv[2].Weight) {
		return false, nil
	}
	for _, j := range []int{cons[0], cons[1], cons[2], att, lo, ft, ad} {
		c.skip[j] = true
	}
	order := ad
	name := an.Name
	none := ref{k: rNone}

	// q, k, v: one 1×1 convolution.
	wq := c.w.concat(qkv[0].Weight, qkv[1].Weight, qkv[2].Weight)
	bq := ""
	if bias {
		bq = c.w.concat(qkv[0].Bias, qkv[1].Bias, qkv[2].Bias)
	}
	tq := len(c.temps)
	c.temps = append(c.temps, 4*uint64(B*3*Ca*N))
	if err := c.conv1x1("conv2d "+name+" (q, k, v)", c.val(tok.In[0]), B, C, H, W, 3*Ca, wq, bq, none,
		ref{k: rTemp, i: tq}, -1, []int{tq}, order); err != nil {
		return true, err
	}

	// Attention, channel-major in and out: for heads up to 256 wide one
	// dispatch (lucid.wgsl's mem_attention with no memory tokens: a
	// workgroup per query, online softmax, no stored scores), else scores,
	// softmax and weighted sum. The serial kernels always take the latter:
	// on SwiftShader mem_attention_serial (a thread per query, its q and
	// accumulator in dynamically indexed arrays, loops within loops) took
	// 0.55 s of a 1.6 s MNIST call, the three steps 0.15 s (0.59–0.79× the
	// time per call, BenchmarkSerialAB).
	D := Ca / heads
	to := len(c.temps)
	c.temps = append(c.temps, 4*uint64(B*Ca*N))
	q := ref{k: rTemp, i: tq}
	what := "attention " + name
	if D <= maxHeadDim && !c.serial() {
		rows := B * heads * N
		entry, grid, err := c.rowKernel(what, "mem_attention", rows)
		if err != nil {
			return true, err
		}
		c.add(pstep{what: what, key: kernelKey{fam: "lucid", entry: entry},
			params: lucidParams(rows, N, heads, D, 0, 0, an.F, 0.0, c.flags("", 0)),
			binds:  []ref{q, none, none, {k: rTemp, i: to}}, out: -1, temps: []int{tq, to}, grid: grid}, order)
	} else {
		ts := len(c.temps)
		c.temps = append(c.temps, 4*uint64(B*heads*N*N))
		binds := []ref{q, q, q, {k: rTemp, i: ts}, {k: rTemp, i: to}}
		if err := c.attention(what, "scorescm", "pvcm", words(B, N, Ca, heads, D, B*heads*N, an.F, 0), binds, -1, []int{tq, ts, to}, order); err != nil {
			return true, err
		}
	}

	// Output projection + residual.
	l := &g.Nodes[lo]
	err := c.conv1x1("conv2d "+l.Name+" (+ residual)", ref{k: rTemp, i: to}, B, Ca, H, W, C, l.Weight, l.Bias,
		c.val(res), c.val(g.Nodes[ad].Out), g.Nodes[ad].Out, []int{to}, order)
	return true, err
}

// conv1x1 adds a 1×1 convolution of x [B,I,H,W] with weight name ([O,I] or
// [O,I,1,1]: the same memory), optional bias and residual r, into out
// (value v, or -1 when out is scratch); temps lists the scratch it touches.
func (c *compiler) conv1x1(what string, x ref, B, I, H, W, O int, wname, bname string, r, out ref, v graph.Value, temps []int, order int) error {
	K, N := I, B*H*W
	grid, err := c.gemmGrid(what, O, N, 1)
	if err != nil {
		return err
	}
	more := 0
	if r.k != rNone {
		more |= flagR
	}
	split := c.splitFor(grid, K, O*N)
	params := words(B, I, H, W, O, H, W, 1, 1, 1, 0, 0, K, N, c.flags(bname, more), split)
	binds := []ref{x, c.weight(wname), c.weight(bname), {k: rNone}, r, out}
	if c.serial() {
		return c.convSerial(what, params, binds, v, grid, order, temps...)
	}
	return c.gemmSteps("conv", "conv2d_main", "conv_reduce", what, params, binds, 0, 5, v, grid, split, O*N, order, temps...)
}
