package schedule

import (
	"fmt"
	"math"
)

// Consistency models (Song, Dhariwal, Chen & Sutskever 2023, "Consistency
// Models") as diffusers' CMStochasticIterativeScheduler runs them: a VE
// schedule (α = 1, x = x0 + σ·ε) with σ in [σ_min, σ_max] = [0.002, 80],
// the network fed c_in·x and 1000·¼·ln σ, its output F turned into
// x̂0 = c_skip(σ)·x + c_out(σ)·F (ConsistencyScalings).

// EDMNoiseInput is the network's noise input of consistency models,
// 1000·¼·ln(σ + 1e-44): EDM's c_noise = ¼ ln σ (Karras et al. 2022, table
// 1) times 1000, as the openai/consistency_models code and diffusers'
// CMStochasticIterativeScheduler.sigma_to_t compute it.
func EDMNoiseInput(sigma float64) float64 { return 1000 * 0.25 * math.Log(sigma+1e-44) }

// ConsistencyScalings are the consistency model's boundary-condition
// scalings at noise level σ (Song et al. 2023, appendix C, with ε = σ_min
// and σ_data from the config):
//
//	c_skip = σ_data² / ((σ-σ_min)² + σ_data²)
//	c_out  = (σ-σ_min)·σ_data / sqrt(σ² + σ_data²)
//	c_in   = 1 / sqrt(σ² + σ_data²)
//
// so that x̂0 = c_skip·x + c_out·F(c_in·x) is exactly x at σ = σ_min.
func (c *Config) ConsistencyScalings(sigma float64) (cSkip, cOut, cIn float64) {
	lo, _ := c.veRange()
	sd := c.SigmaData
	d := sigma - lo
	cSkip = sd * sd / (d*d + sd*sd)
	cOut = d * sd / math.Sqrt(sigma*sigma+sd*sd)
	cIn = 1 / math.Sqrt(sigma*sigma+sd*sd)
	return
}

// InputScale is the factor the samplers multiply x_t by before the network
// call: c_in for consistency models, else 1.
func (s *Schedule) InputScale(p Point) float64 {
	if s.Config.PredictionType == "consistency" {
		_, _, cIn := s.Config.ConsistencyScalings(p.Level)
		return cIn
	}
	return 1
}

// ConsistencyGrid is the σ schedule of diffusers'
// CMStochasticIterativeScheduler.set_timesteps (the multistep sampling of
// Song et al. 2023, Algorithm 1, on the grid of the openai code's
// karras_sample): timesteps (0..steps-1)·⌊N/steps⌋ reversed, N =
// num_train_timesteps (40 by default), and
// σ_i = (σ_max^(1/ρ) + r_i(σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ for the ramp
// r_i = t_i/(N-1) in increasing t (Karras et al. 2022, eq. 5), float32.
// Each step ends at the next σ, the last at σ_min; the sampler re-noises to
// that σ and its final step returns its denoised prediction.
// InitSigma is σ_max (diffusers' init_noise_sigma).
func (s *Schedule) ConsistencyGrid(steps int) (Grid, error) {
	if steps < 1 {
		return Grid{}, errSteps
	}
	n := s.Config.NumTrainTimesteps
	if s.Kind != VE {
		return Grid{}, fmt.Errorf("schedule: the consistency sampler needs a VE (consistency model) schedule")
	}
	if steps > n {
		return Grid{}, fmt.Errorf("schedule: %d steps is more than num_train_timesteps (%d)", steps, n)
	}
	lo, hi := s.Config.veRange()
	rho := s.Config.Rho
	a, b := math.Pow(hi, 1/rho), math.Pow(lo, 1/rho)
	ratio := n / steps
	pts := make([]Point, steps)
	for i := range pts {
		// timesteps[::-1] = ascending (0, ratio, ...); ramp in that order.
		r := float64(i*ratio) / float64(n-1)
		sg := f32(math.Pow(a+r*(b-a), rho))
		pts[i] = Point{T: s.TimeAt(sg), Alpha: 1, Sigma: sg, Level: sg}
	}
	end := Point{T: s.TimeAt(f32(lo)), Alpha: 1, Sigma: f32(lo), Level: f32(lo)}
	return Grid{Steps: chain(pts, end), InitSigma: hi}, nil
}
