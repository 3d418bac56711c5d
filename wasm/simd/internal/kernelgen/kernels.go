package kernelgen

import (
	"math"

	. "github.com/diffuse-web/diffuse/wasm/simd/internal/wasmenc"
)

// The kernels. Every pointer parameter is a byte address in the imported
// memory; "f32p" marks float32 arrays, "i32p" int32 arrays, "u16p" uint16
// arrays, "int" an i32 count or stride, "f32"/"f64" a float scalar. The Go
// bindings are generated from these tags. Counts are unsigned.
//
// Vector loads and stores never assume alignment (wasm allows any), and no
// kernel touches a byte outside the ranges its documentation (and the Go
// wrapper's bounds checks, in ops.go) allow.

// NR is the GEMM micro-tile width: two f32x4 vectors of B per k step.
const NR = 8

type gen struct {
	m      *Module
	mr     int  // GEMM micro-tile height (rows of packed A)
	unroll int  // GEMM k-loop unrolling
	fma    bool // GEMM accumulates with f32x4.relaxed_madd (relaxed SIMD)
}

func p(f *Func, name, kind string) Var {
	t := I32
	switch kind {
	case "f32":
		t = F32
	case "f64":
		t = F64
	}
	return f.Param(name, t, kind)
}

// abi returns a constant identifying this kernel set, so the Go side can
// refuse a stale kernels.wasm.
func (g *gen) abi(version int32) {
	f := g.m.Func("abi", true)
	f.Result(I32)
	f.Return(I(version))
}

// gemmTile exports the packed-panel sizes (gemm_mr, gemm_nr), so that the
// JS glue can split a GEMM's columns at panel boundaries without its own
// copy of the constants.
func (g *gen) gemmTile() {
	for _, e := range []struct {
		name string
		v    int
	}{{"gemm_mr", g.mr}, {"gemm_nr", NR}} {
		f := g.m.Func(e.name, true)
		f.Result(I32)
		f.Return(I(int32(e.v)))
	}
}

// gemm_batch: count independent GEMMs of one shape, item i being
// gemm(ap + i·sa, bp + i·sb, c + i·sc, ldc, m, n, k) with no bias or
// residual (strides in floats). Winograd's 16 products are one call, and
// the JS glue can hand whole items to helper threads.
func (g *gen) gemmBatch() {
	var gemm *Func
	for _, f := range g.m.Funcs() {
		if f.Name == "gemm" {
			gemm = f
		}
	}
	f := g.m.Func("gemm_batch", true)
	count, ap, sa, bp, sb := p(f, "count", "int"), p(f, "ap", "f32p"), p(f, "sa", "int"), p(f, "bp", "f32p"), p(f, "sb", "int")
	c, sc, ldc, M, N, K := p(f, "c", "f32p"), p(f, "sc", "int"), p(f, "ldc", "int"), p(f, "m", "int"), p(f, "n", "int"), p(f, "k", "int")
	i := f.Local(I32)
	at := func(base, stride Var) Expr { return Add(base, Shl(Mul(i, stride), I(2))) }
	f.For(i, I(0), count, 1, func() {
		f.Call(gemm, at(ap, sa), at(bp, sb), at(c, sc), ldc, M, N, K, I(0), I(0), I(0))
	})
}

// gemm: C[m,n] (row stride ldc floats) = A·B (+ bias) (+ res), with A packed
// as ceil(m/MR) panels of [k][MR] floats (rows past m zero) and B as
// ceil(n/8) panels of [k][8] (columns past n zero). flags bit 0: bias[i] per
// row (bias padded to a multiple of MR); bit 1: bias[j] per column (padded to
// a multiple of 8). res, when not 0, is added (same layout and ldc as C).
//
// Loop order: each 8-column panel of B (k·32 bytes, meant to stay in L1)
// against every MR-row panel of A; an MR×8 register tile of accumulators is
// kept in 2·MR v128 locals over the whole k loop (unrolled Options.Unroll
// times).
func (g *gen) gemm() {
	MR := g.mr
	f := g.m.Func("gemm", true)
	ap, bp, c := p(f, "ap", "f32p"), p(f, "bp", "f32p"), p(f, "c", "f32p")
	ldc, M, N, K := p(f, "ldc", "int"), p(f, "m", "int"), p(f, "n", "int"), p(f, "k", "int")
	bias, res, flags := p(f, "bias", "f32p"), p(f, "res", "f32p"), p(f, "flags", "int")

	j0, i0, pa, pb, kend := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	crow, rrow, ldcb, k4 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	acc := make([][2]Var, MR)
	for r := range acc {
		acc[r] = [2]Var{f.Local(V128), f.Local(V128)}
	}
	b0, b1, a := f.Local(V128), f.Local(V128), f.Local(V128)

	f.Set(ldcb, Shl(ldc, I(2)))
	f.Set(k4, Shl(K, I(2)))
	f.For(j0, I(0), N, NR, func() {
		f.For(i0, I(0), M, int32(MR), func() {
			f.IfElse(And(flags, I(1)), func() {
				for r := range MR {
					f.Set(acc[r][0], Load32Splat(Add(bias, Shl(i0, I(2))), uint32(4*r)))
					f.Set(acc[r][1], acc[r][0])
				}
			}, func() {
				f.IfElse(And(flags, I(2)), func() {
					f.Set(acc[0][0], V128Load(Add(bias, Shl(j0, I(2))), 0))
					f.Set(acc[0][1], V128Load(Add(bias, Shl(j0, I(2))), 16))
					for r := 1; r < MR; r++ {
						f.Set(acc[r][0], acc[0][0])
						f.Set(acc[r][1], acc[0][1])
					}
				}, func() {
					for r := range MR {
						f.Set(acc[r][0], Splat4(0))
						f.Set(acc[r][1], Splat4(0))
					}
				})
			})
			f.Set(pa, Add(ap, Mul(i0, k4)))
			f.Set(pb, Add(bp, Mul(j0, k4)))
			f.Set(kend, Add(pa, Mul(K, I(int32(4*MR)))))
			step := func(u int) {
				f.Set(b0, V128Load(pb, uint32(32*u)))
				f.Set(b1, V128Load(pb, uint32(32*u+16)))
				for r := range MR {
					f.Set(a, Load32Splat(pa, uint32(4*MR*u+4*r)))
					if g.fma {
						f.Set(acc[r][0], F4RelaxedMadd(a, b0, acc[r][0]))
						f.Set(acc[r][1], F4RelaxedMadd(a, b1, acc[r][1]))
					} else {
						f.Set(acc[r][0], F4Add(acc[r][0], F4Mul(a, b0)))
						f.Set(acc[r][1], F4Add(acc[r][1], F4Mul(a, b1)))
					}
				}
			}
			U := g.unroll
			f.While(func() Expr { return LeU(Add(pa, I(int32(4*MR*U))), kend) }, func() {
				for u := range U {
					step(u)
				}
				f.Inc(pa, int32(4*MR*U))
				f.Inc(pb, int32(32*U))
			})
			f.While(func() Expr { return LtU(pa, kend) }, func() {
				step(0)
				f.Inc(pa, int32(4*MR))
				f.Inc(pb, 32)
			})

			off := Shl(Add(Mul(i0, ldc), j0), I(2))
			f.Set(crow, Add(c, off))
			f.Set(rrow, Add(res, off))
			full := And(GeU(Sub(M, i0), I(int32(MR))), GeU(Sub(N, j0), I(NR)))
			f.IfElse(full, func() {
				f.If(Ne(res, I(0)), func() {
					for r := range MR {
						for h := range 2 {
							f.Set(acc[r][h], F4Add(acc[r][h], V128Load(rrow, uint32(16*h))))
						}
						f.Set(rrow, Add(rrow, ldcb))
					}
				})
				for r := range MR {
					f.V128Store(crow, 0, acc[r][0])
					f.V128Store(crow, 16, acc[r][1])
					if r+1 < MR {
						f.Set(crow, Add(crow, ldcb))
					}
				}
			}, func() {
				for r := range MR {
					f.If(LtU(Add(i0, I(int32(r))), M), func() {
						for l := range NR {
							f.If(LtU(Add(j0, I(int32(l))), N), func() {
								v := F4Lane(acc[r][l/4], l%4)
								f.IfElse(Ne(res, I(0)), func() {
									f.StoreF32(crow, uint32(4*l), Add(v, LoadF32(rrow, uint32(4*l))))
								}, func() {
									f.StoreF32(crow, uint32(4*l), v)
								})
							})
						}
					})
					f.Set(crow, Add(crow, ldcb))
					f.Set(rrow, Add(rrow, ldcb))
				}
			})
		})
	})
}

// transpose4 sets c[j] to column j of the 4x4 block whose rows are v[0..3].
func transpose4(f *Func, v, t, c []Var) {
	f.Set(t[0], Shuffle32(v[0], v[1], 0, 4, 1, 5))
	f.Set(t[1], Shuffle32(v[0], v[1], 2, 6, 3, 7))
	f.Set(t[2], Shuffle32(v[2], v[3], 0, 4, 1, 5))
	f.Set(t[3], Shuffle32(v[2], v[3], 2, 6, 3, 7))
	f.Set(c[0], Shuffle32(t[0], t[2], 0, 1, 4, 5))
	f.Set(c[1], Shuffle32(t[0], t[2], 2, 3, 6, 7))
	f.Set(c[2], Shuffle32(t[1], t[3], 0, 1, 4, 5))
	f.Set(c[3], Shuffle32(t[1], t[3], 2, 3, 6, 7))
}

