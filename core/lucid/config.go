// Package lucid builds the U-Net of lucidrains' denoising-diffusion-pytorch
// 2.x (https://github.com/lucidrains/denoising-diffusion-pytorch, module
// denoising_diffusion_pytorch/denoising_diffusion_pytorch.py, class Unet) and
// reads its constructor arguments off a state dict's tensor shapes, since
// the library's Trainer checkpoints do not record them.
//
// The network, as version 2.x defines it:
//
//   - init_conv: 7×7 conv of the input (the zero self-conditioning image
//     first when self_condition, torch.cat((x_self_cond, x), dim=1)); its
//     output r is kept for the end.
//   - time_mlp: sinusoidal embedding of the timestep (SinusoidalPosEmb:
//     frequencies exp(-ln θ · i/(dim/2 - 1)), [sin | cos]) or, with
//     learned_sinusoidal_cond / random_fourier_features, [t | sin 2πtw |
//     cos 2πtw] (RandomOrLearnedSinusoidalPosEmb); then Linear, GELU, Linear
//     to 4·dim.
//   - ResnetBlock: mlp = SiLU, Linear(4·dim, 2·out) gives scale, shift;
//     block1 = conv3×3, RMSNorm, x·(scale+1)+shift, SiLU; block2 = conv3×3,
//     RMSNorm, SiLU; plus res_conv (1×1) of the input when the channel
//     count changes.
//   - each down stage: two ResnetBlocks (both outputs kept as skips, the
//     second after attention), attention with a residual (attn(x) + x),
//     then Downsample (pixel-unshuffle 2×2 then 1×1 conv) or, at the last
//     stage, a 3×3 conv.
//   - middle: ResnetBlock, full attention (+x), ResnetBlock.
//   - each up stage (reversed): ResnetBlock on cat(x, skip) twice, attention
//     (+x), then Upsample (nearest 2× then 3×3 conv) or, at the last stage, a
//     3×3 conv.
//   - final_res_block on cat(x, r), then a 1×1 final_conv.
//
// Attention is LinearAttention (RMSNorm inside, memory key/values, output
// conv then RMSNorm) on stages whose full_attn is false, and Attention (RMSNorm
// inside, memory key/values, softmax attention, output conv) on the others and
// in the middle. By default only the innermost stage has full attention.
package lucid

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Config holds the Unet constructor arguments (names as in the library)
// that shape the network, plus the sample size, which the checkpoint does not
// record (the library keeps it on GaussianDiffusion, not in its state dict).
type Config struct {
	Dim      int   `json:"dim"`
	InitDim  int   `json:"init_dim"`
	OutDim   int   `json:"out_dim"`
	DimMults []int `json:"dim_mults"`
	Channels int   `json:"channels"`

	SelfCondition   bool `json:"self_condition"`
	LearnedVariance bool `json:"learned_variance"`
	// LearnedSinusoidalCond is learned_sinusoidal_cond or
	// random_fourier_features: both keep the frequencies in
	// time_mlp.0.weights, and they differ only in training.
	LearnedSinusoidalCond bool    `json:"learned_sinusoidal_cond"`
	LearnedSinusoidalDim  int     `json:"learned_sinusoidal_dim"`
	SinusoidalPosEmbTheta float64 `json:"sinusoidal_pos_emb_theta"`

	// Per stage, outermost first.
	AttnHeads   []int  `json:"attn_heads"`
	AttnDimHead []int  `json:"attn_dim_head"`
	FullAttn    []bool `json:"full_attn"`

	// ImageSize is [height, width] of a sample (ours).
	ImageSize [2]int `json:"image_size"`
}

// DownFactor is how many times the image shrinks: 2^(stages-1).
func (c *Config) DownFactor() int { return 1 << (len(c.DimMults) - 1) }

// ConfigError is a config value that is wrong, or a hyperparameter the
// weights do not determine. Flag names the convert flag that sets it.
type ConfigError struct {
	Field, Detail, Flag string
}

