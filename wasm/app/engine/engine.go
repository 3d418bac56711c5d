// Package engine is the part of the browser app's Go side that does not touch
// JavaScript: it checks and loads a downloaded weights file, describes the
// model and the samplers to the page, turns a page's sample request into
// sampler options, and runs the sampler with a per-step callback.
//
// It builds natively as well as for js/wasm, so its tests (and the reference
// images the browser tests compare against) run without a browser; the
// syscall/js bridge in the parent package is a thin layer over it.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// DefaultScheduler is the schedule given to a model file that carries none
// (no model.KeyScheduler metadata): Ho et al. 2020's DDPM schedule, linear
// betas 1e-4..0.02 over 1000 steps, epsilon prediction — diffusers'
// DDPMScheduler defaults.
const DefaultScheduler = `{"_class_name":"DDPMScheduler","num_train_timesteps":1000,` +
	`"beta_schedule":"linear","beta_start":0.0001,"beta_end":0.02,"prediction_type":"epsilon"}`

// Limits on what a page may ask for, so a typo in a shared link cannot make
// the tab allocate gigabytes or run for hours.
const (
	MaxBatch  = 4096    // samples per request (2-D toy models draw clouds of points)
	MaxValues = 1 << 22 // values per batch (batch × C × H × W)
	MaxSteps  = 1000
)

// SizeError says a download is not the size the manifest promised: almost
// always a truncated transfer.
type SizeError struct {
	Got, Want int64
}

func (e *SizeError) Error() string {
	if e.Got < e.Want {
		return fmt.Sprintf("the weights file is incomplete: received %s of %s (the download was cut short)",
			humanBytes(e.Got), humanBytes(e.Want))
	}
	return fmt.Sprintf("the weights file has the wrong size: %s, the manifest says %s", humanBytes(e.Got), humanBytes(e.Want))
}

// ChecksumError says a download's SHA-256 differs from the manifest's.
type ChecksumError struct {
	Got, Want string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("the weights file is corrupted: its SHA-256 is %s…, the manifest says %s…", short(e.Got), short(e.Want))
}

// FormatError says the bytes are not a model file this build can run.
type FormatError struct {
	Err error
}

func (e *FormatError) Error() string { return "not a usable model file: " + e.Err.Error() }
func (e *FormatError) Unwrap() error { return e.Err }

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Info describes a loaded model to the page.
type Info struct {
	Shape       []int  `json:"shape"` // [C, H, W] of one sample
	Conditional bool   `json:"conditional"`
	Classes     int    `json:"classes"`   // number of class labels (conditional models)
	NullClass   int    `json:"nullClass"` // "no class" label, -1 if none
	Guidance    bool   `json:"guidance"`  // classifier-free guidance is possible
	Schedule    string `json:"schedule"`  // one line, e.g. "discrete linear β 0.0001…0.02, 1000 steps"
	Prediction  string `json:"prediction"`
	// Range is the data range [lo, hi] the model's samples live in
	// (schedule data_range; default [-1, 1]): lo shows as black, hi as white.
	Range [2]float64 `json:"range"`
	// DefaultSchedule is true when the file had no schedule and
	// DefaultScheduler was used.
	DefaultSchedule bool   `json:"defaultSchedule"`
	Params          int64  `json:"params"` // number of weights
	Bytes           int    `json:"bytes"`
	SHA256          string `json:"sha256"`
}

// Loaded is a checked, parsed model with its schedule.
type Loaded struct {
	Model    *model.Model
	Schedule *schedule.Schedule
	Info     Info

	// checkRun is Model.CheckRun: the memory budget of a run. FromModel
	// sets it; a Loaded around a stand-in network (tests) has none.
	checkRun func(batch, calls, height, width int, extra ...limits.Part) error
}

// fits applies the memory budget, when there is one.
func (l *Loaded) fits(batch, calls int) error {
	if l.checkRun == nil {
		return nil
	}
	return l.checkRun(batch, calls, l.Info.Shape[1], l.Info.Shape[2])
}

