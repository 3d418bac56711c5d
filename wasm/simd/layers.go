package simd

import (
	"fmt"
	"time"

	"github.com/diffuse-web/diffuse/core/tensor"
)

// weights holds a model's parameters in kernel memory, packed for the kernel
// that uses them; each is prepared once per Denoiser and shared by its plans.
type weights struct {
	k       *Kernels
	params  map[string]*tensor.Tensor
	staging []float32
	raw     map[string][]float32 // copied as is (GroupNorm affines)
	convA   map[string][]float32 // conv weights [O, I·KH·KW] as packed A
	convTA  map[string][]float32 // transposed-conv weights [I, O·KH·KW] as packed A = Wᵀ
	linB    map[string][]float32 // linear weights [O, I] as packed B (B = Wᵀ)
	rowBias map[string][]float32 // biases padded to PackedRows
	colBias map[string][]float32 // biases padded to PackedCols
	winoU   map[string][]float32 // 3x3 conv weights as 16 Winograd A operands (winograd.go)
}

func newWeights(k *Kernels, params map[string]*tensor.Tensor) *weights {
	return &weights{k: k, params: params, raw: map[string][]float32{}, convA: map[string][]float32{}, convTA: map[string][]float32{},
		linB: map[string][]float32{}, rowBias: map[string][]float32{}, colBias: map[string][]float32{},
		winoU: map[string][]float32{}}
}

func (w *weights) param(name string) *tensor.Tensor {
	t, ok := w.params[name]
	if !ok {
		panic(fmt.Sprintf("simd: graph names missing parameter %q", name))
	}
	return t
}

// stage copies a parameter into kernel memory scratch (reused between calls).
func (w *weights) stage(name string) []float32 {
	d := w.param(name).Data
	if len(w.staging) < len(d) {
		w.staging = w.k.Alloc(len(d))
	}
	s := w.staging[:len(d)]
	copy(s, d)
	return s
}

// Raw returns a kernel-memory copy of a parameter ("" gives nil).
func (w *weights) Raw(name string) []float32 {
	if name == "" {
		return nil
	}
	if r, ok := w.raw[name]; ok {
		return r
	}
	d := w.param(name).Data
	r := w.k.Alloc(len(d))
	copy(r, d)
	w.raw[name] = r
	return r
}

// ConvA returns conv weight [O,I,KH,KW] packed as the A operand [O, I·KH·KW].
func (w *weights) ConvA(name string) []float32 {
	if r, ok := w.convA[name]; ok {
		return r
	}
	s := w.param(name).Shape
	o, kd := s[0], s[1]*s[2]*s[3]
	r := w.k.Alloc(PackedALen(o, kd))
	w.k.PackA(r, w.stage(name), kd, o, kd)
	w.convA[name] = r
	return r
}

// ConvTA returns a transposed conv's weight [I,O,KH,KW] packed as the A
// operand Wᵀ [O·KH·KW, I] (a column-major view of the weight, packed here).
func (w *weights) ConvTA(name string) []float32 {
	if r, ok := w.convTA[name]; ok {
		return r
	}
	t := w.param(name)
	in, m := t.Shape[0], t.Shape[1]*t.Shape[2]*t.Shape[3]
	r := w.k.Alloc(PackedALen(m, in))
	for r0 := 0; r0 < m; r0 += MR {
		panel := r[r0*in : (r0+MR)*in]
		for kk := 0; kk < in; kk++ {
			for i := 0; i < MR && r0+i < m; i++ {
				panel[kk*MR+i] = t.Data[kk*m+r0+i]
			}
		}
	}
	w.convTA[name] = r
	return r
}

// LinB returns linear weight [O,I] packed as the B operand (I deep, O wide).
func (w *weights) LinB(name string) []float32 {
	if r, ok := w.linB[name]; ok {
		return r
	}
	s := w.param(name).Shape
	o, in := s[0], s[1]
	r := w.k.Alloc(PackedBLen(in, o))
	w.k.PackBT(r, w.stage(name), in, o, in)
	w.linB[name] = r
	return r
}

