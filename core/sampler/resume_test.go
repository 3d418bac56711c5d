package sampler

import (
	"context"
	"math"
	"testing"

	"github.com/diffuse-web/diffuse/core/tensor"
)

// tanhNet is a nonlinear toy network: out = 0.8·tanh(x) + 0.01·t.
type tanhNet struct{}

func (tanhNet) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	y := tensor.New(x.Shape...)
	n := len(x.Data) / x.Shape[0]
	for i, v := range x.Data {
		y.Data[i] = float32(0.8*math.Tanh(float64(v)) + 0.01*float64(t[i/n]))
	}
	return y, nil
}

// TestResume checks every resumable sampler: a run resumed from a
// checkpoint built from an undisturbed run's progress calls (X at the
// step's start, DPM-Solver++'s earlier X0 as history) ends where that run
// ended, with the same evaluation count and progress indices.
func TestResume(t *testing.T) {
	s := discreteSchedule(t, "epsilon", "linear")
	m := &Model{Net: tanhNet{}, Schedule: s, Shape: []int{2, 3}, NullClass: -1}
	noise := InitialNoise(7, 0, 2, m.Shape)
	n := 0
	for _, info := range List() {
		if info.Name == "rk45" {
			n++
			continue // not on a grid: TestResumeRK45
		}
		if !info.Resumable {
			if _, err := info.Func(context.Background(), m, noise, &Options{Steps: 4, Resume: &Checkpoint{}}); err == nil {
				t.Errorf("%s: accepted a checkpoint", info.Name)
			}
			continue
		}
		n++
		t.Run(info.Name, func(t *testing.T) {
			m := &Model{Net: m.Net, Schedule: scheduleFor(t, info.Name, s), Shape: m.Shape, NullClass: -1}
			var steps []Step
			o := &Options{Steps: 6, Eta: 0, Seed: 3, Progress: func(st Step) error {
				st.X = append([]float64(nil), st.X...)
				st.X0 = append([]float64(nil), st.X0...)
				steps = append(steps, st)
				return nil
			}}
			if info.Name == "ddim" {
				o.Eta = 0.7
			}
			want, err := info.Func(context.Background(), m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			// Grid step 3 starts at progress call 3, or 6 for Heun and
			// the predictor–corrector (two evaluations per step).
			at, step := 3, 3
			switch info.Name {
			case "heun", "pc", "flow_heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde":
				at = 6
			}
			c := &Checkpoint{Step: step, X: steps[at].X, NFE: steps[at].NFE - 1}
			for k := at - 1; k >= 0 && len(c.History) < 2; k-- {
				c.History = append(c.History, steps[k].X0)
			}
			switch info.Name {
			case "lms", "deis", "unipc", "unipc_bh1":
				// History is not data predictions (slopes, noise
				// predictions, UniPC's last state): the run's own.
				oc := *o
				oc.Progress = nil
				oc.Checkpoint = func(ck *Checkpoint) {
					if ck.Step == step {
						c = ck
					}
				}
				if _, err := info.Func(context.Background(), m, noise, &oc); err != nil {
					t.Fatal(err)
				}
			}
			var idx []int
			o.Resume = c
			o.Progress = func(st Step) error { idx = append(idx, st.Index); return nil }
			got, err := info.Func(context.Background(), m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			if got.NFE != want.NFE || len(idx) == 0 || idx[0] != at || len(idx) != len(steps)-at {
				t.Errorf("resumed: %d evaluations, progress %v; want %d evaluations, progress from %d to %d", got.NFE, idx, want.NFE, at, len(steps)-1)
			}
			// A checkpoint's X is x_t; samplers that step x_t/α (the
			// k-diffusion family) divide it again on resume, one rounding
			// that the later steps carry (1.5e-11 seen under js/wasm, whose
			// math functions are Go's, not amd64's assembly).
			var worst, scale float64 = 0, 1
			for i := range want.X {
				worst = math.Max(worst, math.Abs(got.X[i]-want.X[i]))
				scale = math.Max(scale, math.Abs(want.X[i]))
			}
			if worst > 1e-10*scale {
				t.Errorf("resumed result differs by %g (scale %g)", worst, scale)
			}
		})
	}
	if n < 11 {
		t.Errorf("%d resumable samplers, want at least 11", n)
	}
}

// TestResumeInvertDDIM checks InvertDDIM from a checkpoint made of an
// undisturbed inversion's progress call (X before inversion step 2).
func TestResumeInvertDDIM(t *testing.T) {
	s := discreteSchedule(t, "epsilon", "linear")
	m := &Model{Net: tanhNet{}, Schedule: s, Shape: []int{2, 3}, NullClass: -1}
	data := InitialNoise(9, 0, 2, m.Shape)
	var steps []Step
	o := &Options{Steps: 5, Progress: func(st Step) error {
		st.X = append([]float64(nil), st.X...)
		steps = append(steps, st)
		return nil
	}}
	want, err := InvertDDIM(context.Background(), m, data, o)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	o.Resume = &Checkpoint{Step: 2, X: steps[2].X, NFE: 2}
	o.Progress = func(st Step) error { idx = append(idx, st.Index); return nil }
	got, err := InvertDDIM(context.Background(), m, data, o)
	if err != nil {
		t.Fatal(err)
	}
	if got.NFE != want.NFE || len(idx) != 3 || idx[0] != 2 {
		t.Errorf("resumed: %d evaluations, progress %v; want %d, 2..4", got.NFE, idx, want.NFE)
	}
	for i := range want.X {
		if d := math.Abs(got.X[i] - want.X[i]); d > 1e-12 {
			t.Fatalf("resumed result differs by %g at %d", d, i)
		}
	}
}

// TestResumeRK45 resumes rk45 from its state after accepted step 3 of an
// undisturbed run (X, X0 from progress; U, H from rk45Accepted): the same
// result, evaluation count and progress indices; and from a start
// checkpoint (Step 0, H 0), the same run.
func TestResumeRK45(t *testing.T) {
	s := discreteSchedule(t, "epsilon", "linear")
	m := &Model{Net: tanhNet{}, Schedule: s, Shape: []int{2, 3}, NullClass: -1}
	noise := InitialNoise(7, 0, 2, m.Shape)
	var steps []Step
	var us, hs []float64
	rk45Accepted = func(u, h float64) { us, hs = append(us, u), append(hs, h) }
	defer func() { rk45Accepted = nil }()
	o := &Options{RTol: 1e-6, ATol: 1e-6, Progress: func(st Step) error {
		st.X = append([]float64(nil), st.X...)
		st.X0 = append([]float64(nil), st.X0...)
		steps = append(steps, st)
		return nil
	}}
	want, err := RK45(context.Background(), m, noise, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) < 6 || len(us) != len(steps) {
		t.Fatalf("%d accepted steps (%d hooks), want ≥ 6", len(steps), len(us))
	}
	rk45Accepted = nil
	const at = 3
	var idx []int
	o.Resume = &Checkpoint{Step: at + 1, X: steps[at].X, History: [][]float64{steps[at].X0}, NFE: steps[at].NFE, U: us[at], H: hs[at]}
	o.Progress = func(st Step) error { idx = append(idx, st.Index); return nil }
	got, err := RK45(context.Background(), m, noise, o)
	if err != nil {
		t.Fatal(err)
	}
	if got.NFE != want.NFE || len(idx) != len(steps)-at-1 || idx[0] != at+1 {
		t.Errorf("resumed: %d evaluations, progress %v; want %d, %d..%d", got.NFE, idx, want.NFE, at+1, len(steps)-1)
	}
	// Not bit-exact: the checkpoint holds X = α·y, and X/α may be an ulp
	// off y, which can flip the float32 rounding of a network input (6e-8
	// relative); from step 3 that leaves 2.9e-9 at the end (0 from steps
	// 1, 2, 4 and 5).
	for i := range want.X {
		if d := math.Abs(got.X[i] - want.X[i]); d > 1e-8 {
			t.Fatalf("resumed result differs by %g at %d", d, i)
		}
	}
	o.Resume = &Checkpoint{X: steps[at].X}
	if got, err = RK45(context.Background(), m, noise, o); err != nil || got.NFE != want.NFE || got.X[0] != want.X[0] {
		t.Errorf("from a start checkpoint: %v, %d evaluations (want %d)", err, got.NFE, want.NFE)
	}
}

// TestMultistepNeedsHistory checks Info.Multistep against what the samplers
// do: a checkpoint part-way with no History (as EditStart makes) is refused
// by exactly the resumable samplers that say Multistep.
func TestMultistepNeedsHistory(t *testing.T) {
	s := discreteSchedule(t, "epsilon", "linear")
	noise := InitialNoise(7, 0, 2, []int{2, 3})
	n := 0
	for _, info := range List() {
		if !info.Resumable || info.Name == "rk45" { // rk45: not on a grid, no part-way start
			continue
		}
		m := &Model{Net: tanhNet{}, Schedule: scheduleFor(t, info.Name, s), Shape: []int{2, 3}, NullClass: -1}
		c := &Checkpoint{Step: 2, X: noise, NFE: 2}
		_, err := info.Func(context.Background(), m, noise, &Options{Steps: 6, Resume: c})
		if (err != nil) != info.Multistep {
			t.Errorf("%s: Multistep %v, resuming part-way without history: %v", info.Name, info.Multistep, err)
		}
		if info.Multistep {
			n++
		}
	}
	if n == 0 {
		t.Error("no multistep sampler")
	}
}