// Load checks data against the manifest's size and SHA-256 (either may be
// empty/negative to skip), parses it and builds the model and its schedule.
// Errors are *SizeError, *ChecksumError or *FormatError, each with a message
// meant for the page.
func Load(data []byte, wantSHA256 string, wantSize int64) (*Loaded, error) {
	if wantSize >= 0 && int64(len(data)) != wantSize {
		return nil, &SizeError{Got: int64(len(data)), Want: wantSize}
	}
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if wantSHA256 != "" && !strings.EqualFold(got, wantSHA256) {
		return nil, &ChecksumError{Got: got, Want: strings.ToLower(wantSHA256)}
	}
	f, err := safetensors.Read(data)
	if err != nil {
		return nil, &FormatError{err}
	}
	m, err := model.FromSafetensors(f)
	if err != nil {
		return nil, &FormatError{err}
	}
	l, err := FromModel(m)
	if err != nil {
		return nil, err
	}
	l.Info.Bytes = len(data)
	l.Info.SHA256 = got
	return l, nil
}

// FromModel wraps an already built model, giving it DefaultScheduler when it
// has no schedule.
func FromModel(m *model.Model) (*Loaded, error) {
	shape := m.InShape()
	if len(shape) != 3 || shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0 {
		return nil, &FormatError{fmt.Errorf("the model does not say its sample size (got %v)", shape)}
	}
	cfg := []byte(m.Scheduler)
	defaulted := len(strings.TrimSpace(string(cfg))) == 0 || string(cfg) == "null"
	if defaulted {
		cfg = []byte(DefaultScheduler)
	}
	s, err := schedule.Parse(cfg)
	if err != nil {
		return nil, &FormatError{err}
	}
	lo, hi := s.Config.Range()
	cond, classes := m.Conditional()
	var n int64
	for _, p := range m.Params {
		n += int64(tensor.Numel(p.Shape))
	}
	info := Info{
		Shape:           shape,
		Conditional:     cond,
		Classes:         classes,
		NullClass:       m.NullClass,
		Guidance:        cond && m.NullClass >= 0,
		Schedule:        describe(s),
		Prediction:      s.Config.PredictionType,
		Range:           [2]float64{lo, hi},
		DefaultSchedule: defaulted,
		Params:          n,
	}
	return &Loaded{Model: m, Schedule: s, Info: info, checkRun: m.CheckRun}, nil
}

func describe(s *schedule.Schedule) string {
	c := s.Config
	switch s.Kind {
	case schedule.VP:
		return fmt.Sprintf("VP-SDE, β %g…%g", c.BetaMin, c.BetaMax)
	case schedule.VE:
		return fmt.Sprintf("VE-SDE, σ %.3g…%.3g", s.MinLevel(), s.MaxLevel())
	}
	if c.TrainedBetas != nil {
		return fmt.Sprintf("discrete, trained betas, %d steps", c.NumTrainTimesteps)
	}
	switch c.BetaSchedule {
	case "linear", "scaled_linear", "sigmoid":
		return fmt.Sprintf("discrete %s β %g…%g, %d steps", c.BetaSchedule, c.BetaStart, c.BetaEnd, c.NumTrainTimesteps)
	}
	return fmt.Sprintf("discrete %s, %d steps", c.BetaSchedule, c.NumTrainTimesteps)
}

// ParamInfo is one sampler parameter as the page shows it.
type ParamInfo struct {
	Name    string   `json:"name"`
	Doc     string   `json:"doc"`
	Default float64  `json:"default"`
	Kind    string   `json:"kind"`              // "int", "float" or "choice"
	Choices []string `json:"choices,omitempty"` // for "choice"
	Min     float64  `json:"min"`
	Max     float64  `json:"max"`
}

// SamplerInfo is one registry entry as the page shows it.
type SamplerInfo struct {
	Name         string      `json:"name"`
	Summary      string      `json:"summary"`
	Stochastic   bool        `json:"stochastic"`
	Order        int         `json:"order"`
	DefaultSteps int         `json:"defaultSteps"`
	Params       []ParamInfo `json:"params"`
}

