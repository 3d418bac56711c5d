package unet

import (
	"encoding/json"
	"errors"
	"github.com/diffuse-web/diffuse/core/fixtures"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/tensor"
)

func fixture(t *testing.T, name string) ([]byte, map[string]*tensor.Tensor) {
	dir := filepath.Join(fixtures.Dir(), "diffusers", name)
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Skipf("fixture missing: %v", err)
	}
	f, err := safetensors.ReadFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]*tensor.Tensor{}
	for i := range f.Tensors {
		tt, err := f.Tensors[i].Tensor()
		if err != nil {
			t.Fatal(err)
		}
		params[f.Tensors[i].Name] = tt
	}
	return cfg, params
}

// withField returns config JSON with one field replaced (or added).
func withField(t *testing.T, cfg []byte, field string, value any) []byte {
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		t.Fatal(err)
	}
	m[field] = value
	b, _ := json.Marshal(m)
	return b
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cfg, _ := fixture(t, "mnist_cond")
	cases := []struct {
		field string
		value any
	}{
		{"time_embedding_type", "learned"},
		{"down_block_types", []string{"DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}},
		{"up_block_types", []string{"UpBlock2D", "SkipUpBlock2D", "UpBlock2D"}},
		{"mid_block_type", "UNetMidBlock2DCrossAttn"},
		{"resnet_time_scale_shift", "spatial"},
		{"act_fn", "mish"},
		{"downsample_type", "fir"},
		{"upsample_type", "fir"},
		{"class_embed_type", "timestep"},
		{"downsample_padding", 2},
		{"norm_num_groups", 7},
		{"some_new_field", true},
	}
	for _, c := range cases {
		_, err := ParseConfig(withField(t, cfg, c.field, c.value))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%s=%v: got %v, want a ConfigError naming the field", c.field, c.value, err)
		}
	}
	if _, err := ParseConfig([]byte(`{"_class_name": "UNet2DConditionModel"}`)); err == nil {
		t.Error("UNet2DConditionModel accepted")
	}
}

func build(t *testing.T, cfg []byte, params map[string]*tensor.Tensor) (*graph.Graph, error) {
	c, err := ParseConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return Build(c, params, 2, 28, 28)
}

func TestWeightsMustMatchConfig(t *testing.T) {
	cfg, params := fixture(t, "mnist_cond")
	if _, err := build(t, cfg, params); err != nil {
		t.Fatalf("fixture does not build: %v", err)
	}
	drop := func(name string) map[string]*tensor.Tensor {
		p := map[string]*tensor.Tensor{}
		for k, v := range params {
			if k != name {
				p[k] = v
			}
		}
		return p
	}
	var missing *graph.MissingWeightError
	if _, err := build(t, cfg, drop("mid_block.resnets.1.conv2.weight")); !errors.As(err, &missing) || missing.Name != "mid_block.resnets.1.conv2.weight" {
		t.Errorf("missing weight: got %v", err)
	}
	extra := drop("")
	extra["decoder.extra.weight"] = tensor.New(3)
	var unused *graph.UnusedWeightError
	if _, err := build(t, cfg, extra); !errors.As(err, &unused) || unused.Names[0] != "decoder.extra.weight" {
		t.Errorf("unused weight: got %v", err)
	}
	wrong := drop("")
	wrong["conv_in.weight"] = tensor.New(32, 1, 5, 5)
	var shapeErr *graph.ShapeError
	if _, err := build(t, cfg, wrong); !errors.As(err, &shapeErr) {
		t.Errorf("wrong shape: got %v", err)
	}
	// A config that disagrees with the checkpoint is refused, never run silently.
	if _, err := build(t, withField(t, cfg, "layers_per_block", 2), params); err == nil {
		t.Error("layers_per_block 2 accepted for a 1-layer checkpoint")
	}
	if _, err := build(t, withField(t, cfg, "resnet_time_scale_shift", "default"), params); err == nil {
		t.Error("default time shift accepted for a scale_shift checkpoint")
	}
}

// Checkpoints from 2022 name attention weights query/key/value/proj_attn.
func TestLegacyAttentionNames(t *testing.T) {
	cfg, params := fixture(t, "mnist_cond")
	legacy := map[string]*tensor.Tensor{}
	renamed := 0
	for k, v := range params {
		n := k
		for cur, old := range map[string]string{".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."} {
			if strings.Contains(n, cur) {
				n = strings.Replace(n, cur, old, 1)
				renamed++
			}
		}
		legacy[n] = v
	}
	if renamed == 0 {
		t.Fatal("fixture has no attention weights to rename")
	}
	g1, err := build(t, cfg, params)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := build(t, cfg, legacy)
	if err != nil {
		t.Fatalf("legacy names refused: %v", err)
	}
	if len(g1.Nodes) != len(g2.Nodes) {
		t.Errorf("legacy graph has %d nodes, current %d", len(g2.Nodes), len(g1.Nodes))
	}
}

func TestImageSizeMustDivide(t *testing.T) {
	cfg, params := fixture(t, "mnist_cond")
	c, _ := ParseConfig(cfg)
	if _, err := Build(c, params, 1, 30, 28); err == nil {
		t.Error("30x28 accepted for a 3-level UNet (needs multiples of 4)")
	}
}
