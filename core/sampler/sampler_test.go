package sampler

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/tensor"
)

// classNet is a class-conditional toy network: out = x·0.1 + class/10 (null
// class 10 → 0). It records every call.
type classNet struct {
	batches [][]int
}

func (c *classNet) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	c.batches = append(c.batches, append([]int(nil), class...))
	y := tensor.New(x.Shape...)
	n := len(x.Data) / x.Shape[0]
	for b := 0; b < x.Shape[0]; b++ {
		k := 0.0
		if class[b] != 10 {
			k = float64(class[b]) / 10
		}
		for i := 0; i < n; i++ {
			y.Data[b*n+i] = float32(0.1*float64(x.Data[b*n+i]) + k)
		}
	}
	return y, nil
}

func TestGuidanceBatchesOneCall(t *testing.T) {
	s := vpSchedule(t, "epsilon")
	net := &classNet{}
	m := &Model{Net: net, Schedule: s, Shape: []int{3}, NullClass: 10}
	noise := InitialNoise(1, 0, 2, m.Shape)
	const w = 3.0
	var seen bool
	r, err := DDIM(context.Background(), m, noise, &Options{Steps: 1, Class: []int{4, 7}, Guidance: w, Progress: func(st Step) error {
		seen = true
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !seen || len(net.batches) != 1 {
		t.Fatalf("%d network calls, want 1", len(net.batches))
	}
	if got := net.batches[0]; len(got) != 4 || got[0] != 4 || got[1] != 7 || got[2] != 10 || got[3] != 10 {
		t.Fatalf("labels %v, want [4 7 10 10]", got)
	}
	// One DDIM step from t=1 to clean: x = x0 = (x - σ·out)/α with the guided
	// out = u + w(c-u) = 0.1x + w·class/10.
	p := s.PointAt(1)
	for b, cls := range []int{4, 7} {
		for i := 0; i < 3; i++ {
			x := noise[b*3+i]
			out := float64(float32(0.1*float64(float32(x)))) + w*float64(float32(float64(cls)/10))
			want := (x - p.Sigma*out) / p.Alpha
			if math.Abs(r.X[b*3+i]-want) > 1e-4*math.Abs(want) {
				t.Errorf("sample %d coordinate %d: %v, want %v", b, i, r.X[b*3+i], want)
			}
		}
	}
	// Guidance without labels, or without a null class, is an error.
	if _, err := DDIM(context.Background(), m, noise, &Options{Steps: 1, Guidance: 2}); err == nil {
		t.Error("guidance without class labels: no error")
	}
	m.NullClass = -1
	if _, err := DDIM(context.Background(), m, noise, &Options{Steps: 1, Guidance: 2, Class: []int{1}}); err == nil {
		t.Error("guidance without a null class: no error")
	}
}

func TestUnconditionalUsesNullClass(t *testing.T) {
	s := vpSchedule(t, "epsilon")
	net := &classNet{}
	m := &Model{Net: net, Schedule: s, Shape: []int{3}, NullClass: 10}
	if _, err := Euler(context.Background(), m, InitialNoise(1, 0, 2, m.Shape), &Options{Steps: 2}); err != nil {
		t.Fatal(err)
	}
	for _, b := range net.batches {
		if len(b) != 2 || b[0] != 10 || b[1] != 10 {
			t.Fatalf("labels %v, want the null class", b)
		}
	}
}

// TestBatchIndependence: a stochastic sampler gives every sample the same
// result whether it is drawn alone or in a batch.
func TestBatchIndependence(t *testing.T) {
	s := vpSchedule(t, "epsilon")
	m := &Model{Net: &gaussNet{s: s, mu: testMu, sd: testSD}, Schedule: s, Shape: []int{4}, NullClass: -1}
	for _, name := range []string{"ddpm", "ddim", "euler_ancestral", "em", "pc"} {
		all, err := Run(context.Background(), name, m, InitialNoise(8, 0, 5, m.Shape), &Options{Steps: 20, Eta: 1, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			one, err := Run(context.Background(), name, m, InitialNoise(8, i, 1, m.Shape), &Options{Steps: 20, Eta: 1, Seed: 3, FirstSample: i})
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < 4; k++ {
				if one.X[k] != all.X[i*4+k] {
					t.Fatalf("%s: sample %d differs alone (%v) and in a batch (%v)", name, i, one.X[k], all.X[i*4+k])
				}
			}
		}
	}
}

func TestProgressAndCancel(t *testing.T) {
	for _, info := range List() {
		s := scheduleFor(t, info.Name, vpSchedule(t, "epsilon"))
		m := &Model{Net: &gaussNet{s: s, mu: testMu, sd: testSD}, Schedule: s, Shape: []int{4}, NullClass: -1}
		var steps []Step
		stop := errors.New("stop")
		_, err := info.Func(context.Background(), m, InitialNoise(1, 0, 2, m.Shape), &Options{Steps: 10, Progress: func(st Step) error {
			if len(st.X) != 8 || len(st.X0) != 8 {
				t.Fatalf("%s: step %d has %d/%d values", info.Name, st.Index, len(st.X), len(st.X0))
			}
			steps = append(steps, st)
			if len(steps) == 3 {
				return stop
			}
			return nil
		}})
		if !errors.Is(err, stop) || len(steps) != 3 {
			t.Errorf("%s: cancelling at step 3 gave %v after %d steps", info.Name, err, len(steps))
		}
		for i, st := range steps {
			if st.Index != i {
				t.Errorf("%s: step %d has Index %d", info.Name, i, st.Index)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := info.Func(ctx, m, InitialNoise(1, 0, 2, m.Shape), &Options{Steps: 10}); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: cancelled context gave %v", info.Name, err)
		}
	}
}

func TestRegistry(t *testing.T) {
	want := []string{"consistency", "ddim", "ddpm", "deis", "dpm_2", "dpm_2_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_2s_ancestral",
		"dpmpp_3m", "dpmpp_3m_diffusers", "dpmpp_3m_sde", "dpmpp_sde", "em", "euler", "euler_ancestral", "flow_euler", "flow_heun",
		"heun", "lms", "pc", "rk45", "unipc", "unipc_bh1"}
	got := List()
	if len(got) != len(want) {
		t.Fatalf("%d samplers, want %d", len(got), len(want))
	}
	for i, info := range got {
		if info.Name != want[i] || info.Summary == "" || strings.Contains(info.Summary, "\\n") || info.Func == nil {
			t.Errorf("entry %d: %+v", i, info)
		}
		if _, ok := Get(info.Name); !ok {
			t.Errorf("Get(%q) failed", info.Name)
		}
	}
	if _, err := Run(context.Background(), "nope", nil, nil, nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown sampler: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	s := vpSchedule(t, "epsilon")
	m := &Model{Net: &gaussNet{s: s, mu: testMu, sd: testSD}, Schedule: s, Shape: []int{4}, NullClass: -1}
	if _, err := DDIM(context.Background(), m, make([]float64, 7), nil); err == nil {
		t.Error("7 values for shape [4]: no error")
	}
	if _, err := DDIM(context.Background(), m, make([]float64, 8), &Options{Class: []int{1, 2, 3}}); err == nil {
		t.Error("3 labels for 2 samples: no error")
	}
	if _, err := DDIM(context.Background(), m, make([]float64, 8), &Options{Steps: -1}); err == nil {
		t.Error("negative steps: no error")
	}
	d := discreteSchedule(t, "epsilon", "linear")
	m.Schedule = d
	if _, err := DDIM(context.Background(), m, make([]float64, 8), &Options{Steps: 1001}); err == nil {
		t.Error("1001 steps of a 1000-step schedule: no error")
	}
}

// TestInvertDDIM: inversion lands on the exact inverse flow map (first
// order in the step) and DDIM from the inverted noise gives the data back.
func TestInvertDDIM(t *testing.T) {
	s := vpSchedule(t, "epsilon")
	m := &Model{Net: &gaussNet{s: s, mu: testMu, sd: testSD}, Schedule: s, Shape: []int{4}, NullClass: -1}
	x := InitialNoise(21, 0, 3, m.Shape)
	for i := range x {
		x[i] = testMu[i%4] + testSD*x[i]
	}
	var errs []float64
	for _, steps := range []int{100, 200, 400} {
		o := &Options{Steps: steps, Sigmas: "exponential"}
		z, err := InvertDDIM(context.Background(), m, x, o)
		if err != nil {
			t.Fatal(err)
		}
		// exact: x/α at σ=0 is x; flow to the largest level, then x_T = α_T·x̃_T.
		g, _ := s.DDIMGrid(steps, "exponential")
		top := g.Steps[0].From
		want := exactFlow(x, testMu, testSD, 0, top.Level)
		e := 0.0
		for i := range want {
			e = math.Max(e, math.Abs(z.X[i]*g.InitSigma-top.Alpha*want[i]))
		}
		errs = append(errs, e)
		back, err := DDIM(context.Background(), m, z.X, o)
		if err != nil {
			t.Fatal(err)
		}
		rt := 0.0
		for i := range x {
			rt = math.Max(rt, math.Abs(back.X[i]-x[i]))
		}
		t.Logf("%d steps: inversion error %.3g, round trip error %.3g", steps, e, rt)
		if rt > 8.0/float64(steps) {
			t.Errorf("%d steps: DDIM(invert(x)) is %.3g from x", steps, rt)
		}
	}
	if p := math.Log2(errs[1] / errs[2]); p < 0.7 || p > 1.5 {
		t.Errorf("inversion error order %.2f, want about 1", p)
	}
}

func TestSlerp(t *testing.T) {
	a := InitialNoise(1, 0, 1, []int{1000})
	b := InitialNoise(2, 0, 1, []int{1000})
	norm := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x * x
		}
		return math.Sqrt(s)
	}
	for _, tt := range []float64{0, 0.25, 0.5, 1} {
		v := Slerp(a, b, tt)
		if tt == 0 && v[3] != a[3] || tt == 1 && math.Abs(v[3]-b[3]) > 1e-12 {
			t.Errorf("slerp at %v does not hit the end point", tt)
		}
		// for near-orthogonal equal-norm vectors the norm stays ≈ |a|
		if r := norm(v) / norm(a); math.Abs(r-1) > 0.1 {
			t.Errorf("slerp at %v: norm ratio %.3f", tt, r)
		}
	}
	l := Slerp(a, a, 0.3)
	if math.Abs(l[5]-a[5]) > 1e-12 {
		t.Error("slerp of parallel vectors")
	}
}

// constNet outputs a constant: as ε it makes x̂0 leave [-1, 1].
type constNet struct{ v float32 }

func (c constNet) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	y := tensor.New(x.Shape...)
	for i := range y.Data {
		y.Data[i] = c.v
	}
	return y, nil
}

func TestDDIMClippedModelOutput(t *testing.T) {
	for _, use := range []bool{false, true} {
		s := discreteSchedule(t, "epsilon", "linear")
		on := true
		s.Config.ClipSample = &on
		s.Config.UseClippedModelOutput = use
		m := &Model{Net: constNet{-0.5}, Schedule: s, Shape: []int{1}, NullClass: -1}
		noise := []float64{0.5}
		g, _ := s.DDIMGrid(2, "")
		var second float64
		_, err := DDIM(context.Background(), m, noise, &Options{Steps: 2, Progress: func(st Step) error {
			if st.Index == 1 {
				second = st.X[0]
			}
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		p0, p1 := g.Steps[0].From, g.Steps[0].To
		x := noise[0]
		x0 := math.Max(-1, math.Min(1, (x+0.5*p0.Sigma)/p0.Alpha))
		eps := -0.5
		if use {
			eps = (x - p0.Alpha*x0) / p0.Sigma
		}
		want := p1.Alpha*x0 + p1.Sigma*eps
		t.Logf("use_clipped_model_output %v: x after one step %v", use, second)
		if math.Abs(second-want) > 1e-9 {
			t.Errorf("use_clipped_model_output %v: %v, want %v", use, second, want)
		}
	}
}

// ClipDenoised keeps every sampler's x̂0 in the data range: with a network
// that predicts x̂0 = 5 everywhere, the samples end at the range's top (1)
// with it, and beyond the range without it (the plain methods).
func TestClipDenoisedEverySampler(t *testing.T) {
	for _, info := range List() {
		if info.Requires == RequiresConsistency {
			continue // a consistency model's x̂0 is c_skip·x + c_out·F, never the raw 5 (its clip_denoised: the conformance cases)
		}
		for _, clip := range []bool{false, true} {
			s := scheduleFor(t, info.Name, discreteSchedule(t, "sample", "linear"))
			m := &Model{Net: constNet{5}, Schedule: s, Shape: []int{4}, NullClass: -1}
			o := &Options{Steps: 10, ClipDenoised: clip, Seed: 1}
			res, err := info.Func(context.Background(), m, InitialNoise(1, 0, 2, m.Shape), o)
			if err != nil {
				t.Fatalf("%s: %v", info.Name, err)
			}
			hi := 0.0
			for _, v := range res.X {
				hi = math.Max(hi, v)
			}
			if clip && hi > 1+1e-9 {
				t.Errorf("%s with ClipDenoised: sample reaches %v, outside [-1, 1]", info.Name, hi)
			}
			if !clip && hi < 2 {
				t.Errorf("%s without ClipDenoised: sample max %v, want the network's x̂0 = 5 to show", info.Name, hi)
			}
		}
	}
}
