package simd

import (
	"fmt"
	"sync"
	"time"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Denoiser runs a model with the SIMD128 kernels: GEMM-based convolutions
// and linears on weights packed once, fused GroupNorm(+scale/shift)(+SiLU),
// attention as GEMM+softmax+GEMM, vector elementwise ops; the remaining cheap
// layout ops run the reference code over the same buffers. One plan (buffers
// and scratch in kernel memory) is built per input shape on first use.
//
// A Denoiser is safe for concurrent use; calls are serialised.
type Denoiser struct {
	M *model.Model

	mu     sync.Mutex
	k      *Kernels
	w      *weights
	plans  map[[3]int]*plan
	prof   map[string]time.Duration
	check  func() error
	closed bool
}

var _ model.Denoiser = (*Denoiser)(nil)

// NewDenoiser prepares m for the SIMD kernels. It fails when the kernels are
// unavailable (in the browser: no WebAssembly SIMD, or the page did not
// attach the kernel module; see simd_glue.js).
func NewDenoiser(m *model.Model) (*Denoiser, error) {
	k, err := NewKernels()
	if err != nil {
		return nil, err
	}
	return newDenoiser(m, k), nil
}

func newDenoiser(m *model.Model, k *Kernels) *Denoiser {
	return &Denoiser{M: m, k: k, w: newWeights(k, m.Params), plans: map[[3]int]*plan{}}
}

// Close releases the kernel memory (natively; a no-op in the browser).
func (d *Denoiser) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.plans = nil
	return d.k.Close()
}

// Profile turns per-op timing on (a non-nil map collects the time spent per
// step kind across calls) or off (nil).
func (d *Denoiser) Profile(m map[string]time.Duration) {
	d.mu.Lock()
	d.prof = m
	d.mu.Unlock()
}

// SetCheck installs f (nil: none), called between the plan's steps of every
// call; an error from it ends the call with that error. The page's worker
// uses it to let its event loop run during a long call and to stop a
// cancelled run inside a network call rather than after it: one call of a
// 256×256 network takes a minute or more on a CPU.
func (d *Denoiser) SetCheck(f func() error) {
	d.mu.Lock()
	d.check = f
	d.mu.Unlock()
}

// MemoryBytes reports the kernel memory in use (weights, plans, scratch).
func (d *Denoiser) MemoryBytes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.k.Used()
}

// Denoise implements model.Denoiser.
func (d *Denoiser) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	if len(x.Shape) != 4 {
		return nil, fmt.Errorf("input must be [B,C,H,W], got shape %v", x.Shape)
	}
	b := x.Shape[0]
	if len(t) != b {
		return nil, fmt.Errorf("%d timesteps for a batch of %d", len(t), b)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("simd: denoiser is closed")
	}
	key := [3]int{b, x.Shape[2], x.Shape[3]}
	p, ok := d.plans[key]
	if !ok {
		g, err := d.M.Graph(b, x.Shape[2], x.Shape[3])
		if err != nil {
			return nil, err
		}
		if want := g.Shapes[g.Inputs["x"]]; !tensor.SameShape(want, x.Shape) {
			return nil, fmt.Errorf("input shape %v, model takes %v", x.Shape, want)
		}
		if p, err = newPlan(d.k, d.w, g); err != nil {
			return nil, err
		}
		d.plans[key] = p
	}
	if len(x.Data) != tensor.Numel(x.Shape) {
		return nil, fmt.Errorf("input has %d values for shape %v", len(x.Data), x.Shape)
	}
	copy(p.inputs["x"], x.Data)
	copy(p.inputs["t"], t)
	if labels, conditional := p.inputs["class"]; conditional {
		if len(class) != b {
			return nil, fmt.Errorf("class-conditional model: need %d class labels, got %d", b, len(class))
		}
		for i, c := range class {
			labels[i] = float32(c)
		}
	} else if class != nil {
		return nil, fmt.Errorf("model is unconditional but class labels were given")
	}
	if err := p.run(d.prof, d.check); err != nil {
		return nil, err
	}
	out := p.vals[p.g.Output]
	return tensor.From(append([]float32(nil), out...), p.g.Shapes[p.g.Output]...), nil
}
