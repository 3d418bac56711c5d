//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/diffuse-web/diffuse/core/rng"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// The regions of a chunk's state buffer (sampler.wgsl's S), n values each:
// x, the last x̂0, DPM-Solver++'s two earlier data predictions, Heun's slope
// and trial point.
const (
	regX = iota
	regX0
	regH1
	regH2
	regD
	regX2
	stateRegions
)

// The host keeps between minInFlight and maxInFlight steps queued on the
// GPU ahead of it: as many as make about inFlightBudget of work, by the
// step time measured so far (pacer). Light steps need the depth: a result
// comes back some time after its work is done (in Chromium on SwiftShader
// 2–3 ms once the work is not finished at once), so with two steps queued
// a 2-D MLP step took 1.4–2.1 ms against 0.55–0.66 ms with eight (a plain
// WebGPU loop of 7 small dispatches per step). Heavy steps keep two, so a
// cancel or a device loss is noticed within about the budget.
const (
	minInFlight    = 2
	maxInFlight    = 8
	inFlightBudget = 10 * time.Millisecond
)

// pacer picks how many steps to keep in flight from the measured pace.
type pacer struct {
	start time.Time
	done  int // steps finished since start
}

// forceInFlight, when positive, replaces the pacer's choice (tests).
var forceInFlight int

// depth is the number of steps to keep in flight now.
func (p *pacer) depth() int {
	if forceInFlight > 0 {
		return forceInFlight
	}
	if p.done == 0 {
		return minInFlight
	}
	per := time.Since(p.start) / time.Duration(p.done)
	if per <= 0 {
		return maxInFlight
	}
	return max(minInFlight, min(maxInFlight, int(inFlightBudget/per)))
}

// uniform slots (256 bytes apart) of a chunk's parameter buffer.
const (
	slotPrep = iota
	slotUpdate
	slotPrep2
	slotUpdate2
	slots
)

// sampleJob is one Sample call.
type sampleJob struct {
	dn      *Denoiser
	name    string
	rs      residentSampler
	m       *sampler.Model
	s       *schedule.Schedule
	g       schedule.Grid
	o       *sampler.Options
	pred    uint32
	guided  bool
	cls     []int // one per sample, or nil
	per, B  int
	total   int                         // network evaluations
	noise   []float64                   // the starting noise (the data for kindInvert)
	snr     float64                     // pc
	nc      int                         // pc: corrector steps per grid step
	preview func(index, total int) bool // nil: no readbacks until the end
	chunks  []*sampleChunk

	pipes map[string]*gpu.ComputePipeline
	free  []*gpu.Buffer // staging buffers not in use
	owned []*gpu.Buffer

	pending []*pendingPreview // in submission order
	queue   []*queued         // progress calls not yet made, in order
	ckpt    *sampler.Checkpoint

	// The loop's error scopes, one set per segment of grid steps ending in
	// a step with previews: a preview becomes the checkpoint only once
	// its segment, and so every submission before it, is known clean.
	segs      []*segment // popped, not yet waited for
	previewed bool       // the current step submitted a preview
}

// segment is the popped error scopes of the grid steps up to step.
type segment struct {
	step   int
	scopes *gpu.PendingScopes
}

// sampleChunk is the part of the batch one network call takes.
type sampleChunk struct {
	b0, b  int // first sample, samples
	n, nb  int // values, network batch
	p      *Program
	st     *gpu.Buffer // state regions
	z      *gpu.Buffer
	uni    *gpu.Buffer
	prep   [2]*gpu.BindGroup // net_input from regX, from regX2
	update [2]*gpu.BindGroup // the update, Heun's second stage
	grid   [3]uint32
	labels []float32 // nil: unconditional
}

// pendingPreview is a readback in flight: per chunk, a staging buffer with
// [network input (X) | state regions x, x̂0 (and DPM's history)].
type pendingPreview struct {
	step   int // grid step it was submitted in
	ckStep int // grid step the state regions are at (-1: mid-step, no checkpoint)
	bufs   []*gpu.Buffer
	reads  []*gpu.PendingRead
	x, x0  []float64
	done   bool
}

