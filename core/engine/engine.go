// Package engine is the one request path from a sampling request to a
// sampler run: the CLI (`diffuse sample`), the browser app's worker
// (wasm/app, a thin syscall/js bridge over this package), the reference
// sampler of the browser tests (wasm/app/cmd/refsample) and the Go benches
// all go through it. It checks and loads a weights file, describes the
// model and the samplers (Samplers, the registry as the page sees it),
// validates a Request against the sampler's parameter declarations
// (core/sampler Param) and the model (sampler.Model.Labels), and runs it
// with a per-step callback and a context to cancel it (Run).
//
// It is pure Go: it builds natively and for js/wasm, so its tests (and the
// reference images the browser tests compare against) run without a
// browser.
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
	"github.com/diffuse-web/diffuse/core/unet"
)

// DefaultScheduler is the schedule given to a model file that carries none
// (no model.KeyScheduler metadata): Ho et al. 2020's DDPM schedule, linear
// betas 1e-4..0.02 over 1000 steps, epsilon prediction — diffusers'
// DDPMScheduler defaults.
const DefaultScheduler = `{"_class_name":"DDPMScheduler","num_train_timesteps":1000,` +
	`"beta_schedule":"linear","beta_start":0.0001,"beta_end":0.02,"prediction_type":"epsilon"}`

// Limits on what a page may ask for (PageCaps), so a typo in a shared link
// cannot make the tab allocate gigabytes or run for hours.
const (
	MaxBatch  = 4096    // samples per request (2-D toy models draw clouds of points)
	MaxValues = 1 << 22 // values per batch (batch × C × H × W)
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
	Arch        string `json:"arch"`  // network family (model.KeyArch)
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
	DefaultSchedule bool `json:"defaultSchedule"`
	// Samplers names the registry samplers that run this model: all but
	// those written for another model family (sampler.Info.Requires:
	// flow_euler/flow_heun need a flow-matching model, consistency a
	// consistency model). A sampler picker offers these.
	Samplers []string `json:"samplers"`
	Params   int64    `json:"params"` // number of weights
	Bytes    int      `json:"bytes"`
	SHA256   string   `json:"sha256"`
}

