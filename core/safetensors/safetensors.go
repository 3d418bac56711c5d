// Package safetensors reads and writes the safetensors weight format:
// an 8-byte little-endian header length N, N bytes of JSON describing each
// tensor's dtype, shape and byte range, then the raw little-endian data.
//
// The reader validates the way the reference Rust implementation does (and
// also rejects duplicate JSON keys), never panics, and keeps tensor data as
// slices of the input so loading a model does not copy it.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"runtime"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/x448/float16"
)

// MaxHeaderSize is the largest header accepted, the reference implementation's
// limit; it keeps a forged length from making us parse megabytes of JSON.
const MaxHeaderSize = 100_000_000

// MaxFileSize is the largest file ReadFile loads whole. Under wasm the
// address space is 4 GiB, so the limit there leaves room for the runtime.
var MaxFileSize int64 = defaultMaxFileSize()

func defaultMaxFileSize() int64 {
	if runtime.GOARCH == "wasm" {
		return 3 << 30
	}
	return 64 << 30
}

// DType is the element type code used in the header.
type DType string

// The dtypes the reference implementation defines that have a whole number
// of bytes per element.
const (
	BOOL   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	F8E5M2 DType = "F8_E5M2"
	F8E4M3 DType = "F8_E4M3"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	F64    DType = "F64"
	I64    DType = "I64"
	U64    DType = "U64"
)

// Size is the number of bytes per element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case BOOL, U8, I8, F8E5M2, F8E4M3:
		return 1
	case I16, U16, F16, BF16:
		return 2
	case I32, U32, F32:
		return 4
	case F64, I64, U64:
		return 8
	}
	return 0
}

// TensorInfo is one tensor of a file. Data aliases the input buffer.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// File is a parsed safetensors file.
type File struct {
	Metadata map[string]string // nil when the file has no __metadata__
	Tensors  []TensorInfo      // sorted by data offset
	index    map[string]int
}

// Get returns the tensor with the given name.
func (f *File) Get(name string) (*TensorInfo, bool) {
	if f.index != nil {
		i, ok := f.index[name]
		if !ok {
			return nil, false
		}
		return &f.Tensors[i], true
	}
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i], true
		}
	}
	return nil, false
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, len(f.Tensors))
	for i := range f.Tensors {
		names[i] = f.Tensors[i].Name
	}
	sort.Strings(names)
	return names
}

// ReadFile loads a whole file and parses it. Sizes beyond MaxFileSize are
// refused up front rather than failing in the allocator.
func ReadFile(path string) (*File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() { // a device such as /dev/zero never ends
		return nil, &limits.FileError{Path: path, Why: fmt.Sprintf("not a regular file (%s)", st.Mode().Type())}
	}
	if st.Size() > MaxFileSize || uint64(st.Size()) > math.MaxInt {
		return nil, errf("", ErrFileTooLarge, "%s is %d bytes, limit %d", path, st.Size(), MaxFileSize)
	}
	data, err := limits.ReadFile(path, MaxFileSize)
	if err != nil {
		return nil, err
	}
	return Read(data)
}

// entry is a tensor as described by the header, before layout checks.
type entry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end uint64
	size       uint64
}

