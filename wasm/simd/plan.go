package simd

import (
	"fmt"
	"sort"
	"time"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// A plan is a graph lowered for one batch size: the ops as a list of steps
// (some fusing several graph nodes), every value's buffer in kernel memory
// assigned once (buffers of values that are dead are reused), and the
// scratch for packing. The kernel steps allocate nothing when it runs (the
// fallback ops may, as core/cpu does).
type plan struct {
	g       *graph.Graph
	k       *Kernels
	vals    [][]float32 // buffer of each value; nil for values fused away
	steps   []step
	scratch *scratch
	inputs  map[string][]float32
}

type step struct {
	kind  string        // the op, with "+"-joined fused ops
	pos   int           // index of the last graph node it covers
	reads []graph.Value // values read
	out   graph.Value
	run   func() error
	node  int   // the head graph node
	conv  *conv // the lowered Conv2D, for tests
}

// fuseCaps is what this backend's kernels fold into their epilogues
// (graph.Fuse): the conv's time-embedding channel add and its residual
// (conv.run), the transposed conv's channel add (convT.run), and the
// group norm's scale_shift and SiLU (Kernels.GroupNorm).
var fuseCaps = graph.Caps{
	graph.OpConv2D:          graph.EpiAddChannel | graph.EpiResidual | graph.EpiResidualWithE,
	graph.OpConvTranspose2D: graph.EpiAddChannel,
	graph.OpGroupNorm:       graph.EpiScaleShift | graph.EpiSiLU,
}

func newPlan(k *Kernels, wt *weights, g *graph.Graph) (*plan, error) {
	p := &plan{g: g, k: k, vals: make([][]float32, len(g.Shapes)), inputs: map[string][]float32{}}

	var need scratchSize
	for _, fu := range graph.Fuse(g, fuseCaps) {
		st, sz, err := p.lower(wt, fu)
		if err != nil {
			return nil, err
		}
		need.grow(sz)
		p.steps = append(p.steps, st)
	}
	// A fused step runs where its last node was: all its operands exist by then.
	sort.SliceStable(p.steps, func(a, b int) bool { return p.steps[a].pos < p.steps[b].pos })

	p.assignBuffers()
	p.scratch = need.alloc(k)
	return p, nil
}

// lower builds the step for the fused step fu.
func (p *plan) lower(wt *weights, fu graph.Fused) (step, scratchSize, error) {
	g, k := p.g, p.k
	i := fu.Head
	n := &g.Nodes[i]
	st := step{kind: fu.Pattern(g), pos: fu.Last, node: i, reads: append([]graph.Value(nil), n.In...), out: fu.Out}
	if fu.E >= 0 {
		st.reads = append(st.reads, fu.E)
	}
	if fu.Res >= 0 {
		st.reads = append(st.reads, fu.Res)
	}
	in := func(j int) []float32 { return p.vals[n.In[j]] }
	opt := func(v graph.Value) func() []float32 {
		return func() []float32 {
			if v < 0 {
				return nil
			}
			return p.vals[v]
		}
	}
	e, res := opt(fu.E), opt(fu.Res)
	out := func() []float32 { return p.vals[fu.Out] }
	shape := func(j int) []int { return g.Shapes[n.In[j]] }
	var need scratchSize

	switch n.Op {
	case graph.OpConv2D:
		c := newConv(k, wt, shape(0), n.Weight, n.Bias, n.Ints[0], [4]int(n.Ints[1:5]), g.Shapes[n.Out])
		need = c.need()
		st.conv = c
		st.run = func() error { c.run(k, p.scratch, out(), in(0), e(), res()); return nil }
	case graph.OpConvTranspose2D:
		c := newConvT(k, wt, shape(0), n.Weight, n.Bias, n.Ints[0], n.Ints[1], g.Shapes[n.Out])
		need = c.need()
		st.run = func() error { c.run(k, p.scratch, out(), in(0), e()); return nil }
	case graph.OpGroupNorm:
		s := shape(0)
		per := tensor.Numel(s[2:])
		gamma, beta := wt.Raw(n.Weight), wt.Raw(n.Bias)
		groups, eps, silu := n.Ints[0], n.F, fu.SiLU
		st.run = func() error {
			k.GroupNorm(out(), in(0), s[0], s[1], per, groups, eps, gamma, beta, silu, e())
			return nil
		}
	case graph.OpLinear:
		s := shape(0)
		rows := tensor.Numel(s) / s[len(s)-1]
		l := newLinear(wt, rows, n.Weight, n.Bias)
		need = l.need()
		st.run = func() error { l.run(k, p.scratch, out(), in(0)); return nil }
	case graph.OpAttention:
		s := shape(0)
		a := &attention{b: s[0], n: s[1], c: s[2], heads: n.Ints[0], d: s[2] / n.Ints[0], scale: float32(n.F)}
		need = a.need()
		st.run = func() error { a.run(k, p.scratch, out(), in(0), in(1), in(2)); return nil }
	case graph.OpRMSNormChannel:
		s := shape(0)
		gain := wt.Raw(n.Weight)
		per := tensor.Numel(s[2:])
		sc, eps := float32(n.F), float32(n.G)
		st.run = func() error { k.RMSNorm(out(), in(0), gain, s[0], s[1], per, sc, eps); return nil }
	case graph.OpLinearAttention, graph.OpAttentionMemKV:
		a := newMemAttention(k, wt, n.Op == graph.OpLinearAttention, shape(0), n.Ints[0], graph.MemTokens(g, n), n.Weight, float32(n.F))
		need = a.need()
		st.run = func() error { a.run(k, p.scratch, out(), in(0)); return nil }
	case graph.OpToTokens: // [B,C,H,W] -> [B,HW,C]
		s := shape(0)
		st.run = func() error { k.Transpose(out(), in(0), s[0], s[1], s[2]*s[3]); return nil }
	case graph.OpFromTokens: // [B,HW,C] -> [B,C,H,W]
		s := shape(0)
		st.run = func() error { k.Transpose(out(), in(0), s[0], s[1], s[2]); return nil }
	case graph.OpUpsampleNearest2x:
		s := shape(0)
		st.run = func() error { k.Upsample2x(out(), in(0), s[0]*s[1], s[2], s[3]); return nil }
	case graph.OpConcat:
		sa, sb := shape(0), shape(1)
		na, nb := tensor.Numel(sa[1:]), tensor.Numel(sb[1:])
		st.run = func() error {
			o := out()
			k.CopyRows(o, na+nb, in(0), na, sa[0], na)
			k.CopyRows(o[na:], na+nb, in(1), nb, sa[0], nb)
			return nil
		}
	case graph.OpReshape:
		sz := tensor.Numel(shape(0))
		st.run = func() error { k.CopyRows(out(), sz, in(0), sz, 1, sz); return nil }
	case graph.OpSliceChannels: // channels [start, start+cnt) of [B,C,...]
		s := shape(0)
		per := tensor.Numel(s[2:])
		start, cnt := n.Ints[0], n.Ints[1]
		st.run = func() error {
			k.CopyRows(out(), cnt*per, in(0)[start*per:], s[1]*per, s[0], cnt*per)
			return nil
		}
	case graph.OpSiLU:
		st.run = func() error { k.SiLU(out(), in(0)); return nil }
	case graph.OpAdd:
		st.run = func() error { k.Add(out(), in(0), in(1)); return nil }
	case graph.OpAffine:
		sc, of := float32(n.F), float32(n.G)
		st.run = func() error { k.Affine(out(), in(0), sc, of); return nil }
	case graph.OpAddChannel:
		s := shape(0)
		st.run = func() error { k.AddChannel(out(), in(0), in(1), s[0]*s[1], s[2]*s[3]); return nil }
	case graph.OpScaleShift:
		s := shape(0)
		st.run = func() error { k.ScaleShift(out(), in(0), in(1), s[0], s[1], s[2]*s[3]); return nil }
	default:
		// Everything else (layout ops, embeddings, ...) is cheap: the reference
		// implementation, over the same buffers.
		if len(fu.Nodes) > 0 {
			return st, need, fmt.Errorf("simd: internal error: fused %s", st.kind)
		}
		st.run = func() error { return cpu.Exec(g, n, p.vals, p.vals[n.Out]) }
	}
	return st, need, nil
}

// assignBuffers gives every value a buffer in kernel memory, reusing the
// buffer of a value after its last reader when a later value has the same
// size (a UNet has few distinct sizes, so this keeps memory near the live set).
func (p *plan) assignBuffers() {
	g := p.g
	for name, v := range g.Inputs {
		p.vals[v] = p.k.Alloc(tensor.Numel(g.Shapes[v]))
		p.inputs[name] = p.vals[v]
	}
	last := make([]int, len(g.Shapes))
	for i := range last {
		last[i] = -1
	}
	for j, st := range p.steps {
		for _, v := range st.reads {
			last[v] = j
		}
	}
	isInput := map[graph.Value]bool{}
	for _, v := range g.Inputs {
		isInput[v] = true
	}
	free := map[int][][]float32{}
	for j, st := range p.steps {
		size := tensor.Numel(g.Shapes[st.out])
		if l := free[size]; len(l) > 0 {
			p.vals[st.out] = l[len(l)-1]
			free[size] = l[:len(l)-1]
		} else {
			p.vals[st.out] = p.k.Alloc(size)
		}
		for _, v := range st.reads {
			if last[v] == j && v != g.Output && !isInput[v] {
				size := tensor.Numel(g.Shapes[v])
				free[size] = append(free[size], p.vals[v])
				last[v] = -2 // released once even if read twice by this step
			}
		}
	}
}

// run executes the plan on inputs already copied into p.inputs, calling
// check (when not nil) before each step and stopping at its first error.
func (p *plan) run(prof map[string]time.Duration, check func() error) error {
	p.scratch.prof = prof
	for i := range p.steps {
		if check != nil {
			if err := check(); err != nil {
				return err
			}
		}
		st := &p.steps[i]
		var t0 time.Time
		if prof != nil {
			t0 = time.Now()
		}
		if err := st.run(); err != nil {
			return err
		}
		if prof != nil {
			prof[st.kind] += time.Since(t0)
		}
	}
	return nil
}
