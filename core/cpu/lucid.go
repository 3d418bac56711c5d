package cpu

import (
	"math"

	"github.com/diffuse-web/diffuse/core/graph"
)

// Reference implementations of the ops of lucidrains' denoising-diffusion-pytorch
// U-Net (see core/graph/lucid.go for their exact semantics).
func init() {
	moreOps[graph.OpRMSNormChannel] = func(g *graph.Graph, n *graph.Node, vals [][]float32, out []float32) error {
		RMSNormChannel(out, vals[n.In[0]], g.Shapes[n.In[0]], g.Params[n.Weight].Data, n.F, n.G)
		return nil
	}
	moreOps[graph.OpPixelUnshuffle] = func(g *graph.Graph, n *graph.Node, vals [][]float32, out []float32) error {
		PixelUnshuffle(out, vals[n.In[0]], g.Shapes[n.In[0]], n.Ints[0])
		return nil
	}
	moreOps[graph.OpSliceChannels] = func(g *graph.Graph, n *graph.Node, vals [][]float32, out []float32) error {
		s := g.Shapes[n.In[0]]
		x := vals[n.In[0]]
		per := 1
		for _, d := range s[2:] {
			per *= d
		}
		start, cnt := n.Ints[0], n.Ints[1]
		for b := 0; b < s[0]; b++ {
			copy(out[b*cnt*per:(b+1)*cnt*per], x[(b*s[1]+start)*per:])
		}
		return nil
	}
	moreOps[graph.OpLinearAttention] = func(g *graph.Graph, n *graph.Node, vals [][]float32, out []float32) error {
		s := g.Shapes[n.In[0]]
		LinearAttention(out, vals[n.In[0]], memData(g, n), s[0], s[1]/3, s[2]*s[3], n.Ints[0], graph.MemTokens(g, n), float32(n.F))
		return nil
	}
	moreOps[graph.OpAttentionMemKV] = func(g *graph.Graph, n *graph.Node, vals [][]float32, out []float32) error {
		s := g.Shapes[n.In[0]]
		AttentionMemKV(out, vals[n.In[0]], memData(g, n), s[0], s[1]/3, s[2]*s[3], n.Ints[0], graph.MemTokens(g, n), float32(n.F))
		return nil
	}
}

func memData(g *graph.Graph, n *graph.Node) []float32 {
	if n.Weight == "" {
		return nil
	}
	return g.Params[n.Weight].Data
}

// RMSNormChannel is lucidrains' RMSNorm (denoising_diffusion_pytorch.py,
// class RMSNorm): F.normalize(x, dim=1) · g · scale, where F.normalize
// divides by max(‖x‖₂, eps) over the channel axis. x is [B,C,...]; the sum
// of squares is taken in float64.
func RMSNormChannel(out, x []float32, xs []int, g []float32, scale, eps float64) {
	B, C := xs[0], xs[1]
	per := 1
	for _, d := range xs[2:] {
		per *= d
	}
	parallelFor(B, func(b int) {
		base := b * C * per
		for p := 0; p < per; p++ {
			var sq float64
			for c := 0; c < C; c++ {
				v := float64(x[base+c*per+p])
				sq += v * v
			}
			inv := scale / math.Max(math.Sqrt(sq), eps)
			for c := 0; c < C; c++ {
				i := base + c*per + p
				out[i] = float32(float64(x[i]) * inv * float64(g[c]))
			}
		}
	})
}

// PixelUnshuffle is torch.nn.PixelUnshuffle(r), which is the einops pattern
// 'b c (h p1) (w p2) -> b (c p1 p2) h w' of lucidrains' Downsample:
// out[b, (c·r+i)·r+j, y, x] = in[b, c, y·r+i, x·r+j].
func PixelUnshuffle(out, x []float32, xs []int, r int) {
	B, C, H, W := xs[0], xs[1], xs[2], xs[3]
	OH, OW := H/r, W/r
	for b := 0; b < B; b++ {
		for c := 0; c < C; c++ {
			for i := 0; i < r; i++ {
				for j := 0; j < r; j++ {
					oc := (c*r+i)*r + j
					dst := out[((b*C*r*r)+oc)*OH*OW:]
					src := x[(b*C+c)*H*W:]
					for y := 0; y < OH; y++ {
						for xx := 0; xx < OW; xx++ {
							dst[y*OW+xx] = src[(y*r+i)*W+xx*r+j]
						}
					}
				}
			}
		}
	}
}

