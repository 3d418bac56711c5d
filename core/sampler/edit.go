package sampler

import (
	"context"
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/rng"
	"github.com/diffuse-web/diffuse/core/schedule"
)

// EditStart is the start of an SDEdit run (Meng et al. 2022, "SDEdit:
// Guided Image Synthesis and Editing with Stochastic Differential
// Equations", algorithm 1): the guide image data is noised to the level of
// grid step k = len(g.Steps) - round(strength·len(g.Steps)),
// x = α·data + σ·noise at g.Steps[k].From, and the sampler resumes there
// (Options.Resume) to complete it. Strength 1 starts at the grid's first
// point (almost pure noise), strength 0 leaves nothing to do: it returns nil
// and the result is data itself. g must be the grid the sampler builds
// (engine.Plan knows it); noise is unit Gaussian like data. A multistep
// sampler has no history at step k and refuses the checkpoint: SDEdit
// takes the one-step samplers (DDIM, DDPM, Euler, Heun, ...).
func EditStart(g schedule.Grid, strength float64, data, noise []float64) (*Checkpoint, error) {
	if !(strength >= 0 && strength <= 1) {
		return nil, fmt.Errorf("sampler: SDEdit strength %v is outside 0…1", strength)
	}
	if len(data) != len(noise) {
		return nil, fmt.Errorf("sampler: SDEdit image has %d values, the noise %d", len(data), len(noise))
	}
	n := len(g.Steps)
	k := n - int(strength*float64(n)+0.5)
	if k >= n {
		return nil, nil
	}
	p := g.Steps[k].From
	x := make([]float64, len(data))
	for i := range x {
		x[i] = p.Alpha*data[i] + p.Sigma*noise[i]
	}
	return &Checkpoint{Step: k, X: x}, nil
}

// Known is the known part of an inpainting run (Options.Known): what the
// sampler must keep of an image while it generates the rest.
type Known struct {
	// X0 is the image (a batch, or one sample for all) in the data range.
	X0 []float64
	// Mask is 1 where X0 is known and kept, 0 where the sampler generates
	// (values in between blend); per value, of one sample or the batch.
	Mask []float64
}

// knownStep keys the known region's noise stream (rng step), apart from
// the samplers' steps.
const knownStep = 1 << 24

// replaceKnown is the known-region replacement of inpainting (Lugmayr et
// al. 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic
// Models", eq. 8; Song et al. 2021, "Score-Based Generative Modeling
// through SDEs", appendix I.2): before every network evaluation at point p
// the known values of x (x_t form) are set to a fresh draw of the forward
// process, α·x0 + σ·z, so that the network sees the known image at the
// noise level of the unknown part, which it then completes consistently.
// Every sampler's update is elementwise, so replacing the network's input
// (x itself for the DDIM-type samplers, a scaled copy for the Euler-type)
// steers the unknown part exactly as replacing the state would; result
// pastes the known image at the end (σ = 0). Every sampler does it;
// RePaint adds the resampling (jumping back in time). Host Space only
// (newRunnerIn).
func (r *runner) replaceKnown(p schedule.Point, x Vec) {
	k := r.o.Known
	xs := hv(x)
	z := make([]float64, r.n)
	for b := 0; b < r.b; b++ {
		rng.NormalStream64(r.o.Seed, r.o.FirstSample+b, knownStep+r.nfe, 0, z)
		x0 := k.X0[(b*r.n)%len(k.X0):]
		m := k.Mask[(b*r.n)%len(k.Mask):]
		row := xs[b*r.n : (b+1)*r.n]
		for i := range row {
			known := p.Alpha*x0[i] + p.Sigma*z[i]
			row[i] = m[i]*known + (1-m[i])*row[i]
		}
	}
}

// pasteKnown sets the known values of the result x (host values) to the
// image: the clean end of replaceKnown.
func (r *runner) pasteKnown(xs []float64) {
	k := r.o.Known
	for b := 0; b < r.b; b++ {
		x0 := k.X0[(b*r.n)%len(k.X0):]
		m := k.Mask[(b*r.n)%len(k.Mask):]
		row := xs[b*r.n : (b+1)*r.n]
		for i := range row {
			row[i] = m[i]*x0[i] + (1-m[i])*row[i]
		}
	}
}

