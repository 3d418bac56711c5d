//go:build !(js && wasm)

package simd

import (
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/x448/float16"

	"github.com/diffuse-web/diffuse/core/model"
)

// The native Go kernel set: the same kernels as kernels.wasm, with the same
// arguments, packed layouts and offset tables (the generated bindings in
// kernels_native_gen.go call these methods when a Kernels has one), written
// in Go over ordinary Go memory, with the GEMM micro-kernel in amd64
// assembly (gemm_amd64.s; pure Go elsewhere) and the heavy kernels split
// over all cores by a persistent pool of goroutines. It is the backend of
// the native CLI; the wazero path stays the check of the browser's kernels.

// NewGoKernels returns a Kernels that runs the native Go kernel set.
func NewGoKernels() *Kernels {
	return &Kernels{gok: &goKernels{asm: hasAsm}, used: 64}
}

// NewNativeDenoiser prepares m for the native Go kernel set (NewGoKernels):
// the plan, packing and fusions of NewDenoiser, with kernels compiled for
// this CPU and run on all its cores.
func NewNativeDenoiser(m *model.Model) *Denoiser {
	return newDenoiser(m, NewGoKernels())
}

// goAlloc returns n zeroed bytes, 64-byte aligned (a cache line, and the
// alignment of every packed panel whose start is).
func goAlloc(n int) unsafe.Pointer {
	s := make([]byte, n+64)
	p := unsafe.Pointer(unsafe.SliceData(s))
	return unsafe.Add(p, (64-uintptr(p)%64)%64)
}

// goChunkScale: see Kernels.chunkScale.
var goChunkScale = 4

// goKernels holds the Go set's options.
type goKernels struct {
	asm bool // the assembly kernels (GEMM tiles, vector loops); false: plain Go
}

// ---- the worker pool ----

type poolTask struct {
	f      func(lo, hi int)
	lo, hi int
	wg     *sync.WaitGroup
}

var (
	poolOnce sync.Once
	poolCh   chan poolTask
	poolN    int // goroutines in the pool (GOMAXPROCS - 1 when it started)
)

func poolStart() {
	poolN = max(runtime.GOMAXPROCS(0)-1, 0)
	poolCh = make(chan poolTask, 64)
	for range poolN {
		go func() {
			for t := range poolCh {
				t.f(t.lo, t.hi)
				t.wg.Done()
			}
		}()
	}
}

