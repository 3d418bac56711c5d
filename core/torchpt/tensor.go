package torchpt

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// dtypeInfo describes one element type.
type dtypeInfo struct {
	name     string
	itemsize int
}

// storageTypes maps torch.<X>Storage class names to element types.
var storageTypes = map[string]dtypeInfo{
	"FloatStorage":         {"float32", 4},
	"DoubleStorage":        {"float64", 8},
	"HalfStorage":          {"float16", 2},
	"BFloat16Storage":      {"bfloat16", 2},
	"LongStorage":          {"int64", 8},
	"IntStorage":           {"int32", 4},
	"ShortStorage":         {"int16", 2},
	"CharStorage":          {"int8", 1},
	"ByteStorage":          {"uint8", 1},
	"BoolStorage":          {"bool", 1},
	"ComplexFloatStorage":  {"complex64", 8},
	"ComplexDoubleStorage": {"complex128", 16},
	"UntypedStorage":       {"uint8", 1},
}

// Storage is one torch storage: a flat run of Numel elements of DType kept
// in the archive entry <top>/data/<Key>.
type Storage struct {
	Key      string
	DType    string
	Numel    int
	Location string // device it was saved from, e.g. "cpu" or "cuda:0"

	itemsize int
	a        *archive
	e        *entry
	once     sync.Once
	data     []byte
	err      error
}

// Bytes returns the raw storage bytes (in the file's byte order). For
// uncompressed archives this is a sub-slice of the loaded file: do not modify it.
func (s *Storage) Bytes() ([]byte, error) {
	s.once.Do(func() {
		if s.a == nil {
			s.err = errf(ErrBadStorage, "storage %q has no archive", s.Key)
			return
		}
		b, err := s.a.readEntry(s.e, int64(s.Numel)*int64(s.itemsize), "storage "+s.Key)
		if err != nil {
			s.err = err
			return
		}
		if len(b) != s.Numel*s.itemsize {
			s.err = errf(ErrBadStorage, "storage %q holds %d bytes, want %d", s.Key, len(b), s.Numel*s.itemsize)
			return
		}
		s.data = b
	})
	return s.data, s.err
}

// Tensor is a view into a Storage, as torch builds it.
type Tensor struct {
	DType        string // "float32","float16","bfloat16","float64","int64","int32","int16","int8","uint8","bool","complex64","complex128"
	Shape        []int
	Stride       []int // in elements
	Offset       int   // storage offset in elements
	RequiresGrad bool
	Parameter    bool // saved as torch.nn.Parameter
	Storage      *Storage
}

// Numel is the number of logical elements.
func (t *Tensor) Numel() int { return tensor.Numel(t.Shape) }

// Contiguous reports whether the tensor is a row-major run of its storage.
func (t *Tensor) Contiguous() bool {
	want := 1
	for i := len(t.Shape) - 1; i >= 0; i-- {
		if t.Shape[i] == 0 {
			return true
		}
		if t.Shape[i] != 1 && t.Stride[i] != want {
			return false
		}
		want *= t.Shape[i]
	}
	return true
}

