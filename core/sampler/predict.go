package sampler

import (
	"fmt"

	"github.com/diffuse-web/diffuse/core/schedule"
)

// Prediction is the conversion of a network's output to predictions of
// clean data x̂0 and of the noise ε̂ at one noise point, x_t = α·x0 + σ·ε.
// Every prediction type is linear in (x_t, out):
//
//	x̂0 = X0X·x_t + X0Out·out,   ε̂ = EpsX·x_t + EpsOut·out
//
// This is the one place the prediction types are written; the samplers,
// the likelihood, previews and the page's engine all convert through it.
type Prediction struct {
	X0X, X0Out, EpsX, EpsOut float64
}

// PredictionAt is the conversion for prediction type `kind` at p:
//
//	epsilon:         ε̂ = out,   x̂0 = (x - σε̂)/α
//	sample:          x̂0 = out,  ε̂ = (x - αx̂0)/σ
//	v_prediction:    x̂0 = αx - σv, ε̂ = σx + αv  (Salimans & Ho 2022,
//	                 "Progressive Distillation", section 4; α²+σ²=1)
//	score:           ε̂ = -σ·out, x̂0 = (x - σε̂)/α  (∇log p_t(x) = -ε/σ)
//	flow_prediction: the velocity v = ε - x0 of flow matching (Lipman et
//	                 al. 2023, "Flow Matching for Generative Modeling",
//	                 with σ_min = 0; Liu et al. 2023, "Flow Straight and
//	                 Fast", rectified flow; x_t = (1-t)x0 + tε), for any
//	                 α, σ: x = (α+σ)x̂0 + σv, so x̂0 = (x - σv)/(α+σ) and
//	                 ε̂ = (x + αv)/(α+σ)
//
// At σ = 0 only "sample" and "flow_prediction" are defined.
func PredictionAt(kind string, p schedule.Point) (Prediction, error) {
	a, s := p.Alpha, p.Sigma
	switch kind {
	case "epsilon":
		return Prediction{X0X: 1 / a, X0Out: -s / a, EpsOut: 1}, nil
	case "sample":
		return Prediction{X0Out: 1, EpsX: 1 / s, EpsOut: -a / s}, nil
	case "v_prediction":
		return Prediction{X0X: a, X0Out: -s, EpsX: s, EpsOut: a}, nil
	case "score":
		return Prediction{X0X: 1 / a, X0Out: s * s / a, EpsOut: -s}, nil
	case "flow_prediction":
		d := a + s
		return Prediction{X0X: 1 / d, X0Out: -s / d, EpsX: 1 / d, EpsOut: a / d}, nil
	}
	return Prediction{}, fmt.Errorf("sampler: unsupported prediction_type %q", kind)
}

// PredictionFor is the conversion for schedule s's prediction type at p:
// PredictionAt, and "consistency", whose conversion depends on the
// config's σ_min and σ_data: a consistency model's output F gives
// x̂0 = c_skip·x + c_out·F (schedule.ConsistencyScalings; the network
// was fed c_in·x, see schedule.InputScale) and ε̂ = (x - x̂0)/σ (α = 1).
func PredictionFor(s *schedule.Schedule, p schedule.Point) (Prediction, error) {
	if s.Config.PredictionType != "consistency" {
		return PredictionAt(s.Config.PredictionType, p)
	}
	if s.Kind != schedule.VE {
		return Prediction{}, fmt.Errorf("sampler: prediction_type consistency needs a VE schedule")
	}
	cSkip, cOut, _ := s.Config.ConsistencyScalings(p.Level)
	return Prediction{X0X: cSkip, X0Out: cOut, EpsX: (1 - cSkip) / p.Sigma, EpsOut: -cOut / p.Sigma}, nil
}

// Apply sets x0 and eps (either may be nil) from x (x_t form) and the
// network output out, through sp. Neither may be x or out.
func (c Prediction) Apply(sp Space, x0, eps, x, out Vec) {
	if x0 != nil {
		sp.Lincomb(x0, T(c.X0X, x), T(c.X0Out, out))
	}
	if eps != nil {
		sp.Lincomb(eps, T(c.EpsX, x), T(c.EpsOut, out))
	}
}

// X0Float32 is x̂0 for float32 points xs and network outputs out (the
// page's score field).
func (c Prediction) X0Float32(xs, out []float32) []float32 {
	x0 := make([]float32, len(xs))
	a, b := float32(c.X0X), float32(c.X0Out)
	for i, x := range xs {
		x0[i] = a*x + b*out[i]
	}
	return x0
}