type queued struct {
	st sampler.Step
	pv *pendingPreview
}

// stage is one network evaluation within a grid step.
type stage int

const (
	stageMain   stage = -1 // the step's (only or first) evaluation
	stageSecond stage = -2 // Heun's second
	// 0, 1, ...: pc's Langevin corrector evaluations before stageMain
)

// stages lists grid step i's evaluations, in order, and their points.
func (j *sampleJob) stages(i int) ([]stage, []schedule.Point) {
	st := j.g.Steps[i]
	switch j.rs.kind {
	case kindHeun:
		if !st.To.Clean() {
			return []stage{stageMain, stageSecond}, []schedule.Point{st.From, st.To}
		}
	case kindPC:
		var ss []stage
		var ps []schedule.Point
		for c := 0; c < j.nc; c++ {
			ss, ps = append(ss, stage(c)), append(ps, st.From)
		}
		return append(ss, stageMain), append(ps, st.From)
	case kindInvert:
		// Inversion step i runs grid step len-1-i backwards, from the
		// cleaner point s to t, evaluating at s (at t when s is clean).
		gs := j.g.Steps[len(j.g.Steps)-1-i]
		s, t := gs.To, gs.From
		if s.Clean() {
			return []stage{stageMain}, []schedule.Point{t}
		}
		return []stage{stageMain}, []schedule.Point{s}
	}
	return []stage{stageMain}, []schedule.Point{st.From}
}

func (j *sampleJob) regionsRead() int {
	if j.rs.kind == kindDPM {
		return regH2 + 1
	}
	return regX0 + 1
}

// result copies the run's result (the first words f32 per value of each
// chunk's state buffer) into one readback buffer, pops the error scope
// pushed around the run's loop and starts the map; a validation or
// out-of-memory error is blamed on the kernel that caused it.
func (j *sampleJob) result(ctx context.Context, what string, words int) (*gpu.PendingRead, error) {
	gd := j.dn.dev.gpu
	n := words * j.per * j.B
	rb := j.buffer(what+" readback", uint64(4*n), gpu.MapRead|gpu.CopyDst)
	e := gd.NewEncoder(what + " readback")
	for _, c := range j.chunks {
		e.Copy(c.st, 0, rb, uint64(4*words*c.b0*j.per), uint64(4*words*c.n))
	}
	e.Submit()
	scopes := gd.PopScopes(what + " loop")
	read := gd.StartRead(rb, 4*n)
	if err := scopes.Wait(ctx); err != nil {
		if errors.Is(err, ErrDeviceLost) {
			return nil, err
		}
		read.Unmap(ctx)
		return nil, j.chunks[0].p.blame(ctx, err)
	}
	return read, nil
}

// begin sets the first checkpoint (x = a0·noise: until a preview comes
// back, resuming means starting over), checks the device and takes the
// programs. The caller defers release, which frees what the run allocated,
// unlocks the programs and turns a fault (IsFault: device loss, a WebGPU
// error, a failed map) into an *InterruptedError carrying the last
// checkpoint.
func (j *sampleJob) begin(ctx context.Context, a0 float64) (release func(*sampler.Result, error) (*sampler.Result, error), err error) {
	j.ckpt = &sampler.Checkpoint{X: make([]float64, len(j.noise))}
	for i, v := range j.noise {
		j.ckpt.X[i] = a0 * v
	}
	unlock := func() {}
	release = func(res *sampler.Result, err error) (*sampler.Result, error) {
		for _, b := range j.owned {
			b.Destroy()
		}
		unlock()
		if err != nil && IsFault(err) {
			var ie *InterruptedError
			if !errors.As(err, &ie) {
				err = &InterruptedError{Sampler: j.name, Err: err, Checkpoint: j.ckpt}
			}
			res = nil
		}
		return res, err
	}
	if err := j.healthy(); err != nil {
		return release, err
	}
	unlock, err = j.programs(ctx)
	return release, err
}

