// Package unet builds diffusers' UNet2DModel as a graph from the fields of its
// config.json and a state dict, with every weight's shape checked, so any
// checkpoint the supported subset describes runs exactly as it does in
// diffusers, and anything else is refused with an error naming the field.
package unet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/diffuse-web/diffuse/core/limits"
)

// Config is the subset of diffusers' UNet2DModel config that we support.
// Field defaults are those of UNet2DModel.__init__ in diffusers.
type Config struct {
	InChannels           int      `json:"in_channels"`
	OutChannels          int      `json:"out_channels"`
	CenterInputSample    bool     `json:"center_input_sample"`
	TimeEmbeddingType    string   `json:"time_embedding_type"`
	TimeEmbeddingDim     *int     `json:"time_embedding_dim"`
	FreqShift            float64  `json:"freq_shift"`
	FlipSinToCos         bool     `json:"flip_sin_to_cos"`
	DownBlockTypes       []string `json:"down_block_types"`
	UpBlockTypes         []string `json:"up_block_types"`
	MidBlockType         *string  `json:"mid_block_type"`
	BlockOutChannels     []int    `json:"block_out_channels"`
	LayersPerBlock       int      `json:"layers_per_block"`
	MidBlockScaleFactor  float64  `json:"mid_block_scale_factor"`
	DownsamplePadding    int      `json:"downsample_padding"`
	DownsampleType       string   `json:"downsample_type"`
	UpsampleType         string   `json:"upsample_type"`
	ActFn                string   `json:"act_fn"`
	AttentionHeadDim     *int     `json:"attention_head_dim"`
	NormNumGroups        int      `json:"norm_num_groups"`
	AttnNormNumGroups    *int     `json:"attn_norm_num_groups"`
	NormEps              float64  `json:"norm_eps"`
	ResnetTimeScaleShift string   `json:"resnet_time_scale_shift"`
	AddAttention         bool     `json:"add_attention"`
	ClassEmbedType       *string  `json:"class_embed_type"`
	NumClassEmbeds       *int     `json:"num_class_embeds"`
	SampleSize           any      `json:"sample_size"`
}

// ConfigError names a config field whose value we cannot honour.
type ConfigError struct {
	Field  string
	Value  any
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config field %q = %v: %s", e.Field, e.Value, e.Reason)
}

// ignoredFields do not change the network at inference time.
var ignoredFields = map[string]bool{
	"_class_name": true, "_diffusers_version": true, "_name_or_path": true,
	"_use_default_values": true, "num_train_timesteps": true, "dropout": true,
}

