package graph

import "strings"

// Epilogue is a set of elementwise ops a backend's kernel for a head op can
// apply to its output before writing it, so they need no pass of their own
// over memory. Graph.Fuse folds the nodes that follow a head into it in
// this order: one per-channel operand (AddChannel or ScaleShift), a SiLU,
// a residual Add.
type Epilogue uint8

const (
	// EpiAddChannel: out + e[b,c] (OpAddChannel reading the head's output as x).
	EpiAddChannel Epilogue = 1 << iota
	// EpiScaleShift: out·(1+scale)+shift (OpScaleShift reading it as x).
	EpiScaleShift
	// EpiSiLU: silu(out) (OpSiLU).
	EpiSiLU
	// EpiResidual: out + r (OpAdd of the head's output and another value,
	// either operand), where no AddChannel or ScaleShift was folded.
	EpiResidual
	// EpiResidualWithE: the residual may follow a folded AddChannel or
	// ScaleShift too (the kernel binds both operands).
	EpiResidualWithE
)

// Caps is what a backend's kernels can fold, per head kind; a kind absent
// folds nothing. A backend states it once and consumes Fuse's result; nil
// (no fusion) makes every node its own step.
type Caps map[Kind]Epilogue

// Fused is one step: a head node and the nodes its epilogue absorbs.
type Fused struct {
	Head  int   // the head node
	Nodes []int // absorbed nodes, in the order they apply
	Out   Value // the value the step writes: the last absorbed node's output, or the head's
	E     Value // the AddChannel or ScaleShift operand, or -1
	Res   Value // the residual operand, or -1
	SiLU  bool
	Last  int // the last node the step covers (where it runs: all operands exist by then)
}

// Pattern names the step: the head's kind and the absorbed kinds, "+"-joined
// ("conv2d+add_channel+add").
func (f *Fused) Pattern(g *Graph) string {
	s := []string{string(g.Nodes[f.Head].Op)}
	for _, j := range f.Nodes {
		s = append(s, string(g.Nodes[j].Op))
	}
	return strings.Join(s, "+")
}

// Fusion is the fusion pass over one graph, node by node: which nodes read
// each value, and which nodes are already folded into a step. A backend
// that also merges nodes its own way (webgpu's batched linears and
// attention blocks) marks them in Absorbed, so an epilogue never takes a
// node twice.
type Fusion struct {
	G        *Graph
	Caps     Caps
	Readers  [][]int // Readers[v]: the nodes reading value v, one entry per use
	Absorbed []bool  // nodes folded into another node's step
}

// NewFusion starts the pass over g with the backend's caps.
func NewFusion(g *Graph, caps Caps) *Fusion {
	f := &Fusion{G: g, Caps: caps, Readers: make([][]int, len(g.Shapes)), Absorbed: make([]bool, len(g.Nodes))}
	for i, n := range g.Nodes {
		for _, v := range n.In {
			f.Readers[v] = append(f.Readers[v], i)
		}
	}
	return f
}

// Single returns the only reader of v, or -1 when v is the graph's output,
// is read more than once, or its reader is already folded into a step (an
// Add of two conv outputs is folded into one of them, not both).
func (f *Fusion) Single(v Value) int {
	if v == f.G.Output || len(f.Readers[v]) != 1 || f.Absorbed[f.Readers[v][0]] {
		return -1
	}
	return f.Readers[v][0]
}

// Epilogue folds into head node i what its caps allow of the nodes that
// follow it, marks them absorbed and returns the step.
func (f *Fusion) Epilogue(i int) Fused {
	g := f.G
	caps := f.Caps[g.Nodes[i].Op]
	fu := Fused{Head: i, Out: g.Nodes[i].Out, E: -1, Res: -1, Last: i}
	next := func(op Kind) (int, *Node) {
		j := f.Single(fu.Out)
		if j < 0 || g.Nodes[j].Op != op {
			return -1, nil
		}
		return j, &g.Nodes[j]
	}
	absorb := func(j int) {
		f.Absorbed[j] = true
		fu.Nodes = append(fu.Nodes, j)
		fu.Out, fu.Last = g.Nodes[j].Out, j
	}
	if caps&EpiAddChannel != 0 {
		if j, n := next(OpAddChannel); j >= 0 && n.In[0] == fu.Out {
			fu.E = n.In[1]
			absorb(j)
		}
	}
	if caps&EpiScaleShift != 0 && fu.E < 0 {
		if j, n := next(OpScaleShift); j >= 0 && n.In[0] == fu.Out {
			fu.E = n.In[1]
			absorb(j)
		}
	}
	if caps&EpiSiLU != 0 {
		if j, _ := next(OpSiLU); j >= 0 {
			fu.SiLU = true
			absorb(j)
		}
	}
	if caps&EpiResidual != 0 && (fu.E < 0 || caps&EpiResidualWithE != 0) {
		if j, n := next(OpAdd); j >= 0 && n.In[0] != n.In[1] { // Add(h, h) is no residual
			fu.Res = n.In[0]
			if fu.Res == fu.Out {
				fu.Res = n.In[1]
			}
			absorb(j)
		}
	}
	return fu
}

// Fuse is the whole pass: every node but the inputs, in graph order, as
// the head of a step with the epilogue caps allow, skipping the nodes
// folded into an earlier step. The steps are in head order; a backend runs
// each at its Last node.
func Fuse(g *Graph, caps Caps) []Fused {
	f := NewFusion(g, caps)
	var steps []Fused
	for i := range g.Nodes {
		if f.Absorbed[i] || g.Nodes[i].Op == OpInput {
			continue
		}
		steps = append(steps, f.Epilogue(i))
	}
	return steps
}
