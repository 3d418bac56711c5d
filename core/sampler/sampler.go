// Package sampler draws samples from a denoising network: DDPM, DDIM (any
// η, and its inversion), Euler, Euler ancestral, Heun, adaptive RK45,
// DPM-Solver++ 2M/3M, Euler–Maruyama and predictor–corrector on the reverse
// SDE, k-diffusion's DPM-2 (ancestral), DPM-Solver++ 2S ancestral, SDE,
// 2M/3M SDE and LMS, DEIS and UniPC (bh1, bh2), the flow-matching Euler and
// Heun samplers (flow.go) and multistep consistency sampling
// (consistency.go), with classifier-free guidance, seeded per-sample noise
// and a per-step progress callback; and it estimates likelihoods (bits/dim)
// through the probability-flow ODE.
//
// Every sampler has the signature Func and is listed in the registry (List,
// Get). Samples are []float64 holding a batch of B samples of Model.Shape in
// row-major order. Each sampler does its arithmetic through a Space (vec.go:
// linear combinations, clamp, seeded noise, per-sample norms, the network
// call), with its scalar coefficients computed in float64 on the host: on
// the host the vectors are float64 and only the network call converts to
// float32; a denoiser that is a SpaceMaker (the WebGPU backend's) keeps
// them on its device, so one Go function per sampler runs on every backend.
// Prediction types are converted in one place (PredictionAt).
//
// Conventions (shared by all samplers): a noise level is a schedule.Point with
// x_t = α·x0 + σ·ε. "DDIM-type" samplers (ddpm, ddim, dpmpp_2m/3m, deis,
// unipc, em, pc) keep x_t itself; "Euler-type" ones (euler, euler_ancestral,
// heun, rk45, and k-diffusion's: dpm_2*, dpmpp_2s_ancestral, dpmpp_sde,
// dpmpp_*_sde, lms) keep x_t/α =
// x0 + (σ/α)·ε and integrate the probability-flow ODE in Karras et al.'s form
// dx/dσ = (x - D(x; σ))/σ (Karras et al. 2022, eq. 3 with s = 1), where D is
// the model's x0 prediction. Both kinds start from unit noise times the grid's
// InitSigma and end at clean data (σ = 0).
package sampler

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/rng"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Model is what a sampler drives: the network, its noise schedule and the
// shape of one sample.
type Model struct {
	Net      model.Denoiser
	Schedule *schedule.Schedule
	// Shape is one sample's shape, [C, H, W].
	Shape []int
	// NullClass is the "no class" label of a class-conditional model (the
	// model.KeyNullClass metadata), or -1.
	NullClass int
	// Classes is the number of class labels of a class-conditional model,
	// Unconditional for a model without labels, 0 when not said (labels
	// are then not checked against the model); see Labels.
	Classes int
}

// NoiseSource fills out (one sample's worth) with standard normal noise for
// the global sample index `sample`, sampler step `step` and draw `sub` within
// the step.
type NoiseSource func(sample, step, sub int, out []float64)

