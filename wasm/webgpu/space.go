//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// WithSpace returns dn as a model.Denoiser that is also a
// sampler.SpaceMaker: every core/sampler sampler run with it keeps its
// vectors on the GPU (gpuSpace), so the batch crosses to the host only for
// previews, step-size norms and the result. dn itself stays a plain
// Denoiser (one network call per Denoise).
func (dn *Denoiser) WithSpace() model.Denoiser { return spaceNet{dn} }

type spaceNet struct{ *Denoiser }

func (s spaceNet) NewSpace(cfg sampler.SpaceConfig) (sampler.Space, func(), error) {
	return s.Denoiser.newSpace(cfg)
}

// Limits of gpuSpace: terms of one lincomb dispatch (vec.wgsl), slots of
// the parameter ring, and the arena's first size in vectors.
const (
	maxTerms   = 8
	ringSlots  = 64
	arenaFirst = 16
)

// gpuSpace is core/sampler.Space on the GPU: vectors are slots of one
// arena buffer; Lincomb, Clamp and SumSq are dispatches of vec.wgsl;
// Noise is drawn on the host from core/rng (so it is the CPU sampler's,
// bit for bit) and written to its slot; Net copies the vector into the
// network's input, runs the network program and copies its output (mixed
// for guidance by a Lincomb) into a slot. Operations are recorded into one
// command encoder, submitted before each host write to a buffer (whose
// writeBuffer would otherwise overtake the recorded work) and before each
// readback.
type gpuSpace struct {
	dn     *Denoiser
	gd     *gpu.Device
	ctx    context.Context
	cfg    sampler.SpaceConfig
	per, B int
	n      int // values per vector
	guided bool

	arena    *gpu.Buffer
	capSlots int
	freeSlot []int
	maxSlots int
	params   *gpu.Buffer
	slotWrds int
	bgs      []*gpu.BindGroup // one per ring slot
	next     int              // next ring slot
	red      *gpu.Buffer      // reduction results, B f32
	redRead  *gpu.Buffer
	stage    *gpu.Buffer // Read's staging buffer
	grid     [3]uint32
	pipes    map[string]*gpu.ComputePipeline
	owned    []*gpu.Buffer
	enc      *gpu.Encoder
	chunks   []*spaceChunk
	tmpC     *gvec // guidance: conditional and unconditional outputs
	tmpU     *gvec
	words    []uint32
	err      error // the first fault: every later Net returns it
	unlock   func()
	stats    SpaceStats
	scoped   bool // error scopes are pushed
}

// SpaceStats counts a gpuSpace's work outside the network programs.
type SpaceStats struct {
	Dispatches, Copies, Submits, Readbacks int
}

// spaceClosed, when set (benchmarks), gets each space's counts as it closes.
var spaceClosed func(SpaceStats)

// testHookNet, when set (tests inject faults), runs as each network
// evaluation is recorded, after the network's dispatches.
var testHookNet func(sp *gpuSpace, e *gpu.Encoder)

// gvec is a vector: arena slot `slot`.
type gvec struct{ slot int }

// spaceChunk is the part of the batch one network program takes.
type spaceChunk struct {
	b0, b, nb int
	p         *Program
	labels    []float32
}

