//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// The GPU-resident rk45 (rk45.wgsl): the adaptive step control runs on
// the GPU, so attempts are encoded back to back without the host; the host
// reads back only the control words, the attempts' log and (for previews)
// the accepted steps' y and x̂0, once per batch of up to rkSlots attempts.

func init() {
	families["rk45"] = family{"rk45.wgsl", false, nil, []gpu.BindingType{u, ro, ro, rw, rw, rw, rw}, []string{"index.wgsl"}}
}

const (
	// rkSlots is the most attempts one submission holds, and the preview
	// slots per chunk.
	rkSlots = 8
	// rkRegions are y, k0..k6 and the stage input, before the slots.
	rkRegions = 9
	// rkHead is the control words ahead of the per-sample sums in C.
	rkHead = 16
	// rkStages are the uniform slots: the start (0), the attempt's stages
	// 1..6 and the initial trial step (7).
	rkStages = 8
)

// C's control words (rk45.wgsl).
const (
	rkU = iota
	rkH
	rkHS
	rkUN
	rkRej
	rkDone
	rkFail
	rkAtt
	rkAcc
)

var rkEntries = []string{"rk_input", "rk_slope", "rk_norm_start", "rk_norm_trial", "rk_norm_err",
	"rk_start_h0", "rk_start_h", "rk_control", "rk_accept"}

// rkMaxAttempts bounds the attempts as core/sampler.RK45 bounds its
// evaluations (2 to start, 6 per attempt).
const rkMaxAttempts = (sampler.RK45MaxNFE - 2) / 6

// rkSchedule is what rk45.wgsl's point() needs of the schedule: its kind,
// two constants, the discrete log levels and the network time input.
func rkSchedule(s *schedule.Schedule) (kind uint32, c0, c1 float64, levels []float32, tmode uint32, tscale float64) {
	switch {
	case s.Kind == schedule.VP:
		kind, c0, c1 = 1, s.Config.BetaMin, 0.5*(s.Config.BetaMax-s.Config.BetaMin)
	case s.Kind == schedule.VE && s.Config.SDE == "ve_tutorial":
		kind, c0 = 3, 2*math.Log(s.Config.Sigma)
	case s.Kind == schedule.VE:
		lo, hi := s.LevelAt(0), s.LevelAt(1)
		kind, c0, c1 = 2, math.Log(lo), 1/math.Log(hi/lo)
	default:
		// core/schedule's log levels, log sqrt((1-ᾱ)/ᾱ).
		for _, p := range s.AlphasCumprod() {
			levels = append(levels, float32(math.Log(math.Sqrt((1-p)/p))))
		}
	}
	// The network's time input (schedule.NetTime): the level, its log, or
	// the time times a scale.
	switch s.TimeInput() {
	case "sigma":
		tmode = 1
	case "log_sigma":
		tmode = 2
	case "t_scaled":
		tscale = float64(s.Config.NumTrainTimesteps - 1)
	default:
		tscale = 1
	}
	return
}

// rkPoint is core/sampler's pointAtLog: the point at noise level e^u.
func rkPoint(s *schedule.Schedule, u float64) schedule.Point {
	l := math.Exp(u)
	return s.PointAtLevel(l, s.TimeAt(l))
}

// rkBatch is one submission of attempts [a0, a0+n) in flight.
type rkBatch struct {
	a0, n  int
	size   int // bytes read back
	buf    *gpu.Buffer
	read   *gpu.PendingRead
	slots  bool               // the preview slots were copied too
	scopes *gpu.PendingScopes // everything submitted since the previous batch
}

// testHookRK45, when set by a test, runs as the batch of attempts from a0
// is recorded, before its submission (tests inject faults).
var testHookRK45 func(j *sampleJob, e *gpu.Encoder, a0 int)

// rkChecked waits for a batch's error scopes (the kernel is named by blame).
func (j *sampleJob) rkChecked(ctx context.Context, bt *rkBatch) error {
	err := bt.scopes.Wait(ctx)
	if err != nil && !errors.Is(err, ErrDeviceLost) {
		err = j.chunks[0].p.blame(ctx, err)
	}
	return err
}

