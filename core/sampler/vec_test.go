package sampler

import (
	"context"
	"math"
	"testing"

	"github.com/diffuse-web/diffuse/core/schedule"
)

// TestPredictionAt builds each prediction type's network output from known
// x0 and ε at a point and checks that the conversion recovers both.
func TestPredictionAt(t *testing.T) {
	x0 := []float64{0.3, -1.2, 2}
	eps := []float64{-0.7, 0.1, 1.5}
	for _, p := range []schedule.Point{{Alpha: 0.8, Sigma: 0.6}, {Alpha: 1, Sigma: 3}, {Alpha: 0.25, Sigma: 0.75}} {
		for kind, want := range map[string]func(x0, e float64) float64{
			"epsilon":         func(_, e float64) float64 { return e },
			"sample":          func(x0, _ float64) float64 { return x0 },
			"v_prediction":    func(x0, e float64) float64 { return p.Alpha*e - p.Sigma*x0 },
			"score":           func(_, e float64) float64 { return -e / p.Sigma },
			"flow_prediction": func(x0, e float64) float64 { return e - x0 },
		} {
			if kind == "v_prediction" && math.Abs(p.Alpha*p.Alpha+p.Sigma*p.Sigma-1) > 1e-12 {
				continue // v's conversion assumes a variance-preserving point
			}
			c, err := PredictionAt(kind, p)
			if err != nil {
				t.Fatal(err)
			}
			sp := newHostSpace(SpaceConfig{B: 1, N: len(x0)})
			x, out, gx0, geps := sp.New(), sp.New(), sp.New(), sp.New()
			for i := range x0 {
				hv(x)[i] = p.Alpha*x0[i] + p.Sigma*eps[i]
				hv(out)[i] = want(x0[i], eps[i])
			}
			c.Apply(sp, gx0, geps, x, out)
			for i := range x0 {
				if math.Abs(hv(gx0)[i]-x0[i]) > 1e-12 || math.Abs(hv(geps)[i]-eps[i]) > 1e-12 {
					t.Errorf("%s at %+v: x0 %v eps %v, want %v %v", kind, p, hv(gx0), hv(geps), x0, eps)
					break
				}
			}
		}
	}
	if _, err := PredictionAt("flow", schedule.Point{Alpha: 1, Sigma: 1}); err == nil {
		t.Error("unknown prediction type accepted")
	}
}

// f32Space is a second Space, as a device backend would write it: float32
// vectors, ops counted. It tests that the samplers reach a SpaceMaker's
// Space and do all their arithmetic through it.
type f32Space struct {
	host *hostSpace // for the network and the noise
	ops  map[string]int
	live int
}

func (f *f32Space) New() Vec                   { f.live++; return make([]float32, f.host.cfg.B*f.host.cfg.N) }
func (f *f32Space) Free(Vec)                   { f.live-- }
func (f *f32Space) Load(v Vec, data []float64) { f.ops["load"]++; copy(v.([]float32), f32s(data)) }
func (f *f32Space) Read(v Vec) []float64       { f.ops["read"]++; return f64s(v.([]float32)) }

func (f *f32Space) Lincomb(out Vec, terms ...Term) {
	f.ops["lincomb"]++
	o, n := out.([]float32), f.host.cfg.N
	acc := make([]float32, len(o))
	for _, t := range terms {
		for i, x := range t.V.([]float32) {
			c := t.C
			if t.PerSample != nil {
				c = t.PerSample[i/n]
			}
			acc[i] += float32(c) * x
		}
	}
	copy(o, acc)
}

func (f *f32Space) Clamp(out, v Vec, lo, hi float64) {
	f.ops["clamp"]++
	for i, x := range v.([]float32) {
		out.([]float32)[i] = float32(math.Max(lo, math.Min(hi, float64(x))))
	}
}

func (f *f32Space) Noise(out Vec, step, sub int) {
	f.ops["noise"]++
	z := f.host.New()
	f.host.Noise(z, step, sub)
	copy(out.([]float32), f32s(hv(z)))
}

func (f *f32Space) SumSq(v Vec, sc ErrScale) []float64 {
	f.ops["sumsq"]++
	h := func(v Vec) Vec {
		if v == nil {
			return nil
		}
		return f64s(v.([]float32))
	}
	return f.host.SumSq(h(v), ErrScale{Y: h(sc.Y), Y2: h(sc.Y2), ATol: sc.ATol, RTol: sc.RTol})
}

func (f *f32Space) Net(out, x Vec, p schedule.Point) error {
	f.ops["net"]++
	o := f.host.New()
	if err := f.host.Net(o, f64s(x.([]float32)), p); err != nil {
		return err
	}
	copy(out.([]float32), f32s(hv(o)))
	return nil
}

func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// f32Net is tanhNet behind a SpaceMaker.
type f32Net struct {
	tanhNet
	last *f32Space
}

func (n *f32Net) NewSpace(cfg SpaceConfig) (Space, func(), error) {
	cfg.Model = &Model{Net: n.tanhNet, Schedule: cfg.Model.Schedule, Shape: cfg.Model.Shape, NullClass: cfg.Model.NullClass}
	n.last = &f32Space{host: newHostSpace(cfg), ops: map[string]int{}}
	return n.last, func() {}, nil
}

