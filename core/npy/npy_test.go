package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/diffuse-web/diffuse/core/fixtures"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var testShapes = [][]int{{}, {0}, {3}, {2, 3, 4}}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func checkHeader(t *testing.T, b []byte) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(magic+"\x01\x00")) {
		t.Fatalf("bad preamble % x", b[:8])
	}
	hlen := int(binary.LittleEndian.Uint16(b[8:]))
	if (10+hlen)%64 != 0 {
		t.Errorf("header not 64-byte aligned: %d", 10+hlen)
	}
	if b[10+hlen-1] != '\n' {
		t.Errorf("header does not end in newline")
	}
}

func TestRoundTripFloat32(t *testing.T) {
	for _, shape := range testShapes {
		data := make([]float32, numel(shape))
		for i := range data {
			data[i] = float32(i)*0.25 - 1.5
		}
		if len(data) > 2 {
			data[1] = float32(math.Inf(-1))
			data[2] = math.SmallestNonzeroFloat32
		}
		var buf bytes.Buffer
		if err := WriteFloat32(&buf, shape, data); err != nil {
			t.Fatal(err)
		}
		checkHeader(t, buf.Bytes())
		a, err := Read(&buf)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		if a.DType != F4 || !reflect.DeepEqual(a.Shape, append([]int{}, shape...)) {
			t.Fatalf("got dtype %q shape %v, want f4 %v", a.DType, a.Shape, shape)
		}
		if got := a.Float32(); !reflect.DeepEqual(got, data) {
			t.Fatalf("shape %v: got %v want %v", shape, got, data)
		}
		if buf.Len() != 0 {
			t.Errorf("Read left %d bytes unread", buf.Len())
		}
		tt := a.Tensor()
		if !reflect.DeepEqual(tt.Data, data) || len(tt.Shape) != len(shape) {
			t.Errorf("Tensor() = %v %v", tt.Shape, tt.Data)
		}
	}
}

func TestRoundTripFloat64(t *testing.T) {
	for _, shape := range testShapes {
		data := make([]float64, numel(shape))
		for i := range data {
			data[i] = math.Pi * float64(i+1) * 1e-300
		}
		var buf bytes.Buffer
		if err := WriteFloat64(&buf, shape, data); err != nil {
			t.Fatal(err)
		}
		a, err := Read(&buf)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		if a.DType != F8 || len(a.Shape) != len(shape) {
			t.Fatalf("dtype %q shape %v", a.DType, a.Shape)
		}
		if got := a.Float64(); !reflect.DeepEqual(got, data) {
			t.Fatalf("shape %v: got %v want %v", shape, got, data)
		}
		if _, err := a.Int64(); len(data) > 0 && err == nil {
			t.Errorf("Int64 of non-integral floats did not fail")
		}
	}
}

func TestRoundTripInt64(t *testing.T) {
	for _, shape := range testShapes {
		data := make([]int64, numel(shape))
		for i := range data {
			data[i] = int64(i) - 2
		}
		if len(data) > 1 {
			data[0] = math.MinInt64
			data[1] = math.MaxInt64
		}
		var buf bytes.Buffer
		if err := WriteInt64(&buf, shape, data); err != nil {
			t.Fatal(err)
		}
		a, err := Read(&buf)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		got, err := a.Int64()
		if err != nil || a.DType != I8 || !reflect.DeepEqual(got, data) {
			t.Fatalf("shape %v: got %v %v %q want %v", shape, got, err, a.DType, data)
		}
		if f := a.Float64(); len(f) != len(data) {
			t.Fatalf("Float64 len %d", len(f))
		}
	}
}

func TestRoundTripInt32(t *testing.T) {
	for _, shape := range testShapes {
		data := make([]int32, numel(shape))
		want := make([]int64, len(data))
		for i := range data {
			data[i] = int32(i*1000 - 7)
			want[i] = int64(data[i])
		}
		var buf bytes.Buffer
		if err := WriteInt32(&buf, shape, data); err != nil {
			t.Fatal(err)
		}
		a, err := Read(&buf)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		got, err := a.Int64()
		if err != nil || a.DType != I4 || !reflect.DeepEqual(got, want) {
			t.Fatalf("shape %v: got %v %v want %v", shape, got, err, want)
		}
		f := a.Float32()
		for i := range f {
			if f[i] != float32(data[i]) {
				t.Fatalf("Float32[%d] = %v", i, f[i])
			}
		}
	}
}

