package simd

import "fmt"

// The checked kernel API. Each method validates its slices against the
// sizes the kernel will touch and panics on a mismatch (a programming error):
// in the browser a kernel writes straight into Go's memory, so a bad length
// must never reach it. Every slice must come from Kernels.Alloc (natively
// that is enforced; in js/wasm any Go slice would do).

// BiasMode says how Gemm adds its bias.
type BiasMode int

const (
	NoBias  BiasMode = 0
	RowBias BiasMode = 1 // bias[i] added to row i (len >= PackedRows(m))
	ColBias BiasMode = 2 // bias[j] added to column j (len >= PackedCols(n))
)

func ceilTo(n, m int) int { return (n + m - 1) / m * m }

// PackedRows is m rounded up to the A panel height MR.
func PackedRows(m int) int { return ceilTo(m, MR) }

// PackedCols is n rounded up to the B panel width NR.
func PackedCols(n int) int { return ceilTo(n, NR) }

// PackedALen is the length of a packed A operand with m rows and depth k.
func PackedALen(m, k int) int { return PackedRows(m) * k }

// PackedBLen is the length of a packed B operand with depth k and n columns.
func PackedBLen(k, n int) int { return PackedCols(n) * k }

func need(what string, have, want int) {
	if have < want {
		panic(fmt.Sprintf("simd: %s has %d elements, the kernel needs %d", what, have, want))
	}
}

func positive(vals ...int) {
	for _, v := range vals {
		if v < 0 || v > 1<<30 {
			panic(fmt.Sprintf("simd: size %d out of range", v))
		}
	}
}

// matLen is the extent of an m×n matrix with row stride ld.
func matLen(m, n, ld int) int {
	if m == 0 || n == 0 {
		return 0
	}
	if ld < n {
		panic(fmt.Sprintf("simd: row stride %d below row length %d", ld, n))
	}
	return (m-1)*ld + n
}

// PackA packs A [m,k] (row stride lda) into ap for Gemm.
func (k *Kernels) PackA(ap, a []float32, lda, m, kd int) {
	positive(lda, m, kd)
	need("A", len(a), matLen(m, kd, lda))
	need("packed A", len(ap), PackedALen(m, kd))
	k.packA(a, lda, m, kd, ap)
}

// PackB packs B [k,n] (row stride ldb) into bp for Gemm.
func (k *Kernels) PackB(bp, b []float32, ldb, kd, n int) {
	positive(ldb, kd, n)
	need("B", len(b), matLen(kd, n, ldb))
	need("packed B", len(bp), PackedBLen(kd, n))
	k.packB(b, ldb, kd, n, bp)
}

// PackBT packs B given as its transpose bt [n,k] (row stride ldbt).
func (k *Kernels) PackBT(bp, bt []float32, ldbt, n, kd int) {
	positive(ldbt, n, kd)
	need("Bᵀ", len(bt), matLen(n, kd, ldbt))
	need("packed B", len(bp), PackedBLen(kd, n))
	k.packBt(bt, ldbt, n, kd, bp)
}

// Gemm computes C[m,n] (row stride ldc) = A·B (+ bias) (+ res) from packed
// operands; res, when not nil, has C's layout.
func (k *Kernels) Gemm(c []float32, ldc int, ap, bp []float32, m, n, kd int, bias []float32, mode BiasMode, res []float32) {
	positive(ldc, m, n, kd)
	need("C", len(c), matLen(m, n, ldc))
	need("packed A", len(ap), PackedALen(m, kd))
	need("packed B", len(bp), PackedBLen(kd, n))
	switch mode {
	case NoBias:
		bias = nil
	case RowBias:
		need("row bias", len(bias), PackedRows(m))
	case ColBias:
		need("column bias", len(bias), PackedCols(n))
	default:
		panic("simd: bad bias mode")
	}
	if res != nil {
		need("residual", len(res), matLen(m, n, ldc))
	}
	if m == 0 || n == 0 {
		return
	}
	k.gemm(ap, bp, c, ldc, m, n, kd, bias, res, int(mode))
}

