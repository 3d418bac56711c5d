package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"github.com/diffuse-web/diffuse/core/fixtures"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "regenerate testdata/good and testdata/bad")

// raw builds a file from a literal header and data section, without the
// padding Write adds, so malformed headers can be expressed exactly.
func raw(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// rawLen is raw with a forged header length.
func rawLen(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

func zeros(n int) []byte { return make([]byte, n) }

// badFiles are the checked-in malformed files, one or more per error kind.
var badFiles = []struct {
	name string
	data []byte
	kind ErrKind
}{
	{"too_short", []byte{8, 0, 0}, ErrTooShort},
	{"header_too_large", rawLen(MaxHeaderSize+1, "{}"), ErrHeaderTooLarge},
	{"header_bounds", rawLen(64, `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`), ErrHeaderBounds},
	{"invalid_json", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`, zeros(4)), ErrInvalidJSON},
	{"invalid_json_start", raw(` {"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, zeros(4)), ErrInvalidJSON},
	{"invalid_json_two_objects", raw(`{}{}`, nil), ErrInvalidJSON},
	{"invalid_json_empty", raw(``, nil), ErrInvalidJSON},
	{"invalid_utf8", raw("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", zeros(4)), ErrInvalidUTF8},
	{"duplicate_name", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, zeros(8)), ErrDuplicateName},
	{"duplicate_metadata", raw(`{"__metadata__":{},"__metadata__":{}}`, nil), ErrDuplicateName},
	{"bad_entry_missing", raw(`{"a":{"dtype":"F32","shape":[1]}}`, zeros(4)), ErrBadEntry},
	{"bad_entry_extra", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, zeros(4)), ErrBadEntry},
	{"bad_entry_not_object", raw(`{"a":[0,4]}`, zeros(4)), ErrBadEntry},
	{"bad_entry_dup_field", raw(`{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, zeros(4)), ErrBadEntry},
	{"bad_entry_offsets", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, zeros(4)), ErrBadEntry},
	{"bad_entry_dtype_type", raw(`{"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}`, zeros(4)), ErrBadEntry},
	{"unknown_dtype", raw(`{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}`, zeros(4)), ErrUnknownDType},
	{"bad_shape", raw(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, zeros(4)), ErrBadShape},
	{"bad_shape_float", raw(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, zeros(4)), ErrBadShape},
	{"size_overflow", raw(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}}`, nil), ErrSizeOverflow},
	{"size_overflow_bytes", raw(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}`, nil), ErrSizeOverflow},
	{"offsets_mismatch", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, zeros(4)), ErrOffsetsMismatch},
	{"offsets_reversed", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, zeros(4)), ErrOffsetsMismatch},
	{"offsets_out_of_bounds", raw(`{"down.0.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, zeros(4)), ErrOffsetsOutOfBounds},
	{"offsets_huge", raw(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[99999999999999999999,99999999999999999999]}}`, nil), ErrOffsetsOutOfBounds},
	{"not_contiguous_gap", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, zeros(12)), ErrNotContiguous},
	{"not_contiguous_overlap", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, zeros(12)), ErrNotContiguous},
	{"not_contiguous_start", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, zeros(8)), ErrNotContiguous},
	{"trailing_data", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, zeros(8)), ErrTrailingData},
	{"trailing_data_no_tensors", raw(`{}`, zeros(1)), ErrTrailingData},
	{"bad_metadata", raw(`{"__metadata__":{"format":1}}`, nil), ErrBadMetadata},
	{"bad_metadata_not_object", raw(`{"__metadata__":["pt"]}`, nil), ErrBadMetadata},
	{"bad_metadata_dup_key", raw(`{"__metadata__":{"k":"a","k":"b"}}`, nil), ErrBadMetadata},
	{"reserved_name", raw(`{"__metadata__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, zeros(4)), ErrReservedName},
}

// goodFiles are valid seeds: produced by Write, or hand-made for what Write
// cannot produce (other dtypes, no padding, null metadata).
func goodFiles(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	w := func(name string, entries []Entry, meta map[string]string) {
		var buf bytes.Buffer
		if err := Write(&buf, entries, meta); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = buf.Bytes()
	}
	w("empty", nil, nil)
	w("mixed", []Entry{
		{Name: "conv.weight", Shape: []int{2, 1, 3}, DType: F16, Data: []float32{1, -2, 0.5, 65504, 6e-8, -0}},
		{Name: "conv.bias", Shape: []int{2}, DType: BF16, Data: []float32{3.140625, -1e30}},
		{Name: "norm.scale", Shape: []int{3}, DType: F32, Data: []float32{1e-40, 7, float32(math.Inf(1))}},
	}, map[string]string{"format": "pt", "note": "<&>"})
	w("scalar_and_empty", []Entry{
		{Name: "scalar", Shape: []int{}, DType: F32, Data: []float32{42}},
		{Name: "empty", Shape: []int{0, 3}, DType: F16, Data: nil},
	}, map[string]string{})
	var d []byte
	le := binary.LittleEndian
	d = le.AppendUint64(d, math.Float64bits(-2.5))     // F64 [0,8]
	d = le.AppendUint64(d, uint64(0xffffffffffffff9c)) // I64 -100 [8,16]
	d = le.AppendUint32(d, uint32(0xfffffff9))         // I32 -7 [16,20]
	d = le.AppendUint16(d, 0x8000)                     // I16 -32768 [20,22]
	d = le.AppendUint16(d, 65535)                      // U16 [22,24]
	d = le.AppendUint32(d, 4000000000)                 // U32 [24,28]
	d = le.AppendUint64(d, 1<<40)                      // U64 [28,36]
	d = append(d, 0xfe, 200, 1, 0, 0x3c, 0x38, 0xff)   // I8, U8, BOOL x2, F8_E5M2 1.0, F8_E4M3 1.0, F8_E4M3 NaN [36,43]
	out["all_dtypes"] = raw(`{"f64":{"dtype":"F64","shape":[],"data_offsets":[0,8]},`+
		`"i64":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},`+
		`"i32":{"dtype":"I32","shape":[1],"data_offsets":[16,20]},`+
		`"i16":{"dtype":"I16","shape":[1],"data_offsets":[20,22]},`+
		`"u16":{"dtype":"U16","shape":[1],"data_offsets":[22,24]},`+
		`"u32":{"dtype":"U32","shape":[1],"data_offsets":[24,28]},`+
		`"u64":{"dtype":"U64","shape":[1],"data_offsets":[28,36]},`+
		`"i8":{"dtype":"I8","shape":[1],"data_offsets":[36,37]},`+
		`"u8":{"dtype":"U8","shape":[1],"data_offsets":[37,38]},`+
		`"bool":{"dtype":"BOOL","shape":[2],"data_offsets":[38,40]},`+
		`"f8e5m2":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[40,41]},`+
		`"f8e4m3":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[41,43]}}`, d)
	out["unpadded_null_metadata"] = raw(`{"b":{"data_offsets":[4,6],"shape":[1],"dtype":"BF16"},"__metadata__":null,"a":{"shape":[2,1],"dtype":"F16","data_offsets":[0,4]},"z":{"dtype":"F32","shape":[0],"data_offsets":[6,6]}}`,
		[]byte{0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f})
	return out
}

func TestGenerateTestdata(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate testdata")
	}
	for _, dir := range []string{"testdata/bad", "testdata/good"} {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range badFiles {
		if err := os.WriteFile(filepath.Join("testdata/bad", b.name+".safetensors"), b.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range goodFiles(t) {
		if err := os.WriteFile(filepath.Join("testdata/good", name+".safetensors"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadFiles(t *testing.T) {
	kinds := map[ErrKind]bool{}
	onDisk, _ := filepath.Glob("testdata/bad/*.safetensors")
	if len(onDisk) != len(badFiles) {
		t.Errorf("%d files in testdata/bad, %d in the table (run go test -run TestGenerateTestdata -update)", len(onDisk), len(badFiles))
	}
	for _, b := range badFiles {
		path := filepath.Join("testdata/bad", b.name+".safetensors")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run go test -run TestGenerateTestdata -update)", err)
			continue
		}
		if !bytes.Equal(data, b.data) {
			t.Errorf("%s is stale (run go test -run TestGenerateTestdata -update)", path)
		}
		_, err = Read(data)
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("%s: got %v, want *Error", b.name, err)
			continue
		}
		if se.Kind != b.kind {
			t.Errorf("%s: got kind %v (%v), want %v", b.name, se.Kind, err, b.kind)
		}
		if !strings.HasPrefix(err.Error(), "safetensors: ") {
			t.Errorf("%s: message %q", b.name, err)
		}
		kinds[se.Kind] = true
	}
	if len(kinds) < 16 {
		t.Errorf("only %d error kinds covered", len(kinds))
	}
	// The message names the tensor at fault.
	_, err := Read(badFiles[indexOfBad("offsets_out_of_bounds")].data)
	if want := `safetensors: tensor "down.0.weight": data offsets out of bounds: `; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want prefix %q", err, want)
	}
}

func indexOfBad(name string) int {
	for i, b := range badFiles {
		if b.name == name {
			return i
		}
	}
	panic(name)
}

func TestGoodFiles(t *testing.T) {
	gen := goodFiles(t)
	onDisk, _ := filepath.Glob("testdata/good/*.safetensors")
	if len(onDisk) != len(gen) {
		t.Errorf("%d files in testdata/good, want %d", len(onDisk), len(gen))
	}
	for name, want := range gen {
		data, err := os.ReadFile(filepath.Join("testdata/good", name+".safetensors"))
		if err != nil || !bytes.Equal(data, want) {
			t.Errorf("testdata/good/%s.safetensors missing or stale: %v", name, err)
		}
		f, err := Read(want)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range f.Tensors {
			if _, err := f.Tensors[i].Float32(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}

func TestAllDTypes(t *testing.T) {
	f, err := Read(goodFiles(t)["all_dtypes"])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float32{
		"f64": {-2.5}, "i64": {-100}, "i32": {-7}, "i16": {-32768}, "u16": {65535},
		"u32": {4e9}, "u64": {1 << 40}, "i8": {-2}, "u8": {200}, "bool": {1, 0},
		"f8e5m2": {1}, "f8e4m3": {1, float32(math.NaN())},
	}
	for name, w := range want {
		ti, ok := f.Get(name)
		if !ok {
			t.Fatalf("missing %s", name)
		}
		got, err := ti.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if !sameFloats(got, w) {
			t.Errorf("%s: got %v want %v", name, got, w)
		}
	}
	if tt, err := f.Tensors[0].Tensor(); err != nil || len(tt.Shape) != 0 || tt.Data[0] != -2.5 {
		t.Errorf("scalar tensor: %v %v", tt, err)
	}
	if names := f.Names(); !sort.StringsAreSorted(names) || len(names) != 12 {
		t.Errorf("Names() = %v", names)
	}
	if _, ok := f.Get("nope"); ok {
		t.Error("Get found a missing tensor")
	}
}

func TestE4M3(t *testing.T) {
	cases := map[byte]float32{
		0x00: 0, 0x80: float32(math.Copysign(0, -1)), 0x01: 1.0 / 512, 0x07: 7.0 / 512,
		0x08: 1.0 / 64, 0x38: 1, 0x40: 2, 0x7e: 448, 0xfe: -448, 0xb8: -1,
	}
	for b, w := range cases {
		if g := e4m3ToF32(b); g != w || math.Signbit(float64(g)) != math.Signbit(float64(w)) {
			t.Errorf("e4m3 %#02x = %v want %v", b, g, w)
		}
	}
	if !math.IsNaN(float64(e4m3ToF32(0x7f))) {
		t.Error("0x7f is not NaN")
	}
}

func sameFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}

func writeRead(t *testing.T, entries []Entry, meta map[string]string) (*File, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, entries, meta); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if n := binary.LittleEndian.Uint64(b); n%8 != 0 {
		t.Errorf("header length %d not a multiple of 8", n)
	}
	f, err := Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return f, b
}

func TestRoundTripF32(t *testing.T) {
	data := []float32{0, float32(math.Copysign(0, -1)), 1, -1, math.MaxFloat32, math.SmallestNonzeroFloat32,
		1e-40, float32(math.Inf(1)), float32(math.Inf(-1)), 3.14159265, 1.0 / 3}
	f, _ := writeRead(t, []Entry{{Name: "w", Shape: []int{len(data)}, DType: F32, Data: data}}, map[string]string{"format": "pt"})
	got, err := f.Tensors[0].Float32()
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		if math.Float32bits(got[i]) != math.Float32bits(data[i]) {
			t.Errorf("[%d] %v != %v", i, got[i], data[i])
		}
	}
	if !reflect.DeepEqual(f.Metadata, map[string]string{"format": "pt"}) {
		t.Errorf("metadata %v", f.Metadata)
	}
	nan := float32(math.NaN())
	f, _ = writeRead(t, []Entry{{Name: "n", Shape: []int{1}, DType: F32, Data: []float32{nan}}}, nil)
	if g, _ := f.Tensors[0].Float32(); g[0] == g[0] {
		t.Error("NaN lost")
	}
}

func TestRoundTripF16(t *testing.T) {
	cases := []struct {
		in   float32
		bits uint16
	}{
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                       // largest finite half
		{65519, 0x7bff},                       // below the halfway point to 65536
		{65520, 0x7c00},                       // halfway: ties to even rounds up to +Inf
		{float32(math.Inf(-1)), 0xfc00},       // -Inf
		{float32(math.Ldexp(1, -24)), 0x0001}, // smallest subnormal
		{float32(math.Ldexp(1, -25)), 0x0000}, // half of it ties to even: zero
		{float32(math.Ldexp(3, -26)), 0x0001}, // 0.75 ulp rounds up
		{float32(math.Ldexp(1, -14)), 0x0400}, // smallest normal
		{float32(math.Ldexp(1023, -24)), 0x03ff},
		{0.1, 0x2e66},
		{1 + 1.0/2048, 0x3c00}, // tie between 0x3c00 and 0x3c01: even
		{1 + 3.0/2048, 0x3c02}, // tie between 0x3c01 and 0x3c02: even
		{float32(math.NaN()), 0x7e00},
	}
	data := make([]float32, len(cases))
	for i, c := range cases {
		data[i] = c.in
	}
	f, _ := writeRead(t, []Entry{{Name: "h", Shape: []int{len(data)}, DType: F16, Data: data}}, nil)
	ti := f.Tensors[0]
	if ti.DType != F16 || len(ti.Data) != 2*len(data) {
		t.Fatalf("%s %d bytes", ti.DType, len(ti.Data))
	}
	got, _ := ti.Float32()
	for i, c := range cases {
		b := binary.LittleEndian.Uint16(ti.Data[2*i:])
		if c.in == c.in && b != c.bits || c.in != c.in && b&0x7c00 != 0x7c00 {
			t.Errorf("F16(%v) = %#04x, want %#04x", c.in, b, c.bits)
		}
		// Decoding agrees with the input to half precision.
		if c.in == c.in && !math.IsInf(float64(got[i]), 0) {
			if d := math.Abs(float64(got[i] - c.in)); d > math.Abs(float64(c.in))/1024+math.Ldexp(1, -24) {
				t.Errorf("F16 round trip %v -> %v", c.in, got[i])
			}
		}
	}
	if got[0] != 1 || got[4] != 65504 || got[7] != float32(math.Ldexp(1, -24)) {
		t.Errorf("decoded %v", got)
	}
}

func TestRoundTripBF16(t *testing.T) {
	cases := []struct {
		in   float32
		bits uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{3.14159265, 0x4049},
		{1 + 1.0/256, 0x3f80}, // tie: stays even
		{1 + 3.0/256, 0x3f82}, // tie: rounds up to even
		{1 + 1.5/256, 0x3f81}, // above the tie
		{math.MaxFloat32, 0x7f80},
		{float32(math.Inf(-1)), 0xff80},
		{1e-40, 0x0001}, // subnormal 0x000116c2 rounds to 0x0001
		{float32(math.NaN()), 0x7fc0},
	}
	data := make([]float32, len(cases))
	for i, c := range cases {
		data[i] = c.in
	}
	f, _ := writeRead(t, []Entry{{Name: "b", Shape: []int{2, len(data) / 2}, DType: BF16, Data: data}}, nil)
	ti := f.Tensors[0]
	got, err := ti.Float32()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		b := binary.LittleEndian.Uint16(ti.Data[2*i:])
		if b != c.bits {
			t.Errorf("BF16(%v) = %#04x, want %#04x", c.in, b, c.bits)
		}
		if math.Float32bits(got[i]) != uint32(c.bits)<<16 {
			t.Errorf("BF16 decode %#04x = %v", c.bits, got[i])
		}
	}
	// NaN payloads that would round into the exponent must stay NaN.
	if b := f32ToBF16(math.Float32frombits(0x7f80ffff)); b&0x7f80 != 0x7f80 || b&0x7f == 0 {
		t.Errorf("NaN 0x7f80ffff -> %#04x", b)
	}
}

func TestWriteLayout(t *testing.T) {
	entries := []Entry{
		{Name: "b", Shape: []int{2}, DType: F32, Data: []float32{1, 2}},
		{Name: "a", Shape: []int{1}, DType: F16, Data: []float32{1}},
	}
	_, b := writeRead(t, entries, map[string]string{"k": "v"})
	n := binary.LittleEndian.Uint64(b)
	hdr := string(b[8 : 8+n])
	want := `{"__metadata__":{"k":"v"},"a":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	if strings.TrimRight(hdr, " ") != want {
		t.Errorf("header\n%s\nwant\n%s", hdr, want)
	}
	// Data in entry order: b first.
	if got := b[8+n:]; !bytes.Equal(got, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0x3c}) {
		t.Errorf("data % x", got)
	}
}

