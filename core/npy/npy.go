// Package npy reads and writes NumPy .npy files, the format the reference
// fixtures (inputs, expected outputs, scheduler trajectories) are stored in.
//
// Only what the project needs is supported: little-endian float32, float64,
// int64 and int32 arrays in C order. Anything else is reported with an
// UnsupportedError rather than guessed at, and malformed or hostile input
// yields a FormatError without large allocations.
package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strings"

	"github.com/diffuse-web/diffuse/core/tensor"
)

// FormatError reports that the input is not a valid .npy file.
type FormatError string

func (e FormatError) Error() string { return "npy: invalid format: " + string(e) }

// UnsupportedError reports a valid .npy file that uses a feature this
// package does not implement (Fortran order, big-endian data, other dtypes).
type UnsupportedError string

func (e UnsupportedError) Error() string { return "npy: unsupported feature: " + string(e) }

// DType names the element type with NumPy's kind+size code, byte order
// stripped (the data is always little-endian).
type DType string

// The supported element types.
const (
	F4 DType = "f4" // float32
	F8 DType = "f8" // float64
	I8 DType = "i8" // int64
	I4 DType = "i4" // int32
)

// Size is the number of bytes per element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F4, I4:
		return 4
	case F8, I8:
		return 8
	}
	return 0
}

// Array is a decoded .npy array. The elements are kept in their on-disk
// little-endian form so that no precision is lost until a conversion method
// is called.
type Array struct {
	Shape []int
	DType DType
	raw   []byte
}

// Len is the number of elements (1 for a scalar).
func (a *Array) Len() int {
	if sz := a.DType.Size(); sz > 0 {
		return len(a.raw) / sz
	}
	return 0
}

const (
	magic = "\x93NUMPY"
	// maxHeaderLen bounds the header dict we are willing to buffer; NumPy's
	// own loader refuses headers above 10000 bytes by default, real headers
	// are about 100.
	maxHeaderLen = 1 << 20
	// chunkSize is how much body we read at a time when the remaining input
	// length is unknown, so a forged shape cannot force a huge allocation.
	chunkSize = 1 << 20
	// align is the total header alignment NumPy writes (ARRAY_ALIGN).
	align = 64
)

// Read decodes one .npy array from r. It consumes exactly the header and the
// array body, so several arrays can be read back to back from one stream.
func Read(r io.Reader) (*Array, error) {
	return read(r, -1)
}

// ReadFile reads a .npy file.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	a, err := read(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// remainingLen returns how many bytes r can still deliver when that is cheap
// to know (in-memory readers), else -1.
func remainingLen(r io.Reader) int64 {
	if l, ok := r.(interface{ Len() int }); ok {
		return int64(l.Len())
	}
	return -1
}

// read decodes an array; total is the full input size when known (a file),
// else -1.
func read(r io.Reader, total int64) (*Array, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, truncated("magic", err)
	}
	if string(pre[:6]) != magic {
		return nil, FormatError("bad magic (not a .npy file)")
	}
	major, minor := pre[6], pre[7]
	var hlen uint32
	prefix := int64(10)
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, truncated("header length", err)
		}
		hlen = uint32(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, truncated("header length", err)
		}
		hlen = binary.LittleEndian.Uint32(b[:])
		prefix = 12
	default:
		return nil, UnsupportedError(fmt.Sprintf("format version %d.%d", major, minor))
	}
	if hlen > maxHeaderLen {
		return nil, FormatError(fmt.Sprintf("header length %d exceeds limit %d", hlen, maxHeaderLen))
	}
	if total >= 0 && int64(hlen) > total-prefix {
		return nil, FormatError(fmt.Sprintf("header length %d exceeds file size %d", hlen, total))
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, truncated("header", err)
	}
	// Versions 1 and 2 are latin-1, 3 is UTF-8; every byte the grammar
	// cares about is ASCII, so parsing the raw bytes works for all three.
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	nbytes, err := byteSize(h.shape, h.dtype.Size())
	if err != nil {
		return nil, err
	}
	var avail int64 = -1
	if total >= 0 {
		avail = total - prefix - int64(hlen)
	} else {
		avail = remainingLen(r)
	}
	if avail >= 0 && int64(nbytes) > avail {
		return nil, FormatError(fmt.Sprintf("truncated body: shape %v needs %d bytes, only %d remain", h.shape, nbytes, avail))
	}
	raw, err := readBody(r, nbytes, avail >= 0)
	if err != nil {
		return nil, err
	}
	return &Array{Shape: h.shape, DType: h.dtype, raw: raw}, nil
}