// parallel runs f over [0, n) split into at most one range per core, each
// at least grain long; the caller runs the first range itself. f must not
// call parallel (the pool's goroutines would wait on each other).
func parallel(n, grain int, f func(lo, hi int)) {
	poolOnce.Do(poolStart)
	parts := min(poolN+1, n/max(grain, 1))
	if parts <= 1 {
		if n > 0 {
			f(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(parts - 1)
	for p := 1; p < parts; p++ {
		poolCh <- poolTask{f, p * n / parts, (p + 1) * n / parts, &wg}
	}
	f(0, n/parts)
	wg.Wait()
}

// ---- GEMM ----

func (g *goKernels) abi() int32               { return abiVersion }
func (g *goKernels) gemmMr() int32            { return MR }
func (g *goKernels) gemmNr() int32            { return NR }
func (g *goKernels) warmup(scratch, reps int) {}

// gemmGroup is the most B panels one micro-kernel call covers.
const gemmGroup = 3

// panelGroups splits np B panels into groups for the micro-kernel: threes,
// but 2+2 rather than 3+1 (a one-panel tile has 4 accumulators, too few to
// hide the FMA latency; Winograd's blocks often have 4 panels). group
// returns the first panel and the count of group gi.
func panelGroups(np int) (ng int, group func(gi int) (p0, nb int)) {
	threes, rest := np/3, (np%3+1)/2 // rest: groups of at most 2 after the threes
	if np%3 == 1 && np >= 4 {
		threes, rest = (np-4)/3, 2
	}
	return threes + rest, func(gi int) (int, int) {
		if gi < threes {
			return 3 * gi, 3
		}
		p0 := 3*threes + 2*(gi-threes)
		return p0, min(2, np-p0)
	}
}

// gemm: the contract of kernels.wasm's gemm (ops.go, Gemm). The tile grid
// (groups of gemmGroup B panels × A panels) is split over the cores by
// column groups, or by A panels when there are too few groups.
func (g *goKernels) gemm(ap, bp, c []float32, ldc, m, n, k int, bias, res []float32, flags int) {
	if m == 0 || n == 0 {
		return
	}
	ng, _ := panelGroups((n + NR - 1) / NR)
	mp := (m + MR - 1) / MR
	work := m * n * k
	poolOnce.Do(poolStart)
	switch {
	case work < 1<<16:
		g.gemmBlock(ap, bp, c, ldc, m, n, k, bias, res, flags, 0, ng, 0, mp)
	case ng >= 2*(poolN+1) || ng >= mp:
		parallel(ng, 1, func(lo, hi int) { g.gemmBlock(ap, bp, c, ldc, m, n, k, bias, res, flags, lo, hi, 0, mp) })
	default:
		parallel(mp, 1, func(lo, hi int) { g.gemmBlock(ap, bp, c, ldc, m, n, k, bias, res, flags, 0, ng, lo, hi) })
	}
}

// gemmBatch: count GEMMs of one shape (kernels.wasm's gemm_batch), the
// items split over the cores.
func (g *goKernels) gemmBatch(count int, ap []float32, sa int, bp []float32, sb int, c []float32, sc, ldc, m, n, k int) {
	if count == 0 || m == 0 || n == 0 {
		return
	}
	if count == 1 {
		g.gemm(ap, bp, c, ldc, m, n, k, nil, nil, 0)
		return
	}
	ng, _ := panelGroups((n + NR - 1) / NR)
	mp := (m + MR - 1) / MR
	grain := 1
	if m*n*k < 1<<16 {
		grain = count
	}
	parallel(count, grain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g.gemmBlock(ap[i*sa:], bp[i*sb:], c[i*sc:], ldc, m, n, k, nil, nil, 0, 0, ng, 0, mp)
		}
	})
}

// gemmBlock computes the tiles of column groups [g0, g1) and A panels
// [i0, i1). Whole tiles are written by the micro-kernel straight into C
// (after C is set to bias + residual, when there are any, so the kernel
// adds to it), a column of them per call; edge tiles go through a local
// tile and the epilogue here.
func (g *goKernels) gemmBlock(ap, bp, c []float32, ldc, m, n, k int, bias, res []float32, flags, g0, g1, i0, i1 int) {
	const tw = gemmGroup * NR
	var tile [MR * tw]float32
	_, group := panelGroups((n + NR - 1) / NR)
	rowBias, colBias := flags&1 != 0 && bias != nil, flags&1 == 0 && flags&2 != 0 && bias != nil
	resAlias := res != nil && unsafe.SliceData(res) == unsafe.SliceData(c)
	epi := rowBias || colBias || res != nil
	full := min(i1, m/MR) // A panels [i0, full) have MR rows
	for gi := g0; gi < g1; gi++ {
		p0, nb := group(gi)
		j0 := p0 * NR
		cols := min(nb*NR, n-j0)
		pb := bp[j0*k:]
		ip := i0
		if cols == nb*NR && full > i0 {
			r0, r1 := i0*MR, full*MR
			if epi {
				for r := r0; r < r1; r++ {
					row := c[r*ldc+j0 : r*ldc+j0+cols]
					if res != nil && !resAlias {
						copy(row, res[r*ldc+j0:])
					} else if res == nil {
						clear(row)
					}
					if rowBias {
						b := bias[r]
						for l := range row {
							row[l] += b
						}
					} else if colBias {
						bb := bias[j0 : j0+cols]
						for l := range row {
							row[l] += bb[l]
						}
					}
				}
			}
			g.tiles(ap[r0*k:], pb, k, nb, c[r0*ldc+j0:], ldc, epi, full-i0)
			ip = full
		}
		for ; ip < i1; ip++ {
			r0 := ip * MR
			rows := min(MR, m-r0)
			g.tiles(ap[r0*k:], pb, k, nb, tile[:], tw, false, 1)
			for r := range rows {
				row := c[(r0+r)*ldc+j0 : (r0+r)*ldc+j0+cols]
				tr := tile[r*tw : r*tw+cols]
				for l := range row {
					v := tr[l]
					if rowBias {
						v += bias[r0+r]
					} else if colBias {
						v += bias[j0+l]
					}
					if res != nil {
						v += res[(r0+r)*ldc+j0+l]
					}
					row[l] = v
				}
			}
		}
	}
}

// tiles computes mp tiles of MR × nb·NR, the products of mp consecutive
// packed A panels and nb packed B panels, into c (row stride ldc floats,
// the tiles MR rows apart), adding to c when acc is set.
func (g *goKernels) tiles(ap, bp []float32, k, nb int, c []float32, ldc int, acc bool, mp int) {
	if k == 0 {
		if !acc {
			for r := range mp * MR {
				clear(c[r*ldc : r*ldc+nb*NR])
			}
		}
		return
	}
	if g.asm {
		// The kernel reads mp·MR·k floats of A, nb·NR·k of B and writes the
		// whole tiles: the slices must cover them (Go would not check).
		_ = ap[mp*MR*k-1]
		_ = bp[nb*NR*k-1]
		_ = c[(mp*MR-1)*ldc+nb*NR-1]
		gemmTileAsm(ap, bp, k, NR*k, nb, c, ldc, acc, mp)
		return
	}
	for i := range mp {
		for p := range nb {
			gemmTileGo(ap[i*MR*k:], bp[p*NR*k:], k, c[i*MR*ldc+p*NR:], ldc, acc)
		}
	}
}

// gemmTileGo is the portable micro-kernel: one MR×NR tile.
func gemmTileGo(ap, bp []float32, k int, c []float32, ldc int, acc bool) {
	var s [MR][NR]float32
	ap = ap[:MR*k]
	bp = bp[:NR*k]
	for kk := 0; kk < k; kk++ {
		a := (*[MR]float32)(ap[kk*MR:])
		b := (*[NR]float32)(bp[kk*NR:])
		for r := range MR {
			ar := a[r]
			sr := &s[r]
			for l := range NR {
				sr[l] += ar * b[l]
			}
		}
	}
	for r := range MR {
		row := (*[NR]float32)(c[r*ldc:])
		for l := range NR {
			if acc {
				row[l] += s[r][l]
			} else {
				row[l] = s[r][l]
			}
		}
	}
}

// ---- packing ----

func (g *goKernels) packA(a []float32, lda, m, k int, ap []float32) {
	parallel((m+MR-1)/MR, max(1, 4096/max(k, 1)), func(lo, hi int) {
		for ip := lo; ip < hi; ip++ {
			panel := ap[ip*MR*k : (ip+1)*MR*k]
			if i := ip * MR; i+MR <= m && MR == 4 {
				// A whole panel: the four rows interleaved, one k step at a time.
				r0, r1 := a[i*lda:i*lda+k], a[(i+1)*lda:(i+1)*lda+k]
				r2, r3 := a[(i+2)*lda:(i+2)*lda+k], a[(i+3)*lda:(i+3)*lda+k]
				for kk := range k {
					*(*[4]float32)(panel[kk*4:]) = [4]float32{r0[kk], r1[kk], r2[kk], r3[kk]}
				}
				continue
			}
			for r := range MR {
				i := ip*MR + r
				if i >= m {
					for kk := range k {
						panel[kk*MR+r] = 0
					}
					continue
				}
				row := a[i*lda : i*lda+k]
				for kk, v := range row {
					panel[kk*MR+r] = v
				}
			}
		}
	})
}

func (g *goKernels) packAt(at []float32, ldat, m, k int, ap []float32) {
	for ip := 0; ip < (m+MR-1)/MR; ip++ {
		panel := ap[ip*MR*k : (ip+1)*MR*k]
		i0 := ip * MR
		w := min(MR, m-i0)
		for kk := range k {
			d := panel[kk*MR : kk*MR+MR]
			if w == MR {
				*(*[MR]float32)(d) = *(*[MR]float32)(at[kk*ldat+i0:])
				continue
			}
			copy(d, at[kk*ldat+i0:kk*ldat+i0+w])
			clear(d[w:])
		}
	}
}

func (g *goKernels) packB(b []float32, ldb, k, n int, bp []float32) {
	parallel((n+NR-1)/NR, max(1, 4096/max(k, 1)), func(lo, hi int) {
		for jp := lo; jp < hi; jp++ {
			panel := bp[jp*NR*k : (jp+1)*NR*k]
			j0 := jp * NR
			w := min(NR, n-j0)
			for kk := range k {
				d := panel[kk*NR : kk*NR+NR]
				if w == NR {
					move8((*[NR]float32)(d), (*[NR]float32)(b[kk*ldb+j0:]))
					continue
				}
				copy(d, b[kk*ldb+j0:kk*ldb+j0+w])
				clear(d[w:])
			}
		}
	})
}

func (g *goKernels) packBt(bt []float32, ldbt, n, k int, bp []float32) {
	parallel((n+NR-1)/NR, max(1, 4096/max(k, 1)), func(lo, hi int) {
		for jp := lo; jp < hi; jp++ {
			panel := bp[jp*NR*k : (jp+1)*NR*k]
			for l := range NR {
				j := jp*NR + l
				if j >= n {
					for kk := range k {
						panel[kk*NR+l] = 0
					}
					continue
				}
				row := bt[j*ldbt : j*ldbt+k]
				for kk, v := range row {
					panel[kk*NR+l] = v
				}
			}
		}
	})
}

// move8 copies 8 floats element by element: an array assignment through
// pointers compiles to a memmove call (the arrays might overlap), which
// cost more than the copy in the packing loops.
func move8(d, s *[NR]float32) {
	for l := range d {
		d[l] = s[l]
	}
}

// im2col: bp[j/8][kk][j%8] = xp[(koff[kk]+pixoff[j])/4] (byte offsets, as
// the wasm kernel takes them); a panel of 8 consecutive pixels is a copy.
func (g *goKernels) im2col(xp []float32, koff, pixoff []int32, k, npix int, bp []float32) {
	parallel(npix/NR, max(1, 2048/max(k, 1)), func(lo, hi int) {
		for jp := lo; jp < hi; jp++ {
			var o [NR]int
			run := true
			for l := range NR {
				o[l] = int(pixoff[jp*NR+l]) / 4
				run = run && o[l] == o[0]+l
			}
			panel := bp[jp*NR*k : (jp+1)*NR*k]
			for kk := range k {
				base := int(koff[kk]) / 4
				d := (*[NR]float32)(panel[kk*NR:])
				if run {
					move8(d, (*[NR]float32)(xp[base+o[0]:]))
					continue
				}
				for l := range NR {
					d[l] = xp[base+o[l]]
				}
			}
		}
	})
}

// col2im: see kernels.wasm's col2im (ops.go, Col2imTables); channels split
// over the cores.
func (g *goKernels) col2im(cols []float32, tab []int32, bias, out []float32) {
	O, KH, KW, W, OH, OW, S, ldc := int(tab[0]), int(tab[1]), int(tab[2]), int(tab[4]), int(tab[5]), int(tab[6]), int(tab[7]), int(tab[8])
	psz := OH * OW
	parallel(O, 1, func(lo, hi int) {
		for oc := lo; oc < hi; oc++ {
			plane := out[oc*psz : (oc+1)*psz]
			b := float32(0)
			if bias != nil {
				b = bias[oc]
			}
			for i := range plane {
				plane[i] = b
			}
			src := oc * KH * KW * ldc
			for ky := range KH {
				iy0, iy1, oy0 := int(tab[9+3*ky]), int(tab[10+3*ky]), int(tab[11+3*ky])
				for kx := range KW {
					ct := 9 + 3*KH + 3*kx
					ix0, ix1, ox0 := int(tab[ct]), int(tab[ct+1]), int(tab[ct+2])
					nx := ix1 - ix0
					oy := oy0
					for iy := iy0; iy < iy1; iy++ {
						sp := cols[src+iy*W+ix0 : src+iy*W+ix0+nx]
						dp := oy*OW + ox0
						if S == 1 {
							d := plane[dp : dp+nx]
							for i, v := range sp {
								d[i] += v
							}
						} else {
							for i, v := range sp {
								plane[dp+i*S] += v
							}
						}
						oy += S
					}
					src += ldc
				}
			}
		}
	})
}

// ---- Winograd F(2x2, 3x3) transforms (Lavin & Gray 2016; winograd.go) ----

// winogradIn: V = Bᵀ d B per tile and channel, written as 16 packed B
// operands (the layout of kernels.wasm's winograd_in), panels of 8 tiles
// split over the cores.
func (g *goKernels) winogradIn(xp []float32, tab []int32, ntiles, planes, pstride, wp int, vp []float32, vstride int) {
	parallel(ntiles/NR, 1, func(lo, hi int) {
		for jp := lo; jp < hi; jp++ {
			var o [NR]int
			for l := range NR {
				o[l] = int(tab[jp*NR+l]) / 4
			}
			dst := jp * NR * planes
			if g.asm && planes > 0 {
				// The gathers read up to 3 rows and 3 columns past each
				// tile's corner in every plane, and the stores write
				// 16 rows of the panel: in range, as ops.go checked.
				var idx [NR]int32
				for l := range NR {
					idx[l] = int32(o[l])
				}
				_ = vp[15*vstride+dst+NR*planes-1]
				last := (planes-1)*pstride + 3*wp + 3
				for l := range NR {
					_ = xp[o[l]+last]
				}
				winoInAVX2(&xp[0], &idx[0], planes, 4*pstride, 4*wp, &vp[dst], 4*vstride)
				continue
			}
			for i := range planes {
				for l := range NR {
					s := xp[o[l]+i*pstride:]
					var d [4][4]float32
					for r := range 4 {
						row := s[r*wp : r*wp+4]
						// d·B on each row: [d0-d2, d1+d2, d2-d1, d1-d3]
						d[r] = [4]float32{row[0] - row[2], row[1] + row[2], row[2] - row[1], row[1] - row[3]}
					}
					at := dst + NR*i + l
					for c := range 4 {
						// Bᵀ on the columns: rows [r0-r2, r1+r2, r2-r1, r1-r3]
						vp[(0+c)*vstride+at] = d[0][c] - d[2][c]
						vp[(4+c)*vstride+at] = d[1][c] + d[2][c]
						vp[(8+c)*vstride+at] = d[2][c] - d[1][c]
						vp[(12+c)*vstride+at] = d[1][c] - d[3][c]
					}
				}
			}
		}
	})
}

// winogradOut: Y = Aᵀ M A per tile and output channel with the epilogue
// (bias per tile row, residual, cropping), as kernels.wasm's winograd_out;
// groups of four tiles split over the cores.
func (g *goKernels) winogradOut(m []float32, ldm, o, ntiles int, tab, btab []int32, bias, res, out []float32, plane, ow int) {
	parallel((ntiles+NR-1)/NR, 1, func(lo, hi int) {
		for j := lo * NR; j < min(hi*NR, ntiles); j++ {
			if j%NR == 0 && g.asm && g.winoOutRun(m, ldm, o, j, ntiles, tab, btab, bias, res, out, plane, ow) {
				j += NR - 1
				continue
			}
			t := int(tab[j])
			off := (t &^ 3) / 4
			bo := int(btab[j]) / 4
			for oc := range o {
				mr := m[16*oc*ldm+j:]
				var s0, s1 [4]float32
				for c := range 4 {
					m0, m1, m2, m3 := mr[c*ldm], mr[(4+c)*ldm], mr[(8+c)*ldm], mr[(12+c)*ldm]
					s0[c] = m0 + m1 + m2
					s1[c] = m1 - m2 - m3
				}
				y := [4]float32{s0[0] + s0[1] + s0[2], s0[1] - s0[2] - s0[3], s1[0] + s1[1] + s1[2], s1[1] - s1[2] - s1[3]}
				b := float32(0)
				if bias != nil {
					b = bias[bo+oc]
				}
				base := oc*plane + off
				put := func(at int, v float32) {
					v += b
					if res != nil {
						v += res[at]
					}
					out[at] = v
				}
				put(base, y[0])
				if t&1 == 0 {
					put(base+1, y[1])
				}
				if t&2 == 0 {
					put(base+ow, y[2])
					if t&1 == 0 {
						put(base+ow+1, y[3])
					}
				}
			}
		}
	})
}

// winoOutRun runs winoOutAVX2 on tiles j..j+7 when they are the common
// case it handles (one tile row, uncropped, one bias row), and says so.
func (g *goKernels) winoOutRun(m []float32, ldm, o, j, ntiles int, tab, btab []int32, bias, res, out []float32, plane, ow int) bool {
	if j+NR > ntiles || o == 0 {
		return false
	}
	t0, b0 := tab[j], btab[j]
	for l := range NR {
		if tab[j+l] != t0+int32(8*l) || btab[j+l] != b0 {
			return false
		}
	}
	if t0&3 != 0 {
		return false
	}
	off := int(t0) / 4
	// Reads of M and the residual, writes of out: in range (ops.go checked
	// every tile's span; these make Go check the block's).
	_ = m[(16*o-1)*ldm+j+NR-1]
	last := (o-1)*plane + off + ow + 2*NR - 1
	_ = out[last]
	var pb, pr *float32
	if bias != nil {
		_ = bias[int(b0)/4+o-1]
		pb = &bias[int(b0)/4]
	}
	if res != nil {
		_ = res[last]
		pr = &res[off]
	}
	winoOutAVX2(&m[j], 4*ldm, o, &out[off], 4*plane, 4*ow, pb, pr)
	return true
}

// ---- layout ----

func (g *goKernels) transpose(src, dst []float32, nb, rows, cols int) {
	const bs = 32
	parallel(nb*((rows+bs-1)/bs), max(1, 4096/max(bs*cols, 1)), func(lo, hi int) {
		rb := (rows + bs - 1) / bs
		for t := lo; t < hi; t++ {
			b, r0 := t/rb, (t%rb)*bs
			s := src[b*rows*cols : (b+1)*rows*cols]
			d := dst[b*rows*cols : (b+1)*rows*cols]
			for c0 := 0; c0 < cols; c0 += bs {
				for r := r0; r < min(r0+bs, rows); r++ {
					for c := c0; c < min(c0+bs, cols); c++ {
						d[c*rows+r] = s[r*cols+c]
					}
				}
			}
		}
	})
}

func (g *goKernels) upsample2x(x, out []float32, planes, h, w int) {
	parallel(planes, max(1, 8192/max(h*w, 1)), func(lo, hi int) {
		for p := lo; p < hi; p++ {
			for y := range h {
				src := x[(p*h+y)*w : (p*h+y+1)*w]
				d := out[(p*2*h+2*y)*2*w : (p*2*h+2*y+1)*2*w]
				for i, v := range src {
					d[2*i], d[2*i+1] = v, v
				}
				copy(out[(p*2*h+2*y+1)*2*w:(p*2*h+2*y+2)*2*w], d)
			}
		}
	})
}

func (g *goKernels) copyRows(src []float32, lds int, dst []float32, ldd, rows, n int) {
	parallel(rows, max(1, 16384/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(dst[r*ldd:r*ldd+n], src[r*lds:r*lds+n])
		}
	})
}

