// Package flops counts the floating-point operations of one evaluation of a
// network graph (core/graph), so benchmarks can turn times into GFLOP/s.
//
// Convention (the usual one for convolutional networks): a multiply-add is
// 2 FLOPs and only the matrix-product-shaped ops count towards Count.GEMM:
// convolutions (2·B·O·H'·W'·I·KH·KW), transposed convolutions (2·B·I·H·W·O·KH·KW),
// linears (2·rows·I·O) and attention's two products (4·B·N·M·heads·D, with M
// keys). Bias adds, normalisations, activations, softmax and the embeddings
// are counted separately in Count.Other at a nominal cost per element (below),
// which is for information only: GFLOP/s figures use GEMM.
package flops

import (
	"sort"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Count is one graph's operation count.
type Count struct {
	// GEMM is 2 × the multiply-adds of the convolutions, linears and
	// attention products: the figure GFLOP/s is computed from.
	GEMM float64 `json:"gemm"`
	// Other is a nominal count for the remaining ops (per output element:
	// 1 for add, affine, bias and scale/shift, 4 for SiLU/GELU, 8 for
	// GroupNorm and RMSNorm, 5 per attention score for softmax and scaling).
	Other float64 `json:"other"`
	// ByOp splits GEMM+Other by op kind.
	ByOp map[string]float64 `json:"byOp"`
	// Params is the number of weights the graph references.
	Params int64 `json:"params"`
	// Nodes is the number of graph nodes (inputs excluded).
	Nodes int `json:"nodes"`
}

// Total is GEMM + Other.
func (c Count) Total() float64 { return c.GEMM + c.Other }

// Kinds returns the op kinds in ByOp, largest first.
func (c Count) Kinds() []string {
	k := make([]string, 0, len(c.ByOp))
	for n := range c.ByOp {
		k = append(k, n)
	}
	sort.Slice(k, func(i, j int) bool {
		if c.ByOp[k[i]] != c.ByOp[k[j]] {
			return c.ByOp[k[i]] > c.ByOp[k[j]]
		}
		return k[i] < k[j]
	})
	return k
}

// Of counts g.
func Of(g *graph.Graph) Count {
	c := Count{ByOp: map[string]float64{}}
	seen := map[string]bool{}
	param := func(name string) []int {
		if name == "" {
			return nil
		}
		p, ok := g.Params[name]
		if !ok {
			return nil
		}
		if !seen[name] {
			seen[name] = true
			c.Params += int64(tensor.Numel(p.Shape))
		}
		return p.Shape
	}
	for _, n := range g.Nodes {
		if n.Op == graph.OpInput {
			continue
		}
		c.Nodes++
		out := float64(tensor.Numel(g.Shapes[n.Out]))
		w := param(n.Weight)
		bias := 0.0
		if param(n.Bias) != nil {
			bias = out
		}
		var gemm, other float64
		switch n.Op {
		case graph.OpConv2D:
			// out = B·O·H'·W'; each needs I·KH·KW multiply-adds.
			gemm = 2 * out * float64(w[1]*w[2]*w[3])
			other = bias
		case graph.OpConvTranspose2D:
			// Every input pixel scatters into O·KH·KW outputs.
			in := float64(tensor.Numel(g.Shapes[n.In[0]]))
			gemm = 2 * in * float64(w[1]*w[2]*w[3])
			other = bias
		case graph.OpLinear:
			gemm = 2 * out * float64(w[1])
			other = bias
		case graph.OpAttention:
			// q [B,N,C], k and v [B,M,C], C = heads·D: q·kᵀ and p·v.
			q, k := g.Shapes[n.In[0]], g.Shapes[n.In[1]]
			B, N, C, M := q[0], q[1], q[2], k[1]
			heads := max(n.Ints[0], 1)
			gemm = 4 * float64(B*N*M*C)
			other = 5 * float64(B*heads*N*M)
		case graph.OpAttentionMemKV, graph.OpLinearAttention:
			// qkv [B, 3·heads·D, H, W]; M memory tokens from the weight.
			s := g.Shapes[n.In[0]]
			B, C3 := s[0], s[1]
			N := tensor.Numel(s[2:])
			C := C3 / 3
			heads := max(n.Ints[0], 1)
			D := C / heads
			mem := 0
			if len(w) == 4 {
				if n.Op == graph.OpAttentionMemKV {
					mem = w[2]
				} else {
					mem = w[3]
				}
			}
			M := N + mem
			if n.Op == graph.OpAttentionMemKV {
				gemm = 4 * float64(B*N*M*C)
				other = 5 * float64(B*heads*N*M)
			} else {
				// context = k'·v'ᵀ (D×D per head over M), out = contextᵀ·q'.
				gemm = 2*float64(B*heads*D*D*M) + 2*float64(B*heads*D*D*N)
				other = 5 * float64(B*C*(N+M))
			}
		case graph.OpGroupNorm, graph.OpRMSNormChannel:
			other = 8 * out
		case graph.OpSiLU, graph.OpGELU:
			other = 4 * out
		case graph.OpAdd, graph.OpAddChannel, graph.OpAffine, graph.OpDivBatch:
			other = out
		case graph.OpScaleShift:
			other = 2 * out
		case graph.OpTimestepEmbed, graph.OpFourierEmbed, graph.OpVEMarginalStd:
			other = 4 * out
		default:
			// Layout ops (reshape, concat, tokens, upsample, slices,
			// pixel unshuffle, embedding lookup) move data only.
		}
		c.GEMM += gemm
		c.Other += other
		if gemm+other > 0 {
			c.ByOp[string(n.Op)] += gemm + other
		}
	}
	return c
}