// pack_a: A [m,k] row-major with row stride lda floats -> ceil(m/MR) panels
// of [k][MR] at ap, rows past m zero.
func (g *gen) packA() {
	MR := g.mr
	f := g.m.Func("pack_a", true)
	a, lda, M, K, ap := p(f, "a", "f32p"), p(f, "lda", "int"), p(f, "m", "int"), p(f, "k", "int"), p(f, "ap", "f32p")
	i0, kk, nv, dst, lda4 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	rp := f.Locals(I32, MR)
	f.Set(lda4, Shl(lda, I(2)))
	f.Set(dst, ap)
	f.For(i0, I(0), M, int32(MR), func() {
		for r := range MR {
			f.Set(rp[r], Add(a, Mul(Add(i0, I(int32(r))), lda4)))
		}
		f.Set(nv, Sub(M, i0))
		scalarFull := func() {
			f.For(kk, kk, K, 1, func() {
				for r := range MR {
					f.StoreF32(dst, uint32(4*r), LoadF32(rp[r], 0))
					f.Inc(rp[r], 4)
				}
				f.Inc(dst, int32(4*MR))
			})
		}
		f.IfElse(GeU(nv, I(int32(MR))), func() {
			f.Set(kk, I(0))
			if MR == 4 {
				v, t, c := f.Locals(V128, 4), f.Locals(V128, 4), f.Locals(V128, 4)
				f.While(func() Expr { return LeU(Add(kk, I(4)), K) }, func() {
					for r := range 4 {
						f.Set(v[r], V128Load(rp[r], 0))
						f.Inc(rp[r], 16)
					}
					transpose4(f, v, t, c)
					for j := range 4 {
						f.V128Store(dst, uint32(16*j), c[j])
					}
					f.Inc(dst, 64)
					f.Inc(kk, 4)
				})
			}
			scalarFull()
		}, func() {
			f.For(kk, I(0), K, 1, func() {
				for r := range MR {
					f.IfElse(LtU(I(int32(r)), nv), func() {
						f.StoreF32(dst, uint32(4*r), LoadF32(rp[r], 0))
					}, func() {
						f.StoreF32(dst, uint32(4*r), Fc(0))
					})
					f.Inc(rp[r], 4)
				}
				f.Inc(dst, int32(4*MR))
			})
		})
	})
}

// pack_b: B [k,n] row-major with row stride ldb -> ceil(n/8) panels of
// [k][8] at bp, columns past n zero.
func (g *gen) packB() {
	f := g.m.Func("pack_b", true)
	b, ldb, K, N, bp := p(f, "b", "f32p"), p(f, "ldb", "int"), p(f, "k", "int"), p(f, "n", "int"), p(f, "bp", "f32p")
	j0, kk, nv, src, dst, ldb4 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	f.Set(ldb4, Shl(ldb, I(2)))
	f.Set(dst, bp)
	f.For(j0, I(0), N, NR, func() {
		f.Set(src, Add(b, Shl(j0, I(2))))
		f.Set(nv, Sub(N, j0))
		f.IfElse(GeU(nv, I(NR)), func() {
			f.For(kk, I(0), K, 1, func() {
				f.V128Store(dst, 0, V128Load(src, 0))
				f.V128Store(dst, 16, V128Load(src, 16))
				f.Set(src, Add(src, ldb4))
				f.Inc(dst, 32)
			})
		}, func() {
			f.For(kk, I(0), K, 1, func() {
				for l := range NR {
					f.IfElse(LtU(I(int32(l)), nv), func() {
						f.StoreF32(dst, uint32(4*l), LoadF32(src, uint32(4*l)))
					}, func() {
						f.StoreF32(dst, uint32(4*l), Fc(0))
					})
				}
				f.Set(src, Add(src, ldb4))
				f.Inc(dst, 32)
			})
		})
	})
}

// pack_at: A given transposed, as at [k,m] row-major with row stride ldat
// (A[i,kk] = at[kk,i]) -> ceil(m/MR) panels of [k][MR] at ap, rows past m
// zero: each panel row is MR consecutive floats of a row of at.
func (g *gen) packAT() {
	MR := g.mr
	f := g.m.Func("pack_at", true)
	at, ldat, M, K, ap := p(f, "at", "f32p"), p(f, "ldat", "int"), p(f, "m", "int"), p(f, "k", "int"), p(f, "ap", "f32p")
	i0, kk, nv, src, dst, ld4 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	f.Set(ld4, Shl(ldat, I(2)))
	f.Set(dst, ap)
	f.For(i0, I(0), M, int32(MR), func() {
		f.Set(src, Add(at, Shl(i0, I(2))))
		f.Set(nv, Sub(M, i0))
		f.IfElse(GeU(nv, I(int32(MR))), func() {
			f.For(kk, I(0), K, 1, func() {
				l := 0
				for ; l+4 <= MR; l += 4 {
					f.V128Store(dst, uint32(4*l), V128Load(src, uint32(4*l)))
				}
				for ; l < MR; l++ {
					f.StoreF32(dst, uint32(4*l), LoadF32(src, uint32(4*l)))
				}
				f.Set(src, Add(src, ld4))
				f.Inc(dst, int32(4*MR))
			})
		}, func() {
			f.For(kk, I(0), K, 1, func() {
				for l := range MR {
					f.IfElse(LtU(I(int32(l)), nv), func() {
						f.StoreF32(dst, uint32(4*l), LoadF32(src, uint32(4*l)))
					}, func() {
						f.StoreF32(dst, uint32(4*l), Fc(0))
					})
				}
				f.Set(src, Add(src, ld4))
				f.Inc(dst, int32(4*MR))
			})
		})
	})
}

// pack_bt: B given transposed, as bt [n,k] row-major with row stride ldbt
// (B[kk,j] = bt[j,kk]) -> ceil(n/8) panels of [k][8] at bp, columns past n zero.
func (g *gen) packBT() {
	f := g.m.Func("pack_bt", true)
	bt, ldbt, N, K, bp := p(f, "bt", "f32p"), p(f, "ldbt", "int"), p(f, "n", "int"), p(f, "k", "int"), p(f, "bp", "f32p")
	j0, kk, nv, dst, ld4 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	rp := f.Locals(I32, NR)
	v, t, c := f.Locals(V128, 4), f.Locals(V128, 4), f.Locals(V128, 4)
	f.Set(ld4, Shl(ldbt, I(2)))
	f.Set(dst, bp)
	f.For(j0, I(0), N, NR, func() {
		for l := range NR {
			f.Set(rp[l], Add(bt, Mul(Add(j0, I(int32(l))), ld4)))
		}
		f.Set(nv, Sub(N, j0))
		f.IfElse(GeU(nv, I(NR)), func() {
			f.Set(kk, I(0))
			f.While(func() Expr { return LeU(Add(kk, I(4)), K) }, func() {
				for half := range 2 {
					for r := range 4 {
						f.Set(v[r], V128Load(rp[4*half+r], 0))
						f.Inc(rp[4*half+r], 16)
					}
					transpose4(f, v, t, c)
					for j := range 4 {
						f.V128Store(dst, uint32(32*j+16*half), c[j])
					}
				}
				f.Inc(dst, 128)
				f.Inc(kk, 4)
			})
			f.For(kk, kk, K, 1, func() {
				for l := range NR {
					f.StoreF32(dst, uint32(4*l), LoadF32(rp[l], 0))
					f.Inc(rp[l], 4)
				}
				f.Inc(dst, 32)
			})
		}, func() {
			f.For(kk, I(0), K, 1, func() {
				for l := range NR {
					f.IfElse(LtU(I(int32(l)), nv), func() {
						f.StoreF32(dst, uint32(4*l), LoadF32(rp[l], 0))
					}, func() {
						f.StoreF32(dst, uint32(4*l), Fc(0))
					})
					f.Inc(rp[l], 4)
				}
				f.Inc(dst, 32)
			})
		})
	})
}

// im2col: gathers the B operand of a convolution straight into packed
// panels: bp[j/8][kk][j%8] = *(f32*)(xp + koff[kk] + pixoff[j]) for kk < k,
// j < npix (a multiple of 8; koff and pixoff hold byte offsets). xp is the
// zero-padded input, so there are no bounds tests. A panel whose 8 pixels
// are consecutive in memory (stride 1, one output row) is copied with two
// vector loads per k; one that wraps to the next output row (two runs) with
// four loads and two bitselects; other panels are gathered lane by lane.
func (g *gen) im2col() {
	// The panels that are not one run of 8 floats go through a separate
	// function, so the contiguous loop keeps its registers.
	h := g.m.Func("im2col_panel", false)
	{
		f := h
		xp, kp, kend, pix, dst := p(f, "xp", "f32p"), p(f, "kp", "i32p"), p(f, "kend", "i32p"), p(f, "pix", "i32p"), p(f, "dst", "f32p")
		s, q, nbrk, sp, mono, o1 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
		m0, m1 := f.Local(V128), f.Local(V128)
		o := f.Locals(I32, NR)
		for l := range NR {
			f.Set(o[l], LoadI32(pix, uint32(4*l)))
		}
		// Two runs (the panel wraps from one output row to the next):
		// offsets increasing, one break at lane sp. Then lanes < sp come from
		// 8 floats at o[0], the others from 8 floats at o[sp]-sp, both inside
		// [o[0], o[7]] (increasing offsets), so inside the range the tables
		// were checked for.
		f.Set(nbrk, I(0))
		f.Set(sp, I(0))
		f.Set(mono, I(1))
		for l := 1; l < NR; l++ {
			brk := Ne(Sub(o[l], o[l-1]), I(4))
			f.Set(nbrk, Add(nbrk, brk))
			f.Set(sp, Add(sp, Mul(brk, I(int32(l)))))
			f.Set(mono, And(mono, GtU(o[l], o[l-1])))
		}
		f.IfElse(And(Eq(nbrk, I(1)), mono), func() {
			f.Set(m0, I4GtU(I4Splat(sp), I4(0, 1, 2, 3)))
			f.Set(m1, I4GtU(I4Splat(sp), I4(4, 5, 6, 7)))
			f.Set(o1, Sub(LoadI32(Add(pix, Shl(sp, I(2))), 0), Shl(sp, I(2))))
			f.While(func() Expr { return LtU(kp, kend) }, func() {
				f.Set(s, Add(xp, LoadI32(kp, 0)))
				f.Set(q, Add(s, o[0]))
				f.Set(s, Add(s, o1))
				f.V128Store(dst, 0, Bitselect(V128Load(q, 0), V128Load(s, 0), m0))
				f.V128Store(dst, 16, Bitselect(V128Load(q, 16), V128Load(s, 16), m1))
				f.Inc(kp, 4)
				f.Inc(dst, 32)
			})
		}, func() {
			f.While(func() Expr { return LtU(kp, kend) }, func() {
				f.Set(s, Add(xp, LoadI32(kp, 0)))
				for l := range NR {
					f.StoreF32(dst, uint32(4*l), LoadF32(Add(s, o[l]), 0))
				}
				f.Inc(kp, 4)
				f.Inc(dst, 32)
			})
		})
	}

	f := g.m.Func("im2col", true)
	xp, koff, pixoff := p(f, "xp", "f32p"), p(f, "koff", "i32p"), p(f, "pixoff", "i32p")
	K, npix, bp := p(f, "k", "int"), p(f, "npix", "int"), p(f, "bp", "f32p")
	j0, kp, kend, dst, s, contig := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	q := f.Local(I32)
	o := f.Locals(I32, NR)
	f.Set(dst, bp)
	f.Set(kend, Add(koff, Shl(K, I(2))))
	f.For(j0, I(0), npix, NR, func() {
		for l := range NR {
			f.Set(o[l], LoadI32(Add(pixoff, Shl(j0, I(2))), uint32(4*l)))
		}
		f.Set(contig, I(1))
		for l := 1; l < NR; l++ {
			f.Set(contig, And(contig, Eq(Sub(o[l], o[l-1]), I(4))))
		}
		f.Set(kp, koff)
		f.IfElse(contig, func() {
			f.Set(s, Add(xp, o[0]))
			f.While(func() Expr { return LtU(kp, kend) }, func() {
				f.Set(q, Add(s, LoadI32(kp, 0)))
				f.V128Store(dst, 0, V128Load(q, 0))
				f.V128Store(dst, 16, V128Load(q, 16))
				f.Inc(kp, 4)
				f.Inc(dst, 32)
			})
		}, func() {
			f.Call(h, xp, koff, kend, Add(pixoff, Shl(j0, I(2))), dst)
			f.Set(dst, Add(dst, Shl(K, I(5))))
		})
	})
}

