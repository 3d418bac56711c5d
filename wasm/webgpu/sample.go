//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/rng"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// SampleDDIM is sampler.DDIM (same signature, options and noise) with the
// sample kept on the GPU: each step writes only the time, the step's
// coefficients and, for η > 0, that step's noise (drawn on the host from
// core/rng, so it is the CPU sampler's noise), then submits the network and
// the update kernel together; x is read back once at the end. m.Net is not
// used (the network is dn's model); m.Schedule, m.Shape and m.NullClass are.
//
// The state is float32 where the CPU sampler keeps float64, so results
// agree to float32 rounding, not bit for bit. Steps are submitted without
// waiting for each other; Progress, when set, is called as each step is
// submitted, with X and X0 nil: reading them back would cost the round trip
// this function exists to avoid. GPU errors are caught for the whole loop
// and then attributed to a kernel.
func (dn *Denoiser) SampleDDIM(ctx context.Context, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, error) {
	if m == nil || m.Schedule == nil {
		return nil, errors.New("webgpu: SampleDDIM needs a schedule")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var opt sampler.Options
	if o != nil {
		opt = *o
	}
	if opt.Steps == 0 {
		opt.Steps = 50
	}
	if opt.Steps < 0 {
		return nil, fmt.Errorf("sampler: steps must be positive, got %d", opt.Steps)
	}
	if len(m.Shape) != 3 {
		return nil, fmt.Errorf("webgpu: sample shape %v is not [C,H,W]", m.Shape)
	}
	per := tensor.Numel(m.Shape)
	if per == 0 || len(noise) == 0 || len(noise)%per != 0 {
		return nil, fmt.Errorf("sampler: %d input values are not a whole batch of shape %v", len(noise), m.Shape)
	}
	B := len(noise) / per
	s, err := m.Schedule.WithEndTime(opt.EndTime)
	if err != nil {
		return nil, err
	}
	g, err := s.DDIMGrid(opt.Steps, opt.Sigmas)
	if err != nil {
		return nil, err
	}
	pred := map[string]uint32{"epsilon": 0, "sample": 1, "v_prediction": 2, "score": 3}
	pt, ok := pred[s.Config.PredictionType]
	if !ok {
		return nil, fmt.Errorf("sampler: unsupported prediction_type %q", s.Config.PredictionType)
	}

	// Labels and guidance, as the CPU sampler resolves them.
	var cls []int
	switch len(opt.Class) {
	case 0:
		if m.NullClass >= 0 {
			cls = make([]int, B)
			for i := range cls {
				cls[i] = m.NullClass
			}
		}
	case 1, B:
		cls = make([]int, B)
		for i := range cls {
			cls[i] = opt.Class[i%len(opt.Class)]
		}
	default:
		return nil, fmt.Errorf("sampler: %d class labels for a batch of %d", len(opt.Class), B)
	}
	guided := false
	if w := opt.Guidance; w != 0 && w != 1 {
		if len(opt.Class) == 0 {
			return nil, errors.New("sampler: guidance needs class labels")
		}
		if m.NullClass < 0 {
			return nil, errors.New("sampler: guidance needs the model's null class (metadata " + model.KeyNullClass + ")")
		}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("sampler: bad guidance scale %v", w)
		}
		guided = true
	}
	copies := 1
	if guided {
		copies = 2
	}
	chunk, err := dn.chunk(m.Shape[1], m.Shape[2], copies*B)
	if err != nil {
		return nil, err
	}
	if chunk < copies {
		return nil, &LimitError{What: "a guided sample", Limit: "maxStorageBufferBindingSize", Need: 2, Have: uint64(chunk)}
	}
	chunk /= copies

	x := make([]float64, len(noise))
	nfe := 0
	for b0 := 0; b0 < B; b0 += chunk {
		n := min(chunk, B-b0)
		var c []int
		if cls != nil {
			c = cls[b0 : b0+n]
		}
		j := &ddimJob{dn: dn, m: m, s: s, g: g, o: &opt, pred: pt, guided: guided, cls: c, first: opt.FirstSample + b0, b: n, per: per}
		if err := j.run(ctx, noise[b0*per:(b0+n)*per], x[b0*per:(b0+n)*per]); err != nil {
			return nil, err
		}
		nfe += j.nfe
	}
	return &sampler.Result{X: x, NFE: nfe}, nil
}

// ddimJob samples one chunk of the batch.
type ddimJob struct {
	dn     *Denoiser
	m      *sampler.Model
	s      *schedule.Schedule
	g      schedule.Grid
	o      *sampler.Options
	pred   uint32
	guided bool
	cls    []int
	first  int // global index of the chunk's first sample (keys the noise)
	b, per int
	nfe    int
}

