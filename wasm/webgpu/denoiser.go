//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Denoiser runs a model on the GPU; it implements model.Denoiser. Weights
// are uploaded once; a Program is compiled per (batch, height, width) on
// first use and kept. Batches larger than the device's binding limits allow
// are split into chunks.
type Denoiser struct {
	dev *Device
	m   *model.Model
	o   Options
	w   *weightStore

	mu       sync.Mutex
	programs map[[3]int]*Program
	maxBatch map[[2]int]int
}

var _ model.Denoiser = (*Denoiser)(nil)

// NewDenoiser prepares m with default options (WeightsAuto: f16 weights
// when exact, f32 on software adapters).
func (d *Device) NewDenoiser(m *model.Model) (*Denoiser, error) {
	return d.NewDenoiserWith(m, Options{})
}

// NewDenoiserWith prepares m with the given options and compiles the
// program for one sample at the model's native size, so a model that does
// not fit the device is refused here.
func (d *Device) NewDenoiserWith(m *model.Model, o Options) (*Denoiser, error) {
	if err := d.gpu.LostErr(); err != nil {
		return nil, err
	}
	dn := &Denoiser{dev: d, m: m, o: o, w: newWeightStore(d, m.Params, o),
		programs: map[[3]int]*Program{}, maxBatch: map[[2]int]int{}}
	if s := m.InShape(); len(s) == 3 && s[1] > 0 {
		if _, err := dn.program(context.Background(), 1, s[1], s[2]); err != nil {
			dn.Release()
			return nil, err
		}
	}
	return dn, nil
}

// WeightFormat says how the weights are stored on the GPU ("f16" or "f32").
func (dn *Denoiser) WeightFormat() string { return dn.w.format.String() }

// Release frees the GPU memory of the weights and every program.
func (dn *Denoiser) Release() {
	dn.mu.Lock()
	defer dn.mu.Unlock()
	for _, p := range dn.programs {
		p.Release()
	}
	dn.programs = map[[3]int]*Program{}
	dn.w.destroy()
}

func (dn *Denoiser) program(ctx context.Context, b, h, w int) (*Program, error) {
	dn.mu.Lock()
	defer dn.mu.Unlock()
	key := [3]int{b, h, w}
	if p, ok := dn.programs[key]; ok {
		return p, nil
	}
	g, err := dn.m.Graph(b, h, w)
	if err != nil {
		return nil, err
	}
	p, err := dn.dev.compile(ctx, g, dn.w, dn.o)
	if err != nil {
		return nil, err
	}
	dn.programs[key] = p
	return p, nil
}

// chunk is the largest batch (≤ want) the device takes at this size: the
// biggest tensor grows linearly with the batch, so it is measured on one
// sample and divided into the binding limit.
func (dn *Denoiser) chunk(h, w, want int) (int, error) {
	dn.mu.Lock()
	mb, ok := dn.maxBatch[[2]int{h, w}]
	dn.mu.Unlock()
	if !ok {
		g, err := dn.m.Graph(1, h, w)
		if err != nil {
			return 0, err
		}
		lim := dn.dev.limits
		limit := min(lim.MaxStorageBufferBindingSize, lim.MaxBufferSize)
		per := perSampleBytes(g, useSerial(dn.dev, dn.o), limit)
		mb = int(limit / max(per, 1))
		if mb < 1 {
			return 0, &LimitError{What: fmt.Sprintf("one %dx%d sample", h, w), Limit: "maxStorageBufferBindingSize", Need: per, Have: limit}
		}
		dn.mu.Lock()
		dn.maxBatch[[2]int{h, w}] = mb
		dn.mu.Unlock()
	}
	return min(mb, want), nil
}

