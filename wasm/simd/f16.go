package simd

import "github.com/x448/float16"

// ExpandF16 converts IEEE half floats into float32, exactly (NaNs come out
// quiet, as x448/float16 makes them), for loading fp16 weights. In the
// browser, with the kernels attached, it runs the f16_to_f32 kernel straight
// over the Go slices; elsewhere it is plain Go.
func ExpandF16(dst []float32, src []uint16) {
	need("src", len(src), len(dst))
	if k := expandKernels(); k != nil {
		k.F16ToF32(dst, src)
		return
	}
	for i := range dst {
		dst[i] = float16.Frombits(src[i]).Float32()
	}
}
