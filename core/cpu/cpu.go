// Package cpu is the reference backend: plain, readable Go for every graph op.
// It is the truth every other backend is tested against, so clarity wins over
// speed here; independent output planes run on goroutines natively.
package cpu

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Run evaluates g on the named inputs ("x", "t", "class"; class labels as
// float values) and returns the output value.
func Run(g *graph.Graph, inputs map[string][]float32) (*tensor.Tensor, error) {
	vals := make([][]float32, len(g.Shapes))
	for name, v := range g.Inputs {
		data, ok := inputs[name]
		if !ok {
			return nil, fmt.Errorf("cpu: missing input %q", name)
		}
		if len(data) != tensor.Numel(g.Shapes[v]) {
			return nil, fmt.Errorf("cpu: input %q has %d values, graph needs shape %v", name, len(data), g.Shapes[v])
		}
		vals[v] = data
	}
	// Free each value after its last use, so peak memory stays near the live set.
	lastUse := make([]int, len(g.Shapes))
	for i, n := range g.Nodes {
		for _, in := range n.In {
			lastUse[in] = i
		}
	}
	lastUse[g.Output] = len(g.Nodes)
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Op == graph.OpInput {
			continue
		}
		out := make([]float32, tensor.Numel(g.Shapes[n.Out]))
		if err := Exec(g, n, vals, out); err != nil {
			return nil, err
		}
		vals[n.Out] = out
		for _, in := range n.In {
			if lastUse[in] == i {
				if _, isInput := inputName(g, in); !isInput {
					vals[in] = nil
				}
			}
		}
	}
	return tensor.From(vals[g.Output], g.Shapes[g.Output]...), nil
}

func inputName(g *graph.Graph, v graph.Value) (string, bool) {
	for name, iv := range g.Inputs {
		if iv == v {
			return name, true
		}
	}
	return "", false
}