func TestWriteRejects(t *testing.T) {
	cases := []struct {
		name    string
		entries []Entry
		meta    map[string]string
		kind    ErrKind
	}{
		{"dup", []Entry{{Name: "a", Shape: []int{1}, DType: F32, Data: []float32{1}}, {Name: "a", Shape: []int{1}, DType: F16, Data: []float32{1}}}, nil, ErrDuplicateName},
		{"dtype", []Entry{{Name: "a", Shape: []int{1}, DType: "F17", Data: []float32{1}}}, nil, ErrUnknownDType},
		{"no dtype", []Entry{{Name: "a", Shape: []int{1}, Data: []float32{1}}}, nil, ErrUnknownDType},
		{"i64", []Entry{{Name: "a", Shape: []int{1}, DType: I64, Data: []float32{1}}}, nil, ErrUnsupportedDType},
		{"len", []Entry{{Name: "a", Shape: []int{2, 2}, DType: F32, Data: []float32{1, 2, 3}}}, nil, ErrBadShape},
		{"negative", []Entry{{Name: "a", Shape: []int{-1}, DType: F32}}, nil, ErrBadShape},
		{"overflow", []Entry{{Name: "a", Shape: []int{1 << 40, 1 << 40}, DType: F32}}, nil, ErrSizeOverflow},
		{"reserved", []Entry{{Name: "__metadata__", Shape: []int{}, DType: F32, Data: []float32{1}}}, nil, ErrReservedName},
		{"utf8", []Entry{{Name: "\xff", Shape: []int{}, DType: F32, Data: []float32{1}}}, nil, ErrInvalidUTF8},
		{"meta utf8", nil, map[string]string{"k": "\xfe"}, ErrInvalidUTF8},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		err := Write(&buf, c.entries, c.meta)
		var se *Error
		if !errors.As(err, &se) || se.Kind != c.kind {
			t.Errorf("%s: got %v, want kind %v", c.name, err, c.kind)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes despite error", c.name, buf.Len())
		}
	}
}

func TestWriteFileReadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.safetensors")
	entries := []Entry{{Name: "x", Shape: []int{2, 2}, DType: F32, Data: []float32{1, 2, 3, 4}}}
	if err := WriteFile(p, entries, nil); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	tt, err := f.Tensors[0].Tensor()
	if err != nil || !reflect.DeepEqual(tt.Shape, []int{2, 2}) || !reflect.DeepEqual(tt.Data, []float32{1, 2, 3, 4}) {
		t.Fatalf("%v %v", tt, err)
	}
	if f.Metadata != nil {
		t.Errorf("metadata %v, want nil", f.Metadata)
	}
	old := MaxFileSize
	MaxFileSize = 10
	defer func() { MaxFileSize = old }()
	_, err = ReadFile(p)
	var se *Error
	if !errors.As(err, &se) || se.Kind != ErrFileTooLarge {
		t.Errorf("got %v, want ErrFileTooLarge", err)
	}
	if err := WriteFile(p, []Entry{{Name: "x", DType: "nope"}}, nil); err == nil {
		t.Error("WriteFile accepted a bad entry")
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Error("failed WriteFile left a file behind")
	}
}

// Data must alias the input: loading a model should not copy the weights.
func TestDataAliasesInput(t *testing.T) {
	_, b := writeRead(t, []Entry{{Name: "x", Shape: []int{1}, DType: F32, Data: []float32{1}}}, nil)
	f, _ := Read(b)
	b[len(b)-1] = 0x40 // 0x3f800000 (1.0) -> 0x40800000 (4.0)
	if v, _ := f.Tensors[0].Float32(); v[0] != 4 {
		t.Errorf("Data is a copy")
	}
}

