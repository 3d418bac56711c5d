// Package toy2d builds the 2-D toy denoiser: a small time-conditioned MLP
// that predicts the noise added to points of a 2-D data set (a swiss roll),
// cheap enough to evaluate on a whole grid so a page can draw its score field.
//
// Network (tensor names as tools/train/train_toy2d.py saves them):
// eps = out(silu(fc3(silu(fc2(silu(fc1([x, temb(t)]))))))), where temb is the
// DDPM sinusoidal embedding [sin | cos] with frequencies exp(-ln(1e4)·i/half).
// A sample is shaped [2,1,1] (two channels, one pixel), so samplers and
// backends treat it like any other image.
package toy2d

import (
	"encoding/json"
	"fmt"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Config describes the MLP.
type Config struct {
	Dim     int      `json:"dim"`      // data dimension (2)
	TembDim int      `json:"temb_dim"` // sinusoidal embedding size
	Layers  []string `json:"layers"`   // linear layers in order; SiLU between them
}

// ParseConfig reads and checks a Config, defaulting to the shipped layout.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{Dim: 2, TembDim: 32, Layers: []string{"fc1", "fc2", "fc3", "out"}}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("toy2d config: %w", err)
	}
	if err := limits.Int("toy2d dim", int64(c.Dim), 1, limits.MaxChannels); err != nil {
		return nil, err
	}
	if err := limits.Int("toy2d temb_dim", int64(c.TembDim), 1, limits.MaxChannels); err != nil {
		return nil, err
	}
	if err := limits.Int("toy2d layers", int64(len(c.Layers)), 1, limits.MaxLayers); err != nil {
		return nil, err
	}
	if c.Dim <= 0 || c.TembDim <= 0 || c.TembDim%2 != 0 || len(c.Layers) == 0 {
		return nil, fmt.Errorf("toy2d config: need positive dim, an even temb_dim and at least one layer")
	}
	return c, nil
}

// Build makes the MLP's graph for a batch of points shaped [B, Dim, 1, 1].
func Build(c *Config, params map[string]*tensor.Tensor, batch int) (*graph.Graph, error) {
	g := graph.New(params)
	b := graph.NewBuilder(g)
	x := g.Input("x", batch, c.Dim, 1, 1)
	t := g.Input("t", batch)
	temb := b.TimestepEmbed(t, c.TembDim, false, 0, 1)
	h := b.Concat(b.Reshape(x, batch, c.Dim), temb)
	for i, name := range c.Layers {
		h = b.Linear(name, h)
		if i < len(c.Layers)-1 {
			h = b.Unary(graph.OpSiLU, h)
		}
	}
	h = b.Reshape(h, batch, c.Dim, 1, 1)
	if err := b.Err(); err != nil {
		return nil, err
	}
	g.Output = h
	return g, graph.CheckAllUsed(g)
}