// Read parses a file held in memory. The returned tensors' Data slices point
// into data, so data must not be modified while they are in use.
func Read(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, errf("", ErrTooShort, "%d bytes, need at least 8", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderSize {
		return nil, errf("", ErrHeaderTooLarge, "header length %d exceeds %d", n, MaxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, errf("", ErrHeaderBounds, "header length %d but only %d bytes follow", n, len(data)-8)
	}
	hdr := data[8 : 8+n]
	body := data[8+n:]
	if !utf8.Valid(hdr) {
		return nil, errf("", ErrInvalidUTF8, "header is not valid UTF-8")
	}
	// The reference requires the object to start immediately; json.Valid
	// first so that syntax errors win over semantic ones, as they do there.
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, errf("", ErrInvalidJSON, "header does not start with '{'")
	}
	if !json.Valid(hdr) {
		return nil, errf("", ErrInvalidJSON, "header is not valid JSON")
	}
	entries, meta, err := parseHeader(hdr, uint64(len(body)))
	if err != nil {
		return nil, err
	}
	// Order by position (zero-sized tensors first at a shared offset, then
	// by name) and require the ranges to tile the data section exactly.
	sort.Slice(entries, func(i, j int) bool {
		a, b := &entries[i], &entries[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.name < b.name
	})
	f := &File{Metadata: meta, Tensors: make([]TensorInfo, len(entries)), index: make(map[string]int, len(entries))}
	var pos uint64
	for i := range entries {
		e := &entries[i]
		if e.begin != pos {
			what := "gap"
			if e.begin < pos {
				what = "overlap"
			}
			return nil, errf(e.name, ErrNotContiguous, "%s: starts at %d, previous data ends at %d", what, e.begin, pos)
		}
		pos = e.end
		f.Tensors[i] = TensorInfo{Name: e.name, DType: e.dtype, Shape: e.shape, Data: body[e.begin:e.end:e.end]}
		f.index[e.name] = i
	}
	if pos != uint64(len(body)) {
		return nil, errf("", ErrTrailingData, "tensors cover %d bytes, data section has %d", pos, len(body))
	}
	return f, nil
}

// parseHeader walks the JSON tokens itself, because encoding/json's map
// decoding would silently keep the last of duplicate keys. The input is
// already known to be valid JSON.
func parseHeader(hdr []byte, dataLen uint64) ([]entry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '{'
		return nil, nil, errf("", ErrInvalidJSON, "%v", err)
	}
	var entries []entry
	var meta map[string]string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, errf("", ErrInvalidJSON, "%v", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return nil, nil, errf(name, ErrDuplicateName, "key appears more than once in the header")
		}
		seen[name] = true
		if name == "__metadata__" {
			if meta, err = parseMetadata(dec); err != nil {
				return nil, nil, err
			}
			continue
		}
		e, err := parseEntry(dec, name, dataLen)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, nil, errf("", ErrInvalidJSON, "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errf("", ErrInvalidJSON, "data after the header object")
	}
	return entries, meta, nil
}

func isDelim(tok json.Token, d rune) bool {
	t, ok := tok.(json.Delim)
	return ok && rune(t) == d
}

// parseMetadata reads the __metadata__ object: string keys to string
// values. A tensor-shaped value there means someone named a tensor
// "__metadata__", which is reported as such.
func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, errf("", ErrInvalidJSON, "%v", err)
	}
	if tok == nil {
		return nil, nil // null: same as absent, as in the reference
	}
	if !isDelim(tok, '{') {
		return nil, errf("", ErrBadMetadata, "__metadata__ is not an object")
	}
	meta := map[string]string{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, errf("", ErrInvalidJSON, "%v", err)
		}
		k, _ := kt.(string)
		vt, err := dec.Token()
		if err != nil {
			return nil, errf("", ErrInvalidJSON, "%v", err)
		}
		v, ok := vt.(string)
		if !ok {
			if k == "data_offsets" || k == "shape" {
				return nil, errf("__metadata__", ErrReservedName, "a tensor may not be named __metadata__")
			}
			return nil, errf("", ErrBadMetadata, "value of %q is not a string", k)
		}
		if _, dup := meta[k]; dup {
			return nil, errf("", ErrBadMetadata, "duplicate key %q", k)
		}
		meta[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, errf("", ErrInvalidJSON, "%v", err)
	}
	return meta, nil
}

