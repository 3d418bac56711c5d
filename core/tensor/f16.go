package tensor

import (
	"encoding/binary"
	"sync"

	"github.com/x448/float16"
)

// DecodeF16 widens IEEE 754 binary16 values, stored two bytes each in byte
// order bo, into dst; src must hold at least 2·len(dst) bytes. The values
// are x448/float16's, the project's one fp16 converter (safetensors' writer
// and the WebGPU packer encode with it; the WASM f16_to_f32 kernel is tested
// against it): exact, infinities and signed zeros carried over, NaNs with
// their sign and payload, quietened. The safetensors and PyTorch readers
// decode F16 tensors with it.
func DecodeF16(dst []float32, src []byte, bo binary.ByteOrder) {
	src = src[:2*len(dst)]
	t := f16Table()
	// The concrete byte orders (not the interface) keep Uint16 inlined.
	if bo.Uint16([]byte{1, 0}) == 1 {
		for i := range dst {
			dst[i] = t[binary.LittleEndian.Uint16(src[2*i:])]
		}
		return
	}
	for i := range dst {
		dst[i] = t[binary.BigEndian.Uint16(src[2*i:])]
	}
}

// f16Table holds x448/float16's float32 for each of the 65536 halves
// (256 KiB, built on first use). Calling the converter per value costs a
// call (its subnormal loop keeps it from being inlined): on 1M halves of
// weight-like magnitude, best of 5 on a loaded 2-core machine, 15.8 ms per
// call, 13.2 ms for the hand-written decoder core/torchpt had, 5.0 ms for
// the table (BenchmarkDecodeF16).
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = float16.Frombits(uint16(h)).Float32()
	}
	return &t
})
