//go:build js && wasm

package simd

import (
	"errors"
	"sync"
	"unsafe"
)

// In the browser the kernels work directly on Go's linear memory: the JS glue
// (simd_glue.js) instantiated kernels.wasm with Go's exported memory as its
// env.memory, and every //go:wasmimport simd.* call passes plain addresses of
// Go slices. Nothing is copied; a call costs a JS trampoline (~20 ns).

// Kernels is the kernel module as seen from Go. In js/wasm there is one
// instance, shared; the value only carries the allocation helpers.
type Kernels struct{ used int }

// NewKernels checks that the glue attached a kernel module of this build's
// ABI (abi() is 0 when the browser lacks SIMD128 or the glue found no module).
func NewKernels() (*Kernels, error) {
	switch v := wasm_abi(); v {
	case abiVersion:
		return &Kernels{}, nil
	case 0:
		return nil, errors.New("simd: no SIMD kernels attached (the browser lacks WebAssembly SIMD, or the page did not call attachSimd)")
	default:
		return nil, errors.New("simd: the page's kernels.wasm does not match this build (stale cache?)")
	}
}

// Used reports the bytes allocated through this Kernels.
func (k *Kernels) Used() int { return k.used }

// Close is a no-op in js/wasm: buffers are ordinary Go memory.
func (k *Kernels) Close() error { return nil }

// align16 returns the index of the first element of s at a 16-byte boundary.
func align16(p unsafe.Pointer, elem uintptr) int {
	return int(((16 - uintptr(p)%16) % 16) / elem)
}

// Alloc returns n zeroed float32s, 16-byte aligned.
func (k *Kernels) Alloc(n int) []float32 {
	k.used += 4 * n
	s := make([]float32, n+3)
	o := align16(unsafe.Pointer(unsafe.SliceData(s)), 4)
	return s[o : o+n : o+n]
}

// AllocI32 returns n zeroed int32s, 16-byte aligned.
func (k *Kernels) AllocI32(n int) []int32 {
	k.used += 4 * n
	s := make([]int32, n+3)
	o := align16(unsafe.Pointer(unsafe.SliceData(s)), 4)
	return s[o : o+n : o+n]
}

// AllocU16 returns n zeroed uint16s, 16-byte aligned.
func (k *Kernels) AllocU16(n int) []uint16 {
	k.used += 2 * n
	s := make([]uint16, n+7)
	o := align16(unsafe.Pointer(unsafe.SliceData(s)), 2)
	return s[o : o+n : o+n]
}

// expandKernels is the kernel set ExpandF16 uses, nil without kernels.
var expandKernels = sync.OnceValue(func() *Kernels {
	k, err := NewKernels()
	if err != nil {
		return nil
	}
	return k
})

// chunkScale multiplies winoChunkBytes: 1 for kernels.wasm.
func (k *Kernels) chunkScale() int { return 1 }
