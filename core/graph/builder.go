package graph

import (
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/tensor"
)

// Builder appends ops to a graph, checking each weight's shape against the
// value it is applied to. The first error sticks and later calls are no-ops,
// so network builders read as straight-line code with one check at the end.
type Builder struct {
	G   *Graph
	err error
}

// NewBuilder starts a graph over the given parameters.
func NewBuilder(g *Graph) *Builder { return &Builder{G: g} }

// Err returns the first error met while building.
func (b *Builder) Err() error {
	if b.err != nil {
		return b.err
	}
	return b.G.err
}

// failed reports whether building has already failed (later ops are no-ops).
func (b *Builder) failed() bool { return b.err != nil || b.G.err != nil }

// Fail records an error found by the caller (first one wins).
func (b *Builder) Fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *Builder) failf(node, format string, args ...any) Value {
	b.Fail(&ShapeError{node, fmt.Sprintf(format, args...)})
	return 0
}

func (b *Builder) shape(v Value) []int { return b.G.Shapes[v] }

// weight returns a required parameter, or records a MissingWeightError and returns nil.
func (b *Builder) weight(name string) *tensor.Tensor {
	w, ok := b.G.Params[name]
	if !ok {
		b.Fail(&MissingWeightError{name})
		return nil
	}
	if err := checkDims(name, w.Shape); err != nil {
		b.Fail(err)
		return nil
	}
	return w
}

// optBias returns name if that parameter exists with shape [n], "" if absent.
func (b *Builder) optBias(name string, n int) string {
	if !b.G.hasParam(name) {
		return ""
	}
	if _, err := b.G.param(name, n); err != nil {
		b.Fail(err)
	}
	return name
}

// Conv2D applies prefix.weight [O,I,KH,KW] (and prefix.bias if present) with
// the given stride and zero padding (top, left, bottom, right).
func (b *Builder) Conv2D(prefix string, x Value, stride int, pad [4]int) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	w := b.weight(prefix + ".weight")
	if w == nil {
		return 0
	}
	if len(s) != 4 || len(w.Shape) != 4 || w.Shape[1] != s[1] {
		return b.failf(prefix, "conv weight %v does not fit input %v", w.Shape, s)
	}
	o, kh, kw := w.Shape[0], w.Shape[2], w.Shape[3]
	h := (s[2]+pad[0]+pad[2]-kh)/stride + 1
	wd := (s[3]+pad[1]+pad[3]-kw)/stride + 1
	if h <= 0 || wd <= 0 {
		return b.failf(prefix, "conv output would be empty for input %v", s)
	}
	return b.G.add(Node{Op: OpConv2D, Name: prefix, In: []Value{x}, Weight: prefix + ".weight",
		Bias: b.optBias(prefix+".bias", o), Ints: []int{stride, pad[0], pad[1], pad[2], pad[3]}},
		[]int{s[0], o, h, wd})
}

// ConvTranspose2D applies prefix.weight [I,O,KH,KW] (torch's layout for
// ConvTranspose2d) with stride, padding and output padding.
func (b *Builder) ConvTranspose2D(prefix string, x Value, stride, padding, outPad int) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	w := b.weight(prefix + ".weight")
	if w == nil {
		return 0
	}
	if len(s) != 4 || len(w.Shape) != 4 || w.Shape[0] != s[1] {
		return b.failf(prefix, "transposed conv weight %v does not fit input %v", w.Shape, s)
	}
	o, kh, kw := w.Shape[1], w.Shape[2], w.Shape[3]
	// Output size from torch.nn.ConvTranspose2d's documentation (dilation 1).
	h := (s[2]-1)*stride - 2*padding + kh + outPad
	wd := (s[3]-1)*stride - 2*padding + kw + outPad
	return b.G.add(Node{Op: OpConvTranspose2D, Name: prefix, In: []Value{x}, Weight: prefix + ".weight",
		Bias: b.optBias(prefix+".bias", o), Ints: []int{stride, padding, outPad}},
		[]int{s[0], o, h, wd})
}

// GroupNorm normalises x over groups of channels with affine prefix.weight/bias.
func (b *Builder) GroupNorm(prefix string, x Value, groups int, eps float64) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	if len(s) < 2 || groups <= 0 || s[1]%groups != 0 {
		return b.failf(prefix, "cannot split %v channels into %d groups", s, groups)
	}
	if _, err := b.G.param(prefix+".weight", s[1]); err != nil {
		b.Fail(err)
		return 0
	}
	return b.G.add(Node{Op: OpGroupNorm, Name: prefix, In: []Value{x}, Weight: prefix + ".weight",
		Bias: b.optBias(prefix+".bias", s[1]), Ints: []int{groups}, F: eps}, append([]int(nil), s...))
}