func (e *ConfigError) Error() string {
	s := fmt.Sprintf("lucidrains Unet: %s: %s", e.Field, e.Detail)
	if e.Flag != "" {
		s += " (set it with " + e.Flag + ")"
	}
	return s
}

// ParseConfig reads and checks a Config.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("lucidrains config: %w", err)
	}
	return c, c.Validate()
}

// Validate checks the fields against each other.
func (c *Config) Validate() error {
	if err := c.checkSizes(); err != nil {
		return err
	}
	n := len(c.DimMults)
	switch {
	case c.Dim <= 0 || c.InitDim <= 0:
		return &ConfigError{"dim", fmt.Sprintf("dim %d and init_dim %d must be positive", c.Dim, c.InitDim), ""}
	case n == 0:
		return &ConfigError{"dim_mults", "no stages", ""}
	case len(c.AttnHeads) != n || len(c.AttnDimHead) != n || len(c.FullAttn) != n:
		return &ConfigError{"attn_heads", fmt.Sprintf("attn_heads, attn_dim_head and full_attn need one entry per stage (%d)", n), ""}
	case c.Channels <= 0 || c.OutDim <= 0:
		return &ConfigError{"channels", fmt.Sprintf("channels %d and out_dim %d must be positive", c.Channels, c.OutDim), "--channels"}
	case c.LearnedVariance && c.OutDim != 2*c.Channels:
		return &ConfigError{"out_dim", fmt.Sprintf("learned_variance needs out_dim = 2·channels, got %d for %d channels", c.OutDim, c.Channels), ""}
	case !c.LearnedVariance && c.OutDim != c.Channels:
		return &ConfigError{"out_dim", fmt.Sprintf("out_dim %d differs from channels %d: the sampler needs one output per input channel", c.OutDim, c.Channels), ""}
	case !(c.SinusoidalPosEmbTheta > 1):
		return &ConfigError{"sinusoidal_pos_emb_theta", fmt.Sprintf("must exceed 1, got %v", c.SinusoidalPosEmbTheta), "--theta"}
	case !c.LearnedSinusoidalCond && c.Dim < 4:
		return &ConfigError{"dim", fmt.Sprintf("the sinusoidal embedding needs dim >= 4, got %d", c.Dim), ""}
	case c.LearnedSinusoidalCond && (c.LearnedSinusoidalDim <= 0 || c.LearnedSinusoidalDim%2 != 0):
		return &ConfigError{"learned_sinusoidal_dim", fmt.Sprintf("must be positive and even, got %d", c.LearnedSinusoidalDim), ""}
	}
	for i := range c.DimMults {
		if c.DimMults[i] <= 0 || c.AttnHeads[i] <= 0 || c.AttnDimHead[i] <= 0 {
			return &ConfigError{"dim_mults", fmt.Sprintf("stage %d: dim_mults, attn_heads and attn_dim_head must be positive", i), ""}
		}
	}
	h, w := c.ImageSize[0], c.ImageSize[1]
	if h <= 0 || w <= 0 {
		return &ConfigError{"image_size", "unknown: the checkpoint does not record it", "--image-size"}
	}
	if h%c.DownFactor() != 0 || w%c.DownFactor() != 0 {
		return &ConfigError{"image_size", fmt.Sprintf("%dx%d is not a multiple of %d, which %d stages need", h, w, c.DownFactor(), n), "--image-size"}
	}
	return nil
}

