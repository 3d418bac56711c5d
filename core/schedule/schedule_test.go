package schedule

import (
	"errors"
	"github.com/diffuse-web/diffuse/core/fixtures"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustNew(t *testing.T, c Config) *Schedule {
	t.Helper()
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func relClose(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Abs(b) }

// Reference values: for the diffusers schedules, diffusers' own float32
// tables (DDIMScheduler.__init__, printed by
// core/sampler/testdata/diffusers_cases.py); the float64 formulas give the
// well-known final ᾱ of DDPM (4.036e-5) and Stable Diffusion (0.00466),
// which float32 rounding of 1-β moves by up to 1.3e-5 (cosine, whose last
// β is 0.999). ᾱ_999 may differ from torch's by a few float32 ulps: torch's
// linspace rounds some betas the other way (see schedule.tables). The
// lucidrains schedule is float64 (Python, from the published formula).
func TestBetaSchedules(t *testing.T) {
	cases := []struct {
		name, sched      string
		start, end       float64
		lastAbar, tol    float64
		firstB, lastBeta float64
	}{
		{"ddpm linear", "linear", 0.0001, 0.02, 4.0358307160204276e-05, 1e-6, 9.999999747378752e-05, 0.019999999552965164},
		{"sd scaled_linear", "scaled_linear", 0.00085, 0.012, 0.0046600960195064545, 1e-6, 0.0008499999530613422, 0.011999999172985554},
		{"cosine", "squaredcos_cap_v2", 0, 0, 2.4287349909002387e-09, 1e-9, 4.128422369831242e-05, 0.9990000128746033},
		{"lucidrains sigmoid", "lucidrains_sigmoid", 0, 0, 3.0027919974932843e-07, 1e-9, 0.00030027919974917605, 0.999},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.BetaSchedule = c.sched
		if c.start > 0 {
			cfg.BetaStart, cfg.BetaEnd = c.start, c.end
		}
		s := mustNew(t, cfg)
		b, a := s.Betas(), s.AlphasCumprod()
		if !relClose(a[999], c.lastAbar, c.tol) || !relClose(b[0], c.firstB, 1e-12) || !relClose(b[999], c.lastBeta, 1e-12) {
			t.Errorf("%s: ᾱ_999 %v β_0 %v β_999 %v, want %v %v %v", c.name, a[999], b[0], b[999], c.lastAbar, c.firstB, c.lastBeta)
		}
	}
	// lucidrains: β_500 and β_998
	cfg := DefaultConfig()
	cfg.BetaSchedule = "lucidrains_sigmoid"
	b := mustNew(t, cfg).Betas()
	if !relClose(b[500], 0.003314364235860956, 1e-9) || !relClose(b[998], 0.5013569029180894, 1e-9) {
		t.Errorf("lucidrains sigmoid β_500 %v β_998 %v", b[500], b[998])
	}
}

func TestParseDiffusersConfigs(t *testing.T) {
	// google/ddpm-cifar10-32's scheduler config: no timestep_spacing,
	// clip_sample true, DDPMScheduler defaults otherwise.
	s, err := Parse([]byte(`{"_class_name": "DDPMScheduler", "_diffusers_version": "0.1.1", "beta_end": 0.02,
		"beta_schedule": "linear", "beta_start": 0.0001, "clip_sample": true, "num_train_timesteps": 1000,
		"trained_betas": null, "variance_type": "fixed_small"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Config.ClipSampleOn() || s.Config.Variance() != "fixed_small" || s.Kind != Discrete || s.Config.PredictionType != "epsilon" {
		t.Errorf("parsed %+v", s.Config)
	}
	// Python's -Infinity and unknown fields are accepted.
	s, err = Parse([]byte(`{"lambda_min_clipped": -Infinity, "variance_type": null, "some_future_field": [1, "x"], "use_karras_sigmas": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(float64(s.Config.LambdaMinClipped), -1) || !s.Config.UseKarrasSigmas {
		t.Errorf("parsed %+v", s.Config)
	}
	// A string containing Infinity is left alone.
	if _, err := Parse([]byte(`{"_class_name": "Infinity NaN", "beta_schedule": "linear"}`)); err != nil {
		t.Error(err)
	}
	// Empty metadata means the default schedule.
	if s, err := Parse(nil); err != nil || s.Kind != Discrete || len(s.AlphasCumprod()) != 1000 {
		t.Errorf("Parse(nil): %v", err)
	}
	// Every fixture config parses.
	dir := fixtures.Dir()
	files, _ := filepath.Glob(filepath.Join(dir, "schedulers", "*", "scheduler_config.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestValidationNamesTheField(t *testing.T) {
	cases := map[string]string{
		`{"beta_schedule": "quadratic"}`:                              "beta_schedule",
		`{"prediction_type": "flow"}`:                                 "prediction_type",
		`{"num_train_timesteps": 0}`:                                  "num_train_timesteps",
		`{"trained_betas": [0.1, 0.2]}`:                               "trained_betas",
		`{"timestep_spacing": "uniform"}`:                             "timestep_spacing",
		`{"thresholding": true}`:                                      "thresholding",
		`{"rescale_betas_zero_snr": true}`:                            "rescale_betas_zero_snr",
		`{"variance_type": "learned_range"}`:                          "variance_type",
		`{"clip_sample_range": -1}`:                                   "clip_sample_range",
		`{"beta_start": 0}`:                                           "beta_start",
		`{"sde": "subvp"}`:                                            "sde",
		`{"sde": "ve", "sigma_min": 5, "sigma_max": 1}`:               "sigma_max",
		`{"sde": "ve", "prediction_type": "v_prediction"}`:            "prediction_type",
		`{"sde": "vp", "beta_min": 1, "beta_max": 0.5}`:               "beta_max",
		`{"sde": "vp", "time_input": "timestep"}`:                     "time_input",
		`{"algorithm_type": "sde-dpmsolver++"}`:                       "algorithm_type",
		`{"use_karras_sigmas": true, "use_exponential_sigmas": true}`: "use_exponential_sigmas",
		`{"lambda_min_clipped": -5.1}`:                                "lambda_min_clipped",
		`{"final_sigmas_type": "one"}`:                                "final_sigmas_type",
		`{"interpolation_type": "log_linear"}`:                        "interpolation_type",
		`{"steps_offset": -1}`:                                        "steps_offset",
	}
	for js, field := range cases {
		_, err := Parse([]byte(js))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %v, want one naming %q", js, err, field)
		}
	}
	if _, err := Parse([]byte(`{"beta_start": "x"}`)); err == nil || !strings.Contains(err.Error(), "beta_start") {
		t.Errorf("bad JSON type: %v", err)
	}
}

func ints(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func eqInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Timestep lists of diffusers' set_timesteps for the three spacings
// (values worked out from the numpy expressions by hand).
func TestTimesteps(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	from := func(g Grid) []int {
		var ts []int
		for _, st := range g.Steps {
			ts = append(ts, int(st.From.T))
		}
		return ts
	}
	g, err := s.DDIMGrid(10, "")
	if err != nil {
		t.Fatal(err)
	}
	// An empty timestep_spacing is trailing for DDIM (DDIMDefaultSpacing).
	if got := from(g); !eqInts(got, []int{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}) {
		t.Errorf("DDIM default 10: %v", got)
	}
	c := DefaultConfig()
	c.TimestepSpacing = "leading"
	g, _ = mustNew(t, c).DDIMGrid(10, "")
	if got := from(g); !eqInts(got, []int{900, 800, 700, 600, 500, 400, 300, 200, 100, 0}) {
		t.Errorf("DDIM leading 10: %v", got)
	}
	c.TimestepSpacing = "trailing"
	g, _ = mustNew(t, c).DDIMGrid(3, "")
	if got := from(g); !eqInts(got, []int{999, 666, 332}) {
		t.Errorf("DDIM trailing 3: %v", got)
	}
	if g.Steps[0].To.T != 666 || !g.Steps[2].To.Clean() {
		t.Errorf("DDIM trailing 3 targets: %+v", g.Steps)
	}
	c.TimestepSpacing = "linspace"
	g, _ = mustNew(t, c).DDIMGrid(10, "")
	if got := from(g); !eqInts(got, []int{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}) {
		t.Errorf("DDIM linspace 10: %v", got)
	}
	// DDIM steps to t - N/steps whatever the spacing (diffusers' rule).
	if g.Steps[0].To.T != 899 {
		t.Errorf("DDIM linspace: first step goes to %v, want 899", g.Steps[0].To.T)
	}
	c = DefaultConfig()
	c.StepsOffset = 1
	f := false
	c.SetAlphaToOne = &f
	g, _ = mustNew(t, c).DDIMGrid(4, "")
	if got := from(g); !eqInts(got, []int{751, 501, 251, 1}) {
		t.Errorf("DDIM leading 4 offset 1: %v", got)
	}
	if last := g.Steps[3].To; last.T != 0 || last.Clean() {
		t.Errorf("set_alpha_to_one false: last target %+v, want timestep 0", last)
	}
	// DPM-Solver linspace: steps+1 points, last dropped; 499.5 rounds to 500.
	g, _ = s.DPMGrid(20, "")
	want := []int{999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50}
	if got := from(g); !eqInts(got, want) {
		t.Errorf("DPM linspace 20: %v", got)
	}
	// DPM leading: ratio N/(steps+1).
	c = DefaultConfig()
	c.TimestepSpacing = "leading"
	g, _ = mustNew(t, c).DPMGrid(4, "")
	if got := from(g); !eqInts(got, []int{800, 600, 400, 200}) {
		t.Errorf("DPM leading 4: %v", got)
	}
	// Euler linspace: float timesteps, levels interpolated, init sigma σ_max.
	g, _ = s.EulerGrid(4, "")
	if g.Steps[1].From.T != float64(float32(666)) || g.Steps[3].From.T != 0 || !g.Steps[3].To.Clean() {
		t.Errorf("Euler linspace 4: %+v", g.Steps)
	}
	if g.InitSigma != g.Steps[0].From.Level {
		t.Errorf("Euler init sigma %v, want σ_max %v", g.InitSigma, g.Steps[0].From.Level)
	}
	// 1001 steps of a 1000-step schedule is an error; so is an offset that
	// pushes a timestep past N-1.
	if _, err := s.DDIMGrid(1001, ""); err == nil {
		t.Error("1001 steps: no error")
	}
	c = DefaultConfig()
	c.StepsOffset = 150
	if _, err := mustNew(t, c).DDIMGrid(10, ""); err == nil {
		t.Error("steps_offset past the end: no error")
	}
}

func TestKarrasAndExponential(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	for _, sp := range []string{SigmasKarras, SigmasExponential} {
		g, err := s.EulerGrid(10, sp)
		if err != nil {
			t.Fatal(err)
		}
		lv := []float64{}
		for _, st := range g.Steps {
			lv = append(lv, st.From.Level)
		}
		if !relClose(lv[0], s.LevelAt(999), 1e-6) || !relClose(lv[9], s.LevelAt(0), 1e-6) {
			t.Errorf("%s: ends %v %v", sp, lv[0], lv[9])
		}
		for i := 1; i < len(lv); i++ {
			if !(lv[i] < lv[i-1]) {
				t.Errorf("%s: levels not decreasing: %v", sp, lv)
			}
		}
		// timesteps follow the levels through _sigma_to_t
		if math.Abs(g.Steps[0].From.T-999) > 1e-3 || math.Abs(g.Steps[9].From.T) > 1e-3 {
			t.Errorf("%s: timesteps %v .. %v", sp, g.Steps[0].From.T, g.Steps[9].From.T)
		}
	}
	// Karras: σ_i^(1/7) is linear in i.
	g, _ := s.EulerGrid(5, SigmasKarras)
	r := func(i int) float64 { return math.Pow(float64(float32(g.Steps[i].From.Level)), 1.0/7) }
	if d1, d2 := r(0)-r(1), r(3)-r(4); !relClose(d1, d2, 1e-5) {
		t.Errorf("Karras spacing not linear in σ^(1/7): %v vs %v", d1, d2)
	}
	if _, err := s.EulerGrid(5, "cosine"); err == nil {
		t.Error("unknown sigma spacing: no error")
	}
}

func TestContinuousSchedules(t *testing.T) {
	vp := DefaultConfig()
	vp.SDE = "vp"
	ve := DefaultConfig()
	ve.SDE = "ve"
	for _, c := range []Config{vp, ve} {
		s := mustNew(t, c)
		for _, tt := range []float64{1e-5, 1e-3, 0.1, 0.5, 1} {
			l := s.LevelAt(tt)
			if back := s.TimeAt(l); !relClose(back, tt, 1e-9) {
				t.Errorf("%s: TimeAt(LevelAt(%v)) = %v", s.Kind, tt, back)
			}
			p := s.PointAt(tt)
			if !relClose(p.Sigma/p.Alpha, l, 1e-12) {
				t.Errorf("%s: point %+v, level %v", s.Kind, p, l)
			}
		}
		g, err := s.DDIMGrid(5, "")
		if err != nil {
			t.Fatal(err)
		}
		if g.Steps[0].From.T != 1 || g.Steps[4].From.T != s.EndTime() || !g.Steps[4].To.Clean() {
			t.Errorf("%s grid: %+v", s.Kind, g.Steps)
		}
	}
	s := mustNew(t, vp)
	// VP-SDE (Song et al. 2021, eq. 29): α(1) = exp(-(20-0.1)/4 - 0.1/2)
	if a := s.PointAt(1).Alpha; !relClose(a, math.Exp(-19.9/4-0.05), 1e-12) {
		t.Errorf("VP α(1) = %v", a)
	}
	if p := s.PointAt(0.3); !relClose(p.Alpha*p.Alpha+p.Sigma*p.Sigma, 1, 1e-12) {
		t.Error("VP: α² + σ² != 1")
	}
	if got := s.NetTime(s.PointAt(0.5)); got != float32(0.5*999) {
		t.Errorf("VP default time input %v, want t·999", got)
	}
	sv := mustNew(t, ve)
	if p := sv.PointAt(1); p.Alpha != 1 || !relClose(p.Sigma, 50, 1e-12) || sv.NetTime(p) != 50 {
		t.Errorf("VE point %+v net time %v", p, sv.NetTime(p))
	}
	if e, err := sv.WithEndTime(0.01); err != nil || e.EndTime() != 0.01 || sv.EndTime() != 1e-5 {
		t.Errorf("WithEndTime: %v", err)
	}
}

func TestDiscreteLevels(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	for _, i := range []int{0, 1, 500, 998, 999} {
		// Not exact: as in diffusers' _sigma_to_t, the log-level table is
		// float32 and the level's own log float64 (a float32 ulp of log σ
		// over the log step between timesteps: up to 2e-5).
		if got := s.TimeAt(s.LevelAt(float64(i))); math.Abs(got-float64(i)) > 1e-4 {
			t.Errorf("TimeAt(level %d) = %v", i, got)
		}
		p := s.PointAt(float64(i))
		a := s.AlphasCumprod()[i]
		if p.Alpha != math.Sqrt(a) || p.Sigma != math.Sqrt(1-a) {
			t.Errorf("point at %d: %+v", i, p)
		}
	}
	// linear interpolation of levels between timesteps (diffusers' np.interp)
	if got, want := s.LevelAt(10.25), 0.75*s.LevelAt(10)+0.25*s.LevelAt(11); !relClose(got, want, 1e-14) {
		t.Errorf("LevelAt(10.25) = %v, want %v", got, want)
	}
	if !s.PointAt(-1).Clean() {
		t.Error("timestep -1 is not the clean point")
	}
}

// TestDDIMDefaultSpacingStartsAtTheTop: with timestep_spacing empty, DDIM and
// DDPM start every run, however short, at the last training timestep (Lin et
// al. 2023, section 3.3); a config that names "leading" keeps diffusers'
// grid, whose one step sits at t = 0; steps_offset implies leading.
func TestDDIMDefaultSpacingStartsAtTheTop(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	if sp := s.DDIMDefaultSpacing(); sp != "trailing" {
		t.Errorf("default spacing %q, want trailing", sp)
	}
	for _, steps := range []int{1, 2, 3, 5, 7, 10, 50, 1000} {
		for name, grid := range map[string]func(int, string) (Grid, error){"DDIM": s.DDIMGrid, "DDPM": s.DDPMGrid} {
			g, err := grid(steps, "")
			if err != nil {
				t.Fatal(err)
			}
			// The last step goes to the clean point, or (DDIM, as diffusers'
			// trailing grid when N/steps rounds up: 7 steps end 142 → 0)
			// to timestep 0.
			last := g.Steps[len(g.Steps)-1].To
			if len(g.Steps) != steps || g.Steps[0].From.T != 999 || !(last.Clean() || name == "DDIM" && last.T == 0) {
				t.Errorf("%s %d steps: %d steps from t=%v, last to %+v; want %d from 999 to clean",
					name, steps, len(g.Steps), g.Steps[0].From.T, last, steps)
			}
		}
	}
	g, _ := s.DDIMGrid(1, "")
	if g.Steps[0].From.T != 999 || !g.Steps[0].To.Clean() {
		t.Errorf("DDIM 1 step: %+v, want 999 → clean", g.Steps[0])
	}
	c := DefaultConfig()
	c.TimestepSpacing = "leading"
	g, _ = mustNew(t, c).DDIMGrid(1, "")
	if g.Steps[0].From.T != 0 {
		t.Errorf("DDIM leading 1 step starts at t=%v, want diffusers' 0", g.Steps[0].From.T)
	}
	// An empty spacing is trailing with diffusers' quirks: 7 steps of 1000
	// step by ⌊1000/7⌋ = 142, so the last goes 142 → 0, not to the clean point.
	g, _ = s.DDIMGrid(7, "")
	var ts []int
	for _, st := range g.Steps {
		ts = append(ts, int(st.From.T))
	}
	if !eqInts(ts, []int{999, 856, 713, 570, 428, 285, 142}) || g.Steps[0].To.T != 857 || g.Steps[6].To.T != 0 || g.Steps[6].To.Clean() {
		t.Errorf("DDIM default 7 steps: %v, first to %v, last to %+v", ts, g.Steps[0].To.T, g.Steps[6].To)
	}
	c = DefaultConfig()
	c.StepsOffset = 1
	if sp := mustNew(t, c).DDIMDefaultSpacing(); sp != "leading" {
		t.Errorf("steps_offset 1: default spacing %q, want leading", sp)
	}
	// Euler and DPM-Solver keep diffusers' default (linspace), which starts
	// at N-1 from two steps on; Euler's one step, t = 0 under linspace, is
	// trailing's t = N-1 when the config names no spacing.
	for _, steps := range []int{1, 2, 3} {
		for name, grid := range map[string]func(int, string) (Grid, error){"Euler": s.EulerGrid, "DPM": s.DPMGrid} {
			g, err := grid(steps, "")
			if err != nil {
				t.Fatal(err)
			}
			if g.Steps[0].From.T != 999 || !g.Steps[steps-1].To.Clean() {
				t.Errorf("%s %d steps: from t=%v to %+v", name, steps, g.Steps[0].From.T, g.Steps[steps-1].To)
			}
		}
	}
	g, _ = s.EulerGrid(1, "")
	if g.InitSigma != g.Steps[0].From.Level {
		t.Errorf("Euler 1 step: init sigma %v, want σ_max %v", g.InitSigma, g.Steps[0].From.Level)
	}
	c = DefaultConfig()
	c.TimestepSpacing = "linspace"
	if g, _ := mustNew(t, c).EulerGrid(1, ""); g.Steps[0].From.T != 0 {
		t.Errorf("Euler linspace 1 step starts at t=%v, want diffusers' 0", g.Steps[0].From.T)
	}
}

// TestEulerKarrasTimestepsMatchDiffusers: EulerDiscreteScheduler
// (scaled_linear, use_karras_sigmas, 25 steps) maps its Karras sigmas to
// timesteps by _sigma_to_t over diffusers' float32 log-sigma table. Its
// timesteps, printed by core/sampler/testdata/diffusers_cases.py (diffusers'
// own scheduler source), hold the issue #19 values 8.74435 and 2.40118 at
// calls 22 and 23; a float64 ᾱ table gave 8.74340 and 2.40056.
func TestEulerKarrasTimestepsMatchDiffusers(t *testing.T) {
	want := []float64{999.0, 978.40625, 956.3186645507812, 932.5187377929688, 906.738525390625,
		878.6451416015625, 847.822021484375, 813.7426147460938, 775.74169921875, 732.9865112304688,
		684.4707641601562, 629.08740234375, 565.8893432617188, 494.70196533203125, 417.0621032714844,
		336.8276672363281, 259.3745422363281, 189.56402587890625, 130.3094940185547, 82.6976547241211,
		46.876380920410156, 22.61182975769043, 8.744349479675293, 2.4011826515197754, 0.0}
	cfg := DefaultConfig()
	cfg.BetaSchedule = "scaled_linear"
	cfg.UseKarrasSigmas = true
	g, err := mustNew(t, cfg).EulerGrid(25, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Steps) != len(want) {
		t.Fatalf("%d steps, want %d", len(g.Steps), len(want))
	}
	for i, w := range want {
		// 5e-7 relative: our σ_max (the level at t = 999) is 4e-7 above
		// torch's, whose float32 linspace rounds some betas the other way
		// (see tables), and Karras levels scale with it; that moves t by
		// up to 2.7e-7 relative (at t = 337). The float64 ᾱ table was off
		// by 1.1e-4 relative at t = 8.7.
		if got := g.Steps[i].From.T; math.Abs(got-w) > 5e-7*math.Max(1, w) {
			t.Errorf("call %d at timestep %.9g, diffusers %.9g", i, got, w)
		}
	}
}