// newTensor validates a view before accepting it, so that later conversions
// cannot read outside the storage nor allocate without bound.
func newTensor(s *Storage, offset int64, size, stride []int64, opts *Options) (*Tensor, error) {
	if len(size) != len(stride) {
		return nil, errf(ErrBadTensor, "size has %d dims but stride has %d", len(size), len(stride))
	}
	if len(size) > opts.MaxDims {
		return nil, errf(ErrTooLarge, "tensor has %d dims (limit %d)", len(size), opts.MaxDims)
	}
	if offset > int64(s.Numel) {
		return nil, errf(ErrBadTensor, "storage offset %d out of range for a %d-element storage", offset, s.Numel)
	}
	numel, maxIdx, err := viewExtent(offset, size, stride)
	if err != nil {
		return nil, err
	}
	if numel > 0 {
		if maxIdx >= uint64(s.Numel) {
			return nil, errf(ErrBadTensor, "view (offset %d, size %v, stride %v) reaches element %d of a %d-element storage",
				offset, size, stride, maxIdx, s.Numel)
		}
		if numel > uint64(s.Numel) && numel > uint64(opts.MaxExpandElements) {
			return nil, errf(ErrTooLarge, "tensor of %d elements over a %d-element storage (expansion limit %d)",
				numel, s.Numel, opts.MaxExpandElements)
		}
	} else if uint64(offset) > uint64(s.Numel) {
		return nil, errf(ErrBadTensor, "storage offset %d past a %d-element storage", offset, s.Numel)
	}
	t := &Tensor{DType: s.DType, Offset: int(offset), Storage: s,
		Shape: make([]int, len(size)), Stride: make([]int, len(size))}
	for i := range size {
		t.Shape[i], t.Stride[i] = int(size[i]), int(stride[i])
	}
	return t, nil
}

// Bytes returns the tensor's elements in row-major order, in the file's
// byte order (little-endian for every file current PyTorch writes). A
// contiguous tensor's bytes alias the loaded file; any other view is copied,
// and the copy counts towards the checkpoint's MaxTotalBytes.
func (t *Tensor) Bytes() ([]byte, error) {
	raw, n, err := t.view()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return []byte{}, nil
	}
	if !t.Contiguous() {
		if err := t.charge(n, t.Storage.itemsize, "Bytes"); err != nil {
			return nil, err
		}
	}
	return t.gather(raw, n), nil
}

// view returns the storage bytes and the element count of the (re-checked)
// view. Nothing is allocated but the storage itself, when it is inflated.
func (t *Tensor) view() ([]byte, int, error) {
	if t.Storage == nil {
		return nil, 0, errf(ErrBadStorage, "tensor has no storage")
	}
	raw, err := t.Storage.Bytes()
	if err != nil {
		return nil, 0, err
	}
	n, err := t.checkView(len(raw), t.Storage.itemsize)
	if err != nil {
		return nil, 0, err
	}
	return raw, n, nil
}

// gather returns the view's n elements in row-major order: a sub-slice of
// raw when contiguous, else a copy.
func (t *Tensor) gather(raw []byte, n int) []byte {
	isz := t.Storage.itemsize
	if n == 0 {
		return []byte{}
	}
	if t.Contiguous() {
		return raw[t.Offset*isz : (t.Offset+n)*isz]
	}
	out := make([]byte, n*isz)
	idx := make([]int, len(t.Shape))
	src := t.Offset
	for i := 0; i < n; i++ {
		copy(out[i*isz:(i+1)*isz], raw[src*isz:(src+1)*isz])
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			src += t.Stride[d]
			if idx[d] < t.Shape[d] {
				break
			}
			src -= idx[d] * t.Stride[d]
			idx[d] = 0
		}
	}
	return out
}

// charge counts n elements of size bytes each, about to be allocated by
// what, against the checkpoint's MaxTotalBytes. Tensors made by hand (no
// archive) are not counted.
func (t *Tensor) charge(n, size int, what string) error {
	if t.Storage == nil || t.Storage.a == nil {
		return nil
	}
	return t.Storage.a.charge(int64(n), int64(size), what)
}

// charge adds n·size bytes of converted tensor data to the archive's total,
// or refuses, counting nothing, when the total would pass MaxTotalBytes.
func (a *archive) charge(n, size int64, what string) error {
	bytes := limits.Mul(n, size)
	for {
		done := a.converted.Load()
		total := limits.Add(done, bytes)
		if total > a.opts.MaxTotalBytes {
			return errf(ErrTooLarge, "%s of %d elements (%s) would take the tensor data converted from this checkpoint to %s, over the %s limit (MaxTotalBytes)",
				what, n, limits.Bytes(bytes), limits.Bytes(total), limits.Bytes(a.opts.MaxTotalBytes))
		}
		if a.converted.CompareAndSwap(done, total) {
			return nil
		}
	}
}

