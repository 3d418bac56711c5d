package schedule

import (
	"errors"
	"fmt"
	"math"
)

// Kind is the family of a schedule.
type Kind int

// The schedule families.
const (
	Discrete Kind = iota // N training timesteps from betas (diffusers)
	VP                   // continuous variance-preserving SDE
	VE                   // continuous variance-exploding SDE
	Flow                 // flow matching / rectified flow, x_t = (1-t)x0 + tε (flow.go)
)

func (k Kind) String() string {
	switch k {
	case Discrete:
		return "discrete"
	case VP:
		return "vp"
	case VE:
		return "ve"
	case Flow:
		return "flow"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Point is one noise level: x_t = Alpha·x0 + Sigma·ε, with Level = Sigma/Alpha
// the noise level of x_t/Alpha = x0 + Level·ε (Karras et al. 2022, "Elucidating
// the Design Space of Diffusion-Based Generative Models", eq. 4 with s = α).
// T is the schedule time (the discrete timestep, or continuous t); a point
// with Sigma = 0 is clean data and is never passed to the network.
type Point struct {
	T     float64
	Alpha float64
	Sigma float64
	Level float64
}

// Lambda is the half log-SNR λ = log(α/σ) of DPM-Solver (Lu et al. 2022,
// "DPM-Solver", section 3.1); +Inf for clean data.
func (p Point) Lambda() float64 { return -math.Log(p.Level) }

// Clean reports whether p is the noise-free end point.
func (p Point) Clean() bool { return p.Sigma == 0 }

// Step is one sampler step: the network is evaluated at From and the sample
// moves to To.
type Step struct {
	From, To Point
}

// Grid is a sampling schedule: Steps in order, and InitSigma, the standard
// deviation of the starting sample x_T in the sampler's own state (x_t for
// DDIM-type samplers, x_t/α for Euler-type ones), which multiplies unit noise.
type Grid struct {
	Steps     []Step
	InitSigma float64
}

// Schedule is a validated Config with its precomputed tables.
type Schedule struct {
	Config Config
	Kind   Kind

	betas         []float64 // discrete only
	alphasCumprod []float64 // discrete only
	levels        []float64 // sqrt((1-ᾱ)/ᾱ) per timestep, discrete only
	logLevels     []float64
	rho           float64 // the sigma spacings' ρ (WithSigmaRho), 0: their defaults
}

// Parse reads a scheduler config (see ParseConfig) and builds its Schedule.
func Parse(data []byte) (*Schedule, error) {
	c, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	return New(c)
}

// New validates c and builds its Schedule.
func New(c Config) (*Schedule, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Schedule{Config: c}
	switch c.SDE {
	case "vp":
		s.Kind = VP
		return s, nil
	case "ve", "ve_tutorial":
		s.Kind = VE
		return s, nil
	case "flow":
		s.Kind = Flow
		return s, nil
	}
	s.Kind = Discrete
	n := c.NumTrainTimesteps
	betas := c.TrainedBetas
	if betas == nil {
		betas = make([]float64, n)
		switch c.BetaSchedule {
		case "linear":
			// Ho et al. 2020, section 4: betas linear from beta_start to beta_end.
			for i := range betas {
				betas[i] = c.BetaStart + (c.BetaEnd-c.BetaStart)*float64(i)/float64(n-1)
			}
		case "scaled_linear":
			// Rombach et al. 2022 (latent diffusion): linear in sqrt(beta).
			// diffusers squares the float32 roots in float32 (see tables).
			a, b := math.Sqrt(c.BetaStart), math.Sqrt(c.BetaEnd)
			for i := range betas {
				r := f32(a + (b-a)*float64(i)/float64(n-1))
				betas[i] = f32(r * r)
			}
		case "squaredcos_cap_v2":
			// Nichol & Dhariwal 2021, "Improved DDPM", eq. 17 with s = 0.008:
			// ᾱ(t) = cos²((t+s)/(1+s)·π/2), β_i = min(1 - ᾱ((i+1)/N)/ᾱ(i/N), 0.999).
			abar := func(t float64) float64 {
				v := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
				return v * v
			}
			for i := range betas {
				betas[i] = math.Min(1-abar(float64(i+1)/float64(n))/abar(float64(i)/float64(n)), 0.999)
			}
		case "sigmoid":
			// diffusers' "sigmoid": sigmoid(linspace(-6, 6, N))·(end-start)+start
			// (GeoDiff, Xu et al. 2022).
			for i := range betas {
				x := -6 + 12*float64(i)/float64(n-1)
				betas[i] = sigmoid(x)*(c.BetaEnd-c.BetaStart) + c.BetaStart
			}
		case "lucidrains_sigmoid":
			// Jabri et al. 2022, fig. 8, as denoising-diffusion-pytorch's
			// sigmoid_beta_schedule: with t_i = i/N,
			// ᾱ(t) = (σ(end/τ) - σ((t(end-start)+start)/τ)) / (σ(end/τ) - σ(start/τ)),
			// β_i = clip(1 - ᾱ(t_{i+1})/ᾱ(t_i), 0, 0.999).
			st, en, tau := c.SigmoidStart, c.SigmoidEnd, c.SigmoidTau
			vs, ve := sigmoid(st/tau), sigmoid(en/tau)
			abar := func(t float64) float64 { return (ve - sigmoid((t*(en-st)+st)/tau)) / (ve - vs) }
			a0 := abar(0)
			for i := range betas {
				b := 1 - (abar(float64(i+1)/float64(n))/a0)/(abar(float64(i)/float64(n))/a0)
				betas[i] = math.Min(math.Max(b, 0), 0.999)
			}
		}
	}
	s.tables(betas)
	for i := 1; i < n; i++ {
		if !(s.levels[i] > s.levels[i-1]) {
			return nil, fieldErr("trained_betas", "noise level does not increase at timestep %d", i)
		}
	}
	if !(s.alphasCumprod[n-1] > 0) || math.IsInf(s.levels[n-1], 0) {
		return nil, fieldErr("beta_schedule", "ᾱ reaches 0 (zero terminal SNR), which is not supported")
	}
	return s, nil
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// tables fills betas, ᾱ and the noise levels with the float32 rounding
// diffusers' schedulers apply (__init__ of DDIMScheduler,
// EulerDiscreteScheduler, DPMSolverMultistepScheduler, ...), so that grids
// and steps reproduce theirs to float32 precision: near t = 0, 1-ᾱ is
// 1e-4 or less (4.1e-5 for cosine), and float32 rounding of ᾱ moves it by
// up to 5e-4 relative. With a float64 table, Karras timesteps
// (_sigma_to_t) were off by 1e-3 and the last steps of x0-predicting DDIM
// by up to 1.7e-5 (core/sampler testdata/diffusers cases, issue #19).
//
//   - diffusers computes the betas as a float32 tensor (torch.linspace in
//     float32; scaled_linear squares the float32 root in float32, see New)
//     and alphas = 1 - betas in float32. torch.linspace rounds its float32
//     steps in a CPU-dependent (vectorised) order, so a beta may differ from
//     torch's by an ulp; measured against torch 1.13 (AVX2), the resulting
//     1-ᾱ are identical for t < 200 and within 6e-8 relative above.
//   - ᾱ = torch.cumprod(alphas): on the CPU, torch accumulates float32
//     products in float64 and rounds each partial product to float32.
//   - levels σ = ((1-ᾱ)/ᾱ)^0.5 are float32 tensor arithmetic, and the
//     log-levels of _sigma_to_t are np.log of that float32 array.
//
// trained_betas are not rounded, only ᾱ and the levels: the lucidrains
// conversion (core/lucid.Schedule) stores betas whose float64 product is
// the checkpoint's float32 ᾱ buffer, which rounding 1-β to float32 would
// move by ~1e-5. lucidrains_sigmoid stays float64 throughout, as
// denoising-diffusion-pytorch computes its schedule (it casts to float32
// only after deriving 1-ᾱ and the other buffers).
func (s *Schedule) tables(betas []float64) {
	c := s.Config
	lucid := c.TrainedBetas == nil && c.BetaSchedule == "lucidrains_sigmoid"
	roundBetas := c.TrainedBetas == nil && !lucid
	r := func(v float64) float64 {
		if lucid {
			return v
		}
		return f32(v)
	}
	n := len(betas)
	s.betas = append([]float64(nil), betas...)
	s.alphasCumprod = make([]float64, n)
	s.levels = make([]float64, n)
	s.logLevels = make([]float64, n)
	p := 1.0
	for i, b := range s.betas {
		a := 1 - b
		if roundBetas {
			s.betas[i] = f32(b)
			a = f32(1 - s.betas[i])
		}
		p *= a
		ac := r(p)
		s.alphasCumprod[i] = ac
		s.levels[i] = r(math.Sqrt(r(r(1-ac) / ac)))
		s.logLevels[i] = r(math.Log(s.levels[i]))
	}
}

// Betas returns the discrete schedule's betas (nil for SDE schedules).
func (s *Schedule) Betas() []float64 { return append([]float64(nil), s.betas...) }

// AlphasCumprod returns ᾱ_t for t = 0..N-1 (nil for SDE schedules).
func (s *Schedule) AlphasCumprod() []float64 { return append([]float64(nil), s.alphasCumprod...) }

// IsVE reports whether α ≡ 1, so that the sample itself is x0 + σ·ε.
func (s *Schedule) IsVE() bool { return s.Kind == VE }

// EndTime is where sampling stops before its final denoising step: timestep
// 0, or the continuous ε (sampling_eps, default 1e-3 for VP, 1e-5 for VE).
func (s *Schedule) EndTime() float64 {
	switch s.Kind {
	case VP:
		if s.Config.SamplingEps > 0 {
			return s.Config.SamplingEps
		}
		return 1e-3
	case VE:
		if s.Config.SamplingEps > 0 {
			return s.Config.SamplingEps
		}
		return 1e-5
	case Flow:
		if s.Config.SamplingEps > 0 {
			return s.Config.SamplingEps
		}
		return 1e-3
	}
	return 0
}

// StartTime is the noisiest time: N-1, or 1.
func (s *Schedule) StartTime() float64 {
	if s.Kind == Discrete {
		return float64(s.Config.NumTrainTimesteps - 1)
	}
	if s.Kind == Flow {
		return FlowStartTime
	}
	return 1
}

// CleanPoint is the noise-free end point (ᾱ = 1).
func (s *Schedule) CleanPoint() Point {
	if s.Kind == Discrete {
		return Point{T: -1, Alpha: 1}
	}
	return Point{T: 0, Alpha: 1}
}

// LevelAt is the noise level σ/α at schedule time t. For discrete schedules
// it interpolates the per-timestep levels linearly in t, as diffusers'
// EulerDiscreteScheduler does (np.interp), clamping outside [0, N-1].
func (s *Schedule) LevelAt(t float64) float64 {
	switch s.Kind {
	case VP:
		// σ²/α² = exp(∫_0^t β) - 1 (Song et al. 2021, eq. 29)
		c := s.Config
		return math.Sqrt(math.Expm1(0.5*t*t*(c.BetaMax-c.BetaMin) + t*c.BetaMin))
	case VE:
		if s.Config.SDE == "ve_tutorial" {
			// marginal_prob_std of the score-SDE tutorial: ∫_0^t σ^(2u) du.
			ls := math.Log(s.Config.Sigma)
			return math.Sqrt(math.Expm1(2*t*ls) / (2 * ls))
		}
		lo, hi := s.Config.veRange()
		return lo * math.Pow(hi/lo, t)
	case Flow:
		return t / (1 - t)
	}
	n := len(s.levels)
	if t <= 0 {
		return s.levels[0]
	}
	if t >= float64(n-1) {
		return s.levels[n-1]
	}
	i := int(t)
	f := t - float64(i)
	if f == 0 {
		return s.levels[i]
	}
	return s.levels[i] + f*(s.levels[i+1]-s.levels[i])
}

// TimeAt inverts LevelAt. For discrete schedules it is diffusers'
// _sigma_to_t: interpolation of log-levels, linear in t, over the float32
// log-level table (see tables), so TimeAt(LevelAt(t)) is t only to about
// 1e-5, and only at integer t.
func (s *Schedule) TimeAt(level float64) float64 {
	switch s.Kind {
	case VP:
		// solve t²(β1-β0)/2 + tβ0 = log(1+level²)
		c := s.Config
		l := math.Log1p(level * level)
		a := 0.5 * (c.BetaMax - c.BetaMin)
		return 2 * l / (c.BetaMin + math.Sqrt(c.BetaMin*c.BetaMin+4*a*l))
	case VE:
		if s.Config.SDE == "ve_tutorial" {
			ls := math.Log(s.Config.Sigma)
			return math.Log1p(2*ls*level*level) / (2 * ls)
		}
		lo, hi := s.Config.veRange()
		return math.Log(level/lo) / math.Log(hi/lo)
	case Flow:
		return level / (1 + level)
	}
	ll := math.Log(math.Max(level, 1e-10))
	n := len(s.logLevels)
	low := 0
	for i := range s.logLevels {
		if s.logLevels[i] <= ll {
			low = i
		}
	}
	if low > n-2 {
		low = n - 2
	}
	lo, hi := s.logLevels[low], s.logLevels[low+1]
	w := (lo - ll) / (lo - hi)
	w = math.Min(math.Max(w, 0), 1)
	return (1-w)*float64(low) + w*float64(low+1)
}

// alphaOfLevel is α for a noise level: 1/sqrt(1+level²) for variance-
// preserving schedules (α² + σ² = 1), 1 for VE, 1/(1+level) for flow
// (α + σ = 1).
func (s *Schedule) alphaOfLevel(level float64) float64 {
	switch s.Kind {
	case VE:
		return 1
	case Flow:
		return 1 / (1 + level) // α = 1-t with level t/(1-t)
	}
	return 1 / math.Sqrt(level*level+1)
}

// PointAt is the point at schedule time t. At an integer timestep of a
// discrete schedule α = sqrt(ᾱ_t) and σ = sqrt(1-ᾱ_t) exactly; elsewhere the
// level is LevelAt(t). A discrete t < 0 is the clean point.
func (s *Schedule) PointAt(t float64) Point {
	if s.Kind == Discrete {
		if t < 0 {
			return s.CleanPoint()
		}
		if i := int(t); float64(i) == t && i < len(s.alphasCumprod) {
			a := s.alphasCumprod[i]
			return Point{T: t, Alpha: math.Sqrt(a), Sigma: math.Sqrt(1 - a), Level: s.levels[i]}
		}
	}
	if s.Kind == Flow {
		return flowPoint(t)
	}
	return s.PointAtLevel(s.LevelAt(t), t)
}

// PointAtLevel is the point of noise level `level` labelled with time t
// (normally TimeAt(level)); level 0 is the clean point.
func (s *Schedule) PointAtLevel(level, t float64) Point {
	if level == 0 {
		p := s.CleanPoint()
		return p
	}
	a := s.alphaOfLevel(level)
	return Point{T: t, Alpha: a, Sigma: level * a, Level: level}
}

// NetTime is the value passed as the network's t input at p (see
// Config.TimeInput).
func (s *Schedule) NetTime(p Point) float32 {
	switch s.TimeInput() {
	case "t_scaled":
		return float32(p.T * float64(s.Config.NumTrainTimesteps-1))
	case "sigma":
		return float32(p.Level)
	case "log_sigma":
		return float32(math.Log(p.Level))
	case "edm":
		return float32(EDMNoiseInput(p.Level))
	}
	if s.Kind == Flow && s.TimeInput() == "timestep" {
		// diffusers' flow-matching timestep σ·N, σ the flow time t
		// (FlowMatchEulerDiscreteScheduler: timesteps = sigmas * N).
		return float32(p.T * float64(s.Config.NumTrainTimesteps))
	}
	return float32(p.T)
}

// TimeInput is what the network takes as its time input (Config.TimeInput,
// else the kind's default): "t_scaled" (t·(N−1)), "sigma", "log_sigma",
// "t" or "timestep" (the point's T as is; for flow schedules diffusers'
// timestep t·N), "edm" (EDMNoiseInput); NetTime applies it.
func (s *Schedule) TimeInput() string {
	if s.Config.TimeInput != "" {
		return s.Config.TimeInput
	}
	switch s.Kind {
	case VP:
		return "t_scaled"
	case VE:
		if s.Config.SDE == "ve_tutorial" {
			return "t"
		}
		return "sigma"
	}
	return "timestep"
}

// MaxLevel is the noise level at StartTime.
func (s *Schedule) MaxLevel() float64 { return s.LevelAt(s.StartTime()) }

// MinLevel is the noise level at EndTime.
func (s *Schedule) MinLevel() float64 { return s.LevelAt(s.EndTime()) }

// PriorVar is the variance of each coordinate of x_T/α_T under the prior the
// samplers start from: 1/α² = 1 + level² for variance-preserving schedules
// (x_T ~ N(0, I)), level² for VE (x_T ~ N(0, σ_max² I)).
func (s *Schedule) PriorVar(level float64) float64 {
	if s.Kind == VE {
		return level * level
	}
	return 1 + level*level
}

var errSteps = errors.New("schedule: the number of steps must be at least 1")

// WithEndTime returns a copy of s whose continuous sampling end time ε is eps
// (eps <= 0 or a discrete schedule: s itself).
func (s *Schedule) WithEndTime(eps float64) (*Schedule, error) {
	if eps <= 0 || s.Kind == Discrete {
		return s, nil
	}
	if eps >= 1 {
		return nil, fieldErr("sampling_eps", "want 0 < end time < 1, got %v", eps)
	}
	c := *s
	c.Config.SamplingEps = eps
	return &c, nil
}