// checkKnown validates o.Known against a batch of b samples of n values.
func checkKnown(k *Known, b, n int) error {
	for _, f := range []struct {
		name string
		v    []float64
	}{{"image", k.X0}, {"mask", k.Mask}} {
		if len(f.v) != n && len(f.v) != b*n {
			return fmt.Errorf("sampler: inpainting %s has %d values, want %d or %d", f.name, len(f.v), n, b*n)
		}
	}
	for _, v := range k.Mask {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("sampler: inpainting mask value %v is outside 0…1", v)
		}
	}
	return nil
}

// RePaintPath is the order in which RePaint (Lugmayr et al. 2022,
// section 4.2 "Resampling", and their get_schedule_jump) visits an n-step
// grid, as positions p = steps left (n at the top, 0 clean): down one step
// at a time, and after every `jump` steps down (not at the last block) back
// up `jump` steps, resample-1 times per block, each time redoing the way
// down. resample 1 (or jump 0) is the plain grid.
func RePaintPath(n, jump, resample int) []int {
	path := []int{n}
	if jump < 1 || resample < 1 {
		jump, resample = 1, 1
	}
	left := map[int]int{}
	for p := jump; p < n; p += jump {
		left[p] = resample - 1
	}
	for p := n; p > 0; {
		p--
		path = append(path, p)
		if left[p] > 0 {
			left[p]--
			for k := 0; k < jump && p < n; k++ {
				p++
				path = append(path, p)
			}
		}
	}
	return path
}

// RePaint is inpainting with resampling (Lugmayr et al. 2022, algorithm 1):
// DDPM steps down the grid of schedule.DDPMGrid with the known region
// replaced before every evaluation (Options.Known, replaceKnown), and
// along RePaintPath, jumps back up by the forward process,
// x_p = (α_p/α_q)·x_q + sqrt(σ_p² - (α_p/α_q)²σ_q²)·z from the cleaner
// point q, so that the generated part is harmonised with the known one over
// several passes. jump is RePaint's jump length j, resample its r (number
// of passes per block); each pass costs jump more evaluations.
func RePaint(ctx context.Context, m *Model, noise []float64, o *Options, jump, resample int) (*Result, error) {
	if o == nil || o.Known == nil {
		return nil, fmt.Errorf("sampler: RePaint needs the known image and mask (Options.Known)")
	}
	if o.Resume != nil {
		return nil, fmt.Errorf("sampler: RePaint does not resume")
	}
	r, err := newRunnerResumable(ctx, m, noise, o, 250)
	if err != nil {
		return nil, err
	}
	defer r.close()
	g, err := r.s.DDPMGrid(r.o.Steps, r.o.Sigmas)
	if err != nil {
		return nil, err
	}
	n := len(g.Steps)
	path := RePaintPath(n, jump, resample)
	r.total = (len(path) - 1 + n) / 2 // steps down: (moves + net descent)/2
	point := func(p int) schedule.Point { return startPoint(g, n-p) }
	x := r.load(g.InitSigma, noise)
	z := r.sp.New()
	for k := 1; k < len(path); k++ {
		from, to := path[k-1], path[k]
		if to > from { // back up: the forward process from the cleaner point
			pf, pt := point(from), point(to)
			a := pt.Alpha / pf.Alpha
			r.noise(knownStep-1-k, 0, z)
			r.sp.Lincomb(x, T(a, x), T(math.Sqrt(math.Max(pt.Sigma*pt.Sigma-a*a*pf.Sigma*pf.Sigma, 0)), z))
			continue
		}
		st := g.Steps[n-from]
		x0, eps, err := r.denoise(st.From, x)
		if err != nil {
			return nil, err
		}
		r.clip(x0)
		if err := r.report(st.From, 1, x, x0); err != nil {
			return nil, err
		}
		cx, c0, std, addNoise := ddpmCoeffs(r.s, st.From, st.To)
		if addNoise {
			r.noise(k, 0, z)
			r.sp.Lincomb(x, T(cx, x), T(c0, x0), T(std, z))
		} else {
			r.sp.Lincomb(x, T(cx, x), T(c0, x0))
		}
		r.free(x0, eps)
	}
	return r.result(x)
}
