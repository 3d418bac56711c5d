package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/diffuse-web/diffuse/core/engine"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/tensor"
)

func init() {
	register(&command{name: "sample", summary: "draw samples from a model (--sampler list shows the samplers)", run: runSample})
}

// loadForSampling opens weights as the request engine's model (its schedule
// stored with them, the DDPM default when there is none); size, "HxW",
// replaces the sample size the model records.
func loadForSampling(weights, size string) (*engine.Loaded, error) {
	m, err := model.Load(weights)
	if err != nil {
		return nil, err
	}
	shape := m.InShape()
	if size != "" {
		h, w, err := parseHW(size)
		if err != nil {
			return nil, fmt.Errorf("--size: %w", err)
		}
		if len(shape) != 3 {
			return nil, errors.New("--size: the model does not say its channel count")
		}
		shape = []int{shape[0], h, w}
	}
	if len(shape) != 3 || tensor.Numel(shape) == 0 {
		return nil, fmt.Errorf("the model does not record its sample size (got %v): give --size HxW", shape)
	}
	l, err := engine.FromModelShape(m, shape)
	if err != nil {
		return nil, err
	}
	// The CLI's bounds are the parameters' own and limits.MaxBatch per
	// call, not the page's caps.
	l.Caps = engine.Caps{Batch: limits.MaxBatch}
	return l, nil
}

func printSamplers(w io.Writer) {
	for _, i := range sampler.List() {
		var ps []string
		for _, p := range i.Params {
			ps = append(ps, p.Name)
		}
		fmt.Fprintf(w, "%-19s %s: %s\n%-19s   options: %s\n", i.Name, i.Display, i.Summary, "", strings.Join(ps, ", "))
	}
}

