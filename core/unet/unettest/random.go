// Package unettest makes random-weight diffusers UNet2DModel checkpoints
// from a config.json, for tests that must show a public architecture loads
// and runs without shipping its weights: the parameter names and shapes
// are those of diffusers' UNet2DModel state dict (unet_2d.py,
// unet_2d_blocks.py, resnet.py), written independently of core/unet's
// builder so that a naming or shape mismatch there fails the load.
package unettest

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/diffuse-web/diffuse/core/rng"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/unet"
)

// Shapes lists every parameter of the UNet2DModel of config c with its
// shape.
func Shapes(c *unet.Config) map[string][]int {
	ps := map[string][]int{}
	lin := func(p string, out, in int) {
		ps[p+".weight"], ps[p+".bias"] = []int{out, in}, []int{out}
	}
	conv := func(p string, out, in, k int) {
		ps[p+".weight"], ps[p+".bias"] = []int{out, in, k, k}, []int{out}
	}
	norm := func(p string, ch int) {
		ps[p+".weight"], ps[p+".bias"] = []int{ch}, []int{ch}
	}
	ch0 := c.BlockOutChannels[0]
	temb := 4 * ch0
	if c.TimeEmbeddingDim != nil {
		temb = *c.TimeEmbeddingDim
	}
	resnet := func(p string, in, out int) {
		norm(p+".norm1", in)
		conv(p+".conv1", out, in, 3)
		proj := out
		if c.ResnetTimeScaleShift == "scale_shift" {
			proj = 2 * out
		}
		lin(p+".time_emb_proj", proj, temb)
		norm(p+".norm2", out)
		conv(p+".conv2", out, out, 3)
		if in != out {
			conv(p+".conv_shortcut", out, in, 1)
		}
	}
	attn := func(p string, ch int, groupNorm bool) {
		if groupNorm {
			norm(p+".group_norm", ch)
		}
		for _, n := range []string{"to_q", "to_k", "to_v", "to_out.0"} {
			lin(p+"."+n, ch, ch)
		}
	}
	if c.TimeEmbeddingType == "fourier" {
		panic("unettest: fourier time embeddings are not covered")
	}
	lin("time_embedding.linear_1", temb, ch0)
	lin("time_embedding.linear_2", temb, temb)
	if c.NumClassEmbeds != nil {
		ps["class_embedding.weight"] = []int{*c.NumClassEmbeds, temb}
	}
	conv("conv_in", ch0, c.InChannels, 3)
	last := len(c.BlockOutChannels) - 1
	out := ch0
	for i, kind := range c.DownBlockTypes {
		in := out
		out = c.BlockOutChannels[i]
		p := fmt.Sprintf("down_blocks.%d", i)
		for j := 0; j < c.LayersPerBlock; j++ {
			rin := out
			if j == 0 {
				rin = in
			}
			resnet(fmt.Sprintf("%s.resnets.%d", p, j), rin, out)
			if kind == "AttnDownBlock2D" {
				attn(fmt.Sprintf("%s.attentions.%d", p, j), out, true)
			}
		}
		if i != last {
			if c.ResnetDown(kind) {
				resnet(p+".downsamplers.0", out, out)
			} else {
				conv(p+".downsamplers.0.conv", out, out, 3)
			}
		}
	}
	chl := c.BlockOutChannels[last]
	if c.MidBlockType != nil {
		resnet("mid_block.resnets.0", chl, chl)
		if c.AddAttention {
			attn("mid_block.attentions.0", chl, c.AttnNormNumGroups != nil || c.ResnetTimeScaleShift == "default")
		}
		resnet("mid_block.resnets.1", chl, chl)
	}
	rev := make([]int, len(c.BlockOutChannels))
	for i := range rev {
		rev[i] = c.BlockOutChannels[last-i]
	}
	out = rev[0]
	for i, kind := range c.UpBlockTypes {
		prev := out
		out = rev[i]
		in := rev[min(i+1, last)]
		p := fmt.Sprintf("up_blocks.%d", i)
		for j := 0; j <= c.LayersPerBlock; j++ {
			skip := out
			if j == c.LayersPerBlock {
				skip = in
			}
			rin := out
			if j == 0 {
				rin = prev
			}
			resnet(fmt.Sprintf("%s.resnets.%d", p, j), rin+skip, out)
			if kind == "AttnUpBlock2D" {
				attn(fmt.Sprintf("%s.attentions.%d", p, j), out, true)
			}
		}
		if i != last {
			if c.ResnetUp(kind) {
				resnet(p+".upsamplers.0", out, out)
			} else {
				conv(p+".upsamplers.0.conv", out, out, 3)
			}
		}
	}
	norm("conv_norm_out", ch0)
	conv("conv_out", c.OutChannels, ch0, 3)
	return ps
}

// Count is the number of parameter values of config c.
func Count(c *unet.Config) int64 {
	var n int64
	for _, s := range Shapes(c) {
		k := int64(1)
		for _, d := range s {
			k *= int64(d)
		}
		n += k
	}
	return n
}

// WriteDiffusers writes a diffusers save_pretrained layout under dir:
// unet/config.json (configJSON as given), unet/diffusion_pytorch_model.safetensors
// with random weights (seeded; weights ~ N(0, 1/fan_in), norms' weights 1
// and biases 0, so activations stay of order 1), and, when schedulerJSON is
// not empty, scheduler/scheduler_config.json. It returns the unet folder.
func WriteDiffusers(dir string, configJSON, schedulerJSON []byte, seed uint64) (string, error) {
	c, err := unet.ParseConfig(configJSON)
	if err != nil {
		return "", err
	}
	ud := filepath.Join(dir, "unet")
	if err := os.MkdirAll(ud, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(ud, "config.json"), configJSON, 0o644); err != nil {
		return "", err
	}
	if len(schedulerJSON) > 0 {
		sd := filepath.Join(dir, "scheduler")
		if err := os.MkdirAll(sd, 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(sd, "scheduler_config.json"), schedulerJSON, 0o644); err != nil {
			return "", err
		}
	}
	shapes := Shapes(c)
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	var entries []safetensors.Entry
	for k, n := range names {
		s := shapes[n]
		size := 1
		for _, d := range s {
			size *= d
		}
		data := make([]float32, size)
		isNorm := len(s) == 1 && (filepath.Ext(n) == ".weight")
		switch {
		case isNorm:
			for i := range data {
				data[i] = 1
			}
		case len(s) == 1: // biases
		default:
			fan := size / s[0]
			if n == "class_embedding.weight" {
				fan = 1
			}
			v := make([]float64, size)
			rng.Normal64(seed, k, 0, v)
			sd := 1 / math.Sqrt(float64(fan))
			for i := range data {
				data[i] = float32(sd * v[i])
			}
		}
		entries = append(entries, safetensors.Entry{Name: n, Shape: s, Data: data, DType: "F32"})
	}
	return ud, safetensors.WriteFile(filepath.Join(ud, "diffusion_pytorch_model.safetensors"), entries, nil)
}
