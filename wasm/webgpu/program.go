//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// Options control how a graph is compiled.
type Options struct {
	// Weights picks the GPU storage of the parameters (default: f16 when
	// exact, f32 with the serial kernels; see WeightsAuto).
	Weights WeightMode
	// Unfused disables kernel fusion, so each graph node runs its own kernel
	// (used by tests to check every kernel on its own); reshapes stay
	// aliases (findAliases), as they run no kernel.
	Unfused bool
	// SplitK sets how many slices of K a conv or linear is split into: 0
	// picks by the layer's shape (splitFor), 1 never splits, n > 1 always
	// uses n (tests).
	SplitK int
	// Serial picks the kernel set for software adapters (serial.go: no
	// workgroup memory, no barriers, Winograd convolutions), which a
	// software adapter runs many times faster than the GPU kernels: 0 picks
	// by the adapter (Device.Software), 1 always, -1 never (tests run both).
	Serial int
	// winograd: 0 lets useWinograd's rule pick the serial 3×3 stride-1
	// convolutions that run as Winograd (winograd.go), 1 runs every such
	// one so, -1 none (tests and benchmarks).
	winograd int
	// winoTile forces Winograd's output tile (2 or 4; 0: winoTile's rule).
	winoTile int
	// oneSubmission makes Run submit all steps at once instead of in
	// runChunks (benchmarks: BenchmarkLatency's "one-submission").
	oneSubmission bool
}

// Program is a graph compiled for one device: every buffer, pipeline and
// bind group is created by Compile, and Run only writes the inputs, submits
// one command buffer and reads the output back.
type Program struct {
	dev     *Device
	g       *graph.Graph
	weights *weightStore
	ownW    bool // weights belong to this program (Compile), not a Denoiser

	steps   []step
	rec     *gpu.Recording   // steps as one replayable list
	runRecs []*gpu.Recording // the same in Run's chunks (runChunks)
	// oneSubmission: Run submits every step at once (Options.oneSubmission).
	oneSubmission bool
	inputs        map[string]*gpu.Buffer
	out           *gpu.Buffer
	outBytes      uint64
	staging       *gpu.Buffer
	owned         []*gpu.Buffer
	labels        []labelCheck // embedding inputs to validate on the host

	mu sync.Mutex
}

type step struct {
	what string // kernel and node name, for error messages
	pipe *gpu.ComputePipeline
	bg   *gpu.BindGroup
	grid [3]uint32
}

type labelCheck struct {
	input string
	rows  int
	node  string
}

// Compile builds a Program for g. It fails with a *LimitError when the graph
// does not fit the device.
func (d *Device) Compile(ctx context.Context, g *graph.Graph, o Options) (*Program, error) {
	w := newWeightStore(d, g.Params, o)
	p, err := d.compile(ctx, g, w, o)
	if err != nil {
		w.destroy()
		return nil, err
	}
	p.ownW = true
	return p, nil
}

// WeightFormat says how the program's weights are stored ("f16" or "f32").
func (p *Program) WeightFormat() string { return p.weights.format.String() }

// Steps is the number of kernel dispatches per run.
func (p *Program) Steps() int { return len(p.steps) }

// Release frees the program's GPU buffers (and its weights if it owns them).
func (p *Program) Release() {
	for _, b := range p.owned {
		b.Destroy()
	}
	p.owned = nil
	if p.ownW {
		p.weights.destroy()
	}
}

// refKind says what a binding refers to.
type refKind int

const (
	rNone   refKind = iota // the shared dummy buffer
	rValue                 // a graph value
	rWeight                // a parameter
	rConst                 // a host-computed constant table
	rTemp                  // scratch owned by one step
)

type ref struct {
	k    refKind
	v    graph.Value
	name string
	i    int
}

// pstep is a step before buffers exist.
type pstep struct {
	what   string
	key    kernelKey
	params []uint32
	binds  []ref // bindings 1..n
	out    graph.Value
	temps  []int
	grid   [3]uint32
	order  int // index of the last graph node it covers
}

type compiler struct {
	dev    *Device
	g      *graph.Graph
	w      *weightStore
	o      Options
	lim    gpu.Limits
	steps  []pstep
	consts [][]float32
	temps  []uint64 // bytes
	// fu is the epilogue fusion pass (graph.Fusion) over fuseCaps; cons
	// and skip are its Readers and Absorbed, which linears.go and
	// attnblock.go read and mark too.
	fu    *graph.Fusion
	cons  [][]int // consumers of each value, by node index (one entry per use)
	skip  []bool
	views map[graph.Value]view // values that live inside a scratch buffer
	// aliases maps a reshape's output to the value whose buffer it shares.
	aliases map[graph.Value]graph.Value
	// scratchCap bounds split-K scratch: perSampleBytes of this graph.
	scratchCap uint64
}

// view places a value at a byte offset of scratch buffer temp (the outputs
// of merged linears, linears.go).
type view struct {
	temp int
	off  uint64
}

func valBytes(shape []int) uint64 { return 4 * uint64(tensor.Numel(shape)) }

// val refers to value v, or to the value it is a reshape of (aliases).
func (c *compiler) val(v graph.Value) ref {
	if a, ok := c.aliases[v]; ok {
		v = a
	}
	return ref{k: rValue, v: v}
}

// findAliases makes every reshape but the graph's output an alias of its
// input (of that input's own source, when that is a reshape too): a
// reshape moves no data, so it needs no buffer and no dispatch.
func (c *compiler) findAliases() {
	c.aliases = map[graph.Value]graph.Value{}
	for _, n := range c.g.Nodes {
		if n.Op == graph.OpReshape && n.Out != c.g.Output {
			c.aliases[n.Out] = c.val(n.In[0]).v
		}
	}
}