// LinearAttention is lucidrains' LinearAttention after its to_qkv
// convolution (denoising_diffusion_pytorch.py, class LinearAttention, after
// Shen et al. 2021, "Efficient Attention: Attention with Linear
// Complexities"): qkv is [B, 3·heads·D, N] in channel layout, mem is
// mem_kv [2, heads, D, M] (nil when M is 0); out is [B, heads·D, N].
// q is softmaxed over its D channels and scaled, k over its M+N tokens
// (memory first, torch.cat((mk, k), dim=-1)); then
// context[d,e] = Σ_j k[d,j]·v[e,j] and out[e,n] = Σ_d context[d,e]·q[d,n].
// Softmax and sums run in float64.
func LinearAttention(out, qkv, mem []float32, B, hidden, N, heads, M int, scale float32) {
	D := hidden / heads
	T := M + N
	parallelFor(B*heads, func(bh int) {
		b, h := bh/heads, bh%heads
		q := qkv[(b*3*hidden+h*D)*N:]
		k := qkv[(b*3*hidden+hidden+h*D)*N:]
		v := qkv[(b*3*hidden+2*hidden+h*D)*N:]
		// k' and v' rows over the M+N tokens, memory first.
		kk := make([]float64, D*T)
		vv := make([]float64, D*T)
		for d := 0; d < D; d++ {
			for m := 0; m < M; m++ {
				kk[d*T+m] = float64(mem[((0*heads+h)*D+d)*M+m])
				vv[d*T+m] = float64(mem[((1*heads+h)*D+d)*M+m])
			}
			for n := 0; n < N; n++ {
				kk[d*T+M+n] = float64(k[d*N+n])
				vv[d*T+M+n] = float64(v[d*N+n])
			}
			softmaxInPlace(kk[d*T : (d+1)*T])
		}
		ctx := make([]float64, D*D) // ctx[d*D+e]
		for d := 0; d < D; d++ {
			for e := 0; e < D; e++ {
				var s float64
				for j := 0; j < T; j++ {
					s += kk[d*T+j] * vv[e*T+j]
				}
				ctx[d*D+e] = s
			}
		}
		col := make([]float64, D)
		o := out[(b*hidden+h*D)*N:]
		for n := 0; n < N; n++ {
			for d := 0; d < D; d++ {
				col[d] = float64(q[d*N+n])
			}
			softmaxInPlace(col)
			for e := 0; e < D; e++ {
				var s float64
				for d := 0; d < D; d++ {
					s += ctx[d*D+e] * col[d]
				}
				o[e*N+n] = float32(s * float64(scale))
			}
		}
	})
}

// AttentionMemKV is lucidrains' Attention after its to_qkv convolution
// (denoising_diffusion_pytorch.py, class Attention, with attend.py's Attend:
// softmax(q·kᵀ·scale)·v, scale = D^-0.5 by default): qkv is
// [B, 3·heads·D, N] in channel layout, mem is mem_kv [2, heads, M, D] (nil
// when M is 0) prepended to the keys and values (torch.cat((mk, k), dim=-2));
// out is [B, heads·D, N]. Scores and softmax run in float64.
func AttentionMemKV(out, qkv, mem []float32, B, hidden, N, heads, M int, scale float32) {
	D := hidden / heads
	T := M + N
	parallelFor(B*heads, func(bh int) {
		b, h := bh/heads, bh%heads
		q := qkv[(b*3*hidden+h*D)*N:]
		k := qkv[(b*3*hidden+hidden+h*D)*N:]
		v := qkv[(b*3*hidden+2*hidden+h*D)*N:]
		// Keys and values token-major: K[j*D+d].
		K := make([]float64, T*D)
		V := make([]float64, T*D)
		for j := 0; j < M; j++ {
			for d := 0; d < D; d++ {
				K[j*D+d] = float64(mem[((0*heads+h)*M+j)*D+d])
				V[j*D+d] = float64(mem[((1*heads+h)*M+j)*D+d])
			}
		}
		for n := 0; n < N; n++ {
			for d := 0; d < D; d++ {
				K[(M+n)*D+d] = float64(k[d*N+n])
				V[(M+n)*D+d] = float64(v[d*N+n])
			}
		}
		p := make([]float64, T)
		qi := make([]float64, D)
		o := out[(b*hidden+h*D)*N:]
		for i := 0; i < N; i++ {
			for d := 0; d < D; d++ {
				qi[d] = float64(q[d*N+i])
			}
			for j := 0; j < T; j++ {
				var s float64
				for d := 0; d < D; d++ {
					s += qi[d] * K[j*D+d]
				}
				p[j] = s * float64(scale)
			}
			softmaxInPlace(p)
			for d := 0; d < D; d++ {
				var s float64
				for j := 0; j < T; j++ {
					s += p[j] * V[j*D+d]
				}
				o[d*N+i] = float32(s)
			}
		}
	})
}

// softmaxInPlace replaces s by exp(s - max) / Σ exp(s - max).
func softmaxInPlace(s []float64) {
	m := math.Inf(-1)
	for _, v := range s {
		m = math.Max(m, v)
	}
	var sum float64
	for i, v := range s {
		s[i] = math.Exp(v - m)
		sum += s[i]
	}
	for i := range s {
		s[i] /= sum
	}
}