// checkSizes bounds every count and width before anything is derived from
// them (DownFactor shifts by the stage count; widths become tensor shapes).
func (c *Config) checkSizes() error {
	if err := limits.Int("dim_mults (stages)", int64(len(c.DimMults)), 0, limits.MaxLevels); err != nil {
		return err
	}
	for _, w := range []struct {
		field string
		vs    []int
	}{{"dim", []int{c.Dim}}, {"init_dim", []int{c.InitDim}}, {"out_dim", []int{c.OutDim}}, {"channels", []int{c.Channels}},
		{"learned_sinusoidal_dim", []int{c.LearnedSinusoidalDim}}, {"dim_mults", c.DimMults},
		{"attn_heads", c.AttnHeads}, {"attn_dim_head", c.AttnDimHead}} {
		for _, v := range w.vs {
			if err := limits.AtMost(w.field, int64(v), limits.MaxChannels); err != nil {
				return err
			}
		}
	}
	for _, m := range c.DimMults {
		if m > 0 && c.Dim > 0 && int64(m)*int64(c.Dim) > limits.MaxChannels {
			return &limits.Error{Field: "dim × dim_mults", Value: int64(m) * int64(c.Dim), Limit: fmt.Sprintf("at most %d channels", limits.MaxChannels)}
		}
	}
	for _, s := range c.ImageSize {
		if err := limits.AtMost("image_size", int64(s), limits.MaxSide); err != nil {
			return err
		}
	}
	return limits.Finite("sinusoidal_pos_emb_theta", c.SinusoidalPosEmbTheta)
}

// Overrides set hyperparameters the weights cannot tell, or settle readings
// they leave ambiguous. Nil and zero fields are inferred.
type Overrides struct {
	ImageSize     [2]int   // required: the checkpoint does not record it
	Channels      *int     // image channels
	SelfCondition *bool    // whether the input carries a self-conditioning image
	Theta         *float64 // sinusoidal_pos_emb_theta (default 10000; not in the weights)
	// Objective is GaussianDiffusion's objective (pred_noise, pred_x0,
	// pred_v); "" reads it off the loss_weight buffer (InferObjective).
	Objective string
}

// Unet parameter names (relative to the Unet) that only 1.x versions have:
// PreNorm/Residual wrappers and GroupNorm inside the blocks.
var v1Markers = []string{"downs.0.2.fn.fn.to_qkv.weight", "downs.0.0.block1.norm.weight", "mid_attn.fn.fn.to_qkv.weight"}

