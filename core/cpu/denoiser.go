package cpu

import (
	"fmt"
	"sync"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Denoiser runs a model on the reference backend. It builds one graph per
// input shape on first use and keeps it.
type Denoiser struct {
	M *model.Model

	mu     sync.Mutex
	graphs map[[3]int]*graph.Graph
}

// NewDenoiser wraps a model.
func NewDenoiser(m *model.Model) *Denoiser { return &Denoiser{M: m, graphs: map[[3]int]*graph.Graph{}} }

// Denoise implements model.Denoiser.
func (d *Denoiser) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	if len(x.Shape) != 4 {
		return nil, fmt.Errorf("input must be [B,C,H,W], got shape %v", x.Shape)
	}
	b := x.Shape[0]
	if len(t) != b {
		return nil, fmt.Errorf("%d timesteps for a batch of %d", len(t), b)
	}
	key := [3]int{b, x.Shape[2], x.Shape[3]}
	d.mu.Lock()
	g, ok := d.graphs[key]
	d.mu.Unlock()
	if !ok {
		var err error
		if g, err = d.M.Graph(b, x.Shape[2], x.Shape[3]); err != nil {
			return nil, err
		}
		if want := g.Shapes[g.Inputs["x"]]; !tensor.SameShape(want, x.Shape) {
			return nil, fmt.Errorf("input shape %v, model takes %v", x.Shape, want)
		}
		d.mu.Lock()
		d.graphs[key] = g
		d.mu.Unlock()
	}
	inputs := map[string][]float32{"x": x.Data, "t": t}
	if _, conditional := g.Inputs["class"]; conditional {
		if len(class) != b {
			return nil, fmt.Errorf("class-conditional model: need %d class labels, got %d", b, len(class))
		}
		labels := make([]float32, b)
		for i, c := range class {
			labels[i] = float32(c)
		}
		inputs["class"] = labels
	} else if class != nil {
		return nil, fmt.Errorf("model is unconditional but class labels were given")
	}
	return Run(g, inputs)
}