// transpose: nb matrices src [rows, cols] -> dst [cols, rows], 4x4 blocks
// through registers (the layout change of to_tokens / from_tokens).
func (g *gen) transpose() {
	f := g.m.Func("transpose", true)
	src, dst, nb, rows, cols := p(f, "src", "f32p"), p(f, "dst", "f32p"), p(f, "nb", "int"), p(f, "rows", "int"), p(f, "cols", "int")
	b, r0, c0, sp, dp, rows4, cols4, i := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	v, t, c := f.Locals(V128, 4), f.Locals(V128, 4), f.Locals(V128, 4)
	f.Set(rows4, Shl(rows, I(2)))
	f.Set(cols4, Shl(cols, I(2)))
	// in(r, c) and out(c, r) are the byte addresses of src[r,c], dst[c,r].
	in := func(r, c Expr) Expr { return Add(sp, Add(Mul(r, cols4), Shl(c, I(2)))) }
	out := func(c, r Expr) Expr { return Add(dp, Add(Mul(c, rows4), Shl(r, I(2)))) }
	f.Set(sp, src)
	f.Set(dp, dst)
	f.For(b, I(0), nb, 1, func() {
		f.Set(r0, I(0))
		f.While(func() Expr { return LeU(Add(r0, I(4)), rows) }, func() {
			f.Set(c0, I(0))
			f.While(func() Expr { return LeU(Add(c0, I(4)), cols) }, func() {
				for j := range 4 {
					f.Set(v[j], V128Load(in(Add(r0, I(int32(j))), c0), 0))
				}
				transpose4(f, v, t, c)
				for j := range 4 {
					f.V128Store(out(Add(c0, I(int32(j))), r0), 0, c[j])
				}
				f.Inc(c0, 4)
			})
			f.For(c0, c0, cols, 1, func() {
				for j := range 4 {
					f.StoreF32(out(c0, Add(r0, I(int32(j)))), 0, LoadF32(in(Add(r0, I(int32(j))), c0), 0))
				}
			})
			f.Inc(r0, 4)
		})
		f.For(r0, r0, rows, 1, func() {
			f.For(i, I(0), cols, 1, func() {
				f.StoreF32(out(i, r0), 0, LoadF32(in(r0, i), 0))
			})
		})
		f.Set(sp, Add(sp, Mul(rows, cols4)))
		f.Set(dp, Add(dp, Mul(rows, cols4)))
	})
}

// upsample2x: planes of [h, w] -> [2h, 2w], each value repeated in a 2x2
// block (nearest-neighbour upsampling).
func (g *gen) upsample2x() {
	f := g.m.Func("upsample2x", true)
	x, out, planes, h, w := p(f, "x", "f32p"), p(f, "out", "f32p"), p(f, "planes", "int"), p(f, "h", "int"), p(f, "w", "int")
	row, rows, sp, dp, end, vend, ow4 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	v, lo, hi := f.Local(V128), f.Local(V128), f.Local(V128)
	f.Set(ow4, Shl(w, I(3)))
	f.Set(rows, Mul(planes, h))
	f.Set(sp, x)
	f.Set(dp, out)
	f.For(row, I(0), rows, 1, func() {
		f.Set(end, Add(sp, Shl(w, I(2))))
		f.Set(vend, Add(sp, Shl(And(w, I(^3)), I(2))))
		f.While(func() Expr { return LtU(sp, vend) }, func() {
			f.Set(v, V128Load(sp, 0))
			f.Set(lo, Shuffle32(v, v, 0, 0, 1, 1))
			f.Set(hi, Shuffle32(v, v, 2, 2, 3, 3))
			f.V128Store(dp, 0, lo)
			f.V128Store(dp, 16, hi)
			f.V128Store(Add(dp, ow4), 0, lo)
			f.V128Store(Add(dp, ow4), 16, hi)
			f.Inc(sp, 16)
			f.Inc(dp, 32)
		})
		f.While(func() Expr { return LtU(sp, end) }, func() {
			f.Set(v, Load32Splat(sp, 0))
			f.StoreF64(dp, 0, D2Lane(v, 0))
			f.StoreF64(Add(dp, ow4), 0, D2Lane(v, 0))
			f.Inc(sp, 4)
			f.Inc(dp, 8)
		})
		f.Set(dp, Add(dp, ow4))
	})
}

// copy_rows: rows rows of n floats from src (row stride lds floats) to dst
// (row stride ldd), by memory.copy (concat, slices, reshapes).
func (g *gen) copyRows() {
	f := g.m.Func("copy_rows", true)
	src, lds, dst, ldd, rows, n := p(f, "src", "f32p"), p(f, "lds", "int"), p(f, "dst", "f32p"), p(f, "ldd", "int"), p(f, "rows", "int"), p(f, "n", "int")
	r := f.Local(I32)
	f.For(r, I(0), rows, 1, func() {
		f.MemoryCopy(Add(dst, Shl(Mul(r, ldd), I(2))), Add(src, Shl(Mul(r, lds), I(2))), Shl(n, I(2)))
	})
}

// col2im: the scatter-add half of a transposed convolution. cols holds the
// GEMM product Wᵀ·x: one row of h·w floats per (output channel oc, ky, kx),
// in that order. Every output plane oc [oh, ow] is set to bias[oc] (0 when
// bias is 0) and then receives, for each tap (ky, kx) and input pixel
// (iy, ix), cols[(oc, ky, kx), iy·w+ix] at (iy·s - pad + ky, ix·s - pad + kx)
// (torch.nn.ConvTranspose2d); rows of cols are ldc floats apart (h·w, or
// more when one GEMM made the rows of several samples side by side). tab is
// an int32 table written and checked by the Go side: [o, kh, kw, h, w, oh,
// ow, s, ldc], then (iy0, iy1, oy0) per ky and
// (ix0, ix1, ox0) per kx: the input rows/columns [iy0, iy1) whose outputs
// fall inside the plane and the output row/column of the first, so there are
// no bounds tests here. Stride 1 adds whole row segments as vectors.
func (g *gen) col2im() {
	f := g.m.Func("col2im", true)
	cols, tab, bias, out := p(f, "cols", "f32p"), p(f, "tab", "i32p"), p(f, "bias", "f32p"), p(f, "out", "f32p")
	O, KH, KW, H, W, OH, OW, S := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	oc, ky, kx, iy, plane, src, rowt, colt := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	iy1, oy, ix0, n, ox0, sp, dp, end, vend, s4, hw4, psz := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32),
		f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	bv := f.Local(V128)
	for i, v := range []Var{O, KH, KW, H, W, OH, OW, S} {
		f.Set(v, LoadI32(tab, uint32(4*i)))
	}
	f.Set(s4, Shl(S, I(2)))
	f.Set(hw4, Shl(LoadI32(tab, 32), I(2))) // ldc: the stride of cols rows
	f.Set(psz, Mul(OH, OW))
	f.Set(plane, out)
	f.Set(src, cols)
	f.For(oc, I(0), O, 1, func() {
		f.Set(bv, Splat4(0))
		f.If(Ne(bias, I(0)), func() {
			f.Set(bv, Load32Splat(Add(bias, Shl(oc, I(2))), 0))
		})
		f.Set(dp, plane)
		f.Set(end, Add(plane, Shl(psz, I(2))))
		f.Set(vend, Add(plane, Shl(And(psz, I(^3)), I(2))))
		f.While(func() Expr { return LtU(dp, vend) }, func() {
			f.V128Store(dp, 0, bv)
			f.Inc(dp, 16)
		})
		f.While(func() Expr { return LtU(dp, end) }, func() {
			f.Store32Lane(dp, 0, bv, 0)
			f.Inc(dp, 4)
		})
		f.Set(rowt, Add(tab, I(36)))
		f.For(ky, I(0), KH, 1, func() {
			f.Set(colt, Add(Add(tab, I(36)), Mul(KH, I(12))))
			f.For(kx, I(0), KW, 1, func() {
				f.Set(ix0, LoadI32(colt, 0))
				f.Set(n, Sub(LoadI32(colt, 4), ix0))
				f.Set(ox0, LoadI32(colt, 8))
				f.Set(iy1, LoadI32(rowt, 4))
				f.Set(oy, LoadI32(rowt, 8))
				f.For(iy, LoadI32(rowt, 0), iy1, 1, func() {
					f.Set(sp, Add(src, Shl(Add(Mul(iy, W), ix0), I(2))))
					f.Set(dp, Add(plane, Shl(Add(Mul(oy, OW), ox0), I(2))))
					f.IfElse(Eq(S, I(1)), func() {
						f.Set(end, Add(dp, Shl(n, I(2))))
						f.Set(vend, Add(dp, Shl(And(n, I(^3)), I(2))))
						f.While(func() Expr { return LtU(dp, vend) }, func() {
							f.V128Store(dp, 0, F4Add(V128Load(dp, 0), V128Load(sp, 0)))
							f.Inc(sp, 16)
							f.Inc(dp, 16)
						})
						f.While(func() Expr { return LtU(dp, end) }, func() {
							f.StoreF32(dp, 0, Add(LoadF32(dp, 0), LoadF32(sp, 0)))
							f.Inc(sp, 4)
							f.Inc(dp, 4)
						})
					}, func() {
						f.Set(end, Add(sp, Shl(n, I(2))))
						f.While(func() Expr { return LtU(sp, end) }, func() {
							f.StoreF32(dp, 0, Add(LoadF32(dp, 0), LoadF32(sp, 0)))
							f.Inc(sp, 4)
							f.Set(dp, Add(dp, s4))
						})
					})
					f.Set(oy, Add(oy, S))
				})
				f.Set(src, Add(src, hw4))
				f.Inc(colt, 12)
			})
			f.Inc(rowt, 12)
		})
		f.Set(plane, Add(plane, Shl(psz, I(2))))
	})
}

