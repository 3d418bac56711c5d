package simd

// kernels.wasm and kernels_*gen.go are written by ./gen; never edit them.
//go:generate go run ./gen -o .