func (dn *Denoiser) newSpace(cfg sampler.SpaceConfig) (sampler.Space, func(), error) {
	m := cfg.Model
	if len(m.Shape) != 3 {
		return nil, nil, fmt.Errorf("webgpu: sample shape %v is not [C,H,W]", m.Shape)
	}
	ctx := cfg.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	sp := &gpuSpace{dn: dn, gd: dn.dev.gpu, ctx: ctx, cfg: cfg, per: cfg.N, B: cfg.B, n: cfg.B * cfg.N,
		guided: cfg.Guidance != 0 && cfg.Guidance != 1, unlock: func() {}}
	fail := func(err error) (sampler.Space, func(), error) {
		sp.close()
		return nil, nil, err
	}
	if err := sp.healthy(); err != nil {
		return fail(err)
	}
	lim := dn.dev.limits
	limit := min(lim.MaxStorageBufferBindingSize, lim.MaxBufferSize)
	sp.maxSlots = int(limit / uint64(4*sp.n))
	if sp.maxSlots < arenaFirst {
		return fail(&LimitError{What: fmt.Sprintf("the sampler's vectors for a batch of %d", sp.B), Limit: "maxStorageBufferBindingSize",
			Need: uint64(4 * sp.n * arenaFirst), Have: limit, BatchSplittable: true})
	}
	cp := &compiler{lim: lim}
	var err error
	if sp.grid, err = cp.grid("sampler vectors", (sp.n+255)/256); err != nil {
		return fail(err)
	}
	if err := sp.programs(ctx); err != nil {
		return fail(err)
	}
	keys := map[kernelKey]bool{{"vec", "lincomb"}: true, {"vec", "clamp_vec"}: true, {"vec", "sumsq"}: true}
	dev := dn.dev
	dev.mu.Lock()
	err = dev.pipelinesFor(ctx, keys)
	sp.pipes = map[string]*gpu.ComputePipeline{}
	for k := range keys {
		sp.pipes[k.entry] = dev.pipeline(k)
	}
	dev.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	align := max(int(lim.MinStorageBufferOffsetAlignment), 256) / 4
	sp.slotWrds = (16 + maxTerms*sp.B + align - 1) / align * align
	sp.words = make([]uint32, 16+maxTerms*sp.B)
	sp.params = sp.buffer("sampler params", uint64(4*sp.slotWrds*ringSlots), gpu.Storage|gpu.CopyDst)
	sp.red = sp.buffer("sampler norms", roundUp(uint64(4*sp.B), 16), gpu.Storage|gpu.CopySrc)
	sp.redRead = sp.buffer("sampler norms readback", roundUp(uint64(4*sp.B), 16), gpu.MapRead|gpu.CopyDst)
	sp.stage = sp.buffer("sampler readback", uint64(4*sp.n), gpu.MapRead|gpu.CopyDst)
	sp.grow(arenaFirst)
	// Error scopes around the run, popped at each readback (checked): what
	// is read back is good only if nothing submitted before it failed.
	sp.gd.PushScopes()
	sp.scoped = true
	return sp, sp.close, nil
}

// Err is the space's first fault (sampler.Faulter).
func (sp *gpuSpace) Err() error { return sp.err }

func (sp *gpuSpace) fail(err error) {
	if sp.err == nil {
		sp.err = err
	}
}

// checked waits for the error scopes of everything submitted so far and
// opens new ones; an error (blamed on a network kernel where it is one)
// is the space's fault.
func (sp *gpuSpace) checked() {
	sc := sp.gd.PopScopes("sampler")
	sp.gd.PushScopes()
	if err := sc.Wait(sp.ctx); err != nil {
		if !errors.Is(err, ErrDeviceLost) && len(sp.chunks) > 0 {
			err = sp.chunks[0].p.blame(sp.ctx, err)
		}
		sp.fail(err)
	}
}

