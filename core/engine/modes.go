package engine

import (
	"context"
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// The request modes (Request.Mode) besides sampling.
const (
	ModeInvert  = "invert"  // image → DDIM noise (sampler.InvertDDIM)
	ModeSDEdit  = "sdedit"  // complete a guide image (sampler.EditStart)
	ModeInpaint = "inpaint" // keep a masked part (sampler.Known)
)

// modeRun is what Run does differently for r.Mode.
type modeRun struct {
	invert   bool
	data     []float64 // inversion input (the batch)
	done     []float64 // the result without a run (SDEdit at strength 0)
	resident bool      // a ResidentSampler may run it
	repaint  bool      // inpainting with resampling (sampler.RePaint)
	jump     int
}

// Limits on RePaint's resampling (each pass repeats a block's steps).
const (
	MaxResample   = 20
	MaxJumpLength = 100
)

// image is r.Image checked and repeated for a batch of b.
func (l *Loaded) image(r Request, b int) ([]float64, error) {
	n := tensor.Numel(l.Info.Shape)
	if len(r.Image) != n {
		return nil, &RequestError{"image", fmt.Sprintf("%d values, want %d (one %v sample)", len(r.Image), n, l.Info.Shape)}
	}
	if err := limits.FiniteValues("image", r.Image); err != nil {
		return nil, &RequestError{"image", "the image must be finite numbers"}
	}
	out := make([]float64, 0, b*n)
	for i := 0; i < b; i++ {
		for _, v := range r.Image {
			out = append(out, float64(v))
		}
	}
	return out, nil
}

// mode checks r's mode fields and sets o (Resume, Known) for it; noise is
// the run's starting noise.
func (l *Loaded) mode(r Request, b int, info sampler.Info, p *Plan, noise []float64, o *sampler.Options) (*modeRun, error) {
	md := &modeRun{resident: true}
	if r.Mode != ModeSDEdit && r.Strength != 0 {
		return nil, &RequestError{"strength", "only SDEdit (mode sdedit) has a strength"}
	}
	if r.Mode != ModeInpaint && r.Mask != nil {
		return nil, &RequestError{"mask", "only inpainting (mode inpaint) takes a mask"}
	}
	if r.Resample < 0 || r.Resample > MaxResample || (r.Resample > 1 && r.Mode != ModeInpaint) {
		return nil, &RequestError{"resample", fmt.Sprintf("%d: RePaint's passes are 0…%d, for inpainting", r.Resample, MaxResample)}
	}
	if r.JumpLength < 0 || r.JumpLength > MaxJumpLength {
		return nil, &RequestError{"jumpLength", fmt.Sprintf("%d is outside 0…%d", r.JumpLength, MaxJumpLength)}
	}
	if r.Mode == "" {
		if r.Image != nil {
			return nil, &RequestError{"image", "sampling starts from noise; choose a mode that takes an image"}
		}
		return md, nil
	}
	img, err := l.image(r, b)
	if err != nil {
		return nil, err
	}
	switch r.Mode {
	case ModeInvert:
		if info.Name != "ddim" {
			return nil, &RequestError{"sampler", "inversion runs DDIM backwards: choose the ddim sampler"}
		}
		md.invert, md.data = true, img
		if o.Eta != 0 {
			return nil, &RequestError{"eta", "inversion is deterministic DDIM (η 0)"}
		}
	case ModeSDEdit:
		if len(p.grid.Steps) == 0 {
			return nil, &RequestError{"sampler", fmt.Sprintf("sampler %s has no fixed grid to start part-way on", info.Name)}
		}
		if !info.Resumable {
			return nil, &RequestError{"sampler", fmt.Sprintf("sampler %s cannot start part-way", info.Name)}
		}
		c, err := sampler.EditStart(p.grid, r.Strength, img, noise)
		if err != nil {
			return nil, &RequestError{"strength", err.Error()}
		}
		if c == nil {
			md.done = img
			return md, nil
		}
		if c.Step > 0 && info.Multistep {
			return nil, &RequestError{"sampler", fmt.Sprintf("sampler %s is multistep and has no history part-way: choose a one-step sampler (ddim, ddpm, euler, heun, …)", info.Name)}
		}
		o.Resume = c
	case ModeInpaint:
		n := tensor.Numel(l.Info.Shape)
		hw := l.Info.Shape[1] * l.Info.Shape[2]
		var mask []float64
		switch len(r.Mask) {
		case n:
			mask = make([]float64, n)
			for i, v := range r.Mask {
				mask[i] = float64(v)
			}
		case hw:
			mask = make([]float64, n)
			for i := range mask {
				mask[i] = float64(r.Mask[i%hw])
			}
		default:
			return nil, &RequestError{"mask", fmt.Sprintf("%d values, want %d (per value) or %d (per pixel)", len(r.Mask), n, hw)}
		}
		for _, v := range mask {
			if !(v >= 0 && v <= 1) {
				return nil, &RequestError{"mask", "values must be 0…1"}
			}
		}
		o.Known = &sampler.Known{X0: img[:n], Mask: mask}
		md.resident = false // replacement runs on the host's vectors
		if r.Resample > 1 {
			if info.Name != "ddpm" {
				return nil, &RequestError{"sampler", "RePaint's resampling runs DDPM: choose the ddpm sampler"}
			}
			md.repaint, md.jump = true, r.JumpLength
			if md.jump == 0 {
				md.jump = 10 // RePaint's jump length (Lugmayr et al. 2022, section 5)
			}
			path := sampler.RePaintPath(p.Steps, md.jump, r.Resample)
			p.Evals = (len(path) - 1 + p.Steps) / 2
		}
	default:
		return nil, &RequestError{"mode", fmt.Sprintf("unknown mode %q (invert, sdedit or inpaint)", r.Mode)}
	}
	return md, nil
}

// startNoise is the run's unit starting noise: r.Noise (one sample or the
// batch; with NoiseTo, a slerp morph over the batch), else the seed's.
func (l *Loaded) startNoise(r Request, b int) ([]float64, error) {
	if r.Noise == nil {
		if r.NoiseTo != nil {
			return nil, &RequestError{"noiseTo", "a morph needs noise to start from"}
		}
		return l.seedNoise(r, b)
	}
	n := tensor.Numel(l.Info.Shape)
	for _, f := range []struct {
		name string
		v    []float32
	}{{"noise", r.Noise}, {"noiseTo", r.NoiseTo}} {
		if f.v == nil {
			continue
		}
		if len(f.v) != n && !(f.name == "noise" && r.NoiseTo == nil && len(f.v) == b*n) {
			return nil, &RequestError{f.name, fmt.Sprintf("%d values, want %d", len(f.v), n)}
		}
		if err := limits.FiniteValues(f.name, f.v); err != nil {
			return nil, &RequestError{f.name, "must be finite numbers"}
		}
	}
	a := f64(r.Noise)
	if r.NoiseTo == nil {
		out := make([]float64, 0, b*n)
		for len(out) < b*n {
			out = append(out, a...)
		}
		return out[:b*n], nil
	}
	z := f64(r.NoiseTo)
	var out []float64
	for i := 0; i < b; i++ {
		f := 0.0
		if b > 1 {
			f = float64(i) / float64(b-1)
		}
		out = append(out, sampler.Slerp(a, z, f)...)
	}
	return out, nil
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// LikelihoodRequest is a bits/dim estimate of one image, as the page sends
// it; its defaults are the CLI's (`diffuse likelihood`): one Rademacher
// probe, tolerances 1e-5, offset 7, so the same image and seed give the
// same number.
type LikelihoodRequest struct {
	Image  []float32 `json:"image"`
	Seed   uint64    `json:"seed"`
	Probes int       `json:"probes"` // 0: 1
	RTol   float64   `json:"rtol"`   // 0: 1e-5
	ATol   float64   `json:"atol"`   // 0: 1e-5
	// Offset is added to bits/dim (nil: 7 = log2(256/2), the CLI's).
	Offset *float64 `json:"offset"`
	Class  *int     `json:"class"`
}

// LikelihoodFrame is one accepted ODE step: the noise level reached, the
// network calls so far, the divergence integral so far (nats; the
// log-density accumulated along the ODE) and the fraction of the log
// noise-level span done.
type LikelihoodFrame struct {
	Level     float64 `json:"level"`
	NFE       int     `json:"nfe"`
	DeltaLogP float64 `json:"deltaLogP"`
	Progress  float64 `json:"progress"`
}

// LikelihoodResult is sampler.LikelihoodResult for one image.
type LikelihoodResult struct {
	BitsPerDim float64 `json:"bitsPerDim"`
	LogP       float64 `json:"logP"`
	PriorLogP  float64 `json:"priorLogP"`
	DeltaLogP  float64 `json:"deltaLogP"`
	NFE        int     `json:"nfe"`
}

// Likelihood estimates the bits/dim of r.Image with the network net
// through the probability-flow ODE (sampler.Likelihood).
func (l *Loaded) Likelihood(ctx context.Context, net model.Denoiser, r LikelihoodRequest, onFrame func(LikelihoodFrame) error) (*LikelihoodResult, error) {
	img, err := l.image(Request{Image: r.Image}, 1)
	if err != nil {
		return nil, err
	}
	lo := &sampler.LikelihoodOptions{RTol: r.RTol, ATol: r.ATol, Delta: 1e-3, Probes: r.Probes, Seed: r.Seed, Offset: 7}
	if lo.RTol == 0 {
		lo.RTol = 1e-5
	}
	if lo.ATol == 0 {
		lo.ATol = 1e-5
	}
	if lo.Probes == 0 {
		lo.Probes = 1
	}
	if r.Offset != nil {
		lo.Offset = *r.Offset
	}
	if r.Class != nil {
		lo.Class = []int{*r.Class}
	}
	if err := lo.Check(); err != nil {
		return nil, asRequestError(err)
	}
	if err := l.fits(1, 1+lo.Probes); err != nil {
		return nil, &RequestError{"probes", err.Error()}
	}
	m := l.SamplerModel(net)
	if _, _, err := m.Labels(&sampler.Options{Class: lo.Class}, 1); err != nil {
		return nil, asRequestError(err)
	}
	lmin, lmax := math.Log(l.Schedule.MinLevel()), math.Log(l.Schedule.MaxLevel())
	if onFrame != nil {
		lo.Progress = func(s sampler.Step) error {
			f := LikelihoodFrame{Level: s.Point.Level, NFE: s.NFE}
			if len(s.DeltaLogP) > 0 {
				f.DeltaLogP = s.DeltaLogP[0]
			}
			if lmax > lmin && s.Point.Level > 0 {
				f.Progress = math.Max(0, math.Min(1, (math.Log(s.Point.Level)-lmin)/(lmax-lmin)))
			}
			return onFrame(f)
		}
	}
	res, err := sampler.Likelihood(ctx, m, img, lo)
	if err != nil {
		return nil, err
	}
	return &LikelihoodResult{BitsPerDim: res.BitsPerDim[0], LogP: res.LogP[0], PriorLogP: res.PriorLogP[0],
		DeltaLogP: res.DeltaLogP[0], NFE: res.NFE}, nil
}
