// Package scoresde builds the ScoreNet of Yang Song's score-SDE tutorial
// ("Tutorial on Score-Based Generative Modeling", after Song et al. 2021,
// "Score-Based Generative Modeling through Stochastic Differential
// Equations"): a small U-Net for 28x28 images with Gaussian Fourier time
// features, unpadded convolutions on the way down, transposed convolutions on
// the way up, and the output divided by the VE SDE's marginal std, so the
// network returns the score ∇x log p_t(x).
//
// State-dict names follow the tutorial: embed.0.W, embed.1.*, conv1..4,
// dense1..7.dense, gnorm1..4, tconv4..1, tgnorm4..2.
package scoresde

import (
	"encoding/json"
	"fmt"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Config describes one ScoreNet. Channels and EmbedDim are read off the
// weights at conversion; Groups are the tutorial's GroupNorm group counts.
type Config struct {
	Channels   [4]int  `json:"channels"`
	EmbedDim   int     `json:"embed_dim"`
	Sigma      float64 `json:"sigma"`       // the VE SDE's sigma (25 in the tutorial)
	Groups     [4]int  `json:"groups"`      // gnorm1..4; the up path reuses groups[1..3]
	InChannels int     `json:"in_channels"` // 1 for MNIST
	Height     int     `json:"height"`
	Width      int     `json:"width"`
}

// ParseConfig reads and checks a Config.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("scoresde config: %w", err)
	}
	for _, ch := range append(c.Channels[:], c.EmbedDim, c.InChannels) {
		if err := limits.AtMost("scoresde channels / embed_dim", int64(ch), limits.MaxChannels); err != nil {
			return nil, err
		}
	}
	if err := limits.AtMost("scoresde height", int64(c.Height), limits.MaxSide); err != nil {
		return nil, err
	}
	if err := limits.AtMost("scoresde width", int64(c.Width), limits.MaxSide); err != nil {
		return nil, err
	}
	if err := limits.Float("scoresde sigma", c.Sigma, 1, 1e6); err != nil {
		return nil, err
	}
	if c.Sigma <= 1 {
		return nil, fmt.Errorf("scoresde config: sigma = %v, must be > 1", c.Sigma)
	}
	for i, g := range c.Groups {
		if g <= 0 || c.Channels[i] <= 0 || c.Channels[i]%g != 0 {
			return nil, fmt.Errorf("scoresde config: %d channels at level %d do not split into %d groups", c.Channels[i], i+1, g)
		}
	}
	if c.Height <= 0 || c.Width <= 0 || c.InChannels <= 0 {
		return nil, fmt.Errorf("scoresde config: need positive in_channels, height, width")
	}
	return c, nil
}

// ConfigFromWeights infers channels and embedding size from a state dict
// (with the tutorial's defaults for everything the weights cannot tell).
func ConfigFromWeights(params map[string]*tensor.Tensor, sigma float64, height, width int) (*Config, error) {
	c := &Config{Sigma: sigma, Groups: [4]int{4, 32, 32, 32}, Height: height, Width: width}
	for i := range c.Channels {
		w, ok := params[fmt.Sprintf("conv%d.weight", i+1)]
		if !ok || len(w.Shape) != 4 {
			return nil, fmt.Errorf("not a score-SDE tutorial ScoreNet: conv%d.weight missing or not 4-D", i+1)
		}
		c.Channels[i] = w.Shape[0]
		if i == 0 {
			c.InChannels = w.Shape[1]
		}
	}
	w, ok := params["embed.0.W"]
	if !ok || len(w.Shape) != 1 {
		return nil, fmt.Errorf("not a score-SDE tutorial ScoreNet: embed.0.W missing or not 1-D")
	}
	c.EmbedDim = 2 * w.Shape[0]
	b, _ := json.Marshal(c)
	return ParseConfig(b)
}

// Build makes the ScoreNet graph for a batch. Its output is the score.
func Build(c *Config, params map[string]*tensor.Tensor, batch int) (*graph.Graph, error) {
	g := graph.New(params)
	b := graph.NewBuilder(g)
	x := g.Input("x", batch, c.InChannels, c.Height, c.Width)
	t := g.Input("t", batch)
	const eps = 1e-5 // torch.nn.GroupNorm's default

	embed := b.FourierEmbed("embed.0.W", t, false, false)
	embed = b.Unary(graph.OpSiLU, b.Linear("embed.1", embed))
	// level: conv (or transposed conv) + dense(embed) per channel + GroupNorm + swish.
	level := func(h graph.Value, dense, norm string, groups int) graph.Value {
		h = b.AddChannel(h, b.Linear(dense+".dense", embed))
		return b.Unary(graph.OpSiLU, b.GroupNorm(norm, h, groups, eps))
	}
	h1 := level(b.Conv2D("conv1", x, 1, [4]int{}), "dense1", "gnorm1", c.Groups[0])
	h2 := level(b.Conv2D("conv2", h1, 2, [4]int{}), "dense2", "gnorm2", c.Groups[1])
	h3 := level(b.Conv2D("conv3", h2, 2, [4]int{}), "dense3", "gnorm3", c.Groups[2])
	h4 := level(b.Conv2D("conv4", h3, 2, [4]int{}), "dense4", "gnorm4", c.Groups[3])

	h := level(b.ConvTranspose2D("tconv4", h4, 2, 0, 0), "dense5", "tgnorm4", c.Groups[3])
	h = level(b.ConvTranspose2D("tconv3", b.Concat(h, h3), 2, 0, 1), "dense6", "tgnorm3", c.Groups[2])
	h = level(b.ConvTranspose2D("tconv2", b.Concat(h, h2), 2, 0, 1), "dense7", "tgnorm2", c.Groups[1])
	h = b.ConvTranspose2D("tconv1", b.Concat(h, h1), 1, 0, 0)
	h = b.DivBatch(h, b.VEMarginalStd(t, c.Sigma))
	if err := b.Err(); err != nil {
		return nil, err
	}
	if s := g.Shape(h); s[2] != c.Height || s[3] != c.Width || s[1] != c.InChannels {
		return nil, &graph.ShapeError{Node: "tconv1", Detail: fmt.Sprintf("output %v does not match input %v; the tutorial's ScoreNet needs 28x28 inputs", s, g.Shape(x))}
	}
	g.Output = h
	return g, graph.CheckAllUsed(g)
}