// TestSpaceMaker runs every sampler, and DDIM inversion, on the host and
// in a float32 Space made by the network: the same functions must give the
// same results to float32 rounding, with the same evaluations and progress
// calls, and previews read back only where Options.Preview says.
func TestSpaceMaker(t *testing.T) {
	s := discreteSchedule(t, "v_prediction", "linear")
	shape := []int{2, 3}
	noise := InitialNoise(5, 0, 3, shape)
	type named struct {
		name string
		f    Func
	}
	fs := []named{{"invert_ddim", InvertDDIM}}
	for _, info := range List() {
		fs = append(fs, named{info.Name, info.Func})
	}
	for _, sf := range fs {
		t.Run(sf.name, func(t *testing.T) {
			run := func(net any, preview func(int, int) bool) (*Result, []Step) {
				var steps []Step
				o := &Options{Steps: 8, Eta: 0.5, Seed: 11, RTol: 1e-3, ATol: 1e-3, ClipDenoised: true, Preview: preview,
					Progress: func(st Step) error {
						if st.X != nil {
							st.X, st.X0 = append([]float64(nil), st.X...), append([]float64(nil), st.X0...)
						}
						steps = append(steps, st)
						return nil
					}}
				m := &Model{Schedule: scheduleFor(t, sf.name, s), Shape: shape, NullClass: -1}
				switch n := net.(type) {
				case tanhNet:
					m.Net = n
				case *f32Net:
					m.Net = n
				}
				res, err := sf.f(context.Background(), m, noise, o)
				if err != nil {
					t.Fatal(err)
				}
				return res, steps
			}
			want, wsteps := run(tanhNet{}, nil)
			dev := &f32Net{}
			got, gsteps := run(dev, func(i, total int) bool { return i%3 == 0 })
			if got.NFE != want.NFE || len(gsteps) != len(wsteps) {
				t.Fatalf("device space: %d evaluations and %d progress calls, host %d and %d", got.NFE, len(gsteps), want.NFE, len(wsteps))
			}
			tol := 1e-4
			if sf.name == "rk45" {
				tol = 1e-2 // float32 error norms may pick other steps: agreement within rtol/atol's reach
			}
			if d := maxDiff(got.X, want.X); d > tol {
				t.Errorf("device space result differs from the host's by %g", d)
			}
			for i, st := range gsteps {
				// rk45's Total is -1: its last call is always a preview
				want := i%3 == 0 || (sf.name == "rk45" && i == len(gsteps)-1)
				if (st.X != nil) != want || (st.X0 != nil) != want {
					t.Fatalf("progress call %d: preview %v, want %v", i, st.X != nil, want)
				}
				if st.X != nil && (maxDiff(st.X, wsteps[i].X) > tol || maxDiff(st.X0, wsteps[i].X0) > tol) {
					t.Errorf("progress call %d: X or X0 differs from the host's", i)
				}
			}
			if ops := dev.last.ops; ops["net"] != got.NFE || ops["lincomb"] == 0 {
				t.Errorf("device space ops %v for %d evaluations", ops, got.NFE)
			}
			if sf.name == "ddim" || sf.name == "euler_ancestral" || sf.name == "em" {
				if dev.last.ops["noise"] == 0 {
					t.Errorf("stochastic sampler drew no noise in the device space")
				}
			}
		})
	}
}

func maxDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// TestCheckpoints runs every sampler and DDIM inversion with
// Options.Checkpoint: the run must hand over its start and a checkpoint
// at each step boundary (on the host, every one), and resuming from any
// of them must end where the run ended, with the same evaluation count.
// In a device Space they come only at the boundaries Preview reads back.
func TestCheckpoints(t *testing.T) {
	s := discreteSchedule(t, "epsilon", "linear")
	noise := InitialNoise(7, 0, 2, []int{2, 3})
	fs := map[string]Func{"invert_ddim": InvertDDIM}
	for _, info := range List() {
		fs[info.Name] = info.Func
	}
	for name, f := range fs {
		t.Run(name, func(t *testing.T) {
			m := &Model{Net: tanhNet{}, Schedule: scheduleFor(t, name, s), Shape: []int{2, 3}, NullClass: -1}
			var cks []*Checkpoint
			o := &Options{Steps: 6, Eta: 0.7, Seed: 3, RTol: 1e-4, ATol: 1e-4, Checkpoint: func(c *Checkpoint) { cks = append(cks, c) }}
			want, err := f(context.Background(), m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(cks) < 4 || cks[0].Step != 0 || cks[0].NFE != 0 {
				t.Fatalf("%d checkpoints, the first %+v", len(cks), cks[0])
			}
			o.Checkpoint = nil
			for _, k := range []int{0, 1, len(cks) / 2, len(cks) - 1} {
				o.Resume = cks[k]
				got, err := f(context.Background(), m, noise, o)
				if err != nil {
					t.Fatalf("from checkpoint %d (step %d): %v", k, cks[k].Step, err)
				}
				if d := maxDiff(got.X, want.X); d > 1e-9 || got.NFE != want.NFE {
					t.Errorf("from checkpoint %d (step %d, %d evaluations): off by %g, %d evaluations (want %d)", k, cks[k].Step, cks[k].NFE, d, got.NFE, want.NFE)
				}
			}
			// In a device Space: the start, then only at previews.
			cks = nil
			o.Resume = nil
			o.Checkpoint = func(c *Checkpoint) { cks = append(cks, c) }
			o.Preview = func(i, _ int) bool { return i == 2 }
			m.Net = &f32Net{}
			if _, err := f(context.Background(), m, noise, o); err != nil {
				t.Fatal(err)
			}
			if len(cks) > 3 || (len(cks) > 2 && name != "rk45") {
				t.Errorf("%d checkpoints with one preview", len(cks)) // and rk45's last
			}
		})
	}
}
