package lucid

import (
	"fmt"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Build makes the graph of Unet.forward(x, time) (see the package comment)
// for a batch of [channels, height, width] samples. The t input is the
// integer timestep, as GaussianDiffusion passes it. With self_condition the
// self-conditioning image is zero (Unet.forward's default when none is
// given); with learned_variance the output keeps only the first `channels`
// channels (the model output that LearnedGaussianDiffusion splits off with
// chunk(2, dim=1)). Every weight must be used and fit.
func Build(c *Config, params map[string]*tensor.Tensor, batch, height, width int) (*graph.Graph, error) {
	if f := c.DownFactor(); height%f != 0 || width%f != 0 {
		return nil, fmt.Errorf("image size %dx%d is not a multiple of %d, which %d stages need", height, width, f, len(c.DimMults))
	}
	g := graph.New(params)
	b := &builder{Builder: graph.NewBuilder(g), c: c}
	x := g.Input("x", batch, c.Channels, height, width)
	t := g.Input("t", batch)

	in := x
	if c.SelfCondition {
		in = b.Concat(b.Affine(x, 0, 0), x) // torch.cat((x_self_cond, x), dim=1), x_self_cond = zeros
	}
	h := b.Conv2D("init_conv", in, 1, [4]int{3, 3, 3, 3})
	r := h

	// time_mlp: embedding, Linear, GELU, Linear.
	var emb graph.Value
	if c.LearnedSinusoidalCond {
		// RandomOrLearnedSinusoidalPosEmb: cat(t, sin(2π t w), cos(2π t w)).
		emb = b.Concat(b.Reshape(t, batch, 1), b.FourierEmbed("time_mlp.0.weights", t, false, false))
	} else {
		// SinusoidalPosEmb(dim, theta): [sin(t f_i) | cos(t f_i)], f_i = θ^(-i/(dim/2-1)).
		emb = b.TimestepEmbed(t, c.Dim, false, timeShift(c.Dim, c.SinusoidalPosEmbTheta), 1)
	}
	emb = b.Linear("time_mlp.1", emb)
	emb = b.Unary(graph.OpGELU, emb)
	emb = b.Linear("time_mlp.3", emb)
	b.temb = b.Unary(graph.OpSiLU, emb) // every ResnetBlock's mlp starts with SiLU

	n := len(c.DimMults)
	var skips []graph.Value
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("downs.%d", i)
		h = b.resnet(p+".0", h)
		skips = append(skips, h)
		h = b.resnet(p+".1", h)
		h = b.attention(p+".2", h, c.FullAttn[i], c.AttnHeads[i], c.AttnDimHead[i])
		skips = append(skips, h)
		if i < n-1 {
			h = b.Conv2D(p+".3.1", b.PixelUnshuffle(h, 2), 1, [4]int{}) // Downsample
		} else {
			h = b.Conv2D(p+".3", h, 1, [4]int{1, 1, 1, 1})
		}
	}

	h = b.resnet("mid_block1", h)
	h = b.attention("mid_attn", h, true, c.AttnHeads[n-1], c.AttnDimHead[n-1])
	h = b.resnet("mid_block2", h)

	for i := 0; i < n; i++ {
		s := n - 1 - i // the stage this up block mirrors
		p := fmt.Sprintf("ups.%d", i)
		for j := 0; j < 2; j++ {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			h = b.resnet(fmt.Sprintf("%s.%d", p, j), b.Concat(h, skip))
		}
		h = b.attention(p+".2", h, c.FullAttn[s], c.AttnHeads[s], c.AttnDimHead[s])
		if i < n-1 {
			h = b.Conv2D(p+".3.1", b.UpsampleNearest2x(h), 1, [4]int{1, 1, 1, 1}) // Upsample
		} else {
			h = b.Conv2D(p+".3", h, 1, [4]int{1, 1, 1, 1})
		}
	}

	h = b.resnet("final_res_block", b.Concat(h, r))
	h = b.Conv2D("final_conv", h, 1, [4]int{})
	if err := b.Err(); err != nil {
		return nil, err
	}
	if got := g.Shape(h)[1]; got != c.OutDim {
		return nil, &graph.ShapeError{Node: "final_conv", Detail: fmt.Sprintf("gives %d channels, out_dim is %d", got, c.OutDim)}
	}
	if c.LearnedVariance {
		h = b.SliceChannels(h, 0, c.Channels)
		if err := b.Err(); err != nil {
			return nil, err
		}
	}
	g.Output = h
	if err := graph.CheckAllUsed(g); err != nil {
		return nil, err
	}
	return g, nil
}

type builder struct {
	*graph.Builder
	c    *Config
	temb graph.Value // SiLU(time embedding)
}

// resnet is ResnetBlock(dim, dim_out, time_emb_dim): block2(block1(x,
// scale_shift)) + res_conv(x), res_conv a 1×1 conv only when the width changes.
func (b *builder) resnet(p string, x graph.Value) graph.Value {
	e := b.Linear(p+".mlp.1", b.temb) // [B, 2·dim_out]: scale, shift = chunk(2)
	h := b.Conv2D(p+".block1.proj", x, 1, [4]int{1, 1, 1, 1})
	h = b.RMSNormChannel(p+".block1.norm.g", h)
	h = b.ScaleShift(h, e) // x·(scale+1)+shift
	h = b.Unary(graph.OpSiLU, h)
	h = b.Conv2D(p+".block2.proj", h, 1, [4]int{1, 1, 1, 1})
	h = b.RMSNormChannel(p+".block2.norm.g", h)
	h = b.Unary(graph.OpSiLU, h)
	if b.Err() != nil {
		return 0
	}
	res := x
	if b.G.Shape(x)[1] != b.G.Shape(h)[1] {
		res = b.Conv2D(p+".res_conv", x, 1, [4]int{})
	}
	return b.Add(h, res)
}

// attention is Attention (full) or LinearAttention, plus the residual the
// Unet adds around it (x = attn(x) + x).
func (b *builder) attention(p string, x graph.Value, full bool, heads, dimHead int) graph.Value {
	h := b.RMSNormChannel(p+".norm.g", x)
	qkv := b.Conv2D(p+".to_qkv", h, 1, [4]int{})
	if full {
		h = b.AttentionMemKV(p, qkv, p+".mem_kv", heads, dimHead)
		h = b.Conv2D(p+".to_out", h, 1, [4]int{})
	} else {
		h = b.LinearAttention(p, qkv, p+".mem_kv", heads, dimHead)
		h = b.Conv2D(p+".to_out.0", h, 1, [4]int{})
		h = b.RMSNormChannel(p+".to_out.1.g", h)
	}
	return b.Add(h, x)
}
