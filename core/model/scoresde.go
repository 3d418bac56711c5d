package model

import (
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/scoresde"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/torchpt"
)

func init() {
	register(&Family{Arch: ArchScoreNet, From: "scoresde",
		Parse: func(config json.RawMessage, params map[string]*tensor.Tensor) (Network, map[string]*tensor.Tensor, error) {
			c, err := scoresde.ParseConfig(config)
			if err != nil {
				return nil, nil, err
			}
			return scoreNet{c}, params, nil
		},
		Convert: func(fsys fs.FS, name string, o ConvertOptions) (*Model, error) {
			data, err := limits.ReadFS(fsys, name, limits.MaxWeightsBytes)
			if err != nil {
				return nil, err
			}
			return FromScoreSDE(data, o.Sigma, o.Size)
		}})
}

// scoreNet is the score-SDE tutorial's ScoreNet (core/scoresde), which
// takes one image size.
type scoreNet struct{ c *scoresde.Config }

func (n scoreNet) InShape() []int        { return []int{n.c.InChannels, n.c.Height, n.c.Width} }
func (n scoreNet) Classes() int          { return 0 }
func (n scoreNet) ProbeSize() (int, int) { return n.c.Height, n.c.Width }
func (n scoreNet) Build(params map[string]*tensor.Tensor, batch, height, width int) (*graph.Graph, error) {
	if height != n.c.Height || width != n.c.Width {
		return nil, fmt.Errorf("ScoreNet takes %dx%d images, not %dx%d", n.c.Height, n.c.Width, height, width)
	}
	return scoresde.Build(n.c, params, batch)
}

// FromScoreSDE reads a checkpoint saved the way the score-SDE tutorial saves
// its ScoreNet: torch.save of a (DataParallel) state dict, keys prefixed
// "module.". The pickle is read by torchpt's restricted unpickler, which
// executes nothing. sigma is the VE SDE's sigma (25 in the tutorial); the
// tutorial's ScoreNet takes size x size images (28 for MNIST).
func FromScoreSDE(data []byte, sigma float64, size int) (*Model, error) {
	v, err := torchpt.Load(data)
	if err != nil {
		return nil, err
	}
	sd, _, err := torchpt.StateDict(v, "module.")
	if err != nil {
		return nil, err
	}
	if len(sd) == 0 { // saved without the DataParallel wrapper
		if sd, _, err = torchpt.StateDict(v, ""); err != nil {
			return nil, err
		}
	}
	params := make(map[string]*tensor.Tensor, len(sd))
	for name, t := range sd {
		tt, err := t.ToTensor()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		params[name] = tt
	}
	c, err := scoresde.ConfigFromWeights(params, sigma, size, size)
	if err != nil {
		return nil, err
	}
	config, _ := json.Marshal(c)
	return New(ArchScoreNet, config, ScoreSDESchedule(sigma), params)
}

// ScoreSDESchedule is the schedule metadata of a tutorial ScoreNet: the VE SDE
// dx = sigma^t dw on t in [eps, 1], a network that outputs the score, and
// data in [0, 1].
func ScoreSDESchedule(sigma float64) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"sde": "ve_tutorial", "sigma": sigma, "prediction_type": "score",
		"time_input": "t", "sampling_eps": 1e-3, "data_range": []float64{0, 1},
	})
	return b
}