// Linear applies prefix.weight [O,I] (and prefix.bias) over the last axis.
func (b *Builder) Linear(prefix string, x Value) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	w := b.weight(prefix + ".weight")
	if w == nil {
		return 0
	}
	if len(w.Shape) != 2 || w.Shape[1] != s[len(s)-1] {
		return b.failf(prefix, "linear weight %v does not fit input %v", w.Shape, s)
	}
	out := append([]int(nil), s...)
	out[len(out)-1] = w.Shape[0]
	return b.G.add(Node{Op: OpLinear, Name: prefix, In: []Value{x}, Weight: prefix + ".weight",
		Bias: b.optBias(prefix+".bias", w.Shape[0])}, out)
}

// Unary applies an elementwise activation (OpSiLU or OpGELU).
func (b *Builder) Unary(op Kind, x Value) Value {
	if b.failed() {
		return 0
	}
	return b.G.add(Node{Op: op, In: []Value{x}}, append([]int(nil), b.shape(x)...))
}

// Affine computes x*scale + offset.
func (b *Builder) Affine(x Value, scale, offset float64) Value {
	if b.failed() {
		return 0
	}
	return b.G.add(Node{Op: OpAffine, In: []Value{x}, F: scale, G: offset}, append([]int(nil), b.shape(x)...))
}

// Add sums two values of the same shape.
func (b *Builder) Add(x, y Value) Value {
	if b.failed() {
		return 0
	}
	if !tensor.SameShape(b.shape(x), b.shape(y)) {
		return b.failf("add", "shapes %v and %v differ", b.shape(x), b.shape(y))
	}
	return b.G.add(Node{Op: OpAdd, In: []Value{x, y}}, append([]int(nil), b.shape(x)...))
}

// AddChannel adds e [B,C] to every pixel of x [B,C,H,W].
func (b *Builder) AddChannel(x, e Value) Value {
	if b.failed() {
		return 0
	}
	xs, es := b.shape(x), b.shape(e)
	if len(xs) != 4 || len(es) != 2 || es[0] != xs[0] || es[1] != xs[1] {
		return b.failf("add_channel", "cannot broadcast %v over %v", es, xs)
	}
	return b.G.add(Node{Op: OpAddChannel, In: []Value{x, e}}, append([]int(nil), xs...))
}

// ScaleShift computes x*(1+scale)+shift with scale, shift = split(e [B,2C]).
func (b *Builder) ScaleShift(x, e Value) Value {
	if b.failed() {
		return 0
	}
	xs, es := b.shape(x), b.shape(e)
	if len(xs) != 4 || len(es) != 2 || es[0] != xs[0] || es[1] != 2*xs[1] {
		return b.failf("scale_shift", "cannot split %v into scale and shift for %v", es, xs)
	}
	return b.G.add(Node{Op: OpScaleShift, In: []Value{x, e}}, append([]int(nil), xs...))
}

// Concat joins [B,C1,...] and [B,C2,...] (equal trailing dims) along axis 1.
func (b *Builder) Concat(x, y Value) Value {
	if b.failed() {
		return 0
	}
	xs, ys := b.shape(x), b.shape(y)
	if len(xs) < 2 || len(xs) != len(ys) || xs[0] != ys[0] || !tensor.SameShape(xs[2:], ys[2:]) {
		return b.failf("concat", "cannot concatenate %v and %v", xs, ys)
	}
	out := append([]int(nil), xs...)
	out[1] += ys[1]
	return b.G.add(Node{Op: OpConcat, In: []Value{x, y}}, out)
}

// Reshape gives x a new shape with the same number of elements.
func (b *Builder) Reshape(x Value, shape ...int) Value {
	if b.failed() {
		return 0
	}
	if tensor.Numel(shape) != tensor.Numel(b.shape(x)) {
		return b.failf("reshape", "cannot reshape %v to %v", b.shape(x), shape)
	}
	return b.G.add(Node{Op: OpReshape, In: []Value{x}}, append([]int(nil), shape...))
}

// UpsampleNearest2x doubles height and width by repeating pixels.
func (b *Builder) UpsampleNearest2x(x Value) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	return b.G.add(Node{Op: OpUpsampleNearest2x, In: []Value{x}}, []int{s[0], s[1], 2 * s[2], 2 * s[3]})
}

