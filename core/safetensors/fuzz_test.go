package safetensors

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzRead checks that Read never panics, that what it accepts is
// self-consistent, and that float files survive a Write/Read round trip.
func FuzzRead(f *testing.F) {
	// Seed from every checked-in file; testdata/fuzz is added by go test.
	filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && path == filepath.Join("testdata", "fuzz") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			if b, err := os.ReadFile(path); err == nil {
				f.Add(b)
			}
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		floatsOnly := true
		entries := make([]Entry, len(file.Tensors))
		for i := range file.Tensors {
			ti := &file.Tensors[i]
			n := ti.Numel()
			if n < 0 || len(ti.Data) != n*ti.DType.Size() {
				t.Fatalf("%s: %d bytes for %s %v", ti.Name, len(ti.Data), ti.DType, ti.Shape)
			}
			if got, ok := file.Get(ti.Name); !ok || got != ti {
				t.Fatalf("Get(%q) failed", ti.Name)
			}
			v, err := ti.Float32()
			if err != nil {
				t.Fatalf("%s: Float32: %v", ti.Name, err)
			}
			if len(v) != n {
				t.Fatalf("%s: Float32 gave %d values, want %d", ti.Name, len(v), n)
			}
			switch ti.DType {
			case F16, BF16, F32:
			default:
				floatsOnly = false
			}
			entries[i] = Entry{Name: ti.Name, Shape: ti.Shape, DType: ti.DType, Data: v}
		}
		if !floatsOnly {
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, entries, file.Metadata); err != nil {
			t.Fatalf("re-Write: %v", err)
		}
		again, err := Read(buf.Bytes())
		if err != nil {
			t.Fatalf("re-Read: %v", err)
		}
		if len(again.Tensors) != len(file.Tensors) || len(again.Metadata) != len(file.Metadata) {
			t.Fatalf("round trip changed counts")
		}
		for k, v := range file.Metadata {
			if again.Metadata[k] != v {
				t.Fatalf("metadata %q: %q != %q", k, again.Metadata[k], v)
			}
		}
		for _, e := range entries {
			ti, ok := again.Get(e.Name)
			if !ok || ti.DType != e.DType || !reflect.DeepEqual(ti.Shape, e.Shape) {
				t.Fatalf("round trip lost or changed %q", e.Name)
			}
			v, err := ti.Float32()
			if err != nil || !sameFloats(v, e.Data) {
				t.Fatalf("%q: values changed in round trip: %v", e.Name, err)
			}
		}
	})
}
