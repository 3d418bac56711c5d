package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/lucid"
	"github.com/diffuse-web/diffuse/core/model"
)

// lucidFlags are convert's flags for --from lucidrains: which weights to
// take, and overrides for what the weights do not tell.
type lucidFlags struct {
	ema, online                    *bool
	imageSize, selfCond, objective *string
	channels                       *int
	theta                          *float64
}

func addLucidFlags(fs *flag.FlagSet) *lucidFlags {
	return &lucidFlags{
		ema:       fs.Bool("ema", true, "lucidrains: take the EMA weights (the default)"),
		online:    fs.Bool("online", false, "lucidrains: take the online (non-EMA) weights instead of the EMA ones"),
		imageSize: fs.String("image-size", "", "lucidrains: sample size as N or HxW (required: the checkpoint does not record it)"),
		channels:  fs.Int("channels", 0, "lucidrains: image channels (default: inferred from the weights)"),
		selfCond:  fs.String("self-condition", "", "lucidrains: true or false, whether the Unet was built with self_condition (default: inferred)"),
		theta:     fs.Float64("theta", 10000, "lucidrains: the Unet's sinusoidal_pos_emb_theta (not in the weights)"),
		objective: fs.String("objective", "", "lucidrains: pred_noise, pred_x0 or pred_v (default: read off the loss_weight buffer)"),
	}
}

func (l *lucidFlags) convert(fs *flag.FlagSet, path string) (*model.Model, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *l.online && set["ema"] && *l.ema {
		return nil, errors.New("--ema and --online exclude each other")
	}
	o := lucid.Overrides{Objective: *l.objective, Theta: l.theta}
	if *l.imageSize == "" {
		return nil, errors.New("--image-size is required for lucidrains checkpoints (the Trainer checkpoint does not record it)")
	}
	h, w, err := parseImageSize(*l.imageSize)
	if err != nil {
		return nil, err
	}
	o.ImageSize = [2]int{h, w}
	if *l.channels > 0 {
		o.Channels = l.channels
	}
	switch *l.selfCond {
	case "":
	case "true", "false":
		v := *l.selfCond == "true"
		o.SelfCondition = &v
	default:
		return nil, fmt.Errorf("--self-condition %q: use true or false", *l.selfCond)
	}
	switch o.Objective {
	case "", "pred_noise", "pred_x0", "pred_v":
	default:
		return nil, fmt.Errorf("--objective %q: use pred_noise, pred_x0 or pred_v", o.Objective)
	}
	// A regular file of at most limits.MaxWeightsBytes: a symlink to
	// /dev/zero or a FIFO is refused before anything is read. torchpt's
	// default totals then bound what the checkpoint may ask for.
	data, err := limits.ReadFile(path, limits.MaxWeightsBytes)
	if err != nil {
		return nil, err
	}
	return model.FromLucidrains(data, !*l.online, o)
}

// parseImageSize reads "N" (square) or "HxW".
func parseImageSize(s string) (int, int, error) {
	hs, ws, pair := strings.Cut(strings.ToLower(s), "x")
	h, err1 := strconv.Atoi(hs)
	w := h
	var err2 error
	if pair {
		w, err2 = strconv.Atoi(ws)
	}
	if err1 != nil || err2 != nil || h <= 0 || w <= 0 {
		return 0, 0, fmt.Errorf("--image-size %q: use N or HxW with positive integers", s)
	}
	return h, w, nil
}