// GemmBatch computes count GEMMs of one shape without bias or residual:
// item i is C_i = A_i·B_i with C_i at c[i·sc:] (row stride ldc), A_i packed
// at ap[i·sa:] and B_i at bp[i·sb:] (strides in floats).
func (k *Kernels) GemmBatch(c []float32, sc, ldc int, ap []float32, sa int, bp []float32, sb int, count, m, n, kd int) {
	positive(sc, ldc, sa, sb, count, m, n, kd)
	if count == 0 || m == 0 || n == 0 {
		return
	}
	last := count - 1
	need("C", len(c), last*sc+matLen(m, n, ldc))
	need("packed A", len(ap), last*sa+PackedALen(m, kd))
	need("packed B", len(bp), last*sb+PackedBLen(kd, n))
	k.gemmBatch(count, ap, sa, bp, sb, c, sc, ldc, m, n, kd)
}

// Im2colTables are the offset tables of a convolution's im2col, checked
// once: koff[kk] is the byte offset of depth index kk = (channel, ky, kx) in
// the padded input, pixoff[j] that of output pixel j (len a multiple of NR;
// entries past the last pixel may repeat any valid offset).
type Im2colTables struct {
	koff, pixoff []int32
	span         int // floats of the padded input the gather can touch
}

// NewIm2colTables checks the tables (they must be in kernel memory).
func NewIm2colTables(koff, pixoff []int32) *Im2colTables {
	if len(pixoff)%NR != 0 {
		panic("simd: im2col pixel table not padded to NR")
	}
	maxK, maxP := int32(-1), int32(-1)
	for _, o := range koff {
		if o < 0 || o%4 != 0 {
			panic("simd: bad im2col offset")
		}
		maxK = max(maxK, o)
	}
	for _, o := range pixoff {
		if o < 0 || o%4 != 0 {
			panic("simd: bad im2col offset")
		}
		maxP = max(maxP, o)
	}
	span := 0
	if maxK >= 0 && maxP >= 0 {
		span = int(int64(maxK)+int64(maxP))/4 + 1
	}
	return &Im2colTables{koff, pixoff, span}
}

// Im2col gathers the packed B operand of a convolution from the padded input
// xp: bp[j/8][kk][j%8] = xp[(koff[kk]+pixoff[j])/4].
func (k *Kernels) Im2col(bp, xp []float32, t *Im2colTables) {
	kd, npix := len(t.koff), len(t.pixoff)
	need("packed B", len(bp), kd*npix)
	if kd > 0 && npix > 0 {
		need("padded input", len(xp), t.span)
		k.im2col(xp, t.koff, t.pixoff, kd, npix, bp)
	}
}

// Pad copies planes of [h,w] from x into [hp,wp] planes of xp, at row top
// and column left, zeroing the border.
func (k *Kernels) Pad(xp, x []float32, planes, h, w, hp, wp, top, left int) {
	positive(planes, h, w, hp, wp, top, left)
	if top+h > hp || left+w > wp {
		panic("simd: pad does not fit")
	}
	need("x", len(x), planes*h*w)
	need("padded x", len(xp), planes*hp*wp)
	k.pad(x, xp, planes, h, w, hp, wp, top, left)
}

// Add sets out = a + b over len(out) elements.
func (k *Kernels) Add(out, a, b []float32) {
	need("a", len(a), len(out))
	need("b", len(b), len(out))
	k.add(a, b, out, len(out))
}

// Affine sets out = x·s + o.
func (k *Kernels) Affine(out, x []float32, s, o float32) {
	need("x", len(x), len(out))
	k.affine(x, out, len(out), s, o)
}

// SiLU sets out = x·sigmoid(x).
func (k *Kernels) SiLU(out, x []float32) {
	need("x", len(x), len(out))
	k.silu(x, out, len(out))
}