// programs gets the network program of every chunk and locks them for
// the space's life (released by close).
func (sp *gpuSpace) programs(ctx context.Context) error {
	copies := 1
	if sp.guided {
		copies = 2
	}
	m := sp.cfg.Model
	chunk, err := sp.dn.chunk(m.Shape[1], m.Shape[2], copies*sp.B)
	if err != nil {
		return err
	}
	chunk = max(chunk/copies, 1)
	locked := map[*Program]bool{}
	sp.unlock = func() {
		for p := range locked {
			p.mu.Unlock()
		}
	}
	cond, _ := sp.dn.m.Conditional()
	for b0 := 0; b0 < sp.B; b0 += chunk {
		c := &spaceChunk{b0: b0, b: min(chunk, sp.B-b0)}
		c.nb = c.b * copies
		if c.p, err = sp.dn.program(ctx, c.nb, m.Shape[1], m.Shape[2]); err != nil {
			return err
		}
		if got := c.p.outBytes / 4; got != uint64(c.nb*sp.per) || c.p.out == nil {
			return fmt.Errorf("sampler: network output has %d values per batch, the sample %d", got, c.nb*sp.per)
		}
		if sp.cfg.Class != nil {
			c.labels = make([]float32, c.nb)
			for i := range c.labels {
				if i < c.b {
					c.labels[i] = float32(sp.cfg.Class[c.b0+i])
				} else {
					c.labels[i] = float32(m.NullClass)
				}
			}
			for _, lc := range c.p.labels {
				for _, l := range c.labels {
					if int(l) < 0 || int(l) >= lc.rows {
						return fmt.Errorf("%s: class label %v outside 0..%d", lc.node, l, lc.rows-1)
					}
				}
			}
		} else if cond {
			return errors.New("class-conditional model: need class labels")
		}
		sp.chunks = append(sp.chunks, c)
	}
	for _, c := range sp.chunks {
		if !locked[c.p] {
			c.p.mu.Lock()
			locked[c.p] = true
		}
	}
	return nil
}

func (sp *gpuSpace) buffer(label string, size uint64, usage gpu.BufferUsage) *gpu.Buffer {
	b := sp.gd.CreateBuffer(label, size, usage)
	sp.owned = append(sp.owned, b)
	return b
}

// grow makes the arena hold `slots` vectors (copying the old one) and
// rebinds the ring.
func (sp *gpuSpace) grow(slots int) {
	vb := uint64(4 * sp.n)
	a := sp.buffer("sampler vectors", uint64(slots)*vb, gpu.Storage|gpu.CopySrc|gpu.CopyDst)
	if sp.arena != nil {
		e := sp.encoder()
		e.Copy(sp.arena, 0, a, 0, uint64(sp.capSlots)*vb)
		sp.flush()
	}
	for s := slots - 1; s >= sp.capSlots; s-- {
		sp.freeSlot = append(sp.freeSlot, s)
	}
	sp.arena, sp.capSlots = a, slots
	sp.bgs = sp.bgs[:0]
	layout := sp.dn.dev.layout("vec")
	for k := 0; k < ringSlots; k++ {
		sp.bgs = append(sp.bgs, sp.gd.CreateBindGroup("sampler vectors", layout, []gpu.Binding{
			{Buffer: sp.params, Offset: uint64(4 * sp.slotWrds * k), Size: uint64(4 * sp.slotWrds)},
			{Buffer: a, Size: uint64(slots) * vb}, {Buffer: sp.red, Size: sp.red.Size}}))
	}
}

func (sp *gpuSpace) close() {
	if sp.enc != nil {
		sp.flush()
	}
	if spaceClosed != nil {
		spaceClosed(sp.stats)
	}
	if sp.scoped {
		sp.gd.PopScopes("sampler").Wait(sp.ctx)
		sp.scoped = false
	}
	for _, b := range sp.owned {
		b.Destroy()
	}
	sp.owned = nil
	sp.unlock()
	sp.unlock = func() {}
}

// healthy returns the device's loss or an error no scope caught.
func (sp *gpuSpace) healthy() error {
	if err := sp.gd.LostErr(); err != nil {
		return err
	}
	return sp.gd.TakeUncaptured()
}

func (sp *gpuSpace) encoder() *gpu.Encoder {
	if sp.enc == nil {
		sp.enc = sp.gd.NewEncoder("sampler")
	}
	return sp.enc
}

// flush submits the recorded work.
func (sp *gpuSpace) flush() {
	if sp.enc != nil {
		sp.enc.Submit()
		sp.enc = nil
		sp.stats.Submits++
	}
}

func (sp *gpuSpace) off(v sampler.Vec) uint32 { return uint32(v.(*gvec).slot * sp.n) }

