// Package schedule turns a model's noise-schedule settings into the numbers a
// sampler needs: for every point of a sampling grid the signal scale α and
// noise scale σ of x_t = α·x0 + σ·ε, and the time value the network takes.
//
// Three families are supported:
//
//   - Discrete (diffusers-style) schedules of N training timesteps, from betas
//     (linear, scaled_linear, squaredcos_cap_v2, sigmoid, lucidrains_sigmoid or
//     trained_betas): ᾱ_t = Π_{s<=t}(1-β_s), α = sqrt(ᾱ_t), σ = sqrt(1-ᾱ_t)
//     (Ho et al. 2020, eq. 4).
//   - The continuous variance-preserving SDE of Song et al. 2021 ("Score-Based
//     Generative Modeling through Stochastic Differential Equations", eq. 11 and
//     appendix B): β(t) = β_min + t(β_max-β_min), t in [0, 1],
//     log α(t) = -t²(β_max-β_min)/4 - tβ_min/2, σ² = 1-α².
//   - The continuous variance-exploding SDE (same paper, eq. 9 and appendix C):
//     α = 1, σ(t) = σ_min (σ_max/σ_min)^t.
//
// The settings come as a diffusers scheduler_config.json (the model file's
// model.KeyScheduler metadata); see Config.
package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/diffuse-web/diffuse/core/limits"
)

