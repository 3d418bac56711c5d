// Package graph is the network description every backend runs: a list of ops
// over tensor values whose shapes are all known when the graph is built, so a
// backend can plan buffers, pipelines and kernels once before anything runs.
//
// A graph is built for one batch size. Values are numbered; node i reads
// earlier values and writes exactly one new value. Weights are referenced by
// name and held, as float32, in Graph.Params.
//
// The op contract every backend keeps: Kinds (kinds.go) lists every op kind
// with its inputs and parameters; core/cpu runs each as the reference;
// Fuse (fuse.go) is the one epilogue fusion pass, over what a backend's
// kernels can fold (Caps); and graphtest is the table of small graphs, one
// or more per kind and per fusion pattern, each backend's TestOpTable runs
// against the reference.
package graph

import (
	"fmt"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Value identifies a tensor inside a graph.
type Value int

// Kind names an op. Each kind's inputs, attributes and output shape are
// documented on its constant; Graph's builder methods enforce them.
type Kind string

const (
	// OpInput is a graph input (the noisy sample, the time, the class labels).
	OpInput Kind = "input"
	// OpConv2D: x [B,I,H,W] * weight [O,I/groups... (groups=1),KH,KW] (+ bias [O]) with
	// stride and zero padding (top, left, bottom, right) -> [B,O,H',W'].
	OpConv2D Kind = "conv2d"
	// OpConvTranspose2D: x [B,I,H,W], weight [I,O,KH,KW] (+ bias [O]), stride,
	// symmetric padding and output_padding as in torch.nn.ConvTranspose2d.
	OpConvTranspose2D Kind = "conv_transpose2d"
	// OpGroupNorm: x [B,C,...] normalised over (C/groups)×spatial per group,
	// then affine weight/bias [C]. Eps in F.
	OpGroupNorm Kind = "group_norm"
	// OpLinear: x [..., I] · weight[O,I]^T (+ bias [O]) -> [..., O].
	OpLinear Kind = "linear"
	// OpSiLU, OpGELU: elementwise activations (GELU is the exact erf form).
	OpSiLU Kind = "silu"
	OpGELU Kind = "gelu"
	// OpAdd: elementwise sum of two same-shape values.
	OpAdd Kind = "add"
	// OpAddChannel: x [B,C,H,W] + e [B,C] broadcast over H,W.
	OpAddChannel Kind = "add_channel"
	// OpScaleShift: x [B,C,H,W], e [B,2C] -> x*(1+scale)+shift where
	// scale,shift = e[:, :C], e[:, C:] (diffusers' "scale_shift" time conditioning).
	OpScaleShift Kind = "scale_shift"
	// OpAffine: x*F + G elementwise (constant scale and offset).
	OpAffine Kind = "affine"
	// OpConcat: concat along axis 1 of [B,C1,...] and [B,C2,...] (same trailing dims).
	OpConcat Kind = "concat"
	// OpReshape: the same elements in row-major order under a new shape.
	OpReshape Kind = "reshape"
	// OpUpsampleNearest2x: [B,C,H,W] -> [B,C,2H,2W].
	OpUpsampleNearest2x Kind = "upsample_nearest2x"
	// OpToTokens: [B,C,H,W] -> [B,H*W,C]; OpFromTokens is its inverse (H,W in Ints).
	OpToTokens   Kind = "to_tokens"
	OpFromTokens Kind = "from_tokens"
	// OpAttention: scaled dot-product attention of q,k,v [B,N,heads*D] with
	// Ints[0] heads and scale F: softmax(q k^T * F) v per head -> [B,N,heads*D].
	OpAttention Kind = "attention"
	// OpTimestepEmbed: t [B] -> [B,dim] sinusoidal embedding (Ints: dim,
	// flipSinToCos 0/1; F: freq shift; G: scale).
	OpTimestepEmbed Kind = "timestep_embed"
	// OpFourierEmbed: t [B], weight W [dim/2] -> [B,dim]: sin/cos of 2π·x·W with
	// x = log(t) when Ints[0]==1, else t; Ints[1]==1 puts cos first.
	OpFourierEmbed Kind = "fourier_embed"
	// OpDivBatch: x [B,...] / s [B], one divisor per sample.
	OpDivBatch Kind = "div_batch"
	// OpVEMarginalStd: t [B] -> sqrt((F^(2t) - 1) / (2 ln F)), the marginal
	// standard deviation of the score-SDE tutorial's VE SDE dx = F^t dw.
	OpVEMarginalStd Kind = "ve_marginal_std"
	// OpEmbedding: class labels [B] (stored as float) -> rows of weight [N,dim].
	OpEmbedding Kind = "embedding"
)

// Node is one op application.
type Node struct {
	Op     Kind
	Name   string  // where it came from in the checkpoint, for errors and debugging
	In     []Value // input values
	Out    Value
	Weight string // parameter names ("" when unused)
	Bias   string
	Ints   []int   // integer attributes, meaning per Kind
	F, G   float64 // float attributes, meaning per Kind
}

// Graph is a whole network for one batch size.
type Graph struct {
	Shapes []([]int) // Shapes[v] is the shape of value v
	Nodes  []Node
	Inputs map[string]Value // "x", "t", and "class" when conditional
	Output Value
	Params map[string]*tensor.Tensor

	// err is the first value refused by add (a dimension that is not
	// positive, too many elements, too many nodes); Builder.Err reports it.
	err error
}

// New returns an empty graph over the given parameters.
func New(params map[string]*tensor.Tensor) *Graph {
	return &Graph{Inputs: map[string]Value{}, Params: params}
}

// Shape returns the shape of v.
func (g *Graph) Shape(v Value) []int { return g.Shapes[v] }

// add appends a node, refusing (and recording in g.err) an output with a
// dimension that is not positive or more than limits.MaxElements elements,
// and graphs of more than limits.MaxGraphNodes nodes, so a hostile config or
// weight shape stops here, before any backend allocates the value.
func (g *Graph) add(n Node, shape []int) Value {
	if g.err != nil {
		return 0
	}
	if len(g.Nodes) >= limits.MaxGraphNodes {
		g.err = &limits.Error{Field: "network", Value: fmt.Sprintf("%d ops", len(g.Nodes)+1), Limit: fmt.Sprintf("at most %d ops", limits.MaxGraphNodes)}
		return 0
	}
	what := n.Name
	if what == "" {
		what = string(n.Op)
	}
	if _, err := limits.Numel(what+" output shape", shape); err != nil {
		g.err = err
		return 0
	}
	n.Out = Value(len(g.Shapes))
	g.Shapes = append(g.Shapes, shape)
	g.Nodes = append(g.Nodes, n)
	return n.Out
}

// Err is the first value add refused, if any.
func (g *Graph) Err() error { return g.err }

// Input declares a named graph input.
func (g *Graph) Input(name string, shape ...int) Value {
	v := g.add(Node{Op: OpInput, Name: name}, append([]int(nil), shape...))
	g.Inputs[name] = v
	return v
}

// ShapeError reports a weight or value whose shape does not fit the network
// the config describes.
type ShapeError struct {
	Node, Detail string
}

func (e *ShapeError) Error() string { return fmt.Sprintf("%s: %s", e.Node, e.Detail) }

// MissingWeightError reports a parameter the network needs but the checkpoint lacks.
type MissingWeightError struct{ Name string }

func (e *MissingWeightError) Error() string { return fmt.Sprintf("missing weight %q", e.Name) }

// param fetches a parameter and checks its shape.
func (g *Graph) param(name string, shape ...int) (*tensor.Tensor, error) {
	p, ok := g.Params[name]
	if !ok {
		return nil, &MissingWeightError{name}
	}
	if err := checkDims(name, p.Shape); err != nil {
		return nil, err
	}
	if !tensor.SameShape(p.Shape, shape) {
		return nil, &ShapeError{name, fmt.Sprintf("weight has shape %v, network needs %v", p.Shape, shape)}
	}
	return p, nil
}

// checkDims refuses a weight with a dimension that is not positive: a
// zero-element tensor can claim any width in its other dimensions.
func checkDims(name string, shape []int) error {
	for _, d := range shape {
		if d <= 0 {
			return &ShapeError{name, fmt.Sprintf("weight has shape %v: every dimension must be positive", shape)}
		}
	}
	return nil
}

// hasParam reports whether an optional parameter is present.
func (g *Graph) hasParam(name string) bool { _, ok := g.Params[name]; return ok }
