// Package wasmenc is a small WebAssembly binary encoder: just enough of the
// module format (types, a memory import or definition, functions, exports,
// the name section) and of the instruction set (integer, float and the
// fixed-width SIMD128 instructions) to write the SIMD kernel module from Go.
//
// It follows the WebAssembly core specification 2.0, section 5 (Binary
// Format); SIMD instructions are the 0xFD prefix followed by a LEB128 u32
// opcode. Functions are written through a tiny typed expression builder (see
// Func) so kernels read as structured code rather than opcode lists.
package wasmenc

// AppendU32 appends v as an unsigned LEB128 number.
func AppendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// AppendS32 appends v as a signed LEB128 number.
func AppendS32(b []byte, v int32) []byte { return AppendS64(b, int64(v)) }

// AppendS64 appends v as a signed LEB128 number.
func AppendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7 // arithmetic shift keeps the sign
		done := (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0)
		if done {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// appendName appends a length-prefixed UTF-8 name.
func appendName(b []byte, s string) []byte {
	b = AppendU32(b, uint32(len(s)))
	return append(b, s...)
}
