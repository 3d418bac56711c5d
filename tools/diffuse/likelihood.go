package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/rng"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/tensor"
)

func init() {
	register(&command{name: "likelihood", summary: "estimate bits/dim of images through the probability-flow ODE", run: runLikelihood})
}

func runLikelihood(args []string) error {
	fs := newFlags("likelihood", "likelihood --weights W --x images.npy [--batch B] [--probes K] [--rtol R] [--atol A] [--dequantize] [--class C] [--each] [--backend fast|reference]")
	weights := fs.String("weights", "", "converted .safetensors file or diffusers model folder (required)")
	xPath := fs.String("x", "", "images [N,C,H,W] as .npy, in the model's data range (required)")
	backend := addBackendFlag(fs)
	batch := fs.Int("batch", 8, "images per ODE solve (each network call takes batch·(1+probes) samples)")
	probes := fs.Int("probes", 1, "Hutchinson probe vectors per image")
	gaussian := fs.Bool("gaussian-probes", false, "Gaussian instead of Rademacher probes")
	rtol := fs.Float64("rtol", 1e-5, "RK45 relative tolerance")
	atol := fs.Float64("atol", 1e-5, "RK45 absolute tolerance")
	delta := fs.Float64("delta", 1e-3, "finite-difference step, relative to the network input's scale")
	endTime := fs.Float64("end-time", 0, "continuous-time models: the end time ε (default: the model's)")
	seed := fs.Uint64("seed", 0, "seed of the probe vectors and the dequantisation noise")
	class := fs.Int("class", -1, "class label for class-conditional models (-1: the null class)")
	dequant := fs.Bool("dequantize", false, "treat the images as 8-bit and add uniform dequantisation noise (Song et al. 2021, app. D.2)")
	offset := fs.Float64("offset", 7, "added to bits/dim: 7 = log2(256/2) for 8-bit data scaled to a range of width 2; 0 for the continuous density")
	each := fs.Bool("each", false, "print every image's bits/dim")
	size := fs.String("size", "", "sample size HxW, for models that do not record it")
	quiet := fs.Bool("quiet", false, "no progress output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *weights == "" || *xPath == "" {
		return errors.New("--weights and --x are required")
	}
	if err := limits.Int("--batch", int64(*batch), 1, limits.MaxBatch); err != nil {
		return err
	}
	// Every option is checked before the model is loaded (the sampler's own bounds).
	template := sampler.LikelihoodOptions{RTol: *rtol, ATol: *atol, EndTime: *endTime, Delta: *delta, Probes: *probes, Offset: *offset}
	if err := template.Check(); err != nil {
		return asFlag(err)
	}
	if (1+*probes)**batch > limits.MaxBatch {
		return &limits.Error{Field: "--batch × (1 + --probes)", Value: (1 + *probes) * *batch, Limit: fmt.Sprintf("at most %d samples per network call", limits.MaxBatch)}
	}
	if err := checkBackend(*backend); err != nil {
		return err
	}
	l, err := loadForSampling(*weights, *size)
	if err != nil {
		return err
	}
	net, err := newNet(l.Model, *backend)
	if err != nil {
		return err
	}
	sm := l.SamplerModel(net)
	var labels []int
	if *class >= 0 {
		labels = []int{*class}
	}
	if _, _, err := sm.Labels(&sampler.Options{Class: labels}, 1); err != nil {
		return asFlag(err)
	}
	xa, err := npy.ReadFile(*xPath)
	if err != nil {
		return fmt.Errorf("--x: %w", err)
	}
	shape := sm.Shape
	if len(xa.Shape) != 4 || !tensor.SameShape(xa.Shape[1:], shape) {
		return fmt.Errorf("--x: shape %v, want [N,%d,%d,%d] for this model", xa.Shape, shape[0], shape[1], shape[2])
	}
	x := xa.Float64()
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("--x: contains NaN or Inf")
		}
	}
	n, per := xa.Shape[0], tensor.Numel(shape)
	b0 := min(*batch, n)
	if err := l.Model.CheckRun(b0, b0*(1+*probes), shape[1], shape[2]); err != nil {
		return fmt.Errorf("%w (lower --batch or --probes, or raise --mem-budget)", err)
	}
	if *dequant {
		// 8-bit levels k = round((x-lo)/(hi-lo)·255), then x = lo + (k+u)/256·(hi-lo)
		lo, hi := sm.Schedule.Config.Range()
		u := make([]float64, per)
		for i := 0; i < n; i++ {
			rng.Uniform64(*seed, i, rng.Dequant, 0, u)
			for j := range u {
				k := math.Round(math.Max(0, math.Min(255, (x[i*per+j]-lo)/(hi-lo)*255)))
				x[i*per+j] = lo + (k+u[j])/256*(hi-lo)
			}
		}
	}
	start := time.Now()
	var bpd []float64
	nfe := 0
	for first := 0; first < n; first += *batch {
		b := min(*batch, n-first)
		lo := &sampler.LikelihoodOptions{
			RTol: *rtol, ATol: *atol, EndTime: *endTime, Delta: *delta, Probes: *probes, Gaussian: *gaussian,
			Seed: *seed, FirstSample: first, Class: labels, Offset: *offset,
		}
		if !*quiet {
			lo.Progress = func(s sampler.Step) error {
				fmt.Fprintf(os.Stderr, "\rlikelihood %d-%d/%d: σ/α %.4g, %d network calls   ", first+1, first+b, n, s.Point.Level, s.NFE)
				return nil
			}
		}
		res, err := sampler.Likelihood(context.Background(), sm, x[first*per:(first+b)*per], lo)
		if !*quiet {
			fmt.Fprintln(os.Stderr)
		}
		if err != nil {
			return err
		}
		nfe += res.NFE
		bpd = append(bpd, res.BitsPerDim...)
	}
	mean, sq := 0.0, 0.0
	for i, v := range bpd {
		if *each {
			fmt.Printf("%d\t%.4f\n", i, v)
		}
		mean += v
	}
	mean /= float64(len(bpd))
	for _, v := range bpd {
		sq += (v - mean) * (v - mean)
	}
	se := 0.0
	if len(bpd) > 1 {
		se = math.Sqrt(sq / float64(len(bpd)-1) / float64(len(bpd)))
	}
	fmt.Printf("bits/dim: %.4f ± %.4f (mean ± standard error over %d images; offset %g)\n", mean, se, len(bpd), *offset)
	if !*quiet {
		fmt.Fprintf(os.Stderr, "%d network calls of up to %d samples in %.1fs\n", nfe, *batch*(1+*probes), time.Since(start).Seconds())
	}
	return nil
}
