package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/lucid"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/torchpt"
)

func init() {
	register(&Family{Arch: ArchLucidUnet, From: "lucidrains",
		Parse: func(config json.RawMessage, params map[string]*tensor.Tensor) (Network, map[string]*tensor.Tensor, error) {
			c, err := lucid.ParseConfig(config)
			if err != nil {
				return nil, nil, err
			}
			return lucidNet{c}, params, nil
		},
		Convert: func(fsys fs.FS, name string, o ConvertOptions) (*Model, error) {
			if o.Lucid == nil {
				return nil, errors.New("lucidrains: no overrides given (the image size is required)")
			}
			ov, useEMA, err := o.Lucid()
			if err != nil {
				return nil, err
			}
			// A regular file of at most limits.MaxWeightsBytes: a symlink to
			// /dev/zero or a FIFO is refused before anything is read.
			// torchpt's default totals then bound what the checkpoint may
			// ask for.
			data, err := limits.ReadFS(fsys, name, limits.MaxWeightsBytes)
			if err != nil {
				return nil, err
			}
			return FromLucidrains(data, useEMA, ov)
		}})
}

// lucidNet is lucidrains' Unet (core/lucid).
type lucidNet struct{ c *lucid.Config }

func (n lucidNet) InShape() []int        { return []int{n.c.Channels, n.c.ImageSize[0], n.c.ImageSize[1]} }
func (n lucidNet) Classes() int          { return 0 }
func (n lucidNet) ProbeSize() (int, int) { return n.c.ImageSize[0], n.c.ImageSize[1] }
func (n lucidNet) Build(params map[string]*tensor.Tensor, batch, height, width int) (*graph.Graph, error) {
	return lucid.Build(n.c, params, batch, height, width)
}

// ArchLucidUnet is the Unet of lucidrains' denoising-diffusion-pytorch 2.x
// (core/lucid); the network takes the integer timestep.
const ArchLucidUnet = "lucidrains.Unet"

// LucidFormatError says a file is not a denoising-diffusion-pytorch checkpoint
// this converter understands.
type LucidFormatError struct{ Detail string }

func (e *LucidFormatError) Error() string {
	return "not a denoising-diffusion-pytorch checkpoint: " + e.Detail
}

// FromLucidrains reads a checkpoint of denoising-diffusion-pytorch's Trainer
// (Trainer.save: torch.save of {step, model, opt, ema, scaler, version}, with
// model the GaussianDiffusion state dict, Unet weights under "model.", and
// ema the EMA wrapper's state dict, its copy under "ema_model."). useEMA takes
// the EMA weights (ema.ema_model.*), otherwise the online ones (model.*). A
// bare GaussianDiffusion state dict (top-level betas, model.*) is read too.
//
// The pickle is read by torchpt's restricted unpickler, which executes
// nothing. The Unet's constructor arguments are inferred from the weights
// (lucid.InferConfig), the objective from the loss_weight buffer
// (lucid.InferObjective), and the sampling settings are stored as
// KeyScheduler metadata (lucid.Schedule); o overrides what the weights cannot
// tell and must give the image size.
func FromLucidrains(data []byte, useEMA bool, o lucid.Overrides) (*Model, error) {
	v, err := torchpt.Load(data)
	if err != nil {
		return nil, err
	}
	top, ok := v.(*torchpt.OrderedDict)
	if !ok {
		return nil, &LucidFormatError{fmt.Sprintf("the file holds a %T, not a dict", v)}
	}
	prefix, source := "", "denoising-diffusion-pytorch GaussianDiffusion state dict"
	if _, bare := top.Get("betas"); !bare {
		version, _ := top.Get("version")
		step, _ := top.Get("step")
		source = fmt.Sprintf("denoising-diffusion-pytorch %v Trainer checkpoint, step %v", version, step)
		if useEMA {
			if _, ok := top.Get("ema"); !ok {
				return nil, &LucidFormatError{"no \"ema\" entry (train with EMA, or convert the online weights with --online)"}
			}
			prefix, source = "ema.ema_model.", source+", EMA weights"
		} else {
			if _, ok := top.Get("model"); !ok {
				return nil, &LucidFormatError{"no \"model\" entry"}
			}
			prefix, source = "model.", source+", online weights"
		}
	}
	sd, _, err := torchpt.StateDict(v, prefix)
	if err != nil {
		return nil, err
	}
	params := map[string]*tensor.Tensor{}
	buffers := map[string][]float64{}
	for name, t := range sd {
		if unetName, ok := strings.CutPrefix(name, "model."); ok {
			tt, err := t.ToTensor()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			params[unetName] = tt
			continue
		}
		switch name {
		case "betas", "alphas_cumprod", "loss_weight":
			f, err := t.Float64()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			buffers[name] = f
		}
	}
	if len(params) == 0 {
		return nil, &LucidFormatError{fmt.Sprintf("no Unet weights under %q", prefix+"model.")}
	}
	if len(buffers["betas"]) == 0 || len(buffers["alphas_cumprod"]) != len(buffers["betas"]) {
		return nil, &LucidFormatError{fmt.Sprintf("no betas / alphas_cumprod buffers under %q", prefix)}
	}
	c, err := lucid.InferConfig(params, o)
	if err != nil {
		return nil, err
	}
	objective := o.Objective
	if objective == "" {
		if objective, err = lucid.InferObjective(buffers["alphas_cumprod"], buffers["loss_weight"]); err != nil {
			return nil, err
		}
	}
	sched, err := lucid.Schedule(buffers["betas"], buffers["alphas_cumprod"], objective, source)
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return New(ArchLucidUnet, config, sched, params)
}