func runSample(args []string) error {
	fs := newFlags("sample", "sample --weights W --sampler NAME [--steps N] [--eta E] [--seed S] [--n N] [--batch B] [--class C] [--guidance G] [--out-png grid.png [--scale K]] [--out-npy x.npy] [--backend fast|reference]\n       diffuse sample --sampler list")
	backend := addBackendFlag(fs)
	weights := fs.String("weights", "", "converted .safetensors file or diffusers model folder (required)")
	name := fs.String("sampler", "ddim", "sampler name; 'list' prints the samplers and their options")
	steps := fs.Int("steps", 0, "number of steps (default: the sampler's)")
	eta := fs.Float64("eta", 0, "ddim: stochasticity η (0 deterministic, 1 DDPM-like); ancestral and SDE samplers: noise scale η (default 1)")
	seed := fs.Uint64("seed", 0, "noise seed; sample i of a request always gets the same noise")
	n := fs.Int("n", 16, "number of samples")
	batch := fs.Int("batch", 8, "samples per network call (does not change the samples)")
	class := fs.Int("class", -1, "class label for class-conditional models (-1: unconditional)")
	guidance := fs.Float64("guidance", 1, "classifier-free guidance scale (1: none)")
	sigmas := fs.String("sigmas", "", "sigma spacing: uniform, karras, exponential or polyexponential (default: the model's config)")
	rho := fs.Float64("rho", 0, "ρ of the karras (default 7) and polyexponential (default 1) sigma spacings")
	clipX0 := fs.Bool("clip-denoised", false, "clip every prediction x̂0 to the data range, any sampler (static thresholding, Saharia et al. 2022); changes the method")
	spacing := fs.String("timestep-spacing", "", "discrete schedules: timestep spacing leading, trailing or linspace, in place of the model's timestep_spacing (Lin et al. 2023, table 2)")
	rtol := fs.Float64("rtol", 0, "rk45: relative tolerance (default 1e-5)")
	atol := fs.Float64("atol", 0, "rk45: absolute tolerance (default 1e-5)")
	endTime := fs.Float64("end-time", 0, "continuous-time models: end time ε before the final denoising (default: the model's)")
	snr := fs.Float64("snr", 0, "pc: Langevin signal-to-noise ratio (default 0.16)")
	corrector := fs.Int("corrector-steps", 0, "pc: Langevin steps per noise level (default 1)")
	sNoise := fs.Float64("s-noise", 0, "ancestral and SDE samplers: factor on the fresh noise (default 1)")
	order := fs.Int("order", 0, "lms, deis, unipc: solver order (default: the sampler's)")
	shift := fs.Float64("shift", 0, "flow_euler, flow_heun: flow-matching timestep shift (default: the model's config)")
	size := fs.String("size", "", "sample size HxW, for models that do not record it")
	outPNG := fs.String("out-png", "", "write the samples as a PNG grid")
	scale := fs.Int("scale", 1, fmt.Sprintf("--out-png: enlarge the grid K times, each pixel a K×K block (nearest neighbour), K in 1..%d", maxScale))
	outNPY := fs.String("out-npy", "", "write the samples as a float32 .npy [N,C,H,W]")
	quiet := fs.Bool("quiet", false, "no progress bar")
	asJSON := fs.Bool("json", false, "with --sampler list: the registry as JSON, as the page and <diffusion-sampler> get it (engine.Samplers)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *name == "list" {
		if *asJSON {
			return json.NewEncoder(os.Stdout).Encode(engine.Samplers())
		}
		printSamplers(os.Stdout)
		return nil
	}
	switch {
	case *weights == "":
		return errors.New("--weights is required")
	case *outPNG == "" && *outNPY == "":
		return errors.New("give --out-png and/or --out-npy")
	}
	if err := limits.Int("--n", int64(*n), 1, limits.MaxSamples); err != nil {
		return err
	}
	if err := limits.Int("--batch", int64(*batch), 1, limits.MaxBatch); err != nil {
		return err
	}
	if err := limits.Int("--scale", int64(*scale), 1, maxScale); err != nil {
		return err
	}
	// The request the engine runs: the flags a sampler takes, by the
	// registry's parameter names (a parameter flag at its zero default is
	// left out, so every sampler accepts the defaults).
	req := engine.Request{Sampler: *name, Steps: *steps, Eta: *eta, Guidance: *guidance, Seed: *seed, Sigmas: *sigmas,
		ClipDenoised: *clipX0, TimestepSpacing: *spacing, Params: map[string]float64{}}
	for k, v := range map[string]float64{"rtol": *rtol, "atol": *atol, "end_time": *endTime, "snr": *snr, "corrector_steps": float64(*corrector), "order": float64(*order), "rho": *rho, "s_noise": *sNoise, "shift": *shift} {
		if v != 0 {
			req.Params[k] = v
		}
	}
	if *class >= 0 {
		req.Class = class
	}
	// Every option is checked before the model is loaded.
	if err := req.Check(); err != nil {
		return asFlag(err)
	}
	if err := checkBackend(*backend); err != nil {
		return err
	}
	info, _ := sampler.Get(*name)
	l, err := loadForSampling(*weights, *size)
	if err != nil {
		return err
	}
	shape := l.Info.Shape
	per := tensor.Numel(shape)
	b0 := min(*batch, *n)
	req.Batch = b0
	calls := b0
	var labels []int
	if *class >= 0 {
		labels = []int{*class}
	}
	if _, guided, err := l.SamplerModel(nil).Labels(&sampler.Options{Class: labels, Guidance: *guidance}, b0); err != nil {
		return asFlag(err)
	} else if guided {
		calls *= 2 // the conditional and unconditional passes share one call
	}
	parts := []limits.Part{{Name: "collected samples", Bytes: limits.Mul(int64(*n), int64(per)*4)}}
	if *outPNG != "" {
		// The PNG's shape and size are checked before anything is sampled.
		if c := shape[0]; c != 1 && c != 3 {
			return fmt.Errorf("--out-png: samples have %d channels; PNG needs 1 or 3 (use --out-npy)", c)
		}
		gw, gh := gridSize(*n, shape[1], shape[2], *scale)
		parts = append(parts, limits.Part{Name: "PNG grid", Bytes: limits.Mul(limits.Mul(int64(gw), int64(gh)), 4)})
	}
	if err := l.Model.CheckRun(b0, calls, shape[1], shape[2], parts...); err != nil {
		return fmt.Errorf("%w (lower --n, --batch or --scale, or raise --mem-budget)", err)
	}
	// The engine's checks against the model (labels, guidance, timestep
	// spacing, the sampler's grid), before anything runs.
	if _, err := l.Plan(req); err != nil {
		return asFlag(err)
	}
	out := make([]float32, *n*per)
	bar := newProgress(os.Stderr, *quiet)
	start := time.Now()
	nfe := 0
	net, err := newNet(l.Model, *backend)
	if err != nil {
		return err
	}
	noImages := func(int, int) bool { return false }
	for first := 0; first < *n; first += *batch {
		b := min(*batch, *n-first)
		req.Batch, req.FirstSample = b, first
		label := fmt.Sprintf("%s %d-%d/%d", info.Name, first+1, first+b, *n)
		res, err := l.Run(context.Background(), net, req, noImages, func(f *engine.Frame) error { bar.update(label, f); return nil })
		bar.done()
		if err != nil {
			return asFlag(err)
		}
		nfe += res.NFE
		copy(out[first*per:], res.X)
	}
	for _, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return errors.New("the samples contain NaN or Inf (try more steps or another sampler)")
		}
	}
	full := append([]int{*n}, shape...)
	if *outNPY != "" {
		if err := npy.WriteFile(*outNPY, full, out); err != nil {
			return err
		}
	}
	if *outPNG != "" {
		lo, hi := l.Schedule.Config.Range()
		if err := writeGrid(*outPNG, out, full, lo, hi, *scale); err != nil {
			return err
		}
	}
	if !*quiet {
		fmt.Fprintf(os.Stderr, "%d samples with %s: %d network calls in %.1fs\n", *n, info.Name, nfe, time.Since(start).Seconds())
	}
	return nil
}

