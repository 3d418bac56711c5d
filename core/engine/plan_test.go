package engine

import (
	"context"
	"testing"

	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
)

// Every registry sampler's plan agrees with its run: as many evaluations as
// frames (and as the sampler's own Total), steps counted per grid step
// (Heun: 2 evaluations per step, 1 for the last; the predictor–corrector:
// CorrectorSteps+1), progress rising to 1, and the result at the clean point.
func TestPlanMatchesTheRun(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	for _, info := range sampler.List() {
		if info.Name == "ddim_invert" {
			continue
		}
		t.Run(info.Name, func(t *testing.T) {
			l := fakeLoadedFor(t, l, info)
			r := Request{Sampler: info.Name, Steps: 6, Seed: 3, Batch: 2}
			p, err := l.Plan(r)
			if err != nil {
				t.Fatal(err)
			}
			var frames []*Frame
			res, err := l.Run(context.Background(), &shrink{}, r, nil, func(f *Frame) error { frames = append(frames, f); return nil })
			if err != nil {
				t.Fatal(err)
			}
			last := frames[len(frames)-1]
			switch info.Name {
			case "rk45":
				if p.Steps != 0 || p.Evals != -1 || res.Steps != 0 {
					t.Errorf("adaptive: plan %+v, result steps %d; want steps 0, evals -1", p, res.Steps)
				}
				if last.Progress < 0.99 {
					t.Errorf("rk45 progress at its last accepted step %v, want about 1", last.Progress)
				}
			default:
				if p.Evals != len(frames) || p.Evals != last.Total || res.Steps != p.Steps {
					t.Errorf("plan %+v: %d frames, Total %d, result steps %d", p, len(frames), last.Total, res.Steps)
				}
				if p.Steps != 6 || last.Step != 5 || last.Steps != 6 || frames[0].Step != 0 {
					t.Errorf("steps: plan %d, first frame step %d, last %d of %d; want 6 steps, 0…5", p.Steps, frames[0].Step, last.Step, last.Steps)
				}
				if last.Progress != 1 {
					t.Errorf("progress at the last frame %v, want 1", last.Progress)
				}
			}
			want := map[string]int{"heun": 11, "pc": 12, "flow_heun": 11}[info.Name]
			if want != 0 && p.Evals != want {
				t.Errorf("%s: %d evaluations for 6 steps, want %d", info.Name, p.Evals, want)
			}
			for i := 1; i < len(frames); i++ {
				if frames[i].Step < frames[i-1].Step || frames[i].Progress < frames[i-1].Progress {
					t.Fatalf("frame %d goes back: step %d after %d, progress %v after %v", i, frames[i].Step, frames[i-1].Step, frames[i].Progress, frames[i-1].Progress)
				}
			}
			// (DDIM's 6-step trailing grid ends at timestep 0, level 0.01: see TestPlanEnd.)
			if p.End != res.End || (!res.End.Clean() && info.Name != "ddim") {
				t.Errorf("result at %+v (plan %+v), want the clean point", res.End, p.End)
			}
		})
	}
}

// DDIM steps from timestep t to t - N/steps, and to ᾱ = 1 only when that is
// below 0 (diffusers' prev_timestep): 4 steps (999, 749, 499, 249) end
// clean, 6 steps (…, 332, 166) end at timestep 0, level sqrt(β_0/(1-β_0)) ≈
// 0.01, as does any grid without set_alpha_to_one. The plan says which.
func TestPlanEnd(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	for _, c := range []struct {
		steps int
		one   bool
		clean bool
	}{{4, true, true}, {6, true, false}, {4, false, false}} {
		l.Schedule.Config.SetAlphaToOne = &c.one
		p, err := l.Plan(Request{Sampler: "ddim", Steps: c.steps})
		if err != nil {
			t.Fatal(err)
		}
		if c.clean && !p.End.Clean() || !c.clean && !(p.End.Level > 0.009 && p.End.Level < 0.011) {
			t.Errorf("%d steps, set_alpha_to_one %v: end %+v", c.steps, c.one, p.End)
		}
	}
}

// fakeLoadedFor is l, or for a sampler written for one model family
// (sampler.Info.Requires) the same fake model with a schedule of that
// family (a flow-matching or a consistency-model scheduler config).
func fakeLoadedFor(t *testing.T, l *Loaded, info sampler.Info) *Loaded {
	t.Helper()
	if info.Supports(l.Schedule) {
		return l
	}
	cfg := map[string]string{
		sampler.RequiresFlow:        `{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3}`,
		sampler.RequiresConsistency: `{"_class_name": "CMStochasticIterativeScheduler"}`,
	}[info.Requires]
	s, err := schedule.Parse([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	c := *l
	c.Schedule = s
	return &c
}

// TestSupportedSamplers: a model's Info.Samplers holds the general
// samplers and only its own family's.
func TestSupportedSamplers(t *testing.T) {
	for cfg, want := range map[string][2][]string{
		DefaultScheduler: {{"ddim", "euler", "rk45"}, {"flow_euler", "flow_heun", "consistency"}},
		`{"_class_name": "FlowMatchEulerDiscreteScheduler"}`: {{"flow_euler", "flow_heun", "dpmpp_2m", "rk45"}, {"consistency"}},
		`{"_class_name": "CMStochasticIterativeScheduler"}`:  {{"consistency", "euler"}, {"flow_euler", "flow_heun"}},
	} {
		s, err := schedule.Parse([]byte(cfg))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, n := range supported(s) {
			got[n] = true
		}
		for _, n := range want[0] {
			if !got[n] {
				t.Errorf("%s: %s missing from %v", cfg, n, supported(s))
			}
		}
		for _, n := range want[1] {
			if got[n] {
				t.Errorf("%s: %s offered", cfg, n)
			}
		}
	}
}