// pad: copies planes of [h,w] from x into planes of [hp,wp] at xp with top
// rows and left columns of zeros before and zeros after. The rows are
// copied by vector loads and stores with the borders zeroed by scalar
// stores between them (memory.copy and memory.fill per row, the first
// version, cost a call into the engine each: 27 ns per row in V8, 2.5 times
// this kernel's time on a 64x28x28 input); the zero runs above and below
// the rows of a plane are one memory.fill each.
func (g *gen) pad() {
	f := g.m.Func("pad", true)
	x, xp, planes := p(f, "x", "f32p"), p(f, "xp", "f32p"), p(f, "planes", "int")
	h, w, hp, wp := p(f, "h", "int"), p(f, "w", "int"), p(f, "hp", "int"), p(f, "wp", "int")
	top, left := p(f, "top", "int"), p(f, "left", "int")
	pl, y, src, dst, end, vend, wp4, right4 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	f.Set(wp4, Shl(wp, I(2)))
	f.Set(right4, Shl(Sub(Sub(wp, left), w), I(2)))
	f.Set(src, x)
	f.Set(dst, xp)
	f.For(pl, I(0), planes, 1, func() {
		f.MemoryFill(dst, I(0), Mul(top, wp4))
		f.Set(dst, Add(dst, Mul(top, wp4)))
		f.For(y, I(0), h, 1, func() {
			f.Set(end, Add(dst, Shl(left, I(2))))
			f.While(func() Expr { return LtU(dst, end) }, func() {
				f.StoreF32(dst, 0, Fc(0))
				f.Inc(dst, 4)
			})
			f.Set(end, Add(src, Shl(w, I(2))))
			f.Set(vend, Add(src, Shl(And(w, I(^3)), I(2))))
			f.While(func() Expr { return LtU(src, vend) }, func() {
				f.V128Store(dst, 0, V128Load(src, 0))
				f.Inc(src, 16)
				f.Inc(dst, 16)
			})
			f.While(func() Expr { return LtU(src, end) }, func() {
				f.StoreF32(dst, 0, LoadF32(src, 0))
				f.Inc(src, 4)
				f.Inc(dst, 4)
			})
			f.Set(end, Add(dst, right4))
			f.While(func() Expr { return LtU(dst, end) }, func() {
				f.StoreF32(dst, 0, Fc(0))
				f.Inc(dst, 4)
			})
		})
		f.MemoryFill(dst, I(0), Mul(Sub(Sub(hp, top), h), wp4))
		f.Set(dst, Add(dst, Mul(Sub(Sub(hp, top), h), wp4)))
	})
}

// expv holds the temporaries of the vector exp and its constants, splatted
// into locals once where newExp is called (at a function's top level, before
// its loops) rather than as v128.const inside them. That alone measured no
// clear difference (within the noise of the shared 2-core box); the fused
// multiply-adds of the relaxed module (mad) took SiLU from about 1.3 to 0.9
// ns per element and the row softmax from 1.4 to 1.1 (with its reciprocal,
// below), best of 4 runs in Node on that box.
type expv struct {
	t, n, r, r2, a, b                     Var
	lo, hi, l2e, magic, nln2h, nln2l, one Var
	c2, c6, c24, c120, c720, c5040        Var
	fma                                   bool // multiply-adds as relaxed_madd
}

func (g *gen) newExp(f *Func) *expv {
	v := func(c float64) Var {
		l := f.Local(V128)
		f.Set(l, Splat4(float32(c)))
		return l
	}
	e := &expv{t: f.Local(V128), n: f.Local(V128), r: f.Local(V128), r2: f.Local(V128), a: f.Local(V128), b: f.Local(V128), fma: g.fma}
	e.lo, e.hi, e.l2e, e.magic = v(expMin), v(expMax), v(log2e), v(roundMagic)
	e.nln2h, e.nln2l, e.one = v(-ln2Hi), v(-ln2Lo), v(1)
	e.c2, e.c6, e.c24, e.c120, e.c720, e.c5040 = v(1.0/2), v(1.0/6), v(1.0/24), v(1.0/120), v(1.0/720), v(1.0/5040)
	return e
}

// mad is a·b + c: one relaxed_madd in the relaxed module (a fused
// multiply-add where the CPU has one: one rounding instead of two), else a
// multiply and an add (the same value as before the relaxed module used it).
func (e *expv) mad(a, b, c Expr) Expr {
	if e.fma {
		return F4RelaxedMadd(a, b, c)
	}
	return F4Add(F4Mul(a, b), c)
}

// Constants of the vector exp: x = n·ln2 + r with n = round(x·log2 e),
// ln2 split in a high part with few significant bits (so n·ln2Hi is exact
// for |n| < 2^15) and the rest. Adding roundMagic = 1.5·2^23 + 127 to x·log2e
// rounds it to an integer (the float32 sum has no bits below 1) and leaves
// n + 127 in the low mantissa bits, so one shift by 23 makes the float32 2^n.
const (
	log2e      = 1.4426950408889634
	ln2Hi      = 0.693359375
	ln2Lo      = -2.12194440054690583e-4
	expMin     = -87.0 // keeps 2^n normal
	expMax     = 88.0  // keeps 2^n·e^r finite
	roundMagic = 12582912 + 127
)

// exp returns e^x for each lane, with x clamped to [expMin, expMax]. e^r on
// |r| <= ln2/2 is the degree-7 Taylor polynomial (truncation error below
// 0.35^8/8! ≈ 5e-9), evaluated in Estrin's scheme (a shorter dependency
// chain than Horner's), and 2^n is built in the exponent field, so the
// result is within a few float32 ulps of e^x.
func (e *expv) exp(f *Func, x Expr) Expr {
	f.Set(e.t, F4PMin(F4PMax(x, e.lo), e.hi))
	f.Set(e.n, e.mad(e.t, e.l2e, e.magic))
	f.Set(e.r, F4Sub(e.n, e.magic)) // n as a float
	f.Set(e.r, e.mad(e.r, e.nln2l, e.mad(e.r, e.nln2h, e.t)))
	f.Set(e.r2, F4Mul(e.r, e.r))
	lin := func(c0, c1 Var) Expr { return e.mad(e.r, c1, c0) }
	// p = (1 + r + r²(1/2 + r/6)) + r⁴((1/24 + r/120) + r²(1/720 + r/5040))
	f.Set(e.a, e.mad(e.r2, lin(e.c2, e.c6), F4Add(e.one, e.r)))
	f.Set(e.b, e.mad(e.r2, lin(e.c720, e.c5040), lin(e.c24, e.c120)))
	f.Set(e.r, e.mad(F4Mul(e.r2, e.r2), e.b, e.a))
	return F4Mul(e.r, I4Shl(e.n, I(23)))
}

// silu returns y·sigmoid(y) = y / (1 + e^-y) for each lane.
func (e *expv) silu(f *Func, y Var) Expr {
	return F4Div(y, F4Add(e.one, e.exp(f, F4Neg(y))))
}

// stream emits a loop over n floats: four at a time with vector loads from
// ins (advanced by 16 bytes) and a vector store to out, then one at a time
// with 32-bit splat loads and a lane-0 store. op maps loaded inputs to the
// output value and may emit statements first.
func stream(f *Func, n Expr, ins []Var, out Var, op func(xs []Expr) Expr) {
	ptrs := f.Locals(I32, len(ins))
	dst, end, vend := f.Local(I32), f.Local(I32), f.Local(I32)
	for i, in := range ins {
		f.Set(ptrs[i], in)
	}
	f.Set(dst, out)
	f.Set(end, Add(out, Shl(n, I(2))))
	f.Set(vend, Add(out, Shl(And(n, I(^3)), I(2))))
	body := func(vec bool) {
		xs := make([]Expr, len(ins))
		for i := range ins {
			if vec {
				xs[i] = V128Load(ptrs[i], 0)
			} else {
				xs[i] = Load32Splat(ptrs[i], 0)
			}
		}
		y := op(xs)
		step := int32(16)
		if vec {
			f.V128Store(dst, 0, y)
		} else {
			f.Store32Lane(dst, 0, y, 0)
			step = 4
		}
		for i := range ins {
			f.Inc(ptrs[i], step)
		}
		f.Inc(dst, step)
	}
	f.While(func() Expr { return LtU(dst, vend) }, func() { body(true) })
	f.While(func() Expr { return LtU(dst, end) }, func() { body(false) })
}