// viewExtent checks a view's geometry without overflow and returns its
// element count and the highest storage index it reaches (offset when empty).
func viewExtent(offset int64, size, stride []int64) (numel, maxIdx uint64, err error) {
	if len(size) != len(stride) {
		return 0, 0, errf(ErrBadTensor, "size has %d dims but stride has %d", len(size), len(stride))
	}
	const lim = math.MaxInt >> 1
	if offset < 0 {
		return 0, 0, errf(ErrBadTensor, "negative storage offset %d", offset)
	}
	if offset > lim {
		return 0, 0, errf(ErrBadTensor, "storage offset %d out of range", offset)
	}
	numel, maxIdx = 1, uint64(offset)
	for i := range size {
		if size[i] < 0 || stride[i] < 0 || size[i] > lim || stride[i] > lim {
			return 0, 0, errf(ErrBadTensor, "bad size %d / stride %d in dim %d", size[i], stride[i], i)
		}
		hi, lo := bits.Mul64(numel, uint64(size[i]))
		if hi != 0 || lo > lim {
			return 0, 0, errf(ErrTooLarge, "tensor size %v overflows", size)
		}
		numel = lo
	}
	if numel == 0 {
		return 0, maxIdx, nil
	}
	for i := range size {
		hi, lo := bits.Mul64(uint64(size[i]-1), uint64(stride[i]))
		if hi != 0 || lo > lim {
			return 0, 0, errf(ErrBadTensor, "size %v with stride %v overflows", size, stride)
		}
		if maxIdx += lo; maxIdx > lim {
			return 0, 0, errf(ErrBadTensor, "size %v with stride %v overflows", size, stride)
		}
	}
	return numel, maxIdx, nil
}

// checkView re-validates the (exported, hence mutable) view fields against
// the storage bytes before any indexing, and returns the element count.
func (t *Tensor) checkView(rawLen, isz int) (int, error) {
	if isz <= 0 || dtypeSize(t.DType) != isz {
		return 0, errf(ErrBadTensor, "%s tensor over a %s storage", t.DType, t.Storage.DType)
	}
	size := make([]int64, len(t.Shape))
	stride := make([]int64, len(t.Stride))
	for i, d := range t.Shape {
		size[i] = int64(d)
	}
	for i, d := range t.Stride {
		stride[i] = int64(d)
	}
	numel, maxIdx, err := viewExtent(int64(t.Offset), size, stride)
	if err != nil || numel == 0 {
		return 0, err
	}
	if maxIdx >= uint64(rawLen/isz) {
		return 0, errf(ErrBadTensor, "view reaches element %d of a %d-element storage", maxIdx, rawLen/isz)
	}
	return int(numel), nil
}

func dtypeSize(name string) int {
	for _, d := range storageTypes {
		if d.name == name {
			return d.itemsize
		}
	}
	return 0
}

func (t *Tensor) order() binary.ByteOrder {
	if t.Storage != nil && t.Storage.a != nil && t.Storage.a.order != nil {
		return t.Storage.a.order
	}
	return binary.LittleEndian
}

// Float32 returns the elements in row-major order as float32. Every real
// dtype converts (integers and bools by value); complex types are refused.
// The result counts towards the checkpoint's MaxTotalBytes.
func (t *Tensor) Float32() ([]float32, error) {
	raw, n, err := t.view()
	if err != nil {
		return nil, err
	}
	if !isRealDType(t.DType) {
		return nil, errf(ErrUnsupported, "cannot convert a %s tensor to real numbers", t.DType)
	}
	if err := t.charge(n, 4, "Float32"); err != nil {
		return nil, err
	}
	return t.float32s(raw, n)
}