// InferConfig reads the constructor arguments off a Unet state dict (names
// relative to the Unet: init_conv.weight, downs.0.0.block1.proj.weight, ...).
//
//   - init_dim and the input channels from init_conv.weight [init_dim, in, 7, 7];
//   - dim from time_mlp.1.weight [4·dim, fourier_dim]; with time_mlp.0.weights
//     [d/2] present, learned (or random) sinusoidal features of dimension d;
//   - the number of stages from downs.i, and dim_mults from each stage's
//     output width (downs.i.3[.1].weight) divided by dim;
//   - per stage, full or linear attention from which output layout is present
//     (Attention has to_out.weight, LinearAttention to_out.0.weight and an
//     RMSNorm to_out.1.g), and heads and dim_head from mem_kv:
//     [2, heads, dim_head, mem] for linear, [2, heads, mem, dim_head] for full;
//   - channels, self_condition and learned_variance from the input width I of
//     init_conv and the output width O of final_conv: I = O gives
//     channels = I; I = 2·O self-conditioning; O = 2·I learned variance.
//     With I = O even, "channels I" and "I/2 channels with self-conditioning
//     and learned variance" both fit: that is refused unless Overrides settle it.
func InferConfig(p map[string]*tensor.Tensor, o Overrides) (*Config, error) {
	for _, k := range v1Markers {
		if _, ok := p[k]; ok {
			return nil, &ConfigError{"version", "the weights have the 1.x layout (" + k + "); only denoising-diffusion-pytorch 2.x Unets are supported", ""}
		}
	}
	shape := func(name string, rank int) ([]int, error) {
		t, ok := p[name]
		if !ok {
			return nil, &ConfigError{"weights", "missing " + name + ": not a denoising-diffusion-pytorch 2.x Unet" + keysHint(p), ""}
		}
		if len(t.Shape) != rank {
			return nil, &ConfigError{"weights", fmt.Sprintf("%s has shape %v, want %d dimensions", name, t.Shape, rank), ""}
		}
		return t.Shape, nil
	}
	c := &Config{SinusoidalPosEmbTheta: 10000, ImageSize: o.ImageSize}
	if o.Theta != nil {
		c.SinusoidalPosEmbTheta = *o.Theta
	}
	ic, err := shape("init_conv.weight", 4)
	if err != nil {
		return nil, err
	}
	c.InitDim = ic[0]
	in := ic[1]
	tm, err := shape("time_mlp.1.weight", 2)
	if err != nil {
		return nil, err
	}
	if tm[0]%4 != 0 {
		return nil, &ConfigError{"dim", fmt.Sprintf("time_mlp.1.weight %v: time width %d is not 4·dim", tm, tm[0]), ""}
	}
	c.Dim = tm[0] / 4
	if w, ok := p["time_mlp.0.weights"]; ok {
		if len(w.Shape) != 1 || tm[1] != 2*w.Shape[0]+1 {
			return nil, &ConfigError{"learned_sinusoidal_dim", fmt.Sprintf("time_mlp.0.weights %v does not feed time_mlp.1.weight %v", w.Shape, tm), ""}
		}
		c.LearnedSinusoidalCond = true
		c.LearnedSinusoidalDim = 2 * w.Shape[0]
	} else {
		c.LearnedSinusoidalDim = 16 // the constructor's default, unused
		if tm[1] != c.Dim {
			return nil, &ConfigError{"dim", fmt.Sprintf("time_mlp.1.weight %v: sinusoidal width %d is not dim %d", tm, tm[1], c.Dim), ""}
		}
	}

	stages := 0
	for hasPrefix(p, fmt.Sprintf("downs.%d.", stages)) {
		stages++
	}
	if stages == 0 {
		return nil, &ConfigError{"dim_mults", "no downs.0.* weights: not a denoising-diffusion-pytorch Unet" + keysHint(p), ""}
	}
	for i := 0; i < stages; i++ {
		name := fmt.Sprintf("downs.%d.3.1.weight", i)
		if i == stages-1 {
			name = fmt.Sprintf("downs.%d.3.weight", i)
		}
		ds, err := shape(name, 4)
		if err != nil {
			return nil, err
		}
		if ds[0]%c.Dim != 0 {
			return nil, &ConfigError{"dim_mults", fmt.Sprintf("stage %d is %d wide, not a multiple of dim %d", i, ds[0], c.Dim), ""}
		}
		c.DimMults = append(c.DimMults, ds[0]/c.Dim)

		a := fmt.Sprintf("downs.%d.2.", i)
		full, heads, dimHead, err := attnKind(p, a)
		if err != nil {
			return nil, err
		}
		// The up path mirrors the down path: ups.(stages-1-i) has the same kind.
		if uf, uh, ud, err := attnKind(p, fmt.Sprintf("ups.%d.2.", stages-1-i)); err != nil {
			return nil, err
		} else if uf != full || uh != heads || ud != dimHead {
			return nil, &ConfigError{"full_attn", fmt.Sprintf("stage %d: down and up attention differ", i), ""}
		}
		c.FullAttn = append(c.FullAttn, full)
		c.AttnHeads = append(c.AttnHeads, heads)
		c.AttnDimHead = append(c.AttnDimHead, dimHead)
	}
	if full, h, d, err := attnKind(p, "mid_attn."); err != nil {
		return nil, err
	} else if !full || h != c.AttnHeads[stages-1] || d != c.AttnDimHead[stages-1] {
		return nil, &ConfigError{"attn_heads", fmt.Sprintf("mid_attn (full %v, %d heads of %d) does not match the last stage's attention", full, h, d), ""}
	}

	fc, err := shape("final_conv.weight", 4)
	if err != nil {
		return nil, err
	}
	if err := c.inferChannels(in, fc[0], o); err != nil {
		return nil, err
	}
	return c, c.Validate()
}