// Loaded is a checked, parsed model with its schedule.
type Loaded struct {
	Model    *model.Model
	Schedule *schedule.Schedule
	Info     Info
	// Caps bound the requests Options accepts (zero: PageCaps).
	Caps Caps

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
func FromModel(m *model.Model) (*Loaded, error) { return FromModelShape(m, m.InShape()) }

// FromModelShape is FromModel for samples of shape [C, H, W] (the CLI's
// --size, for a model that does not record its sample size).
func FromModelShape(m *model.Model, shape []int) (*Loaded, error) {
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
	for name, p := range m.Params {
		if !strings.HasSuffix(name, unet.FixedSuffix) { // the loader's, not the checkpoint's
			n += int64(tensor.Numel(p.Shape))
		}
	}
	info := Info{
		Arch:            m.Arch,
		Shape:           shape,
		Conditional:     cond,
		Classes:         classes,
		NullClass:       m.NullClass,
		Guidance:        cond && m.NullClass >= 0,
		Schedule:        describe(s),
		Prediction:      s.Config.PredictionType,
		Samplers:        supported(s),
		Range:           [2]float64{lo, hi},
		DefaultSchedule: defaulted,
		Params:          n,
	}
	return &Loaded{Model: m, Schedule: s, Info: info, checkRun: m.CheckRun}, nil
}

// supported lists the samplers that run a model with schedule s.
func supported(s *schedule.Schedule) []string {
	var out []string
	for _, i := range sampler.List() {
		if i.Supports(s) {
			out = append(out, i.Name)
		}
	}
	return out
}

func describe(s *schedule.Schedule) string {
	c := s.Config
	switch s.Kind {
	case schedule.VP:
		return fmt.Sprintf("VP-SDE, β %g…%g", c.BetaMin, c.BetaMax)
	case schedule.VE:
		if c.PredictionType == "consistency" {
			return fmt.Sprintf("consistency model, σ %.3g…%.3g", s.MinLevel(), s.MaxLevel())
		}
		return fmt.Sprintf("VE-SDE, σ %.3g…%.3g", s.MinLevel(), s.MaxLevel())
	case schedule.Flow:
		return fmt.Sprintf("flow matching, shift %g", c.FlowShift())
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

// SamplerInfo is one registry entry as the page and <diffusion-sampler>
// show it: core/sampler's Info without its function. Its parameters are
// sampler.Param, declared once there (label, kind, range, default); the
// steps range ends at the page's cap (PageCaps.Steps).
type SamplerInfo struct {
	Name         string          `json:"name"`
	Display      string          `json:"display"`
	Summary      string          `json:"summary"`
	Stochastic   bool            `json:"stochastic"`
	Order        int             `json:"order"`
	DefaultSteps int             `json:"defaultSteps"`
	Params       []sampler.Param `json:"params"`
	// Requires is the model family the sampler is for ("flow",
	// "consistency"), empty for any: a picker offers it only for such models.
	Requires string `json:"requires,omitempty"`
}

// Samplers describes the registry (sampler.List) to the page: the worker
// sends it at start-up, and the page and the <diffusion-sampler> element
// build their sampler pickers and parameter inputs from it.
func Samplers() []SamplerInfo {
	var out []SamplerInfo
	for _, i := range sampler.List() {
		si := SamplerInfo{Name: i.Name, Display: i.Display, Summary: i.Summary, Stochastic: i.Stochastic, Order: i.Order,
			DefaultSteps: i.DefaultSteps, Params: append([]sampler.Param(nil), i.Params...), Requires: i.Requires}
		for k, p := range si.Params {
			if p.Name == "steps" {
				si.Params[k].Max = math.Min(p.Max, PageCaps.Steps)
			}
		}
		out = append(out, si)
	}
	return out
}

// Caps bound a request beyond its parameters' own ranges: what one run may
// cost. Zero fields mean no cap.
type Caps struct {
	Steps  float64 // sampler steps
	Batch  int     // samples per request
	Values int     // values per batch (batch × C × H × W)
}

// PageCaps are the page's: a typo in a shared link must not make the tab
// allocate gigabytes or run for hours. A Loaded with zero Caps uses them.
var PageCaps = Caps{Steps: 1000, Batch: MaxBatch, Values: MaxValues}

// Request is one sampling job, as the page sends it (JSON) and as the CLI
// builds it from its flags.
type Request struct {
	Sampler  string  `json:"sampler"`
	Steps    int     `json:"steps"`    // 0: the sampler's default
	Eta      float64 `json:"eta"`      // DDIM's η; the ancestral/SDE samplers' noise scale (0: their default 1)
	Guidance float64 `json:"guidance"` // classifier-free guidance scale (0 or 1: none)
	// Class is the class label for every sample of the batch; nil means
	// unconditional (the null class, when the model has one).
	Class *int   `json:"class"`
	Seed  uint64 `json:"seed"`
	Batch int    `json:"batch"` // 0 means 1
	// FirstSample is the index of the batch's first sample in a larger
	// request split into batches (the CLI's --n over --batch): sample i
	// draws the noise of sample FirstSample+i, so batching never changes
	// the samples.
	FirstSample int `json:"firstSample"`
	// SeedTo, when set, makes the batch a morph between two seeds: sample i
	// starts from slerp(noise(Seed), noise(SeedTo), i/(Batch-1)), the
	// spherical interpolation of the two seeds' starting noises (with a
	// deterministic sampler, a smooth path between their two samples).
	SeedTo *uint64 `json:"seedTo"`
	// Sigmas overrides the sigma spacing ("", uniform, karras, exponential,
	// polyexponential).
	Sigmas string `json:"sigmas"`
	// ClipDenoised clips every x̂0 to the data range (sampler.Options.ClipDenoised):
	// an option that changes the method, off by default.
	ClipDenoised bool `json:"clipDenoised"`
	// TimestepSpacing replaces the model's timestep_spacing for this run
	// ("" keeps it; leading, trailing or linspace; discrete schedules only).
	TimestepSpacing string `json:"timestepSpacing"`
	// Params holds the sampler's other numeric parameters by registry name
	// (rtol, atol, end_time, snr, corrector_steps, shift; steps/eta/guidance are
	// accepted here too).
	Params map[string]float64 `json:"params"`

	// Mode is what the run does with the model (modes.go): "" samples;
	// "invert" maps Image to its DDIM noise (sampler ddim); "sdedit"
	// completes Image from noise level Strength; "inpaint" keeps Image
	// where Mask is 1 and generates the rest.
	Mode string `json:"mode"`
	// Image is one sample (C·H·W values in the model's data range) for
	// the modes that start from an image, used for every sample of the batch.
	Image []float32 `json:"image"`
	// Mask is inpainting's known region: 1 keeps Image, 0 generates; C·H·W
	// values, or H·W (one per pixel, for every channel).
	Mask []float32 `json:"mask"`
	// Strength is SDEdit's start, 0…1 of the grid (1: from pure noise).
	Strength float64 `json:"strength"`
	// Resample > 1 makes inpainting RePaint's (sampler ddpm only): that
	// many passes over every block of JumpLength steps (default 10;
	// sampler.RePaint). 0 or 1: known-region replacement alone.
	Resample   int `json:"resample"`
	JumpLength int `json:"jumpLength"`
	// Noise, when set, is the starting unit noise (one sample for the whole
	// batch, or the batch) instead of the seed's: an inverted image's, to
	// regenerate it. With NoiseTo the batch morphs from Noise to NoiseTo
	// (slerp, as SeedTo does).
	Noise   []float32 `json:"noise"`
	NoiseTo []float32 `json:"noiseTo"`
}

// RequestError is a request the page should not have sent (a bad value in a
// hand-edited link, say); Field names the parameter.
type RequestError struct {
	Field, Msg string
}

func (e *RequestError) Error() string { return e.Field + ": " + e.Msg }

// asRequestError names the field of the sampler package's option errors.
func asRequestError(err error) error {
	var (
		le *limits.Error
		oe *sampler.OptionError
	)
	switch {
	case errors.As(err, &le):
		return &RequestError{le.Field, fmt.Sprintf("%v %s", le.Value, le.Limit)}
	case errors.As(err, &oe):
		return &RequestError{oe.Field, oe.Msg}
	}
	return &RequestError{"options", err.Error()}
}

// Check validates what of r does not depend on the model: the sampler's
// name, its parameters against their declarations (sampler.Param, through
// Options.Check) and the timestep spacing. The CLI calls it before it
// loads a model; Options calls it too.
func (r *Request) Check() error {
	_, _, err := r.options()
	return err
}

func (r *Request) options() (sampler.Info, *sampler.Options, error) {
	info, ok := sampler.Get(r.Sampler)
	if !ok {
		return info, nil, &RequestError{"sampler", fmt.Sprintf("unknown sampler %q (have %s)", r.Sampler, sampler.Names())}
	}
	takes := map[string]bool{}
	for _, p := range info.Params {
		takes[p.Name] = true
	}
	o := &sampler.Options{Steps: r.Steps, Eta: r.Eta, Guidance: r.Guidance, Seed: r.Seed, FirstSample: r.FirstSample,
		Sigmas: r.Sigmas, ClipDenoised: r.ClipDenoised}
	for k, v := range r.Params {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return info, nil, &RequestError{k, "not a finite number"}
		}
		if !takes[k] {
			return info, nil, &RequestError{k, fmt.Sprintf("sampler %s takes no parameter %q", info.Name, k)}
		}
		if !o.Set(k, v) {
			return info, nil, &RequestError{k, "this engine does not know how to pass it to the sampler"}
		}
	}
	if r.FirstSample < 0 {
		return info, nil, &RequestError{"firstSample", fmt.Sprintf("%d is negative", r.FirstSample)}
	}
	// The samplers' own bounds (the same ones the CLI applies).
	if err := o.Check(); err != nil {
		return info, nil, asRequestError(err)
	}
	if o.Steps > 0 && !takes["steps"] {
		o.Steps = 0 // adaptive samplers choose their own steps
	}
	if o.Eta != 0 && !takes["eta"] {
		return info, nil, &RequestError{"eta", fmt.Sprintf("sampler %s has no η", info.Name)}
	}
	switch r.TimestepSpacing {
	case "", "leading", "trailing", "linspace":
	default:
		return info, nil, &RequestError{"timestepSpacing", fmt.Sprintf("unknown spacing %q (leading, trailing or linspace)", r.TimestepSpacing)}
	}
	return info, o, nil
}

// caps is l.Caps, or PageCaps when unset.
func (l *Loaded) caps() Caps {
	if l.Caps == (Caps{}) {
		return PageCaps
	}
	return l.Caps
}

// SamplerModel is the sampler's view of l with the network net: its
// schedule, sample shape and class labels.
func (l *Loaded) SamplerModel(net model.Denoiser) *sampler.Model {
	return l.samplerModel(net, l.Schedule)
}

// samplerModel is SamplerModel with the schedule s.
func (l *Loaded) samplerModel(net model.Denoiser, s *schedule.Schedule) *sampler.Model {
	classes := sampler.Unconditional
	if l.Info.Conditional {
		classes = l.Info.Classes
	}
	return &sampler.Model{Net: net, Schedule: s, Shape: l.Info.Shape, NullClass: l.Info.NullClass, Classes: classes}
}

// Options validates r against the model and the sampler's parameter list and
// builds the sampler's options (without Progress).
func (l *Loaded) Options(r Request) (sampler.Info, *sampler.Options, error) {
	info, o, err := r.options()
	if err != nil {
		return info, nil, err
	}
	c := l.caps()
	if c.Steps > 0 && float64(o.Steps) > c.Steps {
		return info, nil, &RequestError{"steps", fmt.Sprintf("%d is outside 1…%g", o.Steps, c.Steps)}
	}
	b := r.batch()
	if b < 1 || (c.Batch > 0 && b > c.Batch) {
		return info, nil, &RequestError{"batch", fmt.Sprintf("%d is outside 1…%d", b, c.Batch)}
	}
	if n := tensor.Numel(l.Info.Shape); c.Values > 0 && b*n > c.Values {
		return info, nil, &RequestError{"batch", fmt.Sprintf("%d samples of %v are too many (at most %d)", b, l.Info.Shape, c.Values/n)}
	}
	if r.Class != nil {
		o.Class = []int{*r.Class}
	}
	_, guided, err := l.samplerModel(nil, l.Schedule).Labels(o, b)
	if err != nil {
		return info, nil, asRequestError(err)
	}
	calls := b
	if guided {
		calls *= 2 // the conditional and unconditional passes share one call
	}
	// Memory for the whole run, checked before anything is allocated.
	if err := l.fits(b, calls); err != nil {
		return info, nil, &RequestError{"batch", err.Error() + "; choose a smaller batch"}
	}
	return info, o, nil
}

// batch is r.Batch, 0 meaning 1.
func (r *Request) batch() int {
	if r.Batch == 0 {
		return 1
	}
	return r.Batch
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

// ResidentSampler is a backend that runs the core/sampler functions itself
// with the sample's vectors kept on its device (the WebGPU backend's
// sampler.Space), so that it can hand a fault's last checkpoint on
// (webgpu.InterruptedError), instead of serving one network call per step. Sample is sampler.Run's contract, except that
// Progress gets X and X0 only at the evaluations o.Preview picks, and
// o.Resume is never set: a run that starts from a checkpoint (SDEdit) keeps
// its vectors on the host, as the WebGPU sampler starts only from noise.
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
	b := r.batch()
	sched, err := l.schedule(r)
	if err != nil {
		return nil, err
	}
	m := l.samplerModel(net, sched)
	start := time.Now()
	last := start
	rs, resident := net.(ResidentSampler)
	resident = resident && rs.Supports(info.Name)
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
	noise, err := l.startNoise(r, b)
	if err != nil {
		return nil, err
	}
	md, err := l.mode(r, b, info, plan, noise, o)
	if err != nil {
		return nil, err
	}
	if md.done != nil { // SDEdit at strength 0: the image itself
		return &Result{X: f32(md.done), Shape: append([]int{b}, l.Info.Shape...), Steps: plan.Steps, End: plan.End}, nil
	}
	resident = resident && md.resident && o.Resume == nil
	var res *sampler.Result
	switch {
	case md.invert:
		res, err = sampler.InvertDDIM(ctx, m, md.data, o)
	case md.repaint:
		res, err = sampler.RePaint(ctx, m, noise, o, md.jump, r.Resample)
	case resident:
		res, err = rs.Sample(ctx, info.Name, m, noise, o)
	default:
		res, err = info.Func(ctx, m, noise, o)
	}
	if err != nil {
		return nil, err
	}
	end := plan.End
	if md.invert {
		end = plan.grid.Steps[0].From
	}
	return &Result{
		X:       f32(res.X),
		Shape:   append([]int{b}, l.Info.Shape...),
		NFE:     res.NFE,
		TotalMs: float64(time.Since(start).Microseconds()) / 1e3,
		Steps:   plan.Steps,
		End:     end,
	}, nil
}

// seedNoise is the starting noise of the seed(s) of r: InitialNoise, or
// the SeedTo morph.
func (l *Loaded) seedNoise(r Request, b int) ([]float64, error) {
	var noise []float64
	if r.SeedTo != nil {
		if r.FirstSample != 0 {
			return nil, &RequestError{"seedTo", "a morph between two seeds is one batch (firstSample 0)"}
		}
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
		noise = sampler.InitialNoise(r.Seed, r.FirstSample, b, l.Info.Shape)
	}
	return noise, nil
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
	// grid is the sampler's grid (empty for rk45): SDEdit starts on it.
	grid schedule.Grid
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
	s = s.WithSigmaRho(o.Rho)
	s = s.WithShift(o.Shift)
	steps := o.Steps
	if steps == 0 {
		steps = info.DefaultSteps
	}
	if !info.Supports(s) {
		return nil, &RequestError{"sampler", fmt.Sprintf("sampler %s is for %s models only", info.Name, info.Requires)}
	}
	p := &Plan{Evals: -1, End: s.CleanPoint()}
	var g schedule.Grid
	switch info.Name {
	case "flow_euler", "flow_heun":
		g, err = s.FlowGrid(steps, o.Sigmas)
	case "consistency":
		g, err = s.ConsistencyGrid(steps)
	case "ddim":
		g, err = s.DDIMGrid(steps, o.Sigmas)
	case "ddpm", "em", "pc":
		g, err = s.DDPMGrid(steps, o.Sigmas)
	case "euler", "euler_ancestral", "heun",
		"dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde", "lms":
		g, err = s.EulerGrid(steps, o.Sigmas)
	case "dpmpp_2m", "dpmpp_3m", "dpmpp_3m_diffusers", "deis", "unipc", "unipc_bh1":
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
	p.grid = g
	p.End = g.Steps[len(g.Steps)-1].To
	p.Evals = p.Steps
	if info.Name == "consistency" {
		p.End = s.CleanPoint() // its last step returns x̂0 at σ_min
	}
	switch info.Name {
	case "heun", "flow_heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde":
		// two evaluations per step, one for a step to σ = 0 (sampler.HeunEvals)
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
	o := &sampler.Options{}
	if class != nil {
		o.Class = []int{*class}
	}
	cls, _, err := l.samplerModel(net, l.Schedule).Labels(o, b)
	if err != nil {
		return nil, asRequestError(err)
	}
	t := make([]float32, b)
	for i := range t {
		t[i] = l.Schedule.NetTime(p)
	}
	in := append([]float32(nil), xs...)
	if c := float32(l.Schedule.InputScale(p)); c != 1 {
		for i := range in {
			in[i] *= c // c_in of consistency models
		}
	}
	y, err := net.Denoise(tensor.From(in, append([]int{b}, l.Info.Shape...)...), t, cls)
	if err != nil {
		return nil, err
	}
	pc, err := sampler.PredictionFor(l.Schedule, p)
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
		ie *ImportError
	)
	return errors.As(err, &se) || errors.As(err, &ce) || errors.As(err, &fe) || errors.As(err, &re) || errors.As(err, &ie)
}
