package sampler

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/schedule"
)

// The kinds of Param: what input a form shows for it.
const (
	KindInt    = "int"
	KindFloat  = "float"
	KindChoice = "choice"
)

// Param describes one option a sampler reads: the one declaration of its
// name, label, kind, accepted range and default, from which Options.Check
// bounds it, the CLI and the page's engine read it by name (Options.Set),
// and the page and <diffusion-sampler> build their controls.
type Param struct {
	Name  string `json:"name"`  // Options field name in snake case: steps, eta, rtol, ...
	Label string `json:"label"` // what a form calls it
	Doc   string `json:"doc"`   // one line
	Kind  string `json:"kind"`  // KindInt, KindFloat or KindChoice
	// Default is the value used when the option is zero.
	Default float64 `json:"default"`
	// Min and Max bound a non-zero value (zero means Default and always
	// passes); Choices are a KindChoice's values ("" is the default).
	Min     float64  `json:"min"`
	Max     float64  `json:"max"`
	Choices []string `json:"choices,omitempty"`
	// Suggested, when set, is where a form starts instead of Default: a
	// value that suits an interactive run better than the library's.
	Suggested float64 `json:"suggested,omitempty"`
	// ModelDefault says that zero means the model's own value (a form
	// leaves the field empty); Continuous that only continuous-time (SDE)
	// schedules read the option.
	ModelDefault bool `json:"modelDefault,omitempty"`
	Continuous   bool `json:"continuous,omitempty"`
}

