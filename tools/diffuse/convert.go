package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/lucid"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/schedule"
)

func init() {
	register(&command{name: "convert", summary: "convert a checkpoint into one self-describing fp16 safetensors file", run: runConvert})
}

func runConvert(args []string) error {
	fs := newFlags("convert", "convert --from diffusers|scoresde|toy2d|lucidrains PATH -o OUT.safetensors [--dtype f16|f32]")
	from := fs.String("from", "diffusers", "checkpoint kind: diffusers (a save_pretrained folder: config.json + diffusion_pytorch_model.safetensors, or .bin) scoresde (the score-SDE tutorial's ScoreNet ckpt.pth) toy2d (the safetensors file tools/train/train_toy2d.py writes) or lucidrains (a denoising-diffusion-pytorch 2.x Trainer checkpoint model-N.pt)")
	sigma := fs.Float64("sigma", 25, "scoresde: the VE SDE's sigma the ScoreNet was trained with")
	size := fs.Int("size", 28, "scoresde: image height and width the ScoreNet takes")
	out := fs.String("o", "", "output file (required)")
	dtype := fs.String("dtype", "f16", "weight type in the output: f16, bf16 or f32")
	sched := fs.String("scheduler", "", "scheduler_config.json to store with the model (default: scheduler_config.json beside the model or in ../scheduler/)")
	lf := addLucidFlags(fs)
	nullClass := fs.Int("null-class", -1, "class label that means \"no class\" for classifier-free guidance (class-conditional models)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("need exactly one input path")
	}
	if *out == "" {
		return errors.New("-o OUT.safetensors is required")
	}
	dt, err := parseDType(*dtype)
	if err != nil {
		return err
	}
	fam, err := model.Converter(*from)
	if err != nil {
		return err
	}
	m, err := fam.ConvertPath(pos[0], model.ConvertOptions{Sigma: *sigma, Size: *size,
		Lucid: func() (lucid.Overrides, bool, error) { return lf.overrides(fs) }})
	if err != nil {
		return err
	}
	if *sched != "" {
		b, err := limits.ReadFile(*sched, limits.MaxConfigBytes)
		if err != nil {
			return err
		}
		if _, err := schedule.Parse(b); err != nil {
			return fmt.Errorf("--scheduler %s: %w", *sched, err)
		}
		m.Scheduler = b
	}
	if *nullClass >= 0 {
		cond, n := m.Conditional()
		if !cond || *nullClass >= n {
			return fmt.Errorf("--null-class %d: model has %d class embeddings", *nullClass, n)
		}
		m.NullClass = *nullClass
	}
	if err := m.Save(*out, dt); err != nil {
		return err
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(os.Stderr, "wrote %s (%d tensors, %.1f MB, %s)\n", *out, len(m.Params), float64(st.Size())/1e6, dt)
	return nil
}

func parseDType(s string) (safetensors.DType, error) {
	switch strings.ToLower(s) {
	case "f16", "fp16", "float16":
		return "F16", nil
	case "bf16", "bfloat16":
		return "BF16", nil
	case "f32", "fp32", "float32":
		return "F32", nil
	}
	return "", fmt.Errorf("--dtype %q: use f16, bf16 or f32", s)
}
