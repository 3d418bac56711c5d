//go:build unix && !linux && !(js && wasm)

package simd

const mapNoReserve = 0