// inferChannels settles channels, self_condition and learned_variance from
// the input width in and output width out (see InferConfig).
func (c *Config) inferChannels(in, out int, o Overrides) error {
	type reading struct {
		ch         int
		self, var2 bool
	}
	var fits []reading
	for _, r := range []reading{{in, false, false}, {in / 2, true, false}, {in, false, true}, {in / 2, true, true}} {
		cin, cout := r.ch, r.ch
		if r.self {
			cin *= 2
		}
		if r.var2 {
			cout *= 2
		}
		if r.ch <= 0 || cin != in || cout != out {
			continue
		}
		if o.Channels != nil && *o.Channels != r.ch || o.SelfCondition != nil && *o.SelfCondition != r.self {
			continue
		}
		fits = append(fits, r)
	}
	switch len(fits) {
	case 0:
		return &ConfigError{"channels", fmt.Sprintf("init_conv takes %d channels and final_conv gives %d: no reading of channels, self_condition and learned_variance fits (with the overrides given)", in, out), "--channels / --self-condition"}
	case 1:
		c.Channels, c.SelfCondition, c.LearnedVariance = fits[0].ch, fits[0].self, fits[0].var2
		c.OutDim = out
		return nil
	}
	var s []string
	for _, r := range fits {
		s = append(s, fmt.Sprintf("channels=%d self_condition=%v learned_variance=%v", r.ch, r.self, r.var2))
	}
	return &ConfigError{"channels", fmt.Sprintf("ambiguous: init_conv takes %d channels and final_conv gives %d, which fits %s", in, out, strings.Join(s, " or ")), "--channels or --self-condition"}
}

// attnKind tells full from linear attention by its output layer and reads
// heads and dim_head off its memory key/values (see InferConfig).
func attnKind(p map[string]*tensor.Tensor, prefix string) (full bool, heads, dimHead int, err error) {
	_, lin := p[prefix+"to_out.1.g"]
	_, fa := p[prefix+"to_out.weight"]
	if lin == fa {
		return false, 0, 0, &ConfigError{"full_attn", "cannot tell the attention kind at " + strings.TrimSuffix(prefix, ".") + ": expected to_out.weight (full) or to_out.0.weight + to_out.1.g (linear)", ""}
	}
	mem, ok := p[prefix+"mem_kv"]
	if !ok || len(mem.Shape) != 4 || mem.Shape[0] != 2 {
		return false, 0, 0, &ConfigError{"attn_heads", "missing or malformed " + prefix + "mem_kv: not a 2.x Unet", ""}
	}
	heads = mem.Shape[1]
	if fa {
		dimHead = mem.Shape[3]
	} else {
		dimHead = mem.Shape[2]
	}
	if q, ok := p[prefix+"to_qkv.weight"]; ok && len(q.Shape) == 4 && q.Shape[0] != 3*heads*dimHead {
		return false, 0, 0, &ConfigError{"attn_dim_head", fmt.Sprintf("%sto_qkv.weight %v is not 3 x %d heads x %d", prefix, q.Shape, heads, dimHead), ""}
	}
	return fa, heads, dimHead, nil
}

func hasPrefix(p map[string]*tensor.Tensor, prefix string) bool {
	for k := range p {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// keysHint lists a few parameter names, to show what the file holds instead.
func keysHint(p map[string]*tensor.Tensor) string {
	if len(p) == 0 {
		return " (no weights found)"
	}
	names := make([]string, 0, len(p))
	for k := range p {
		names = append(names, k)
	}
	sort.Strings(names)
	return fmt.Sprintf(" (found %d weights: %s...)", len(names), strings.Join(names[:min(3, len(names))], ", "))
}

// timeShift maps sinusoidal_pos_emb_theta onto graph.TimestepEmbed's
// frequency shift: lucidrains' SinusoidalPosEmb uses frequencies
// exp(-ln θ · i/(half-1)), TimestepEmbed exp(-ln 10000 · i/(half-shift)),
// so shift = half - (half-1)·ln 10000/ln θ (exactly 1 for θ = 10000).
func timeShift(dim int, theta float64) float64 {
	half := float64(dim / 2)
	if theta == 10000 {
		return 1
	}
	return half - (half-1)*math.Log(10000)/math.Log(theta)
}
