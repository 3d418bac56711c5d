//go:build !(js && wasm)

package simd

import (
	"context"
	_ "embed"
	"fmt"
	"sync"
	"unsafe"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/diffuse-web/diffuse/wasm/simd/internal/wasmenc"
)

// Natively the kernels run under wazero (which implements SIMD128), over a
// linear memory that this package reserves up front and never moves: every
// buffer the backend hands to a kernel is allocated inside it (Alloc), and
// Go reads and writes the same bytes through ordinary slices. So the code
// above this file — packing, planning, graph walking — is the same code that
// runs in the browser over Go's own memory, and a kernel call costs no copy.

//go:embed kernels.wasm
var kernelsWasm []byte

// reserveBytes is the address space reserved per Kernels: the wasm32 limit
// less one page. It is virtual memory; pages are committed when used.
const reserveBytes = 1<<32 - 1<<16

var (
	rtOnce   sync.Once
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	memMod   wazero.CompiledModule
	rtErr    error
)

func runtimeInit() {
	ctx := context.Background()
	rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2).
		WithCloseOnContextDone(false))
	if compiled, rtErr = rt.CompileModule(ctx, kernelsWasm); rtErr != nil {
		rtErr = fmt.Errorf("simd: compiling kernels.wasm under wazero: %w", rtErr)
		return
	}
	m := &wasmenc.Module{}
	m.DefineMemory(wasmenc.Limits{Min: 1, Max: reserveBytes >> 16}, "memory")
	if memMod, rtErr = rt.CompileModule(ctx, m.Bytes()); rtErr != nil {
		rtErr = fmt.Errorf("simd: compiling the memory module: %w", rtErr)
	}
}

// Kernels is one instance of the kernel module and the memory it works in,
// or (NewGoKernels) the native Go kernel set over ordinary Go memory.
// It is not safe for concurrent use.
type Kernels struct {
	gok   *goKernels // non-nil: the Go set runs every kernel (kernels_go.go)
	ctx   context.Context
	mem   *linearMemory
	memI  api.Module
	mod   api.Module
	used  uintptr // bytes allocated (bump pointer)
	fns   [len(kernelNames)]api.Function
	stack [16]uint64
}

// NewKernels instantiates the kernels over a fresh memory.
func NewKernels() (*Kernels, error) {
	rtOnce.Do(runtimeInit)
	if rtErr != nil {
		return nil, rtErr
	}
	k := &Kernels{ctx: context.Background()}
	var err error
	alloc := experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
		k.mem, err = newLinearMemory(max)
		if err != nil {
			return nil
		}
		return k.mem
	})
	k.memI, err = rt.InstantiateModule(experimental.WithMemoryAllocator(k.ctx, alloc), memMod, wazero.NewModuleConfig().WithName(""))
	if err != nil || k.mem == nil {
		return nil, fmt.Errorf("simd: reserving kernel memory: %v", err)
	}
	resolve := experimental.WithImportResolver(k.ctx, func(name string) api.Module {
		if name == "env" {
			return k.memI
		}
		return nil
	})
	if k.mod, err = rt.InstantiateModule(resolve, compiled, wazero.NewModuleConfig().WithName("")); err != nil {
		k.memI.Close(k.ctx)
		return nil, fmt.Errorf("simd: instantiating kernels: %w", err)
	}
	for i, name := range kernelNames {
		if k.fns[i] = k.mod.ExportedFunction(name); k.fns[i] == nil {
			k.Close()
			return nil, fmt.Errorf("simd: kernels.wasm lacks %s", name)
		}
	}
	if v := k.abi(); v != abiVersion {
		k.Close()
		return nil, fmt.Errorf("simd: kernels.wasm has ABI %d, this build wants %d (run go generate)", v, abiVersion)
	}
	k.used = 64 // address 0 stands for "no buffer"
	return k, nil
}