// AddChannel sets out[p,i] = x[p,i] + e[p] for planes p of plane elements.
func (k *Kernels) AddChannel(out, x, e []float32, planes, plane int) {
	positive(planes, plane)
	need("out", len(out), planes*plane)
	need("x", len(x), planes*plane)
	need("e", len(e), planes)
	k.addChannel(x, e, out, planes, plane)
}

// ScaleShift sets out = x·(1+scale) + shift with scale, shift = e[b,:c], e[b,c:].
func (k *Kernels) ScaleShift(out, x, e []float32, nb, c, plane int) {
	positive(nb, c, plane)
	need("out", len(out), nb*c*plane)
	need("x", len(x), nb*c*plane)
	need("e", len(e), nb*2*c)
	k.scaleShift(x, e, out, nb, c, plane)
}

// GroupNorm normalises x [nb,c,per] per group (c/groups channels), applies
// gamma and beta (beta may be nil), then the scale/shift e [nb,2c] when ss is
// not nil, then SiLU when silu is set.
func (k *Kernels) GroupNorm(out, x []float32, nb, c, per, groups int, eps float64, gamma, beta []float32, silu bool, ss []float32) {
	positive(nb, c, per, groups)
	if groups == 0 || c%groups != 0 {
		panic("simd: channels do not split into groups")
	}
	need("out", len(out), nb*c*per)
	need("x", len(x), nb*c*per)
	need("gamma", len(gamma), c)
	if beta != nil {
		need("beta", len(beta), c)
	}
	if ss != nil {
		need("scale/shift", len(ss), nb*2*c)
	}
	flags := 0
	if silu {
		flags = 1
	}
	k.groupnorm(x, out, gamma, beta, nb, c, per, groups, eps, flags, ss)
}

// Softmax replaces each of rows rows of n elements (row stride ld) by
// softmax(row·scale).
func (k *Kernels) Softmax(s []float32, rows, n, ld int, scale float32) {
	positive(rows, n, ld)
	need("scores", len(s), matLen(rows, n, ld))
	k.softmax(s, rows, n, ld, scale)
}

// F16ToF32 expands IEEE half floats into float32, exactly.
func (k *Kernels) F16ToF32(dst []float32, src []uint16) {
	need("src", len(src), len(dst))
	k.f16ToF32(src, dst, len(dst))
}

// Col2imTables describe a transposed convolution's scatter-add (col2im):
// the sizes and, per kernel row and column, the range of input rows and
// columns whose outputs land inside the output plane. Built and checked
// here, in kernel memory; the kernel trusts them.
type Col2imTables struct {
	tab                                  []int32
	o, kh, kw, h, w, oh, ow, stride, ldc int
}

// NewCol2imTables prepares the col2im of a transposed convolution with o
// output channels, a kh×kw kernel, stride and symmetric padding pad, from an
// h×w input into an oh×ow output (oh, ow may include output padding); the
// rows of the GEMM product it reads are ldc >= h·w floats apart.
func NewCol2imTables(k *Kernels, o, kh, kw, h, w, stride, pad, oh, ow, ldc int) *Col2imTables {
	positive(o, kh, kw, h, w, stride, pad, oh, ow, ldc)
	if stride == 0 || ldc < h*w {
		panic("simd: bad col2im stride")
	}
	const head = 9
	tab := k.AllocI32(head + 3*(kh+kw))
	for i, v := range []int{o, kh, kw, h, w, oh, ow, stride, ldc} {
		tab[i] = int32(v)
	}
	// ranges sets (i0, i1, o0) for tap t: inputs i in [i0, i1) have
	// 0 <= i·stride - pad + t < on, the first at o0.
	ranges := func(at, t, in, on int) {
		i0, i1 := -1, -1
		for i := 0; i < in; i++ {
			if oo := i*stride - pad + t; oo >= 0 && oo < on {
				if i0 < 0 {
					i0 = i
				}
				i1 = i + 1
			}
		}
		if i0 < 0 {
			i0, i1 = 0, 0
		}
		o0 := max(i0*stride-pad+t, 0)
		if i1 > i0 && (o0 < 0 || o0+(i1-1-i0)*stride >= on) {
			panic("simd: internal error: col2im range")
		}
		tab[at], tab[at+1], tab[at+2] = int32(i0), int32(i1), int32(o0)
	}
	for ky := 0; ky < kh; ky++ {
		ranges(head+3*ky, ky, h, oh)
	}
	for kx := 0; kx < kw; kx++ {
		ranges(head+3*(kh+kx), kx, w, ow)
	}
	return &Col2imTables{tab, o, kh, kw, h, w, oh, ow, stride, ldc}
}