func (c *compiler) weight(name string) ref {
	if name == "" {
		return ref{k: rNone}
	}
	return ref{k: rWeight, name: name}
}

// only returns the node that is the single consumer of v, or -1
// (graph.Fusion.Single).
func (c *compiler) only(v graph.Value) int { return c.fu.Single(v) }

// fuseCaps is what this backend's kernels fold into their epilogues
// (graph.Fusion): the convs' time-embedding channel add and residual
// (conv.wgsl's E and R bindings, both at once), the linear's SiLU, and
// the group norm's scale_shift and SiLU (norm.wgsl). lucid.go adds
// rms_norm_channel's.
var fuseCaps = graph.Caps{
	graph.OpConv2D:          graph.EpiAddChannel | graph.EpiResidual | graph.EpiResidualWithE,
	graph.OpConvTranspose2D: graph.EpiAddChannel | graph.EpiResidual | graph.EpiResidualWithE,
	graph.OpLinear:          graph.EpiSiLU,
	graph.OpGroupNorm:       graph.EpiScaleShift | graph.EpiSiLU,
}

// operand refers to value v, or to nothing when v is -1 (a Fused's E or Res).
func (c *compiler) operand(v graph.Value) ref {
	if v < 0 {
		return ref{k: rNone}
	}
	return c.val(v)
}

// grid lays out count workgroups in up to two dimensions.
func (c *compiler) grid(what string, count int) ([3]uint32, error) {
	maxd := int(c.lim.MaxComputeWorkgroupsPerDimension)
	if count <= maxd {
		return [3]uint32{uint32(max(count, 1)), 1, 1}, nil
	}
	y := (count + maxd - 1) / maxd
	if y > maxd {
		return [3]uint32{}, &LimitError{What: what, Limit: "maxComputeWorkgroupsPerDimension", Need: uint64(y), Have: uint64(maxd), BatchSplittable: true}
	}
	return [3]uint32{uint32(maxd), uint32(y), 1}, nil
}

// gemmGrid is the workgroup grid of an m×n GEMM (z of them): 64×64 tiles,
// or GEMM_serial's 64×32 ones with serial kernels.
func (c *compiler) gemmGrid(what string, m, n, z int) ([3]uint32, error) {
	tn := 64
	if c.serial() {
		tn = 32
	}
	g := [3]uint32{uint32((n + tn - 1) / tn), uint32((m + 63) / 64), uint32(z)}
	for _, d := range g {
		if uint64(d) > c.lim.MaxComputeWorkgroupsPerDimension {
			return g, &LimitError{What: what, Limit: "maxComputeWorkgroupsPerDimension", Need: uint64(d), Have: c.lim.MaxComputeWorkgroupsPerDimension, BatchSplittable: true}
		}
	}
	return g, nil
}

// splitFor picks the number of K slices for a GEMM with the given tile
// grid and K: enough workgroups to occupy a large GPU (about 256), but at
// least 4 K steps (64) per slice so the partial sums stay cheap. Layers
// that already have many tiles are not split, nor anything on a software
// adapter (measured on SwiftShader: MNIST 7.3 s per call split, 5.7 s not).
//
// The scratch (split × the output) is kept within the largest buffer the
// graph needs anyway (perSampleBytes), so the batch splitting computed from
// that still holds.
func (c *compiler) splitFor(grid [3]uint32, K, numel int) int {
	if c.o.SplitK > 0 { // forced (tests): not capped
		return max(1, min(c.o.SplitK, (K+15)/16))
	}
	most := max(1, int(c.scratchCap/(4*uint64(max(numel, 1)))))
	tiles := int(grid[0] * grid[1] * grid[2])
	if tiles >= 64 || c.software() {
		return 1
	}
	return max(1, min(256/tiles, K/64, 32, most))
}

// attention adds attention.wgsl's three steps, scores (entry prefix
// scores: S = q·kᵀ·scale per (batch, head)), a row softmax of S in place
// and the weighted sum (prefix pv), with its Params and bindings, writing
// value out (-1: scratch); temps are the scratch buffers they touch, the
// scores among them, which live from the first step to the last.
func (c *compiler) attention(what, scores, pv string, params []uint32, binds []ref, out graph.Value, temps []int, order int) error {
	B, N, heads, D := int(params[0]), int(params[1]), int(params[3]), int(params[4])
	g1, err := c.gemmGrid(what, N, N, B*heads)
	if err != nil {
		return err
	}
	softmax, g2, err := c.rowKernel(what, "softmax", B*heads*N)
	if err != nil {
		return err
	}
	g3, err := c.gemmGrid(what, N, D, B*heads)
	if err != nil {
		return err
	}
	c.add(pstep{what: what + " (scores)", key: kernelKey{fam: "attention", entry: scores + "_main"}, params: params, binds: binds, out: out, temps: temps, grid: g1}, order)
	c.add(pstep{what: what + " (softmax)", key: kernelKey{fam: "attention", entry: softmax}, params: params, binds: binds, out: out, temps: temps, grid: g2}, order)
	c.add(pstep{what: what + " (weighted sum)", key: kernelKey{fam: "attention", entry: pv + "_main"}, params: params, binds: binds, out: out, temps: temps, grid: g3}, order)
	return nil
}