// Elementwise kernels over n floats (out may alias an input).
func (g *gen) elementwise() {
	{
		f := g.m.Func("add", true)
		a, b, out, n := p(f, "a", "f32p"), p(f, "b", "f32p"), p(f, "out", "f32p"), p(f, "n", "int")
		stream(f, n, []Var{a, b}, out, func(x []Expr) Expr { return F4Add(x[0], x[1]) })
	}
	{
		f := g.m.Func("affine", true)
		x, out, n := p(f, "x", "f32p"), p(f, "out", "f32p"), p(f, "n", "int")
		s, o := p(f, "s", "f32"), p(f, "o", "f32")
		sv, ov := f.Local(V128), f.Local(V128)
		f.Set(sv, F4Splat(s))
		f.Set(ov, F4Splat(o))
		stream(f, n, []Var{x}, out, func(xs []Expr) Expr { return F4Add(F4Mul(xs[0], sv), ov) })
	}
	{
		f := g.m.Func("silu", true)
		x, out, n := p(f, "x", "f32p"), p(f, "out", "f32p"), p(f, "n", "int")
		e := g.newExp(f)
		y := f.Local(V128)
		stream(f, n, []Var{x}, out, func(xs []Expr) Expr {
			f.Set(y, xs[0])
			return e.silu(f, y)
		})
	}
	{
		// add_channel: x [planes, plane] + e[planes] broadcast over each plane.
		f := g.m.Func("add_channel", true)
		x, e, out := p(f, "x", "f32p"), p(f, "e", "f32p"), p(f, "out", "f32p")
		planes, plane := p(f, "planes", "int"), p(f, "plane", "int")
		pl, xs, os, es := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(V128)
		f.Set(xs, x)
		f.Set(os, out)
		f.For(pl, I(0), planes, 1, func() {
			f.Set(es, Load32Splat(Add(e, Shl(pl, I(2))), 0))
			stream(f, plane, []Var{xs}, os, func(v []Expr) Expr { return F4Add(v[0], es) })
			f.Set(xs, Add(xs, Shl(plane, I(2))))
			f.Set(os, Add(os, Shl(plane, I(2))))
		})
	}
	{
		// scale_shift: x [nb, c, plane], e [nb, 2c]: x·(1+e[b,ch]) + e[b,c+ch].
		f := g.m.Func("scale_shift", true)
		x, e, out := p(f, "x", "f32p"), p(f, "e", "f32p"), p(f, "out", "f32p")
		nb, c, plane := p(f, "nb", "int"), p(f, "c", "int"), p(f, "plane", "int")
		b, ch, xs, os, er := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
		sv, hv := f.Local(V128), f.Local(V128)
		f.Set(xs, x)
		f.Set(os, out)
		f.For(b, I(0), nb, 1, func() {
			f.Set(er, Add(e, Shl(Mul(b, Shl(c, I(1))), I(2))))
			f.For(ch, I(0), c, 1, func() {
				f.Set(sv, F4Splat(Add(Fc(1), LoadF32(Add(er, Shl(ch, I(2))), 0))))
				f.Set(hv, Load32Splat(Add(er, Shl(Add(c, ch), I(2))), 0))
				stream(f, plane, []Var{xs}, os, func(v []Expr) Expr { return F4Add(F4Mul(v[0], sv), hv) })
				f.Set(xs, Add(xs, Shl(plane, I(2))))
				f.Set(os, Add(os, Shl(plane, I(2))))
			})
		})
	}
}

// groupnorm: x [nb, c, per] normalised over each group of c/groups channels
// (mean and variance in float64, from one pass of shifted sums), then
// ·gamma + beta per channel (beta may be 0); when ss is not 0 it is a
// [nb, 2c] scale/shift applied after the norm (y·(1+scale)+shift); flags bit
// 0 applies SiLU last. out may alias x.
func (g *gen) groupnorm() {
	f := g.m.Func("groupnorm", true)
	x, out, gamma, beta := p(f, "x", "f32p"), p(f, "out", "f32p"), p(f, "gamma", "f32p"), p(f, "beta", "f32p")
	nb, c, per, groups := p(f, "nb", "int"), p(f, "c", "int"), p(f, "per", "int"), p(f, "groups", "int")
	eps, flags, ss := p(f, "eps", "f64"), p(f, "flags", "int"), p(f, "ss", "f32p")

	b, gi, ch, cg, n, seg, oseg, pp, vend, end, chan_, er := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32),
		f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	s0, s1, q0, q1, v, d, d1, pv := f.Local(V128), f.Local(V128), f.Local(V128), f.Local(V128), f.Local(V128),
		f.Local(V128), f.Local(V128), f.Local(V128)
	sum, sq, mean, inv, a, o, sc := f.Local(F64), f.Local(F64), f.Local(F64), f.Local(F64), f.Local(F64), f.Local(F64), f.Local(F64)
	pivot, dx := f.Local(F64), f.Local(F64)
	mhi, mlo := f.Local(V128), f.Local(V128)
	av, ov, y := f.Local(V128), f.Local(V128), f.Local(V128)
	e := g.newExp(f)

	f.Set(cg, DivU(c, groups))
	f.Set(n, Mul(cg, per))
	f.For(b, I(0), nb, 1, func() {
		f.Set(er, Add(ss, Shl(Mul(b, Shl(c, I(1))), I(2))))
		f.For(gi, I(0), groups, 1, func() {
			off := Shl(Mul(Add(Mul(b, c), Mul(gi, cg)), per), I(2))
			f.Set(seg, Add(x, off))
			f.Set(oseg, Add(out, off))
			f.Set(end, Add(seg, Shl(n, I(2))))
			f.Set(vend, Add(seg, Shl(And(n, I(^3)), I(2))))
			// One pass for the sum and the sum of squares of x - pivot in
			// float64 (pivot = the group's first value, so a mean far from 0
			// does not cancel the variance away), in four f64x2 chains.
			f.Set(pivot, F64FromF32(LoadF32(seg, 0)))
			f.Set(pv, D2Splat(pivot))
			for _, acc := range []Var{s0, s1, q0, q1} {
				f.Set(acc, Splat4(0))
			}
			f.Set(pp, seg)
			f.While(func() Expr { return LtU(pp, vend) }, func() {
				f.Set(v, V128Load(pp, 0))
				f.Set(d, D2Sub(D2PromoteLow(v), pv))
				f.Set(d1, D2Sub(D2PromoteLow(Shuffle32(v, v, 2, 3, 2, 3)), pv))
				f.Set(s0, D2Add(s0, d))
				f.Set(s1, D2Add(s1, d1))
				f.Set(q0, D2Add(q0, D2Mul(d, d)))
				f.Set(q1, D2Add(q1, D2Mul(d1, d1)))
				f.Inc(pp, 16)
			})
			f.Set(s0, D2Add(s0, s1))
			f.Set(q0, D2Add(q0, q1))
			f.Set(sum, Add(D2Lane(s0, 0), D2Lane(s0, 1)))
			f.Set(sq, Add(D2Lane(q0, 0), D2Lane(q0, 1)))
			f.While(func() Expr { return LtU(pp, end) }, func() {
				f.Set(dx, Sub(F64FromF32(LoadF32(pp, 0)), pivot))
				f.Set(sum, Add(sum, dx))
				f.Set(sq, Add(sq, Mul(dx, dx)))
				f.Inc(pp, 4)
			})
			// mean = pivot + Σd/n, var = Σd²/n - (Σd/n)²
			f.Set(dx, Div(sum, F64FromI32U(n)))
			f.Set(mean, Add(pivot, dx))
			f.Set(inv, Div(Dc(1), Sqrt(Add(Max(Sub(Div(sq, F64FromI32U(n)), Mul(dx, dx)), Dc(0)), eps))))
			f.Set(mhi, F4Splat(F32FromF64(mean)))
			f.Set(mlo, F4Splat(F32FromF64(Sub(mean, F64FromF32(F4Lane(mhi, 0))))))
			f.For(ch, I(0), cg, 1, func() {
				f.Set(chan_, Add(Mul(gi, cg), ch))
				f.Set(a, Mul(inv, F64FromF32(LoadF32(Add(gamma, Shl(chan_, I(2))), 0))))
				// y = (x - mean)·a + o: x - mean in float32 as (x - mHi) - mLo
				// with mean = mHi + mLo, so a mean large against the spread
				// costs no precision (x - mHi is exact near the mean).
				f.Set(o, Dc(0))
				f.If(Ne(beta, I(0)), func() {
					f.Set(o, F64FromF32(LoadF32(Add(beta, Shl(chan_, I(2))), 0)))
				})
				f.If(Ne(ss, I(0)), func() {
					f.Set(sc, F64FromF32(Add(Fc(1), LoadF32(Add(er, Shl(chan_, I(2))), 0))))
					f.Set(a, Mul(a, sc))
					f.Set(o, Add(Mul(o, sc), F64FromF32(LoadF32(Add(er, Shl(Add(c, chan_), I(2))), 0))))
				})
				f.Set(av, F4Splat(F32FromF64(a)))
				f.Set(ov, F4Splat(F32FromF64(o)))
				src := Add(seg, Shl(Mul(ch, per), I(2)))
				dst := Add(oseg, Shl(Mul(ch, per), I(2)))
				f.IfElse(And(flags, I(1)), func() {
					// separate pointer locals per stream call
					sp, dp := f.Local(I32), f.Local(I32)
					f.Set(sp, src)
					f.Set(dp, dst)
					stream(f, per, []Var{sp}, dp, func(xs []Expr) Expr {
						f.Set(y, F4Add(F4Mul(F4Sub(F4Sub(xs[0], mhi), mlo), av), ov))
						return e.silu(f, y)
					})
				}, func() {
					sp, dp := f.Local(I32), f.Local(I32)
					f.Set(sp, src)
					f.Set(dp, dst)
					stream(f, per, []Var{sp}, dp, func(xs []Expr) Expr {
						return F4Add(F4Mul(F4Sub(F4Sub(xs[0], mhi), mlo), av), ov)
					})
				})
			})
		})
	})
}

