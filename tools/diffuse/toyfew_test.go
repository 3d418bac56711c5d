package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/sampler"
)

// The shipped few-step toy models (issue 21 item 4: weights/toy2d-flow,
// toy2d-reflow, toy2d-cm, trained by tools/train/train_toy2d_flow.py) sampled
// by our samplers from the noise PyTorch used, against PyTorch's own samples
// of the same weights (testdata/toyfew, written by that script's run; see
// testdata/toyfew/README): flow_euler in 1, 2, 4 and 25 steps for the flow
// models, the one-step consistency sample for the CM. So the scheduler
// config stored in each file (FlowMatchEulerDiscreteScheduler,
// CMStochasticIterativeScheduler with its σ_data and no clipping) makes Go
// compute what the training script trained.
func TestShippedFewStepToysMatchPyTorch(t *testing.T) {
	cases := []struct {
		file    string
		sampler string
		steps   []int
		ref     string // npy name pattern with %d for steps
	}{
		{"toy2d-flow", "flow_euler", []int{1, 2, 4, 25}, "toy2d-flow-euler%d.npy"},
		{"toy2d-reflow", "flow_euler", []int{1, 2, 4, 25}, "toy2d-reflow-euler%d.npy"},
		{"toy2d-cm", "consistency", []int{1}, "toy2d-cm-cm%d.npy"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			w := shipped(t, c.file+".safetensors")
			l, err := loadForSampling(w, "")
			if err != nil {
				t.Fatal(err)
			}
			net, err := newNet(l.Model, backendReference)
			if err != nil {
				t.Fatal(err)
			}
			noise := readNpy(t, filepath.Join("testdata", "toyfew", c.file+"-noise.npy")).Float64()
			for _, k := range c.steps {
				want := readNpy(t, filepath.Join("testdata", "toyfew", fmt.Sprintf(c.ref, k))).Float64()
				res, err := sampler.Run(context.Background(), c.sampler, l.SamplerModel(net), noise, &sampler.Options{Steps: k})
				if err != nil {
					t.Fatal(err)
				}
				if res.NFE != k {
					t.Errorf("%s %d steps: %d network calls", c.sampler, k, res.NFE)
				}
				d := 0.0
				for i := range want {
					d = math.Max(d, math.Abs(res.X[i]-want[i]))
				}
				t.Logf("%s %d steps: max |Go - PyTorch| = %.2g", c.sampler, k, d)
				// fp32 weights both sides; the differences are float32 rounding.
				if d > 1e-4 || len(res.X) != len(want) {
					t.Errorf("%s %d steps: max |Go - PyTorch| = %g over %d values", c.sampler, k, d, len(want))
				}
			}
		})
	}
}

// TestShippedFewStepToysSample: every shipped few-step toy samples finite
// points in 1 and 2 steps with every sampler that runs it at that budget
// (the samplers of its kind included: flow_euler/flow_heun, consistency).
func TestShippedFewStepToysSample(t *testing.T) {
	for _, f := range []string{"toy2d-flow", "toy2d-reflow", "toy2d-cm"} {
		w := shipped(t, f+".safetensors")
		l, err := loadForSampling(w, "")
		if err != nil {
			t.Fatal(err)
		}
		net, err := newNet(l.Model, backendReference)
		if err != nil {
			t.Fatal(err)
		}
		m := l.SamplerModel(net)
		noise := sampler.InitialNoise(1, 0, 64, l.Info.Shape)
		kind := map[string]bool{}
		for _, name := range l.Info.Samplers {
			kind[name] = true
		}
		for _, name := range []string{"flow_euler", "flow_heun", "consistency", "euler", "dpmpp_2m"} {
			if !kind[name] {
				continue
			}
			for _, steps := range []int{1, 2} {
				res, err := sampler.Run(context.Background(), name, m, noise, &sampler.Options{Steps: steps, Seed: 1})
				if err != nil {
					t.Fatalf("%s %s %d steps: %v", f, name, steps, err)
				}
				for _, v := range res.X {
					if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 10 {
						t.Fatalf("%s %s %d steps: sample value %v", f, name, steps, v)
					}
				}
			}
		}
		if f == "toy2d-cm" && !kind["consistency"] || f != "toy2d-cm" && !kind["flow_euler"] {
			t.Errorf("%s: samplers %v lack its kind's", f, l.Info.Samplers)
		}
	}
}

func readNpy(t *testing.T, path string) *npy.Array {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
