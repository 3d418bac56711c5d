//go:build !unix && !(js && wasm)

package simd

import "math"

// linearMemory without mmap: one Go allocation of the whole reservation
// (the runtime takes large allocations straight from the OS, so untouched
// pages stay virtual), never moved.
type linearMemory struct{ buf []byte }

func newLinearMemory(max uint64) (*linearMemory, error) {
	if max > math.MaxInt/2 {
		max = math.MaxInt / 2 &^ 0xffff
	}
	return &linearMemory{make([]byte, max)}, nil
}

// Reallocate implements experimental.LinearMemory.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size]
}

// Free implements experimental.LinearMemory.
func (m *linearMemory) Free() { m.buf = nil }
