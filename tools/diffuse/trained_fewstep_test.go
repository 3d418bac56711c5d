package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/sampler"
)

// parityManifest is what tools/train/fewstep.write_parity writes: the
// trainer's diffusers folder and PyTorch's samples of it from fixed noise.
type parityManifest struct {
	ModelDir  string `json:"model_dir"`
	NullClass int    `json:"null_class"`
	Cases     []struct {
		Name      string   `json:"name"`
		Sampler   string   `json:"sampler"`
		Steps     int      `json:"steps"`
		Guidance  float64  `json:"guidance"`
		Labels    []int    `json:"labels"`
		Noise     string   `json:"noise"`
		Want      string   `json:"want"`
		StepNoise []string `json:"step_noise"`
	} `json:"cases"`
}

// TestTrainedFewStepParity: a model written by tools/train/train_mnist_flow.py
// or train_mnist_ect.py (their parity/ folders, listed in DIFFUSE_PARITY_DIRS,
// separated by the OS path-list separator) is converted as `diffuse convert
// --from diffusers DIR --null-class N --dtype f32` does and sampled by our
// sampler (flow_euler or consistency, with the case's class labels and
// guidance) from the noise PyTorch used, the consistency sampler's fresh
// per-step noise replayed from PyTorch's draws; the samples must match
// PyTorch's own. So the scheduler config each trainer declares makes Go
// compute what it trained. Skipped without the variable
// (tools/train/test_mnist_fewstep.py sets it after its smoke runs).
func TestTrainedFewStepParity(t *testing.T) {
	dirs := filepath.SplitList(os.Getenv("DIFFUSE_PARITY_DIRS"))
	if len(dirs) == 0 {
		t.Skip("DIFFUSE_PARITY_DIRS not set (tools/train/test_mnist_fewstep.py sets it)")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(filepath.Dir(dir)), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			var man parityManifest
			if err := json.Unmarshal(b, &man); err != nil {
				t.Fatal(err)
			}
			fam, err := model.Converter("diffusers")
			if err != nil {
				t.Fatal(err)
			}
			m, err := fam.ConvertPath(filepath.Join(dir, man.ModelDir), model.ConvertOptions{})
			if err != nil {
				t.Fatal(err)
			}
			m.NullClass = man.NullClass
			f32, err := parseDType("f32")
			if err != nil {
				t.Fatal(err)
			}
			w := filepath.Join(t.TempDir(), "model.safetensors")
			if err := m.Save(w, f32); err != nil {
				t.Fatal(err)
			}
			l, err := loadForSampling(w, "")
			if err != nil {
				t.Fatal(err)
			}
			net, err := newNet(l.Model, backendReference)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range man.Cases {
				noise := readNpy(t, filepath.Join(dir, c.Noise)).Float64()
				want := readNpy(t, filepath.Join(dir, c.Want)).Float64()
				var steps [][]float64
				for _, f := range c.StepNoise {
					steps = append(steps, readNpy(t, filepath.Join(dir, f)).Float64())
				}
				per := len(noise) / len(c.Labels)
				o := &sampler.Options{Steps: c.Steps, Guidance: c.Guidance, Class: c.Labels}
				if len(steps) > 0 {
					o.Noise = func(sample, step, sub int, out []float64) {
						if step >= len(steps) || sub != 0 {
							t.Errorf("%s: noise asked for step %d sub %d; PyTorch drew %d steps", c.Name, step, sub, len(steps))
							return
						}
						copy(out, steps[step][sample*per:(sample+1)*per])
					}
				}
				res, err := sampler.Run(context.Background(), c.Sampler, l.SamplerModel(net), noise, o)
				if err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
				if len(res.X) != len(want) {
					t.Fatalf("%s: %d values, PyTorch %d", c.Name, len(res.X), len(want))
				}
				d, scale := 0.0, 0.0
				for i := range want {
					d = math.Max(d, math.Abs(res.X[i]-want[i]))
					scale = math.Max(scale, math.Abs(want[i]))
				}
				t.Logf("%s: max |Go - PyTorch| = %.2g (max |PyTorch| %.2g), %d network calls", c.Name, d, scale, res.NFE)
				// fp32 weights on both sides: the differences are float32
				// rounding through the UNet (about 1e-6 relative per call).
				if d > 1e-3*math.Max(scale, 1) {
					t.Errorf("%s: max |Go - PyTorch| = %g", c.Name, d)
				}
			}
		})
	}
}