func parseEntry(dec *json.Decoder, name string, dataLen uint64) (entry, error) {
	e := entry{name: name}
	tok, err := dec.Token()
	if err != nil {
		return e, errf(name, ErrInvalidJSON, "%v", err)
	}
	if !isDelim(tok, '{') {
		return e, errf(name, ErrBadEntry, "entry is not an object")
	}
	var haveDType, haveShape, haveOffsets bool
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return e, errf(name, ErrInvalidJSON, "%v", err)
		}
		key, _ := kt.(string)
		dup := false
		switch key {
		case "dtype":
			dup, haveDType = haveDType, true
			if !dup {
				err = parseDType(dec, &e)
			}
		case "shape":
			dup, haveShape = haveShape, true
			if !dup {
				err = parseShape(dec, &e)
			}
		case "data_offsets":
			dup, haveOffsets = haveOffsets, true
			if !dup {
				err = parseOffsets(dec, &e, dataLen)
			}
		default:
			return e, errf(name, ErrBadEntry, "unexpected field %q", key)
		}
		if dup {
			return e, errf(name, ErrBadEntry, "duplicate field %q", key)
		}
		if err != nil {
			return e, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return e, errf(name, ErrInvalidJSON, "%v", err)
	}
	switch {
	case !haveDType:
		return e, errf(name, ErrBadEntry, "missing dtype")
	case !haveShape:
		return e, errf(name, ErrBadEntry, "missing shape")
	case !haveOffsets:
		return e, errf(name, ErrBadEntry, "missing data_offsets")
	}
	numel, ok := numElements(e.shape)
	if !ok {
		return e, errf(name, ErrSizeOverflow, "shape %v has too many elements", e.shape)
	}
	hi, size := bits.Mul64(numel, uint64(e.dtype.Size()))
	if hi != 0 || size > math.MaxInt {
		return e, errf(name, ErrSizeOverflow, "shape %v of %s is too many bytes", e.shape, e.dtype)
	}
	e.size = size
	if e.begin > e.end {
		return e, errf(name, ErrOffsetsMismatch, "begin %d after end %d", e.begin, e.end)
	}
	if e.end-e.begin != size {
		return e, errf(name, ErrOffsetsMismatch, "offsets [%d, %d] span %d bytes, %s %v needs %d", e.begin, e.end, e.end-e.begin, e.dtype, e.shape, size)
	}
	if e.end > dataLen {
		return e, errf(name, ErrOffsetsOutOfBounds, "end %d beyond data section of %d bytes", e.end, dataLen)
	}
	return e, nil
}

// numElements multiplies the dimensions left to right, failing on overflow
// as the reference does even if a later dimension is zero.
func numElements(shape []int) (uint64, bool) {
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt {
			return 0, false
		}
		n = lo
	}
	return n, true
}

func parseDType(dec *json.Decoder, e *entry) error {
	tok, err := dec.Token()
	if err != nil {
		return errf(e.name, ErrInvalidJSON, "%v", err)
	}
	s, ok := tok.(string)
	if !ok {
		return errf(e.name, ErrBadEntry, "dtype is not a string")
	}
	if DType(s).Size() == 0 {
		return errf(e.name, ErrUnknownDType, "%q", s)
	}
	e.dtype = DType(s)
	return nil
}

func parseShape(dec *json.Decoder, e *entry) error {
	tok, err := dec.Token()
	if err != nil {
		return errf(e.name, ErrInvalidJSON, "%v", err)
	}
	if !isDelim(tok, '[') {
		return errf(e.name, ErrBadEntry, "shape is not a list")
	}
	e.shape = []int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errf(e.name, ErrInvalidJSON, "%v", err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return errf(e.name, ErrBadShape, "dimension %v is not an integer", tok)
		}
		d, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			if isDigits(string(num)) {
				return errf(e.name, ErrSizeOverflow, "dimension %s too large", num)
			}
			return errf(e.name, ErrBadShape, "dimension %s is not a non-negative integer", num)
		}
		if d > math.MaxInt {
			return errf(e.name, ErrSizeOverflow, "dimension %d too large", d)
		}
		e.shape = append(e.shape, int(d))
	}
	if _, err := dec.Token(); err != nil {
		return errf(e.name, ErrInvalidJSON, "%v", err)
	}
	return nil
}