func (w *weights) padded(cache map[string][]float32, name string, n int) []float32 {
	if name == "" {
		return nil
	}
	if r, ok := cache[name]; ok {
		return r
	}
	d := w.param(name).Data
	r := w.k.Alloc(n)
	copy(r, d)
	cache[name] = r
	return r
}

// RowBias returns bias [O] zero-padded to PackedRows(O).
func (w *weights) RowBias(name string, o int) []float32 {
	return w.padded(w.rowBias, name, PackedRows(o))
}

// ColBias returns bias [O] zero-padded to PackedCols(O).
func (w *weights) ColBias(name string, o int) []float32 {
	return w.padded(w.colBias, name, PackedCols(o))
}

// scratch is the per-plan working memory shared by all steps, sized to the
// largest need of any step.
type scratch struct {
	xp, bp, ap, bias, s, ap2, bp2, cols, kc, vc []float32
	prof                                        profile // finer timing inside steps when on
}

// profile accumulates time per label when not nil.
type profile map[string]time.Duration

func (p profile) start() time.Time {
	if p == nil {
		return time.Time{}
	}
	return time.Now()
}

func (p profile) lap(t time.Time, label string) time.Time {
	if p == nil {
		return t
	}
	now := time.Now()
	p[label] += now.Sub(t)
	return now
}

type scratchSize struct{ xp, bp, ap, bias, s, ap2, bp2, cols, kc, vc int }

func (s *scratchSize) grow(o scratchSize) {
	s.xp, s.bp, s.ap = max(s.xp, o.xp), max(s.bp, o.bp), max(s.ap, o.ap)
	s.bias, s.s = max(s.bias, o.bias), max(s.s, o.s)
	s.ap2, s.bp2 = max(s.ap2, o.ap2), max(s.bp2, o.bp2)
	s.cols, s.kc, s.vc = max(s.cols, o.cols), max(s.kc, o.kc), max(s.vc, o.vc)
}

func (s scratchSize) alloc(k *Kernels) *scratch {
	return &scratch{xp: k.Alloc(s.xp), bp: k.Alloc(s.bp), ap: k.Alloc(s.ap), bias: k.Alloc(s.bias),
		s: k.Alloc(s.s), ap2: k.Alloc(s.ap2), bp2: k.Alloc(s.bp2), cols: k.Alloc(s.cols),
		kc: k.Alloc(s.kc), vc: k.Alloc(s.vc)}
}

// conv is a Conv2D lowered to SIMD kernels: per sample, (pad, im2col or pack)
// into packed B panels, then one GEMM against the packed weights, with the
// bias, a per-sample channel bias and a residual fused into its epilogue.
type conv struct {
	b, i, h, w, o, oh, ow int
	kd, npix              int // GEMM depth I·KH·KW and output pixels OH·OW
	hp, wp, top, left     int
	direct, padded        bool
	tables                *Im2colTables
	cw                    int             // output pixels per B block (chunkCols)
	blocks                []*Im2colTables // tables per block of cw pixels
	wA, bias              []float32
	wino                  *wino // the Winograd F(2x2, 3x3) form, when chosen (winograd.go)
}

func newConv(k *Kernels, wt *weights, xs []int, weight, bias string, stride int, pad [4]int, os []int) *conv {
	ws := wt.param(weight).Shape
	c := &conv{b: xs[0], i: xs[1], h: xs[2], w: xs[3], o: ws[0], oh: os[2], ow: os[3]}
	kh, kw := ws[2], ws[3]
	c.kd, c.npix = c.i*kh*kw, c.oh*c.ow
	c.top, c.left = pad[0], pad[1]
	c.hp, c.wp = c.h+pad[0]+pad[2], c.w+pad[1]+pad[3]
	c.padded = pad != [4]int{}
	c.direct = kh == 1 && kw == 1 && stride == 1 && !c.padded
	c.bias = wt.RowBias(bias, c.o)
	if kh == 3 && kw == 3 && stride == 1 && useWinograd(c.b, c.i, c.o, c.oh, c.ow) {
		c.wino = newWino(k, wt, c, weight)
		return c
	}
	c.wA = wt.ConvA(weight)
	if !c.direct {
		koff := k.AllocI32(c.kd)
		for i := 0; i < c.i; i++ {
			for ky := 0; ky < kh; ky++ {
				for kx := 0; kx < kw; kx++ {
					koff[(i*kh+ky)*kw+kx] = int32(4 * ((i*c.hp+ky)*c.wp + kx))
				}
			}
		}
		pixoff := k.AllocI32(PackedCols(c.npix)) // past npix: 0, a valid pixel
		for oy := 0; oy < c.oh; oy++ {
			for ox := 0; ox < c.ow; ox++ {
				pixoff[oy*c.ow+ox] = int32(4 * (oy*stride*c.wp + ox*stride))
			}
		}
		c.tables = NewIm2colTables(koff, pixoff)
	}
	c.cw = chunkCols(c.kd, c.npix)
	for j0 := 0; !c.direct && j0 < c.npix; j0 += c.cw {
		n := min(c.cw, c.npix-j0)
		c.blocks = append(c.blocks, &Im2colTables{koff: c.tables.koff, pixoff: c.tables.pixoff[j0 : j0+PackedCols(n)], span: c.tables.span})
	}
	return c
}

