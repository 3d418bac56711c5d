package graph

import (
	"math"

	"github.com/diffuse-web/diffuse/core/tensor"
)

// Ops of the U-Net of lucidrains' denoising-diffusion-pytorch 2.x
// (denoising_diffusion_pytorch/denoising_diffusion_pytorch.py: RMSNorm,
// Downsample, LinearAttention, Attention). Every tensor is row-major; "the
// channel layout" means [B, C, H, W] with C = heads·D and head h owning
// channels [h·D, (h+1)·D), as einops' 'b (h c) x y' splits them.
const (
	// OpRMSNormChannel: x [B,C,...] -> x / max(‖x[b,:,p]‖₂, G) · g[c] · F,
	// the L2 norm taken over the C channels at each batch item b and position
	// p. Weight g holds C values (shape [1,C,1,1] or [C]); F is the constant
	// factor (sqrt(C) for lucidrains' RMSNorm), G the norm's floor (1e-12, as
	// in torch.nn.functional.normalize).
	OpRMSNormChannel Kind = "rms_norm_channel"
	// OpPixelUnshuffle: x [B,C,H,W] -> [B,C·r²,H/r,W/r] with r = Ints[0]:
	// out[b, (c·r+i)·r+j, y, x] = in[b, c, y·r+i, x·r+j] for 0 <= i,j < r
	// (torch.nn.PixelUnshuffle; einops 'b c (h p1) (w p2) -> b (c p1 p2) h w').
	OpPixelUnshuffle Kind = "pixel_unshuffle"
	// OpSliceChannels: x [B,C,...] -> channels [Ints[0], Ints[0]+Ints[1]),
	// shape [B,Ints[1],...].
	OpSliceChannels Kind = "slice_channels"
	// OpLinearAttention is linear attention (Shen et al. 2021, "Efficient
	// Attention") with learned memory key/values, on In[0] = qkv
	// [B, 3·heads·D, H, W] in the channel layout: q, k, v are its channel
	// thirds (torch's chunk(3, dim=1)). Weight is mem_kv [2, heads, D, M]
	// (M memory tokens; absent, "" means M = 0). Ints[0] = heads, F = scale.
	// For each b and head h, with N = H·W tokens n:
	//
	//	q'[d,n] = softmax over d of q[d,n], times F
	//	k'[d,j] = softmax over j in [0, M+N) of [mem_kv[0,h,d,:] | k[d,:]]
	//	v'[e,j] = [mem_kv[1,h,e,:] | v[e,:]]
	//	out[h·D+e, n] = Σ_d (Σ_j k'[d,j]·v'[e,j]) · q'[d,n]
	//
	// Output [B, heads·D, H, W].
	OpLinearAttention Kind = "linear_attention"
	// OpAttentionMemKV is multi-head scaled dot-product attention whose keys
	// and values are prefixed with M learned memory tokens, on In[0] = qkv
	// [B, 3·heads·D, H, W] in the channel layout as for OpLinearAttention.
	// Weight is mem_kv [2, heads, M, D] ("" means M = 0), Ints[0] = heads,
	// F = scale. For each b, head h and query token i of N = H·W:
	//
	//	K[j,:] = mem_kv[0,h,j,:] for j < M, k[:, j-M] after
	//	V[j,:] = mem_kv[1,h,j,:] for j < M, v[:, j-M] after
	//	p = softmax over j in [0, M+N) of F · q[:,i]·K[j,:]
	//	out[h·D+d, i] = Σ_j p[j] · V[j,d]
	//
	// Output [B, heads·D, H, W].
	OpAttentionMemKV Kind = "attention_mem_kv"
)

// rmsNormEps is torch.nn.functional.normalize's default eps (the floor of the norm).
const rmsNormEps = 1e-12