// softmax: each of rows rows of n floats (row stride ld) becomes
// softmax(row·scale) in place, with the max subtracted first.
func (g *gen) softmax() {
	f := g.m.Func("softmax", true)
	s, rows, n, ld, scale := p(f, "s", "f32p"), p(f, "rows", "int"), p(f, "n", "int"), p(f, "ld", "int"), p(f, "scale", "f32")
	r, row, pp, vend, end := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	mx, sv, msc, acc, ev, tot := f.Local(V128), f.Local(V128), f.Local(V128), f.Local(V128), f.Local(V128), f.Local(V128)
	tsum, arg := f.Local(F32), f.Local(V128)
	e := g.newExp(f)
	f.Set(sv, F4Splat(scale))
	f.For(r, I(0), rows, 1, func() {
		f.Set(row, Add(s, Shl(Mul(r, ld), I(2))))
		f.Set(end, Add(row, Shl(n, I(2))))
		f.Set(vend, Add(row, Shl(And(n, I(^3)), I(2))))
		f.Set(mx, Splat4(float32(math.Inf(-1))))
		f.Set(pp, row)
		f.While(func() Expr { return LtU(pp, vend) }, func() {
			f.Set(mx, F4PMax(mx, V128Load(pp, 0)))
			f.Inc(pp, 16)
		})
		f.While(func() Expr { return LtU(pp, end) }, func() {
			f.Set(mx, F4PMax(mx, Load32Splat(pp, 0)))
			f.Inc(pp, 4)
		})
		f.Set(mx, F4PMax(mx, Shuffle32(mx, mx, 2, 3, 0, 1)))
		f.Set(mx, F4PMax(mx, Shuffle32(mx, mx, 1, 0, 3, 2)))
		f.Set(msc, F4Mul(mx, sv))
		f.Set(acc, Splat4(0))
		f.Set(tsum, Fc(0))
		f.Set(pp, row)
		// Weights below e^-80 become 0: they are far below float32
		// resolution against the sum (>= 1), and as subnormals after the
		// division they would slow every later multiply on x86.
		expArg := func(x Expr) Expr {
			f.Set(arg, F4Sub(F4Mul(x, sv), msc))
			return VAnd(e.exp(f, arg), F4Gt(arg, Splat4(-80)))
		}
		f.While(func() Expr { return LtU(pp, vend) }, func() {
			f.Set(ev, expArg(V128Load(pp, 0)))
			f.V128Store(pp, 0, ev)
			f.Set(acc, F4Add(acc, ev))
			f.Inc(pp, 16)
		})
		f.While(func() Expr { return LtU(pp, end) }, func() {
			f.Set(ev, expArg(Load32Splat(pp, 0)))
			f.Store32Lane(pp, 0, ev, 0)
			f.Set(tsum, Add(tsum, F4Lane(ev, 0)))
			f.Inc(pp, 4)
		})
		f.Set(acc, F4Add(acc, Shuffle32(acc, acc, 2, 3, 0, 1)))
		f.Set(acc, F4Add(acc, Shuffle32(acc, acc, 1, 0, 3, 2)))
		// One division per row, then multiplies (a vector division per four
		// weights was a fifth of the kernel's time); x·(1/t) is within an
		// ulp of x/t.
		f.Set(tot, F4Splat(Div(Fc(1), Add(F4Lane(acc, 0), tsum))))
		f.Set(pp, row)
		f.While(func() Expr { return LtU(pp, vend) }, func() {
			f.V128Store(pp, 0, F4Mul(V128Load(pp, 0), tot))
			f.Inc(pp, 16)
		})
		f.While(func() Expr { return LtU(pp, end) }, func() {
			f.Store32Lane(pp, 0, F4Mul(Load32Splat(pp, 0), tot), 0)
			f.Inc(pp, 4)
		})
	})
}

// softmax_cols: x [rows, n] (contiguous rows) -> out, each column replaced
// by softmax(column)·scale (the max subtracted first), four columns per
// vector. out may alias x.
func (g *gen) softmaxCols() {
	f := g.m.Func("softmax_cols", true)
	x, out, rows, n, scale := p(f, "x", "f32p"), p(f, "out", "f32p"), p(f, "rows", "int"), p(f, "n", "int"), p(f, "scale", "f32")
	j, r, xp, op, n4 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	mx, sum, ev, sv := f.Local(V128), f.Local(V128), f.Local(V128), f.Local(V128)
	e := g.newExp(f)
	f.Set(n4, Shl(n, I(2)))
	f.Set(sv, F4Splat(scale))
	// col emits the three passes over the column block at xp/op: vector
	// loads and stores when vec, else lane 0 only (one column).
	col := func(vec bool) {
		ld := func(a Expr) Expr {
			if vec {
				return V128Load(a, 0)
			}
			return Load32Splat(a, 0)
		}
		st := func(a Expr, v Expr) {
			if vec {
				f.V128Store(a, 0, v)
			} else {
				f.Store32Lane(a, 0, v, 0)
			}
		}
		f.Set(mx, Splat4(float32(math.Inf(-1))))
		f.For(r, I(0), rows, 1, func() {
			f.Set(mx, F4PMax(mx, ld(Add(xp, Mul(r, n4)))))
		})
		f.Set(sum, Splat4(0))
		f.For(r, I(0), rows, 1, func() {
			f.Set(ev, F4Sub(ld(Add(xp, Mul(r, n4))), mx))
			f.Set(ev, VAnd(e.exp(f, ev), F4Gt(ev, Splat4(-80))))
			st(Add(op, Mul(r, n4)), ev)
			f.Set(sum, F4Add(sum, ev))
		})
		f.Set(sum, F4Div(sv, sum))
		f.For(r, I(0), rows, 1, func() {
			st(Add(op, Mul(r, n4)), F4Mul(ld(Add(op, Mul(r, n4))), sum))
		})
	}
	f.Set(j, I(0))
	f.While(func() Expr { return LeU(Add(j, I(4)), n) }, func() {
		f.Set(xp, Add(x, Shl(j, I(2))))
		f.Set(op, Add(out, Shl(j, I(2))))
		col(true)
		f.Inc(j, 4)
	})
	f.While(func() Expr { return LtU(j, n) }, func() {
		f.Set(xp, Add(x, Shl(j, I(2))))
		f.Set(op, Add(out, Shl(j, I(2))))
		col(false)
		f.Inc(j, 1)
	})
}

// rms_norm: x [nb, c, per] -> out = x / max(‖x[b,:,p]‖₂, eps) · g[ch] ·
// scale, the norm over the c channels at each position p (lucidrains'
// RMSNorm); four positions per vector, the sum of squares in float32.
// out may alias x.
func (g *gen) rmsNorm() {
	f := g.m.Func("rms_norm", true)
	x, out, gain := p(f, "x", "f32p"), p(f, "out", "f32p"), p(f, "g", "f32p")
	nb, c, per, scale, eps := p(f, "nb", "int"), p(f, "c", "int"), p(f, "per", "int"), p(f, "scale", "f32"), p(f, "eps", "f32")
	b, j, ch, xp, op, per4, base := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	sq, v, inv := f.Local(V128), f.Local(V128), f.Local(V128)
	f.Set(per4, Shl(per, I(2)))
	block := func(vec bool) {
		ld := func(a Expr) Expr {
			if vec {
				return V128Load(a, 0)
			}
			return Load32Splat(a, 0)
		}
		f.Set(sq, Splat4(0))
		f.For(ch, I(0), c, 1, func() {
			f.Set(v, ld(Add(xp, Mul(ch, per4))))
			f.Set(sq, F4Add(sq, F4Mul(v, v)))
		})
		f.Set(inv, F4Div(F4Splat(scale), F4Max(F4Sqrt(sq), F4Splat(eps))))
		f.For(ch, I(0), c, 1, func() {
			y := F4Mul(F4Mul(ld(Add(xp, Mul(ch, per4))), inv), Load32Splat(Add(gain, Shl(ch, I(2))), 0))
			if vec {
				f.V128Store(Add(op, Mul(ch, per4)), 0, y)
			} else {
				f.Store32Lane(Add(op, Mul(ch, per4)), 0, y, 0)
			}
		})
	}
	f.For(b, I(0), nb, 1, func() {
		f.Set(base, Mul(Mul(b, c), per4))
		f.Set(j, I(0))
		f.While(func() Expr { return LeU(Add(j, I(4)), per) }, func() {
			f.Set(xp, Add(Add(x, base), Shl(j, I(2))))
			f.Set(op, Add(Add(out, base), Shl(j, I(2))))
			block(true)
			f.Inc(j, 4)
		})
		f.While(func() Expr { return LtU(j, per) }, func() {
			f.Set(xp, Add(Add(x, base), Shl(j, I(2))))
			f.Set(op, Add(Add(out, base), Shl(j, I(2))))
			block(false)
			f.Inc(j, 1)
		})
	})
}