// float32s converts the view's n elements (already checked and charged).
func (t *Tensor) float32s(raw []byte, n int) ([]float32, error) {
	b := t.gather(raw, n)
	bo := t.order()
	out := make([]float32, n)
	switch t.DType {
	case "float32":
		for i := range out {
			out[i] = math.Float32frombits(bo.Uint32(b[4*i:]))
		}
	case "float16":
		tensor.DecodeF16(out, b, bo)
	case "bfloat16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(bo.Uint16(b[2*i:])) << 16)
		}
	case "float64":
		for i := range out {
			out[i] = float32(math.Float64frombits(bo.Uint64(b[8*i:])))
		}
	default:
		ints, err := t.intsFrom(b, n, bo)
		if err != nil {
			return nil, err
		}
		for i, v := range ints {
			out[i] = float32(v)
		}
	}
	return out, nil
}

// Float64 returns the elements in row-major order as float64 (any real
// dtype). The result counts towards the checkpoint's MaxTotalBytes.
func (t *Tensor) Float64() ([]float64, error) {
	raw, n, err := t.view()
	if err != nil {
		return nil, err
	}
	if !isRealDType(t.DType) {
		return nil, errf(ErrUnsupported, "cannot convert a %s tensor to real numbers", t.DType)
	}
	if err := t.charge(n, 8, "Float64"); err != nil {
		return nil, err
	}
	switch {
	case isIntDType(t.DType): // keep full integer precision
		ints, err := t.intsFrom(t.gather(raw, n), n, t.order())
		if err != nil {
			return nil, err
		}
		out := make([]float64, len(ints))
		for i, v := range ints {
			out[i] = float64(v)
		}
		return out, nil
	case t.DType == "float64":
		b := t.gather(raw, n)
		bo := t.order()
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(bo.Uint64(b[8*i:]))
		}
		return out, nil
	}
	f, err := t.float32s(raw, n)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out, nil
}

func isIntDType(d string) bool {
	switch d {
	case "int64", "int32", "int16", "int8", "uint8", "bool":
		return true
	}
	return false
}

func isRealDType(d string) bool {
	switch d {
	case "float32", "float16", "bfloat16", "float64":
		return true
	}
	return isIntDType(d)
}

// Int64 returns the elements of an integer or bool tensor in row-major
// order. The result counts towards the checkpoint's MaxTotalBytes.
func (t *Tensor) Int64() ([]int64, error) {
	if !isIntDType(t.DType) {
		return nil, errf(ErrUnsupported, "Int64 of a %s tensor", t.DType)
	}
	raw, n, err := t.view()
	if err != nil {
		return nil, err
	}
	if err := t.charge(n, 8, "Int64"); err != nil {
		return nil, err
	}
	return t.intsFrom(t.gather(raw, n), n, t.order())
}

func (t *Tensor) intsFrom(b []byte, n int, bo binary.ByteOrder) ([]int64, error) {
	out := make([]int64, n)
	switch t.DType {
	case "int64":
		for i := range out {
			out[i] = int64(bo.Uint64(b[8*i:]))
		}
	case "int32":
		for i := range out {
			out[i] = int64(int32(bo.Uint32(b[4*i:])))
		}
	case "int16":
		for i := range out {
			out[i] = int64(int16(bo.Uint16(b[2*i:])))
		}
	case "int8":
		for i := range out {
			out[i] = int64(int8(b[i]))
		}
	case "uint8":
		for i := range out {
			out[i] = int64(b[i])
		}
	case "bool":
		for i := range out {
			if b[i] != 0 {
				out[i] = 1
			}
		}
	default:
		return nil, errf(ErrUnsupported, "cannot convert a %s tensor to real numbers", t.DType)
	}
	return out, nil
}

// ToTensor converts to the core float32 tensor type (a copy, which counts
// towards the checkpoint's MaxTotalBytes).
func (t *Tensor) ToTensor() (*tensor.Tensor, error) {
	f, err := t.Float32()
	if err != nil {
		return nil, err
	}
	return tensor.From(f, t.Shape...), nil
}
