//go:build !purego

package simd

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasAsm: the CPU runs the AVX2+FMA kernels of gemm_amd64.s, wino_amd64.s
// and elem_amd64.s (the Go set uses them when set).
var hasAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func gemmTileAVX2x1(ap, bp *float32, k, bstride int, c *float32, ldc, acc, mp int)

//go:noescape
func gemmTileAVX2x2(ap, bp *float32, k, bstride int, c *float32, ldc, acc, mp int)

//go:noescape
func gemmTileAVX2x3(ap, bp *float32, k, bstride int, c *float32, ldc, acc, mp int)

// gemmTileAsm runs the micro-kernel for nb (1..3) B panels and mp A
// panels; strides in floats.
func gemmTileAsm(ap, bp []float32, k, bstride, nb int, c []float32, ldc int, acc bool, mp int) {
	a := 0
	if acc {
		a = 1
	}
	pa, pb, pc := unsafe.SliceData(ap), unsafe.SliceData(bp), unsafe.SliceData(c)
	switch nb {
	case 1:
		gemmTileAVX2x1(pa, pb, k, 4*bstride, pc, 4*ldc, a, mp)
	case 2:
		gemmTileAVX2x2(pa, pb, k, 4*bstride, pc, 4*ldc, a, mp)
	default:
		gemmTileAVX2x3(pa, pb, k, 4*bstride, pc, 4*ldc, a, mp)
	}
}

//go:noescape
func normAVX2(dst, src *float32, n int, mhi, mlo, a, o float32, silu int)

//go:noescape
func expAVX2(dst, src *float32, n int, scale, off float32) float32

//go:noescape
func maxAVX2(src *float32, n int) float32

//go:noescape
func scaleAVX2(p *float32, n int, s float32)

//go:noescape
func winoInAVX2(xp *float32, idx *int32, planes, pstride, wp int, vp *float32, vstride int)

//go:noescape
func winoOutAVX2(m *float32, ldm, o int, out *float32, plane, ow int, bias, res *float32)

//go:noescape
func sumsAVX2(src *float32, n int, pivot float64) (sum, sq float64)