// Close releases the instance and its memory. Slices from Alloc must not be
// used afterwards.
func (k *Kernels) Close() error {
	if k.gok != nil {
		return nil
	}
	if k.mod != nil {
		k.mod.Close(k.ctx)
		k.memI.Close(k.ctx) // frees the linear memory
		k.mod = nil
	}
	return nil
}

// grow makes sure the first n bytes of the memory are committed.
func (k *Kernels) grow(n uintptr) {
	mem := k.memI.ExportedMemory("memory")
	size := uintptr(mem.Size())
	if n <= size {
		return
	}
	pages := (n - size + 1<<16 - 1) >> 16
	if _, ok := mem.Grow(uint32(pages)); !ok {
		panic(fmt.Sprintf("simd: kernel memory exhausted (%d MiB wanted)", n>>20))
	}
}

func (k *Kernels) allocBytes(n, elem int) unsafe.Pointer {
	if k.gok != nil {
		k.used += uintptr(n * elem)
		return goAlloc(n * elem)
	}
	off := (k.used + 15) &^ 15
	end := off + uintptr(n*elem)
	if end > uintptr(len(k.mem.buf)) {
		panic(fmt.Sprintf("simd: kernel memory exhausted (%d MiB wanted)", end>>20))
	}
	k.grow(end)
	k.used = end
	return unsafe.Pointer(&k.mem.buf[off])
}

// Alloc returns n zeroed float32s in kernel memory, 16-byte aligned.
func (k *Kernels) Alloc(n int) []float32 { return unsafe.Slice((*float32)(k.allocBytes(n, 4)), n) }

// AllocI32 returns n zeroed int32s in kernel memory, 16-byte aligned.
func (k *Kernels) AllocI32(n int) []int32 { return unsafe.Slice((*int32)(k.allocBytes(n, 4)), n) }

// AllocU16 returns n zeroed uint16s in kernel memory, 16-byte aligned.
func (k *Kernels) AllocU16(n int) []uint16 { return unsafe.Slice((*uint16)(k.allocBytes(n, 2)), n) }

// Used reports the bytes of kernel memory allocated so far.
func (k *Kernels) Used() int { return int(k.used) }

// addr turns a pointer into kernel memory into its wasm address (0 for nil).
func (k *Kernels) addr(p unsafe.Pointer, bytes int) uint64 {
	if p == nil {
		return 0
	}
	base := uintptr(unsafe.Pointer(&k.mem.buf[0]))
	a := uintptr(p)
	if a < base || a+uintptr(bytes) > base+uintptr(len(k.mem.buf)) {
		panic("simd: buffer is not in kernel memory (allocate it with Kernels.Alloc)")
	}
	return uint64(a - base)
}

func (k *Kernels) addrF32(s []float32) uint64 {
	return k.addr(unsafe.Pointer(unsafe.SliceData(s)), 4*len(s))
}
func (k *Kernels) addrI32(s []int32) uint64 {
	return k.addr(unsafe.Pointer(unsafe.SliceData(s)), 4*len(s))
}
func (k *Kernels) addrU16(s []uint16) uint64 {
	return k.addr(unsafe.Pointer(unsafe.SliceData(s)), 2*len(s))
}

func (k *Kernels) call(fn int, args ...uint64) uint64 {
	copy(k.stack[:], args)
	if err := k.fns[fn].CallWithStack(k.ctx, k.stack[:]); err != nil {
		panic(fmt.Sprintf("simd: kernel %s trapped: %v", kernelNames[fn], err))
	}
	return k.stack[0]
}

// expandKernels: natively ExpandF16 is plain Go (the kernels would need a
// copy into their memory, and native Go is fast enough).
func expandKernels() *Kernels { return nil }

// chunkScale multiplies winoChunkBytes: kernels.wasm's blocks of 128 KiB
// for wazero, goChunkScale times that for the Go set, whose GEMM tiles
// want more columns (a block of 8 tiles gives one-panel GEMMs) and whose
// cores have larger caches than the browser's block size assumes.
func (k *Kernels) chunkScale() int {
	if k.gok != nil {
		return goChunkScale
	}
	return 1
}