// Exec runs one node, reading its inputs from vals and writing out.
func Exec(g *graph.Graph, n *graph.Node, vals [][]float32, out []float32) error {
	in := func(i int) []float32 { return vals[n.In[i]] }
	shape := func(i int) []int { return g.Shapes[n.In[i]] }
	w := func() []float32 { return g.Params[n.Weight].Data }
	bias := func() []float32 {
		if n.Bias == "" {
			return nil
		}
		return g.Params[n.Bias].Data
	}
	switch n.Op {
	case graph.OpConv2D:
		ws := g.Params[n.Weight].Shape
		Conv2D(out, in(0), shape(0), w(), ws, bias(), n.Ints[0], [4]int(n.Ints[1:5]), g.Shapes[n.Out])
	case graph.OpConvTranspose2D:
		ConvTranspose2D(out, in(0), shape(0), w(), g.Params[n.Weight].Shape, bias(), n.Ints[0], n.Ints[1], g.Shapes[n.Out])
	case graph.OpGroupNorm:
		GroupNorm(out, in(0), shape(0), n.Ints[0], n.F, w(), bias())
	case graph.OpLinear:
		Linear(out, in(0), w(), bias(), g.Params[n.Weight].Shape[1], g.Params[n.Weight].Shape[0])
	case graph.OpSiLU:
		for i, v := range in(0) {
			out[i] = SiLU(v)
		}
	case graph.OpGELU:
		for i, v := range in(0) {
			out[i] = float32(0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2)))
		}
	case graph.OpAdd:
		a, b := in(0), in(1)
		for i := range out {
			out[i] = a[i] + b[i]
		}
	case graph.OpAffine:
		s, o := float32(n.F), float32(n.G)
		for i, v := range in(0) {
			out[i] = v*s + o
		}
	case graph.OpAddChannel:
		s := shape(0)
		x, e := in(0), in(1)
		plane := s[2] * s[3]
		for bc := 0; bc < s[0]*s[1]; bc++ {
			for p := 0; p < plane; p++ {
				out[bc*plane+p] = x[bc*plane+p] + e[bc]
			}
		}
	case graph.OpScaleShift:
		s := shape(0)
		x, e := in(0), in(1)
		c, plane := s[1], s[2]*s[3]
		for b := 0; b < s[0]; b++ {
			for ch := 0; ch < c; ch++ {
				scale, shift := 1+e[b*2*c+ch], e[b*2*c+c+ch]
				base := (b*c + ch) * plane
				for p := 0; p < plane; p++ {
					out[base+p] = x[base+p]*scale + shift
				}
			}
		}
	case graph.OpDivBatch:
		x, d := in(0), in(1)
		per := len(x) / len(d)
		for i := range x {
			out[i] = x[i] / d[i/per]
		}
	case graph.OpConcat:
		a, b := in(0), in(1)
		sa, sb := shape(0), shape(1)
		na, nb := tensor.Numel(sa[1:]), tensor.Numel(sb[1:])
		for i := 0; i < sa[0]; i++ {
			copy(out[i*(na+nb):], a[i*na:(i+1)*na])
			copy(out[i*(na+nb)+na:], b[i*nb:(i+1)*nb])
		}
	case graph.OpReshape:
		copy(out, in(0))
	case graph.OpUpsampleNearest2x:
		s := shape(0)
		x := in(0)
		h, wd := s[2], s[3]
		for bc := 0; bc < s[0]*s[1]; bc++ {
			for oy := 0; oy < 2*h; oy++ {
				for ox := 0; ox < 2*wd; ox++ {
					out[(bc*2*h+oy)*2*wd+ox] = x[(bc*h+oy/2)*wd+ox/2]
				}
			}
		}
	case graph.OpToTokens:
		s := shape(0)
		x := in(0)
		c, hw := s[1], s[2]*s[3]
		for b := 0; b < s[0]; b++ {
			for ch := 0; ch < c; ch++ {
				for p := 0; p < hw; p++ {
					out[(b*hw+p)*c+ch] = x[(b*c+ch)*hw+p]
				}
			}
		}
	case graph.OpFromTokens:
		s := shape(0)
		x := in(0)
		hw, c := s[1], s[2]
		for b := 0; b < s[0]; b++ {
			for p := 0; p < hw; p++ {
				for ch := 0; ch < c; ch++ {
					out[(b*c+ch)*hw+p] = x[(b*hw+p)*c+ch]
				}
			}
		}
	case graph.OpAttention:
		s := shape(0)
		Attention(out, in(0), in(1), in(2), s[0], s[1], s[2], n.Ints[0], float32(n.F))
	case graph.OpTimestepEmbed:
		TimestepEmbed(out, in(0), n.Ints[0], n.Ints[1] == 1, n.F, n.G)
	case graph.OpFourierEmbed:
		FourierEmbed(out, in(0), w(), n.Ints[0] == 1, n.Ints[1] == 1)
	case graph.OpVEMarginalStd:
		for i, tv := range in(0) {
			out[i] = float32(math.Sqrt((math.Pow(n.F, 2*float64(tv)) - 1) / (2 * math.Log(n.F))))
		}
	case graph.OpEmbedding:
		ws := g.Params[n.Weight].Shape
		rows, dim := ws[0], ws[1]
		for i, lf := range in(0) {
			l := int(lf)
			if float32(l) != lf || l < 0 || l >= rows {
				return fmt.Errorf("%s: class label %v outside 0..%d", n.Name, lf, rows-1)
			}
			copy(out[i*dim:(i+1)*dim], w()[l*dim:(l+1)*dim])
		}
	default:
		if f, ok := moreOps[n.Op]; ok {
			return f(g, n, vals, out)
		}
		return fmt.Errorf("cpu: op %q is not implemented", n.Op)
	}
	return nil
}

// moreOps holds ops implemented in other files of this package (registered
// from their init), so a network family's ops can live beside each other.
var moreOps = map[graph.Kind]func(g *graph.Graph, n *graph.Node, vals [][]float32, out []float32) error{}

// SiLU is x·sigmoid(x).
func SiLU(v float32) float32 { return float32(float64(v) / (1 + math.Exp(-float64(v)))) }

// parallelFor runs f(0..n-1) on all cores natively; under js/wasm
// GOMAXPROCS is 1, so this is a plain loop there.
func parallelFor(n int, f func(i int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers <= 1 || n <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	wg.Wait()
}