// Config holds the schedule settings. JSON field names are those of diffusers'
// scheduler_config.json, so a diffusers config parses directly (unknown fields
// are ignored); the fields marked "ours" describe continuous-time SDE models,
// which diffusers has no config for.
//
// Build one with Parse, or start from DefaultConfig and change fields: zero
// values are meaningful (0 steps offset, false flags), so the defaults are
// filled in before the JSON is read, as diffusers does.
type Config struct {
	// ClassName is diffusers' "_class_name"; it only selects the defaults of
	// clip_sample, which differ between scheduler classes.
	ClassName string `json:"_class_name,omitempty"`

	NumTrainTimesteps int       `json:"num_train_timesteps"`
	BetaStart         float64   `json:"beta_start"`
	BetaEnd           float64   `json:"beta_end"`
	BetaSchedule      string    `json:"beta_schedule"`
	TrainedBetas      []float64 `json:"trained_betas"`

	// PredictionType is what the network outputs: "epsilon", "sample" (x0),
	// "v_prediction" (v = α·ε - σ·x0, Salimans & Ho 2022), "score"
	// (∇_x log p_t(x) = -ε/σ, for score models), "flow_prediction" (the
	// velocity v = ε - x0 of flow matching; sde "flow" only) or
	// "consistency" (a consistency model's F, x̂0 = c_skip·x + c_out·F;
	// sde "ve" only; see consistency.go).
	PredictionType string `json:"prediction_type"`

	ClipSample      *bool   `json:"clip_sample"`
	ClipSampleRange float64 `json:"clip_sample_range"`
	// UseClippedModelOutput is the argument of diffusers' DDIMScheduler.step
	// of that name, stored in the config: DDIM re-derives ε̂ from the clipped
	// x̂0 (as denoising-diffusion-pytorch's ddim_sample does).
	UseClippedModelOutput bool  `json:"use_clipped_model_output"`
	SetAlphaToOne         *bool `json:"set_alpha_to_one"`
	StepsOffset           int   `json:"steps_offset"`
	// TimestepSpacing is "leading", "trailing" or "linspace" (Lin et al. 2023,
	// "Common Diffusion Noise Schedules and Sample Steps are Flawed", table 2);
	// empty means "trailing" for DDIM and DDPM (unless steps_offset is set:
	// then "leading") and the diffusers default elsewhere (see
	// DDIMDefaultSpacing in grids.go for why).
	TimestepSpacing string  `json:"timestep_spacing"`
	VarianceType    *string `json:"variance_type"`

	Thresholding             bool    `json:"thresholding"`
	DynamicThresholdingRatio float64 `json:"dynamic_thresholding_ratio"`
	SampleMaxValue           float64 `json:"sample_max_value"`
	RescaleBetasZeroSNR      bool    `json:"rescale_betas_zero_snr"`

	// Sigma schedules of Euler-type and DPM-Solver samplers.
	InterpolationType    string   `json:"interpolation_type"`
	UseKarrasSigmas      bool     `json:"use_karras_sigmas"`
	UseExponentialSigmas bool     `json:"use_exponential_sigmas"`
	UseBetaSigmas        bool     `json:"use_beta_sigmas"`
	UseLuLambdas         bool     `json:"use_lu_lambdas"`
	UseFlowSigmas        bool     `json:"use_flow_sigmas"`
	FinalSigmasType      string   `json:"final_sigmas_type"`
	TimestepType         string   `json:"timestep_type"`
	SigmaMin             *float64 `json:"sigma_min"` // also the VE-SDE σ_min (ours)
	SigmaMax             *float64 `json:"sigma_max"` // also the VE-SDE σ_max (ours)

	// DPM-Solver settings.
	SolverOrder      int    `json:"solver_order"`
	AlgorithmType    string `json:"algorithm_type"`
	SolverType       string `json:"solver_type"`
	LowerOrderFinal  *bool  `json:"lower_order_final"`
	EulerAtFinal     bool   `json:"euler_at_final"`
	LambdaMinClipped Float  `json:"lambda_min_clipped"`

	// SDE (ours) selects a continuous-time schedule: "vp" or "ve"; empty
	// means the discrete schedule above.
	SDE string `json:"sde,omitempty"`
	// Sigma (ours) is the σ of the score-SDE tutorial's VE SDE dx = σ^t dw
	// (sde "ve_tutorial"), whose marginal std is sqrt((σ^(2t) - 1) / (2 ln σ)).
	Sigma   float64 `json:"sigma,omitempty"`
	BetaMin float64 `json:"beta_min"` // VP-SDE β_min (ours), default 0.1
	BetaMax float64 `json:"beta_max"` // VP-SDE β_max (ours), default 20
	// SamplingEps (ours) is the end time ε of continuous-time sampling:
	// samplers integrate from t = 1 down to ε and then denoise. 0 means 1e-3
	// for VP and 1e-5 for VE (Song et al. 2021, appendix C/D).
	SamplingEps float64 `json:"sampling_eps,omitempty"`
	// TimeInput (ours) is what the network's t input is:
	//   "timestep"  the discrete timestep 0..N-1 (default for discrete schedules)
	//   "t"         continuous t in [ε, 1]
	//   "t_scaled"  t·(N-1) with N = num_train_timesteps, the score_sde
	//               convention for continuous VP models (default for "vp")
	//   "sigma"     the noise level σ/α (default for "ve", as NCSN++ takes σ)
	//   "log_sigma" its natural log
	//   "edm"       1000·¼·ln σ, consistency models' input (EDMNoiseInput)
	TimeInput string `json:"time_input,omitempty"`

	// Shift is the timestep shift of the flow-matching schedulers
	// (FlowMatchEulerDiscreteScheduler "shift", default 1; see ShiftTime).
	Shift float64 `json:"shift"`
	// Settings of diffusers' FlowMatchEulerDiscreteScheduler that are
	// read only to be refused when set (they change the grid or sampler).
	UseDynamicShifting bool     `json:"use_dynamic_shifting"`
	InvertSigmas       bool     `json:"invert_sigmas"`
	ShiftTerminal      *float64 `json:"shift_terminal"`
	StochasticSampling bool     `json:"stochastic_sampling"`

	// Settings of diffusers' CMStochasticIterativeScheduler (consistency
	// models, Song et al. 2023): σ_data of the c_skip/c_out/c_in scalings,
	// ρ of its Karras σ schedule, the noise scale s_noise and whether the
	// denoised sample is clipped to [-1, 1] (default true for that class).
	SigmaData    float64 `json:"sigma_data"`
	Rho          float64 `json:"rho"`
	SNoise       float64 `json:"s_noise"`
	ClipDenoised *bool   `json:"clip_denoised"`

	// DataRange (ours) is the [lo, hi] range of the data the model was
	// trained on, for turning samples into pixels; nil means [-1, 1].
	DataRange []float64 `json:"data_range,omitempty"`

	// Parameters of beta_schedule "lucidrains_sigmoid" (ours): the sigmoid
	// schedule of Jabri, Fleet & Chen 2022 ("Scalable Adaptive Computation
	// for Iterative Generation", fig. 8) as denoising-diffusion-pytorch's
	// sigmoid_beta_schedule(timesteps, start=-3, end=3, tau=1).
	SigmoidStart float64 `json:"sigmoid_start"`
	SigmoidEnd   float64 `json:"sigmoid_end"`
	SigmoidTau   float64 `json:"sigmoid_tau"`
}