// Options are the settings of one sampling call. The zero value of a field
// means its default; each sampler reads only the fields its Info.Params list.
type Options struct {
	// Steps is the number of steps (default: the sampler's DefaultSteps).
	Steps int
	// Eta is DDIM's η (0 = deterministic DDIM, 1 = DDPM-like variance),
	// and the noise scale of k-diffusion's ancestral and SDE samplers (0
	// means their default, 1).
	Eta float64
	// RTol and ATol are RK45's relative and absolute tolerances (default 1e-5).
	RTol, ATol float64
	// EndTime is the end time ε of continuous-time (SDE) schedules, before the
	// final denoising step (default: the schedule's sampling_eps).
	EndTime float64
	// SNR is the predictor–corrector's Langevin signal-to-noise ratio r
	// (default 0.16), CorrectorSteps its corrector steps per step (default 1).
	SNR            float64
	CorrectorSteps int
	// SNoise is k-diffusion's s_noise, the factor on the fresh noise of
	// the ancestral and SDE samplers (default 1).
	SNoise float64
	// Order is the multistep solvers' order (lms, deis, unipc; default:
	// the sampler's, see its order Param).
	Order int
	// Sigmas overrides the config's sigma spacing: schedule.SigmasUniform,
	// SigmasKarras, SigmasExponential or SigmasPolyexponential ("" follows
	// the config); Rho sets the Karras and polyexponential ρ (0: 7 and 1).
	Sigmas string
	Rho    float64
	// Shift overrides a flow-matching schedule's timestep shift (0: the
	// config's; see schedule.ShiftTime). Other schedules ignore it.
	Shift float64

	// Class holds one label per sample (or one for all) for class-conditional
	// models; nil samples unconditionally (with the null class, if the model
	// has one).
	Class []int
	// ClipDenoised clips every prediction x̂0 to the model's data range
	// (schedule data_range, default [-1, 1]) and re-derives ε̂ from it,
	// ε̂ = (x_t - α·x̂0)/σ, in every sampler: "static thresholding" (Saharia
	// et al. 2022, "Photorealistic Text-to-Image Diffusion Models with Deep
	// Language Understanding", section 2.3), what DDPM's and DDIM's
	// clip_sample does, offered to the ODE and SDE solvers too. It changes
	// the method: off (the default), each solver solves its equation as
	// written. It helps a model whose x̂0 is far off at high noise (see
	// weights/mnist.md).
	ClipDenoised bool
	// Guidance is the classifier-free guidance scale w: the network output is
	// uncond + w·(cond - uncond) (Ho & Salimans 2022, eq. 6 in this form), with
	// both passes batched into one call. 0 or 1 means no guidance.
	Guidance float64

	// Seed and FirstSample key the noise the samplers add: sample b of the
	// batch draws rng.NormalStream64(Seed, FirstSample+b, step, sub, ·), so it
	// does not depend on how samples are batched. Noise, when set, replaces it.
	Seed        uint64
	FirstSample int
	Noise       NoiseSource

	// Progress, when set, is called after every network evaluation (every
	// accepted step for rk45); a non-nil error stops sampling and is returned.
	Progress func(Step) error
	// Preview, when set, says at which progress calls (by Step.Index, of
	// Total) a run whose vectors live off the host (a SpaceMaker's Space,
	// such as the WebGPU backend's) reads X and X0 back; its other calls
	// get them nil. Nil means every DefaultPreviewEvery-th call and the
	// last. On the host X and X0 are always passed and Preview is ignored.
	Preview func(index, total int) bool

	// Checkpoint, when set, is called with the run's state at the start
	// (unless resuming) and at each step boundary whose X a progress call
	// reads back (every one on the host; off the host, as Preview picks,
	// and none when neither Progress nor Preview is set):
	// what Resume takes to finish the run on another backend. The
	// checkpoint is the callee's to keep.
	Checkpoint func(*Checkpoint)

	// Resume, when set, starts the run at a checkpoint (a step boundary of
	// an earlier run with the same model, noise and options) instead of
	// the beginning: the result is that run's. Only the samplers whose Info
	// says Resumable accept it.
	Resume *Checkpoint

	// Known, when set, makes the run an inpainting: the known part of
	// the image is kept and the rest generated (replaceKnown, edit.go).
	// The run then uses the host Space (the network still runs on its
	// backend, one call per evaluation).
	Known *Known
}

// Checkpoint is a sampler's state at the start of grid step Step, for
// Options.Resume: what a backend that lost its device mid-run hands to
// another to finish the same run.
type Checkpoint struct {
	// Step is the index of the next step in the sampler's grid (its
	// Steps[Step].From is X's noise level); len(grid) means finished.
	Step int
	// X is the batch there, in x_t form (Step.X's form).
	X []float64
	// History holds the multistep samplers' data predictions at the
	// previous grid points, newest first (DPM-Solver++: Step-1, Step-2, as
	// many as its order uses); nil for one-step samplers.
	History [][]float64
	// NFE is the number of network evaluations already made.
	NFE int
	// U and H are the adaptive rk45's position and step: X is at log noise
	// level U = log(σ/α) after Step accepted steps, History[0] is the data
	// prediction there, and H the step size (in U) to try next. H = 0 at
	// Step 0 means the start.
	U, H float64
}