// readBody reads exactly n bytes. When the input is not known to hold them it
// grows the buffer chunk by chunk, so memory tracks what actually arrived.
func readBody(r io.Reader, n int, known bool) ([]byte, error) {
	if known || n <= chunkSize {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, truncated("body", err)
		}
		return buf, nil
	}
	buf := make([]byte, 0, chunkSize)
	for len(buf) < n {
		step := min(n-len(buf), chunkSize)
		start := len(buf)
		buf = append(buf, make([]byte, step)...)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return nil, truncated("body", err)
		}
	}
	return buf, nil
}

func truncated(what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return FormatError("truncated " + what)
	}
	return err
}

// byteSize is product(shape)*itemsize, with overflow reported as a
// FormatError instead of wrapping.
func byteSize(shape []int, itemsize int) (int, error) {
	n := uint64(itemsize)
	for _, d := range shape {
		if d < 0 {
			return 0, FormatError(fmt.Sprintf("negative dimension in shape %v", shape))
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt {
			// Checked left to right, so a zero later in the shape does not
			// rescue an overflowing prefix; no legitimate file needs that.
			return 0, FormatError(fmt.Sprintf("shape %v overflows the addressable size", shape))
		}
		n = lo
	}
	return int(n), nil
}

type header struct {
	dtype DType
	shape []int
}

// parseHeader interprets the Python dict literal that describes the array.
func parseHeader(b []byte) (*header, error) {
	p := &litParser{s: b}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, FormatError(fmt.Sprintf("unexpected %q after header dict", p.s[p.i]))
	}
	d, ok := v.(pyDict)
	if !ok {
		return nil, FormatError("header is not a dict")
	}
	if len(d.keys) != 3 {
		return nil, FormatError(fmt.Sprintf("header must have exactly the keys descr, fortran_order, shape; got %v", d.keys))
	}
	descr, ok1 := d.vals["descr"]
	fortran, ok2 := d.vals["fortran_order"]
	shapeV, ok3 := d.vals["shape"]
	if !ok1 || !ok2 || !ok3 {
		return nil, FormatError(fmt.Sprintf("header must have exactly the keys descr, fortran_order, shape; got %v", d.keys))
	}
	fo, ok := fortran.(bool)
	if !ok {
		return nil, FormatError("fortran_order is not a bool")
	}
	tup, ok := shapeV.(pyTuple)
	if !ok {
		return nil, FormatError("shape is not a tuple")
	}
	shape := make([]int, len(tup))
	for i, e := range tup {
		n, ok := e.(int64)
		if !ok {
			return nil, FormatError("shape element is not an integer")
		}
		if n < 0 || n > math.MaxInt {
			return nil, FormatError(fmt.Sprintf("invalid dimension %d", n))
		}
		shape[i] = int(n)
	}
	var dt DType
	switch descr := descr.(type) {
	case string:
		dt, err = parseDescr(descr)
		if err != nil {
			return nil, err
		}
	case pyList:
		return nil, UnsupportedError("structured dtype")
	default:
		return nil, FormatError("descr is not a string")
	}
	if fo {
		return nil, UnsupportedError("fortran_order True (only C-order arrays are supported)")
	}
	return &header{dtype: dt, shape: shape}, nil
}

