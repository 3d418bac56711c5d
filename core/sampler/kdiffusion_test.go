package sampler

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/diffuse-web/diffuse/core/schedule"
)

// The k-diffusion parity fixture: testdata/kdiffusion/in.json holds a
// grid (VE schedule, 8 Karras steps), starting points and a table of
// step noise; testdata/kdiffusion/out.json the samples k-diffusion's own
// sampling.py makes from them with the exact mixture denoiser (mixNet's,
// in float64), written by testdata/kdiffusion/run.py. KDIFF_GEN=1 rewrites
// in.json from this file's setup.

const kdiffSteps, kdiffBatch = 8, 3

type kdiffIn struct {
	Sigmas []float64 `json:"sigmas"` // the grid's levels, then 0
	X      []float64 `json:"x"`      // starting points, InitSigma·noise
	// Noise[step][sub] is the batch's noise for draw sub of step step.
	Noise [][][]float64 `json:"noise"`
	Shape []int         `json:"shape"`
}

// kdiffCases are the runs compared: the name out.json uses, and ours.
func kdiffCases() map[string]Func {
	with := func(f Func, o func(*Options)) Func {
		return func(ctx context.Context, m *Model, n []float64, op *Options) (*Result, error) {
			oo := *op
			o(&oo)
			return f(ctx, m, n, &oo)
		}
	}
	msde := func(order int, eta, d2 float64) Func {
		return func(ctx context.Context, m *Model, n []float64, o *Options) (*Result, error) {
			return dpmppMSDE(ctx, m, n, o, eta, order, d2)
		}
	}
	return map[string]Func{
		"euler_ancestral":          EulerAncestral,
		"dpm_2":                    DPM2,
		"dpm_2_ancestral":          DPM2Ancestral,
		"dpm_2_ancestral_eta0.5":   with(DPM2Ancestral, func(o *Options) { o.Eta = 0.5 }),
		"dpm_2_ancestral_snoise":   with(DPM2Ancestral, func(o *Options) { o.SNoise = 1.1 }),
		"dpmpp_2s_ancestral":       DPMPP2SAncestral,
		"dpmpp_2s_ancestral_eta0":  withEta(dpmpp2SAncestral, 0),
		"dpmpp_sde":                DPMPPSDE,
		"dpmpp_sde_eta0":           withEta(dpmppSDE, 0),
		"dpmpp_2m_sde":             DPMPP2MSDE,
		"dpmpp_2m_sde_eta0":        msde(2, 0, 2),
		"dpmpp_3m_sde_halfD2":      msde(3, 1, 1),
		"dpmpp_3m_sde_eta0_halfD2": msde(3, 0, 1),
		"lms":                      LMS,
		"lms_order2":               withOrder(LMS, 2),
	}
}

func kdiffSetup(t *testing.T) (*Model, schedule.Grid) {
	s := veSchedule(t, "epsilon")
	m := &Model{Net: &mixNet{s}, Schedule: s, Shape: []int{4}, NullClass: -1}
	g, err := s.EulerGrid(kdiffSteps, schedule.SigmasKarras)
	if err != nil {
		t.Fatal(err)
	}
	return m, g
}

// TestKDiffusionParity: our k-diffusion samplers reproduce k-diffusion's
// sampling.py on the same grid, starting points and noise (the SDE
// multistep ones at η = 0 and 1; 3M SDE with k-diffusion's halved second
// difference, the one difference of dpmpp_3m_sde by design).
func TestKDiffusionParity(t *testing.T) {
	m, g := kdiffSetup(t)
	if os.Getenv("KDIFF_GEN") != "" {
		in := kdiffIn{Shape: m.Shape}
		for _, st := range g.Steps {
			in.Sigmas = append(in.Sigmas, st.From.Level)
		}
		in.Sigmas = append(in.Sigmas, g.Steps[len(g.Steps)-1].To.Level)
		in.X = scaled(g.InitSigma, InitialNoise(21, 0, kdiffBatch, m.Shape))
		for i := 0; i < kdiffSteps; i++ {
			in.Noise = append(in.Noise, [][]float64{InitialNoise(uint64(100+2*i), 0, kdiffBatch, m.Shape),
				InitialNoise(uint64(101+2*i), 0, kdiffBatch, m.Shape)})
		}
		b, _ := json.Marshal(in)
		if err := os.WriteFile("testdata/kdiffusion/in.json", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var in kdiffIn
	var out map[string][]float64
	for name, v := range map[string]any{"in": &in, "out": &out} {
		b, err := os.ReadFile("testdata/kdiffusion/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	for i, st := range g.Steps {
		if st.From.Level != in.Sigmas[i] {
			t.Fatalf("grid level %d is %v, the fixture's %v", i, st.From.Level, in.Sigmas[i])
		}
	}
	n := len(in.X) / kdiffBatch
	noise := func(sample, step, sub int, o []float64) {
		copy(o, in.Noise[step][sub][sample*n:(sample+1)*n])
	}
	start := scaled(1/g.InitSigma, in.X)
	cases := kdiffCases()
	for name, f := range cases {
		want, ok := out[name]
		if !ok {
			t.Errorf("%s: not in out.json", name)
			continue
		}
		r, err := f(context.Background(), m, start, &Options{Steps: kdiffSteps, Sigmas: schedule.SigmasKarras, Noise: noise})
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range want {
			worst = math.Max(worst, math.Abs(r.X[i]-want[i]))
		}
		t.Logf("%s: max |ours - k-diffusion| %.3g", name, worst)
		// float32 network inputs and outputs (the host Space's) against
		// k-diffusion's float64
		if !(worst < 1e-5) {
			t.Errorf("%s: differs from k-diffusion by %.3g", name, worst)
		}
	}
	if len(out) != len(cases) {
		t.Errorf("out.json has %d runs, the test %d", len(out), len(cases))
	}
}
