// Command peak writes a wasm module that measures the f32x4 arithmetic
// ceiling of the engine that runs it: 12 independent accumulators updated in
// registers only (no memory traffic) by f32x4.relaxed_madd (an FMA where
// the CPU has one). The relaxed GEMM micro-kernel cannot beat this number.
//
//	go run ./wasm/simd/bench/peak /tmp/peak.wasm
//	node --experimental-wasm-relaxed-simd wasm/simd/bench/peak.mjs /tmp/peak.wasm
package main

import (
	"log"
	"os"

	. "github.com/diffuse-web/diffuse/wasm/simd/internal/wasmenc"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: peak OUT.wasm")
	}
	m := &Module{}
	m.ImportMemory("env", "memory", Limits{Min: 1, Max: -1})
	{
		// peak_fma(n): n iterations of 24 accumulator updates (12 chains,
		// two rounds), 8 flops each.
		f := m.Func("peak_fma", true)
		n := f.Param("n", I32, "int")
		i := f.Local(I32)
		acc := f.Locals(V128, 12)
		a, b := f.Local(V128), f.Local(V128)
		f.Set(a, Splat4(1.0000001))
		f.Set(b, Splat4(0.9999999))
		for j := range acc {
			f.Set(acc[j], Splat4(float32(j)))
		}
		f.For(i, I(0), n, 1, func() {
			for jj := range 24 {
				j := jj % 12
				f.Set(acc[j], F4RelaxedMadd(a, b, acc[j]))
			}
		})
		s := acc[0]
		for j := 1; j < 12; j++ {
			f.Set(s, F4Add(s, acc[j]))
		}
		f.V128Store(I(0), 0, s)
	}
	if err := os.WriteFile(os.Args[1], m.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