// paramKinds gives the page's input kind and range of every parameter name the
// registry uses. A parameter missing here is still listed (as a float).
var paramKinds = map[string]ParamInfo{
	"steps":           {Kind: "int", Min: 1, Max: MaxSteps},
	"eta":             {Kind: "float", Min: 0, Max: 1},
	"guidance":        {Kind: "float", Min: 0, Max: 20},
	"sigmas":          {Kind: "choice", Choices: []string{"", schedule.SigmasUniform, schedule.SigmasKarras, schedule.SigmasExponential}},
	"rtol":            {Kind: "float", Min: 1e-8, Max: 1},
	"atol":            {Kind: "float", Min: 1e-8, Max: 1},
	"end_time":        {Kind: "float", Min: 0, Max: 0.5},
	"snr":             {Kind: "float", Min: 0, Max: 1},
	"corrector_steps": {Kind: "int", Min: 0, Max: 10},
}

// Samplers lists the registry for the page.
func Samplers() []SamplerInfo {
	var out []SamplerInfo
	for _, i := range sampler.List() {
		si := SamplerInfo{Name: i.Name, Summary: i.Summary, Stochastic: i.Stochastic, Order: i.Order, DefaultSteps: i.DefaultSteps}
		for _, p := range i.Params {
			pi, ok := paramKinds[p.Name]
			if !ok {
				pi = ParamInfo{Kind: "float", Min: math.Inf(-1), Max: math.Inf(1)}
			}
			if math.IsInf(pi.Min, 0) || math.IsInf(pi.Max, 0) { // JSON has no infinities
				pi.Min, pi.Max = -1e9, 1e9
			}
			pi.Name, pi.Doc, pi.Default = p.Name, p.Doc, p.Default
			si.Params = append(si.Params, pi)
		}
		out = append(out, si)
	}
	return out
}

// Request is one sampling job as the page sends it.
type Request struct {
	Sampler  string  `json:"sampler"`
	Steps    int     `json:"steps"`    // 0: the sampler's default
	Eta      float64 `json:"eta"`      // DDIM's η
	Guidance float64 `json:"guidance"` // classifier-free guidance scale (0 or 1: none)
	// Class is the class label for every sample of the batch; nil means
	// unconditional (the null class, when the model has one).
	Class *int   `json:"class"`
	Seed  uint64 `json:"seed"`
	Batch int    `json:"batch"` // 0 means 1
	// SeedTo, when set, makes the batch a morph between two seeds: sample i
	// starts from slerp(noise(Seed), noise(SeedTo), i/(Batch-1)), the
	// spherical interpolation of the two seeds' starting noises (with a
	// deterministic sampler, a smooth path between their two samples).
	SeedTo *uint64 `json:"seedTo"`
	// Sigmas overrides the sigma spacing ("", uniform, karras, exponential).
	Sigmas string `json:"sigmas"`
	// ClipDenoised clips every x̂0 to the data range (sampler.Options.ClipDenoised):
	// an option that changes the method, off by default.
	ClipDenoised bool `json:"clipDenoised"`
	// TimestepSpacing replaces the model's timestep_spacing for this run
	// ("" keeps it; leading, trailing or linspace; discrete schedules only).
	TimestepSpacing string `json:"timestepSpacing"`
	// Params holds the sampler's other numeric parameters by registry name
	// (rtol, atol, end_time, snr, corrector_steps; steps/eta/guidance are
	// accepted here too).
	Params map[string]float64 `json:"params"`
}

// RequestError is a request the page should not have sent (a bad value in a
// hand-edited link, say); Field names the parameter.
type RequestError struct {
	Field, Msg string
}

func (e *RequestError) Error() string { return e.Field + ": " + e.Msg }