func (j *sampleJob) runRK45(ctx context.Context) (res *sampler.Result, err error) {
	dev := j.dn.dev
	gd := dev.gpu
	rtol, atol, err := sampler.RK45Tolerances(j.o.RTol, j.o.ATol)
	if err != nil {
		return nil, err
	}
	u0, u1, scale := sampler.RK45Span(j.s)
	release, err := j.begin(ctx, rkPoint(j.s, u0).Alpha*scale)
	defer func() { res, err = release(res, err) }()
	if err != nil {
		return nil, err
	}

	kind, c0, c1, levels, tmode, tscale := rkSchedule(j.s)
	dpC, dpA, dpE := sampler.DormandPrince()
	dir := 1.0
	if u1 < u0 {
		dir = -1
	}
	// L: the log levels, then the preview mask by accepted step.
	var mask []uint32
	if j.preview != nil {
		mask = make([]uint32, (rkMaxAttempts+31)/32)
		for q := 0; q < rkMaxAttempts; q++ {
			if j.preview(q, -1) {
				mask[q/32] |= 1 << (q % 32)
			}
		}
	}
	lw := make([]uint32, 0, len(levels)+len(mask)+1)
	for _, v := range levels {
		lw = append(lw, math.Float32bits(v))
	}
	lw = append(append(lw, mask...), 0)
	cWords := rkHead + 2*j.B + 4*rkMaxAttempts
	perChunk := func(c *sampleChunk) uint64 { return uint64(4 * c.n * (rkRegions + 2*rkSlots)) }

	keys := map[kernelKey]bool{}
	for _, e := range rkEntries {
		keys[kernelKey{"rk45", e}] = true
	}
	dev.mu.Lock()
	if err := dev.pipelinesFor(ctx, keys); err != nil {
		dev.mu.Unlock()
		return nil, err
	}
	j.pipes = map[string]*gpu.ComputePipeline{}
	for k := range keys {
		j.pipes[k.entry] = dev.pipeline(k)
	}
	var lbuf, cbuf *gpu.Buffer
	bgs := make([][rkStages]*gpu.BindGroup, len(j.chunks))
	labs := make([]*gpu.Buffer, len(j.chunks))
	err = gd.Scoped(ctx, "rk45 buffers", func() {
		lbuf = j.buffer("rk45 levels", roundUp(uint64(4*len(lw)), 16), gpu.Storage|gpu.CopyDst)
		cbuf = j.buffer("rk45 control", roundUp(uint64(4*cWords), 16), gpu.Storage|gpu.CopySrc|gpu.CopyDst)
		for q, c := range j.chunks {
			c.st = j.buffer("rk45 state", perChunk(c), gpu.Storage|gpu.CopySrc|gpu.CopyDst)
			c.uni = j.buffer("rk45 step", 256*rkStages, gpu.Uniform|gpu.CopyDst)
			if c.labels != nil && len(j.chunks) > 1 {
				labs[q] = j.buffer("rk45 labels", roundUp(uint64(4*c.nb), 16), gpu.CopySrc|gpu.CopyDst)
			}
			for s := 0; s < rkStages; s++ {
				bgs[q][s] = gd.CreateBindGroup("rk45", dev.layout("rk45"), []gpu.Binding{
					{Buffer: c.uni, Offset: uint64(256 * s), Size: 256},
					{Buffer: c.p.out, Size: c.p.outBytes},
					{Buffer: lbuf, Size: uint64(4 * len(lw))},
					{Buffer: cbuf, Size: uint64(4 * cWords)},
					{Buffer: c.st, Size: perChunk(c)},
					{Buffer: c.p.inputs["x"], Size: uint64(4 * c.nb * j.per)},
					{Buffer: c.p.inputs["t"], Size: uint64(4 * c.nb)}})
			}
		}
	})
	dev.mu.Unlock()
	if err != nil {
		return nil, err
	}
	cp := &compiler{lim: dev.limits}
	for _, c := range j.chunks {
		if c.grid, err = cp.grid("sampler", (c.n+255)/256); err != nil {
			return nil, err
		}
	}

	// Error scopes from the first write on, popped and pushed again with
	// every batch (rkBatch.scopes): a batch's readback, its step control
	// and checkpoint, is used only once everything up to it is known clean.
	gd.PushScopes()
	popped := false
	defer func() {
		if !popped {
			gd.PopScopes("rk45").Wait(ctx)
		}
	}()

	// Uniforms, the start state and the labels.
	gd.WriteBuffer(lbuf, 0, gpu.Uint32Bytes(lw))
	head := make([]uint32, rkHead)
	head[rkU] = math.Float32bits(float32(u0))
	gd.WriteBuffer(cbuf, 0, gpu.Uint32Bytes(head))
	copies := 1
	if j.guided {
		copies = 2
	}
	for q, c := range j.chunks {
		for s := 0; s < rkStages; s++ {
			var a [6]float64
			cs := 0.0
			if s >= 1 && s <= 6 {
				a, cs = dpA[s], dpC[s]
			}
			w := words(c.n, j.per, c.nb, copies, j.B, c.b0, b01(j.guided), int(j.pred),
				s, kind, tmode, len(levels), rkSlots, len(mask), c.n, (rkRegions-1)*c.n,
				rkRegions*c.n, 0, 0, 0,
				rtol, atol, j.o.Guidance, u1, dir, math.Abs(u1-u0), tscale, 0.0,
				c0, c1, 0.0, 0.0,
				float64(sampler.RK45Safety), float64(sampler.RK45MinFactor), float64(sampler.RK45MaxFactor), float64(sampler.RK45Exponent),
				cs, a[0], a[1], a[2], a[3], a[4], a[5], dpE[0],
				dpE[1], dpE[2], dpE[3], dpE[4], dpE[5], dpE[6], sampler.RK45StartMinH, sampler.RK45StartTiny,
				sampler.RK45StartFrac, sampler.RK45StartZero, sampler.RK45StartShrink, float64(sampler.RK45StartGrow))
			gd.WriteBuffer(c.uni, uint64(256*s), gpu.Uint32Bytes(w))
		}
		x := make([]float32, c.n)
		for i := range x {
			x[i] = float32(scale * j.noise[c.b0*j.per+i])
		}
		gd.WriteBuffer(c.st, 0, gpu.Float32Bytes(x))
		if c.labels != nil {
			if labs[q] != nil {
				gd.WriteBuffer(labs[q], 0, gpu.Float32Bytes(c.labels))
			} else {
				gd.WriteBuffer(c.p.inputs["class"], 0, gpu.Float32Bytes(c.labels))
			}
		}
	}

	// Encoding helpers.
	perSample := func(e *gpu.Encoder, entry string) {
		for q, c := range j.chunks {
			e.Dispatch(j.pipes[entry], bgs[q][1], uint32(c.b), 1, 1)
		}
	}
	eval := func(e *gpu.Encoder, s int) {
		for q, c := range j.chunks {
			e.Dispatch(j.pipes["rk_input"], bgs[q][s], c.grid[0], c.grid[1], c.grid[2])
			if labs[q] != nil {
				e.Copy(labs[q], 0, c.p.inputs["class"], 0, uint64(4*c.nb))
			}
			c.p.encode(e)
			e.Dispatch(j.pipes["rk_slope"], bgs[q][s], c.grid[0], c.grid[1], c.grid[2])
		}
	}
	one := func(e *gpu.Encoder, entry string) { e.Dispatch(j.pipes[entry], bgs[0][1], 1, 1, 1) }
	// The start: the derivative there, the trial step, the first step.
	e := gd.NewEncoder("rk45 start")
	eval(e, 0)
	perSample(e, "rk_norm_start")
	one(e, "rk_start_h0")
	eval(e, 7)
	perSample(e, "rk_norm_trial")
	one(e, "rk_start_h")
	e.Submit()

	// The preview slots come back with every batch when anything is
	// previewed (they are the checkpoints too).
	slotBytes := 0
	if j.preview != nil {
		for _, c := range j.chunks {
			slotBytes += 4 * 2 * rkSlots * c.n
		}
	}
	submit := func(a0, n int) *rkBatch {
		e := gd.NewEncoder("rk45")
		for a := 0; a < n; a++ {
			for s := 1; s <= 6; s++ {
				eval(e, s)
			}
			perSample(e, "rk_norm_err")
			one(e, "rk_control")
			for q, c := range j.chunks {
				e.Dispatch(j.pipes["rk_accept"], bgs[q][1], c.grid[0], c.grid[1], c.grid[2])
			}
		}
		logOff := uint64(4 * (rkHead + 2*j.B + 4*a0))
		size := 4*rkHead + 16*n + slotBytes
		b := j.staging(uint64(size))
		e.Copy(cbuf, 0, b, 0, 4*rkHead)
		e.Copy(cbuf, logOff, b, 4*rkHead, uint64(16*n))
		off := uint64(4*rkHead + 16*n)
		if slotBytes > 0 {
			for _, c := range j.chunks {
				sz := uint64(4 * 2 * rkSlots * c.n)
				e.Copy(c.st, uint64(4*rkRegions*c.n), b, off, sz)
				off += sz
			}
		}
		if testHookRK45 != nil {
			testHookRK45(j, e, a0)
		}
		e.Submit()
		bt := &rkBatch{a0: a0, n: n, size: size, buf: b, read: gd.StartRead(b, size), slots: slotBytes > 0,
			scopes: gd.PopScopes("rk45")}
		gd.PushScopes()
		return bt
	}

	var flight []*rkBatch
	submitted := 0 // attempts
	accepted := 0
	done := false
	attempts := 0
	rem := 4 // attempts expected to remain (a guess before the first readback)
	for !done {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := j.healthy(); err != nil {
			return nil, err
		}
		// Keep up to two batches queued while more attempts are expected.
		for len(flight) < 2 && submitted < rkMaxAttempts {
			ahead := submitted - attempts // in flight
			n := min(rkSlots, rem-ahead, rkMaxAttempts-submitted)
			if n <= 0 {
				if len(flight) > 0 {
					break
				}
				n = 1
			}
			flight = append(flight, submit(submitted, n))
			submitted += n
		}
		if len(flight) == 0 {
			return nil, fmt.Errorf("sampler: RK45 needed more than %d evaluations (loosen rtol/atol)", sampler.RK45MaxNFE)
		}
		bt := flight[0]
		flight = flight[1:]
		if err := j.rkChecked(ctx, bt); err != nil {
			return nil, err
		}
		raw := make([]uint32, bt.size/4)
		if err := bt.read.Wait(ctx, gpu.Uint32Bytes(raw)); err != nil {
			return nil, err
		}
		j.free = append(j.free, bt.buf)
		hd := raw[:rkHead]
		attempts = int(hd[rkAtt])
		if hd[rkFail] != 0 {
			return nil, errors.New("sampler: RK45 step size underflow")
		}
		done = hd[rkDone] != 0
		for a := bt.a0; a < min(bt.a0+bt.n, attempts); a++ {
			lg := raw[rkHead+4*(a-bt.a0):]
			if lg[0] != 2 {
				continue
			}
			q := accepted
			accepted++
			u := float64(math.Float32frombits(lg[1]))
			h := float64(math.Float32frombits(lg[2]))
			p := rkPoint(j.s, u)
			nfe := 2 + 6*(a+1)
			last := done && a == attempts-1
			st := sampler.Step{Index: q, Total: -1, NFE: nfe, Point: p}
			if bt.slots && (last || (j.preview != nil && j.preview(q, -1))) {
				st.X, st.X0 = make([]float64, j.B*j.per), make([]float64, j.B*j.per)
				off := rkHead + 4*bt.n
				for _, c := range j.chunks {
					slot := off + (a%rkSlots)*2*c.n
					for i := 0; i < c.n; i++ {
						y := float64(math.Float32frombits(raw[slot+i]))
						st.X[c.b0*j.per+i] = p.Alpha * y
						st.X0[c.b0*j.per+i] = float64(math.Float32frombits(raw[slot+c.n+i]))
					}
					off += 2 * rkSlots * c.n
				}
				j.ckpt = &sampler.Checkpoint{Step: q + 1, X: st.X, History: [][]float64{st.X0}, NFE: nfe, U: u, H: h}
			}
			if j.o.Progress != nil {
				if err := j.o.Progress(st); err != nil {
					return nil, err
				}
			}
		}
		if !done && attempts >= rkMaxAttempts {
			return nil, fmt.Errorf("sampler: RK45 needed more than %d evaluations (loosen rtol/atol)", sampler.RK45MaxNFE)
		}
		if !done {
			// The attempts left at the current step size.
			u := float64(math.Float32frombits(hd[rkU]))
			h := float64(math.Float32frombits(hd[rkH]))
			rem = 1
			if h > 0 {
				rem = max(1, int(min(math.Ceil(math.Abs(u1-u)/h), rkMaxAttempts)))
			}
		}
	}
	// The result: D at the end point, y - k0, per chunk (y and k0 lead
	// the state buffer).
	popped = true
	read, err := j.result(ctx, "rk45", 2)
	if err != nil {
		return nil, err
	}
	for _, bt := range flight {
		if err := j.rkChecked(ctx, bt); err != nil {
			read.Unmap(ctx)
			return nil, err
		}
		bt.read.Unmap(ctx)
	}
	yk := make([]float32, 2*j.per*j.B)
	if err := read.Wait(ctx, gpu.Float32Bytes(yk)); err != nil {
		return nil, err
	}
	if err := j.healthy(); err != nil {
		return nil, err
	}
	out := make([]float64, j.per*j.B)
	for _, c := range j.chunks {
		base := 2 * c.b0 * j.per
		for i := 0; i < c.n; i++ {
			out[c.b0*j.per+i] = float64(yk[base+i]) - float64(yk[base+c.n+i])
		}
	}
	nfe := 2 + 6*attempts
	if u0 == u1 {
		nfe = 1
	}
	return &sampler.Result{X: out, NFE: nfe}, nil
}
