package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/diffuse-web/diffuse/core/lucid"
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

// overrides checks the lucidrains flags and returns the overrides they
// give and whether to take the EMA weights (model's lucidrains converter
// calls it).
func (l *lucidFlags) overrides(fs *flag.FlagSet) (lucid.Overrides, bool, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *l.online && set["ema"] && *l.ema {
		return lucid.Overrides{}, false, errors.New("--ema and --online exclude each other")
	}
	o := lucid.Overrides{Objective: *l.objective, Theta: l.theta}
	if *l.imageSize == "" {
		return lucid.Overrides{}, false, errors.New("--image-size is required for lucidrains checkpoints (the Trainer checkpoint does not record it)")
	}
	h, w, err := parseImageSize(*l.imageSize)
	if err != nil {
		return lucid.Overrides{}, false, err
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
		return lucid.Overrides{}, false, fmt.Errorf("--self-condition %q: use true or false", *l.selfCond)
	}
	switch o.Objective {
	case "", "pred_noise", "pred_x0", "pred_v":
	default:
		return lucid.Overrides{}, false, fmt.Errorf("--objective %q: use pred_noise, pred_x0 or pred_v", o.Objective)
	}
	return o, !*l.online, nil
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