// gemmSteps adds a GEMM-shaped op writing value v (-1: scratch) over K in
// split slices (splitFor). With one slice it is one step of entry. Split, it
// is two: entry with z = slice, storing partial sums into a scratch buffer
// bound in place of its output (binding out), then reduce, one thread per
// output element, reading the scratch in place of its input (binding in)
// and applying the epilogue. temps are other scratch buffers the bindings
// use.
func (c *compiler) gemmSteps(fam, entry, reduce, what string, params []uint32, binds []ref, in, out int, v graph.Value, grid [3]uint32, split, numel, order int, temps ...int) error {
	if split <= 1 {
		c.add(pstep{what: what, key: kernelKey{fam: fam, entry: entry}, params: params, binds: binds, out: v, temps: temps, grid: grid}, order)
		return nil
	}
	if grid[2] != 1 {
		return fmt.Errorf("webgpu: %s: split-K needs a flat grid, have %v", what, grid)
	}
	if uint64(split) > c.lim.MaxComputeWorkgroupsPerDimension {
		return &LimitError{What: what, Limit: "maxComputeWorkgroupsPerDimension", Need: uint64(split), Have: c.lim.MaxComputeWorkgroupsPerDimension}
	}
	tmp := len(c.temps)
	c.temps = append(c.temps, 4*uint64(split)*uint64(numel))
	none := ref{k: rNone}
	// The GEMM step reads only the operands; the reduce step only the rest.
	g1 := make([]ref, len(binds))
	g2 := make([]ref, len(binds))
	for k := range binds {
		g1[k], g2[k] = none, binds[k]
	}
	g1[0], g1[1] = binds[0], binds[1]
	g1[out] = ref{k: rTemp, i: tmp}
	g2[in], g2[1] = ref{k: rTemp, i: tmp}, none
	grid[2] = uint32(split)
	rgrid, err := c.grid(what, (numel+255)/256)
	if err != nil {
		return err
	}
	ts := append([]int{tmp}, temps...)
	c.add(pstep{what: what + " (split-K)", key: kernelKey{fam: fam, entry: entry}, params: params, binds: g1, out: v, temps: ts, grid: grid}, order)
	c.add(pstep{what: what + " (reduce)", key: kernelKey{fam: fam, entry: reduce}, params: params, binds: g2, out: v, temps: ts, grid: rgrid}, order)
	return nil
}

// bindLimit is the most bytes one binding may hold on this device.
func (c *compiler) bindLimit() uint64 {
	return min(c.lim.MaxStorageBufferBindingSize, c.lim.MaxBufferSize)
}

// fits reports whether the named weights, concatenated, fit one binding.
func (c *compiler) fits(names ...string) bool {
	var b uint64
	for _, n := range names {
		b += c.w.bytes(n)
	}
	return b <= c.bindLimit()
}

