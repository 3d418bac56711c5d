package sampler

import (
	"context"
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/rng"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Vec is a handle to one whole-batch vector (B samples of n values, sample
// after sample) that lives in a Space: a []float64 on the host, a buffer
// on a GPU. Only the Space that made it reads it.
type Vec any

// Term is one term c·v of a linear combination. When PerSample is set (one
// coefficient per sample of the batch) it replaces C: sample b's values are
// multiplied by PerSample[b].
type Term struct {
	C         float64
	V         Vec
	PerSample []float64
}

// T is the term c·v.
func T(c float64, v Vec) Term { return Term{C: c, V: v} }

// ErrScale is the scale of an error-norm reduction (see Space.SumSq): each
// value v_i is divided by ATol + RTol·max(|Y_i|, |Y2_i|) (Y2 may be nil).
// The zero value (Y nil) is no scaling.
type ErrScale struct {
	Y, Y2      Vec
	ATol, RTol float64
}

// Space is the handful of vector operations every sampler does its
// arithmetic through, so that one Go function per sampler runs wherever
// the batch lives: the host (float64, hostSpace) or a device that keeps it
// resident (a backend's denoiser makes its own Space: SpaceMaker). Samplers
// compute their scalar coefficients on the host in float64 and hand them to
// the Space; only reductions (SumSq) and Read bring values back.
type Space interface {
	// New returns a vector of the batch; its values are unspecified until
	// written (the host's are zero).
	New() Vec
	// Load writes host values (B·n) into v.
	Load(v Vec, data []float64)
	// Read returns v's values on the host. The host Space returns v's own
	// storage: treat it as read-only, valid until v is next written.
	Read(v Vec) []float64
	// Lincomb sets out = Σ terms; out may be one of the terms' vectors.
	// Terms are summed in order (c0·v0 + c1·v1 + ...).
	Lincomb(out Vec, terms ...Term)
	// Clamp sets out = min(max(v, lo), hi) elementwise.
	Clamp(out, v Vec, lo, hi float64)
	// Noise fills out with the standard normal draws of sampler step
	// `step`, draw `sub`: rng.NormalStream64(seed, first+b, step, sub, ·)
	// per sample b, or the configured NoiseSource (SpaceConfig).
	Noise(out Vec, step, sub int)
	// SumSq returns, per sample, Σ_i (v_i/scale_i)² (see ErrScale).
	SumSq(v Vec, scale ErrScale) []float64
	// Net evaluates the network at noise point p on x (x_t form) and sets
	// out to its raw output, classifier-free guided when the SpaceConfig
	// asks (Ho & Salimans 2022, eq. 6: uncond + w·(cond - uncond)).
	Net(out, x Vec, p schedule.Point) error
	// Free releases v (the Space may reuse it).
	Free(v Vec)
}

// Faulter is a Space that can fail (a device lost, a device error): Err
// is its first fault. After one, a Space's Read values are garbage and its
// Net returns the fault; the runner checks Err after every readback.
type Faulter interface {
	Err() error
}

// SpaceConfig is what a Space is made for: one sampling call's batch,
// labels, guidance and noise.
type SpaceConfig struct {
	Ctx      context.Context
	Model    *Model
	Schedule *schedule.Schedule // with the call's end time
	B, N     int                // samples, values per sample
	// Class holds one label per sample, or nil (unconditional).
	Class []int
	// Guidance is the classifier-free guidance scale; 0 or 1: none.
	Guidance float64
	// Seed, FirstSample and Noise key the noise (see Options).
	Seed        uint64
	FirstSample int
	Noise       NoiseSource
}

// SpaceMaker is implemented by a model.Denoiser that keeps the batch on
// its own device: the samplers then run their arithmetic through the
// Space it makes instead of the host's. Close releases what the Space
// holds when the call ends.
type SpaceMaker interface {
	NewSpace(cfg SpaceConfig) (Space, func(), error)
}

// hostSpace is the Space on the host: float64 slices, the network called
// through model.Denoiser with float32 inputs.
type hostSpace struct {
	cfg      SpaceConfig
	xin, tin []float32
}

func newHostSpace(cfg SpaceConfig) *hostSpace { return &hostSpace{cfg: cfg} }

// hv is a host vector's storage.
func hv(v Vec) []float64 { return v.([]float64) }

func (h *hostSpace) New() Vec { return make([]float64, h.cfg.B*h.cfg.N) }

func (h *hostSpace) Load(v Vec, data []float64) { copy(hv(v), data) }

func (h *hostSpace) Read(v Vec) []float64 { return hv(v) }

func (h *hostSpace) Free(Vec) {}

func (h *hostSpace) Lincomb(out Vec, terms ...Term) {
	o := hv(out)
	n := h.cfg.N
	// The common cases without per-sample coefficients, unrolled.
	per := false
	for _, t := range terms {
		per = per || t.PerSample != nil
	}
	if !per {
		switch len(terms) {
		case 1:
			c, a := terms[0].C, hv(terms[0].V)
			for k := range o {
				o[k] = c * a[k]
			}
			return
		case 2:
			c, a, d, b := terms[0].C, hv(terms[0].V), terms[1].C, hv(terms[1].V)
			for k := range o {
				o[k] = c*a[k] + d*b[k]
			}
			return
		case 3:
			c, a, d, b, e, z := terms[0].C, hv(terms[0].V), terms[1].C, hv(terms[1].V), terms[2].C, hv(terms[2].V)
			for k := range o {
				o[k] = c*a[k] + d*b[k] + e*z[k]
			}
			return
		}
	}
	vs := make([][]float64, len(terms))
	for j, t := range terms {
		vs[j] = hv(t.V)
	}
	for k := range o {
		acc := 0.0
		for j, t := range terms {
			c := t.C
			if t.PerSample != nil {
				c = t.PerSample[k/n]
			}
			if j == 0 {
				acc = c * vs[j][k]
			} else {
				acc += c * vs[j][k]
			}
		}
		o[k] = acc
	}
}

func (h *hostSpace) Clamp(out, v Vec, lo, hi float64) {
	o, a := hv(out), hv(v)
	for k, x := range a {
		o[k] = math.Max(lo, math.Min(hi, x))
	}
}

func (h *hostSpace) Noise(out Vec, step, sub int) { h.cfg.DrawNoise(step, sub, hv(out)) }

// DrawNoise fills out (the whole batch, on the host) with the draws
// Space.Noise makes: per sample b, the NoiseSource's or
// rng.NormalStream64(Seed, FirstSample+b, step, sub, ·), so a sample's
// noise does not depend on its batch or backend.
func (c SpaceConfig) DrawNoise(step, sub int, out []float64) {
	for b := 0; b < c.B; b++ {
		seg := out[b*c.N : (b+1)*c.N]
		if c.Noise != nil {
			c.Noise(c.FirstSample+b, step, sub, seg)
		} else {
			rng.NormalStream64(c.Seed, c.FirstSample+b, step, sub, seg)
		}
	}
}

func (h *hostSpace) SumSq(v Vec, sc ErrScale) []float64 {
	a := hv(v)
	var y, y2 []float64
	if sc.Y != nil {
		y = hv(sc.Y)
	}
	if sc.Y2 != nil {
		y2 = hv(sc.Y2)
	}
	n := h.cfg.N
	out := make([]float64, len(a)/n)
	for b := range out {
		s := 0.0
		for k := b * n; k < (b+1)*n; k++ {
			w := a[k]
			if y != nil {
				m := math.Abs(y[k])
				if y2 != nil {
					m = math.Max(m, math.Abs(y2[k]))
				}
				w /= sc.ATol + m*sc.RTol
			}
			s += w * w
		}
		out[b] = s
	}
	return out
}

// Net runs the network once on the batch (twice its size when guided:
// conditional then unconditional, in one call).
func (h *hostSpace) Net(out, x Vec, p schedule.Point) error {
	c := h.cfg
	xs, o := hv(x), hv(out)
	guided := c.Guidance != 0 && c.Guidance != 1
	copies := 1
	if guided {
		copies = 2
	}
	nb := copies * c.B
	if cap(h.xin) < nb*c.N {
		h.xin = make([]float32, nb*c.N)
	}
	if cap(h.tin) < nb {
		h.tin = make([]float32, nb)
	}
	xin, tin := h.xin[:nb*c.N], h.tin[:nb]
	for k := 0; k < copies; k++ {
		for i, v := range xs {
			xin[k*len(xs)+i] = float32(v)
		}
	}
	tv := c.Schedule.NetTime(p)
	for i := range tin {
		tin[i] = tv
	}
	var cls []int
	if c.Class != nil {
		cls = make([]int, nb)
		copy(cls, c.Class)
		for i := c.B; i < nb; i++ {
			cls[i] = c.Model.NullClass
		}
	}
	shape := append([]int{nb}, c.Model.Shape...)
	y, err := c.Model.Net.Denoise(tensor.From(xin, shape...), tin, cls)
	if err != nil {
		return err
	}
	if y == nil || len(y.Data) != len(xin) {
		return fmt.Errorf("sampler: network returned a wrong-sized output for input shape %v", shape)
	}
	if !guided {
		for i := range o {
			o[i] = float64(y.Data[i])
		}
		return nil
	}
	w := c.Guidance
	for i := range o {
		cd, u := float64(y.Data[i]), float64(y.Data[len(xs)+i])
		o[i] = u + w*(cd-u)
	}
	return nil
}
