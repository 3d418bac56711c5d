//go:build js && wasm

package webgpu

import (
	"math"
	"strings"

	"github.com/x448/float16"

	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// WeightMode chooses how parameters are stored on the GPU.
type WeightMode int

const (
	// WeightsAuto packs weights as f16 when every one of them converts to
	// f16 and back unchanged (a model loaded from an f16 file), so results
	// equal the f32 upload at half the memory and bandwidth; otherwise f32.
	// With the serial kernels (software adapters) it is always f32: there
	// unpack2x16float is dear and memory is the CPU's (measured on
	// SwiftShader: a GEMM shaped like a 64-channel conv took 2.2× as long
	// reading f16 as f32, a 128×128 matrix-vector product 2–5×).
	WeightsAuto WeightMode = iota
	// WeightsF16 always packs as f16, rounding weights that are not exact.
	WeightsF16
	// WeightsF32 always uploads f32.
	WeightsF32
)

// exactInF16 reports whether every value survives a round trip through f16.
func exactInF16(params map[string]*tensor.Tensor) bool {
	for _, t := range params {
		for _, v := range t.Data {
			if float16.Fromfloat32(v).Float32() != v {
				return false
			}
		}
	}
	return true
}

func chooseFormat(params map[string]*tensor.Tensor, m WeightMode, serial bool) weightFormat {
	switch m {
	case WeightsF16:
		return formatF16
	case WeightsF32:
		return formatF32
	}
	if !serial && exactInF16(params) {
		return formatF16
	}
	return formatF32
}

// packF16 rounds to f16 (nearest even) and packs two per word, element 2i
// in the low half as unpack2x16float expects.
func packF16(data []float32) []uint32 {
	out := make([]uint32, (len(data)+1)/2)
	for i, v := range data {
		out[i/2] |= uint32(float16.Fromfloat32(v).Bits()) << (16 * (i % 2))
	}
	return out
}

// RoundF16 returns the tensors rounded to f16 and back: what WeightsF16
// computes with, for comparing against the CPU reference.
func RoundF16(params map[string]*tensor.Tensor) map[string]*tensor.Tensor {
	out := make(map[string]*tensor.Tensor, len(params))
	for name, t := range params {
		r := t.Clone()
		for i, v := range r.Data {
			r.Data[i] = float16.Fromfloat32(v).Float32()
		}
		out[name] = r
	}
	return out
}

// weightStore holds one model's parameters on the GPU in one format,
// uploaded on first use and shared by all its programs.
type weightStore struct {
	dev    *Device
	format weightFormat
	params map[string]*tensor.Tensor
	joined map[string]*tensor.Tensor // concatenations made by concat, transforms made by derived
	f32    map[string]bool           // joined tensors kept as f32 whatever the format (derived)
	bufs   map[string]*gpu.Buffer
	// sizes holds the GPU size of the f32 derived tensors (transforms no
	// other tensor is derived from) whose values were dropped from the Go
	// heap once uploaded (buffer): they live on in their buffers only. For a 256×256 UNet on the serial kernels the
	// Winograd filters alone are about 1.1 GiB of f32, which the wasm heap
	// would otherwise keep beside the model's own weights.
	sizes map[string]uint64
}

// tensor is a parameter or a concatenation of parameters.
func (w *weightStore) tensor(name string) *tensor.Tensor {
	if t, ok := w.params[name]; ok {
		return t
	}
	return w.joined[name]
}

// concat names the parameters' data laid end to end (for a fused kernel
// that reads several weights as one, e.g. q, k and v as one [3C, C]
// matrix), creating it on first use. Every name must exist.
func (w *weightStore) concat(names ...string) string {
	key := "concat(" + strings.Join(names, ",") + ")"
	if w.tensor(key) != nil {
		return key
	}
	var data []float32
	for _, n := range names {
		data = append(data, w.params[n].Data...)
	}
	if w.joined == nil {
		w.joined = map[string]*tensor.Tensor{}
	}
	w.joined[key] = tensor.From(data, len(data))
	return key
}

// derived names a tensor computed from parameters at compile time (a
// kernel-specific layout or transform, e.g. winograd.go's transformed
// filters), made by fill on first use. It is stored as f32 whatever the
// store's format when f32 is set (transformed values are rarely exact in
// f16), else in the store's format (a permutation of stored values).
func (w *weightStore) derived(key string, f32 bool, fill func() *tensor.Tensor) string {
	if w.tensor(key) != nil {
		return key
	}
	if w.joined == nil {
		w.joined = map[string]*tensor.Tensor{}
	}
	if w.f32 == nil {
		w.f32 = map[string]bool{}
	}
	w.joined[key] = fill()
	w.f32[key] = f32
	if f32 {
		// A transform (Winograd's filters) is the end of its line: uploaded
		// now, its values leave the Go heap before the next one is made.
		w.buffer(key)
	}
	return key
}

// stored is the named tensor's values as the kernels see them: rounded
// to f16 when the store packs it.
func (w *weightStore) stored(name string) *tensor.Tensor {
	t := w.tensor(name)
	if !w.packed(name) {
		return t
	}
	return RoundF16(map[string]*tensor.Tensor{name: t})[name]
}

// packed reports whether the named tensor is stored as packed f16.
func (w *weightStore) packed(name string) bool { return w.format == formatF16 && !w.f32[name] }

func newWeightStore(d *Device, params map[string]*tensor.Tensor, o Options) *weightStore {
	return &weightStore{dev: d, format: chooseFormat(params, o.Weights, useSerial(d, o)), params: params, bufs: map[string]*gpu.Buffer{}}
}

// bytes is the GPU size of a parameter in this store's format.
func (w *weightStore) bytes(name string) uint64 {
	if b, ok := w.sizes[name]; ok {
		return b
	}
	n := uint64(len(w.tensor(name).Data))
	if w.packed(name) {
		return 4 * ((n + 1) / 2)
	}
	return 4 * n
}

func (w *weightStore) buffer(name string) *gpu.Buffer {
	if b, ok := w.bufs[name]; ok {
		return b
	}
	data := w.tensor(name).Data
	var raw []byte
	if w.packed(name) {
		raw = gpu.Uint32Bytes(packF16(data))
	} else {
		raw = gpu.Float32Bytes(data)
	}
	size := max(uint64(len(raw)), 4)
	b := w.dev.gpu.CreateBuffer(name, roundUp(size, 4), gpu.Storage|gpu.CopyDst)
	w.dev.gpu.WriteBuffer(b, 0, raw)
	w.bufs[name] = b
	if t, ok := w.joined[name]; ok && w.f32[name] { // the buffer is its only copy from now on (sizes)
		if w.sizes == nil {
			w.sizes = map[string]uint64{}
		}
		w.sizes[name] = w.bytes(name)
		w.joined[name] = &tensor.Tensor{Shape: t.Shape}
	}
	return b
}

func (w *weightStore) destroy() {
	for _, b := range w.bufs {
		b.Destroy()
	}
	w.bufs = map[string]*gpu.Buffer{}
	for name := range w.sizes { // made again, from the parameters, if asked for again
		delete(w.joined, name)
	}
	w.sizes = nil
}

func roundUp(n, m uint64) uint64 { return (n + m - 1) / m * m }

// f32bits is the uniform encoding of a float parameter.
func f32bits(f float64) uint32 { return math.Float32bits(float32(f)) }
