//go:build js && wasm

package webgpu

import (
	"context"
	"testing"

	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
)

// TestSampleDDIM checks the GPU-resident DDIM loop against core/sampler's
// DDIM driving the same GPU network, so only the sampler arithmetic differs
// (float32 state on the GPU, float64 on the CPU): deterministic and
// stochastic (η = 1, the CPU sampler's noise), guided, ε- and
// v-prediction, with and without clipping.
func TestSampleDDIM(t *testing.T) {
	d := testDevice(t)
	f := smallestFixture(t)
	dn, err := d.NewDenoiser(f.m)
	if err != nil {
		t.Fatal(err)
	}
	defer dn.Release()
	const B = 2
	cond, _ := f.m.Conditional()
	for _, c := range []struct {
		name, sched string
		eta, w      float64
	}{
		{"eps", `{"prediction_type": "epsilon", "clip_sample": false}`, 0, 0},
		{"v_clip_eta1_guided", `{"prediction_type": "v_prediction", "clip_sample": true, "use_clipped_model_output": true}`, 1, 2.5},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := schedule.Parse([]byte(c.sched))
			if err != nil {
				t.Fatal(err)
			}
			// 8x8 samples: the network is convolutional, and SwiftShader is slow.
			m := &sampler.Model{Net: dn, Schedule: s, Shape: []int{f.m.InShape()[0], 8, 8}, NullClass: -1}
			o := &sampler.Options{Steps: 3, Eta: c.eta, Seed: 42, FirstSample: 5}
			if cond {
				o.Class = []int{3, 7}
				if c.w != 0 {
					o.Guidance = c.w
					m.NullClass = 0 // any label will do for the arithmetic
				}
			} else if c.w != 0 {
				t.Skip("guidance needs a class-conditional fixture")
			}
			noise := sampler.InitialNoise(o.Seed, o.FirstSample, B, m.Shape)
			want, err := sampler.DDIM(context.Background(), m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			steps := 0
			o.Progress = func(sampler.Step) error { steps++; return nil }
			got, err := dn.SampleDDIM(context.Background(), m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			if steps != 3 || got.NFE != want.NFE {
				t.Errorf("%d progress calls and %d evaluations, want 3 and %d", steps, got.NFE, want.NFE)
			}
			g32, w32 := make([]float32, len(got.X)), make([]float32, len(want.X))
			for i := range got.X {
				g32[i], w32[i] = float32(got.X[i]), float32(want.X[i])
			}
			e := nmse(g32, w32)
			t.Logf("NMSE vs core/sampler.DDIM %.3g", e)
			if !(e <= 1e-9) {
				t.Errorf("NMSE %.3g over 1e-9", e)
			}
		})
	}
}