// progress is a one-line progress bar on a terminal-like writer.
type progress struct {
	w     io.Writer
	quiet bool
	shown bool
}

func newProgress(w io.Writer, quiet bool) *progress { return &progress{w: w, quiet: quiet} }

func (p *progress) update(label string, s *engine.Frame) {
	if p.quiet {
		return
	}
	p.shown = true
	if s.Total <= 0 {
		fmt.Fprintf(p.w, "\r%s  step %d  σ/α %.4g  (%d network calls)   ", label, s.Index+1, s.Point.Level, s.NFE)
		return
	}
	const width = 30
	k := (s.Index + 1) * width / s.Total
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", label, strings.Repeat("=", k), strings.Repeat(" ", width-k), s.Index+1, s.Total)
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}

// maxScale bounds --scale: 16 makes a 28×28 MNIST digit 448 pixels wide.
const maxScale = 16

// gridGap is the space between two images of a grid, in sample pixels.
const gridGap = 2

// gridSize is the width and height of the PNG writeGrid makes from n h×w
// images at the given scale. With n ≤ limits.MaxSamples, h, w ≤ limits.MaxSide
// and scale ≤ maxScale each side stays below 2³¹; the caller checks the bytes.
func gridSize(n, h, w, scale int) (width, height int) {
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	rows := (n + cols - 1) / cols
	return (cols*(w+gridGap) - gridGap) * scale, (rows*(h+gridGap) - gridGap) * scale
}

// writeGrid tiles N images [N,C,H,W] (C = 1 or 3) with values in [lo, hi]
// into one PNG, as near square as possible, 2 pixels apart, then enlarges
// the whole grid `scale` times by nearest neighbour (each sample pixel and
// the gaps become scale×scale blocks), so values are never interpolated.
func writeGrid(path string, data []float32, shape []int, lo, hi float64, scale int) error {
	n, c, h, w := shape[0], shape[1], shape[2], shape[3]
	if c != 1 && c != 3 {
		return fmt.Errorf("--out-png: samples have %d channels; PNG needs 1 or 3 (use --out-npy)", c)
	}
	if scale < 1 || scale > maxScale {
		return fmt.Errorf("--scale %d: want 1..%d", scale, maxScale)
	}
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	gw, gh := gridSize(n, h, w, scale)
	img := image.NewNRGBA(image.Rect(0, 0, gw, gh))
	pix := func(v float32) uint8 {
		x := (float64(v) - lo) / (hi - lo) * 255
		return uint8(math.Round(math.Max(0, math.Min(255, x))))
	}
	for i := 0; i < n; i++ {
		ox, oy := (i%cols)*(w+gridGap)*scale, (i/cols)*(h+gridGap)*scale
		base := i * c * h * w
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var col color.NRGBA
				if c == 1 {
					g := pix(data[base+y*w+x])
					col = color.NRGBA{g, g, g, 255}
				} else {
					col = color.NRGBA{pix(data[base+y*w+x]), pix(data[base+h*w+y*w+x]), pix(data[base+2*h*w+y*w+x]), 255}
				}
				for dy := 0; dy < scale; dy++ {
					for dx := 0; dx < scale; dx++ {
						img.SetNRGBA(ox+x*scale+dx, oy+y*scale+dy, col)
					}
				}
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// parseHW reads "N" or "HxW".
func parseHW(s string) (int, int, error) {
	a, b, found := strings.Cut(strings.ToLower(s), "x")
	h, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil || h < 1 {
		return 0, 0, fmt.Errorf("%q is not N or HxW", s)
	}
	w := h
	if found {
		if w, err = strconv.Atoi(strings.TrimSpace(b)); err != nil || w < 1 {
			return 0, 0, fmt.Errorf("%q is not N or HxW", s)
		}
	}
	if h > limits.MaxSide || w > limits.MaxSide {
		return 0, 0, fmt.Errorf("%q: each side must be at most %d", s, limits.MaxSide)
	}
	return h, w, nil
}
