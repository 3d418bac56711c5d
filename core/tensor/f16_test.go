package tensor

import (
	"encoding/binary"
	"math"
	"math/rand"
	"testing"
)

// halfRef is the value of binary16 bits h from the format's definition
// (IEEE 754-2008, 3.4): (-1)^s·2^(e-15)·(1 + m/1024) for normals,
// (-1)^s·2^-14·m/1024 for subnormals, e = 31 infinities (m = 0) and NaNs.
func halfRef(h uint16) float64 {
	s, e, m := h>>15, int(h>>10)&0x1f, float64(h&0x3ff)
	var v float64
	switch {
	case e == 0x1f && m == 0:
		v = math.Inf(1)
	case e == 0x1f:
		v = math.NaN()
	case e == 0:
		v = math.Ldexp(m, -24)
	default:
		v = math.Ldexp(1+m/1024, e-15)
	}
	if s == 1 {
		v = math.Copysign(v, -1)
	}
	return v
}

// Every one of the 65536 halves, in both byte orders, against the format's
// definition: exact values, signed zeros and infinities, and NaNs that stay
// NaN with their sign and payload (quietened: the float32 quiet bit set).
func TestDecodeF16Exhaustive(t *testing.T) {
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		src := make([]byte, 2<<16)
		for h := 0; h < 1<<16; h++ {
			bo.PutUint16(src[2*h:], uint16(h))
		}
		dst := make([]float32, 1<<16)
		DecodeF16(dst, src, bo)
		for h, got := range dst {
			want := halfRef(uint16(h))
			gb := math.Float32bits(got)
			if math.IsNaN(want) {
				wantBits := uint32(h>>15)<<31 | 0x7fc00000 | uint32(h&0x3ff)<<13
				if gb != wantBits {
					t.Fatalf("%v: NaN %#04x -> %#08x, want %#08x", bo, h, gb, wantBits)
				}
				continue
			}
			if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
				t.Fatalf("%v: %#04x -> %v (%#08x), want %v", bo, h, got, gb, want)
			}
		}
	}
}

// A few named cases, readable on failure: the subnormal and normal edges.
func TestDecodeF16Edges(t *testing.T) {
	cases := []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0},
		{0x0001, float32(math.Ldexp(1, -24))}, // smallest subnormal
		{0x03ff, float32(math.Ldexp(1023, -24))},
		{0x0400, float32(math.Ldexp(1, -14))}, // smallest normal
		{0x3c00, 1},
		{0x3c01, 1 + 1.0/1024},
		{0x7bff, 65504}, // largest finite
		{0x7c00, float32(math.Inf(1))},
		{0xfc00, float32(math.Inf(-1))},
		{0xc000, -2},
	}
	src := make([]byte, 2*len(cases))
	for i, c := range cases {
		binary.LittleEndian.PutUint16(src[2*i:], c.h)
	}
	dst := make([]float32, len(cases))
	DecodeF16(dst, src, binary.LittleEndian)
	for i, c := range cases {
		if dst[i] != c.want {
			t.Errorf("%#04x -> %v, want %v", c.h, dst[i], c.want)
		}
	}
	var neg [2]byte
	binary.LittleEndian.PutUint16(neg[:], 0x8000)
	one := make([]float32, 1)
	DecodeF16(one, neg[:], binary.LittleEndian)
	if !math.Signbit(float64(one[0])) || one[0] != 0 {
		t.Errorf("0x8000 -> %v, want -0", one[0])
	}
}

// BenchmarkDecodeF16: 1M halves of typical weights (N(0, 0.05²), a few
// subnormals).
func BenchmarkDecodeF16(b *testing.B) {
	const n = 1 << 20
	r := rand.New(rand.NewSource(1))
	src := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		f := r.NormFloat64() * 0.05
		e := math.Ilogb(f)
		h := uint16(0)
		if f < 0 {
			h = 0x8000
		}
		if e >= -14 {
			m, _ := math.Frexp(math.Abs(f))
			h |= uint16(e+15)<<10 | uint16((2*m-1)*1024)
		} else {
			h |= uint16(math.Abs(f) * (1 << 24))
		}
		binary.LittleEndian.PutUint16(src[2*i:], h)
	}
	dst := make([]float32, n)
	b.SetBytes(2 * n)
	for i := 0; i < b.N; i++ {
		DecodeF16(dst, src, binary.LittleEndian)
	}
}
