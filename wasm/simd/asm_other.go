//go:build (!amd64 || purego) && !(js && wasm)

package simd

// hasAsm: no assembly kernels on this architecture (or with the
// purego tag); the Go set runs plain Go.
const hasAsm = false

func gemmTileAsm(ap, bp []float32, k, bstride, nb int, c []float32, ldc int, acc bool, mp int) {
	panic("simd: no assembly GEMM on this architecture")
}

func normAVX2(dst, src *float32, n int, mhi, mlo, a, o float32, silu int) {
	panic("simd: no assembly kernels on this architecture")
}

func expAVX2(dst, src *float32, n int, scale, off float32) float32 {
	panic("simd: no assembly kernels on this architecture")
}

func maxAVX2(src *float32, n int) float32 {
	panic("simd: no assembly kernels on this architecture")
}

func scaleAVX2(p *float32, n int, s float32) {
	panic("simd: no assembly kernels on this architecture")
}

func winoInAVX2(xp *float32, idx *int32, planes, pstride, wp int, vp *float32, vstride int) {
	panic("simd: no assembly kernels on this architecture")
}

func winoOutAVX2(m *float32, ldm, o int, out *float32, plane, ow int, bias, res *float32) {
	panic("simd: no assembly kernels on this architecture")
}

func sumsAVX2(src *float32, n int, pivot float64) (sum, sq float64) {
	panic("simd: no assembly kernels on this architecture")
}