func fixturesDir() string { return fixtures.Dir() }

func TestReadFixture(t *testing.T) {
	path := filepath.Join(fixturesDir(), "diffusers", "cifar_like", "diffusion_pytorch_model.safetensors")
	f, err := ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			t.Skipf("fixture not available: %v", err)
		}
		t.Fatal(err)
	}
	w, ok := f.Get("conv_in.weight")
	if !ok {
		t.Fatal("no conv_in.weight")
	}
	if w.DType != F32 || !reflect.DeepEqual(w.Shape, []int{32, 3, 3, 3}) {
		t.Errorf("conv_in.weight: %s %v", w.DType, w.Shape)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	total := 0
	for i := range f.Tensors {
		tt, err := f.Tensors[i].Tensor()
		if err != nil {
			t.Fatal(err)
		}
		total += len(tt.Data)
	}
	if total == 0 || len(f.Names()) != len(f.Tensors) {
		t.Errorf("%d tensors, %d params", len(f.Tensors), total)
	}
	// Re-encoding as F32 reproduces every value.
	entries := make([]Entry, len(f.Tensors))
	for i, ti := range f.Tensors {
		v, _ := ti.Float32()
		entries[i] = Entry{Name: ti.Name, Shape: ti.Shape, DType: F32, Data: v}
	}
	var buf bytes.Buffer
	if err := Write(&buf, entries, f.Metadata); err != nil {
		t.Fatal(err)
	}
	g, err := Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range f.Tensors {
		gi, _ := g.Get(ti.Name)
		if !bytes.Equal(gi.Data, ti.Data) {
			t.Fatalf("%s differs after rewrite", ti.Name)
		}
	}
}