func TestWriteFileDispatch(t *testing.T) {
	dir := t.TempDir()
	cases := []any{
		[]float32{1, 2, 3, 4, 5, 6},
		[]float64{1, 2, 3, 4, 5, 6},
		[]int64{1, 2, 3, 4, 5, 6},
		[]int32{1, 2, 3, 4, 5, 6},
	}
	for i, data := range cases {
		p := filepath.Join(dir, "a.npy")
		if err := WriteFile(p, []int{2, 3}, data); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		a, err := ReadFile(p)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got := a.Float64(); !reflect.DeepEqual(got, []float64{1, 2, 3, 4, 5, 6}) || !reflect.DeepEqual(a.Shape, []int{2, 3}) {
			t.Fatalf("case %d: %v %v", i, a.Shape, got)
		}
	}
	if err := WriteFile(filepath.Join(dir, "b.npy"), []int{1}, []uint8{1}); err == nil {
		t.Error("WriteFile accepted []uint8")
	}
}

func TestWriteRejectsBadShape(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFloat32(&buf, []int{2, 2}, []float32{1, 2, 3}); err == nil {
		t.Error("length mismatch accepted")
	}
	if err := WriteFloat32(&buf, []int{-1}, nil); err == nil {
		t.Error("negative dim accepted")
	}
	if buf.Len() != 0 {
		t.Error("bytes written despite error")
	}
}

// A header longer than 65535 bytes must switch to format version 2.0.
func TestWriteVersion2(t *testing.T) {
	shape := make([]int, 30000)
	for i := range shape {
		shape[i] = 1
	}
	var buf bytes.Buffer
	if err := WriteFloat32(&buf, shape, []float32{42}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if b[6] != 2 || b[7] != 0 {
		t.Fatalf("version %d.%d, want 2.0", b[6], b[7])
	}
	if hl := binary.LittleEndian.Uint32(b[8:]); (12+hl)%64 != 0 {
		t.Errorf("v2 header not aligned")
	}
	a, err := Read(&buf)
	if err != nil || len(a.Shape) != 30000 || a.Float32()[0] != 42 {
		t.Fatalf("%v", err)
	}
}

// hand builds a .npy file from a version, header dict text and body.
func hand(major byte, dict string, body []byte) []byte {
	b := []byte(magic)
	b = append(b, major, 0)
	h := dict + "\n"
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h)))
	}
	b = append(b, h...)
	return append(b, body...)
}