// perSampleBytes is the largest buffer a one-sample graph binds (for a
// batch of B, B times as much): a value, attention's heads×N×N scores or
// its fused [3C, N] q/k/v (attnblock.go), linear attention's context
// matrices (lucid.go), or the views of linears merged on
// one input (linears.go), and with the serial kernels (serial) the
// scratch of the Winograd convolutions that fit a binding of limit bytes
// (winograd.go). Split-K scratch is capped to it (splitFor).
func perSampleBytes(g *graph.Graph, serial bool, limit uint64) uint64 {
	var m uint64
	if serial {
		m = winoScratch(g, limit)
	}
	for _, s := range g.Shapes {
		m = max(m, valBytes(s))
	}
	merged := map[graph.Value]uint64{}
	nlin := map[graph.Value]int{}
	for _, n := range g.Nodes {
		switch n.Op {
		case graph.OpAttention:
			s := g.Shapes[n.In[0]]
			m = max(m, 4*uint64(n.Ints[0])*uint64(s[1])*uint64(s[1]), 3*valBytes(s))
		case graph.OpConv2D: // the serial convolution's padded input (serial.go)
			s, o, w := g.Shapes[n.In[0]], g.Shapes[n.Out], g.Params[n.Weight].Shape
			st := uint64(n.Ints[0])
			m = max(m, 4*uint64(s[0]*s[1])*((uint64(o[2])-1)*st+uint64(w[2]))*((uint64(o[3])-1)*st+uint64(w[3])))
		case graph.OpConvTranspose2D: // the serial one's spread input (convtSerial)
			if serial {
				s, o, w := g.Shapes[n.In[0]], g.Shapes[n.Out], g.Params[n.Weight].Shape
				m = max(m, 4*uint64(s[0]*s[1])*uint64(o[2]+w[2]-1)*uint64(o[3]+w[3]-1))
			}
		case graph.OpLinear:
			merged[n.In[0]] += valBytes(g.Shapes[n.Out]) + 256
			nlin[n.In[0]]++
		case graph.OpLinearAttention: // per-head D×D context (lucid.go); qkv is [B, 3·heads·D, H, W]
			s := g.Shapes[n.In[0]]
			if heads := n.Ints[0]; heads > 0 {
				d := uint64(s[1] / (3 * heads))
				m = max(m, 4*uint64(s[0])*uint64(heads)*d*d)
			}
		}
	}
	for v, b := range merged {
		if nlin[v] > 1 {
			m = max(m, b)
		}
	}
	return m
}

// Denoise implements model.Denoiser.
func (dn *Denoiser) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	return dn.DenoiseContext(context.Background(), x, t, class)
}

// DenoiseContext is Denoise with a context that can abandon the wait for
// the GPU (the submitted work still completes).
func (dn *Denoiser) DenoiseContext(ctx context.Context, x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	if len(x.Shape) != 4 {
		return nil, fmt.Errorf("input must be [B,C,H,W], got shape %v", x.Shape)
	}
	B, h, w := x.Shape[0], x.Shape[2], x.Shape[3]
	if len(t) != B {
		return nil, fmt.Errorf("%d timesteps for a batch of %d", len(t), B)
	}
	cond, _ := dn.m.Conditional()
	if cond && len(class) != B {
		return nil, fmt.Errorf("class-conditional model: need %d class labels, got %d", B, len(class))
	}
	if !cond && class != nil {
		return nil, errors.New("model is unconditional but class labels were given")
	}
	chunk, err := dn.chunk(h, w, B)
	if err != nil {
		return nil, err
	}
	per := tensor.Numel(x.Shape[1:])
	var out *tensor.Tensor
	for b0 := 0; b0 < B; b0 += chunk {
		n := min(chunk, B-b0)
		p, err := dn.program(ctx, n, h, w)
		var le *LimitError
		for errors.As(err, &le) && le.BatchSplittable && n > 1 {
			// Another limit (dispatch size) binds first: halve the chunk.
			chunk = max(n/2, 1)
			n = chunk
			p, err = dn.program(ctx, n, h, w)
		}
		if err != nil {
			return nil, err
		}
		if want := p.g.Shapes[p.g.Inputs["x"]]; !tensor.SameShape(want, append([]int{n}, x.Shape[1:]...)) {
			return nil, fmt.Errorf("input shape %v, model takes %v", x.Shape, want)
		}
		in := map[string][]float32{"x": x.Data[b0*per : (b0+n)*per], "t": t[b0 : b0+n]}
		if cond {
			labels := make([]float32, n)
			for i, c := range class[b0 : b0+n] {
				labels[i] = float32(c)
			}
			in["class"] = labels
		}
		y, err := p.Run(ctx, in)
		if err != nil {
			return nil, err
		}
		if n == B {
			return y, nil
		}
		if out == nil {
			out = tensor.New(append([]int{B}, y.Shape[1:]...)...)
		}
		yper := len(y.Data) / n
		copy(out.Data[b0*yper:], y.Data)
	}
	return out, nil
}