// Options validates r against the model and the sampler's parameter list and
// builds the sampler's options (without Progress).
func (l *Loaded) Options(r Request) (sampler.Info, *sampler.Options, error) {
	info, ok := sampler.Get(r.Sampler)
	if !ok {
		names := []string{}
		for _, i := range sampler.List() {
			names = append(names, i.Name)
		}
		return info, nil, &RequestError{"sampler", fmt.Sprintf("unknown sampler %q (have %s)", r.Sampler, strings.Join(names, ", "))}
	}
	takes := map[string]bool{}
	for _, p := range info.Params {
		takes[p.Name] = true
	}
	o := &sampler.Options{Steps: r.Steps, Eta: r.Eta, Guidance: r.Guidance, Seed: r.Seed, Sigmas: r.Sigmas, ClipDenoised: r.ClipDenoised}
	for k, v := range r.Params {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return info, nil, &RequestError{k, "not a finite number"}
		}
		if !takes[k] {
			return info, nil, &RequestError{k, fmt.Sprintf("sampler %s takes no parameter %q", info.Name, k)}
		}
		if pk, ok := paramKinds[k]; ok && pk.Kind != "choice" && (v < pk.Min || v > pk.Max) {
			return info, nil, &RequestError{k, fmt.Sprintf("%g is outside %g…%g", v, pk.Min, pk.Max)}
		}
		switch k {
		case "steps":
			o.Steps = int(v)
		case "eta":
			o.Eta = v
		case "guidance":
			o.Guidance = v
		case "rtol":
			o.RTol = v
		case "atol":
			o.ATol = v
		case "end_time":
			o.EndTime = v
		case "snr":
			o.SNR = v
		case "corrector_steps":
			o.CorrectorSteps = int(v)
		default:
			return info, nil, &RequestError{k, "this page does not know how to pass it to the sampler"}
		}
	}
	if o.Steps < 0 || o.Steps > MaxSteps {
		return info, nil, &RequestError{"steps", fmt.Sprintf("%d is outside 1…%d", o.Steps, MaxSteps)}
	}
	if o.Steps > 0 && !takes["steps"] {
		o.Steps = 0 // adaptive samplers choose their own steps
	}
	if o.Eta != 0 && !takes["eta"] {
		return info, nil, &RequestError{"eta", fmt.Sprintf("sampler %s has no η", info.Name)}
	}
	switch o.Sigmas {
	case "", schedule.SigmasUniform, schedule.SigmasKarras, schedule.SigmasExponential:
	default:
		return info, nil, &RequestError{"sigmas", fmt.Sprintf("unknown spacing %q (uniform, karras or exponential)", o.Sigmas)}
	}
	b := r.Batch
	if b == 0 {
		b = 1
	}
	if b < 1 || b > MaxBatch {
		return info, nil, &RequestError{"batch", fmt.Sprintf("%d is outside 1…%d", b, MaxBatch)}
	}
	if n := tensor.Numel(l.Info.Shape); b*n > MaxValues {
		return info, nil, &RequestError{"batch", fmt.Sprintf("%d samples of %v are too many (at most %d)", b, l.Info.Shape, MaxValues/n)}
	}
	if r.Class != nil {
		if !l.Info.Conditional {
			return info, nil, &RequestError{"class", "this model is unconditional"}
		}
		if c := *r.Class; c < 0 || c >= l.Info.Classes {
			return info, nil, &RequestError{"class", fmt.Sprintf("%d is outside 0…%d", c, l.Info.Classes-1)}
		}
		o.Class = []int{*r.Class}
	} else if l.Info.Conditional && l.Info.NullClass < 0 {
		return info, nil, &RequestError{"class", "this model needs a class label"}
	}
	calls := b
	if g := o.Guidance; g != 0 && g != 1 {
		if math.IsNaN(g) || g < 0 || g > 20 {
			return info, nil, &RequestError{"guidance", fmt.Sprintf("%g is outside 0…20", g)}
		}
		if !l.Info.Guidance {
			return info, nil, &RequestError{"guidance", "this model has no null class, so it cannot be guided"}
		}
		if r.Class == nil {
			return info, nil, &RequestError{"guidance", "guidance needs a class"}
		}
		calls *= 2 // the conditional and unconditional passes share one call
	}
	// The samplers' own bounds (the same ones the CLI applies).
	if err := o.Check(); err != nil {
		var le *limits.Error
		if errors.As(err, &le) {
			return info, nil, &RequestError{le.Field, fmt.Sprintf("%v %s", le.Value, le.Limit)}
		}
		return info, nil, &RequestError{"options", err.Error()}
	}
	// Memory for the whole run, checked before anything is allocated.
	if err := l.fits(b, calls); err != nil {
		return info, nil, &RequestError{"batch", err.Error() + "; choose a smaller batch"}
	}
	return info, o, nil
}