// ColRows is the number of rows of the GEMM product col2im reads (o·kh·kw).
func (t *Col2imTables) ColRows() int { return t.o * t.kh * t.kw }

// Col2im sets out [o, oh, ow] to bias (per channel; nil: 0) plus the
// scatter-add of cols [o·kh·kw rows of h·w, ldc apart] (see Col2imTables).
func (k *Kernels) Col2im(out, cols, bias []float32, t *Col2imTables) {
	need("cols", len(cols), matLen(t.ColRows(), t.h*t.w, t.ldc))
	need("out", len(out), t.o*t.oh*t.ow)
	if bias != nil {
		need("bias", len(bias), t.o)
	}
	k.col2im(cols, t.tab, bias, out)
}

// PackAT packs A given as its transpose at [k,m] (row stride ldat) for Gemm.
func (k *Kernels) PackAT(ap, at []float32, ldat, m, kd int) {
	positive(ldat, m, kd)
	need("Aᵀ", len(at), matLen(kd, m, ldat))
	need("packed A", len(ap), PackedALen(m, kd))
	k.packAt(at, ldat, m, kd, ap)
}

// SoftmaxCols sets out [rows, n] to x with each column replaced by
// softmax(column)·scale; out may alias x.
func (k *Kernels) SoftmaxCols(out, x []float32, rows, n int, scale float32) {
	positive(rows, n)
	need("x", len(x), rows*n)
	need("out", len(out), rows*n)
	k.softmaxCols(x, out, rows, n, scale)
}

// RMSNorm sets out [nb, c, per] = x / max(‖x[b,:,p]‖₂, eps) · g[ch] · scale
// (the norm over channels at each position); out may alias x.
func (k *Kernels) RMSNorm(out, x, g []float32, nb, c, per int, scale, eps float32) {
	positive(nb, c, per)
	need("x", len(x), nb*c*per)
	need("out", len(out), nb*c*per)
	need("gain", len(g), c)
	k.rmsNorm(x, out, g, nb, c, per, scale, eps)
}

// Transpose sets dst to the nb matrices of src [rows, cols] transposed
// ([cols, rows] each).
func (k *Kernels) Transpose(dst, src []float32, nb, rows, cols int) {
	positive(nb, rows, cols)
	need("src", len(src), nb*rows*cols)
	need("dst", len(dst), nb*rows*cols)
	k.transpose(src, dst, nb, rows, cols)
}

// Upsample2x sets out [planes, 2h, 2w] to x [planes, h, w] with every value
// repeated in a 2x2 block.
func (k *Kernels) Upsample2x(out, x []float32, planes, h, w int) {
	positive(planes, h, w)
	need("x", len(x), planes*h*w)
	need("out", len(out), planes*4*h*w)
	k.upsample2x(x, out, planes, h, w)
}

// CopyRows copies rows rows of n floats from src (row stride lds) to dst
// (row stride ldd); the two must not overlap.
func (k *Kernels) CopyRows(dst []float32, ldd int, src []float32, lds, rows, n int) {
	positive(ldd, lds, rows, n)
	need("src", len(src), matLen(rows, n, lds))
	need("dst", len(dst), matLen(rows, n, ldd))
	k.copyRows(src, lds, dst, ldd, rows, n)
}