// Float is a float64 that also accepts the non-standard JSON tokens NaN,
// Infinity and -Infinity (Python's json module writes them, e.g. diffusers'
// "lambda_min_clipped": -Infinity) and null (leaving the value unchanged).
type Float float64

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	switch s {
	case "null":
		return nil
	case "Infinity", "+Infinity", "inf":
		*f = Float(math.Inf(1))
		return nil
	case "-Infinity", "-inf":
		*f = Float(math.Inf(-1))
		return nil
	case "NaN":
		*f = Float(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = Float(v)
	return nil
}

// MarshalJSON implements json.Marshaler, writing infinities as strings.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	}
	return json.Marshal(v)
}

// DefaultConfig is diffusers' DDPMScheduler default (linear betas 1e-4..0.02
// over 1000 steps, epsilon prediction) plus the defaults of every other field.
func DefaultConfig() Config {
	return Config{
		NumTrainTimesteps:        1000,
		BetaStart:                0.0001,
		BetaEnd:                  0.02,
		BetaSchedule:             "linear",
		PredictionType:           "epsilon",
		ClipSampleRange:          1,
		DynamicThresholdingRatio: 0.995,
		SampleMaxValue:           1,
		InterpolationType:        "linear",
		FinalSigmasType:          "zero",
		SolverOrder:              2,
		AlgorithmType:            "dpmsolver++",
		SolverType:               "midpoint",
		LambdaMinClipped:         Float(math.Inf(-1)),
		BetaMin:                  0.1,
		BetaMax:                  20,
		SigmoidStart:             -3,
		SigmoidEnd:               3,
		SigmoidTau:               1,
		SigmaData:                0.5,
		Rho:                      7,
		SNoise:                   1,
	}
}

// classDefaults fills in the defaults of the scheduler classes whose
// configs do not say what they imply: the flow-matching schedulers
// (sde "flow", velocity prediction) and CMStochasticIterativeScheduler
// (sde "ve" with the consistency parameterisation and its __init__
// defaults: 40 training steps, σ in [0.002, 80]).
func (c *Config) classDefaults() {
	switch c.ClassName {
	case "FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler":
		c.SDE, c.PredictionType = "flow", "flow_prediction"
	case "CMStochasticIterativeScheduler":
		lo, hi, on := 0.002, 80.0, true
		c.SDE, c.PredictionType, c.TimeInput = "ve", "consistency", "edm"
		c.NumTrainTimesteps, c.SigmaMin, c.SigmaMax, c.ClipDenoised = 40, &lo, &hi, &on
	}
}

// ParseConfig reads a scheduler_config.json-like document over DefaultConfig.
// Empty input gives DefaultConfig.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	clean, err := quoteNonFinite(data)
	if err != nil {
		return c, err
	}
	var class struct {
		Name string `json:"_class_name"`
	}
	if json.Unmarshal(clean, &class) == nil {
		c.ClassName = class.Name
		c.classDefaults()
	}
	if err := json.Unmarshal(clean, &c); err != nil {
		// NaN and ±Infinity were quoted above; a quoted token landing in a
		// plain number field means the file holds a non-finite number there.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Value == "string" && te.Field != "" {
			return c, fieldErr(te.Field, "must be a finite number (NaN and Infinity are not accepted here)")
		}
		return c, fmt.Errorf("schedule: %v", err)
	}
	return c, nil
}

// quoteNonFinite turns the bare tokens NaN, Infinity and -Infinity outside
// strings into JSON strings, so encoding/json accepts Python's output.
func quoteNonFinite(b []byte) ([]byte, error) {
	var out []byte
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			out = append(out, c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		if c == '"' {
			inStr = true
			out = append(out, c)
			continue
		}
		matched := false
		for _, tok := range []string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(b[i:], []byte(tok)) {
				out = append(out, '"')
				out = append(out, tok...)
				out = append(out, '"')
				i += len(tok) - 1
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, c)
		}
	}
	if inStr {
		return nil, fmt.Errorf("schedule: unterminated string in scheduler config")
	}
	return out, nil
}