// f16_to_f32: n IEEE binary16 values at src -> float32 at dst, exactly
// (subnormals, infinities and NaN payloads included): the 15 magnitude bits
// shifted into float32 position are a float32 2^-112 times too small, or a
// float32 subnormal for a binary16 subnormal, so one multiply by 2^112
// rebias both; infinities and NaNs get the all-ones exponent instead, and
// signalling NaNs are quieted.
func (g *gen) f16() {
	f := g.m.Func("f16_to_f32", true)
	src, dst, n := p(f, "src", "u16p"), p(f, "dst", "f32p"), p(f, "n", "int")
	sp, dp, end, vend := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	h, em, sh := f.Local(V128), f.Local(V128), f.Local(V128)
	conv := func(hx Expr) Expr {
		f.Set(h, hx)
		f.Set(em, VAnd(h, SplatI4(0x7fff)))
		f.Set(sh, I4Shl(em, I(13)))
		// NaNs come out quiet (the quiet bit set), as hardware converters and
		// x448/float16 make them.
		special := VOr(VOr(sh, SplatI4(0x7f800000)), VAnd(I4GtU(em, SplatI4(0x7c00)), SplatI4(0x00400000)))
		val := Bitselect(special, F4Mul(sh, Splat4(float32(math.Ldexp(1, 112)))), I4GeU(em, SplatI4(0x7c00)))
		return VOr(val, I4Shl(VAnd(h, SplatI4(0x8000)), I(16)))
	}
	raw := f.Local(V128)
	f.Set(sp, src)
	f.Set(dp, dst)
	f.Set(end, Add(dst, Shl(n, I(2))))
	f.Set(vend, Add(dst, Shl(And(n, I(^7)), I(2))))
	f.While(func() Expr { return LtU(dp, vend) }, func() {
		f.Set(raw, V128Load(sp, 0))
		f.V128Store(dp, 0, conv(I4ExtendLowU16(raw)))
		f.V128Store(dp, 16, conv(I4ExtendHighU16(raw)))
		f.Inc(sp, 16)
		f.Inc(dp, 32)
	})
	f.While(func() Expr { return LtU(dp, end) }, func() {
		f.Store32Lane(dp, 0, conv(I4Splat(LoadU16(sp, 0))), 0)
		f.Inc(sp, 2)
		f.Inc(dp, 4)
	})
}

// warmup(scratch, reps) runs every kernel reps times on small sizes inside
// [scratch, scratch+256 KiB) (any contents: it zeroes the offset tables it
// needs). V8 compiles wasm
// first with its baseline compiler and optimizes a function only once it has
// run for a while, in a background queue that a big Go module also fills, so
// the glue runs this on a throwaway instance (the optimized code belongs to
// the module, shared by every instance) before the Go module is compiled.
func (g *gen) warmup() {
	fn := map[string]*Func{}
	for _, f := range g.m.Funcs() {
		fn[f.Name] = f
	}
	f := g.m.Func("warmup", true)
	s, reps := p(f, "scratch", "int"), p(f, "reps", "int")
	i := f.Local(I32)
	at := func(kib int32) Expr { return Add(s, I(kib<<10)) }
	z := I(0)
	f.For(i, I(0), reps, 1, func() {
		f.Call(fn["gemm"], at(0), at(64), at(128), I(16), I(16), I(16), I(64), z, z, z)
		f.Call(fn["gemm"], at(0), at(64), at(128), I(17), I(13), I(11), I(64), at(192), at(192), I(1))
		f.Call(fn["pack_a"], at(0), I(64), I(16), I(64), at(64))
		f.Call(fn["pack_a"], at(0), I(64), I(7), I(63), at(64))
		f.Call(fn["pack_b"], at(0), I(16), I(64), I(16), at(64))
		f.Call(fn["pack_b"], at(0), I(16), I(64), I(13), at(64))
		f.Call(fn["pack_bt"], at(0), I(64), I(16), I(64), at(64))
		f.Call(fn["pack_bt"], at(0), I(64), I(13), I(63), at(64))
		f.MemoryFill(at(64), z, I(1024)) // im2col's offset tables: all zero, in range
		f.Call(fn["im2col"], at(0), at(64), at(64), I(64), I(16), at(128))
		// col2im: 2 channels, 3x3 taps, 4x4 input, stride 2 into 9x9 and
		// stride 1 into 6x6 (every tap's rows and columns all in range).
		for t, st := range [][9]int32{{2, 3, 3, 4, 4, 9, 9, 2, 16}, {2, 3, 3, 4, 4, 6, 6, 1, 20}} {
			tab := at(192 + int32(t))
			for j, v := range st {
				f.StoreI32(tab, uint32(4*j), I(v))
			}
			for j := range 6 { // (0, 4, tap) for ky then kx
				f.StoreI32(tab, uint32(36+12*j), I(0))
				f.StoreI32(tab, uint32(40+12*j), I(4))
				f.StoreI32(tab, uint32(44+12*j), I(int32(j%3)))
			}
			f.Call(fn["col2im"], at(0), tab, at(0), at(128))
		}
		f.Call(fn["pad"], at(0), at(64), I(4), I(16), I(16), I(18), I(18), I(1), I(1))
		f.MemoryFill(at(64), z, I(1024)) // Winograd tile tables: all zero, in range
		f.Call(fn["winograd_in"], at(0), at(64), I(8), I(4), I(64), I(8), at(128), I(40))
		f.Call(fn["winograd_out"], at(128), I(8), I(2), I(7), at(64), at(64), at(0), at(0), at(192), I(16), I(4))
		f.Call(fn["add"], at(0), at(0), at(64), I(1023))
		f.Call(fn["affine"], at(0), at(64), I(1023), Fc(1), Fc(0))
		f.Call(fn["silu"], at(0), at(64), I(1023))
		f.Call(fn["add_channel"], at(0), at(0), at(64), I(4), I(255))
		f.Call(fn["scale_shift"], at(0), at(0), at(64), I(1), I(4), I(255))
		f.Call(fn["groupnorm"], at(0), at(64), at(0), z, I(1), I(4), I(255), I(2), Dc(1e-5), I(1), z)
		f.Call(fn["groupnorm"], at(0), at(64), at(0), at(0), I(1), I(4), I(255), I(2), Dc(1e-5), z, at(0))
		f.Call(fn["softmax"], at(64), I(16), I(63), I(64), Fc(1))
		f.Call(fn["pack_at"], at(0), I(64), I(16), I(64), at(64))
		f.Call(fn["pack_at"], at(0), I(64), I(7), I(63), at(64))
		f.Call(fn["softmax_cols"], at(0), at(64), I(16), I(63), Fc(0.5))
		f.Call(fn["rms_norm"], at(0), at(64), at(0), I(2), I(16), I(63), Fc(4), Fc(1e-12))
		f.Call(fn["transpose"], at(0), at(64), I(2), I(17), I(23))
		f.Call(fn["upsample2x"], at(0), at(64), I(3), I(7), I(9))
		f.Call(fn["copy_rows"], at(0), I(20), at(64), I(30), I(9), I(17))
		f.Call(fn["f16_to_f32"], at(0), at(64), I(1023))
	})
}

// Winograd minimal filtering F(2x2, 3x3) (Lavin & Gray 2016, "Fast
// Algorithms for Convolutional Neural Networks"): a 3x3 stride-1
// convolution as 16 GEMMs M_ξ = U_ξ·V_ξ over 4x4 input tiles that overlap
// by 2, each giving a 2x2 output tile Y = Aᵀ M A. U = G g Gᵀ is made once
// on the Go side; these kernels are the input transform V = Bᵀ d B and the
// output transform with the convolution's epilogue, with
//
//	Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  Aᵀ = [1 1 1 0; 0 1 -1 -1].

// winograd_in: the input transform of ntiles tiles (a multiple of 8) over
// planes channels, written as 16 packed B operands: V_ξ (ξ = 4ρ+c) for the
// panel of tiles j0..j0+7 and channel i at vp + ξ·vstride + (j0·planes +
// 8·i) floats, one float per tile. Tile j's top-left input of channel i is
// at xp + tab[j] + 4·i·pstride (bytes; tab holds byte offsets, the rows are
// wp floats apart, and the input is zero-padded so every 4x4 tile is inside
// it). Four tiles at a time, as vectors across the four tiles: when they
// are consecutive in one tile row (offsets 8 bytes apart), columns 0 and 1
// of a row are the even and odd floats of the 8 from the first tile's
// corner and columns 2 and 3 those of the 8 two floats on (four loads and
// four shuffles per row); otherwise each tile row is one load per tile and
// a 4x4 transpose (eight shuffles). The transform is then adds and
// subtracts. The 16 V_ξ must not be a multiple of 4 KiB apart (see
// wino.vstride).
func (g *gen) winogradIn() {
	f := g.m.Func("winograd_in", true)
	xp, tab, nt := p(f, "xp", "f32p"), p(f, "tab", "i32p"), p(f, "ntiles", "int")
	planes, pstride, wp := p(f, "planes", "int"), p(f, "pstride", "int"), p(f, "wp", "int")
	vp, vstride := p(f, "vp", "f32p"), p(f, "vstride", "int")
	j0, i, dst, q, wp4, ps4, vs4, run := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	o := f.Locals(I32, NR)
	v, t := f.Locals(V128, 4), f.Locals(V128, 4)
	c := f.Locals(V128, 4)
	e1, e2 := f.Locals(V128, 4), f.Locals(V128, 4)
	f.Set(wp4, Shl(wp, I(2)))
	wpr := []Var{{}, wp4, f.Local(I32), f.Local(I32)} // byte offsets of rows 1..3
	f.Set(wpr[2], Shl(wp, I(3)))
	f.Set(wpr[3], Mul(wp, I(12)))
	f.Set(ps4, Shl(pstride, I(2)))
	f.Set(vs4, Shl(vstride, I(2)))
	f.Set(dst, vp)
	// row loads row r of the four tiles of half h into c (c[k]: column k
	// across the tiles) and leaves (d·B) of it in t: d·B = [d0-d2, d1+d2,
	// d2-d1, d1-d3] on each tile row.
	row := func(h, r int, contig bool) {
		at := func(l int) Expr {
			if r > 0 {
				return Add(o[4*h+l], wpr[r])
			}
			return o[4*h+l]
		}
		if contig {
			// floats 0-7 and 2-9 of the row from the first tile's corner
			f.Set(v[0], V128Load(at(0), 0))
			f.Set(v[1], V128Load(at(0), 16))
			f.Set(v[2], V128Load(at(0), 8))
			f.Set(v[3], V128Load(at(0), 24))
			f.Set(c[0], Shuffle32(v[0], v[1], 0, 2, 4, 6))
			f.Set(c[1], Shuffle32(v[0], v[1], 1, 3, 5, 7))
			f.Set(c[2], Shuffle32(v[2], v[3], 0, 2, 4, 6))
			f.Set(c[3], Shuffle32(v[2], v[3], 1, 3, 5, 7))
		} else {
			for l := range 4 {
				f.Set(v[l], V128Load(at(l), 0))
			}
			transpose4(f, v, t, c)
		}
		f.Set(t[0], F4Sub(c[0], c[2]))
		f.Set(t[1], F4Add(c[1], c[2]))
		f.Set(t[2], F4Sub(c[2], c[1]))
		f.Set(t[3], F4Sub(c[1], c[3]))
	}
	// put stores the four vectors of row ρ of V (ξ = 4ρ..4ρ+3) for half h.
	put := func(h, rho int, val func(col int) Expr) {
		f.Set(q, Add(dst, Mul(vs4, I(int32(4*rho)))))
		for col := range 4 {
			f.V128Store(q, uint32(16*h), val(col))
			if col < 3 {
				f.Set(q, Add(q, vs4))
			}
		}
	}
	// half transforms the four tiles of half h: Bᵀ(dB), rows [r0-r2,
	// r1+r2, r2-r1, r1-r3], in an order that keeps at most two transformed
	// rows live.
	half := func(h int, contig bool) {
		row(h, 2, contig)
		for k := range 4 {
			f.Set(e2[k], t[k])
		}
		row(h, 1, contig)
		for k := range 4 {
			f.Set(e1[k], t[k])
		}
		put(h, 1, func(k int) Expr { return F4Add(e1[k], e2[k]) })
		put(h, 2, func(k int) Expr { return F4Sub(e2[k], e1[k]) })
		row(h, 0, contig)
		put(h, 0, func(k int) Expr { return F4Sub(t[k], e2[k]) })
		row(h, 3, contig)
		put(h, 3, func(k int) Expr { return F4Sub(e1[k], t[k]) })
	}
	f.For(j0, I(0), nt, NR, func() {
		for l := range NR {
			f.Set(o[l], Add(xp, LoadI32(Add(tab, Shl(j0, I(2))), uint32(4*l))))
		}
		// run bit h: the four tiles of half h are consecutive in a row.
		f.Set(run, I(0))
		for h := range 2 {
			var ok Expr = I(1)
			for l := 1; l < 4; l++ {
				ok = And(ok, Eq(Sub(o[4*h+l], o[4*h+l-1]), I(8)))
			}
			f.Set(run, Or(run, Shl(ok, I(int32(h)))))
		}
		f.For(i, I(0), planes, 1, func() {
			for h := range 2 {
				f.IfElse(And(run, I(int32(1<<h))), func() { half(h, true) }, func() { half(h, false) })
			}
			for l := range NR {
				f.Set(o[l], Add(o[l], ps4))
			}
			f.Inc(dst, 4*NR)
		})
	})
}

