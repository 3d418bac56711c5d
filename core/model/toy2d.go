package model

import (
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/toy2d"
)

func init() {
	register(&Family{Arch: ArchToy2D, From: "toy2d",
		Parse: func(config json.RawMessage, params map[string]*tensor.Tensor) (Network, map[string]*tensor.Tensor, error) {
			c, err := toy2d.ParseConfig(config)
			if err != nil {
				return nil, nil, err
			}
			return toyNet{c}, params, nil
		},
		Convert: func(fsys fs.FS, name string, _ ConvertOptions) (*Model, error) {
			f, err := readSafetensors(fsys, name)
			if err != nil {
				return nil, err
			}
			return FromToy2D(f)
		}})
}

// toyNet is the 2-D toy MLP (core/toy2d): a sample is a point [Dim,1,1].
type toyNet struct{ c *toy2d.Config }

func (n toyNet) InShape() []int        { return []int{n.c.Dim, 1, 1} }
func (n toyNet) Classes() int          { return 0 }
func (n toyNet) ProbeSize() (int, int) { return 1, 1 }
func (n toyNet) Build(params map[string]*tensor.Tensor, batch, height, width int) (*graph.Graph, error) {
	if height != 1 || width != 1 {
		return nil, fmt.Errorf("the toy model takes points shaped [%d,1,1], not %dx%d images", n.c.Dim, height, width)
	}
	return toy2d.Build(n.c, params, batch)
}

// trainedToyConfig is the "config" metadata tools/train/train_toy2d.py writes.
type trainedToyConfig struct {
	ModelType     string `json:"model_type"`
	InDim         int    `json:"in_dim"`
	NumHidden     int    `json:"num_hidden_layers"`
	TimeEmbedding struct {
		Dim int `json:"dim"`
	} `json:"time_embedding"`
	Scheduler json.RawMessage `json:"scheduler"`
}

// FromToy2D reads the safetensors file the toy training script writes (its
// network description in __metadata__["config"]).
func FromToy2D(f *safetensors.File) (*Model, error) {
	raw, ok := f.Metadata["config"]
	if !ok {
		return nil, fmt.Errorf("toy2d: no \"config\" metadata (expected the file tools/train/train_toy2d.py writes)")
	}
	var tc trainedToyConfig
	if err := json.Unmarshal([]byte(raw), &tc); err != nil {
		return nil, fmt.Errorf("toy2d config: %w", err)
	}
	if tc.ModelType != "toy2d_mlp" {
		return nil, fmt.Errorf("toy2d config: model_type %q, want toy2d_mlp", tc.ModelType)
	}
	if err := limits.Int("toy2d num_hidden_layers", int64(tc.NumHidden), 0, limits.MaxLayers-1); err != nil {
		return nil, err
	}
	c := toy2d.Config{Dim: tc.InDim, TembDim: tc.TimeEmbedding.Dim}
	for i := 1; i <= tc.NumHidden; i++ {
		c.Layers = append(c.Layers, fmt.Sprintf("fc%d", i))
	}
	c.Layers = append(c.Layers, "out")
	config, _ := json.Marshal(c)
	params, err := tensors(f)
	if err != nil {
		return nil, err
	}
	return New(ArchToy2D, config, tc.Scheduler, params)
}
