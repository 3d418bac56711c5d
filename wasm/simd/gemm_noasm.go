//go:build (!amd64 || purego) && !(js && wasm)

package simd

// hasGemmAsm: no assembly micro-kernel on this architecture (or with the
// purego tag); the Go set uses gemmTileGo.
const hasGemmAsm = false

func gemmTileAsm(ap, bp []float32, k, bstride, nb int, c []float32, ldc int, acc bool) {
	panic("simd: no assembly GEMM on this architecture")
}
