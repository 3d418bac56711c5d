package torchpt

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func checkErr(t *testing.T, err error) {
	if err == nil {
		return
	}
	var e *Error
	if !errors.As(err, &e) || e.Kind < ErrNotZip || e.Kind > ErrIO {
		t.Fatalf("untyped error %T: %v", err, err)
	}
}

func seedFiles(f *testing.F) [][]byte {
	var out [][]byte
	names, _ := filepath.Glob(filepath.Join("testdata", "*.pt"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzLoad feeds arbitrary bytes to Load and converts whatever tensors come
// out: it must return a typed error or a value, never panic or hang.
func FuzzLoad(f *testing.F) {
	for _, b := range seedFiles(f) {
		f.Add(b)
	}
	f.Add([]byte("PK\x03\x04"))
	f.Add(makeZip(f, "archive", newPK().tensor("FloatStorage", "0", 4, 1, []int64{3}, []int64{1}).stop(),
		zfile{"data/0", f32bytes(1, 2, 3, 4)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Open(data, &Options{SkipChecksums: true})
		checkErr(t, err)
		if err == nil {
			touchAll(v.Root)
		}
		v2, err := Load(data)
		checkErr(t, err)
		if err == nil {
			touchAll(v2)
		}
	})
}

// mixedStorages returns the storage entries of testdata/mixed.pt.
func mixedStorages(f *testing.F) []zfile {
	src, err := os.ReadFile(filepath.Join("testdata", "mixed.pt"))
	if err != nil {
		f.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(src), int64(len(src)))
	if err != nil {
		f.Fatal(err)
	}
	var out []zfile
	for _, e := range zr.File {
		if i := strings.Index(e.Name, "/data/"); i >= 0 {
			rc, _ := e.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			out = append(out, zfile{"data/" + e.Name[i+len("/data/"):], b})
		}
	}
	return out
}

// FuzzPickle fuzzes the unpickler directly: the pickle is wrapped in a valid
// archive holding mixed.pt's storages, so mutations reach the interpreter.
func FuzzPickle(f *testing.F) {
	storages := mixedStorages(f)
	for _, b := range seedFiles(f) {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			continue
		}
		for _, e := range zr.File {
			if strings.HasSuffix(e.Name, "/data.pkl") {
				rc, _ := e.Open()
				p, _ := io.ReadAll(rc)
				rc.Close()
				f.Add(p)
			}
		}
	}
	f.Add(newPK().tensor("FloatStorage", "0", 24, 2, []int64{2, 3}, []int64{1, 4}).stop())
	f.Add(newPK().op(opEmptyList, opBinPut, 0, opBinGet, 0, opAppend).stop())
	f.Fuzz(func(t *testing.T, pickle []byte) {
		data := makeZip(t, "archive", pickle, storages...)
		v, err := Load(data)
		checkErr(t, err)
		if err == nil {
			touchAll(v)
		}
	})
}
