package main

import (
	"os"

	. "github.com/diffuse-web/diffuse/wasm/simd/internal/wasmenc"
)

func main() {
	m := &Module{}
	m.ImportMemory("env", "memory", Limits{Min: 1, Max: -1})
	for _, fma := range []bool{false, true} {
		name := "peak_mul_add"
		if fma {
			name = "peak_fma"
		}
		f := m.Func(name, true)
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
			for jj := range 24 { j := jj % 12
				if fma {
					f.Set(acc[j], F4RelaxedMadd(a, b, acc[j]))
				} else {
					f.Set(acc[j], F4Add(acc[j], F4Mul(a, b)))
				}
			}
		})
		s := acc[0]
		for j := 1; j < 12; j++ {
			f.Set(s, F4Add(s, acc[j]))
		}
		f.V128Store(I(0), 0, s)
	}
	{
		f := m.Func("chain", true)
		n := f.Param("n", I32, "int")
		i, x := f.Local(I32), f.Local(I32)
		f.For(i, I(0), n, 1, func() {
			for range 20 {
				f.Set(x, Add(Mul(x, I(3)), I(1)))
			}
		})
		f.StoreI32(I(0), 0, x)
	}
	os.WriteFile(os.Args[1], m.Bytes(), 0o644)
}