// Step is what the progress callback sees.
type Step struct {
	// Index counts network evaluations (accepted steps for rk45) from 0;
	// Total is their expected number, -1 when unknown (rk45).
	Index, Total int
	// NFE is the number of network evaluations so far (a guided evaluation
	// counts once though its batch is doubled).
	NFE int
	// Point is the noise level of X: X = Alpha·x0 + Sigma·ε.
	Point schedule.Point
	// X is the current batch in x_t form (for Euler-type samplers, their
	// state times Alpha) and X0 the model's prediction of clean data there.
	// Both are owned by the sampler: copy them to keep them.
	X, X0 []float64
	// DeltaLogP is Likelihood's divergence integral so far, per sample
	// (nats): the log-density accumulated along the ODE; nil elsewhere.
	DeltaLogP []float64
}

// Result is a sampler's output.
type Result struct {
	// X is the batch of samples (clean data, or for inversion the unit noise).
	X []float64
	// NFE is the number of network evaluations.
	NFE int
}

// Func is the signature every sampler shares: noise is a batch of unit
// Gaussian starting noise (B·C·H·W values, see InitialNoise), scaled by the
// sampler's initial sigma.
type Func func(ctx context.Context, m *Model, noise []float64, o *Options) (*Result, error)

// Info is one registry entry.
type Info struct {
	Name string
	// Display is the name a page shows ("DPM-Solver++(2M)").
	Display string
	Summary string // one line, names the paper
	// Stochastic samplers use Seed/Noise after the initial noise.
	Stochastic bool
	// Order is the method's convergence order on the ODE (0: not an ODE
	// method, or adaptive).
	Order        int
	DefaultSteps int
	Params       []Param
	Func         Func
	// Resumable samplers accept Options.Resume.
	Resumable bool
	// Multistep samplers use earlier steps' predictions (Checkpoint.History),
	// so a run can resume part-way only from one of their own checkpoints:
	// a start made from an image (EditStart) has no history for them.
	Multistep bool
	// Requires is the model family the sampler is written for: "" (any
	// model), RequiresFlow (a flow-matching schedule) or RequiresConsistency
	// (a consistency model); see Supports.
	Requires string
}

// The model families of Info.Requires.
const (
	RequiresFlow        = "flow"
	RequiresConsistency = "consistency"
)

// Supports reports whether the sampler runs on a model with schedule s
// (Info.Requires); the others refuse it with an error saying why.
func (i Info) Supports(s *schedule.Schedule) bool {
	switch i.Requires {
	case RequiresFlow:
		return s.Kind == schedule.Flow
	case RequiresConsistency:
		return s.Config.PredictionType == "consistency"
	}
	return true
}

var registry = map[string]Info{}

func register(i Info) { registry[i.Name] = i }