func (g *goKernels) pad(x, xp []float32, planes, h, w, hp, wp, top, left int) {
	parallel(planes, max(1, 8192/max(hp*wp, 1)), func(lo, hi int) {
		for p := lo; p < hi; p++ {
			d := xp[p*hp*wp : (p+1)*hp*wp]
			clear(d[:top*wp])
			for y := range h {
				row := d[(top+y)*wp : (top+y+1)*wp]
				clear(row[:left])
				copy(row[left:left+w], x[(p*h+y)*w:(p*h+y+1)*w])
				clear(row[left+w:])
			}
			clear(d[(top+h)*wp:])
		}
	})
}

// ---- elementwise ----

const elemGrain = 1 << 14

func (g *goKernels) add(a, b, out []float32, n int) {
	parallel(n, elemGrain, func(lo, hi int) {
		o, x, y := out[lo:hi], a[lo:hi], b[lo:hi]
		for i := range o {
			o[i] = x[i] + y[i]
		}
	})
}

func (g *goKernels) affine(x, out []float32, n int, s, o float32) {
	parallel(n, elemGrain, func(lo, hi int) {
		d, src := out[lo:hi], x[lo:hi]
		for i := range d {
			d[i] = src[i]*s + o
		}
	})
}

func (g *goKernels) silu(x, out []float32, n int) {
	parallel(n, elemGrain/4, func(lo, hi int) {
		d, src := out[lo:hi], x[lo:hi]
		if v := len(d) &^ 7; g.asm && v > 0 {
			normAVX2(&d[0], &src[0], v, 0, 0, 1, 0, 1)
			d, src = d[v:], src[v:]
		}
		for i := range d {
			d[i] = silu32(src[i])
		}
	})
}

