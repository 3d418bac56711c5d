package sampler

import (
	"fmt"

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
// pastes the known image at the end (σ = 0). RePaint's resampling
// (jumping back in time) is not done. Host Space only (newRunnerIn).
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
