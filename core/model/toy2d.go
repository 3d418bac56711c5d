package model

import (
	"encoding/json"
	"fmt"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/toy2d"
)

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
