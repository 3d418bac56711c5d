// Package gobench holds Go micro-benchmarks of whole network evaluations on
// the shipped weights, natively: the plain-Go reference backend (core/cpu),
// the SIMD backend's kernels under wazero (wasm/simd) and the SIMD plan over
// the native Go kernel set (BenchmarkNative: the CLI's fast backend). They
// report GFLOP/s (tools/bench/flops) next to ns/op:
//
//	go test -run '^$' -bench . -benchtime 5x ./tools/bench/gobench
//
// BenchmarkSample runs a whole request (DDIM, 10 steps) through the request
// engine (core/engine), the path of the app, the CLI and the bench page.
//
// Native figures are not the browser's: the browser numbers come from
// `make bench` (tools/bench/run.mjs). wasm/simd has its own kernel
// benchmarks (make bench-simd: GEMM GFLOP/s in Node, whole networks as
// js/wasm).
package gobench
