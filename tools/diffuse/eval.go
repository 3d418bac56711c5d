package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/tensor"
)

func init() {
	register(&command{name: "eval", summary: "run one denoiser forward pass on x.npy at t.npy", run: runEval})
}

func runEval(args []string) error {
	fs := newFlags("eval", "eval --weights W --x x.npy --t t.npy [--class c.npy] -o y.npy [--backend fast|reference]")
	weights := fs.String("weights", "", "converted .safetensors file or diffusers model folder (required)")
	xPath := fs.String("x", "", "input sample [B,C,H,W] as .npy (required)")
	tPath := fs.String("t", "", "timesteps [B] as .npy (required)")
	cPath := fs.String("class", "", "class labels [B] as .npy, float or int (class-conditional models)")
	out := fs.String("o", "", "output .npy (required)")
	backend := addBackendFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *weights == "" || *xPath == "" || *tPath == "" || *out == "" {
		fs.Usage()
		return errors.New("--weights, --x, --t and -o are required")
	}
	m, err := model.Load(*weights)
	if err != nil {
		return err
	}
	y, err := evalFiles(m, *xPath, *tPath, *cPath, *backend)
	if err != nil {
		return err
	}
	return npy.WriteFile(*out, y.Shape, y.Data)
}

// evalFiles runs m on inputs read from .npy files on the named backend.
func evalFiles(m *model.Model, xPath, tPath, cPath, backend string) (*tensor.Tensor, error) {
	xa, err := npy.ReadFile(xPath)
	if err != nil {
		return nil, fmt.Errorf("--x: %w", err)
	}
	ta, err := npy.ReadFile(tPath)
	if err != nil {
		return nil, fmt.Errorf("--t: %w", err)
	}
	var class []int
	if cPath != "" {
		ca, err := npy.ReadFile(cPath)
		if err != nil {
			return nil, fmt.Errorf("--class: %w", err)
		}
		labels, err := ca.Int64()
		if err != nil {
			return nil, fmt.Errorf("--class: %w", err)
		}
		for _, l := range labels {
			class = append(class, int(l))
		}
	}
	x := xa.Tensor()
	if len(x.Shape) != 4 {
		return nil, fmt.Errorf("--x: want shape [B,C,H,W], got %v", x.Shape)
	}
	if err := m.CheckRun(x.Shape[0], x.Shape[0], x.Shape[2], x.Shape[3]); err != nil {
		return nil, fmt.Errorf("--x: %w", err)
	}
	t := ta.Float32()
	if err := limits.FiniteValues("--x", x.Data); err != nil {
		return nil, err
	}
	if err := limits.FiniteValues("--t", t); err != nil {
		return nil, err
	}
	if len(t) == 1 && x.Shape[0] > 1 { // one timestep for the whole batch, as diffusers allows
		for len(t) < x.Shape[0] {
			t = append(t, t[0])
		}
	}
	net, err := newNet(m, backend)
	if err != nil {
		return nil, err
	}
	y, err := net.Denoise(x, t, class)
	if err != nil {
		return nil, err
	}
	if err := limits.FiniteValues("the network output", y.Data); err != nil {
		return nil, fmt.Errorf("%w (the weights or inputs are out of float32 range)", err)
	}
	fmt.Fprintf(os.Stderr, "eval: %v -> %v\n", x.Shape, y.Shape)
	return y, nil
}
