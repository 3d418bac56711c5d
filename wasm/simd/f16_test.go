package simd

import (
	"math"
	"testing"

	"github.com/x448/float16"
)

// Every one of the 65536 half floats, at every misalignment, bit-exact
// against x448/float16 (the converter the safetensors reader uses); NaNs
// must stay NaNs with the same sign and payload.
func TestF16ToF32Exhaustive(t *testing.T) {
	k := newK(t)
	for _, mis := range []int{0, 1, 3} {
		src := k.AllocU16(1<<16 + mis)[mis:]
		for i := range src {
			src[i] = uint16(i)
		}
		dst, g := mk(k, 1<<16, mis, nil)
		k.F16ToF32(dst, src)
		g.check(t, "f16_to_f32")
		for i, got := range dst {
			want := float16.Frombits(uint16(i)).Float32()
			if math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("mis %d: half %#04x -> %#08x, want %#08x (%v)", mis, i, math.Float32bits(got), math.Float32bits(want), want)
			}
		}
	}
	// Tails shorter than a vector.
	for n := 0; n < 9; n++ {
		src := k.AllocU16(n)
		for i := range src {
			src[i] = uint16(0x3c00 + i) // 1.0, 1.0009..., ...
		}
		dst, g := mk(k, n, 1, nil)
		k.F16ToF32(dst, src)
		g.check(t, "f16_to_f32 tail")
		for i := range dst {
			if want := float16.Frombits(src[i]).Float32(); dst[i] != want {
				t.Fatalf("n %d: element %d = %v, want %v", n, i, dst[i], want)
			}
		}
	}
}

func TestExpandF16(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, len(src))
	ExpandF16(dst, src)
	for i, got := range dst {
		if want := float16.Frombits(uint16(i)).Float32(); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("half %#04x -> %#08x, want %#08x", i, math.Float32bits(got), math.Float32bits(want))
		}
	}
}