func words(vals ...any) []uint32 {
	out := make([]uint32, 0, len(vals))
	for _, v := range vals {
		switch x := v.(type) {
		case int:
			out = append(out, uint32(x))
		case uint32:
			out = append(out, x)
		case float64:
			out = append(out, f32bits(x))
		case float32:
			out = append(out, math.Float32bits(x))
		case bool:
			if x {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		default:
			panic(fmt.Sprintf("words: %T", v))
		}
	}
	return out
}

// flags is the uniform flags word for a step: bias presence and weight format.
func (c *compiler) flags(bias string, more int) int {
	f := more
	if bias != "" {
		f |= flagBias
	}
	if c.w.format == formatF16 {
		f |= flagF16
	}
	return f
}

func (c *compiler) add(s pstep, order int) {
	s.order = order
	// GEMM steps name their tiled entry (prefix_main); with serial kernels
	// they run its barrier-free twin prefix_serial (gemm.wgsl), whose tiles
	// gemmGrid sized.
	if p, ok := strings.CutSuffix(s.key.entry, "_main"); ok && c.serial() {
		s.key.entry = p + "_serial"
	}
	c.steps = append(c.steps, s)
}

// elementwise adds a one-thread-per-element step.
func (c *compiler) elementwise(fam, entry string, n *graph.Node, x, y ref, count int, params []uint32) error {
	what := entry + " " + n.Name
	grid, err := c.grid(what, (count+255)/256)
	if err != nil {
		return err
	}
	c.add(pstep{what: what, key: kernelKey{fam: fam, entry: entry}, params: params,
		binds: []ref{x, y, c.val(n.Out)}, out: n.Out, grid: grid}, int(n.Out))
	return nil
}

func (c *compiler) node(i int) error {
	g := c.g
	n := &g.Nodes[i]
	shape := func(k int) []int { return g.Shapes[n.In[k]] }
	outShape := g.Shapes[n.Out]
	numel := tensor.Numel(outShape)
	none := ref{k: rNone}
	switch n.Op {
	case graph.OpInput:
		return nil

	case graph.OpConv2D, graph.OpConvTranspose2D:
		xs, ws := shape(0), g.Params[n.Weight].Shape
		fu := c.fu.Epilogue(i)
		out, last := fu.Out, fu.Last
		e, r := c.operand(fu.E), c.operand(fu.Res)
		B, I, H, W := xs[0], xs[1], xs[2], xs[3]
		O, OH, OW := outShape[1], outShape[2], outShape[3]
		K, N := I*ws[2]*ws[3], B*OH*OW
		var stride, pt, pl int
		entry := "conv2d_main"
		if n.Op == graph.OpConv2D {
			stride, pt, pl = n.Ints[0], n.Ints[1], n.Ints[2]
		} else {
			entry = "convt_main"
			stride, pt, pl = n.Ints[0], n.Ints[1], n.Ints[1]
		}
		what := string(n.Op) + " " + n.Name
		grid, err := c.gemmGrid(what, O, N, 1)
		if err != nil {
			return err
		}
		more := 0
		if e.k != rNone {
			more |= flagE
		}
		if r.k != rNone {
			more |= flagR
		}
		split := c.splitFor(grid, K, O*N)
		params := words(B, I, H, W, O, OH, OW, ws[2], ws[3], stride, pt, pl, K, N, c.flags(n.Bias, more), split)
		binds := []ref{c.val(n.In[0]), c.weight(n.Weight), c.weight(n.Bias), e, r, c.val(out)}
		if n.Op == graph.OpConv2D && c.serial() {
			return c.convSerial(what, params, binds, out, grid, last)
		}
		if n.Op == graph.OpConvTranspose2D && c.serial() && pt < ws[2] && pt < ws[3] {
			return c.convtSerial(what, params, binds, out, last)
		}
		if split > 1 && r.k == rNone && !c.o.Unfused {
			if ok, err := c.convIntoNorm(what, entry, params, binds, out, grid, split, O*N, e, n.Bias, last); ok || err != nil {
				return err
			}
		}
		if err := c.gemmSteps("conv", entry, "conv_reduce", what, params, binds, 0, 5, out, grid, split, O*N, last); err != nil {
			return err
		}

	case graph.OpLinear:
		if !c.o.Unfused {
			if ok, err := c.linears(i); ok || err != nil {
				return err
			}
		}
		ws := g.Params[n.Weight].Shape
		O, I := ws[0], ws[1]
		rows := numel / O
		fu := c.fu.Epilogue(i)
		out, last, more := fu.Out, fu.Last, 0
		if fu.SiLU {
			more = flagSiLU
		}
		what := "linear " + n.Name
		binds := []ref{c.val(n.In[0]), c.weight(n.Weight), c.weight(n.Bias), c.val(out)}
		return c.linearSteps(what, rows, I, O, c.flags(n.Bias, more), binds, out, last)

	case graph.OpGroupNorm:
		return c.groupNorm(i, c.val(n.In[0]), 0, none, "", nil)

	// (A reshape gets here only as the graph's output, copied into the
	// output buffer; the others are aliases: findAliases.)
	case graph.OpSiLU, graph.OpGELU, graph.OpAdd, graph.OpAffine, graph.OpAddChannel, graph.OpScaleShift, graph.OpDivBatch,
		graph.OpReshape, graph.OpVEMarginalStd:
		x, y := c.val(n.In[0]), none
		if len(n.In) > 1 {
			y = c.val(n.In[1])
		}
		plane, ch, per := 1, 1, 1
		if len(outShape) == 4 {
			plane, ch = outShape[2]*outShape[3], outShape[1]
		}
		if outShape[0] > 0 {
			per = numel / outShape[0]
		}
		return c.elementwise("elementwise", string(n.Op), n, x, y, numel,
			words(numel, plane, ch, per, n.F, n.G, 0, 0))

	case graph.OpConcat:
		a, b := shape(0), shape(1)
		return c.elementwise("layout", "concat", n, c.val(n.In[0]), c.val(n.In[1]), numel,
			words(numel, tensor.Numel(a[1:]), tensor.Numel(b[1:]), 0))
	case graph.OpUpsampleNearest2x:
		xs := shape(0)
		return c.elementwise("layout", "upsample2x", n, c.val(n.In[0]), none, numel, words(numel, xs[2], xs[3], 0))
	case graph.OpToTokens:
		if !c.o.Unfused {
			if ok, err := c.attnBlock(i); ok || err != nil {
				return err
			}
		}
		xs := shape(0)
		return c.elementwise("layout", "to_tokens", n, c.val(n.In[0]), none, numel, words(numel, xs[1], xs[2]*xs[3], 0))
	case graph.OpFromTokens:
		xs := shape(0)
		return c.elementwise("layout", "from_tokens", n, c.val(n.In[0]), none, numel, words(numel, xs[2], xs[1], 0))

	case graph.OpAttention:
		qs := shape(0)
		B, N, C, heads := qs[0], qs[1], qs[2], n.Ints[0]
		D := C / heads
		what := "attention " + n.Name
		tmp := len(c.temps)
		c.temps = append(c.temps, 4*uint64(B)*uint64(heads)*uint64(N)*uint64(N))
		binds := []ref{c.val(n.In[0]), c.val(n.In[1]), c.val(n.In[2]), {k: rTemp, i: tmp}, c.val(n.Out)}
		// Every step binds the output (one bind group serves all three), so
		// each counts as writing it.
		return c.attention(what, "scores", "pv", words(B, N, C, heads, D, B*heads*N, n.F, 0), binds, n.Out, []int{tmp}, i)

	case graph.OpTimestepEmbed:
		dim, half := n.Ints[0], n.Ints[0]/2
		// The frequency table, computed as the CPU reference does.
		freqs := make([]float32, max(half, 1))
		for k := 0; k < half; k++ {
			e := float32(-math.Log(10000)) * float32(k) / float32(float64(half)-n.F)
			freqs[k] = float32(math.Exp(float64(e)))
		}
		ci := len(c.consts)
		c.consts = append(c.consts, freqs)
		what := "timestep_embed " + n.Name
		grid, err := c.grid(what, (numel+255)/256)
		if err != nil {
			return err
		}
		c.add(pstep{what: what, key: kernelKey{fam: "embed", entry: "timestep"},
			params: words(numel, dim, half, n.Ints[1], n.G, 0, 0, 0),
			binds:  []ref{c.val(n.In[0]), none, {k: rConst, i: ci}, c.val(n.Out)},
			out:    n.Out, grid: grid}, i)

	case graph.OpFourierEmbed:
		half := len(g.Params[n.Weight].Data)
		what := "fourier_embed " + n.Name
		grid, err := c.grid(what, (numel+255)/256)
		if err != nil {
			return err
		}
		c.add(pstep{what: what, key: kernelKey{fam: "embed", entry: "fourier"},
			params: words(numel, 2*half, half, n.Ints[1], 1.0, n.Ints[0], 0, c.flags("", 0)),
			binds:  []ref{c.val(n.In[0]), c.weight(n.Weight), none, c.val(n.Out)},
			out:    n.Out, grid: grid}, i)

	case graph.OpEmbedding:
		ws := g.Params[n.Weight].Shape
		what := "embedding " + n.Name
		grid, err := c.grid(what, (numel+255)/256)
		if err != nil {
			return err
		}
		c.add(pstep{what: what, key: kernelKey{fam: "embed", entry: "embedding"},
			params: words(numel, ws[1], 0, 0, 0.0, 0, ws[0], c.flags("", 0)),
			binds:  []ref{c.val(n.In[0]), c.weight(n.Weight), none, c.val(n.Out)},
			out:    n.Out, grid: grid}, i)

	default:
		if f, ok := moreNodes[n.Op]; ok {
			return f(c, i)
		}
		return fmt.Errorf("webgpu: op %q (%s) is not implemented", n.Op, n.Name)
	}
	return nil
}

// groupNorm compiles GroupNorm node i reading x. With split > 0, x is a
// split-K conv's partial sums (convIntoNorm): the kernel adds the slices,
// the conv's bias (cbias) and its add_channel term (convE, bound as e)
// itself, so the conv needs no reduce step.
func (c *compiler) groupNorm(i int, x ref, split int, convE ref, cbias string, temps []int) error {
	g := c.g
	n := &g.Nodes[i]
	xs := g.Shapes[n.In[0]]
	groups := n.Ints[0]
	per := tensor.Numel(xs[2:])
	e, out, last, more := c.normEpilogue(i)
	convFlags := 0
	if convE.k != rNone {
		e, convFlags = convE, 2
	}
	what := "group_norm " + n.Name
	count := xs[0] * groups
	entry, grid, err := c.rowKernel(what, "group_norm", count)
	if err != nil {
		return err
	}
	if cbias != "" {
		convFlags |= 1
	}
	c.add(pstep{what: what, key: kernelKey{fam: "norm", entry: entry},
		params: words(groups, xs[1]/groups, per, count, n.F, c.flags(n.Bias, 0)|more, split, convFlags),
		binds:  []ref{x, c.weight(n.Weight), c.weight(n.Bias), e, c.val(out), c.weight(cbias)},
		out:    out, temps: temps, grid: grid}, last)
	return nil
}

// convIntoNorm compiles a split-K conv whose only reader is a GroupNorm as
// the GEMM step and that GroupNorm reading the partial sums, saving the
// reduce dispatch (resnet conv1 → norm2). It declines when both would need
// the E binding (an add_channel after the conv and a scale_shift after the
// norm).
func (c *compiler) convIntoNorm(what, entry string, params []uint32, binds []ref, v graph.Value, grid [3]uint32, split, numel int, e ref, bias string, order int) (bool, error) {
	g := c.g
	j := c.only(v)
	if j < 0 || g.Nodes[j].Op != graph.OpGroupNorm || g.Nodes[j].In[0] != v || len(g.Shapes[v]) != 4 {
		return false, nil
	}
	if k := c.only(g.Nodes[j].Out); e.k != rNone && k >= 0 && g.Nodes[k].Op == graph.OpScaleShift {
		return false, nil
	}
	if uint64(split) > c.lim.MaxComputeWorkgroupsPerDimension {
		return false, nil
	}
	c.skip[j] = true
	tmp := len(c.temps)
	c.temps = append(c.temps, 4*uint64(split)*uint64(numel))
	none := ref{k: rNone}
	grid[2] = uint32(split)
	c.add(pstep{what: what + " (split-K)", key: kernelKey{fam: "conv", entry: entry}, params: params,
		binds: []ref{binds[0], binds[1], none, none, none, {k: rTemp, i: tmp}}, out: -1, temps: []int{tmp}, grid: grid}, order)
	return true, c.groupNorm(j, ref{k: rTemp, i: tmp}, split, e, bias, []int{tmp})
}

// normEpilogue folds what follows normalisation node i in a resnet
// (graph.Fusion, fuseCaps): a scale_shift by the time embedding (its
// embedding becomes binding e, flagE), a SiLU (flagSiLU), and for
// rms_norm_channel a residual add when no scale_shift took e (the
// residual becomes e, flagR). It returns the value the fused step writes
// and the index of the last node it covers.
func (c *compiler) normEpilogue(i int) (e ref, out graph.Value, last, more int) {
	fu := c.fu.Epilogue(i)
	e, out, last = c.operand(fu.E), fu.Out, fu.Last
	if fu.E >= 0 {
		more |= flagE
	}
	if fu.SiLU {
		more |= flagSiLU
	}
	if fu.Res >= 0 {
		e, more = c.val(fu.Res), more|flagR
	}
	return
}

// moreNodes compiles ops kept outside this switch (one file per op family,
// registered from that file's init), so a new family touches no shared code.
var moreNodes = map[graph.Kind]func(c *compiler, i int) error{}

// slotAlloc assigns values to reusable buffers by lifetime: a value takes
// the best-fitting free buffer (growing one if none is big enough) and
// frees it after its last reader.
type slotAlloc struct {
	caps []uint64
	free []int
}

func (a *slotAlloc) get(size uint64) int {
	best := -1
	for k, s := range a.free {
		if a.caps[s] >= size && (best < 0 || a.caps[s] < a.caps[a.free[best]]) {
			best = k
		}
	}
	if best < 0 && len(a.free) > 0 {
		// Grow the largest free buffer rather than add one.
		for k, s := range a.free {
			if best < 0 || a.caps[s] > a.caps[a.free[best]] {
				best = k
			}
		}
	}
	if best < 0 {
		a.caps = append(a.caps, size)
		return len(a.caps) - 1
	}
	s := a.free[best]
	a.free = append(a.free[:best], a.free[best+1:]...)
	a.caps[s] = max(a.caps[s], size)
	return s
}

func (a *slotAlloc) put(s int) { a.free = append(a.free, s) }

func (d *Device) compile(ctx context.Context, g *graph.Graph, w *weightStore, o Options) (*Program, error) {
	lim := d.limits
	if lim.MaxComputeWorkgroupStorageSize < workgroupBytes {
		return nil, &LimitError{What: "the GEMM kernels", Limit: "maxComputeWorkgroupStorageSize", Need: workgroupBytes, Have: lim.MaxComputeWorkgroupStorageSize}
	}
	if lim.MaxStorageBuffersPerShaderStage < storageBindings {
		return nil, &LimitError{What: "the conv kernel", Limit: "maxStorageBuffersPerShaderStage", Need: storageBindings, Have: lim.MaxStorageBuffersPerShaderStage}
	}
	if lim.MaxComputeInvocationsPerWorkgroup < 256 {
		return nil, &LimitError{What: "every kernel", Limit: "maxComputeInvocationsPerWorkgroup", Need: 256, Have: lim.MaxComputeInvocationsPerWorkgroup}
	}
	caps := fuseCaps
	if o.Unfused {
		caps = nil
	}
	fu := graph.NewFusion(g, caps)
	c := &compiler{dev: d, g: g, w: w, o: o, lim: lim, fu: fu, cons: fu.Readers, skip: fu.Absorbed,
		scratchCap: perSampleBytes(g, useSerial(d, o), min(lim.MaxStorageBufferBindingSize, lim.MaxBufferSize))}
	c.findAliases()
	for i := range g.Nodes {
		if c.skip[i] {
			continue
		}
		if _, ok := c.aliases[g.Nodes[i].Out]; ok {
			continue
		}
		if err := c.node(i); err != nil {
			return nil, err
		}
	}
	// Fused steps run where their last node was, after all their inputs.
	sort.SliceStable(c.steps, func(a, b int) bool { return c.steps[a].order < c.steps[b].order })
	// A step that reads a view keeps the view's scratch alive.
	for si := range c.steps {
		s := &c.steps[si]
		for _, r := range s.binds {
			if vw, ok := c.views[r.v]; ok && r.k == rValue {
				s.temps = append(s.temps, vw.temp)
			}
		}
	}

	// Size checks: every binding must fit maxStorageBufferBindingSize.
	bindMax := min(lim.MaxStorageBufferBindingSize, lim.MaxBufferSize)
	batch := 1
	if x, ok := g.Inputs["x"]; ok && len(g.Shapes[x]) > 0 {
		batch = g.Shapes[x][0]
	}
	for v, s := range g.Shapes {
		if b := valBytes(s); b > bindMax {
			return nil, &LimitError{What: fmt.Sprintf("value %d %v", v, s), Limit: "maxStorageBufferBindingSize", Need: b, Have: bindMax, BatchSplittable: batch > 1}
		}
	}
	for _, b := range c.temps {
		if b > bindMax {
			return nil, &LimitError{What: "a scratch buffer (attention scores or split-K partial sums)", Limit: "maxStorageBufferBindingSize", Need: b, Have: bindMax, BatchSplittable: batch > 1}
		}
	}
	for _, s := range c.steps {
		for _, r := range s.binds {
			if r.k == rWeight && w.bytes(r.name) > bindMax {
				return nil, &LimitError{What: "weight " + r.name, Limit: "maxStorageBufferBindingSize", Need: w.bytes(r.name), Have: bindMax}
			}
		}
	}

	p := &Program{dev: d, g: g, weights: w, inputs: map[string]*gpu.Buffer{}, oneSubmission: o.oneSubmission}
	for _, n := range g.Nodes {
		if n.Op == graph.OpEmbedding {
			for name, v := range g.Inputs {
				if v == n.In[0] {
					p.labels = append(p.labels, labelCheck{input: name, rows: g.Params[n.Weight].Shape[0], node: n.Name})
				}
			}
		}
	}

	// Lifetimes: a value lives from its step to its last reader; inputs and
	// the output have their own buffers.
	pinned := map[graph.Value]bool{g.Output: true}
	for _, v := range g.Inputs {
		pinned[v] = true
	}
	if pinned[g.Output] && g.Nodes[g.Output].Op == graph.OpInput {
		return nil, errors.New("webgpu: graph output is an input")
	}
	lastUse := map[graph.Value]int{}
	for si, s := range c.steps {
		for _, r := range s.binds {
			if r.k == rValue && r.v != s.out {
				lastUse[r.v] = si
			}
		}
	}
	var alloc slotAlloc
	slotOf := map[graph.Value]int{}
	tempSlot := map[int]int{}
	for si, s := range c.steps {
		if s.out >= 0 && !pinned[s.out] {
			if _, done := slotOf[s.out]; !done {
				slotOf[s.out] = alloc.get(valBytes(g.Shapes[s.out]))
			}
		}
		for _, t := range s.temps {
			if _, done := tempSlot[t]; !done {
				tempSlot[t] = alloc.get(c.temps[t])
			}
		}
		for _, r := range s.binds {
			if _, isView := c.views[r.v]; isView && r.k == rValue {
				continue
			}
			if r.k == rValue && !pinned[r.v] && r.v != s.out && lastUse[r.v] == si {
				alloc.put(slotOf[r.v])
			}
		}
		// A temp is freed after the last step that uses it.
		for _, t := range s.temps {
			lastT := si
			for sj := si + 1; sj < len(c.steps); sj++ {
				for _, t2 := range c.steps[sj].temps {
					if t2 == t {
						lastT = sj
					}
				}
			}
			if lastT == si {
				alloc.put(tempSlot[t])
			}
		}
	}

	// Buffers.
	gd := d.gpu
	d.mu.Lock()
	defer d.mu.Unlock()
	var slots []*gpu.Buffer
	var constBufs []*gpu.Buffer
	uniStride := max(uint64(256), lim.MinUniformBufferOffsetAlignment)
	var uniform *gpu.Buffer
	err := gd.Scoped(ctx, "allocating buffers", func() {
		for k, cp := range alloc.caps {
			b := gd.CreateBuffer(fmt.Sprintf("activations %d", k), roundUp(max(cp, 16), 16), gpu.Storage|gpu.CopySrc|gpu.CopyDst)
			slots = append(slots, b)
			p.owned = append(p.owned, b)
		}
		for name, v := range g.Inputs {
			b := gd.CreateBuffer("input "+name, roundUp(max(valBytes(g.Shapes[v]), 16), 16), gpu.Storage|gpu.CopyDst|gpu.CopySrc)
			p.inputs[name] = b
			p.owned = append(p.owned, b)
		}
		if _, isInput := p.inputs[inputName(g, g.Output)]; !isInput {
			p.outBytes = valBytes(g.Shapes[g.Output])
			p.out = gd.CreateBuffer("output", roundUp(max(p.outBytes, 16), 16), gpu.Storage|gpu.CopySrc|gpu.CopyDst)
			p.owned = append(p.owned, p.out)
		}
		p.staging = gd.CreateBuffer("readback", roundUp(max(p.outBytes, 16), 16), gpu.MapRead|gpu.CopyDst)
		p.owned = append(p.owned, p.staging)
		for k, t := range c.consts {
			b := gd.CreateBuffer(fmt.Sprintf("table %d", k), roundUp(uint64(4*len(t)), 16), gpu.Storage|gpu.CopyDst)
			gd.WriteBuffer(b, 0, gpu.Float32Bytes(t))
			constBufs = append(constBufs, b)
			p.owned = append(p.owned, b)
		}
		uniform = gd.CreateBuffer("parameters", uniStride*uint64(max(len(c.steps), 1)), gpu.Uniform|gpu.CopyDst)
		p.owned = append(p.owned, uniform)
		for si, s := range c.steps {
			gd.WriteBuffer(uniform, uint64(si)*uniStride, gpu.Uint32Bytes(s.params))
		}
		for _, s := range c.steps {
			for _, r := range s.binds {
				if r.k == rWeight {
					w.buffer(r.name)
				}
			}
		}
	})
	if err != nil {
		p.Release()
		return nil, err
	}

	// Pipelines, all compiled concurrently.
	want := map[kernelKey]bool{}
	for _, s := range c.steps {
		want[s.key] = true
	}
	if err := d.pipelinesFor(ctx, want); err != nil {
		p.Release()
		return nil, err
	}

	// Every value a step binds is an input, the output, a view or has a
	// buffer; anything else is a compiler bug (a value no step writes).
	for _, st := range c.steps {
		for _, r := range st.binds {
			if r.k != rValue || r.v == g.Output {
				continue
			}
			_, isInput := inputName2(g, r.v)
			_, isView := c.views[r.v]
			if _, ok := slotOf[r.v]; !ok && !isInput && !isView {
				p.Release()
				return nil, fmt.Errorf("webgpu: internal error: %s binds value %d, which no step writes", st.what, r.v)
			}
		}
	}

	// Bind groups.
	resolve := func(s *pstep, r ref) gpu.Binding {
		switch r.k {
		case rValue:
			var b *gpu.Buffer
			if name, ok := inputName2(g, r.v); ok {
				b = p.inputs[name]
			} else if r.v == g.Output {
				b = p.out
			} else if vw, ok := c.views[r.v]; ok {
				return gpu.Binding{Buffer: slots[tempSlot[vw.temp]], Offset: vw.off, Size: max(valBytes(g.Shapes[r.v]), 4)}
			} else {
				b = slots[slotOf[r.v]]
			}
			return gpu.Binding{Buffer: b, Size: max(valBytes(g.Shapes[r.v]), 4)}
		case rWeight:
			return gpu.Binding{Buffer: w.buffer(r.name), Size: max(w.bytes(r.name), 4)}
		case rConst:
			return gpu.Binding{Buffer: constBufs[r.i], Size: uint64(4 * len(c.consts[r.i]))}
		case rTemp:
			return gpu.Binding{Buffer: slots[tempSlot[r.i]], Size: c.temps[r.i]}
		}
		return gpu.Binding{Buffer: d.dummy}
	}
	makeGroups := func(only int) {
		for si := range c.steps {
			if only >= 0 && si != only {
				continue
			}
			s := &c.steps[si]
			bs := []gpu.Binding{{Buffer: uniform, Offset: uint64(si) * uniStride, Size: uniStride}}
			for _, r := range s.binds {
				bs = append(bs, resolve(s, r))
			}
			// Trailing optional bindings a step leaves out get the dummy.
			for len(bs) < len(families[s.key.fam].layout) {
				bs = append(bs, gpu.Binding{Buffer: d.dummy})
			}
			p.steps[si].bg = gd.CreateBindGroup(s.what, d.layout(s.key.fam), bs)
		}
	}
	p.steps = make([]step, len(c.steps))
	for si, s := range c.steps {
		p.steps[si] = step{what: s.what, pipe: d.pipeline(s.key), grid: s.grid}
	}
	if err := gd.Scoped(ctx, "creating bind groups", func() { makeGroups(-1) }); err != nil {
		// Find the step at fault, to name it.
		for si := range c.steps {
			if e := gd.Scoped(ctx, c.steps[si].what, func() { makeGroups(si) }); e != nil {
				err = e
				break
			}
		}
		p.Release()
		return nil, err
	}
	return p, nil
}

func inputName(g *graph.Graph, v graph.Value) string {
	n, _ := inputName2(g, v)
	return n
}

func inputName2(g *graph.Graph, v graph.Value) (string, bool) {
	for name, iv := range g.Inputs {
		if iv == v {
			return name, true
		}
	}
	return "", false
}

// testHookSubmitted, when set by a test, runs after a program's work is
// submitted and before its output is read back.
var testHookSubmitted func()

// Run writes the inputs (by graph input name; class labels as floats),
// runs every step (in a few submissions: runChunks) and returns the output.
func (p *Program) Run(ctx context.Context, inputs map[string][]float32) (*tensor.Tensor, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	gd := p.dev.gpu
	if err := gd.LostErr(); err != nil {
		return nil, err
	}
	g := p.g
	for name := range p.inputs {
		data, ok := inputs[name]
		if !ok {
			return nil, fmt.Errorf("webgpu: missing input %q", name)
		}
		if want := tensor.Numel(g.Shapes[g.Inputs[name]]); len(data) != want {
			return nil, fmt.Errorf("webgpu: input %q has %d values, graph needs shape %v", name, len(data), g.Shapes[g.Inputs[name]])
		}
	}
	for _, lc := range p.labels {
		for _, lf := range inputs[lc.input] {
			if l := int(lf); float32(l) != lf || l < 0 || l >= lc.rows {
				return nil, fmt.Errorf("%s: class label %v outside 0..%d", lc.node, lf, lc.rows-1)
			}
		}
	}
	if p.runRecs == nil {
		b := runChunks(len(p.steps))
		if p.oneSubmission {
			b = []int{0, len(p.steps)}
		}
		for k := 1; k < len(b); k++ {
			p.runRecs = append(p.runRecs, gpu.Record(p.dispatches(b[k-1], b[k])))
		}
	}
	scopes := gd.StartScoped("network", func() {
		for name, b := range p.inputs {
			gd.WriteBuffer(b, 0, gpu.Float32Bytes(inputs[name]))
		}
		for k, r := range p.runRecs {
			e := gd.NewEncoder("run")
			e.Replay(r)
			if k == len(p.runRecs)-1 {
				e.Copy(p.out, 0, p.staging, 0, roundUp(p.outBytes, 4))
			}
			e.Submit()
		}
	})
	if testHookSubmitted != nil {
		testHookSubmitted()
	}
	// Map the output while the scopes settle: both wait for the same work.
	read := gd.StartRead(p.staging, int(p.outBytes))
	if err := scopes.Wait(ctx); err != nil {
		if errors.Is(err, ErrDeviceLost) {
			return nil, err
		}
		read.Unmap(ctx)
		return nil, p.blame(ctx, err)
	}
	out := make([]float32, p.outBytes/4)
	if err := read.Wait(ctx, gpu.Float32Bytes(out)); err != nil {
		return nil, err
	}
	// An error no scope caught (elsewhere on the device, maybe since the
	// last run) may have left this run's objects invalid: fail rather than
	// hand out a result that may be garbage.
	if err := gd.TakeUncaptured(); err != nil {
		return nil, err
	}
	return tensor.From(out, g.Shapes[g.Output]...), nil
}

// encode records every step of the program, in one compute pass.
func (p *Program) encode(e *gpu.Encoder) {
	if p.rec == nil {
		p.rec = gpu.Record(p.dispatches(0, len(p.steps)))
	}
	e.Replay(p.rec)
}

// dispatches lists steps [from, to).
func (p *Program) dispatches(from, to int) []gpu.Dispatch {
	ds := make([]gpu.Dispatch, 0, to-from)
	for _, s := range p.steps[from:to] {
		ds = append(ds, gpu.Dispatch{Pipeline: s.pipe, Group: s.bg, X: s.grid[0], Y: s.grid[1], Z: s.grid[2]})
	}
	return ds
}

// runChunks splits n steps into the submissions Run makes: 8 steps, then
// twice as many each time (it returns the boundaries, 0 first, n last).
// In Dawn for Node the GPU starts on the first few while the host is
// still recording the rest; recording a dispatch costs a few µs of host
// time there (3 µs on the H100 machine, 0.5–1.2 ms for a UNet) and running
// one about 9 µs on a GPU at batch 1, so after the first chunk the GPU
// should not wait for the host, and a call costs about the GPU time plus
// the first chunk's recording, not the two added. (In a browser the
// commands reach the GPU process together; not measured on a GPU yet.)
func runChunks(n int) []int {
	b := []int{0}
	for at, size := 0, 8; at < n; size *= 2 {
		at = min(n, at+size)
		b = append(b, at)
	}
	if n == 0 {
		b = append(b, 0)
	}
	return b
}

// blame reruns the steps one submission each to name the kernel behind err.
func (p *Program) blame(ctx context.Context, err error) error {
	gd := p.dev.gpu
	for _, s := range p.steps {
		if e := gd.Scoped(ctx, s.what, func() {
			enc := gd.NewEncoder(s.what)
			enc.Dispatch(s.pipe, s.bg, s.grid[0], s.grid[1], s.grid[2])
			enc.Submit()
		}); e != nil {
			return e
		}
	}
	return err
}