// List returns the registered samplers sorted by name.
func List() []Info {
	out := make([]Info, 0, len(registry))
	for _, i := range registry {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Get finds a sampler by name.
func Get(name string) (Info, bool) {
	i, ok := registry[name]
	return i, ok
}

// Run looks up the sampler `name` and runs it.
func Run(ctx context.Context, name string, m *Model, noise []float64, o *Options) (*Result, error) {
	i, ok := Get(name)
	if !ok {
		return nil, fmt.Errorf("unknown sampler %q (see the sampler list)", name)
	}
	return i.Func(ctx, m, noise, o)
}

// InitialNoise is the starting noise of samples first..first+n-1 of a
// request: rng.Normal64 at step rng.Initial, one sample after another.
func InitialNoise(seed uint64, first, n int, shape []int) []float64 {
	size := tensor.Numel(shape)
	out := make([]float64, n*size)
	for b := 0; b < n; b++ {
		rng.Normal64(seed, first+b, rng.Initial, out[b*size:(b+1)*size])
	}
	return out
}

// runner holds what one sampling call shares: its options, the Space its
// vectors live in, and the counts the progress callback sees.
type runner struct {
	ctx   context.Context
	m     *Model
	s     *schedule.Schedule
	o     Options
	b, n  int // batch size, values per sample
	nfe   int
	total int
	index int
	cls   []int // one label per sample, or nil
	guide bool
	sp    Space
	close func()
	// pend is the checkpoint the next progress call completes (X and
	// History read back), set by boundary; nil inside a step.
	pend     *Checkpoint
	pendHist []Vec
	// eulerType: the state is x_t/α (eulerStart makes the start checkpoint).
	eulerType bool
	// last: the next progress call is the last (rk45, whose Total is -1).
	last bool
}

// newRunnerResumable makes the runner of the samplers, which all handle
// o.Resume (through start), with its Space: the one m.Net makes if it is
// a SpaceMaker, else the host's. The caller defers r.close().
func newRunnerResumable(ctx context.Context, m *Model, x []float64, o *Options, defSteps int) (*runner, error) {
	return newRunnerIn(ctx, m, x, o, defSteps, false)
}

// newRunnerIn is newRunnerResumable; host forces the host Space.
func newRunnerIn(ctx context.Context, m *Model, x []float64, o *Options, defSteps int, host bool) (*runner, error) {
	if m == nil || m.Net == nil || m.Schedule == nil {
		return nil, errors.New("sampler: model, network and schedule are required")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	r := &runner{ctx: ctx, m: m, s: m.Schedule, close: func() {}}
	if o != nil {
		r.o = *o
	}
	if err := r.o.Check(); err != nil {
		return nil, err
	}
	if r.o.Steps == 0 {
		r.o.Steps = defSteps
	}
	if r.o.Steps < 0 {
		return nil, fmt.Errorf("sampler: steps must be positive, got %d", r.o.Steps)
	}
	var err error
	if r.s, err = m.Schedule.WithEndTime(r.o.EndTime); err != nil {
		return nil, err
	}
	r.s = r.s.WithSigmaRho(r.o.Rho).WithShift(r.o.Shift)
	if _, err := PredictionFor(r.s, schedule.Point{Alpha: 1, Sigma: 1, Level: 1}); err != nil {
		return nil, err
	}
	r.n = tensor.Numel(m.Shape)
	if len(m.Shape) == 0 || r.n == 0 {
		return nil, fmt.Errorf("sampler: bad sample shape %v", m.Shape)
	}
	if len(x) == 0 || len(x)%r.n != 0 {
		return nil, fmt.Errorf("sampler: %d input values are not a whole batch of shape %v", len(x), m.Shape)
	}
	r.b = len(x) / r.n
	if r.o.Known != nil {
		if err := checkKnown(r.o.Known, r.b, r.n); err != nil {
			return nil, err
		}
		host = true
	}
	if r.cls, r.guide, err = m.Labels(&r.o, r.b); err != nil {
		return nil, err
	}
	cfg := SpaceConfig{Ctx: ctx, Model: m, Schedule: r.s, B: r.b, N: r.n, Class: r.cls,
		Seed: r.o.Seed, FirstSample: r.o.FirstSample, Noise: r.o.Noise}
	if r.guide {
		cfg.Guidance = r.o.Guidance
	}
	if sm, ok := m.Net.(SpaceMaker); ok && !host {
		if r.sp, r.close, err = sm.NewSpace(cfg); err != nil {
			return nil, err
		}
	} else {
		r.sp = newHostSpace(cfg)
	}
	return r, nil
}

// net evaluates the network at p on x (x_t form), scaled by the schedule's
// InputScale (c_in of consistency models), and returns its raw output
// (guided when classifier-free guidance is on).
func (r *runner) net(p schedule.Point, x Vec) (Vec, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	if p.Clean() {
		return nil, errors.New("sampler: internal error: network evaluated at sigma 0")
	}
	if r.o.Known != nil {
		r.replaceKnown(p, x)
	}
	out := r.sp.New()
	var err error
	if c := r.s.InputScale(p); c != 1 {
		xin := r.sp.New()
		r.sp.Lincomb(xin, T(c, x))
		err = r.sp.Net(out, xin, p)
		r.sp.Free(xin)
	} else {
		err = r.sp.Net(out, x, p)
	}
	r.nfe++
	if err != nil {
		r.sp.Free(out)
		return nil, err
	}
	return out, nil
}

// denoise evaluates the network at p on x (x_t form) and converts its
// output to predictions of x0 and ε (PredictionAt). With ClipDenoised,
// x̂0 is clipped to the data range and ε̂ re-derived from it.
func (r *runner) denoise(p schedule.Point, x Vec) (x0, eps Vec, err error) {
	out, err := r.net(p, x)
	if err != nil {
		return nil, nil, err
	}
	c, err := PredictionFor(r.s, p)
	if err != nil {
		return nil, nil, err
	}
	x0, eps = r.sp.New(), r.sp.New()
	c.Apply(r.sp, x0, eps, x, out)
	r.sp.Free(out)
	if r.o.ClipDenoised {
		lo, hi := r.s.Config.Range()
		r.sp.Clamp(x0, x0, lo, hi)
		r.rederive(p, x, x0, eps)
	}
	return x0, eps, nil
}

// rederive sets eps = (x - α·x0)/σ, the noise that x0 implies at p.
func (r *runner) rederive(p schedule.Point, x, x0, eps Vec) {
	r.sp.Lincomb(eps, T(1/p.Sigma, x), T(-p.Alpha/p.Sigma, x0))
}

// clip applies clip_sample to x0 in place when the config asks for it.
func (r *runner) clip(x0 Vec) {
	if !r.s.Config.ClipSampleOn() {
		return
	}
	c := r.s.Config.ClipSampleRange
	r.sp.Clamp(x0, x0, -c, c)
}

// noise fills out (the whole batch) with the standard normal draws of step
// `step`, draw `sub`.
func (r *runner) noise(step, sub int, out Vec) { r.sp.Noise(out, step, sub) }

// free releases vectors the sampler no longer needs.
func (r *runner) free(vs ...Vec) {
	for _, v := range vs {
		if v != nil {
			r.sp.Free(v)
		}
	}
}

// previewNow says whether the progress call about to be made (r.index)
// reads X and X0 back: always on the host (where that costs nothing) and
// at the last call, else as Options.Preview says (default: every
// DefaultPreviewEvery-th call and the last).
func (r *runner) previewNow() bool {
	if _, host := r.sp.(*hostSpace); host || r.last {
		return true
	}
	if r.o.Preview != nil {
		return r.o.Preview(r.index, r.total)
	}
	return r.index%DefaultPreviewEvery == DefaultPreviewEvery-1 || r.index == r.total-1
}

// DefaultPreviewEvery is how often (in progress calls) a sampler whose
// batch lives off the host reads X and X0 back for Progress when
// Options.Preview is nil: every DefaultPreviewEvery-th call and the last.
const DefaultPreviewEvery = 5

// boundary says that the next progress call is at a step boundary: c
// (Step, NFE and, for rk45, U and H) with X read back there and the
// vectors hist as History makes a checkpoint (Options.Checkpoint).
func (r *runner) boundary(c Checkpoint, hist ...Vec) {
	if r.o.Checkpoint != nil {
		r.pend, r.pendHist = &c, hist
	}
}

// checkpoint hands Options.Checkpoint the start, x in x_t form (host
// values, copied), unless the run resumes.
func (r *runner) checkpoint(x []float64) {
	if r.o.Checkpoint != nil && r.o.Resume == nil {
		r.o.Checkpoint(&Checkpoint{X: append([]float64(nil), x...)})
	}
}

// report calls the progress callback, if any, with x given in x_t form
// scaled by a (1 for DDIM-type state, α for Euler-type x_t/α), and hands
// Options.Checkpoint the pending checkpoint (boundary) when X is read back.
func (r *runner) report(p schedule.Point, a float64, x, x0 Vec) error {
	i := r.index
	ck := r.pend
	r.pend = nil
	if _, host := r.sp.(*hostSpace); !host && r.o.Progress == nil && r.o.Preview == nil {
		ck = nil // off the host, nothing is read back unasked
	}
	if r.o.Progress == nil && ck == nil {
		r.index++
		return r.ctx.Err()
	}
	st := Step{Index: i, Total: r.total, NFE: r.nfe, Point: p}
	if r.previewNow() {
		if a == 1 {
			st.X = r.sp.Read(x)
		} else {
			xa := r.sp.New()
			r.sp.Lincomb(xa, T(a, x))
			st.X = r.sp.Read(xa)
			r.sp.Free(xa)
		}
		st.X0 = r.sp.Read(x0)
		if ck != nil {
			ck.X = append([]float64(nil), st.X...)
			for _, h := range r.pendHist {
				ck.History = append(ck.History, append([]float64(nil), r.sp.Read(h)...))
			}
		}
		if err := r.err(); err != nil {
			return err // what was read back may be garbage
		}
		if ck != nil {
			r.o.Checkpoint(ck)
		}
	}
	r.index++
	if r.o.Progress != nil {
		if err := r.o.Progress(st); err != nil {
			return err
		}
	}
	return r.ctx.Err()
}

// err is the Space's fault, if any (Faulter).
func (r *runner) err() error {
	if f, ok := r.sp.(Faulter); ok {
		return f.Err()
	}
	return nil
}

// scaled returns a·x as a new slice.
func scaled(a float64, x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = a * v
	}
	return out
}

// divided returns x/a as a new slice (a checkpoint's x_t back to x_t/α:
// dividing, not multiplying by 1/α, returns the state it was made from).
func divided(x []float64, a float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v / a
	}
	return out
}

// result reads x back as the Result.
func (r *runner) result(x Vec) (*Result, error) {
	res := &Result{X: append([]float64(nil), r.sp.Read(x)...), NFE: r.nfe}
	if r.o.Known != nil {
		r.pasteKnown(res.X)
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	return res, nil
}

// load returns a new vector holding a·v (host values).
func (r *runner) load(a float64, v []float64) Vec {
	x := r.sp.New()
	r.sp.Load(x, scaled(a, v))
	return x
}

// start returns the first grid step to take and the batch there in x_t
// form: step 0 and InitSigma·noise, or o.Resume's (then also setting the
// evaluation count, and the progress index to evalsBefore(step)).
func (r *runner) start(g schedule.Grid, noise []float64, evalsBefore func(step int) int) (int, Vec, error) {
	c := r.o.Resume
	if c == nil {
		x := scaled(g.InitSigma, noise)
		if !r.eulerType {
			r.checkpoint(x)
		}
		v := r.sp.New()
		r.sp.Load(v, x)
		return 0, v, nil
	}
	if c.Step < 0 || c.Step > len(g.Steps) {
		return 0, nil, fmt.Errorf("sampler: checkpoint at step %d of a %d-step grid", c.Step, len(g.Steps))
	}
	if len(c.X) != len(noise) {
		return 0, nil, fmt.Errorf("sampler: checkpoint has %d values for a batch of %d", len(c.X), len(noise))
	}
	r.nfe = c.NFE
	r.index = evalsBefore(c.Step)
	return c.Step, r.load(1, c.X), nil
}

// startPoint is the noise level of a checkpoint at grid step i.
func startPoint(g schedule.Grid, i int) schedule.Point {
	if i < len(g.Steps) {
		return g.Steps[i].From
	}
	return g.Steps[len(g.Steps)-1].To
}

func oneEval(step int) int { return step }

// history loads a resumed run's History (the multistep samplers' vectors
// at earlier points, newest first: need of them), or returns nil vectors
// when not resuming.
func (r *runner) history(need int, what string) ([]Vec, error) {
	c := r.o.Resume
	if c == nil || need == 0 {
		return nil, nil
	}
	if len(c.History) < need {
		return nil, fmt.Errorf("sampler: %s checkpoint at step %d has %d history vectors, needs %d", what, c.Step, len(c.History), need)
	}
	out := make([]Vec, need)
	for k := range out {
		if len(c.History[k]) != r.b*r.n {
			return nil, fmt.Errorf("sampler: %s checkpoint history %d has %d values for a batch of %d", what, k, len(c.History[k]), r.b*r.n)
		}
		out[k] = r.load(1, c.History[k])
	}
	return out, nil
}