func (c *conv) need() scratchSize {
	if c.wino != nil {
		return c.wino.need(c)
	}
	s := scratchSize{bp: PackedBLen(c.kd, c.cw), bias: PackedRows(c.o)}
	if c.padded {
		s.xp = c.i * c.hp * c.wp
	}
	return s
}

// convChunkBytes bounds the packed B block that one im2col/pack + GEMM pair
// works on (read when a plan is built): a conv's output pixels are taken in
// column blocks of at most this many bytes of packed B (a multiple of NR
// columns), so the block is still in cache when the GEMM reads it, instead
// of a whole sample's im2col (up to megabytes) written out and read back;
// 0 packs all pixels at once. Against no blocking, 128 KiB measured 1-5%
// less time per call on the shipped MNIST and emoji UNets at batch 1 and 16
// (median of paired ratios, four runs of the A/B comparison (BenchmarkABCompare) in Node on the
// shared 2-core Xeon; one run of mnist b16 came out 2% slower), and the B
// scratch shrinks from up to a few MB to 128 KiB; 48 and 320 KiB were
// slower than 128.
var convChunkBytes = 128 << 10

// chunkCols returns the columns of one B block for depth kd.
func chunkCols(kd, npix int) int { return blockCols(convChunkBytes, kd, npix) }

// blockCols returns the columns of one B block of depth kd and at most
// bytes bytes (all npix columns when bytes <= 0), in even blocks.
func blockCols(bytes, kd, npix int) int {
	if bytes <= 0 {
		return PackedCols(npix)
	}
	w := max(NR, bytes/(4*kd)/NR*NR)
	if w >= npix {
		return PackedCols(npix)
	}
	// even blocks: as many as needed, each as wide as the widest needs
	nc := (npix + w - 1) / w
	return PackedCols((npix + nc - 1) / nc)
}

// sampleBias writes sample b's per-channel bias into dst[:o]: bias plus
// the fused e[b] (a time embedding's add_channel); either may be nil, not
// both.
func sampleBias(k *Kernels, dst, bias, e []float32, b, o int) {
	switch {
	case e != nil && bias != nil:
		k.Add(dst[:o], bias[:o], e[b*o:(b+1)*o])
	case e != nil:
		k.Affine(dst[:o], e[b*o:(b+1)*o], 1, 0)
	default:
		copy(dst[:o], bias[:o])
	}
}