func (sp *gpuSpace) New() sampler.Vec {
	if len(sp.freeSlot) == 0 {
		if sp.capSlots >= sp.maxSlots {
			panic(fmt.Sprintf("webgpu: a sampler holds more than %d vectors of %d values", sp.maxSlots, sp.n))
		}
		sp.grow(min(2*sp.capSlots, sp.maxSlots))
	}
	s := sp.freeSlot[len(sp.freeSlot)-1]
	sp.freeSlot = sp.freeSlot[:len(sp.freeSlot)-1]
	return &gvec{slot: s}
}

func (sp *gpuSpace) Free(v sampler.Vec) {
	if g := v.(*gvec); g.slot >= 0 {
		sp.freeSlot = append(sp.freeSlot, g.slot)
		g.slot = -1
	}
}

func (sp *gpuSpace) Load(v sampler.Vec, data []float64) {
	f := make([]float32, len(data))
	for i, x := range data {
		f[i] = float32(x)
	}
	sp.flush()
	sp.gd.WriteBuffer(sp.arena, uint64(4*sp.off(v)), gpu.Float32Bytes(f))
}

// Read copies v back. On a fault it returns zeros (the next Net reports
// the fault).
func (sp *gpuSpace) Read(v sampler.Vec) []float64 {
	f := make([]float32, sp.n)
	if sp.err == nil {
		e := sp.encoder()
		e.Copy(sp.arena, uint64(4*sp.off(v)), sp.stage, 0, uint64(4*sp.n))
		sp.flush()
		sp.stats.Readbacks++
		if err := sp.gd.StartRead(sp.stage, 4*sp.n).Wait(sp.ctx, gpu.Float32Bytes(f)); err != nil {
			sp.fail(err)
		} else {
			sp.checked()
		}
	}
	out := make([]float64, sp.n)
	for i, x := range f {
		out[i] = float64(x)
	}
	return out
}

// slot writes one operation's parameter words to the next ring slot and
// returns its bind group; a full ring is submitted first (a later
// writeBuffer to a slot is ordered after the work that read it).
func (sp *gpuSpace) slot(w []uint32) *gpu.BindGroup {
	if sp.next == ringSlots {
		sp.flush()
		sp.next = 0
	}
	k := sp.next
	sp.next++
	sp.stats.Dispatches++
	sp.gd.WriteBuffer(sp.params, uint64(4*sp.slotWrds*k), gpu.Uint32Bytes(w))
	return sp.bgs[k]
}

func (sp *gpuSpace) Lincomb(out sampler.Vec, terms ...sampler.Term) {
	if len(terms) > maxTerms {
		sp.Lincomb(out, terms[:maxTerms]...)
		sp.Lincomb(out, append([]sampler.Term{sampler.T(1, out)}, terms[maxTerms:]...)...)
		return
	}
	w := sp.words[:16+len(terms)*sp.B]
	clear(w)
	w[0], w[1], w[2], w[3] = uint32(sp.n), uint32(sp.per), uint32(len(terms)), sp.off(out)
	for k, t := range terms {
		w[4+k] = sp.off(t.V)
		for b := 0; b < sp.B; b++ {
			c := t.C
			if t.PerSample != nil {
				c = t.PerSample[b]
			}
			w[16+k*sp.B+b] = f32bits(c)
		}
	}
	bg := sp.slot(w) // before encoder(): a full ring is submitted
	sp.encoder().Dispatch(sp.pipes["lincomb"], bg, sp.grid[0], sp.grid[1], sp.grid[2])
}

func (sp *gpuSpace) Clamp(out, v sampler.Vec, lo, hi float64) {
	w := sp.words[:16]
	clear(w)
	w[0], w[1], w[3], w[4], w[12], w[13] = uint32(sp.n), uint32(sp.per), sp.off(out), sp.off(v), f32bits(lo), f32bits(hi)
	bg := sp.slot(w)
	sp.encoder().Dispatch(sp.pipes["clamp_vec"], bg, sp.grid[0], sp.grid[1], sp.grid[2])
}

