package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/unet/unettest"
)

// cmScheduler is the scheduler_config.json of the openai/diffusers-cd_*
// checkpoints (CMStochasticIterativeScheduler with its defaults).
const cmScheduler = `{"_class_name": "CMStochasticIterativeScheduler", "_diffusers_version": "0.17.0.dev0",
 "clip_denoised": true, "num_train_timesteps": 40, "rho": 7.0, "s_noise": 1.0, "sigma_data": 0.5,
 "sigma_max": 80.0, "sigma_min": 0.002}`

// TestConsistencyCheckpointSamples: a consistency checkpoint in diffusers
// format (unet/ with the public ImageNet-64 CD config.json, reduced in
// width, depth and size so its random weights stay small; scheduler/ with
// its scheduler config) converts with `diffuse convert --from diffusers`
// and samples with `diffuse sample --sampler consistency` at 1, 2 and 4
// steps: finite samples inside [-1, 1] (clip_denoised), differing by step
// count. The full-size config's graph: core/unet
// TestConsistencyImageNet64Builds.
func TestConsistencyCheckpointSamples(t *testing.T) {
	raw, err := os.ReadFile("../../core/unet/testdata/cd_imagenet64_l2_config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	// Reduced: every block and layer type as published, narrower (64..128
	// channels, one 64-wide head per 64), one resnet per level, 16×16.
	cfg["block_out_channels"] = []int{64, 64, 128, 128}
	cfg["layers_per_block"] = 1
	cfg["sample_size"] = 16
	small, _ := json.Marshal(cfg)
	dir := t.TempDir()
	ud, err := unettest.WriteDiffusers(dir, small, []byte(cmScheduler), 1)
	if err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(dir, "cm.safetensors")
	if err := runConvert([]string{"--from", "diffusers", ud, "-o", w, "--dtype", "f32"}); err != nil {
		t.Fatal(err)
	}
	var prev []float32
	for _, steps := range []string{"1", "2", "4"} {
		out := filepath.Join(dir, "s"+steps+".npy")
		if err := runSample([]string{"--weights", w, "--sampler", "consistency", "--steps", steps, "--n", "2", "--class", "145",
			"--seed", "3", "--out-npy", out, "--quiet"}); err != nil {
			t.Fatalf("%s steps: %v", steps, err)
		}
		a, err := npy.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		x := a.Float32()
		if len(a.Shape) != 4 || a.Shape[0] != 2 || a.Shape[1] != 3 || a.Shape[2] != 16 || a.Shape[3] != 16 {
			t.Fatalf("%s steps: shape %v", steps, a.Shape)
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range x {
			f := float64(v)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				t.Fatalf("%s steps: non-finite sample", steps)
			}
			lo, hi = math.Min(lo, f), math.Max(hi, f)
		}
		t.Logf("%s steps: samples in [%.3g, %.3g]", steps, lo, hi)
		if lo < -1-1e-6 || hi > 1+1e-6 || hi-lo < 1e-3 {
			t.Errorf("%s steps: samples in [%v, %v], want a spread inside [-1, 1]", steps, lo, hi)
		}
		if prev != nil && maxAbsDiff(prev, x) == 0 {
			t.Errorf("%s steps: same samples as the previous step count", steps)
		}
		prev = x
	}
}

// cmSmallConfig is the public ImageNet-64 CD config.json at toy size, for
// the reference case in testdata/cm_resnet_updown: every block type and
// option as published (ResnetDownsampleBlock2D, resnet down/upsampling,
// scale_shift, attention heads of attention_head_dim, the mid block's
// attn_norm_num_groups, class embeddings), 16..48 channels, 8 groups, two
// resnets per level, 8×8, 10 classes.
func cmSmallConfig(t *testing.T) []byte {
	raw, err := os.ReadFile("../../core/unet/testdata/cd_imagenet64_l2_config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["block_out_channels"] = []int{16, 32, 32, 48}
	cfg["attention_head_dim"] = 16
	cfg["norm_num_groups"] = 8
	cfg["attn_norm_num_groups"] = 8
	cfg["layers_per_block"] = 2
	cfg["num_class_embeds"] = 10
	cfg["sample_size"] = 8
	b, _ := json.Marshal(cfg)
	return b
}

// TestResnetUpDownReference compares the network of cmSmallConfig, with
// unettest's seeded random weights, against the output of
// testdata/cm_resnet_updown/reference.py on the same weights, inputs, times
// and labels: diffusers' own ResnetBlock2D (resnet.py with its up/down
// paths, run from the diffusers source) wired as UNet2DModel wires it.
// With DIFFUSE_WRITE_CM_REF=DIR it writes the diffusers folder the script
// reads.
func TestResnetUpDownReference(t *testing.T) {
	dir := os.Getenv("DIFFUSE_WRITE_CM_REF")
	if dir == "" {
		dir = t.TempDir()
	}
	ud, err := unettest.WriteDiffusers(dir, cmSmallConfig(t), nil, 5)
	if err != nil {
		t.Fatal(err)
	}
	ref := "testdata/cm_resnet_updown"
	want, err := npy.ReadFile(filepath.Join(ref, "y.npy"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.FromDiffusersDir(ud)
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{backendReference, backendFast} {
		y, err := evalFiles(m, filepath.Join(ref, "x.npy"), filepath.Join(ref, "t.npy"), filepath.Join(ref, "class_labels.npy"), backend)
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, backend, y.Data, want.Float32(), tolF32)
	}
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestFlowCheckpointSamples: a flow-matching UNet2DModel in diffusers
// format (random weights; scheduler/ a FlowMatchEulerDiscreteScheduler
// config with shift 3) converts and samples with flow_euler and flow_heun
// and, through the prediction converter, with dpmpp_2m; --shift overrides
// the config's shift.
func TestFlowCheckpointSamples(t *testing.T) {
	cfg := cmSmallConfig(t)
	dir := t.TempDir()
	sched := `{"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.30.0", "num_train_timesteps": 1000, "shift": 3.0}`
	ud, err := unettest.WriteDiffusers(dir, cfg, []byte(sched), 2)
	if err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(dir, "flow.safetensors")
	if err := runConvert([]string{"--from", "diffusers", ud, "-o", w}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) []float32 {
		t.Helper()
		out := filepath.Join(dir, "s.npy")
		if err := runSample(append([]string{"--weights", w, "--n", "2", "--class", "1", "--seed", "4", "--out-npy", out, "--quiet"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		a, err := npy.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		x := a.Float32()
		for _, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%v: non-finite sample", args)
			}
		}
		return x
	}
	euler := run("--sampler", "flow_euler", "--steps", "6")
	if d := maxAbsDiff(euler, run("--sampler", "flow_euler", "--steps", "6", "--shift", "3")); d != 0 {
		t.Errorf("--shift 3 differs from the config's shift 3 by %g", d)
	}
	if d := maxAbsDiff(euler, run("--sampler", "flow_euler", "--steps", "6", "--shift", "1")); d == 0 {
		t.Errorf("--shift 1 gives the shift-3 samples")
	}
	run("--sampler", "flow_heun", "--steps", "4")
	run("--sampler", "dpmpp_2m", "--steps", "6")
	if err := runSample([]string{"--weights", w, "--sampler", "consistency", "--n", "1", "--class", "1", "--out-npy", filepath.Join(dir, "c.npy"), "--quiet"}); err == nil {
		t.Errorf("the consistency sampler ran a flow model")
	}
}