// Frame is what the page sees after each network evaluation.
type Frame struct {
	Index, Total, NFE int
	Point             schedule.Point
	// X and X0 are the batch in x_t form and the predicted clean data,
	// [B, C, H, W] row-major, converted to float32. They are nil on frames the
	// caller asked to skip (see Run's wantImages).
	X, X0 []float32
	// StepMs is the wall time since the previous frame (or the start).
	StepMs float64
	// Step is the step of the sampler's grid this evaluation belongs to
	// (from 0; Heun makes two evaluations per step, the predictor–corrector
	// CorrectorSteps+1) and Steps the grid's number of steps (0: an adaptive
	// sampler, whose Index counts its accepted steps). Progress estimates
	// the fraction of the run done, 0…1 (see Plan.Progress).
	Step, Steps int
	Progress    float64
}

// Result is a finished job.
type Result struct {
	X       []float32 // [B, C, H, W]
	Shape   []int
	NFE     int
	TotalMs float64
	// Steps is the grid's number of steps (0 for an adaptive sampler) and
	// End the noise point of X (Plan.End).
	Steps int
	End   schedule.Point
}

// ResidentSampler is a backend that runs some samplers whole, with the
// sample kept on its device (the WebGPU backend), instead of serving one
// network call per step. Sample is sampler.Run's contract, except that
// Progress gets X and X0 only at the evaluations o.Preview picks.
type ResidentSampler interface {
	Supports(name string) bool
	Sample(ctx context.Context, name string, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error)
}

// Run samples a batch with the network net. onFrame (may be nil) is called
// after each network evaluation; wantImages(index, total) says whether that
// frame carries images (nil: always; total is the expected number of
// frames, -1 when unknown). A non-nil error from onFrame stops the run.
//
// When net is a ResidentSampler that supports the request's sampler, it
// runs the whole job; it reads images back only for the frames wantImages
// picks (asked once per frame, when that evaluation is submitted), and the
// other frames come without images.
func (l *Loaded) Run(ctx context.Context, net model.Denoiser, r Request, wantImages func(index, total int) bool, onFrame func(*Frame) error) (*Result, error) {
	info, o, err := l.Options(r)
	if err != nil {
		return nil, err
	}
	b := r.Batch
	if b == 0 {
		b = 1
	}
	sched, err := l.schedule(r)
	if err != nil {
		return nil, err
	}
	m := &sampler.Model{Net: net, Schedule: sched, Shape: l.Info.Shape, NullClass: l.Model.NullClass}
	start := time.Now()
	last := start
	rs, resident := net.(ResidentSampler)
	// The GPU-resident samplers implement the plain methods only.
	resident = resident && rs.Supports(info.Name) && !o.ClipDenoised
	plan, err := plan(sched, info, o)
	if err != nil {
		return nil, err
	}
	if onFrame != nil {
		o.Progress = func(s sampler.Step) error {
			now := time.Now()
			f := &Frame{Index: s.Index, Total: s.Total, NFE: s.NFE, Point: s.Point, StepMs: float64(now.Sub(last).Microseconds()) / 1e3,
				Step: plan.StepOf(s.Index), Steps: plan.Steps, Progress: plan.Progress(s.Index, s.Point)}
			last = now
			if resident || wantImages == nil || wantImages(s.Index, s.Total) {
				f.X, f.X0 = f32(s.X), f32(s.X0)
			}
			return onFrame(f)
		}
		if resident {
			o.Preview = func(i, total int) bool { return wantImages == nil || wantImages(i, total) }
		}
	}
	var noise []float64
	if r.SeedTo != nil {
		a := sampler.InitialNoise(r.Seed, 0, 1, l.Info.Shape)
		z := sampler.InitialNoise(*r.SeedTo, 0, 1, l.Info.Shape)
		for i := 0; i < b; i++ {
			f := 0.0
			if b > 1 {
				f = float64(i) / float64(b-1)
			}
			noise = append(noise, sampler.Slerp(a, z, f)...)
		}
	} else {
		noise = sampler.InitialNoise(r.Seed, 0, b, l.Info.Shape)
	}
	var res *sampler.Result
	if resident {
		res, err = rs.Sample(ctx, info.Name, m, noise, o)
	} else {
		res, err = info.Func(ctx, m, noise, o)
	}
	if err != nil {
		return nil, err
	}
	return &Result{
		X:       f32(res.X),
		Shape:   append([]int{b}, l.Info.Shape...),
		NFE:     res.NFE,
		TotalMs: float64(time.Since(start).Microseconds()) / 1e3,
		Steps:   plan.Steps,
		End:     plan.End,
	}, nil
}