// run computes out = conv(x) (+ e[b] per output channel) (+ res).
func (c *conv) run(k *Kernels, s *scratch, out, x, e, res []float32) {
	if c.wino != nil {
		c.wino.run(k, c, s, out, x, e, res)
		return
	}
	in, op := c.i*c.h*c.w, c.o*c.npix
	cw := c.cw
	for b := 0; b < c.b; b++ {
		xb := x[b*in : (b+1)*in]
		t := s.prof.start()
		src := xb
		if !c.direct && c.padded {
			k.Pad(s.xp, xb, c.i, c.h, c.w, c.hp, c.wp, c.top, c.left)
			src = s.xp
		}
		t = s.prof.lap(t, "  conv: pad+im2col/pack")
		bias, mode := c.bias, RowBias
		if e != nil {
			sampleBias(k, s.bias, c.bias, e, b, c.o)
			bias = s.bias
		} else if bias == nil {
			mode = NoBias
		}
		t = s.prof.lap(t, "  conv: gemm")
		for j0 := 0; j0 < c.npix; j0 += cw {
			n := min(cw, c.npix-j0)
			if c.direct {
				k.PackB(s.bp, xb[j0:], c.npix, c.kd, n)
			} else {
				k.Im2col(s.bp, src, c.blocks[j0/cw])
			}
			t = s.prof.lap(t, "  conv: pad+im2col/pack")
			var rb []float32
			if res != nil {
				rb = res[b*op+j0 : (b+1)*op]
			}
			k.Gemm(out[b*op+j0:(b+1)*op], c.npix, c.wA, s.bp, c.o, n, c.kd, bias, mode, rb)
			t = s.prof.lap(t, "  conv: gemm")
		}
	}
}

// convT is a ConvTranspose2D lowered to SIMD kernels (the GEMM + col2im
// formulation of a transposed convolution, as in Caffe's deconvolution layer
// and Dumoulin & Visin 2016, "A guide to convolution arithmetic", §4): per
// sample, cols [O·KH·KW, H·W] = Wᵀ·x by the packed GEMM (x [I, H·W] packed
// as B, no im2col), then col2im scatters and sums the taps into the output
// planes, which start at the bias plus a fused per-sample channel bias. Only
// the I·O·KH·KW·H·W products of the definition are computed (a convolution
// over the zero-upsampled input would spend stride² times as many).
type convT struct {
	b, i, h, w, o, oh, ow int
	m, npix               int // GEMM rows O·KH·KW and columns H·W
	wA, bias              []float32
	tab                   *Col2imTables
}

func newConvT(k *Kernels, wt *weights, xs []int, weight, bias string, stride, pad int, os []int) *convT {
	ws := wt.param(weight).Shape
	c := &convT{b: xs[0], i: xs[1], h: xs[2], w: xs[3], o: ws[1], oh: os[2], ow: os[3]}
	c.m, c.npix = ws[1]*ws[2]*ws[3], c.h*c.w
	c.wA = wt.ConvTA(weight)
	c.bias = wt.Raw(bias)
	c.tab = NewCol2imTables(k, c.o, ws[2], ws[3], c.h, c.w, stride, pad, c.oh, c.ow, c.b*c.npix)
	return c
}

func (c *convT) need() scratchSize {
	s := scratchSize{bp: PackedBLen(c.i, c.b*c.npix), cols: c.m * c.b * c.npix, bias: c.o}
	if c.b > 1 {
		s.xp = c.i * c.b * c.npix
	}
	return s
}

// run computes out = convT(x) (+ e[b] per output channel). The samples
// share one GEMM: x is gathered into [I, B·H·W] (sample b's pixels at
// columns b·H·W...), so small inputs still fill the 8-column panels and the
// weights stream past once per panel rather than once per sample's panel.
func (c *convT) run(k *Kernels, s *scratch, out, x, e []float32) {
	in, op, n := c.i*c.npix, c.o*c.oh*c.ow, c.b*c.npix
	t := s.prof.start()
	xb := x
	if c.b > 1 {
		xb = s.xp[:c.i*n]
		for b := 0; b < c.b; b++ {
			k.CopyRows(xb[b*c.npix:], n, x[b*in:], c.npix, c.i, c.npix)
		}
	}
	k.PackB(s.bp, xb, n, c.i, n)
	t = s.prof.lap(t, "  conv_transpose: gather+pack")
	k.Gemm(s.cols, n, c.wA, s.bp, c.m, n, c.i, nil, NoBias, nil)
	t = s.prof.lap(t, "  conv_transpose: gemm")
	for b := 0; b < c.b; b++ {
		bias := c.bias
		if e != nil {
			sampleBias(k, s.bias, c.bias, e, b, c.o)
			bias = s.bias
		}
		k.Col2im(out[b*op:(b+1)*op], s.cols[b*c.npix:], bias, c.tab)
	}
	s.prof.lap(t, "  conv_transpose: col2im")
}

// linear is x [rows, in] · Wᵀ + bias with W packed once as the B operand.
type linear struct {
	rows, in, out int
	wB, bias      []float32
}

