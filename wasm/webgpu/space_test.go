//go:build js && wasm

package webgpu

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/rng"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
)

// hostNet hides dn's WithSpace: core/sampler then keeps its vectors on the
// host (float64) and calls the GPU network once per evaluation.
type hostNet struct{ model.Denoiser }

// TestSpaceOps checks gpuSpace's operations against direct float64 loops:
// Lincomb (up to and past maxTerms terms, per-sample coefficients, the
// output one of the inputs), Clamp, SumSq with and without an error
// scale, Read/Load round trips, and Noise equal to core/rng's draws
// rounded to float32 bit for bit.
func TestSpaceOps(t *testing.T) {
	d := testDevice(t)
	dn, f := smallestDenoiser(t, d)
	defer dn.Release()
	s, _ := schedule.Parse(nil)
	const B = 3
	shape := []int{f.m.InShape()[0], 8, 8}
	per := shape[0] * 64
	cfg := sampler.SpaceConfig{Model: &sampler.Model{Net: dn, Schedule: s, Shape: shape, NullClass: -1}, Schedule: s,
		B: B, N: per, Seed: 5, FirstSample: 2}
	if cond, _ := f.m.Conditional(); cond {
		cfg.Class = []int{0, 1, 2}
	}
	sp, done, err := dn.newSpace(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	n := B * per
	host := make([][]float64, 11)
	vs := make([]sampler.Vec, len(host))
	for j := range host {
		host[j] = make([]float64, n)
		for i := range host[j] {
			host[j][i] = float64(float32(2 * math.Sin(float64(13*j+i)*0.37)))
		}
		vs[j] = sp.New()
		sp.Load(vs[j], host[j])
	}
	if got := sp.Read(vs[3]); maxAbs(got, host[3]) != 0 {
		t.Fatalf("Load then Read changed the values by %g", maxAbs(got, host[3]))
	}
	check := func(what string, got, want []float64, tol float64) {
		t.Helper()
		if e := maxAbs(got, want); !(e <= tol) {
			t.Errorf("%s: off by %g (tolerance %g)", what, e, tol)
		}
	}
	for _, nt := range []int{1, 3, maxTerms, 10} {
		terms := make([]sampler.Term, nt)
		want := make([]float64, n)
		for k := range terms {
			terms[k] = sampler.T(0.5-0.25*float64(k), vs[k])
			if k == 1 {
				terms[k].PerSample = []float64{1, -3, 0.25}
			}
			for i := range want {
				c := terms[k].C
				if terms[k].PerSample != nil {
					c = terms[k].PerSample[i/per]
				}
				want[i] += c * host[k][i]
			}
		}
		out := vs[10]
		sp.Lincomb(out, terms...)
		check(fmt.Sprintf("lincomb of %d terms", nt), sp.Read(out), want, 1e-5)
	}
	// in place
	tmp := append([]float64(nil), host[0]...)
	sp.Lincomb(vs[0], sampler.T(2, vs[0]), sampler.T(-1, vs[1]))
	for i := range tmp {
		tmp[i] = 2*tmp[i] - host[1][i]
	}
	check("in-place lincomb", sp.Read(vs[0]), tmp, 1e-5)
	sp.Clamp(vs[10], vs[2], -0.5, 1)
	want := make([]float64, n)
	for i, x := range host[2] {
		want[i] = math.Max(-0.5, math.Min(1, x))
	}
	check("clamp", sp.Read(vs[10]), want, 0)
	for _, sc := range []sampler.ErrScale{{}, {Y: vs[3], ATol: 1e-2, RTol: 0.1}, {Y: vs[3], Y2: vs[4], ATol: 1e-3, RTol: 1e-2}} {
		got := sp.SumSq(vs[5], sc)
		hs := make([]float64, B)
		for i, x := range host[5] {
			if sc.Y != nil {
				m := math.Abs(host[3][i])
				if sc.Y2 != nil {
					m = math.Max(m, math.Abs(host[4][i]))
				}
				x /= sc.ATol + sc.RTol*m
			}
			hs[i/per] += x * x
		}
		for b := range hs {
			if math.Abs(got[b]-hs[b]) > 1e-5*hs[b] {
				t.Errorf("sum of squares (scale %+v) of sample %d: %g, want %g", sc, b, got[b], hs[b])
			}
		}
	}
	sp.Noise(vs[6], 7, 2)
	got := sp.Read(vs[6])
	z := make([]float64, per)
	for b := 0; b < B; b++ {
		rng.NormalStream64(5, 2+b, 7, 2, z)
		for i, v := range z {
			if float32(got[b*per+i]) != float32(v) {
				t.Fatalf("noise of sample %d, value %d: %v, want core/rng's %v", b, i, got[b*per+i], float32(v))
			}
		}
	}
	// growth past the first arena
	var more []sampler.Vec
	for k := 0; k < 2*arenaFirst; k++ {
		more = append(more, sp.New())
	}
	check("a vector after the arena grew", sp.Read(vs[3]), host[3], 0)
	for _, v := range more {
		sp.Free(v)
	}
}

func maxAbs(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(a[i]-b[i]))
	}
	return m
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
	const B = 2
	cond, _ := f.m.Conditional()
	pick := func(i, total int) bool { return i == 1 || i == 3 }
	cases := []struct {
		name, sched string
		steps       int
		eta, w      float64
		preview     func(int, int) bool
		tol         float64
	}{
		{"ddim", `{"prediction_type": "sample", "clip_sample": true}`, 3, 0.5, 0, pick, 1e-9},
		{"ddpm", `{"prediction_type": "epsilon", "clip_sample": true, "variance_type": "fixed_large"}`, 3, 0, 3, nil, 1e-9},
		{"euler", `{"prediction_type": "v_prediction", "clip_sample": false}`, 3, 0, 2, pick, 1e-9},
		{"euler_ancestral", `{"prediction_type": "epsilon", "clip_sample": false}`, 3, 0, 0, nil, 1e-9},
		{"heun", `{"prediction_type": "epsilon", "clip_sample": false}`, 3, 0, 1.5, pick, 1e-9},
		{"dpmpp_2m", `{"prediction_type": "epsilon", "clip_sample": false, "lower_order_final": false}`, 4, 0, 2.5, pick, 1e-9},
		{"dpmpp_3m", `{"prediction_type": "v_prediction", "clip_sample": false, "lower_order_final": false, "solver_type": "heun"}`, 4, 0, 0, nil, 1e-9},
		{"dpmpp_3m_diffusers", `{"prediction_type": "epsilon", "clip_sample": false, "lower_order_final": false}`, 4, 0, 0, pick, 1e-9},
		{"em", `{"prediction_type": "v_prediction", "clip_sample": true}`, 3, 0, 2, pick, 1e-9},
		{"pc", `{"sde": "ve", "prediction_type": "score", "sigma_max": 5}`, 3, 0, 1.5, nil, 1e-9},
		{"rk45", `{"sde": "ve", "prediction_type": "score", "sigma_max": 5}`, 0, 0, 0, func(i, _ int) bool { return i == 0 }, 1e-6},
		{"invert_ddim", `{"prediction_type": "epsilon", "clip_sample": false}`, 3, 0, 2, pick, 1e-9},
		// k-diffusion's samplers (Euler grid), DEIS and UniPC (DPM grid)
		{"dpm_2", `{"prediction_type": "v_prediction", "clip_sample": false}`, 3, 0, 2, pick, 1e-9},
		{"dpm_2_ancestral", `{"prediction_type": "epsilon", "clip_sample": false}`, 3, 0.5, 0, nil, 1e-9},
		{"dpmpp_2s_ancestral", `{"prediction_type": "epsilon", "clip_sample": false}`, 3, 0, 1.5, pick, 1e-9},
		{"dpmpp_sde", `{"sde": "ve", "prediction_type": "score", "sigma_max": 5}`, 3, 0, 0, pick, 1e-9},
		{"dpmpp_2m_sde", `{"prediction_type": "v_prediction", "clip_sample": false}`, 4, 0, 2, nil, 1e-9},
		{"dpmpp_3m_sde", `{"prediction_type": "epsilon", "clip_sample": false}`, 5, 0.7, 0, pick, 1e-9},
		{"lms", `{"prediction_type": "epsilon", "clip_sample": false}`, 5, 0, 2.5, pick, 1e-9},
		{"deis", `{"prediction_type": "v_prediction", "clip_sample": false}`, 4, 0, 0, pick, 1e-9},
		{"unipc", `{"prediction_type": "epsilon", "clip_sample": false}`, 5, 0, 2, pick, 1e-9},
		{"unipc_bh1", `{"sde": "ve", "prediction_type": "score", "sigma_max": 5}`, 4, 0, 0, nil, 1e-9},
		{"flow_euler", `{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3}`, 3, 0, 2, pick, 1e-9},
		{"flow_heun", `{"_class_name": "FlowMatchHeunDiscreteScheduler", "shift": 3}`, 3, 0, 0, nil, 1e-9},
		{"consistency", `{"_class_name": "CMStochasticIterativeScheduler"}`, 3, 0, 0, pick, 1e-9},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			s, err := schedule.Parse([]byte(c.sched))
			if err != nil {
				t.Fatal(err)
			}
			run := sampler.InvertDDIM
			if info, ok := sampler.Get(c.name); ok {
				run = info.Func
			}
			m := &sampler.Model{Net: hostNet{dn}, Schedule: s, Shape: []int{f.m.InShape()[0], 8, 8}, NullClass: -1}
			o := &sampler.Options{Steps: c.steps, Eta: c.eta, Seed: 11, FirstSample: 3, RTol: 3e-2, ATol: 3e-2}
			if cond {
				o.Class = []int{1, 4}
				if c.w != 0 {
					o.Guidance = c.w
					m.NullClass = 0
				}
			}
			noise := sampler.InitialNoise(o.Seed, o.FirstSample, B, m.Shape)
			var hostSteps []sampler.Step
			o.Progress = func(st sampler.Step) error {
				st.X, st.X0 = append([]float64(nil), st.X...), append([]float64(nil), st.X0...)
				hostSteps = append(hostSteps, st)
				return nil
			}
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
