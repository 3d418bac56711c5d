package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/x448/float16"
)

// Entry is one tensor to write. Data is converted to DType (F16, BF16 or
// F32) on the way out, rounding to nearest even.
type Entry struct {
	Name  string
	Shape []int
	Data  []float32
	DType DType
}

// Write encodes entries as a safetensors file. Header keys are sorted (with
// __metadata__ first, omitted when metadata is empty), the data follows in
// entry order, and the header is padded with spaces to a multiple of 8
// bytes as the reference writer does, so the data section stays aligned.
func Write(w io.Writer, entries []Entry, metadata map[string]string) error {
	type placed struct {
		e          *Entry
		begin, end int
	}
	seen := make(map[string]*placed, len(entries))
	order := make([]*placed, len(entries))
	off := 0
	for i := range entries {
		e := &entries[i]
		if !utf8.ValidString(e.Name) {
			return errf(e.Name, ErrInvalidUTF8, "tensor name is not valid UTF-8")
		}
		if e.Name == "__metadata__" {
			return errf(e.Name, ErrReservedName, "a tensor may not be named __metadata__")
		}
		if seen[e.Name] != nil {
			return errf(e.Name, ErrDuplicateName, "name given twice")
		}
		switch e.DType {
		case F16, BF16, F32:
		default:
			if e.DType.Size() > 0 {
				return errf(e.Name, ErrUnsupportedDType, "cannot write %s, only F16, BF16, F32", e.DType)
			}
			return errf(e.Name, ErrUnknownDType, "%q", e.DType)
		}
		for _, d := range e.Shape {
			if d < 0 {
				return errf(e.Name, ErrBadShape, "negative dimension in %v", e.Shape)
			}
		}
		n, ok := numElements(e.Shape)
		if !ok {
			return errf(e.Name, ErrSizeOverflow, "shape %v has too many elements", e.Shape)
		}
		if uint64(len(e.Data)) != n {
			return errf(e.Name, ErrBadShape, "%d values for shape %v (want %d)", len(e.Data), e.Shape, n)
		}
		size := len(e.Data) * e.DType.Size()
		if off > math.MaxInt-size {
			return errf(e.Name, ErrSizeOverflow, "file too large")
		}
		p := &placed{e: e, begin: off, end: off + size}
		off += size
		seen[e.Name] = p
		order[i] = p
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return errf("", ErrInvalidUTF8, "metadata key or value %q is not valid UTF-8", k)
		}
	}

	hdr := []byte{'{'}
	if len(metadata) > 0 {
		hdr = appendString(hdr, "__metadata__")
		hdr = append(hdr, ":{"...)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				hdr = append(hdr, ',')
			}
			hdr = appendString(hdr, k)
			hdr = append(hdr, ':')
			hdr = appendString(hdr, metadata[k])
		}
		hdr = append(hdr, '}')
	}
	sorted := append([]*placed(nil), order...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].e.Name < sorted[j].e.Name })
	for i, p := range sorted {
		if i > 0 || len(metadata) > 0 {
			hdr = append(hdr, ',')
		}
		hdr = appendString(hdr, p.e.Name)
		hdr = append(hdr, `:{"dtype":"`...)
		hdr = append(hdr, p.e.DType...)
		hdr = append(hdr, `","shape":[`...)
		for j, d := range p.e.Shape {
			if j > 0 {
				hdr = append(hdr, ',')
			}
			hdr = strconv.AppendInt(hdr, int64(d), 10)
		}
		hdr = append(hdr, `],"data_offsets":[`...)
		hdr = strconv.AppendInt(hdr, int64(p.begin), 10)
		hdr = append(hdr, ',')
		hdr = strconv.AppendInt(hdr, int64(p.end), 10)
		hdr = append(hdr, "]}"...)
	}
	hdr = append(hdr, '}')
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	bw.Write(lenBuf[:])
	bw.Write(hdr)
	var buf [4]byte
	for _, p := range order {
		switch p.e.DType {
		case F16:
			for _, v := range p.e.Data {
				binary.LittleEndian.PutUint16(buf[:], float16.Fromfloat32(v).Bits())
				bw.Write(buf[:2])
			}
		case BF16:
			for _, v := range p.e.Data {
				binary.LittleEndian.PutUint16(buf[:], f32ToBF16(v))
				bw.Write(buf[:2])
			}
		case F32:
			for _, v := range p.e.Data {
				binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
				bw.Write(buf[:4])
			}
		}
	}
	// bufio.Writer latches the first error, so checking Flush covers every
	// Write above.
	return bw.Flush()
}

// WriteFile writes a safetensors file, removing it again if writing fails.
func WriteFile(path string, entries []Entry, metadata map[string]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = Write(f, entries, metadata)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// appendString appends s as a JSON string, leaving <, > and & unescaped
// (json.Marshal escapes them for HTML, which is noise in a header).
func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a valid UTF-8 string cannot fail to encode
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...)
}

// f32ToBF16 rounds to the nearest bfloat16, ties to even. NaNs stay NaN
// (rounding could otherwise carry a NaN's payload into infinity).
func f32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}