// Noise draws on the host, keyed as the CPU sampler keys it.
func (sp *gpuSpace) Noise(out sampler.Vec, step, sub int) {
	z := make([]float64, sp.n)
	sp.cfg.DrawNoise(step, sub, z)
	sp.Load(out, z)
}

// SumSq reduces on the GPU (one workgroup per sample) and reads the B
// sums back.
func (sp *gpuSpace) SumSq(v sampler.Vec, sc sampler.ErrScale) []float64 {
	w := sp.words[:16]
	clear(w)
	w[0], w[1], w[4] = uint32(sp.n), uint32(sp.per), sp.off(v)
	if sc.Y != nil {
		w[14] |= 1
		w[5], w[12], w[13] = sp.off(sc.Y), f32bits(sc.ATol), f32bits(sc.RTol)
		if sc.Y2 != nil {
			w[14] |= 2
			w[6] = sp.off(sc.Y2)
		}
	}
	f := make([]float32, sp.redRead.Size/4)
	if sp.err == nil {
		bg := sp.slot(w)
		e := sp.encoder()
		e.Dispatch(sp.pipes["sumsq"], bg, uint32(sp.B), 1, 1)
		e.Copy(sp.red, 0, sp.redRead, 0, sp.redRead.Size)
		sp.flush()
		sp.stats.Readbacks++
		if err := sp.gd.StartRead(sp.redRead, int(sp.redRead.Size)).Wait(sp.ctx, gpu.Float32Bytes(f)); err != nil {
			sp.fail(err)
		} else {
			sp.checked()
		}
	}
	out := make([]float64, sp.B)
	for b := range out {
		out[b] = float64(f[b])
	}
	return out
}

// Net runs the network program of each chunk on x and puts the output in
// out (guided: u + w·(c - u) by a Lincomb over the whole batch).
func (sp *gpuSpace) Net(out, x sampler.Vec, p schedule.Point) error {
	if sp.err != nil {
		return sp.err
	}
	if err := sp.healthy(); err != nil {
		sp.fail(err)
		return err
	}
	dst := out
	if sp.guided {
		if sp.tmpC == nil {
			sp.tmpC, sp.tmpU = sp.New().(*gvec), sp.New().(*gvec)
		}
		dst = sp.tmpC
	}
	tv := sp.cfg.Schedule.NetTime(p)
	for _, c := range sp.chunks {
		// The inputs are written with writeBuffer: submit what reads them first.
		sp.flush()
		tin := make([]float32, c.nb)
		for i := range tin {
			tin[i] = tv
		}
		sp.gd.WriteBuffer(c.p.inputs["t"], 0, gpu.Float32Bytes(tin))
		if c.labels != nil {
			sp.gd.WriteBuffer(c.p.inputs["class"], 0, gpu.Float32Bytes(c.labels))
		}
		e := sp.encoder()
		vb := uint64(4 * c.b * sp.per)
		src := uint64(4 * (int(sp.off(x)) + c.b0*sp.per))
		in := c.p.inputs["x"]
		e.Copy(sp.arena, src, in, 0, vb)
		if sp.guided {
			e.Copy(sp.arena, src, in, vb, vb)
		}
		c.p.encode(e)
		sp.stats.Copies += 2
		if testHookNet != nil {
			testHookNet(sp, e)
		}
		at := func(v sampler.Vec) uint64 { return uint64(4 * (int(sp.off(v)) + c.b0*sp.per)) }
		e.Copy(c.p.out, 0, sp.arena, at(dst), vb)
		if sp.guided {
			e.Copy(c.p.out, vb, sp.arena, at(sp.tmpU), vb)
			sp.stats.Copies += 2
		}
	}
	if sp.guided {
		// Ho & Salimans 2022, eq. 6: u + w·(c - u) = w·c + (1-w)·u.
		w := sp.cfg.Guidance
		sp.Lincomb(out, sampler.T(w, sp.tmpC), sampler.T(1-w, sp.tmpU))
	}
	return nil
}
