package torchpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// pk assembles pickle bytes by hand for the hostile-input tests.
type pk struct{ bytes.Buffer }

func newPK() *pk {
	p := &pk{}
	p.op(opProto, 2)
	return p
}

func (p *pk) op(b ...byte) *pk { p.Write(b); return p }

func (p *pk) str(s string) *pk {
	p.op(opBinUnicode)
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

func (p *pk) int(n int32) *pk {
	p.op(opBinInt)
	binary.Write(p, binary.LittleEndian, n)
	return p
}

// long pushes any int64 via LONG1.
func (p *pk) long(n int64) *pk {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	p.op(opLong1, 8)
	p.Write(b[:])
	return p
}

func (p *pk) float(f float64) *pk {
	p.op(opBinFloat)
	binary.Write(p, binary.BigEndian, math.Float64bits(f))
	return p
}

func (p *pk) global(mod, name string) *pk {
	p.op(opGlobal)
	p.WriteString(mod + "\n" + name + "\n")
	return p
}

func (p *pk) tuple(ns ...int64) *pk {
	p.op(opMark)
	for _, n := range ns {
		p.long(n)
	}
	return p.op(opTuple)
}

// storage pushes the persistent-id load of one storage.
func (p *pk) storage(typ, key string, numel int64) *pk {
	p.op(opMark).str("storage").global("torch", typ).str(key).str("cpu").long(numel).op(opTuple)
	return p.op(opBinPersID)
}

// tensor pushes _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).
func (p *pk) tensor(typ, key string, numel, offset int64, size, stride []int64) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2").op(opMark)
	p.storage(typ, key, numel).long(offset).tuple(size...).tuple(stride...)
	p.op(opNewFalse).global("collections", "OrderedDict").op(opEmptyTuple, opReduce)
	return p.op(opTuple, opReduce)
}

func (p *pk) stop() []byte { p.op(opStop); return p.Bytes() }

type zfile struct {
	name string
	data []byte
}

// makeZip writes a torch-style archive with stored entries under top/.
func makeZip(t testing.TB, top string, pickle []byte, extra ...zfile) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	files := append([]zfile{{"data.pkl", pickle}, {"byteorder", []byte("little")}}, extra...)
	for _, f := range files {
		name := f.name
		if top != "" {
			name = top + "/" + f.name
		}
		fw, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(f.data)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func f32bytes(vals ...float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func wantKind(t *testing.T, err error, kind ErrKind) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %v error, got nil", kind)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *torchpt.Error", err, err)
	}
	if e.Kind != kind || !errors.Is(err, kind) {
		t.Fatalf("want kind %v, got %v: %v", kind, e.Kind, err)
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// touchAll converts every tensor reachable from v, as a consumer would.
func touchAll(v Value) {
	m, names, err := StateDict(v, "")
	if err != nil {
		return
	}
	for _, n := range names {
		t := m[n]
		t.Float32()
		t.Float64()
		t.Int64()
		t.Bytes()
		t.Contiguous()
	}
}