func (g *goKernels) addChannel(x, e, out []float32, planes, plane int) {
	parallel(planes, max(1, elemGrain/max(plane, 1)), func(lo, hi int) {
		for p := lo; p < hi; p++ {
			v := e[p]
			d, s := out[p*plane:(p+1)*plane], x[p*plane:(p+1)*plane]
			for i := range d {
				d[i] = s[i] + v
			}
		}
	})
}

func (g *goKernels) scaleShift(x, e, out []float32, nb, c, plane int) {
	parallel(nb*c, max(1, elemGrain/max(plane, 1)), func(lo, hi int) {
		for p := lo; p < hi; p++ {
			b, ch := p/c, p%c
			sc, sh := 1+e[b*2*c+ch], e[b*2*c+c+ch]
			d, s := out[p*plane:(p+1)*plane], x[p*plane:(p+1)*plane]
			for i := range d {
				d[i] = s[i]*sc + sh
			}
		}
	})
}

// Constants of exp32, as the wasm kernels' vector exp (kernelgen: expv):
// x = n·ln2 + r, n = round(x·log2 e) by adding roundMagic, ln2 split so
// that n·ln2Hi is exact, e^r by the degree-7 Taylor polynomial and 2^n
// built in the exponent field.
const (
	expLog2e = 1.4426950408889634
	expLn2Hi = 0.693359375
	expLn2Lo = -2.12194440054690583e-4
	expMagic = 12582912 + 127
)