func parseOffsets(dec *json.Decoder, e *entry, dataLen uint64) error {
	tok, err := dec.Token()
	if err != nil {
		return errf(e.name, ErrInvalidJSON, "%v", err)
	}
	if !isDelim(tok, '[') {
		return errf(e.name, ErrBadEntry, "data_offsets is not a list")
	}
	var offs []uint64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errf(e.name, ErrInvalidJSON, "%v", err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return errf(e.name, ErrBadEntry, "data offset %v is not an integer", tok)
		}
		if len(offs) == 2 {
			return errf(e.name, ErrBadEntry, "data_offsets has more than 2 elements")
		}
		o, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			if isDigits(string(num)) {
				return errf(e.name, ErrOffsetsOutOfBounds, "offset %s beyond data section of %d bytes", num, dataLen)
			}
			return errf(e.name, ErrBadEntry, "data offset %s is not a non-negative integer", num)
		}
		offs = append(offs, o)
	}
	if _, err := dec.Token(); err != nil {
		return errf(e.name, ErrInvalidJSON, "%v", err)
	}
	if len(offs) != 2 {
		return errf(e.name, ErrBadEntry, "data_offsets has %d elements, want 2", len(offs))
	}
	e.begin, e.end = offs[0], offs[1]
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Numel is the number of elements (1 for a scalar).
func (t *TensorInfo) Numel() int {
	n, ok := numElements(t.Shape)
	if !ok {
		return -1
	}
	return int(n)
}

// Float32 converts the tensor's data to float32. Every known dtype converts
// (integers and 64-bit floats round to the nearest float32).
func (t *TensorInfo) Float32() ([]float32, error) {
	sz := t.DType.Size()
	if sz == 0 {
		return nil, errf(t.Name, ErrUnknownDType, "%q", t.DType)
	}
	n := t.Numel()
	if n < 0 || len(t.Data)/sz != n || len(t.Data)%sz != 0 {
		return nil, errf(t.Name, ErrOffsetsMismatch, "%d bytes of data for %s %v", len(t.Data), t.DType, t.Shape)
	}
	out := make([]float32, n)
	d := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case F16:
		tensor.DecodeF16(out, d, le)
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(le.Uint16(d[2*i:])) << 16)
		}
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(d[4*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(d[8*i:])))
		}
	case F8E5M2:
		// E5M2 is binary16 with the low mantissa byte dropped.
		for i := range out {
			out[i] = float16.Frombits(uint16(d[i]) << 8).Float32()
		}
	case F8E4M3:
		for i := range out {
			out[i] = e4m3ToF32(d[i])
		}
	case BOOL:
		for i := range out {
			if d[i] != 0 {
				out[i] = 1
			}
		}
	case U8:
		for i := range out {
			out[i] = float32(d[i])
		}
	case I8:
		for i := range out {
			out[i] = float32(int8(d[i]))
		}
	case I16:
		for i := range out {
			out[i] = float32(int16(le.Uint16(d[2*i:])))
		}
	case U16:
		for i := range out {
			out[i] = float32(le.Uint16(d[2*i:]))
		}
	case I32:
		for i := range out {
			out[i] = float32(int32(le.Uint32(d[4*i:])))
		}
	case U32:
		for i := range out {
			out[i] = float32(le.Uint32(d[4*i:]))
		}
	case I64:
		for i := range out {
			out[i] = float32(int64(le.Uint64(d[8*i:])))
		}
	case U64:
		for i := range out {
			out[i] = float32(le.Uint64(d[8*i:]))
		}
	default:
		return nil, errf(t.Name, ErrUnsupportedDType, "%s", t.DType)
	}
	return out, nil
}

// Tensor returns the data converted to a float32 tensor.
func (t *TensorInfo) Tensor() (*tensor.Tensor, error) {
	data, err := t.Float32()
	if err != nil {
		return nil, err
	}
	return tensor.From(data, t.Shape...), nil
}

// e4m3ToF32 decodes float8_e4m3fn: bias 7, no infinities, S.1111.111 is NaN.
func e4m3ToF32(b byte) float32 {
	sign := float32(1)
	if b&0x80 != 0 {
		sign = -1
	}
	exp := int(b>>3) & 0xf
	man := float32(b & 7)
	switch {
	case exp == 0xf && b&7 == 7:
		return float32(math.NaN())
	case exp == 0:
		return sign * man / 8 * (1.0 / 64) // subnormal: man/8 * 2^-6
	}
	return sign * (1 + man/8) * float32(math.Ldexp(1, exp-7))
}