func (j *ddimJob) run(ctx context.Context, noise, out []float64) error {
	dev := j.dn.dev
	gd := dev.gpu
	nb := j.b
	if j.guided {
		nb *= 2
	}
	p, err := j.dn.program(ctx, nb, j.m.Shape[1], j.m.Shape[2])
	if err != nil {
		return err
	}
	n := j.b * j.per
	if got := p.outBytes / 4; got != uint64(nb*j.per) {
		return fmt.Errorf("sampler: network output has %d values per batch, the sample %d", got, nb*j.per)
	}
	if err := gd.LostErr(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()

	// The state x, the step's noise, and the update's uniform and bind group.
	bytes := roundUp(uint64(4*n), 16)
	var xs, zs, uni *gpu.Buffer
	var bg *gpu.BindGroup
	dev.mu.Lock()
	if err := dev.pipelinesFor(ctx, map[kernelKey]bool{{"sampler", "ddim_step"}: true}); err != nil {
		dev.mu.Unlock()
		return err
	}
	pipe := dev.pipeline(kernelKey{"sampler", "ddim_step"})
	err = gd.Scoped(ctx, "sampler buffers", func() {
		xs = gd.CreateBuffer("sample x", bytes, gpu.Storage|gpu.CopySrc|gpu.CopyDst)
		zs = gd.CreateBuffer("sample noise", bytes, gpu.Storage|gpu.CopyDst)
		uni = gd.CreateBuffer("ddim step", 256, gpu.Uniform|gpu.CopyDst)
		bg = gd.CreateBindGroup("ddim_step", dev.layout("sampler"), []gpu.Binding{
			{Buffer: uni, Size: 256}, {Buffer: p.out, Size: p.outBytes}, {Buffer: zs, Size: uint64(4 * n)}, {Buffer: xs, Size: uint64(4 * n)}})
	})
	dev.mu.Unlock()
	if xs != nil {
		defer xs.Destroy()
		defer zs.Destroy()
		defer uni.Destroy()
	}
	if err != nil {
		return err
	}
	grid, err := (&compiler{lim: dev.limits}).grid("ddim_step", (n+255)/256)
	if err != nil {
		return err
	}

	x := make([]float32, n)
	for i, v := range noise {
		x[i] = float32(j.g.InitSigma * v)
	}
	gd.WriteBuffer(xs, 0, gpu.Float32Bytes(x))
	if j.cls != nil {
		labels := make([]float32, nb)
		for i := range labels {
			if i < j.b {
				labels[i] = float32(j.cls[i])
			} else {
				labels[i] = float32(j.m.NullClass)
			}
		}
		for _, lc := range p.labels {
			for _, l := range labels {
				if int(l) < 0 || int(l) >= lc.rows {
					return fmt.Errorf("%s: class label %v outside 0..%d", lc.node, l, lc.rows-1)
				}
			}
		}
		gd.WriteBuffer(p.inputs["class"], 0, gpu.Float32Bytes(labels))
	} else if _, cond := p.inputs["class"]; cond {
		return errors.New("class-conditional model: need class labels")
	}

	cfg := j.s.Config
	clip := cfg.ClipSampleOn()
	// One error scope around the whole loop: steps are submitted without
	// waiting, and the queue orders each step's buffer writes after the
	// previous step's work.
	gd.PushScopes()
	popped := false
	defer func() {
		if !popped {
			gd.PopScopes("DDIM").Wait(ctx)
		}
	}()
	z64 := make([]float64, j.per)
	z := make([]float32, n)
	tin := make([]float32, nb)
	for i, st := range j.g.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		at, sgt, as, ss := st.From.Alpha, st.From.Sigma, st.To.Alpha, st.To.Sigma
		c := 0.0
		if j.o.Eta != 0 && ss > 0 {
			q := (at * ss) / (as * sgt)
			c = j.o.Eta * math.Sqrt(math.Max(ss*ss*(1-q*q), 0))
		}
		dir := math.Sqrt(math.Max(ss*ss-c*c, 0))
		flags := 0
		if clip {
			flags |= 1
			if cfg.UseClippedModelOutput {
				flags |= 2
			}
		}
		if c > 0 {
			flags |= 4
			for b := 0; b < j.b; b++ {
				if j.o.Noise != nil {
					j.o.Noise(j.first+b, i, 0, z64)
				} else {
					rng.NormalStream64(j.o.Seed, j.first+b, i, 0, z64)
				}
				for k, v := range z64 {
					z[b*j.per+k] = float32(v)
				}
			}
			gd.WriteBuffer(zs, 0, gpu.Float32Bytes(z))
		}
		tv := j.s.NetTime(st.From)
		for k := range tin {
			tin[k] = tv
		}
		gd.WriteBuffer(p.inputs["t"], 0, gpu.Float32Bytes(tin))
		gd.WriteBuffer(uni, 0, gpu.Uint32Bytes(words(n, b01(j.guided), int(j.pred), flags,
			at, sgt, as, dir, c, j.o.Guidance, cfg.ClipSampleRange, 0)))
		if err := gd.LostErr(); err != nil {
			return err
		}
		e := gd.NewEncoder("ddim")
		for k := 0; k < nb/j.b; k++ {
			e.Copy(xs, 0, p.inputs["x"], uint64(4*k*n), uint64(4*n))
		}
		p.encode(e)
		e.Dispatch(pipe, bg, grid[0], grid[1], grid[2])
		e.Submit()
		j.nfe++
		if j.o.Progress != nil {
			if err := j.o.Progress(sampler.Step{Index: i, Total: len(j.g.Steps), NFE: j.nfe, Point: st.From}); err != nil {
				return err
			}
		}
	}
	rb := gd.CreateBuffer("sample readback", bytes, gpu.MapRead|gpu.CopyDst)
	defer rb.Destroy()
	e := gd.NewEncoder("readback")
	e.Copy(xs, 0, rb, 0, uint64(4*n))
	e.Submit()
	scopes := gd.PopScopes("DDIM loop")
	popped = true
	read := gd.StartRead(rb, 4*n)
	if err := scopes.Wait(ctx); err != nil {
		if errors.Is(err, ErrDeviceLost) {
			return err
		}
		read.Unmap(ctx)
		return p.blame(ctx, err)
	}
	if err := read.Wait(ctx, gpu.Float32Bytes(x)); err != nil {
		return err
	}
	for i, v := range x {
		out[i] = float64(v)
	}
	return nil
}

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}