// exp32 is e^x in float32 for x clamped to [-87, 88], within a few ulps.
func exp32(x float32) float32 {
	t := min(max(x, -87), 88)
	n := t*expLog2e + expMagic
	r := n - expMagic
	r = r*-expLn2Lo + (r*-expLn2Hi + t)
	r2 := r * r
	a := r2*(0.5+r*(1.0/6)) + (1 + r)
	b := r2*(1.0/720+r*(1.0/5040)) + (1.0/24 + r*(1.0/120))
	p := r2*r2*b + a
	return p * math.Float32frombits(math.Float32bits(n)<<23)
}

func silu32(y float32) float32 { return y / (1 + exp32(-y)) }

// groupnorm: kernels.wasm's groupnorm (float64 shifted sums for the
// statistics, the affine in float32), (sample, group) pairs split over the
// cores.
func (g *goKernels) groupnorm(x, out, gamma, beta []float32, nb, c, per, groups int, eps float64, flags int, ss []float32) {
	cg := c / groups
	n := cg * per
	parallel(nb*groups, max(1, 8192/max(n, 1)), func(lo, hi int) {
		for bg := lo; bg < hi; bg++ {
			b, gi := bg/groups, bg%groups
			off := (b*c + gi*cg) * per
			seg := x[off : off+n]
			pivot := float64(seg[0])
			var s0, s1, q0, q1 float64
			i := 0
			if v := n &^ 7; g.asm && v > 0 {
				s0, q0 = sumsAVX2(&seg[0], v, pivot)
				i = v
			}
			for ; i+1 < n; i += 2 {
				d0, d1 := float64(seg[i])-pivot, float64(seg[i+1])-pivot
				s0 += d0
				s1 += d1
				q0 += d0 * d0
				q1 += d1 * d1
			}
			for ; i < n; i++ {
				d := float64(seg[i]) - pivot
				s0 += d
				q0 += d * d
			}
			sum, sq := s0+s1, q0+q1
			dx := sum / float64(n)
			mean := pivot + dx
			inv := 1 / math.Sqrt(math.Max(sq/float64(n)-dx*dx, 0)+eps)
			mhi := float32(mean)
			mlo := float32(mean - float64(mhi))
			for ch := range cg {
				chn := gi*cg + ch
				a := inv * float64(gamma[chn])
				o := 0.0
				if beta != nil {
					o = float64(beta[chn])
				}
				if ss != nil {
					sc := float64(1 + ss[b*2*c+chn])
					a *= sc
					o = o*sc + float64(ss[b*2*c+c+chn])
				}
				av, ov := float32(a), float32(o)
				src := seg[ch*per : (ch+1)*per]
				dst := out[off+ch*per : off+(ch+1)*per]
				if v := per &^ 7; g.asm && v > 0 {
					normAVX2(&dst[0], &src[0], v, mhi, mlo, av, ov, flags&1)
					src, dst = src[v:], dst[v:]
				}
				if flags&1 != 0 {
					for i, v := range src {
						dst[i] = silu32(((v-mhi)-mlo)*av + ov)
					}
				} else {
					for i, v := range src {
						dst[i] = ((v-mhi)-mlo)*av + ov
					}
				}
			}
		}
	})
}