// ToTokens turns [B,C,H,W] into [B,H*W,C].
func (b *Builder) ToTokens(x Value) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	return b.G.add(Node{Op: OpToTokens, In: []Value{x}}, []int{s[0], s[2] * s[3], s[1]})
}

// FromTokens turns [B,H*W,C] back into [B,C,H,W].
func (b *Builder) FromTokens(x Value, h, w int) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	if s[1] != h*w {
		return b.failf("from_tokens", "%v tokens are not %dx%d", s, h, w)
	}
	return b.G.add(Node{Op: OpFromTokens, In: []Value{x}, Ints: []int{h, w}}, []int{s[0], s[2], h, w})
}

// Attention computes softmax(q k^T / sqrt(D)) v with the given number of heads.
func (b *Builder) Attention(name string, q, k, v Value, heads int) Value {
	if b.failed() {
		return 0
	}
	qs := b.shape(q)
	if heads <= 0 || qs[2]%heads != 0 {
		return b.failf(name, "%d channels do not split into %d heads", qs[2], heads)
	}
	if !tensor.SameShape(qs, b.shape(k)) || !tensor.SameShape(qs, b.shape(v)) {
		return b.failf(name, "q, k, v shapes differ")
	}
	d := qs[2] / heads
	return b.G.add(Node{Op: OpAttention, Name: name, In: []Value{q, k, v}, Ints: []int{heads},
		F: 1 / math.Sqrt(float64(d))}, append([]int(nil), qs...))
}

// TimestepEmbed is the sinusoidal embedding of DDPM (Ho et al. 2020), with
// diffusers' flip_sin_to_cos and downscale_freq_shift conventions.
func (b *Builder) TimestepEmbed(t Value, dim int, flipSinToCos bool, freqShift, scale float64) Value {
	if b.failed() {
		return 0
	}
	flip := 0
	if flipSinToCos {
		flip = 1
	}
	return b.G.add(Node{Op: OpTimestepEmbed, In: []Value{t}, Ints: []int{dim, flip}, F: freqShift, G: scale},
		[]int{b.shape(t)[0], dim})
}

// FourierEmbed is the Gaussian Fourier feature embedding of Song et al. 2021
// (score-SDE): weight [D] random frequencies, output [B,2D].
func (b *Builder) FourierEmbed(weight string, t Value, logInput, cosFirst bool) Value {
	if b.failed() {
		return 0
	}
	w := b.weight(weight)
	if w == nil {
		return 0
	}
	if len(w.Shape) != 1 {
		return b.failf(weight, "fourier weight must be 1-D, has shape %v", w.Shape)
	}
	return b.G.add(Node{Op: OpFourierEmbed, Name: weight, In: []Value{t}, Weight: weight,
		Ints: []int{b01(logInput), b01(cosFirst)}}, []int{b.shape(t)[0], 2 * w.Shape[0]})
}

// Embedding looks up class labels in prefix.weight [N,dim].
func (b *Builder) Embedding(prefix string, labels Value) Value {
	if b.failed() {
		return 0
	}
	w := b.weight(prefix + ".weight")
	if w == nil {
		return 0
	}
	if len(w.Shape) != 2 {
		return b.failf(prefix, "embedding weight must be 2-D, has shape %v", w.Shape)
	}
	return b.G.add(Node{Op: OpEmbedding, Name: prefix, In: []Value{labels}, Weight: prefix + ".weight"},
		[]int{b.shape(labels)[0], w.Shape[1]})
}

func b01(v bool) int {
	if v {
		return 1
	}
	return 0
}

// DivBatch divides every element of sample i of x by s[i].
func (b *Builder) DivBatch(x, s Value) Value {
	if b.failed() {
		return 0
	}
	xs, ss := b.shape(x), b.shape(s)
	if len(ss) != 1 || ss[0] != xs[0] {
		return b.failf("div_batch", "divisor %v does not match batch of %v", ss, xs)
	}
	return b.G.add(Node{Op: OpDivBatch, In: []Value{x, s}}, append([]int(nil), xs...))
}

// VEMarginalStd maps times t [B] to the marginal std of the VE SDE dx = sigma^t dw
// (Song et al. 2021, the score-SDE tutorial's marginal_prob_std).
func (b *Builder) VEMarginalStd(t Value, sigma float64) Value {
	if b.failed() {
		return 0
	}
	return b.G.add(Node{Op: OpVEMarginalStd, In: []Value{t}, F: sigma}, append([]int(nil), b.shape(t)...))
}