// healthy returns the device's loss, or an error no scope caught since the
// last check (gpu.Device.TakeUncaptured): either ends the run as a fault.
func (j *sampleJob) healthy() error {
	gd := j.dn.dev.gpu
	if err := gd.LostErr(); err != nil {
		return err
	}
	return gd.TakeUncaptured()
}

// endSegment closes the error scopes of the grid steps since the last
// segment (through step) and opens the next segment's, if the step
// submitted a preview: that preview can be a checkpoint once they are
// known clean (checked).
func (j *sampleJob) endSegment(step int) {
	if !j.previewed {
		return
	}
	gd := j.dn.dev.gpu
	j.segs = append(j.segs, &segment{step: step, scopes: gd.PopScopes(j.name)})
	gd.PushScopes()
	j.previewed = false
}

// checked waits for the error scopes of the segments through grid step
// `step`: an error there (the kernel is named by blame) means the state
// read back from then on may be garbage.
func (j *sampleJob) checked(ctx context.Context, step int) error {
	for len(j.segs) > 0 && j.segs[0].step <= step {
		sg := j.segs[0]
		j.segs = j.segs[1:]
		if err := sg.scopes.Wait(ctx); err != nil {
			if errors.Is(err, ErrDeviceLost) {
				return err
			}
			return j.chunks[0].p.blame(ctx, err)
		}
	}
	return nil
}