// winograd_out: the output transform Y = Aᵀ M A of ntiles tiles for o
// output channels, with the epilogue. M_ξ[oc][j] is at m + (16·oc + ξ)·ldm
// + j floats (ldm ≥ ntiles rounded up to 4): a channel's 16 rows are
// consecutive, so the 16 loads of a group are not all a multiple of 4 KiB
// apart, as they were with M_ξ one after the other: on the same L1 set,
// they made winograd_in's matching store pattern (V, below) 3x slower. At
// most 11 parameters: the arity of simd_glue.js's trampolines. Tile j's top-left
// output of channel oc is at out + (tab[j] &^ 3) + 4·oc·plane bytes; bit 0
// of tab[j] says the tile has no second column (cropped at an odd output
// width), bit 1 no second row; rows are ow floats apart. Each output gets
// bias[(btab[j] + 4·oc)/4] (btab: byte offsets of the tile's row of
// biases, e.g. one row per sample) when bias is not 0 and res at the
// output's offset when res is not 0. Four tiles at a time; four tiles of
// one output row, uncropped and with one bias row, are stored as two
// interleaved vectors per output row, others lane by lane.
func (g *gen) winogradOut() {
	f := g.m.Func("winograd_out", true)
	m, ldm := p(f, "m", "f32p"), p(f, "ldm", "int")
	O, nt, tab, btab := p(f, "o", "int"), p(f, "ntiles", "int"), p(f, "tab", "i32p"), p(f, "btab", "i32p")
	bias, res, out := p(f, "bias", "f32p"), p(f, "res", "f32p"), p(f, "out", "f32p")
	plane, ow := p(f, "plane", "int"), p(f, "ow", "int")
	oc, j0, mrow, mp, obase, rbase, ow4, ms4, boc, a, ra, pl4 := f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32), f.Local(I32)
	tt, bb := f.Locals(I32, 4), f.Locals(I32, 4)
	mv := f.Local(V128)
	s0, s1 := f.Locals(V128, 4), f.Locals(V128, 4)
	y := f.Locals(V128, 4) // y00, y01, y10, y11
	bv, lo, hi := f.Local(V128), f.Local(V128), f.Local(V128)
	bs := f.Local(F32)
	f.Set(ow4, Shl(ow, I(2)))
	f.Set(ms4, Shl(ldm, I(2)))
	f.Set(pl4, Shl(plane, I(2)))
	// transform sets y to Y = Aᵀ M A of channel oc's four tiles (M at
	// mrow): s = Aᵀ·M (rows [m0+m1+m2, m1-m2-m3]) accumulated in ξ order,
	// then Y = s·A.
	transform := func() {
		f.Set(mp, mrow)
		for r := range 4 {
			for col := range 4 {
				f.Set(mv, V128Load(mp, 0))
				f.Set(mp, Add(mp, ms4))
				switch r {
				case 0:
					f.Set(s0[col], mv)
				case 1:
					f.Set(s0[col], F4Add(s0[col], mv))
					f.Set(s1[col], mv)
				case 2:
					f.Set(s0[col], F4Add(s0[col], mv))
					f.Set(s1[col], F4Sub(s1[col], mv))
				case 3:
					f.Set(s1[col], F4Sub(s1[col], mv))
				}
			}
		}
		f.Set(y[0], F4Add(F4Add(s0[0], s0[1]), s0[2]))
		f.Set(y[1], F4Sub(F4Sub(s0[1], s0[2]), s0[3]))
		f.Set(y[2], F4Add(F4Add(s1[0], s1[1]), s1[2]))
		f.Set(y[3], F4Sub(F4Sub(s1[1], s1[2]), s1[3]))
	}
	// next moves to the next output channel.
	next := func() {
		f.Set(mrow, Add(mrow, Shl(ldm, I(6))))
		f.Set(obase, Add(obase, pl4))
		f.If(Ne(res, I(0)), func() { f.Set(rbase, Add(rbase, pl4)) })
		f.Inc(boc, 4)
	}
	// Groups of four tiles outside, channels inside: the tables are read
	// and the group's path chosen once per group (channels outside ran
	// 6.6-7.1 ns per tile and channel on a 28x28 output with 32 channels,
	// this order 4.1-5.1, in Node on the 2-core Xeon).
	f.For(j0, I(0), nt, 4, func() {
		for l := range 4 {
			f.Set(tt[l], LoadI32(Add(tab, Shl(j0, I(2))), uint32(4*l)))
			f.Set(bb[l], LoadI32(Add(btab, Shl(j0, I(2))), uint32(4*l)))
		}
		f.Set(mrow, Add(m, Shl(j0, I(2))))
		f.Set(obase, out)
		f.Set(rbase, res)
		f.Set(boc, bias)
		vec := And(LeU(Add(j0, I(4)), nt), Eqz(And(Or(Or(tt[0], tt[1]), Or(tt[2], tt[3])), I(3))))
		for l := 1; l < 4; l++ {
			vec = And(vec, And(Eq(Sub(tt[l], tt[l-1]), I(8)), Eq(bb[l], bb[0])))
		}
		f.IfElse(vec, func() {
			f.For(oc, I(0), O, 1, func() {
				transform()
				f.IfElse(Ne(bias, I(0)), func() {
					f.Set(bv, Load32Splat(Add(boc, bb[0]), 0))
				}, func() {
					f.Set(bv, Splat4(0))
				})
				for r := range 2 {
					f.Set(a, Add(obase, tt[0]))
					f.Set(ra, Add(rbase, tt[0]))
					if r == 1 {
						f.Set(a, Add(a, ow4))
						f.Set(ra, Add(ra, ow4))
					}
					f.Set(lo, F4Add(Shuffle32(y[2*r], y[2*r+1], 0, 4, 1, 5), bv))
					f.Set(hi, F4Add(Shuffle32(y[2*r], y[2*r+1], 2, 6, 3, 7), bv))
					f.If(Ne(res, I(0)), func() {
						f.Set(lo, F4Add(lo, V128Load(ra, 0)))
						f.Set(hi, F4Add(hi, V128Load(ra, 16)))
					})
					f.V128Store(a, 0, lo)
					f.V128Store(a, 16, hi)
				}
				next()
			})
		}, func() {
			f.For(oc, I(0), O, 1, func() {
				transform()
				for l := range 4 {
					f.If(LtU(Add(j0, I(int32(l))), nt), func() {
						f.Set(bs, Fc(0))
						f.If(Ne(bias, I(0)), func() {
							f.Set(bs, LoadF32(Add(boc, bb[l]), 0))
						})
						off := And(tt[l], I(^3))
						put := func(dy, dx int, val Expr) {
							f.Set(a, Add(Add(obase, off), I(int32(4*dx))))
							f.Set(ra, Add(Add(rbase, off), I(int32(4*dx))))
							if dy == 1 {
								f.Set(a, Add(a, ow4))
								f.Set(ra, Add(ra, ow4))
							}
							f.IfElse(Ne(res, I(0)), func() {
								f.StoreF32(a, 0, Add(Add(val, bs), LoadF32(ra, 0)))
							}, func() {
								f.StoreF32(a, 0, Add(val, bs))
							})
						}
						put(0, 0, F4Lane(y[0], l))
						f.If(Eqz(And(tt[l], I(1))), func() { put(0, 1, F4Lane(y[1], l)) })
						f.If(Eqz(And(tt[l], I(2))), func() {
							put(1, 0, F4Lane(y[2], l))
							f.If(Eqz(And(tt[l], I(1))), func() { put(1, 1, F4Lane(y[3], l)) })
						})
					})
				}
				next()
			})
		})
	})
}
