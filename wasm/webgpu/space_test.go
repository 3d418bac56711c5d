//go:build js && wasm

package webgpu

import (
	"context"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/sampler/spacetest"
	"github.com/diffuse-web/diffuse/core/schedule"
)

// hostNet hides dn's WithSpace: core/sampler then keeps its vectors on the
// host (float64) and calls the GPU network once per evaluation.
type hostNet struct{ model.Denoiser }

// TestSpaceOps checks gpuSpace's operations against spacetest's float64
// loops: Lincomb up to and past maxTerms terms, Clamp, SumSq, Read/Load
// round trips, and Noise equal to core/rng's draws rounded to float32 bit
// for bit; then that a vector survives the arena's growth.
func TestSpaceOps(t *testing.T) {
	d := testDevice(t)
	dn, f := smallestDenoiser(t, d)
	defer dn.Release()
	s, _ := schedule.Parse(nil)
	const B = 3
	shape := []int{f.m.InShape()[0], 8, 8}
	cfg := sampler.SpaceConfig{Model: &sampler.Model{Net: dn, Schedule: s, Shape: shape, NullClass: -1}, Schedule: s,
		B: B, N: shape[0] * 64, Seed: 5, FirstSample: 2}
	if cond, _ := f.m.Conditional(); cond {
		cfg.Class = []int{0, 1, 2}
	}
	sp, done, err := dn.newSpace(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	v, vals := spacetest.Check(t, sp, cfg, []int{1, 3, maxTerms, 10}, spacetest.Tol{Lincomb: 1e-5, SumSq: 1e-5, Float32: true})
	// growth past the first arena
	var more []sampler.Vec
	for k := 0; k < 2*arenaFirst; k++ {
		more = append(more, sp.New())
	}
	for i, x := range sp.Read(v) {
		if x != vals[i] {
			t.Fatalf("a vector after the arena grew: value %d is %v, was %v", i, x, vals[i])
		}
	}
	for _, v := range more {
		sp.Free(v)
	}
}

// TestSpaceSamplers runs every sampler of the registry, and DDIM
// inversion, through the same core/sampler function with its vectors on
// the GPU (dn.WithSpace) and on the host (float64), both calling the same
// GPU network: the results, the evaluation counts and the progress calls
// must agree (previews exactly where Options.Preview picks), with
// stochastic, guided, clipped and every prediction type spread over the
// cases.
func TestSpaceSamplers(t *testing.T) {
	d := testDevice(t)
	dn, f := smallestDenoiser(t, d)
	defer dn.Release()
	pick := pickPreviews
	cases := append(residentCases(), []sampleCase{
		{"rk45", veSched, 0, 0, 0, func(i, _ int) bool { return i == 0 }, 1e-6},
		{"invert_ddim", epsSched, 3, 0, 2, pick, 0},
		// k-diffusion's samplers (Euler grid), DEIS and UniPC (DPM grid)
		{"dpm_2", `{"prediction_type": "v_prediction", "clip_sample": false}`, 3, 0, 2, pick, 0},
		{"dpm_2_ancestral", epsSched, 3, 0.5, 0, nil, 0},
		{"dpmpp_2s_ancestral", epsSched, 3, 0, 1.5, pick, 0},
		{"dpmpp_sde", veSched, 3, 0, 0, pick, 0},
		{"dpmpp_2m_sde", `{"prediction_type": "v_prediction", "clip_sample": false}`, 4, 0, 2, nil, 0},
		{"dpmpp_3m_sde", epsSched, 5, 0.7, 0, pick, 0},
		{"lms", epsSched, 5, 0, 2.5, pick, 0},
		{"deis", `{"prediction_type": "v_prediction", "clip_sample": false}`, 4, 0, 0, pick, 0},
		{"unipc", epsSched, 5, 0, 2, pick, 0},
		{"unipc_bh1", veSched, 4, 0, 0, nil, 0},
		{"flow_euler", `{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3}`, 3, 0, 2, pick, 0},
		{"flow_heun", `{"_class_name": "FlowMatchHeunDiscreteScheduler", "shift": 3}`, 3, 0, 0, nil, 0},
		{"consistency", `{"_class_name": "CMStochasticIterativeScheduler"}`, 3, 0, 0, pick, 0},
	}...)
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.name] = true
		if c.tol == 0 {
			c.tol = 1e-9
		}
		t.Run(c.name, func(t *testing.T) {
			run := sampler.InvertDDIM
			if info, ok := sampler.Get(c.name); ok {
				run = info.Func
			}
			m, o, noise := c.setup(t, hostNet{dn}, f)
			o.RTol, o.ATol = 3e-2, 3e-2
			var hostSteps []sampler.Step
			o.Progress = recordSteps(&hostSteps)
			t0 := time.Now()
			want, err := run(context.Background(), m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			th := time.Since(t0)
			var gpuSteps []sampler.Step
			o.Progress = func(st sampler.Step) error { gpuSteps = append(gpuSteps, st); return nil }
			o.Preview = c.preview
			gm := *m
			gm.Net = dn.WithSpace()
			t0 = time.Now()
			got, err := run(context.Background(), &gm, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			e := nmse64(got.X, want.X)
			t.Logf("NMSE vs the host's vectors %.3g (%d evaluations; host vectors %v, GPU vectors %v)", e, got.NFE, th, time.Since(t0))
			if !(e <= c.tol) {
				t.Errorf("NMSE vs the host's vectors %.3g over %g", e, c.tol)
			}
			if c.name == "rk45" {
				return // float32 error norms may choose other steps
			}
			if got.NFE != want.NFE || len(gpuSteps) != len(hostSteps) {
				t.Fatalf("%d evaluations, %d progress calls; want %d and %d", got.NFE, len(gpuSteps), want.NFE, len(hostSteps))
			}
			checkProgress(t, c.name, gpuSteps, hostSteps, c.preview)
		})
	}
	for _, info := range sampler.List() {
		if !seen[info.Name] {
			t.Errorf("sampler %s is not tested on the GPU vectors", info.Name)
		}
	}
}