// Plan is what the page can know of a run before it runs: the number of
// steps of the sampler's grid (Steps; 0 for an adaptive sampler, which
// chooses its own), the network evaluations it will make (Evals; -1 when
// unknown: rk45), and End, the noise point of the result. End is the clean
// point (σ = 0) for every sampler of the registry, except where the model's
// schedule ends its grid above it (DDIM without set_alpha_to_one, a
// final_sigmas_type of sigma_min): the last progress frame is at the start
// of the last step, End is where that step lands.
type Plan struct {
	Steps, Evals int
	End          schedule.Point
	// From and To are rk45's span in log noise level (its progress is
	// measured along it); both 0 for the other samplers.
	From, To float64
	// evalStep is the grid step of each evaluation, where it is not the
	// evaluation's index (Heun, predictor–corrector).
	evalStep []int
}

// Plan validates r (as Run does) and describes the run it asks for.
func (l *Loaded) Plan(r Request) (*Plan, error) {
	info, o, err := l.Options(r)
	if err != nil {
		return nil, err
	}
	s, err := l.schedule(r)
	if err != nil {
		return nil, err
	}
	return plan(s, info, o)
}

// schedule is the model's schedule with the request's timestep spacing.
func (l *Loaded) schedule(r Request) (*schedule.Schedule, error) {
	switch r.TimestepSpacing {
	case "":
		return l.Schedule, nil
	case "leading", "trailing", "linspace":
	default:
		return nil, &RequestError{"timestepSpacing", fmt.Sprintf("unknown spacing %q (leading, trailing or linspace)", r.TimestepSpacing)}
	}
	if l.Schedule.Kind != schedule.Discrete {
		return nil, &RequestError{"timestepSpacing", "this model's schedule is continuous-time: it has no timesteps to space"}
	}
	s := *l.Schedule // grids read the spacing from the config when they are built
	s.Config.TimestepSpacing = r.TimestepSpacing
	return &s, nil
}

// plan builds the grid the sampler `info` builds for o (the same schedule
// functions, see core/sampler) and reads its size and end point.
func plan(sched *schedule.Schedule, info sampler.Info, o *sampler.Options) (*Plan, error) {
	s, err := sched.WithEndTime(o.EndTime)
	if err != nil {
		return nil, &RequestError{"end_time", err.Error()}
	}
	steps := o.Steps
	if steps == 0 {
		steps = info.DefaultSteps
	}
	p := &Plan{Evals: -1, End: s.CleanPoint()}
	var g schedule.Grid
	switch info.Name {
	case "ddim":
		g, err = s.DDIMGrid(steps, o.Sigmas)
	case "ddpm", "em", "pc":
		g, err = s.DDPMGrid(steps, o.Sigmas)
	case "euler", "euler_ancestral", "heun":
		g, err = s.EulerGrid(steps, o.Sigmas)
	case "dpmpp_2m", "dpmpp_3m", "dpmpp_3m_diffusers":
		g, err = s.DPMGrid(steps, o.Sigmas)
	case "rk45":
		// It integrates from the largest level to the end time's, then
		// denoises: its result is clean data.
		p.From, p.To, _ = sampler.RK45Span(s)
		return p, nil
	default: // a sampler this table does not know yet: its frames' count
		p.Steps = info.DefaultSteps
		if o.Steps > 0 {
			p.Steps = o.Steps
		}
		return p, nil
	}
	if err != nil {
		return nil, &RequestError{"steps", err.Error()}
	}
	if len(g.Steps) == 0 {
		return p, nil
	}
	p.Steps = len(g.Steps)
	p.End = g.Steps[len(g.Steps)-1].To
	p.Evals = p.Steps
	switch info.Name {
	case "heun": // two evaluations per step, one for a step to σ = 0 (sampler.HeunEvals)
		for i, st := range g.Steps {
			p.evalStep = append(p.evalStep, i)
			if !st.To.Clean() {
				p.evalStep = append(p.evalStep, i)
			}
		}
		p.Evals = len(p.evalStep)
	case "pc": // CorrectorSteps Langevin evaluations, then the predictor's
		_, nc := sampler.PCSettings(o.SNR, o.CorrectorSteps)
		for i := range g.Steps {
			for j := 0; j <= nc; j++ {
				p.evalStep = append(p.evalStep, i)
			}
		}
		p.Evals = len(p.evalStep)
	}
	return p, nil
}