func parseDescr(s string) (DType, error) {
	if len(s) < 2 {
		return "", UnsupportedError(fmt.Sprintf("dtype %q", s))
	}
	order, code := s[0], DType(s[1:])
	switch order {
	case '<':
	case '>':
		return "", UnsupportedError(fmt.Sprintf("big-endian dtype %q", s))
	case '|', '=':
		// '|' (not applicable) and '=' (native) only pin down the layout of
		// 1-byte types, none of which are supported.
		return "", UnsupportedError(fmt.Sprintf("dtype %q", s))
	default:
		return "", UnsupportedError(fmt.Sprintf("dtype %q", s))
	}
	switch code {
	case F4, F8, I8, I4:
		return code, nil
	}
	return "", UnsupportedError(fmt.Sprintf("dtype %q", s))
}

// Python literal values produced by litParser.
type (
	pyTuple []any
	pyList  []any
	pyDict  struct {
		keys []string
		vals map[string]any
	}
)

// litParser parses the subset of Python literal syntax that ast.literal_eval
// accepts and .npy headers use: dicts, tuples, lists, strings, ints
// (with Python 2's L suffix), True, False and None.
type litParser struct {
	s []byte
	i int
}

const maxDepth = 16

func (p *litParser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.i++
		default:
			return
		}
	}
}

func (p *litParser) errf(format string, args ...any) error {
	return FormatError(fmt.Sprintf("header at byte %d: ", p.i) + fmt.Sprintf(format, args...))
}

func (p *litParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errf("nesting too deep")
	}
	p.skipSpace()
	if p.i >= len(p.s) {
		return nil, p.errf("unexpected end of header")
	}
	c := p.s[p.i]
	switch {
	case c == '{':
		return p.dict(depth)
	case c == '(':
		p.i++
		items, trailingComma, err := p.seq(')', depth)
		if err != nil {
			return nil, err
		}
		if len(items) == 1 && !trailingComma {
			return items[0], nil // parenthesised expression, not a tuple
		}
		return pyTuple(items), nil
	case c == '[':
		p.i++
		items, _, err := p.seq(']', depth)
		return pyList(items), err
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		return p.int()
	case isIdentStart(c):
		start := p.i
		for p.i < len(p.s) && isIdentStart(p.s[p.i]) {
			p.i++
		}
		switch w := string(p.s[start:p.i]); w {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		default:
			p.i = start
			return nil, p.errf("unexpected name %q", w)
		}
	}
	return nil, p.errf("unexpected character %q", c)
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// seq parses comma-separated values up to the closing delimiter (the opening
// one already consumed) and reports whether the last item had a trailing
// comma, which is what makes "(3,)" a tuple.
func (p *litParser) seq(end byte, depth int) ([]any, bool, error) {
	var items []any
	trailing := false
	for {
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == end {
			p.i++
			return items, trailing, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, false, err
		}
		items = append(items, v)
		trailing = false
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, false, p.errf("unterminated sequence")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			trailing = true
		case end:
		default:
			return nil, false, p.errf("expected ',' or %q", end)
		}
	}
}

func (p *litParser) dict(depth int) (any, error) {
	p.i++ // '{'
	d := pyDict{vals: map[string]any{}}
	for {
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return d, nil
		}
		kv, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		k, ok := kv.(string)
		if !ok {
			return nil, p.errf("dict key is not a string")
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.errf("expected ':'")
		}
		p.i++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, dup := d.vals[k]; dup {
			return nil, p.errf("duplicate key %q", k)
		}
		d.keys = append(d.keys, k)
		d.vals[k] = v
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, p.errf("unterminated dict")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
		default:
			return nil, p.errf("expected ',' or '}'")
		}
	}
}

// str parses a quoted string. Escapes are kept simple: a backslash takes the
// next byte literally, which is enough for every key and dtype code.
func (p *litParser) str() (any, error) {
	q := p.s[p.i]
	p.i++
	var sb strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case q:
			return sb.String(), nil
		case '\\':
			if p.i >= len(p.s) {
				return nil, p.errf("unterminated string")
			}
			sb.WriteByte(p.s[p.i])
			p.i++
		case '\n':
			return nil, p.errf("newline in string")
		default:
			sb.WriteByte(c)
		}
	}
	return nil, p.errf("unterminated string")
}

