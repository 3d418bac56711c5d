package sampler

import (
	"context"
	"math"
	"testing"

	"github.com/diffuse-web/diffuse/core/schedule"
)

// gaussFewSteps runs sampler f for `steps` steps on the exact denoiser of
// x0 ~ N(testMu, testSD² I) (gaussNet) under a discrete linear-β schedule
// with the given timestep_spacing ("" = the config names none). It returns
// the samples' bias (RMS over coordinates of the batch mean minus testMu)
// and spread (RMS over coordinates of the batch standard deviation): data
// has bias 0 and spread testSD = 0.5, the starting noise bias ≈ RMS(testMu)
// and spread ≈ 1.
func gaussFewSteps(t *testing.T, f Func, spacing string, steps int) (bias, spread float64) {
	t.Helper()
	c := schedule.DefaultConfig()
	off := false
	c.ClipSample = &off
	c.TimestepSpacing = spacing
	s, err := schedule.New(c)
	if err != nil {
		t.Fatal(err)
	}
	d := len(testMu)
	m := &Model{Net: &gaussNet{s: s, mu: testMu, sd: testSD}, Schedule: s, Shape: []int{d}, NullClass: -1}
	const batch = 256
	res, err := f(context.Background(), m, InitialNoise(5, 0, batch, m.Shape), &Options{Steps: steps, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < d; i++ {
		var sum, sq float64
		for b := 0; b < batch; b++ {
			v := res.X[b*d+i]
			sum += v
			sq += v * v
		}
		mean := sum / batch
		e := mean - testMu[i]
		bias += e * e
		spread += sq/batch - mean*mean
	}
	return math.Sqrt(bias / float64(d)), math.Sqrt(spread / float64(d))
}

// TestFewStepsStartAtTheTop: with a config that names no timestep_spacing,
// one step of DDIM, DDPM or Euler starts at the last training timestep
// (Lin et al. 2023, section 3.3) and lands on the data's mean, E[x0 | x_T],
// and a few steps stay on the data; diffusers' default spacings (leading for
// DDIM/DDPM, linspace for Euler) put a single step at t = 0, where DDIM and
// DDPM return the starting noise and Euler (which starts from σ(0)·noise)
// about 0. A config that names such a spacing still gets it.
func TestFewStepsStartAtTheTop(t *testing.T) {
	rms := 0.0
	for _, m := range testMu {
		rms += m * m / float64(len(testMu))
	}
	rms = math.Sqrt(rms)
	for _, c := range []struct {
		name, flawed string
	}{{"ddim", "leading"}, {"ddpm", "leading"}, {"euler", "linspace"}} {
		info, _ := Get(c.name)
		for _, steps := range []int{1, 2, 3, 5} {
			bias, spread := gaussFewSteps(t, info.Func, "", steps)
			oldBias, oldSpread := gaussFewSteps(t, info.Func, c.flawed, steps)
			t.Logf("%-5s %d steps: bias %.4f spread %.4f (%s: %.4f, %.4f); data 0, %.2f; noise %.2f, 1",
				c.name, steps, bias, spread, c.flawed, oldBias, oldSpread, testSD, rms)
			if bias > 0.05 || spread > testSD*1.1 {
				t.Errorf("%s, %d steps, default spacing: bias %.3f, spread %.3f; the data has 0 and %.2f", c.name, steps, bias, spread, testSD)
			}
			if steps == 1 && oldBias < 0.7*rms {
				t.Errorf("%s, 1 step, %s spacing: bias %.3f; diffusers' grid (one step at t = 0) misses the data mean by about %.3f",
					c.name, c.flawed, oldBias, rms)
			}
		}
	}
}

// TestSpacingW2Gaussian logs (go test -v -run SpacingW2) the measurement
// quoted at schedule.DDIMDefaultSpacing: the Wasserstein-2 distance between
// deterministic DDIM's samples and the data N(testMu, testSD² I), per
// coordinate, for each timestep spacing. DDIM with η = 0 on this denoiser is
// an affine map of the noise, x = a·z + b, so its samples are N(b, a²)
// exactly and W2² = mean((b - μ)² + (|a| - sd)²): two runs (z = 0, z = 1)
// give it with no sampling error. It checks only that one leading step
// stays at the noise and one trailing step does not.
func TestSpacingW2Gaussian(t *testing.T) {
	w2 := func(betas, spacing string, steps int) float64 {
		c := schedule.DefaultConfig()
		c.BetaSchedule = betas
		off := false
		c.ClipSample = &off
		c.TimestepSpacing = spacing
		s, err := schedule.New(c)
		if err != nil {
			t.Fatal(err)
		}
		m := &Model{Net: &gaussNet{s: s, mu: testMu, sd: testSD}, Schedule: s, Shape: []int{len(testMu)}, NullClass: -1}
		run := func(z float64) []float64 {
			n := make([]float64, len(testMu))
			for i := range n {
				n[i] = z
			}
			r, err := DDIM(context.Background(), m, n, &Options{Steps: steps})
			if err != nil {
				t.Fatal(err)
			}
			return r.X
		}
		b, ab := run(0), run(1)
		sum := 0.0
		for i := range b {
			a := math.Abs(ab[i] - b[i])
			sum += (b[i]-testMu[i])*(b[i]-testMu[i]) + (a-testSD)*(a-testSD)
		}
		return math.Sqrt(sum / float64(len(b)))
	}
	for _, betas := range []string{"linear", "squaredcos_cap_v2"} {
		for _, steps := range []int{1, 2, 3, 5, 10, 20, 50, 100, 1000} {
			l, tr, ls := w2(betas, "leading", steps), w2(betas, "trailing", steps), w2(betas, "linspace", steps)
			t.Logf("%-17s %4d steps: W2 leading %.4f  trailing %.4f  linspace %.4f", betas, steps, l, tr, ls)
			if steps == 1 && !(tr < testSD*1.01 && l > 0.7) {
				t.Errorf("%s, 1 step: W2 leading %.3f (want the noise's, > 0.7), trailing %.3f (want ≤ sd, the data mean)", betas, l, tr)
			}
		}
	}
}