// FieldError is a config value that is wrong or unsupported; Field is its
// JSON name.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("schedule: %s: %s", e.Field, e.Msg) }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fieldErr(field, "unsupported value %q (want one of %s)", v, strings.Join(allowed, ", "))
}

func boolOr(p *bool, d bool) bool {
	if p == nil {
		return d
	}
	return *p
}

// clipDefault is diffusers' clip_sample default: true for the DDPM and DDIM
// schedulers (and configs naming no class), absent (false) elsewhere.
func (c *Config) clipDefault() bool {
	switch c.ClassName {
	case "", "DDPMScheduler", "DDIMScheduler", "DDIMInverseScheduler", "DDPMParallelScheduler", "DDIMParallelScheduler":
		return c.SDE == ""
	}
	return false
}

// ClipSampleOn reports whether x0 predictions are clipped to
// [-ClipSampleRange, ClipSampleRange] (DDPM and DDIM samplers only, as in
// diffusers).
func (c *Config) ClipSampleOn() bool { return boolOr(c.ClipSample, c.clipDefault()) }

// AlphaToOne reports set_alpha_to_one (default true): whether DDIM's last
// step goes to ᾱ = 1 rather than to ᾱ_0.
func (c *Config) AlphaToOne() bool { return boolOr(c.SetAlphaToOne, true) }

// LowerOrderFinalOn reports lower_order_final (default true).
func (c *Config) LowerOrderFinalOn() bool { return boolOr(c.LowerOrderFinal, true) }

// Variance is variance_type with its default, "fixed_small".
func (c *Config) Variance() string {
	if c.VarianceType == nil || *c.VarianceType == "" {
		return "fixed_small"
	}
	return *c.VarianceType
}

