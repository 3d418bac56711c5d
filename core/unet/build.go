package unet

import (
	"fmt"
	"strings"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Build makes the graph of UNet2DModel.forward for a batch of the given
// [C,H,W] size, following diffusers' unet_2d.py and unet_2d_blocks.py.
// Every weight in params must be used, and every weight the network needs
// must be present with the right shape (like load_state_dict(strict=True)).
func Build(c *Config, params map[string]*tensor.Tensor, batch, height, width int) (*graph.Graph, error) {
	if height%c.DownFactor() != 0 || width%c.DownFactor() != 0 {
		return nil, fmt.Errorf("image size %dx%d is not a multiple of %d, which %d resolution levels need",
			height, width, c.DownFactor(), len(c.BlockOutChannels))
	}
	params = RenameLegacy(params)
	g := graph.New(params)
	b := &unetBuilder{Builder: graph.NewBuilder(g), c: c}
	x := g.Input("x", batch, c.InChannels, height, width)
	t := g.Input("t", batch)
	var class graph.Value
	if c.Conditional() {
		class = g.Input("class", batch)
	}

	if c.CenterInputSample {
		x = b.Affine(x, 2, -1)
	}

	// Time embedding: sinusoidal or Gaussian Fourier features, then an MLP.
	var tproj graph.Value
	if c.TimeEmbeddingType == "fourier" {
		w := "time_proj.weight"
		if _, ok := params[w]; !ok {
			w = "time_proj.W"
		}
		tproj = b.FourierEmbed(w, t, true, false)
	} else {
		tproj = b.TimestepEmbed(t, c.BlockOutChannels[0], c.FlipSinToCos, c.FreqShift, 1)
	}
	emb := b.Linear("time_embedding.linear_1", tproj)
	emb = b.Unary(graph.OpSiLU, emb)
	emb = b.Linear("time_embedding.linear_2", emb)
	if c.Conditional() {
		emb = b.Add(emb, b.Embedding("class_embedding", class))
	}
	b.temb = b.Unary(graph.OpSiLU, emb) // every resnet applies SiLU to temb first

	h := b.Conv2D("conv_in", x, 1, [4]int{1, 1, 1, 1})
	skips := []graph.Value{h}
	last := len(c.BlockOutChannels) - 1
	for i, kind := range c.DownBlockTypes {
		p := fmt.Sprintf("down_blocks.%d", i)
		for j := 0; j < c.LayersPerBlock; j++ {
			h = b.resnet(fmt.Sprintf("%s.resnets.%d", p, j), h, 1, 0)
			if kind == "AttnDownBlock2D" {
				h = b.attention(fmt.Sprintf("%s.attentions.%d", p, j), h, c.NormNumGroups, 1)
			}
			skips = append(skips, h)
		}
		if i != last && c.ResnetDown(kind) {
			h = b.resnet(p+".downsamplers.0", h, 1, resampleDown)
			skips = append(skips, h)
		} else if i != last {
			pad := [4]int{1, 1, 1, 1}
			if c.DownsamplePadding == 0 {
				pad = [4]int{0, 0, 1, 1} // F.pad(x, (0, 1, 0, 1)) in Downsample2D
			}
			h = b.Conv2D(p+".downsamplers.0.conv", h, 2, pad)
			skips = append(skips, h)
		}
	}

	if c.MidBlockType != nil {
		s := c.MidBlockScaleFactor
		h = b.resnet("mid_block.resnets.0", h, s, 0)
		if c.AddAttention {
			// UNetMidBlock2D gives its attention a GroupNorm only when attn groups are
			// set or the resnets use the "default" time shift.
			groups := 0
			if c.AttnNormNumGroups != nil {
				groups = *c.AttnNormNumGroups
			} else if c.ResnetTimeScaleShift == "default" {
				groups = c.NormNumGroups
			}
			h = b.attention("mid_block.attentions.0", h, groups, s)
		}
		h = b.resnet("mid_block.resnets.1", h, s, 0)
	}

	for i, kind := range c.UpBlockTypes {
		p := fmt.Sprintf("up_blocks.%d", i)
		for j := 0; j <= c.LayersPerBlock; j++ {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			h = b.resnet(fmt.Sprintf("%s.resnets.%d", p, j), b.Concat(h, skip), 1, 0)
			if kind == "AttnUpBlock2D" {
				h = b.attention(fmt.Sprintf("%s.attentions.%d", p, j), h, c.NormNumGroups, 1)
			}
		}
		if i != last && c.ResnetUp(kind) {
			h = b.resnet(p+".upsamplers.0", h, 1, resampleUp)
		} else if i != last {
			h = b.Conv2D(p+".upsamplers.0.conv", b.UpsampleNearest2x(h), 1, [4]int{1, 1, 1, 1})
		}
	}

	h = b.GroupNorm("conv_norm_out", h, c.NormNumGroups, c.NormEps)
	h = b.Unary(graph.OpSiLU, h)
	h = b.Conv2D("conv_out", h, 1, [4]int{1, 1, 1, 1})
	if c.TimeEmbeddingType == "fourier" {
		h = b.DivBatch(h, t) // UNet2DModel divides the output by sigma for Fourier (NCSN++-style) models
	}
	if err := b.Err(); err != nil {
		return nil, err
	}
	if s := g.Shape(h); s[1] != c.OutChannels {
		return nil, &graph.ShapeError{Node: "conv_out", Detail: fmt.Sprintf("gives %d channels, out_channels is %d", s[1], c.OutChannels)}
	}
	g.Output = h
	if err := graph.CheckAllUsed(g); err != nil {
		return nil, err
	}
	return g, nil
}

type unetBuilder struct {
	*graph.Builder
	c    *Config
	temb graph.Value // SiLU(time embedding), shared by every resnet
}

// The resampling a ResnetBlock2D may do (its up/down flags).
const (
	resampleDown = 1 // down=True: 2x2 average pooling
	resampleUp   = 2 // up=True: nearest 2x upsampling
)

// resnet is diffusers' ResnetBlock2D (pre-norm, two 3x3 convs, time
// conditioning added or applied as scale/shift, 1x1 shortcut when the channel
// count changes), with its output divided by outScale. With resample set
// it is the block's up=True or down=True form (ResnetDownsampleBlock2D,
// ResnetUpsampleBlock2D, the "resnet" down/upsample types): after norm1
// and the activation, both the hidden state and the shortcut input are
// average-pooled 2x2 (Downsample2D with use_conv=False) or upsampled 2x
// nearest (Upsample2D with use_conv=False).
func (b *unetBuilder) resnet(p string, x graph.Value, outScale float64, resample int) graph.Value {
	c := b.c
	h := b.GroupNorm(p+".norm1", x, c.NormNumGroups, c.NormEps)
	h = b.Unary(graph.OpSiLU, h)
	switch resample {
	case resampleDown:
		h, x = b.avgPool2x(p, h), b.avgPool2x(p, x)
	case resampleUp:
		h, x = b.UpsampleNearest2x(h), b.UpsampleNearest2x(x)
	}
	h = b.Conv2D(p+".conv1", h, 1, [4]int{1, 1, 1, 1})
	e := b.Linear(p+".time_emb_proj", b.temb)
	if c.ResnetTimeScaleShift == "scale_shift" {
		h = b.GroupNorm(p+".norm2", h, c.NormNumGroups, c.NormEps)
		h = b.ScaleShift(h, e)
	} else {
		h = b.AddChannel(h, e)
		h = b.GroupNorm(p+".norm2", h, c.NormNumGroups, c.NormEps)
	}
	h = b.Unary(graph.OpSiLU, h)
	h = b.Conv2D(p+".conv2", h, 1, [4]int{1, 1, 1, 1})
	short := x
	if b.Err() == nil && b.G.Shape(x)[1] != b.G.Shape(h)[1] {
		short = b.Conv2D(p+".conv_shortcut", x, 1, [4]int{})
	}
	out := b.Add(short, h)
	if outScale != 1 {
		out = b.Affine(out, 1/outScale, 0)
	}
	return out
}

// avgPool2x is 2x2 average pooling with stride 2 (torch's AvgPool2d(2, 2),
// what Downsample2D does without a conv), written as a stride-2 2x2
// convolution with the fixed weight <p>.avgpool.weight of FixedParams:
// every backend runs it with the conv kernel it has, no new op.
func (b *unetBuilder) avgPool2x(p string, x graph.Value) graph.Value {
	return b.Conv2D(p+FixedSuffix[:len(FixedSuffix)-len(".weight")], x, 2, [4]int{})
}

// FixedSuffix ends the names of the parameters FixedParams makes.
const FixedSuffix = ".avgpool.weight"

// FixedParams are the parameters the network of c needs beyond the
// checkpoint's: for every ResnetBlock2D(down=True) (ResnetDown), the 2x2
// average-pooling weight 0.25·δ(in, out) of avgPool2x, named
// <block>.downsamplers.0.avgpool.weight. The model loader adds them to
// the checkpoint's parameters (and does not save them). At the consistency
// ImageNet-64 widths they are 2.1M values, against the model's 296M.
func FixedParams(c *Config) map[string]*tensor.Tensor {
	out := map[string]*tensor.Tensor{}
	last := len(c.BlockOutChannels) - 1
	for i, kind := range c.DownBlockTypes {
		if i == last || !c.ResnetDown(kind) {
			continue
		}
		ch := c.BlockOutChannels[i]
		w := tensor.New(ch, ch, 2, 2)
		for k := 0; k < ch; k++ {
			for j := 0; j < 4; j++ {
				w.Data[(k*ch+k)*4+j] = 0.25
			}
		}
		out[fmt.Sprintf("down_blocks.%d.downsamplers.0", i)+FixedSuffix] = w
	}
	return out
}

// attention is diffusers' Attention as used by the UNet blocks: optional
// GroupNorm, q/k/v projections over pixels as tokens, multi-head scaled
// dot-product attention, output projection, residual, then / rescale.
func (b *unetBuilder) attention(p string, x graph.Value, groups int, rescale float64) graph.Value {
	if b.Err() != nil {
		return 0
	}
	s := b.G.Shape(x)
	ch := s[1]
	heads := 1
	if b.c.AttentionHeadDim != nil {
		if ch%*b.c.AttentionHeadDim != 0 {
			b.Fail(&ConfigError{"attention_head_dim", *b.c.AttentionHeadDim, fmt.Sprintf("does not divide %d channels at %s", ch, p)})
			return 0
		}
		heads = ch / *b.c.AttentionHeadDim
	}
	h := x
	if groups > 0 {
		h = b.GroupNorm(p+".group_norm", h, groups, b.c.NormEps)
	}
	tok := b.ToTokens(h)
	q := b.Linear(p+".to_q", tok)
	k := b.Linear(p+".to_k", tok)
	v := b.Linear(p+".to_v", tok)
	a := b.Attention(p, q, k, v, heads)
	a = b.Linear(p+".to_out.0", a)
	out := b.Add(b.FromTokens(a, s[2], s[3]), x)
	if rescale != 1 {
		out = b.Affine(out, 1/rescale, 0)
	}
	return out
}

// legacyAttention maps the 2022 diffusers attention names (AttentionBlock) to
// the current ones.
var legacyAttention = map[string]string{
	".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0.",
}

// RenameLegacy returns params with 2022-style attention names (query, key,
// value, proj_attn) renamed to to_q, to_k, to_v, to_out.0. Other names pass through.
func RenameLegacy(params map[string]*tensor.Tensor) map[string]*tensor.Tensor {
	out := make(map[string]*tensor.Tensor, len(params))
	for name, t := range params {
		if strings.Contains(name, ".attentions.") {
			for old, cur := range legacyAttention {
				name = strings.Replace(name, old, cur, 1)
			}
		}
		out[name] = t
	}
	return out
}