// The parameters of the registry, each declared once. Ranges are where the
// method is defined (η: Song et al. 2021, eq. 16) or where a run stays
// sensible (a typo in a shared link must not make a tab run for hours).
var (
	pStepsBase = Param{Name: "steps", Label: "Steps", Doc: "number of steps", Kind: KindInt, Min: 1, Max: limits.MaxSteps}
	pEta       = Param{Name: "eta", Label: "η (eta)", Doc: "stochasticity η: 0 deterministic (ODE), 1 ancestral-like",
		Kind: KindFloat, Min: 0, Max: 1}
	pSigmas = Param{Name: "sigmas", Label: "σ spacing", Doc: "sigma spacing: uniform, karras, exponential or polyexponential (default: the model's config)",
		Kind: KindChoice, ModelDefault: true, Choices: []string{"", schedule.SigmasUniform, schedule.SigmasKarras, schedule.SigmasExponential,
			schedule.SigmasPolyexponential}}
	// pRho is the ρ of the Karras and polyexponential spacings
	// (schedule.WithSigmaRho); every sampler that takes sigmas takes it.
	pRho = Param{Name: "rho", Label: "Spacing ρ", Doc: "ρ of the karras (default 7) and polyexponential (default 1) spacings",
		Kind: KindFloat, Min: 0.1, Max: 20, ModelDefault: true}
	pEndTime = Param{Name: "end_time", Label: "End time ε",
		Doc:  "end time ε of continuous-time schedules before the final denoising (default: the schedule's)",
		Kind: KindFloat, Min: 0, Max: 0.5, ModelDefault: true, Continuous: true}
	pGuidance = Param{Name: "guidance", Label: "Guidance scale", Doc: "classifier-free guidance scale (1: none)",
		Kind: KindFloat, Default: 1, Min: 0, Max: 20}
	// A form starts rk45 at 1e-3, the score_sde code's likelihood
	// tolerance and plenty for an 8-bit picture: at the default 1e-5 it
	// took 794 network calls and 240 s for 4 guided MNIST digits in a
	// browser tab (issue 18).
	pRTol = Param{Name: "rtol", Label: "Relative tolerance", Doc: "relative tolerance", Kind: KindFloat, Default: 1e-5, Min: 1e-12, Max: 1,
		Suggested: 1e-3}
	pATol = Param{Name: "atol", Label: "Absolute tolerance", Doc: "absolute tolerance", Kind: KindFloat, Default: 1e-5, Min: 1e-12, Max: 1,
		Suggested: 1e-3}
	pSNR = Param{Name: "snr", Label: "Corrector SNR", Doc: "Langevin corrector signal-to-noise ratio r", Kind: KindFloat,
		Default: 0.16, Min: 0, Max: 1}
	// pShift overrides a flow-matching model's timestep shift
	// (schedule.ShiftTime; the config's "shift" by default).
	pShift = Param{Name: "shift", Label: "Shift", Doc: "flow-matching timestep shift (default: the model's config; >1 spends more steps at high noise)",
		Kind: KindFloat, Min: 0.05, Max: 20, ModelDefault: true, Continuous: true}
	pCorrectorSteps = Param{Name: "corrector_steps", Label: "Corrector steps", Doc: "Langevin steps per noise level", Kind: KindInt,
		Default: 1, Min: 0, Max: 10}
	// The multistep solvers' order (LMS, DEIS, UniPC): how many past
	// evaluations each step's polynomial uses.
	pOrderBase = Param{Name: "order", Label: "Order", Doc: "solver order: past evaluations each step uses", Kind: KindInt, Min: 1, Max: 4}
	// pEtaAncestral is η for k-diffusion's ancestral and SDE samplers,
	// whose default is 1 (full ancestral noise); zero means that default.
	// pSNoise is k-diffusion's s_noise: the factor on the fresh noise of
	// the ancestral and SDE samplers (slightly over 1 offsets detail lost
	// to an imperfect denoiser, Karras et al. 2022, section 4 "S_noise").
	pSNoise = Param{Name: "s_noise", Label: "Noise scale s_noise", Doc: "factor on the fresh noise of ancestral/SDE steps (default 1)",
		Kind: KindFloat, Default: 1, Min: 0.5, Max: 1.5}
	pEtaAncestral = Param{Name: "eta", Label: "η (eta)", Doc: "noise scale η of the ancestral/SDE step (default 1)",
		Kind: KindFloat, Default: 1, Min: 0, Max: 1}

	// pSteps is the steps parameter with a sampler's default.
	pSteps = func(d int) Param { p := pStepsBase; p.Default = float64(d); return p }
	// pOrder is the order parameter with a sampler's default.
	pOrder = func(d int) Param { p := pOrderBase; p.Default = float64(d); return p }
	// pCFG are the options every sampler takes.
	pCFG = []Param{pEndTime, pGuidance}

	// allParams lists every parameter once, for Options.Check.
	allParams = []Param{pStepsBase, pEta, pSigmas, pEndTime, pGuidance, pRTol, pATol, pSNR, pCorrectorSteps, pOrderBase, pRho, pSNoise, pShift}
)