func (p *litParser) int() (any, error) {
	start := p.i
	neg := false
	if c := p.s[p.i]; c == '-' || c == '+' {
		neg = c == '-'
		p.i++
	}
	digits := p.i
	var n uint64
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		d := uint64(p.s[p.i] - '0')
		if n > (math.MaxInt64-d)/10 {
			return nil, FormatError(fmt.Sprintf("header at byte %d: integer too large", start))
		}
		n = n*10 + d
		p.i++
	}
	if p.i == digits {
		return nil, p.errf("expected digits")
	}
	if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') {
		p.i++
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E' || isIdentStart(p.s[p.i])) {
		return nil, p.errf("expected an integer")
	}
	v := int64(n)
	if neg {
		v = -v
	}
	return v, nil
}

// Float32 returns the elements converted to float32 (rounding float64 and
// large integers to the nearest float32).
func (a *Array) Float32() []float32 {
	n := a.Len()
	out := make([]float32, n)
	le := binary.LittleEndian
	switch a.DType {
	case F4:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(a.raw[4*i:]))
		}
	case F8:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(a.raw[8*i:])))
		}
	case I8:
		for i := range out {
			out[i] = float32(int64(le.Uint64(a.raw[8*i:])))
		}
	case I4:
		for i := range out {
			out[i] = float32(int32(le.Uint32(a.raw[4*i:])))
		}
	}
	return out
}

// Float64 returns the elements converted to float64 (exact except for int64
// values beyond 2^53).
func (a *Array) Float64() []float64 {
	n := a.Len()
	out := make([]float64, n)
	le := binary.LittleEndian
	switch a.DType {
	case F4:
		for i := range out {
			out[i] = float64(math.Float32frombits(le.Uint32(a.raw[4*i:])))
		}
	case F8:
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(a.raw[8*i:]))
		}
	case I8:
		for i := range out {
			out[i] = float64(int64(le.Uint64(a.raw[8*i:])))
		}
	case I4:
		for i := range out {
			out[i] = float64(int32(le.Uint32(a.raw[4*i:])))
		}
	}
	return out
}

// Int64 returns the elements as int64. Float arrays are accepted because the
// fixtures store integer data (timesteps, labels) as floats, but only when
// every value is integral and in range; otherwise it returns an error.
func (a *Array) Int64() ([]int64, error) {
	le := binary.LittleEndian
	switch a.DType {
	case I8:
		out := make([]int64, a.Len())
		for i := range out {
			out[i] = int64(le.Uint64(a.raw[8*i:]))
		}
		return out, nil
	case I4:
		out := make([]int64, a.Len())
		for i := range out {
			out[i] = int64(int32(le.Uint32(a.raw[4*i:])))
		}
		return out, nil
	}
	f := a.Float64()
	out := make([]int64, len(f))
	for i, v := range f {
		// -2^63 is exact in float64; 2^63 is the first value out of range.
		if v != math.Trunc(v) || v < math.MinInt64 || v >= math.MaxInt64 {
			return nil, fmt.Errorf("npy: element %d (%v) is not an int64 value", i, v)
		}
		out[i] = int64(v)
	}
	return out, nil
}

// Tensor returns a float32 copy of the array with its shape.
func (a *Array) Tensor() *tensor.Tensor {
	return tensor.From(a.Float32(), a.Shape...)
}

// WriteFloat32 writes a little-endian float32 array.
func WriteFloat32(w io.Writer, shape []int, data []float32) error {
	return write(w, F4, shape, len(data), func(b []byte, i int) {
		binary.LittleEndian.PutUint32(b, math.Float32bits(data[i]))
	})
}