func (j *sampleJob) run(ctx context.Context) (res *sampler.Result, err error) {
	dev := j.dn.dev
	gd := dev.gpu
	// Until a preview comes back, resuming means starting over.
	a0 := j.g.InitSigma
	if j.rs.eulerType() {
		a0 *= j.g.Steps[0].From.Alpha
	}
	if j.rs.kind == kindInvert {
		a0 = 1 // the data itself
	}
	release, err := j.begin(ctx, a0)
	defer func() { res, err = release(res, err) }()
	if err != nil {
		return nil, err
	}

	// Pipelines, buffers and bind groups.
	entries := map[updateKind][]string{
		kindDDIM: {"ddim_step"}, kindDDPM: {"ddpm_step"}, kindEuler: {"euler_step"},
		kindHeun: {"heun_first", "heun_second"}, kindDPM: {"dpm_step"}, kindEM: {"em_step"},
		kindPC: {"em_step", "langevin_norm", "langevin_step"}, kindInvert: {"ddim_step"},
	}[j.rs.kind]
	keys := map[kernelKey]bool{{"sampler", "net_input"}: true}
	for _, e := range entries {
		keys[kernelKey{"sampler", e}] = true
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
	err = gd.Scoped(ctx, "sampler buffers", func() {
		for _, c := range j.chunks {
			nb := uint64(4 * c.n)
			c.st = j.buffer("sampler state", uint64(stateRegions)*nb, gpu.Storage|gpu.CopySrc|gpu.CopyDst)
			c.z = j.buffer("sampler noise", roundUp(nb, 16), gpu.Storage|gpu.CopyDst)
			c.uni = j.buffer("sampler step", 256*slots, gpu.Uniform|gpu.CopyDst)
			in := c.p.inputs["x"]
			for k := 0; k < 2; k++ {
				c.prep[k] = gd.CreateBindGroup("net_input", dev.layout("sampler"), []gpu.Binding{
					{Buffer: c.uni, Offset: uint64(256 * (slotPrep + 2*k)), Size: 256},
					{Buffer: c.st, Size: uint64(stateRegions) * nb}, {Buffer: c.z, Size: nb},
					{Buffer: in, Size: uint64(4 * c.nb * j.per)}})
				c.update[k] = gd.CreateBindGroup(entries[0], dev.layout("sampler"), []gpu.Binding{
					{Buffer: c.uni, Offset: uint64(256 * (slotUpdate + 2*k)), Size: 256},
					{Buffer: c.p.out, Size: c.p.outBytes}, {Buffer: c.z, Size: nb},
					{Buffer: c.st, Size: uint64(stateRegions) * nb}})
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
	x0 := make([]float32, j.per*j.B)
	for i, v := range j.noise {
		if j.rs.kind == kindInvert {
			x0[i] = float32(v)
		} else {
			x0[i] = float32(j.g.InitSigma * v)
		}
	}

	// Error scopes around the loop, from the first write on: steps are
	// submitted without waiting for each other (the queue orders each
	// step's buffer writes after the previous step's work), and the scopes
	// are popped and pushed again only after a step with previews
	// (endSegment), so that its preview is taken as a checkpoint only
	// when nothing before it failed (checked). Without previews an error
	// shows at the end, and the run is redone from the start.
	gd.PushScopes()
	popped := false
	defer func() {
		if !popped {
			gd.PopScopes("sampler").Wait(ctx)
		}
	}()
	for _, c := range j.chunks {
		gd.WriteBuffer(c.st, 0, gpu.Float32Bytes(x0[c.b0*j.per:c.b0*j.per+c.n]))
	}
	// A fence per step: its state's first words copied to a small buffer
	// and mapped, in a ring of maxInFlight.
	fences := [maxInFlight]*gpu.PendingRead{}
	var fenceBufs [maxInFlight]*gpu.Buffer
	for k := range fenceBufs {
		fenceBufs[k] = j.buffer("sampler fence", 16, gpu.MapRead|gpu.CopyDst)
	}
	fence := make([]byte, 16)
	pace := pacer{start: time.Now()}
	oldest := 0 // the oldest step whose fence is pending
	ev := 0
	for i := range j.g.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := j.healthy(); err != nil {
			return nil, err
		}
		// Pace: wait for the oldest steps until fewer than depth are in
		// flight, and take in the previews they finished.
		for ; oldest < i && i-oldest >= pace.depth(); oldest++ {
			if err := fences[oldest%maxInFlight].Wait(ctx, fence); err != nil {
				return nil, err
			}
			fences[oldest%maxInFlight] = nil
			pace.done++
			if err := j.collect(ctx, oldest); err != nil {
				return nil, err
			}
		}
		ss, ps := j.stages(i)
		for q, sg := range ss {
			if err := j.eval(ctx, i, ev, ps[q], sg); err != nil {
				return nil, err
			}
			ev++
		}
		e := gd.NewEncoder("sampler fence")
		e.Copy(j.chunks[0].st, 0, fenceBufs[i%maxInFlight], 0, 16)
		e.Submit()
		fences[i%maxInFlight] = gd.StartRead(fenceBufs[i%maxInFlight], 16)
		j.endSegment(i)
		if err := j.deliver(); err != nil {
			return nil, err
		}
	}
	popped = true
	read, err := j.result(ctx, "sampler", 1)
	if err != nil {
		return nil, err
	}
	if err := j.collect(ctx, len(j.g.Steps)); err != nil {
		return nil, err
	}
	if err := j.deliver(); err != nil {
		return nil, err
	}
	for k, f := range fences {
		if f != nil {
			if err := f.Wait(ctx, fence); err != nil {
				return nil, err
			}
			fences[k] = nil
		}
	}
	if err := read.Wait(ctx, gpu.Float32Bytes(x0)); err != nil {
		return nil, err
	}
	if err := j.healthy(); err != nil {
		return nil, err
	}
	out := make([]float64, len(x0))
	for i, v := range x0 {
		out[i] = float64(v)
	}
	if j.rs.kind == kindInvert {
		if !(j.g.InitSigma > 0) || math.IsInf(j.g.InitSigma, 0) {
			return nil, errors.New("sampler: bad initial sigma")
		}
		for i := range out {
			out[i] /= j.g.InitSigma
		}
	}
	return &sampler.Result{X: out, NFE: j.total}, nil
}

// programs gets the network program of every chunk (one per distinct
// chunk size) and its labels, and locks the programs for the run (unlock
// releases them; call it also on error).
func (j *sampleJob) programs(ctx context.Context) (func(), error) {
	copies := 1
	if j.guided {
		copies = 2
	}
	// Programs (one per distinct chunk size), locked for the whole run.
	locked := map[*Program]bool{}
	unlock := func() {
		for p := range locked {
			p.mu.Unlock()
		}
	}
	for _, c := range j.chunks {
		c.n, c.nb = c.b*j.per, c.b*copies
		var err error
		if c.p, err = j.dn.program(ctx, c.nb, j.m.Shape[1], j.m.Shape[2]); err != nil {
			return unlock, err
		}
		if got := c.p.outBytes / 4; got != uint64(c.nb*j.per) {
			return unlock, fmt.Errorf("sampler: network output has %d values per batch, the sample %d", got, c.nb*j.per)
		}
		if j.cls != nil {
			c.labels = make([]float32, c.nb)
			for i := range c.labels {
				if i < c.b {
					c.labels[i] = float32(j.cls[c.b0+i])
				} else {
					c.labels[i] = float32(j.m.NullClass)
				}
			}
			for _, lc := range c.p.labels {
				for _, l := range c.labels {
					if int(l) < 0 || int(l) >= lc.rows {
						return unlock, fmt.Errorf("%s: class label %v outside 0..%d", lc.node, l, lc.rows-1)
					}
				}
			}
		} else if _, cond := c.p.inputs["class"]; cond {
			return unlock, errors.New("class-conditional model: need class labels")
		}
	}
	for _, c := range j.chunks {
		if !locked[c.p] {
			c.p.mu.Lock()
			locked[c.p] = true
		}
	}
	return unlock, nil
}

func (j *sampleJob) buffer(label string, size uint64, usage gpu.BufferUsage) *gpu.Buffer {
	b := j.dn.dev.gpu.CreateBuffer(label, size, usage)
	j.owned = append(j.owned, b)
	return b
}

// xtForm converts a whole-batch state at grid step i to x_t form.
func (j *sampleJob) xtForm(i int, x []float32) []float64 {
	a := 1.0
	if j.rs.eulerType() {
		if i < len(j.g.Steps) {
			a = j.g.Steps[i].From.Alpha
		} else {
			a = j.g.Steps[len(j.g.Steps)-1].To.Alpha
		}
	}
	out := make([]float64, len(x))
	for k, v := range x {
		out[k] = a * float64(v)
	}
	return out
}

// testHookEval, when set by a test, runs as evaluation ev's commands for
// chunk c are recorded, before their submission (tests inject faults).
var testHookEval func(j *sampleJob, c *sampleChunk, e *gpu.Encoder, ev int)

// eval submits one network evaluation (index ev, at point p of grid step
// i, its stage sg) and its update for every chunk.
func (j *sampleJob) eval(ctx context.Context, i, ev int, p schedule.Point, sg stage) error {
	gd := j.dn.dev.gpu
	st := j.g.Steps[i]
	cfg := j.s.Config
	second := sg == stageSecond
	var pv *pendingPreview
	if j.preview != nil && j.preview(ev, j.total) {
		pv = &pendingPreview{step: i, ckStep: i + 1}
		if j.rs.kind == kindHeun && !second && !st.To.Clean() {
			pv.ckStep = i // the state is still at the step's start
		}
		if sg >= 0 {
			pv.ckStep = -1 // a Langevin step has moved x within the step
		}
	}
	tv := j.s.NetTime(p)
	scale := 1.0
	if j.rs.eulerType() {
		scale = p.Alpha
	}
	// The update's flags and coefficients.
	flags := 0
	var k [9]float64
	entry, norm := "", ""
	noise, sub := false, 0
	switch j.rs.kind {
	case kindDDIM:
		entry = "ddim_step"
		if cfg.ClipSampleOn() {
			flags |= 1
			if cfg.UseClippedModelOutput {
				flags |= 2
			}
		}
		dir, c := sampler.DDIMCoeffs(st.From, st.To, j.o.Eta)
		k[0], k[1], k[2] = st.To.Alpha, dir, c
		noise = c > 0
	case kindDDPM:
		entry = "ddpm_step"
		if cfg.ClipSampleOn() {
			flags |= 1
		}
		var add bool
		k[0], k[1], k[2], add = sampler.DDPMCoeffs(j.s, st.From, st.To)
		noise = add
	case kindEuler:
		entry = "euler_step"
		l, lt := st.From.Level, st.To.Level
		k[0], k[1] = l, lt-l
		if j.rs.ancestral {
			down, up := sampler.AncestralLevels(l, lt)
			k[1], k[2] = down-l, up
			noise = up > 0
		}
	case kindHeun:
		entry = "heun_first"
		l, lt := st.From.Level, st.To.Level
		k[0], k[1] = l, lt-l
		if second {
			entry = "heun_second"
			k[0] = lt
		} else if st.To.Clean() {
			flags |= 16
		}
	case kindDPM:
		entry = "dpm_step"
		c := sampler.DPMSolverStep(cfg, j.g, i, j.rs.order, j.rs.halfD2)
		k = [9]float64{float64(c.Order), c.Ratio, c.A, c.Em1, c.R0, c.R1, c.C2, c.C3, c.D2Scale}
		if c.Heun {
			flags |= 8
		}
	case kindEM, kindPC:
		entry = "em_step"
		if sg >= 0 {
			entry, norm = "langevin_step", "langevin_norm"
			k[0] = sampler.LangevinCoeff(j.s, st, j.snr, j.per)
			noise, sub = true, 1+int(sg)
		} else if st.To.Clean() {
			flags |= 16
		} else {
			k[0], k[1], k[2] = sampler.EMCoeffs(j.s, st)
			noise = true
		}
	case kindInvert:
		entry = "ddim_step"
		s, t := j.g.Steps[len(j.g.Steps)-1-i].To, j.g.Steps[len(j.g.Steps)-1-i].From
		if s.Clean() {
			flags |= 32
		}
		k[0] = t.Alpha
		k[1], _ = sampler.DDIMCoeffs(s, t, 0)
	}
	if noise {
		flags |= 4
	}
	slot, src := 0, regX
	if second {
		slot, src = 1, regX2
	}
	for _, c := range j.chunks {
		if noise {
			j.drawNoise(i, sub, c)
		}
		tin := make([]float32, c.nb)
		for q := range tin {
			tin[q] = tv
		}
		gd.WriteBuffer(c.p.inputs["t"], 0, gpu.Float32Bytes(tin))
		if c.labels != nil && (len(j.chunks) > 1 || (i == 0 && !second)) {
			gd.WriteBuffer(c.p.inputs["class"], 0, gpu.Float32Bytes(c.labels))
		}
		n := c.n
		prep := words(n, 0, 0, 0, src*n, 0, 0, 0, 0, 0, 0, c.nb/c.b,
			0.0, 0.0, scale, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)
		upd := words(n, b01(j.guided), int(j.pred), flags, src*n, regX*n, regX0*n, regH1*n,
			regH2*n, regD*n, regX2*n, 1, p.Alpha, p.Sigma, scale, j.o.Guidance, cfg.ClipSampleRange,
			k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], j.per, 0)
		gd.WriteBuffer(c.uni, uint64(256*(slotPrep+2*slot)), gpu.Uint32Bytes(prep))
		gd.WriteBuffer(c.uni, uint64(256*(slotUpdate+2*slot)), gpu.Uint32Bytes(upd))
		e := gd.NewEncoder(j.name)
		e.Dispatch(j.pipes["net_input"], c.prep[slot], c.grid[0], c.grid[1], c.grid[2])
		c.p.encode(e)
		if norm != "" {
			e.Dispatch(j.pipes[norm], c.update[slot], uint32(c.b), 1, 1)
		}
		e.Dispatch(j.pipes[entry], c.update[slot], c.grid[0], c.grid[1], c.grid[2])
		if testHookEval != nil {
			testHookEval(j, c, e, ev)
		}
		if pv != nil {
			sb := j.staging(uint64(4 * c.n * (1 + j.regionsRead())))
			e.Copy(c.p.inputs["x"], 0, sb, 0, uint64(4*c.n))
			e.Copy(c.st, 0, sb, uint64(4*c.n), uint64(4*c.n*j.regionsRead()))
			pv.bufs = append(pv.bufs, sb)
		}
		e.Submit()
	}
	if pv != nil {
		for _, b := range pv.bufs {
			pv.reads = append(pv.reads, gd.StartRead(b, int(b.Size)))
		}
		j.pending = append(j.pending, pv)
		j.previewed = true
	}
	if j.o.Progress != nil {
		j.queue = append(j.queue, &queued{st: sampler.Step{Index: ev, Total: j.total, NFE: ev + 1, Point: p}, pv: pv})
	}
	return ctx.Err()
}

// drawNoise writes grid step i's draw `sub` for chunk c, keyed as the CPU
// sampler keys it (sample index, step, draw).
func (j *sampleJob) drawNoise(i, sub int, c *sampleChunk) {
	z64 := make([]float64, j.per)
	z := make([]float32, c.n)
	for b := 0; b < c.b; b++ {
		if j.o.Noise != nil {
			j.o.Noise(j.o.FirstSample+c.b0+b, i, sub, z64)
		} else {
			rng.NormalStream64(j.o.Seed, j.o.FirstSample+c.b0+b, i, sub, z64)
		}
		for q, v := range z64 {
			z[b*j.per+q] = float32(v)
		}
	}
	j.dn.dev.gpu.WriteBuffer(c.z, 0, gpu.Float32Bytes(z))
}

// staging returns a free MapRead buffer of at least size bytes.
func (j *sampleJob) staging(size uint64) *gpu.Buffer {
	for k, b := range j.free {
		if b.Size >= size {
			j.free = append(j.free[:k], j.free[k+1:]...)
			return b
		}
	}
	return j.buffer("sampler preview", size, gpu.MapRead|gpu.CopyDst)
}

// collect waits for the previews submitted in grid steps up to `upto`
// (whose work is done, so the maps settle at once) and for the error
// scopes before each (checked), keeping the newest checkpoint.
func (j *sampleJob) collect(ctx context.Context, upto int) error {
	for len(j.pending) > 0 && j.pending[0].step <= upto {
		pv := j.pending[0]
		if err := j.checked(ctx, pv.step); err != nil {
			return err
		}
		j.pending = j.pending[1:]
		B, per := j.B, j.per
		n := B * per
		R := j.regionsRead()
		raw := make([][]float32, 1+R) // X, then the regions, whole batch each
		for r := range raw {
			raw[r] = make([]float32, n)
		}
		for q, c := range j.chunks {
			buf := make([]float32, c.n*(1+R))
			if err := pv.reads[q].Wait(ctx, gpu.Float32Bytes(buf)); err != nil {
				return err
			}
			j.free = append(j.free, pv.bufs[q])
			for r := 0; r <= R; r++ {
				copy(raw[r][c.b0*per:], buf[r*c.n:(r+1)*c.n])
			}
		}
		pv.x, pv.x0 = f64(raw[0]), f64(raw[1+regX0])
		pv.done = true
		if pv.ckStep < 0 {
			continue
		}
		ck := &sampler.Checkpoint{Step: pv.ckStep, X: j.xtForm(pv.ckStep, raw[1+regX]), NFE: j.evalsBefore(pv.ckStep)}
		if j.rs.kind == kindDPM {
			ck.History = [][]float64{f64(raw[1+regH1]), f64(raw[1+regH2])}[:min(pv.ckStep, 2)]
		}
		j.ckpt = ck
	}
	return nil
}

func (j *sampleJob) evalsBefore(step int) int {
	switch j.rs.kind {
	case kindHeun:
		return sampler.HeunEvals(j.g, step)
	case kindPC:
		return step * (j.nc + 1)
	}
	return step
}

// deliver makes the queued progress calls whose data is in.
func (j *sampleJob) deliver() error {
	for len(j.queue) > 0 {
		q := j.queue[0]
		if q.pv != nil {
			if !q.pv.done {
				return nil
			}
			q.st.X, q.st.X0 = q.pv.x, q.pv.x0
		}
		j.queue = j.queue[1:]
		if err := j.o.Progress(q.st); err != nil {
			return err
		}
	}
	return nil
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}