// StepOf is the grid step (from 0) network evaluation i belongs to; for an
// adaptive sampler, i itself (its frames are its accepted steps).
func (p *Plan) StepOf(i int) int {
	if p.evalStep == nil {
		return i
	}
	if i < 0 {
		return 0
	}
	if i >= len(p.evalStep) {
		return p.Steps - 1
	}
	return p.evalStep[i]
}

// Progress estimates the fraction of the run done once evaluation i, at
// noise point pt, is made: (i+1)/Evals for a fixed grid; for rk45, how far
// pt's log noise level is along its span (the steps it will still take are
// unknown, the distance left is not).
func (p *Plan) Progress(i int, pt schedule.Point) float64 {
	f := 0.0
	switch {
	case p.Evals > 0:
		f = float64(i+1) / float64(p.Evals)
	case p.From != p.To && pt.Level > 0:
		f = (p.From - math.Log(pt.Level)) / (p.From - p.To)
	}
	if !(f >= 0) { // NaN too
		return 0
	}
	return math.Min(f, 1)
}

// Field is the network's prediction of clean data at noise point p for the
// points xs (x_t form, n samples of the model's shape back to back), with
// the class label `class` (nil: unconditional / the null class). The page
// draws the score field ∇log p_t(x) = (α·x̂0 − x)/σ² from it.
func (l *Loaded) Field(net model.Denoiser, p schedule.Point, xs []float32, class *int) ([]float32, error) {
	n := tensor.Numel(l.Info.Shape)
	if len(xs) == 0 || len(xs)%n != 0 {
		return nil, &RequestError{"points", fmt.Sprintf("%d values are not whole samples of %v", len(xs), l.Info.Shape)}
	}
	b := len(xs) / n
	if b > MaxBatch || !(p.Sigma > 0) || !(p.Alpha > 0) || math.IsInf(p.Sigma, 0) || math.IsInf(p.Alpha, 0) {
		return nil, &RequestError{"points", "too many points, or a noise level without noise"}
	}
	if err := limits.FiniteValues("points", xs); err != nil {
		return nil, &RequestError{"points", "the points must be finite numbers"}
	}
	if err := l.fits(b, b); err != nil {
		return nil, &RequestError{"points", err.Error()}
	}
	var cls []int
	switch {
	case class != nil:
		if !l.Info.Conditional || *class < 0 || *class >= l.Info.Classes {
			return nil, &RequestError{"class", fmt.Sprintf("no class %d", *class)}
		}
		cls = make([]int, b)
		for i := range cls {
			cls[i] = *class
		}
	case l.Info.Conditional:
		if l.Info.NullClass < 0 {
			return nil, &RequestError{"class", "this model needs a class label"}
		}
		cls = make([]int, b)
		for i := range cls {
			cls[i] = l.Info.NullClass
		}
	}
	t := make([]float32, b)
	for i := range t {
		t[i] = l.Schedule.NetTime(p)
	}
	y, err := net.Denoise(tensor.From(append([]float32(nil), xs...), append([]int{b}, l.Info.Shape...)...), t, cls)
	if err != nil {
		return nil, err
	}
	pc, err := sampler.PredictionAt(l.Schedule.Config.PredictionType, p)
	if err != nil {
		return nil, err
	}
	x0 := pc.X0Float32(xs, y.Data)
	return x0, nil
}

// f32 converts v (nil stays nil: a frame without images).
func f32(v []float64) []float32 {
	if v == nil {
		return nil
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// IsUserError reports whether err is the page's or the file's fault (a
// message to show as is) rather than an internal failure.
func IsUserError(err error) bool {
	var (
		se *SizeError
		ce *ChecksumError
		fe *FormatError
		re *RequestError
	)
	return errors.As(err, &se) || errors.As(err, &ce) || errors.As(err, &fe) || errors.As(err, &re)
}