// WriteFloat64 writes a little-endian float64 array.
func WriteFloat64(w io.Writer, shape []int, data []float64) error {
	return write(w, F8, shape, len(data), func(b []byte, i int) {
		binary.LittleEndian.PutUint64(b, math.Float64bits(data[i]))
	})
}

// WriteInt64 writes a little-endian int64 array.
func WriteInt64(w io.Writer, shape []int, data []int64) error {
	return write(w, I8, shape, len(data), func(b []byte, i int) {
		binary.LittleEndian.PutUint64(b, uint64(data[i]))
	})
}

// WriteInt32 writes a little-endian int32 array.
func WriteInt32(w io.Writer, shape []int, data []int32) error {
	return write(w, I4, shape, len(data), func(b []byte, i int) {
		binary.LittleEndian.PutUint32(b, uint32(data[i]))
	})
}

// WriteFile writes data ([]float32, []float64, []int64 or []int32) to path.
func WriteFile(path string, shape []int, data any) (err error) {
	var enc func(io.Writer) error
	switch d := data.(type) {
	case []float32:
		enc = func(w io.Writer) error { return WriteFloat32(w, shape, d) }
	case []float64:
		enc = func(w io.Writer) error { return WriteFloat64(w, shape, d) }
	case []int64:
		enc = func(w io.Writer) error { return WriteInt64(w, shape, d) }
	case []int32:
		enc = func(w io.Writer) error { return WriteInt32(w, shape, d) }
	default:
		return fmt.Errorf("npy: WriteFile: unsupported data type %T", data)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := enc(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// headerBytes returns the complete preamble (magic, version, length, dict
// and padding) NumPy would write for an array of this dtype and shape.
func headerBytes(dt DType, shape []int) []byte {
	var dict bytes.Buffer
	fmt.Fprintf(&dict, "{'descr': '<%s', 'fortran_order': False, 'shape': (", dt)
	for i, d := range shape {
		if i > 0 {
			dict.WriteString(", ")
		}
		fmt.Fprintf(&dict, "%d", d)
	}
	if len(shape) == 1 {
		dict.WriteByte(',')
	}
	dict.WriteString("), }")
	// Version 1.0 has a 2-byte length; fall back to 2.0 only when needed.
	prefix, major := 10, byte(1)
	if padded(prefix, dict.Len()) > math.MaxUint16 {
		prefix, major = 12, 2
	}
	hlen := padded(prefix, dict.Len())
	out := make([]byte, 0, prefix+hlen)
	out = append(out, magic...)
	out = append(out, major, 0)
	if major == 1 {
		out = binary.LittleEndian.AppendUint16(out, uint16(hlen))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(hlen))
	}
	out = append(out, dict.Bytes()...)
	for len(out) < prefix+hlen-1 {
		out = append(out, ' ')
	}
	return append(out, '\n')
}

// padded is the header length (dict, spaces, newline) that makes the whole
// preamble a multiple of align bytes, as NumPy does so the data is aligned.
func padded(prefix, dictLen int) int {
	total := prefix + dictLen + 1
	total = (total + align - 1) / align * align
	return total - prefix
}

func write(w io.Writer, dt DType, shape []int, n int, put func([]byte, int)) error {
	want, err := byteSize(shape, dt.Size())
	if err != nil {
		return fmt.Errorf("npy: write: bad shape %v", shape)
	}
	if want/dt.Size() != n {
		return fmt.Errorf("npy: write: %d elements for shape %v (want %d)", n, shape, want/dt.Size())
	}
	if _, err := w.Write(headerBytes(dt, shape)); err != nil {
		return err
	}
	// Encode in bounded chunks so writing a large array does not double its
	// memory footprint.
	sz := dt.Size()
	per := max(1, (64<<10)/sz)
	buf := make([]byte, min(n, per)*sz)
	for i := 0; i < n; {
		m := min(n-i, per)
		for j := range m {
			put(buf[j*sz:], i+j)
		}
		if _, err := w.Write(buf[:m*sz]); err != nil {
			return err
		}
		i += m
	}
	return nil
}
