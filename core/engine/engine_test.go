package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/fixtures"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// shrink is a stand-in network: ε̂ = 0.5·x, whatever t and class.
type shrink struct{ calls int }

func (s *shrink) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	s.calls++
	y := tensor.New(x.Shape...)
	for i, v := range x.Data {
		y.Data[i] = 0.5 * v
	}
	return y, nil
}

func fakeLoaded(t *testing.T, conditional bool, null int) *Loaded {
	t.Helper()
	s, err := schedule.Parse([]byte(DefaultScheduler))
	if err != nil {
		t.Fatal(err)
	}
	info := Info{Shape: []int{1, 4, 4}, NullClass: null}
	if conditional {
		info.Conditional, info.Classes, info.Guidance = true, 10, null >= 0
	}
	return &Loaded{Model: &model.Model{NullClass: null}, Schedule: s, Info: info}
}

func TestRunCallsBackEveryStep(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	net := &shrink{}
	var frames []*Frame
	res, err := l.Run(context.Background(), net, Request{Sampler: "ddim", Steps: 5, Seed: 7, Batch: 3},
		func(i, _ int) bool { return i%2 == 0 },
		func(f *Frame) error { frames = append(frames, f); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 5 || net.calls != 5 || res.NFE != 5 {
		t.Fatalf("frames %d, calls %d, NFE %d; want 5 each", len(frames), net.calls, res.NFE)
	}
	for i, f := range frames {
		if f.Index != i || f.Total != 5 {
			t.Errorf("frame %d: index %d total %d", i, f.Index, f.Total)
		}
		if (f.X != nil) != (i%2 == 0) || len(f.X) != len(f.X0) {
			t.Errorf("frame %d: images present %v, want %v", i, f.X != nil, i%2 == 0)
		}
		if f.X != nil && len(f.X) != 3*16 {
			t.Errorf("frame %d: %d values, want 48", i, len(f.X))
		}
		if i > 0 && !(f.Point.Level < frames[i-1].Point.Level) {
			t.Errorf("noise level does not decrease at frame %d", i)
		}
	}
	if len(res.X) != 48 || res.Shape[0] != 3 {
		t.Fatalf("result shape %v, %d values", res.Shape, len(res.X))
	}
}

func TestSameSeedSameSample(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	run := func(seed uint64, batch int) []float32 {
		res, err := l.Run(context.Background(), &shrink{}, Request{Sampler: "ddim", Steps: 4, Eta: 1, Seed: seed, Batch: batch}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.X
	}
	a, b, c := run(1, 2), run(1, 2), run(2, 2)
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same seed, different samples")
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatal("different seeds, same samples")
	}
	// Sample 0 of a batch of 2 is sample 0 of a batch of 1.
	one := run(1, 1)
	for i := range one {
		if one[i] != a[i] {
			t.Fatal("sample 0 depends on the batch size")
		}
	}
}

func TestCancelStopsTheRun(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := l.Run(ctx, &shrink{}, Request{Sampler: "ddim", Steps: 50}, nil, func(f *Frame) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Fatalf("err %v after %d frames; want context.Canceled after 3", err, n)
	}
}

func TestBadRequestsNameTheField(t *testing.T) {
	cond := fakeLoaded(t, true, 9)
	uncond := fakeLoaded(t, false, -1)
	noNull := fakeLoaded(t, true, -1)
	c := func(v int) *int { return &v }
	cases := []struct {
		l     *Loaded
		r     Request
		field string
	}{
		{uncond, Request{Sampler: "nope"}, "sampler"},
		{uncond, Request{Sampler: "ddim", Steps: 5000}, "steps"},
		{uncond, Request{Sampler: "ddim", Batch: 5000}, "batch"},
		{uncond, Request{Sampler: "ddim", Eta: 2}, "eta"},
		{uncond, Request{Sampler: "euler", Eta: 0.5}, "eta"},
		{uncond, Request{Sampler: "ddim", Class: c(1)}, "class"},
		{uncond, Request{Sampler: "ddim", Sigmas: "weird"}, "sigmas"},
		{uncond, Request{Sampler: "ddim", Params: map[string]float64{"rtol": 1e-3}}, "rtol"},
		{uncond, Request{Sampler: "rk45", Params: map[string]float64{"rtol": math.Inf(1)}}, "rtol"},
		{cond, Request{Sampler: "ddim", Class: c(10)}, "class"},
		{cond, Request{Sampler: "ddim", Guidance: 3}, "guidance"},
		{noNull, Request{Sampler: "ddim", Class: c(1), Guidance: 3}, "guidance"},
		{noNull, Request{Sampler: "ddim"}, "class"},
	}
	for _, tc := range cases {
		_, _, err := tc.l.Options(tc.r)
		var re *RequestError
		if !errors.As(err, &re) || re.Field != tc.field {
			t.Errorf("%+v: got %v, want a RequestError on %s", tc.r, err, tc.field)
		}
	}
	if _, o, err := cond.Options(Request{Sampler: "ddim", Class: c(3), Guidance: 2.5, Steps: 10}); err != nil || o.Guidance != 2.5 || o.Class[0] != 3 {
		t.Errorf("good guided request: %v %+v", err, o)
	}
	if _, o, err := uncond.Options(Request{Sampler: "rk45", Steps: 10, Params: map[string]float64{"rtol": 1e-3}}); err != nil || o.Steps != 0 || o.RTol != 1e-3 {
		t.Errorf("rk45 request: %v %+v", err, o)
	}
}

// TestSamplersAreTheRegistry checks that what the page and
// <diffusion-sampler> build their pickers from (the JSON the worker sends)
// is sampler.List(): every sampler, its display name, default steps and
// each parameter's declaration, only the steps range capped at the page's.
func TestSamplersAreTheRegistry(t *testing.T) {
	data, err := json.Marshal(Samplers())
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	reg := sampler.List()
	if len(got) != len(reg) {
		t.Fatalf("%d samplers exported, the registry has %d", len(got), len(reg))
	}
	for k, i := range reg {
		g := got[k]
		if g["name"] != i.Name || g["display"] != i.Display || g["summary"] != i.Summary || g["defaultSteps"] != float64(i.DefaultSteps) {
			t.Errorf("exported %v, registry %s %q %q %d", g, i.Name, i.Display, i.Summary, i.DefaultSteps)
		}
		if i.Display == "" {
			t.Errorf("%s has no display name", i.Name)
		}
		ps, _ := g["params"].([]any)
		if len(ps) != len(i.Params) {
			t.Fatalf("%s: %d params exported, %d registered", i.Name, len(ps), len(i.Params))
		}
		for n, p := range i.Params {
			e := ps[n].(map[string]any)
			max := p.Max
			if p.Name == "steps" {
				max = math.Min(max, PageCaps.Steps)
			}
			sug, _ := e["suggested"].(float64)
			if e["name"] != p.Name || e["label"] != p.Label || e["kind"] != p.Kind || e["default"] != p.Default ||
				e["min"] != p.Min || e["max"] != max || sug != p.Suggested {
				t.Errorf("%s: exported %v, registered %+v", i.Name, e, p)
			}
			switch p.Kind {
			case sampler.KindInt, sampler.KindFloat:
				if !(p.Min <= p.Max) || (p.Default != 0 && (p.Default < p.Min || p.Default > p.Max)) ||
					(p.Suggested != 0 && (p.Suggested < p.Min || p.Suggested > p.Max)) {
					t.Errorf("%s.%s: default %g outside %g…%g", i.Name, p.Name, p.Default, p.Min, p.Max)
				}
			case sampler.KindChoice:
				if len(p.Choices) == 0 {
					t.Errorf("%s.%s: a choice without choices", i.Name, p.Name)
				}
			default:
				t.Errorf("%s.%s: kind %q", i.Name, p.Name, p.Kind)
			}
			if p.Label == "" || p.Doc == "" {
				t.Errorf("%s.%s: no label or doc", i.Name, p.Name)
			}
		}
	}
	// The registry's sampler the element lacked (issue 19).
	if _, ok := sampler.Get("dpmpp_3m_diffusers"); !ok {
		t.Error("no dpmpp_3m_diffusers in the registry")
	}
}

func TestLoadRejectsDamagedFiles(t *testing.T) {
	// A valid safetensors file that is not one of our model files.
	dir := t.TempDir()
	p := filepath.Join(dir, "x.safetensors")
	if err := safetensors.WriteFile(p, []safetensors.Entry{{Name: "w", Shape: []int{4}, Data: []float32{1, 2, 3, 4}, DType: "F16"}}, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])

	var se *SizeError
	if _, err := Load(data[:len(data)-3], good, int64(len(data))); !errors.As(err, &se) {
		t.Errorf("truncated: got %v, want SizeError", err)
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 1
	var ce *ChecksumError
	if _, err := Load(bad, good, int64(len(data))); !errors.As(err, &ce) {
		t.Errorf("flipped bit: got %v, want ChecksumError", err)
	}
	var fe *FormatError
	if _, err := Load(data, good, int64(len(data))); !errors.As(err, &fe) {
		t.Errorf("not a model: got %v, want FormatError", err)
	}
	if _, err := Load(data[:len(data)-3], "", -1); !errors.As(err, &fe) {
		t.Errorf("truncated, unchecked: got %v, want FormatError", err)
	}
	for _, err := range []error{se, ce, fe} {
		if !IsUserError(err) {
			t.Errorf("%v is not a user error", err)
		}
	}
}

// TestLoadFixtureModel loads a converted copy of the diffusers mnist_cond
// fixture (no schedule metadata: the default schedule must apply).
func TestLoadFixtureModel(t *testing.T) {
	dir := fixtures.Dir()
	src := filepath.Join(dir, "diffusers", "mnist_cond")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("fixtures not found at %s (set FIXTURES_DIR)", dir)
	}
	m, err := model.FromDiffusersDir(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := m.Save(p, "F16"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	l, err := Load(data, "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	in := l.Info
	if !in.DefaultSchedule || !in.Conditional || in.Classes != 10 || in.Guidance || len(in.Shape) != 3 || in.Shape[1] != 28 {
		t.Errorf("info %+v", in)
	}
	if in.Prediction != "epsilon" || in.Schedule != "discrete linear β 0.0001…0.02, 1000 steps" {
		t.Errorf("schedule %q prediction %q", in.Schedule, in.Prediction)
	}
}

func TestSeedInterpolationEndsAtBothSeeds(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	run := func(r Request) []float32 {
		res, err := l.Run(context.Background(), &shrink{}, r, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.X
	}
	to := uint64(9)
	morph := run(Request{Sampler: "ddim", Steps: 3, Seed: 4, SeedTo: &to, Batch: 5})
	a := run(Request{Sampler: "ddim", Steps: 3, Seed: 4})
	z := run(Request{Sampler: "ddim", Steps: 3, Seed: 9})
	n := len(a)
	if d := maxDiff(morph[:n], a); d > 1e-6 {
		t.Errorf("first frame differs from seed 4's sample by %g", d)
	}
	if d := maxDiff(morph[4*n:], z); d > 1e-6 {
		t.Errorf("last frame differs from seed 9's sample by %g", d)
	}
	if d := maxDiff(morph[2*n:3*n], a); d < 1e-3 {
		t.Error("the middle frame is one of the ends")
	}
}

func maxDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestFieldPredictsCleanData(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	p := l.Schedule.PointAt(500)
	xs := make([]float32, 2*16)
	for i := range xs {
		xs[i] = float32(i%5) - 2
	}
	x0, err := l.Field(&shrink{}, p, xs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range xs { // ε̂ = x/2, so x̂0 = (x - σx/2)/α
		want := (float64(x) - p.Sigma*float64(x)/2) / p.Alpha
		if math.Abs(float64(x0[i])-want) > 1e-5 {
			t.Fatalf("x0[%d] = %g, want %g", i, x0[i], want)
		}
	}
	if _, err := l.Field(&shrink{}, p, xs[:5], nil); err == nil {
		t.Error("a partial sample was accepted")
	}
}

// resident is a stand-in ResidentSampler: it runs DDIM whole through the
// core sampler, withholding X and X0 where o.Preview says no, as the
// WebGPU backend does.
type resident struct {
	shrink
	runs int
}

func (r *resident) Supports(name string) bool { return name == "ddim" }

func (r *resident) Sample(ctx context.Context, name string, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	if o.Resume != nil { // as wasm/webgpu's Sample
		return nil, errors.New("resident: does not resume checkpoints")
	}
	r.runs++
	opt := *o
	if o.Progress != nil {
		opt.Progress = func(s sampler.Step) error {
			if o.Preview != nil && !o.Preview(s.Index, s.Total) {
				s.X, s.X0 = nil, nil
			}
			return o.Progress(s)
		}
	}
	return sampler.Run(ctx, name, m, noise, &opt)
}

// TestRunUsesResidentSampler checks that Run hands a supported sampler to a
// ResidentSampler whole, asks wantImages once per frame to pick its
// previews, passes frames without images as such, and gets the per-call
// path's sample; an unsupported sampler still goes call by call.
func TestRunUsesResidentSampler(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	req := Request{Sampler: "ddim", Steps: 5, Seed: 7, Batch: 2}
	want, err := l.Run(context.Background(), &shrink{}, req, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	net := &resident{}
	asked := map[int]int{}
	var frames []*Frame
	got, err := l.Run(context.Background(), net, req,
		func(i, total int) bool { asked[i]++; return i == 1 || i == total-1 },
		func(f *Frame) error { frames = append(frames, f); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if net.runs != 1 || len(frames) != 5 {
		t.Fatalf("%d resident runs and %d frames, want 1 and 5", net.runs, len(frames))
	}
	for i, f := range frames {
		if asked[i] != 1 {
			t.Errorf("wantImages(%d) asked %d times, want once", i, asked[i])
		}
		if wantX := i == 1 || i == 4; (f.X != nil) != wantX || (f.X0 != nil) != wantX {
			t.Errorf("frame %d: images %v, want %v", i, f.X != nil, wantX)
		}
	}
	for i := range want.X {
		if got.X[i] != want.X[i] {
			t.Fatalf("resident sample differs at %d: %v vs %v", i, got.X[i], want.X[i])
		}
	}
	req.Sampler = "euler"
	if _, err := l.Run(context.Background(), net, req, nil, nil); err != nil || net.runs != 1 || net.calls == 0 {
		t.Errorf("unsupported sampler: err %v, %d resident runs, %d network calls", err, net.runs, net.calls)
	}
	// SDEdit starts from a checkpoint, which a resident backend does not
	// take (the WebGPU one refuses it): it runs call by call, with the
	// plain path's result.
	edit := Request{Sampler: "ddim", Steps: 5, Seed: 7, Batch: 2, Mode: ModeSDEdit, Strength: 0.6,
		Image: make([]float32, tensor.Numel(l.Info.Shape))}
	for i := range edit.Image {
		edit.Image[i] = float32(i%7)/7 - 0.5
	}
	wantEdit, err := l.Run(context.Background(), &shrink{}, edit, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runs := net.runs
	gotEdit, err := l.Run(context.Background(), net, edit, nil, nil)
	if err != nil || net.runs != runs {
		t.Fatalf("SDEdit on a resident backend: err %v, %d resident runs, want none", err, net.runs-runs)
	}
	for i := range wantEdit.X {
		if gotEdit.X[i] != wantEdit.X[i] {
			t.Fatalf("SDEdit differs at %d: %v vs %v", i, gotEdit.X[i], wantEdit.X[i])
		}
	}
	// Clipping x̂0 is part of the one sampler function, so a resident
	// backend runs it too.
	req.Sampler, req.ClipDenoised = "ddim", true
	if _, err := l.Run(context.Background(), net, req, nil, nil); err != nil || net.runs != runs+1 {
		t.Errorf("clipDenoised: err %v, %d resident runs, want %d", err, net.runs, runs+1)
	}
}

// TestTimestepSpacingOverride: a request's timestepSpacing replaces the
// schedule's for that run only; one leading DDIM step starts at t = 0, one
// trailing step at the top, and a bad value names the field.
func TestTimestepSpacingOverride(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	first := func(spacing string) float64 {
		var lvl float64
		_, err := l.Run(context.Background(), &shrink{}, Request{Sampler: "ddim", Steps: 1, Seed: 1, TimestepSpacing: spacing}, nil,
			func(f *Frame) error {
				if f.Index == 0 {
					lvl = f.Point.Level
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return lvl
	}
	lead, trail := first("leading"), first("trailing")
	if !(lead < 0.1 && trail > 100) {
		t.Errorf("one step starts at σ/α %v (leading) and %v (trailing); want ≈0.01 and the top (≈157)", lead, trail)
	}
	if l.Schedule.Config.TimestepSpacing != "" {
		t.Errorf("the model's schedule was changed to %q", l.Schedule.Config.TimestepSpacing)
	}
	var re *RequestError
	if _, err := l.Plan(Request{Sampler: "ddim", TimestepSpacing: "sideways"}); !errors.As(err, &re) || re.Field != "timestepSpacing" {
		t.Errorf("bad spacing: %v", err)
	}
}