// Validate checks every field this package or a sampler reads and reports the
// first problem, naming the field.
func (c *Config) Validate() error {
	if err := oneOf("sde", c.SDE, "", "vp", "ve", "ve_tutorial", "flow"); err != nil {
		return err
	}
	if err := oneOf("prediction_type", c.PredictionType, "epsilon", "sample", "v_prediction", "score", "flow_prediction", "consistency"); err != nil {
		return err
	}
	if c.PredictionType == "flow_prediction" && c.SDE != "flow" {
		return fieldErr("prediction_type", "flow_prediction needs sde \"flow\" (a flow-matching schedule), got sde %q", c.SDE)
	}
	// At t = 1 (α = 0) only these two define x̂0.
	if c.SDE == "flow" && c.PredictionType != "flow_prediction" && c.PredictionType != "sample" {
		return fieldErr("prediction_type", "a flow-matching schedule takes flow_prediction or sample, got %q", c.PredictionType)
	}
	if c.PredictionType == "consistency" && c.SDE != "ve" {
		return fieldErr("prediction_type", "consistency needs sde \"ve\" (CMStochasticIterativeScheduler), got sde %q", c.SDE)
	}
	if c.NumTrainTimesteps <= 0 || c.NumTrainTimesteps > limits.MaxTrainTimesteps {
		return fieldErr("num_train_timesteps", "must be positive and at most %d, got %d", limits.MaxTrainTimesteps, c.NumTrainTimesteps)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"beta_start", c.BetaStart}, {"beta_end", c.BetaEnd}, {"beta_min", c.BetaMin}, {"beta_max", c.BetaMax},
		{"sigma", c.Sigma}, {"sampling_eps", c.SamplingEps}, {"clip_sample_range", c.ClipSampleRange},
		{"sample_max_value", c.SampleMaxValue}, {"dynamic_thresholding_ratio", c.DynamicThresholdingRatio},
		{"sigmoid_start", c.SigmoidStart}, {"sigmoid_end", c.SigmoidEnd}, {"sigmoid_tau", c.SigmoidTau},
		{"shift", c.Shift}, {"sigma_data", c.SigmaData}, {"rho", c.Rho}, {"s_noise", c.SNoise}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fieldErr(f.name, "must be a finite number, got %v", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"sigma_min", c.SigmaMin}, {"sigma_max", c.SigmaMax}} {
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			return fieldErr(f.name, "must be a finite number, got %v", *f.v)
		}
	}
	for _, v := range c.DataRange {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fieldErr("data_range", "must hold finite numbers, got %v", c.DataRange)
		}
	}
	switch c.SDE {
	case "":
		if c.TrainedBetas != nil {
			if len(c.TrainedBetas) != c.NumTrainTimesteps {
				return fieldErr("trained_betas", "has %d values, num_train_timesteps is %d", len(c.TrainedBetas), c.NumTrainTimesteps)
			}
			for i, b := range c.TrainedBetas {
				if !(b > 0 && b < 1) {
					return fieldErr("trained_betas", "value %d is %v, want 0 < beta < 1", i, b)
				}
			}
		} else {
			if err := oneOf("beta_schedule", c.BetaSchedule, "linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "lucidrains_sigmoid"); err != nil {
				return err
			}
			switch c.BetaSchedule {
			case "linear", "scaled_linear", "sigmoid":
				if !(c.BetaStart > 0 && c.BetaStart < 1) {
					return fieldErr("beta_start", "want 0 < beta_start < 1, got %v", c.BetaStart)
				}
				if !(c.BetaEnd > 0 && c.BetaEnd < 1) {
					return fieldErr("beta_end", "want 0 < beta_end < 1, got %v", c.BetaEnd)
				}
			case "lucidrains_sigmoid":
				if !(c.SigmoidTau > 0) {
					return fieldErr("sigmoid_tau", "must be positive, got %v", c.SigmoidTau)
				}
				if !(c.SigmoidEnd > c.SigmoidStart) {
					return fieldErr("sigmoid_end", "must exceed sigmoid_start (%v), got %v", c.SigmoidStart, c.SigmoidEnd)
				}
			}
		}
		if c.NumTrainTimesteps < 2 {
			return fieldErr("num_train_timesteps", "must be at least 2, got %d", c.NumTrainTimesteps)
		}
		if err := oneOf("time_input", c.TimeInput, "", "timestep", "sigma", "log_sigma"); err != nil {
			return err
		}
	case "vp":
		if !(c.BetaMin > 0) || !(c.BetaMax > c.BetaMin) {
			return fieldErr("beta_max", "want 0 < beta_min < beta_max, got beta_min %v, beta_max %v", c.BetaMin, c.BetaMax)
		}
		if err := oneOf("time_input", c.TimeInput, "", "t", "t_scaled", "sigma", "log_sigma"); err != nil {
			return err
		}
	case "ve_tutorial":
		if !(c.Sigma > 1) {
			return fieldErr("sigma", "the tutorial VE SDE dx = sigma^t dw needs sigma > 1, got %v", c.Sigma)
		}
		if c.PredictionType == "v_prediction" {
			return fieldErr("prediction_type", "v_prediction needs a variance-preserving schedule, not sde \"ve_tutorial\"")
		}
		if err := oneOf("time_input", c.TimeInput, "", "t"); err != nil {
			return err
		}
	case "flow":
		if c.Shift < 0 || (c.Shift > 0 && c.Shift < 1e-3) || c.Shift > 1e3 {
			return fieldErr("shift", "want 1e-3 <= shift <= 1000, got %v", c.Shift)
		}
		for _, f := range []struct {
			name string
			on   bool
		}{{"use_dynamic_shifting", c.UseDynamicShifting}, {"invert_sigmas", c.InvertSigmas},
			{"shift_terminal", c.ShiftTerminal != nil && *c.ShiftTerminal != 0}, {"stochastic_sampling", c.StochasticSampling}} {
			if f.on {
				return fieldErr(f.name, "not supported")
			}
		}
		if err := oneOf("time_input", c.TimeInput, "", "timestep", "t"); err != nil {
			return err
		}
	case "ve":
		lo, hi := c.veRange()
		if !(lo > 0) || !(hi > lo) {
			return fieldErr("sigma_max", "want 0 < sigma_min < sigma_max, got sigma_min %v, sigma_max %v", lo, hi)
		}
		if c.PredictionType == "v_prediction" {
			return fieldErr("prediction_type", "v_prediction needs a variance-preserving schedule, not sde \"ve\"")
		}
		if err := oneOf("time_input", c.TimeInput, "", "t", "t_scaled", "sigma", "log_sigma", "edm"); err != nil {
			return err
		}
		if c.PredictionType == "consistency" {
			if !(c.SigmaData > 0) || !(c.Rho > 0) || c.SNoise < 0 {
				return fieldErr("sigma_data", "want sigma_data > 0, rho > 0 and s_noise >= 0, got %v, %v, %v", c.SigmaData, c.Rho, c.SNoise)
			}
		}
	}
	if c.DataRange != nil && (len(c.DataRange) != 2 || !(c.DataRange[1] > c.DataRange[0])) {
		return fieldErr("data_range", "want [lo, hi] with lo < hi, got %v", c.DataRange)
	}
	if c.SDE != "" && !(c.SamplingEps >= 0 && c.SamplingEps < 1) {
		return fieldErr("sampling_eps", "want 0 <= sampling_eps < 1, got %v", c.SamplingEps)
	}
	if !(c.ClipSampleRange > 0) {
		return fieldErr("clip_sample_range", "must be positive, got %v", c.ClipSampleRange)
	}
	if c.StepsOffset < 0 {
		return fieldErr("steps_offset", "must not be negative, got %d", c.StepsOffset)
	}
	if err := oneOf("timestep_spacing", c.TimestepSpacing, "", "leading", "trailing", "linspace"); err != nil {
		return err
	}
	if err := oneOf("variance_type", c.Variance(), "fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log"); err != nil {
		if v := c.Variance(); v == "learned" || v == "learned_range" {
			return fieldErr("variance_type", "learned variances (%q) are not supported", v)
		}
		return err
	}
	if c.Thresholding {
		return fieldErr("thresholding", "dynamic thresholding is not supported")
	}
	if c.RescaleBetasZeroSNR {
		return fieldErr("rescale_betas_zero_snr", "zero-terminal-SNR rescaling is not supported")
	}
	if err := oneOf("interpolation_type", c.InterpolationType, "", "linear"); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		on   bool
	}{{"use_beta_sigmas", c.UseBetaSigmas}, {"use_lu_lambdas", c.UseLuLambdas}, {"use_flow_sigmas", c.UseFlowSigmas}} {
		if f.on {
			return fieldErr(f.name, "not supported")
		}
	}
	if c.UseKarrasSigmas && c.UseExponentialSigmas {
		return fieldErr("use_exponential_sigmas", "cannot be combined with use_karras_sigmas")
	}
	if err := oneOf("final_sigmas_type", c.FinalSigmasType, "", "zero", "sigma_min"); err != nil {
		return err
	}
	if err := oneOf("timestep_type", c.TimestepType, "", "discrete"); err != nil {
		return err
	}
	if c.SigmaMin != nil && !(*c.SigmaMin > 0) {
		return fieldErr("sigma_min", "must be positive, got %v", *c.SigmaMin)
	}
	if c.SigmaMax != nil && !(*c.SigmaMax > 0) {
		return fieldErr("sigma_max", "must be positive, got %v", *c.SigmaMax)
	}
	// deis, bh1/bh2 and logrho are the values of diffusers' DEIS and UniPC
	// configs (samplers deis, unipc, unipc_bh1; the DPM-Solver++ samplers
	// read only heun, else midpoint).
	if err := oneOf("algorithm_type", c.AlgorithmType, "", "dpmsolver++", "deis"); err != nil {
		return err
	}
	if err := oneOf("solver_type", c.SolverType, "", "midpoint", "heun", "bh1", "bh2", "logrho"); err != nil {
		return err
	}
	if c.SolverOrder < 1 || c.SolverOrder > 3 {
		return fieldErr("solver_order", "want 1, 2 or 3, got %d", c.SolverOrder)
	}
	if !math.IsInf(float64(c.LambdaMinClipped), -1) {
		return fieldErr("lambda_min_clipped", "only -Infinity (no clipping) is supported, got %v", float64(c.LambdaMinClipped))
	}
	return nil
}

// veRange is the VE-SDE's (σ_min, σ_max), defaults 0.01 and 50 (Song et al.
// 2021, appendix C, CIFAR-10).
func (c *Config) veRange() (float64, float64) {
	lo, hi := 0.01, 50.0
	if c.SigmaMin != nil {
		lo = *c.SigmaMin
	}
	if c.SigmaMax != nil {
		hi = *c.SigmaMax
	}
	return lo, hi
}

// Range is the data range [lo, hi] (default [-1, 1]).
func (c *Config) Range() (lo, hi float64) {
	if len(c.DataRange) == 2 {
		return c.DataRange[0], c.DataRange[1]
	}
	return -1, 1
}