// ParamByName finds a registry parameter by name.
func ParamByName(name string) (Param, bool) {
	for _, p := range allParams {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// value is the numeric option `name` of o (ok false for a choice or an
// unknown name).
func (o *Options) value(name string) (float64, bool) {
	switch name {
	case "steps":
		return float64(o.Steps), true
	case "eta":
		return o.Eta, true
	case "guidance":
		return o.Guidance, true
	case "rtol":
		return o.RTol, true
	case "atol":
		return o.ATol, true
	case "end_time":
		return o.EndTime, true
	case "snr":
		return o.SNR, true
	case "corrector_steps":
		return float64(o.CorrectorSteps), true
	case "order":
		return float64(o.Order), true
	case "rho":
		return o.Rho, true
	case "s_noise":
		return o.SNoise, true
	case "shift":
		return o.Shift, true
	}
	return 0, false
}

// Set sets the numeric option `name` (a Param's name) to v, reporting
// whether o has such an option. Integer options take v truncated; Check
// bounds the result.
func (o *Options) Set(name string, v float64) bool {
	switch name {
	case "steps":
		o.Steps = clampInt(v)
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
		o.CorrectorSteps = clampInt(v)
	case "order":
		o.Order = clampInt(v)
	case "rho":
		o.Rho = v
	case "s_noise":
		o.SNoise = v
	case "shift":
		o.Shift = v
	default:
		return false
	}
	return true
}

// clampInt converts v to an int that keeps its sign and out-of-range-ness
// (Check then refuses it) without overflowing.
func clampInt(v float64) int {
	if math.IsNaN(v) {
		return -1
	}
	return int(math.Max(-1<<31, math.Min(1<<31, v)))
}

// Check refuses options no sampler can honour: each parameter outside its
// Param's range (a zero value is the default and always passes), a float
// that is not finite, a sigma spacing that is not one of the choices. Each
// message names the option. Samplers call it before anything runs.
func (o *Options) Check() error {
	for _, p := range allParams {
		if p.Kind == KindChoice {
			continue
		}
		v, _ := o.value(p.Name)
		if p.Kind == KindInt {
			if v != 0 {
				if err := limits.Int(p.Name, int64(v), int64(p.Min), int64(p.Max)); err != nil {
					return err
				}
			}
			continue
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &limits.Error{Field: p.Name, Value: v, Limit: "must be a finite number"}
		}
		if v != 0 {
			if err := limits.Float(p.Name, v, p.Min, p.Max); err != nil {
				return err
			}
		}
	}
	if !slices.Contains(pSigmas.Choices, o.Sigmas) {
		return &OptionError{"sigmas", fmt.Sprintf("unknown spacing %q (uniform, karras, exponential or polyexponential)", o.Sigmas)}
	}
	return nil
}

// Unconditional is Model.Classes of a model known to take no class labels.
const Unconditional = -1

// OptionError is an option that does not fit the model or the rest of the
// request (a class label the model does not have, guidance without one);
// Field names the option as Param does.
type OptionError struct {
	Field, Msg string
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Msg }

// Labels resolves o.Class and o.Guidance for a batch of b samples of m: one
// label per sample (nil for an unconditional model sampled without labels;
// the null class when no label is given and the model has one) and whether
// classifier-free guidance is on (a scale other than 0 and 1). It is the one
// check of labels and guidance: the samplers, the WebGPU backend and the
// request engine (core/engine) all call it. Errors are *OptionError on
// "class" or "guidance".
func (m *Model) Labels(o *Options, b int) (cls []int, guided bool, err error) {
	var class []int
	var g float64
	if o != nil {
		class, g = o.Class, o.Guidance
	}
	for _, c := range class {
		switch {
		case m.Classes == Unconditional:
			return nil, false, &OptionError{"class", "the model is not class-conditional"}
		case m.Classes > 0 && (c < 0 || c >= m.Classes) && (m.NullClass < 0 || c != m.NullClass):
			return nil, false, &OptionError{"class", fmt.Sprintf("%d is outside 0…%d", c, m.Classes-1)}
		}
	}
	switch len(class) {
	case 0:
		if m.NullClass >= 0 {
			cls = make([]int, b)
			for i := range cls {
				cls[i] = m.NullClass
			}
		} else if m.Classes > 0 {
			return nil, false, &OptionError{"class", "this model needs a class label"}
		}
	case 1, b:
		cls = make([]int, b)
		for i := range cls {
			cls[i] = class[i%len(class)]
		}
	default:
		return nil, false, &OptionError{"class", fmt.Sprintf("%d class labels for a batch of %d", len(class), b)}
	}
	if g != 0 && g != 1 {
		switch {
		case math.IsNaN(g) || math.IsInf(g, 0):
			return nil, false, &OptionError{"guidance", fmt.Sprintf("bad guidance scale %v", g)}
		case m.Classes == Unconditional:
			return nil, false, &OptionError{"guidance", "needs a class-conditional model"}
		case m.NullClass < 0:
			return nil, false, &OptionError{"guidance", "this model has no null class (metadata " + model.KeyNullClass + "), so it cannot be guided"}
		case len(class) == 0:
			return nil, false, &OptionError{"guidance", "guidance needs a class label"}
		}
		guided = true
	}
	return cls, guided, nil
}

// Names lists the registered samplers' names, for messages.
func Names() string {
	var names []string
	for _, i := range List() {
		names = append(names, i.Name)
	}
	return strings.Join(names, ", ")
}