// softmax: rows of softmax(row·scale) in place; weights below e^-80 are 0
// (as in the wasm kernel: far below resolution, and no subnormals).
func (g *goKernels) softmax(s []float32, rows, n, ld int, scale float32) {
	parallel(rows, max(1, 4096/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := s[r*ld : r*ld+n]
			v8 := 0
			if g.asm {
				v8 = n &^ 7
			}
			mx := float32(math.Inf(-1))
			if v8 > 0 {
				mx = maxAVX2(&row[0], v8)
			}
			for _, v := range row[v8:] {
				mx = max(mx, v)
			}
			msc := mx * scale
			var sum float32
			if v8 > 0 {
				sum = expAVX2(&row[0], &row[0], v8, scale, msc)
			}
			for i, v := range row[v8:] {
				arg := v*scale - msc
				e := float32(0)
				if arg > -80 {
					e = exp32(arg)
				}
				row[v8+i] = e
				sum += e
			}
			inv := 1 / sum
			if v8 > 0 {
				scaleAVX2(&row[0], v8, inv)
			}
			for i := range row[v8:] {
				row[v8+i] *= inv
			}
		}
	})
}

// softmaxCols: each column of x [rows, n] replaced by softmax(column)·scale.
func (g *goKernels) softmaxCols(x, out []float32, rows, n int, scale float32) {
	parallel(n, max(1, 4096/max(rows, 1)), func(lo, hi int) {
		for j := lo; j < hi; j++ {
			mx := float32(math.Inf(-1))
			for r := range rows {
				mx = max(mx, x[r*n+j])
			}
			var sum float32
			for r := range rows {
				ev := x[r*n+j] - mx
				e := float32(0)
				if ev > -80 {
					e = exp32(ev)
				}
				out[r*n+j] = e
				sum += e
			}
			f := scale / sum
			for r := range rows {
				out[r*n+j] *= f
			}
		}
	})
}

// rmsNorm: out = x / max(‖x[b,:,p]‖₂, eps) · g[ch] · scale.
func (g *goKernels) rmsNorm(x, out, gain []float32, nb, c, per int, scale, eps float32) {
	parallel(nb, 1, func(lo, hi int) {
		sq := make([]float32, per)
		for b := lo; b < hi; b++ {
			base := b * c * per
			clear(sq)
			for ch := range c {
				row := x[base+ch*per : base+(ch+1)*per]
				for p, v := range row {
					sq[p] += v * v
				}
			}
			for p, v := range sq {
				sq[p] = scale / max(float32(math.Sqrt(float64(v))), eps)
			}
			for ch := range c {
				gc := gain[ch]
				row := x[base+ch*per : base+(ch+1)*per]
				d := out[base+ch*per : base+(ch+1)*per]
				for p, v := range row {
					d[p] = v * sq[p] * gc
				}
			}
		}
	})
}

// f16ToF32: exact IEEE half expansion (NaNs quieted), as x448/float16.
func (g *goKernels) f16ToF32(src []uint16, dst []float32, n int) {
	parallel(n, elemGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst[i] = float16.Frombits(src[i]).Float32()
		}
	})
}
