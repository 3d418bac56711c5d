package lucid

import (
	"encoding/json"
	"fmt"
	"math"
)

// Objectives of GaussianDiffusion and the diffusers prediction_type each is.
var predictionType = map[string]string{
	"pred_noise": "epsilon",
	"pred_x0":    "sample",
	"pred_v":     "v_prediction",
}

// ObjectiveError says the objective could not be read off the buffers.
type ObjectiveError struct{ Detail string }

func (e *ObjectiveError) Error() string {
	return "lucidrains GaussianDiffusion: " + e.Detail + " (set it with --objective pred_noise|pred_x0|pred_v)"
}

// InferObjective reads GaussianDiffusion's objective off its loss_weight
// buffer. In 2.x (GaussianDiffusion.__init__, "derive loss weight"), with
// snr = ᾱ/(1-ᾱ) and maybe_clipped_snr = min(snr, γ) (γ = min_snr_gamma when
// min_snr_loss_weight, else no clipping):
//
//	pred_noise: loss_weight = maybe_clipped_snr / snr
//	pred_x0:    loss_weight = maybe_clipped_snr
//	pred_v:     loss_weight = maybe_clipped_snr / (snr + 1)
//
// So for the right objective, m = loss_weight·snr, loss_weight, or
// loss_weight·(snr+1) respectively equals min(snr, γ) for one γ, taken as
// max(m). Exactly one objective must fit within 1% at every timestep (the
// buffers are float32, and snr near t = 0 amplifies their rounding).
func InferObjective(alphasCumprod, lossWeight []float64) (string, error) {
	if len(alphasCumprod) == 0 || len(alphasCumprod) != len(lossWeight) {
		return "", &ObjectiveError{fmt.Sprintf("loss_weight has %d values, alphas_cumprod %d", len(lossWeight), len(alphasCumprod))}
	}
	var fits []string
	for _, obj := range []string{"pred_noise", "pred_x0", "pred_v"} {
		m := make([]float64, len(lossWeight))
		gamma := 0.0
		for i, w := range lossWeight {
			snr := alphasCumprod[i] / (1 - alphasCumprod[i])
			switch obj {
			case "pred_noise":
				m[i] = w * snr
			case "pred_x0":
				m[i] = w
			case "pred_v":
				m[i] = w * (snr + 1)
			}
			gamma = math.Max(gamma, m[i])
		}
		ok := true
		for i := range m {
			a := alphasCumprod[i]
			if !(a > 0 && a < 1) {
				continue
			}
			want := math.Min(a/(1-a), gamma)
			if !(math.Abs(m[i]-want) <= 1e-2*want) {
				ok = false
				break
			}
		}
		if ok {
			fits = append(fits, obj)
		}
	}
	switch len(fits) {
	case 1:
		return fits[0], nil
	case 0:
		return "", &ObjectiveError{"loss_weight fits none of pred_noise, pred_x0, pred_v"}
	}
	return "", &ObjectiveError{fmt.Sprintf("loss_weight fits several objectives %v", fits)}
}

// Schedule is the sampling settings stored with a converted model
// (model.KeyScheduler): diffusers DDIMScheduler fields that core/schedule
// reads, chosen to follow GaussianDiffusion.ddim_sample:
//
//   - trained_betas: the checkpoint's schedule. They are recovered from its
//     alphas_cumprod buffer, β_t = 1 - ᾱ_t/ᾱ_(t-1), so ᾱ is the one the
//     library samples with (the float32 betas buffer, multiplied out again,
//     drifts by ~1e-5); the betas buffer is used if that fails.
//   - prediction_type from the objective.
//   - clip_sample with range 1: ddim_sample clips x_start to [-1, 1]
//     (model_predictions(..., clip_x_start=True)), and then re-derives the
//     noise from the clipped x_start (rederive_pred_noise=True; for pred_x0
//     and pred_v always). That is diffusers' DDIM step argument
//     use_clipped_model_output, stored as a field of that name for samplers
//     that honour it.
//   - timestep_spacing "trailing" with set_alpha_to_one: ddim_sample's
//     times = linspace(-1, T-1, steps+1) run T-1, ... down to -1, where the
//     last step returns x_start.
//   - data_range [-1, 1]: with auto_normalize (the default) images are
//     mapped from [0, 1] to [-1, 1] for the model.
//
// ddim_sampling_eta (0 by default) and sampling_timesteps are sampler
// options, not stored. "objective" and "source" are informational.
func Schedule(betas, alphasCumprod []float64, objective, source string) (json.RawMessage, error) {
	pt, ok := predictionType[objective]
	if !ok {
		return nil, &ObjectiveError{fmt.Sprintf("unknown objective %q", objective)}
	}
	trained := betasFromCumprod(alphasCumprod)
	if trained == nil || len(trained) != len(betas) {
		trained = betas
	}
	for i, b := range trained {
		if !(b > 0 && b < 1) {
			return nil, fmt.Errorf("lucidrains GaussianDiffusion: beta %d is %v, want 0 < beta < 1", i, b)
		}
	}
	return json.Marshal(map[string]any{
		"_class_name":              "DDIMScheduler",
		"num_train_timesteps":      len(trained),
		"trained_betas":            trained,
		"prediction_type":          pt,
		"clip_sample":              true,
		"clip_sample_range":        1.0,
		"use_clipped_model_output": true,
		"set_alpha_to_one":         true,
		"steps_offset":             0,
		"timestep_spacing":         "trailing",
		"data_range":               []float64{-1, 1},
		"objective":                objective,
		"source":                   source,
	})
}

// betasFromCumprod returns β_t = 1 - ᾱ_t/ᾱ_(t-1) (ᾱ_(-1) = 1), or nil when
// some β falls outside (0, 1).
func betasFromCumprod(ac []float64) []float64 {
	if len(ac) == 0 {
		return nil
	}
	out := make([]float64, len(ac))
	prev := 1.0
	for i, a := range ac {
		out[i] = 1 - a/prev
		if !(out[i] > 0 && out[i] < 1) {
			return nil
		}
		prev = a
	}
	return out
}