// WinoTables are the tile tables of one block of Winograd F(2x2, 3x3)
// tiles (see winograd.go), checked once: in[j] is the byte offset of tile
// j's top-left input in the padded input of its channel 0 (len a multiple
// of NR; entries past the last tile may repeat a valid offset), out[j] that
// of its top-left output in the output of channel 0, with bit 0 set when the
// tile has no second column and bit 1 when it has no second row, and
// bias[j] the byte offset of the tile's row of biases (one per sample).
type WinoTables struct {
	in, out, bias []int32
	n             int // tiles (len(out) and len(bias) ≥ n, rounded up to 4)
	inSpan        int // floats past channel 0's plane start that a tile read can reach, +1
	outSpan       int // the same for the output of channel 0
	biasSpan      int // floats of bias rows before the last row's start, +1
}

// NewWinoTables checks the tables for input rows wp floats apart and output
// rows ow floats apart.
func NewWinoTables(in, out, bias []int32, n, wp, ow int) *WinoTables {
	if len(in)%NR != 0 || len(in) < n || len(out) < ceilTo(n, 4) || len(bias) < ceilTo(n, 4) {
		panic("simd: bad Winograd table lengths")
	}
	t := &WinoTables{in: in, out: out, bias: bias, n: n}
	for _, o := range in {
		if o < 0 || o%4 != 0 {
			panic("simd: bad Winograd input offset")
		}
		t.inSpan = max(t.inSpan, int(o)/4+3*wp+4)
	}
	for j, o := range out[:ceilTo(n, 4)] {
		b := bias[j]
		if o < 0 || b < 0 || b%4 != 0 {
			panic("simd: bad Winograd output offset")
		}
		if j >= n {
			continue
		}
		e := int(o&^3)/4 + 1
		if o&1 == 0 {
			e++
		}
		if o&2 == 0 {
			e += ow
		}
		t.outSpan = max(t.outSpan, e)
		t.biasSpan = max(t.biasSpan, int(b)/4+1)
	}
	return t
}

// WinogradIn writes the input transform of t's tiles over planes channels
// (planes pstride floats apart, rows wp floats apart) from the padded xp as
// 16 packed B operands [planes, tiles] vstride floats apart in vp.
func (k *Kernels) WinogradIn(vp, xp []float32, t *WinoTables, planes, pstride, wp, vstride int) {
	positive(planes, pstride, wp, vstride)
	nt := len(t.in)
	if planes == 0 || nt == 0 {
		return
	}
	need("Winograd V stride", vstride, PackedBLen(planes, nt))
	need("Winograd V", len(vp), 15*vstride+PackedBLen(planes, nt))
	need("padded input", len(xp), (planes-1)*pstride+t.inSpan)
	k.winogradIn(xp, t.in, nt, planes, pstride, wp, vp, vstride)
}

// WinogradOut writes the output transform of the GEMM products m ([o, 16,
// ldm]: M_ξ[oc][j] at (16·oc+ξ)·ldm + j) for t's tiles into out (planes of
// plane floats, rows ow floats apart), adding bias[(t.bias[j]/4) + oc] when
// bias is not nil and res (out's layout) when not nil.
func (k *Kernels) WinogradOut(out, m []float32, t *WinoTables, o, ldm, plane, ow int, bias, res []float32) {
	positive(o, ldm, plane, ow)
	if o == 0 || t.n == 0 {
		return
	}
	need("Winograd M row stride", ldm, ceilTo(t.n, 4))
	need("Winograd M", len(m), (16*o-1)*ldm+ceilTo(t.n, 4))
	need("output", len(out), (o-1)*plane+t.outSpan)
	if res != nil {
		need("residual", len(res), (o-1)*plane+t.outSpan)
	}
	if bias != nil {
		need("bias", len(bias), t.biasSpan+o-1)
	}
	k.winogradOut(m, ldm, o, t.n, t.out, t.bias, bias, res, out, plane, ow)
}