func newLinear(wt *weights, rows int, weight, bias string) *linear {
	ws := wt.param(weight).Shape
	l := &linear{rows: rows, in: ws[1], out: ws[0]}
	l.wB = wt.LinB(weight)
	l.bias = wt.ColBias(bias, l.out)
	return l
}

func (l *linear) need() scratchSize { return scratchSize{ap: PackedALen(l.rows, l.in)} }

func (l *linear) run(k *Kernels, s *scratch, out, x []float32) {
	t := s.prof.start()
	k.PackA(s.ap, x, l.in, l.rows, l.in)
	t = s.prof.lap(t, "  linear: pack")
	mode := ColBias
	if l.bias == nil {
		mode = NoBias
	}
	k.Gemm(out, l.out, s.ap, l.wB, l.rows, l.out, l.in, l.bias, mode, nil)
	label := "  linear: gemm, rows >= 16"
	if l.rows < 16 {
		label = "  linear: gemm, rows < 16"
	}
	s.prof.lap(t, label)
}

// attention is softmax(q kᵀ·scale) v per batch and head on [B,N,C] tokens,
// as two GEMMs around a softmax; heads are column slices of q, k, v, out.
type attention struct {
	b, n, c, heads, d int
	scale             float32
}

func (a *attention) need() scratchSize {
	return scratchSize{ap: PackedALen(a.n, a.d), bp: PackedBLen(a.d, a.n), s: a.n * a.n,
		ap2: PackedALen(a.n, a.n), bp2: PackedBLen(a.n, a.d)}
}

func (a *attention) run(k *Kernels, s *scratch, out, q, kk, v []float32) {
	for b := 0; b < a.b; b++ {
		base := b * a.n * a.c
		for h := 0; h < a.heads; h++ {
			off := base + h*a.d
			t := s.prof.start()
			k.PackA(s.ap, q[off:], a.c, a.n, a.d)
			k.PackBT(s.bp, kk[off:], a.c, a.n, a.d)
			t = s.prof.lap(t, "  attention: pack q, k")
			k.Gemm(s.s, a.n, s.ap, s.bp, a.n, a.n, a.d, nil, NoBias, nil)
			t = s.prof.lap(t, "  attention: q·kᵀ")
			k.Softmax(s.s, a.n, a.n, a.n, a.scale)
			t = s.prof.lap(t, "  attention: softmax")
			k.PackA(s.ap2, s.s, a.n, a.n, a.n)
			k.PackB(s.bp2, v[off:], a.c, a.n, a.d)
			t = s.prof.lap(t, "  attention: pack p, v")
			k.Gemm(out[off:], a.c, s.ap2, s.bp2, a.n, a.d, a.n, nil, NoBias, nil)
			s.prof.lap(t, "  attention: p·v")
		}
	}
}

// memAttention is lucidrains' LinearAttention (linear) or Attention with
// memory key/values (core/graph/lucid.go) on qkv [B, 3·hidden, N] in the
// channel layout, per batch item and head as GEMMs around softmaxes. The
// memory tokens are kept as [2][heads][D][M] (LinearAttention's own layout;
// Attention's [2][heads][M][D] is transposed once here), so each head's keys
// and values become [D, M+N] rows: memory, then the head's k (or v) rows.
//
// Linear (Shen et al. 2021, "Efficient Attention"): k' = row softmax of the
// keys over the M+N tokens, ctx [D,D] = k'·v'ᵀ, q' = softmax of q over its
// D channels (a column softmax, scaled), out [D,N] = ctxᵀ·q'.
//
// Full: S [N, M+N] = qᵀ·K (q packed from its transpose), row softmax with
// the scale, out [D,N] = V·Sᵀ.
type memAttention struct {
	linear                 bool
	b, hidden, n, heads, d int
	m, t                   int // memory tokens, M+N
	scale                  float32
	mem                    []float32 // [2][heads][D][M]
}