func le32(vals ...float32) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// Headers in the forms other writers produce: version 2 and 3, double
// quotes, odd spacing and key order, Python 2 long suffixes.
func TestReadHeaderVariants(t *testing.T) {
	body := le32(1, 2, 3, 4, 5, 6)
	cases := []struct {
		major byte
		dict  string
	}{
		{1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"},
		{2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"},
		{3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }   "},
		{1, `{"shape":(2,3),"fortran_order":False,"descr":"<f4"}`},
		{1, "{'descr':'<f4','fortran_order':False,'shape':(2L, 3L)}"},
		{1, " {\t'descr' : '<f4' ,\n'fortran_order' : False , 'shape' : ( 2 , 3 , ) , } "},
	}
	for _, c := range cases {
		a, err := Read(bytes.NewReader(hand(c.major, c.dict, body)))
		if err != nil {
			t.Errorf("%d %q: %v", c.major, c.dict, err)
			continue
		}
		if !reflect.DeepEqual(a.Shape, []int{2, 3}) || !reflect.DeepEqual(a.Float32(), []float32{1, 2, 3, 4, 5, 6}) {
			t.Errorf("%q: %v %v", c.dict, a.Shape, a.Float32())
		}
	}
}

func TestInt64FromFloat(t *testing.T) {
	a, err := Read(bytes.NewReader(hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", le32(999, 0, -4))))
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Int64()
	if err != nil || !reflect.DeepEqual(got, []int64{999, 0, -4}) {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []float32{0.5, float32(math.NaN()), float32(math.Inf(1)), 1e19} {
		a, _ := Read(bytes.NewReader(hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", le32(bad))))
		if _, err := a.Int64(); err == nil {
			t.Errorf("Int64 accepted %v", bad)
		}
	}
}

func TestErrors(t *testing.T) {
	ok := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
	body := le32(1, 2, 3, 4, 5, 6)
	var format FormatError
	var unsup UnsupportedError
	cases := []struct {
		name string
		in   []byte
		want any
	}{
		{"fortran", hand(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", body), &unsup},
		{"int16", hand(1, "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }", body[:12]), &unsup},
		{"bigendian", hand(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", body), &unsup},
		{"native order", hand(1, "{'descr': '=f4', 'fortran_order': False, 'shape': (2, 3), }", body), &unsup},
		{"uint8", hand(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", body[:6]), &unsup},
		{"structured", hand(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }", body), &unsup},
		{"version 4", hand(4, ok, body), &unsup},
		{"truncated body", hand(1, ok, body[:23]), &format},
		{"no body", hand(1, ok, nil), &format},
		{"bad magic", append([]byte("\x93NUMPZ"), hand(1, ok, body)[6:]...), &format},
		{"empty", nil, &format},
		{"short magic", []byte("\x93NUM"), &format},
		{"truncated header", hand(1, ok, body)[:30], &format},
		{"shape overflow", hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", body), &format},
		{"shape overflow itemsize", hand(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }", body), &format},
		{"dim too big", hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", body), &format},
		{"negative dim", hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }", body), &format},
		{"huge claimed", hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", body), &format},
		{"missing key", hand(1, "{'descr': '<f4', 'shape': (2, 3), }", body), &format},
		{"extra key", hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", body), &format},
		{"dup key", hand(1, "{'descr': '<f4', 'descr': '<f4', 'shape': (2, 3), }", body), &format},
		{"shape not tuple", hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': 6, }", body), &format},
		{"shape float", hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2.0, 3), }", body), &format},
		{"fortran not bool", hand(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", body), &format},
		{"unterminated", hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", body), &format},
		{"junk after dict", hand(1, ok+" x", body), &format},
		{"not a dict", hand(1, "('<f4', False, (2, 3))", body), &format},
		{"deep nesting", hand(1, strings.Repeat("(", 1000)+strings.Repeat(")", 1000), body), &format},
		{"header len beyond input", append([]byte(magic+"\x02\x00\xff\xff\xff\x7f"), "{}"...), &format},
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.in))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		switch target := c.want.(type) {
		case *FormatError:
			if !errors.As(err, target) {
				t.Errorf("%s: got %T %v, want FormatError", c.name, err, err)
			}
		case *UnsupportedError:
			if !errors.As(err, target) {
				t.Errorf("%s: got %T %v, want UnsupportedError", c.name, err, err)
			}
		}
		if !strings.HasPrefix(err.Error(), "npy: ") {
			t.Errorf("%s: message %q lacks npy: prefix", c.name, err)
		}
	}
}

// onlyReader hides Len so Read cannot learn how much input remains and has
// to fall back to chunked reading.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// A tiny stream claiming a ~4 GB body must fail cleanly, and the allocation
// must stay near the chunk size.
func TestHugeClaimFromStream(t *testing.T) {
	in := hand(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }", le32(1, 2, 3))
	_, err := Read(onlyReader{bytes.NewReader(in)})
	var fe FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want FormatError", err)
	}
	if n := testing.AllocsPerRun(1, func() { Read(onlyReader{bytes.NewReader(in)}) }); n > 100 {
		t.Errorf("%v allocations", n)
	}
	// Streams that do hold a multi-chunk body still read correctly.
	data := make([]float32, 3*chunkSize/4+5)
	for i := range data {
		data[i] = float32(i)
	}
	var buf bytes.Buffer
	if err := WriteFloat32(&buf, []int{len(data)}, data); err != nil {
		t.Fatal(err)
	}
	a, err := Read(onlyReader{&buf})
	if err != nil || !reflect.DeepEqual(a.Float32(), data) {
		t.Fatalf("chunked read: %v", err)
	}
}

func TestReadFileTruncated(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.npy")
	if err := os.WriteFile(p, hand(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000,), }", le32(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p)
	var fe FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want FormatError", err)
	}
}

func fixturesDir() string { return fixtures.Dir() }

func TestReadFixtures(t *testing.T) {
	dir := fixturesDir()
	x, err := ReadFile(filepath.Join(dir, "diffusers", "cifar_like", "x.npy"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			t.Skipf("fixtures not available: %v", err)
		}
		t.Fatal(err)
	}
	if x.DType != F4 || len(x.Shape) != 4 || x.Shape[1] != 3 {
		t.Fatalf("x.npy: dtype %q shape %v, want f4 [B,3,H,W]", x.DType, x.Shape)
	}
	xt := x.Tensor()
	if len(xt.Data) != numel(x.Shape) {
		t.Fatalf("tensor has %d values for shape %v", len(xt.Data), x.Shape)
	}
	var sum float64
	for _, v := range xt.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("non-finite value in x.npy")
		}
		sum += float64(v * v)
	}
	if sum == 0 {
		t.Errorf("x.npy is all zeros")
	}
	tt, err := ReadFile(filepath.Join(dir, "diffusers", "cifar_like", "t.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tt.Shape) != 1 || tt.Shape[0] != x.Shape[0] {
		t.Errorf("t.npy shape %v, batch %d", tt.Shape, x.Shape[0])
	}
	if _, err := tt.Int64(); err != nil {
		t.Errorf("t.npy timesteps not integral: %v", err)
	}
	// Re-encoding a fixture reproduces its bytes: same header layout as NumPy.
	raw, err := os.ReadFile(filepath.Join(dir, "diffusers", "cifar_like", "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteFloat32(&buf, x.Shape, xt.Data); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Errorf("re-encoded x.npy differs from the NumPy-written file")
	}
}