// ParseConfig reads a diffusers UNet2DModel config.json, filling diffusers'
// defaults for absent fields and refusing unknown fields and values.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config is not a JSON object: %w", err)
	}
	if cn, ok := raw["_class_name"]; ok {
		var name string
		if json.Unmarshal(cn, &name) == nil && name != "UNet2DModel" {
			return nil, &ConfigError{"_class_name", name, "only UNet2DModel is supported"}
		}
	}
	mid := "UNetMidBlock2D"
	headDim := 8
	c := &Config{
		InChannels: 3, OutChannels: 3, TimeEmbeddingType: "positional", FlipSinToCos: true,
		DownBlockTypes:   []string{"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"},
		UpBlockTypes:     []string{"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"},
		MidBlockType:     &mid,
		BlockOutChannels: []int{224, 448, 672, 896}, LayersPerBlock: 2, MidBlockScaleFactor: 1,
		DownsamplePadding: 1, DownsampleType: "conv", UpsampleType: "conv", ActFn: "silu",
		AttentionHeadDim: &headDim, NormNumGroups: 32, NormEps: 1e-5,
		ResnetTimeScaleShift: "default", AddAttention: true,
	}
	// Unknown fields are refused: a field we do not understand may change the network.
	known := map[string]bool{}
	for _, f := range jsonFields(c) {
		known[f] = true
	}
	var unknown []string
	for k := range raw {
		if !known[k] && !ignoredFields[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		return nil, &ConfigError{unknown[0], string(raw[unknown[0]]), "unknown field"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if err := c.checkSizes(); err != nil {
		return err
	}
	bad := func(field string, v any, why string) error { return &ConfigError{field, v, why} }
	switch {
	case c.InChannels <= 0:
		return bad("in_channels", c.InChannels, "must be positive")
	case c.OutChannels <= 0:
		return bad("out_channels", c.OutChannels, "must be positive")
	case c.TimeEmbeddingType != "positional" && c.TimeEmbeddingType != "fourier":
		return bad("time_embedding_type", c.TimeEmbeddingType, "supported: positional, fourier")
	case len(c.BlockOutChannels) == 0:
		return bad("block_out_channels", c.BlockOutChannels, "must not be empty")
	case len(c.DownBlockTypes) != len(c.BlockOutChannels):
		return bad("down_block_types", c.DownBlockTypes, "needs one entry per block_out_channels")
	case len(c.UpBlockTypes) != len(c.BlockOutChannels):
		return bad("up_block_types", c.UpBlockTypes, "needs one entry per block_out_channels")
	case c.LayersPerBlock <= 0:
		return bad("layers_per_block", c.LayersPerBlock, "must be positive")
	case c.DownsamplePadding < 0 || c.DownsamplePadding > 1:
		return bad("downsample_padding", c.DownsamplePadding, "supported: 0 (asymmetric pad) or 1")
	case c.DownsampleType != "conv" && c.DownsampleType != "resnet":
		return bad("downsample_type", c.DownsampleType, "supported: conv, resnet")
	case c.UpsampleType != "conv" && c.UpsampleType != "resnet":
		return bad("upsample_type", c.UpsampleType, "supported: conv, resnet")
	case c.ActFn != "silu" && c.ActFn != "swish":
		return bad("act_fn", c.ActFn, "supported: silu")
	case c.NormNumGroups <= 0:
		return bad("norm_num_groups", c.NormNumGroups, "must be positive (null is not supported)")
	case c.NormEps <= 0:
		return bad("norm_eps", c.NormEps, "must be positive")
	case c.ResnetTimeScaleShift != "default" && c.ResnetTimeScaleShift != "scale_shift":
		return bad("resnet_time_scale_shift", c.ResnetTimeScaleShift, "supported: default, scale_shift")
	case c.ClassEmbedType != nil:
		return bad("class_embed_type", *c.ClassEmbedType, "only null (an embedding table from num_class_embeds) is supported")
	case c.NumClassEmbeds != nil && *c.NumClassEmbeds <= 0:
		return bad("num_class_embeds", *c.NumClassEmbeds, "must be positive")
	case c.MidBlockType != nil && *c.MidBlockType != "UNetMidBlock2D":
		return bad("mid_block_type", *c.MidBlockType, "supported: UNetMidBlock2D or null")
	case c.AttentionHeadDim != nil && *c.AttentionHeadDim <= 0:
		return bad("attention_head_dim", *c.AttentionHeadDim, "must be positive or null")
	case c.TimeEmbeddingDim != nil && *c.TimeEmbeddingDim <= 0:
		return bad("time_embedding_dim", *c.TimeEmbeddingDim, "must be positive")
	}
	for _, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%c.NormNumGroups != 0 {
			return bad("norm_num_groups", c.NormNumGroups, fmt.Sprintf("must divide every block_out_channels entry %v", c.BlockOutChannels))
		}
	}
	for _, t := range c.DownBlockTypes {
		if t != "DownBlock2D" && t != "AttnDownBlock2D" && t != "ResnetDownsampleBlock2D" {
			return bad("down_block_types", t, "supported: DownBlock2D, AttnDownBlock2D, ResnetDownsampleBlock2D")
		}
	}
	for _, t := range c.UpBlockTypes {
		if t != "UpBlock2D" && t != "AttnUpBlock2D" && t != "ResnetUpsampleBlock2D" {
			return bad("up_block_types", t, "supported: UpBlock2D, AttnUpBlock2D, ResnetUpsampleBlock2D")
		}
	}
	return nil
}

// ResnetDown reports whether down block `kind` downsamples with a
// ResnetBlock2D(down=True) (average pooling inside a resnet) rather than a
// strided conv: ResnetDownsampleBlock2D always, AttnDownBlock2D when
// downsample_type is "resnet" (diffusers' get_down_block).
func (c *Config) ResnetDown(kind string) bool {
	return kind == "ResnetDownsampleBlock2D" || (kind == "AttnDownBlock2D" && c.DownsampleType == "resnet")
}

// ResnetUp is ResnetDown's counterpart for up blocks: a
// ResnetBlock2D(up=True) (nearest 2x upsampling inside a resnet) for
// ResnetUpsampleBlock2D, and for AttnUpBlock2D with upsample_type "resnet".
func (c *Config) ResnetUp(kind string) bool {
	return kind == "ResnetUpsampleBlock2D" || (kind == "AttnUpBlock2D" && c.UpsampleType == "resnet")
}

// checkSizes bounds every count and width before anything is derived from
// them (DownFactor shifts by the level count; widths become tensor shapes).
func (c *Config) checkSizes() error {
	type bound struct {
		field  string
		v, max int64
	}
	bs := []bound{
		{"in_channels", int64(c.InChannels), limits.MaxChannels},
		{"out_channels", int64(c.OutChannels), limits.MaxChannels},
		{"layers_per_block", int64(c.LayersPerBlock), limits.MaxLayers},
		{"norm_num_groups", int64(c.NormNumGroups), limits.MaxChannels},
		{"block_out_channels (levels)", int64(len(c.BlockOutChannels)), limits.MaxLevels},
	}
	for _, p := range []struct {
		field string
		v     *int
		max   int64
	}{{"time_embedding_dim", c.TimeEmbeddingDim, limits.MaxChannels}, {"attention_head_dim", c.AttentionHeadDim, limits.MaxChannels},
		{"attn_norm_num_groups", c.AttnNormNumGroups, limits.MaxChannels}, {"num_class_embeds", c.NumClassEmbeds, limits.MaxClasses}} {
		if p.v != nil {
			bs = append(bs, bound{p.field, int64(*p.v), p.max})
		}
	}
	for _, ch := range c.BlockOutChannels {
		bs = append(bs, bound{"block_out_channels", int64(ch), limits.MaxChannels})
	}
	for _, b := range bs {
		if err := limits.Int(b.field, b.v, 1, b.max); err != nil {
			return err
		}
	}
	if err := limits.Finite("freq_shift", c.FreqShift); err != nil {
		return err
	}
	if err := limits.Finite("mid_block_scale_factor", c.MidBlockScaleFactor); err != nil {
		return err
	}
	if c.SampleSize != nil {
		h, w, ok := SampleSize(c.SampleSize)
		if !ok {
			return &ConfigError{"sample_size", c.SampleSize, "must be an integer or an [height, width] pair of integers"}
		}
		if err := limits.Int("sample_size", int64(max(h, w)), 1, limits.MaxSide); err != nil {
			return err
		}
		if err := limits.Int("sample_size", int64(min(h, w)), 1, limits.MaxSide); err != nil {
			return err
		}
	}
	return nil
}

// SampleSize reads diffusers' sample_size: an integer or an [h, w] pair
// (ok false for anything else, including non-integers and null).
func SampleSize(v any) (h, w int, ok bool) {
	whole := func(x any) (int, bool) {
		f, isNum := x.(float64)
		if !isNum || f != math.Trunc(f) || math.Abs(f) > 1<<31 {
			return 0, false
		}
		return int(f), true
	}
	switch s := v.(type) {
	case float64:
		n, ok := whole(s)
		return n, n, ok
	case []any:
		if len(s) == 2 {
			h, ok1 := whole(s[0])
			w, ok2 := whole(s[1])
			return h, w, ok1 && ok2
		}
	}
	return 0, 0, false
}

// Conditional reports whether the model takes class labels.
func (c *Config) Conditional() bool { return c.NumClassEmbeds != nil }

// DownFactor is how much the UNet shrinks the image; inputs must be a multiple of it.
func (c *Config) DownFactor() int { return 1 << (len(c.BlockOutChannels) - 1) }

func jsonFields(v any) []string {
	b, _ := json.Marshal(v)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
