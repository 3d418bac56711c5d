//go:build js && wasm

package webgpu

import (
	"fmt"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// The ops of lucidrains' denoising-diffusion-pytorch U-Net (core/graph/lucid.go),
// compiled to lucid.wgsl. Every step binds [X, W, E, Out]: the input, the
// op's parameter, a second read-only input and the output.

// maxHeadDim is the largest head width the attention kernels take (each of
// their 64 threads accumulates up to four channels).
const maxHeadDim = 256

func init() {
	families["lucid"] = family{"lucid.wgsl", true, nil, []gpu.BindingType{u, ro, ro, ro, rw}, []string{"index.wgsl", "reduce64.wgsl"}}
	moreNodes[graph.OpRMSNormChannel] = (*compiler).rmsNorm
	// rms_norm's E binding takes the scale_shift's embedding, or else the residual.
	fuseCaps[graph.OpRMSNormChannel] = graph.EpiScaleShift | graph.EpiSiLU | graph.EpiResidual
	moreNodes[graph.OpPixelUnshuffle] = (*compiler).pixelUnshuffle
	moreNodes[graph.OpSliceChannels] = (*compiler).sliceChannels
	moreNodes[graph.OpLinearAttention] = (*compiler).linearAttention
	moreNodes[graph.OpAttentionMemKV] = (*compiler).memAttention
}

// lucidParams lays out lucid.wgsl's Params.
func lucidParams(n, a, b, c, d, e int, f, g float64, flags int) []uint32 {
	return words(n, a, b, c, d, e, f, g, flags, 0, 0, 0)
}

// rmsNorm absorbs what follows it in a resnet block, as GroupNorm does: a
// scale_shift by the time embedding and a SiLU; and then a residual add.
func (c *compiler) rmsNorm(i int) error {
	g := c.g
	n := &g.Nodes[i]
	xs := g.Shapes[n.In[0]]
	C := xs[1]
	per := tensor.Numel(xs[2:])
	// A residual add (x = block(x) + x, x = attn(x) + x) takes the E
	// binding when no scale_shift did (normEpilogue).
	e, out, last, more := c.normEpilogue(i)
	what := "rms_norm " + n.Name
	count := xs[0] * per
	grid, err := c.grid(what, (count+255)/256)
	if err != nil {
		return err
	}
	c.add(pstep{what: what, key: kernelKey{fam: "lucid", entry: "rms_norm"},
		params: lucidParams(count, C, per, 0, 0, 0, n.F, n.G, c.flags("", more)),
		binds:  []ref{c.val(n.In[0]), c.weight(n.Weight), e, c.val(out)},
		out:    out, grid: grid}, last)
	return nil
}

func (c *compiler) pixelUnshuffle(i int) error {
	n := &c.g.Nodes[i]
	xs := c.g.Shapes[n.In[0]]
	numel := tensor.Numel(c.g.Shapes[n.Out])
	return c.lucidElementwise("pixel_unshuffle", n, numel,
		lucidParams(numel, xs[1], xs[2], xs[3], n.Ints[0], 0, 0.0, 0.0, 0))
}

func (c *compiler) sliceChannels(i int) error {
	n := &c.g.Nodes[i]
	xs := c.g.Shapes[n.In[0]]
	per := tensor.Numel(xs[2:])
	numel := tensor.Numel(c.g.Shapes[n.Out])
	return c.lucidElementwise("slice_channels", n, numel,
		lucidParams(numel, n.Ints[1]*per, xs[1]*per, n.Ints[0]*per, 0, 0, 0.0, 0.0, 0))
}

func (c *compiler) lucidElementwise(entry string, n *graph.Node, count int, params []uint32) error {
	what := entry + " " + n.Name
	grid, err := c.grid(what, (count+255)/256)
	if err != nil {
		return err
	}
	none := ref{k: rNone}
	c.add(pstep{what: what, key: kernelKey{fam: "lucid", entry: entry}, params: params,
		binds: []ref{c.val(n.In[0]), none, none, c.val(n.Out)}, out: n.Out, grid: grid}, int(n.Out))
	return nil
}

// memShape is (B, N, heads, D, M) of a linear_attention or attention_mem_kv node.
func (c *compiler) memShape(n *graph.Node) (B, N, heads, D, M int, err error) {
	s := c.g.Shapes[n.In[0]]
	B, N, heads = s[0], s[2]*s[3], n.Ints[0]
	D = s[1] / 3 / heads
	M = graph.MemTokens(c.g, n)
	if D > maxHeadDim {
		err = fmt.Errorf("webgpu: %s %s: head width %d over the kernels' %d", n.Op, n.Name, D, maxHeadDim)
	}
	return
}

// linearAttention is two dispatches: the per-head context matrices
// softmax(k)·vᵀ into scratch, then each output element from its query's
// channel softmax and the context.
func (c *compiler) linearAttention(i int) error {
	n := &c.g.Nodes[i]
	B, N, heads, D, M, err := c.memShape(n)
	if err != nil {
		return err
	}
	what := "linear_attention " + n.Name
	tmp := len(c.temps)
	c.temps = append(c.temps, 4*uint64(B)*uint64(heads)*uint64(D)*uint64(D))
	rows := B * heads * D
	g1, err := c.grid(what, rows)
	if err != nil {
		return err
	}
	numel := B * heads * D * N
	g2, err := c.grid(what, (numel+255)/256)
	if err != nil {
		return err
	}
	flags := c.flags("", 0)
	scratch := ref{k: rTemp, i: tmp}
	c.add(pstep{what: what + " (context)", key: kernelKey{fam: "lucid", entry: "linattn_context"},
		params: lucidParams(rows, N, heads, D, M, 0, n.F, 0.0, flags),
		binds:  []ref{c.val(n.In[0]), c.weight(n.Weight), {k: rNone}, scratch},
		out:    n.Out, temps: []int{tmp}, grid: g1}, i)
	c.add(pstep{what: what + " (output)", key: kernelKey{fam: "lucid", entry: "linattn_out"},
		params: lucidParams(numel, N, heads, D, M, 0, n.F, 0.0, flags),
		binds:  []ref{c.val(n.In[0]), {k: rNone}, scratch, c.val(n.Out)},
		out:    n.Out, temps: []int{tmp}, grid: g2}, i)
	return nil
}

// memAttention is one dispatch, a workgroup per query (a thread per query
// on software adapters: rowKernel), with no stored scores.
func (c *compiler) memAttention(i int) error {
	n := &c.g.Nodes[i]
	B, N, heads, D, M, err := c.memShape(n)
	if err != nil {
		return err
	}
	what := "attention_mem_kv " + n.Name
	rows := B * heads * N
	entry, grid, err := c.rowKernel(what, "mem_attention", rows)
	if err != nil {
		return err
	}
	c.add(pstep{what: what, key: kernelKey{fam: "lucid", entry: entry},
		params: lucidParams(rows, N, heads, D, M, 0, n.F, 0.0, c.flags("", 0)),
		binds:  []ref{c.val(n.In[0]), c.weight(n.Weight), {k: rNone}, c.val(n.Out)},
		out:    n.Out, grid: grid}, i)
	return nil
}