func newMemAttention(k *Kernels, wt *weights, linear bool, qs []int, heads, memTokens int, memName string, scale float32) *memAttention {
	hidden := qs[1] / 3
	a := &memAttention{linear: linear, b: qs[0], hidden: hidden, n: qs[2] * qs[3], heads: heads, d: hidden / heads,
		m: memTokens, scale: scale}
	a.t = a.m + a.n
	if memName != "" {
		src := wt.param(memName).Data
		if linear {
			a.mem = wt.Raw(memName)
		} else {
			a.mem = k.Alloc(len(src))
			for sh := 0; sh < 2*heads; sh++ { // [M][D] -> [D][M] per (k/v, head)
				for j := 0; j < a.m; j++ {
					for dd := 0; dd < a.d; dd++ {
						a.mem[(sh*a.d+dd)*a.m+j] = src[(sh*a.m+j)*a.d+dd]
					}
				}
			}
		}
	}
	return a
}

func (a *memAttention) need() scratchSize {
	d, n, t := a.d, a.n, a.t
	s := scratchSize{kc: d * t, vc: d * t}
	if a.linear {
		s.ap, s.bp, s.s = PackedALen(d, t), PackedBLen(t, d), d*d
		s.cols, s.ap2, s.bp2 = d*n, PackedALen(d, d), PackedBLen(d, n)
	} else {
		s.ap, s.bp, s.s = PackedALen(n, d), PackedBLen(d, t), n*t
		s.ap2, s.bp2 = PackedALen(d, t), PackedBLen(t, n)
	}
	return s
}

// gather sets dst [D, M+N] to the memory rows of (which, head h) followed by
// the head's rows of src ([D, N] contiguous).
func (a *memAttention) gather(k *Kernels, dst, src []float32, which, h int) {
	d, m, n, t := a.d, a.m, a.n, a.t
	if m > 0 {
		k.CopyRows(dst, t, a.mem[(which*a.heads+h)*d*m:], m, d, m)
	}
	k.CopyRows(dst[m:], t, src, n, d, n)
}

func (a *memAttention) run(k *Kernels, s *scratch, out, qkv []float32) {
	d, n, t, hid := a.d, a.n, a.t, a.hidden
	for b := 0; b < a.b; b++ {
		for h := 0; h < a.heads; h++ {
			q := qkv[(b*3*hid+h*d)*n : (b*3*hid+h*d+d)*n]
			kk := qkv[(b*3*hid+hid+h*d)*n:]
			v := qkv[(b*3*hid+2*hid+h*d)*n:]
			o := out[(b*hid+h*d)*n : (b*hid+h*d+d)*n]
			kc, vc := s.kc[:d*t], s.vc[:d*t]
			tm := s.prof.start()
			a.gather(k, kc, kk, 0, h)
			a.gather(k, vc, v, 1, h)
			tm = s.prof.lap(tm, "  mem attention: gather k, v")
			if a.linear {
				k.Softmax(kc, d, t, t, 1)
				k.PackA(s.ap, kc, t, d, t)
				k.PackBT(s.bp, vc, t, d, t)
				ctx := s.s[:d*d]
				k.Gemm(ctx, d, s.ap, s.bp, d, d, t, nil, NoBias, nil)
				tm = s.prof.lap(tm, "  linear attention: k softmax, ctx")
				qs := s.cols[:d*n]
				k.SoftmaxCols(qs, q, d, n, a.scale)
				k.PackAT(s.ap2, ctx, d, d, d)
				k.PackB(s.bp2, qs, n, d, n)
				k.Gemm(o, n, s.ap2, s.bp2, d, n, d, nil, NoBias, nil)
				s.prof.lap(tm, "  linear attention: q softmax, out")
				continue
			}
			k.PackAT(s.ap, q, n, n, d)
			k.PackB(s.bp, kc, t, d, t)
			sc := s.s[:n*t]
			k.Gemm(sc, t, s.ap, s.bp, n, t, d, nil, NoBias, nil)
			tm = s.prof.lap(tm, "  attention: q·kᵀ")
			k.Softmax(sc, n, t, t, a.scale)
			tm = s.prof.lap(tm, "  attention: softmax")
			k.PackA(s.ap2, vc, t, d, t)
			k.PackBT(s.bp2, sc, t, n, t)
			k.Gemm(o, n, s.ap2, s.bp2, d, n, t, nil, NoBias, nil)
			s.prof.lap(tm, "  attention: p·v")
		}
	}
}