// RMSNormChannel applies lucidrains' RMSNorm over axis 1 of x:
// F.normalize(x, dim=1) · g · sqrt(C), with g the weight named gain
// ([1,C,1,1] as lucidrains stores it, or [C]).
func (b *Builder) RMSNormChannel(gain string, x Value) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	if len(s) < 2 {
		return b.failf(gain, "RMSNorm needs [B,C,...], got %v", s)
	}
	w := b.weight(gain)
	if w == nil {
		return 0
	}
	c := s[1]
	if !tensor.SameShape(w.Shape, []int{1, c, 1, 1}) && !tensor.SameShape(w.Shape, []int{c}) {
		return b.failf(gain, "RMSNorm gain has shape %v, network needs [1 %d 1 1] or [%d]", w.Shape, c, c)
	}
	return b.G.add(Node{Op: OpRMSNormChannel, Name: gain, In: []Value{x}, Weight: gain,
		F: math.Sqrt(float64(c)), G: rmsNormEps}, append([]int(nil), s...))
}

// PixelUnshuffle folds each r×r block of pixels into channels.
func (b *Builder) PixelUnshuffle(x Value, r int) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	if len(s) != 4 || r <= 0 || s[2]%r != 0 || s[3]%r != 0 {
		return b.failf("pixel_unshuffle", "cannot fold %v into %dx%d blocks", s, r, r)
	}
	return b.G.add(Node{Op: OpPixelUnshuffle, In: []Value{x}, Ints: []int{r}},
		[]int{s[0], s[1] * r * r, s[2] / r, s[3] / r})
}

// SliceChannels keeps channels [start, start+n) of x [B,C,...].
func (b *Builder) SliceChannels(x Value, start, n int) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(x)
	if len(s) < 2 || start < 0 || n <= 0 || start+n > s[1] {
		return b.failf("slice_channels", "cannot take channels [%d, %d) of %v", start, start+n, s)
	}
	out := append([]int(nil), s...)
	out[1] = n
	return b.G.add(Node{Op: OpSliceChannels, In: []Value{x}, Ints: []int{start, n}}, out)
}

// LinearAttention is OpLinearAttention over qkv [B,3·heads·dimHead,H,W] with
// memory key/values memKV [2,heads,dimHead,M] ("" for none) and scale
// dimHead^-0.5, as lucidrains' LinearAttention.
func (b *Builder) LinearAttention(name string, qkv Value, memKV string, heads, dimHead int) Value {
	return b.memAttention(OpLinearAttention, name, qkv, memKV, heads, dimHead)
}

// AttentionMemKV is OpAttentionMemKV over qkv [B,3·heads·dimHead,H,W] with
// memory key/values memKV [2,heads,M,dimHead] ("" for none) and scale
// dimHead^-0.5 (the default scale of lucidrains' Attend).
func (b *Builder) AttentionMemKV(name string, qkv Value, memKV string, heads, dimHead int) Value {
	return b.memAttention(OpAttentionMemKV, name, qkv, memKV, heads, dimHead)
}

func (b *Builder) memAttention(op Kind, name string, qkv Value, memKV string, heads, dimHead int) Value {
	if b.failed() {
		return 0
	}
	s := b.shape(qkv)
	if heads <= 0 || dimHead <= 0 || len(s) != 4 || s[1] != 3*heads*dimHead {
		return b.failf(name, "qkv %v is not 3 x %d heads x %d channels", s, heads, dimHead)
	}
	if memKV != "" {
		w := b.weight(memKV)
		if w == nil {
			return 0
		}
		// LinearAttention keeps memory as [2, heads, D, M], Attention as [2, heads, M, D].
		d := 2
		if op == OpAttentionMemKV {
			d = 3
		}
		if len(w.Shape) != 4 || w.Shape[0] != 2 || w.Shape[1] != heads || w.Shape[d] != dimHead || w.Shape[5-d] <= 0 {
			return b.failf(memKV, "memory key/values have shape %v, network needs %d heads of %d channels", w.Shape, heads, dimHead)
		}
	}
	return b.G.add(Node{Op: op, Name: name, In: []Value{qkv}, Weight: memKV, Ints: []int{heads},
		F: 1 / math.Sqrt(float64(dimHead))}, []int{s[0], heads * dimHead, s[2], s[3]})
}

// MemTokens returns the number of memory tokens M of an OpLinearAttention or
// OpAttentionMemKV node (0 without memory).
func MemTokens(g *Graph, n *Node) int {
	if n.Weight == "" {
		return 0
	}
	w := g.Params[n.Weight].Shape
	if n.Op == OpAttentionMemKV {
		return w[2]
	}
	return w[3]
}
