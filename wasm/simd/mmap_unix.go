//go:build unix && !(js && wasm)

package simd

import (
	"math"
	"syscall"
)

// linearMemory is the backing of a kernel memory: one anonymous mapping of
// the whole reservation, so the bytes never move when the wasm memory grows
// (Go slices into it stay valid) and untouched pages cost nothing.
type linearMemory struct{ buf []byte }

func newLinearMemory(max uint64) (*linearMemory, error) {
	if max > math.MaxInt/2 { // 32-bit hosts: reserve what the address space allows
		max = math.MaxInt / 2 &^ 0xffff
	}
	b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE|mapNoReserve)
	if err != nil {
		return nil, err
	}
	return &linearMemory{b}, nil
}

// Reallocate implements experimental.LinearMemory.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size]
}

// Free implements experimental.LinearMemory.
func (m *linearMemory) Free() {
	if m.buf != nil {
		syscall.Munmap(m.buf)
		m.buf = nil
	}
}
