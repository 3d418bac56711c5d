package npy

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzRead checks that Read never panics, fails only with the package's
// typed errors, and that what it accepts re-encodes to an equal array.
func FuzzRead(f *testing.F) {
	var b bytes.Buffer
	WriteFloat32(&b, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	f.Add(b.Bytes())
	b.Reset()
	WriteInt64(&b, []int{}, []int64{7})
	f.Add(b.Bytes())
	f.Add(hand(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 0), }", nil))
	f.Add(hand(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", le32(1, 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(bytes.NewReader(data))
		if err != nil {
			var fe FormatError
			var ue UnsupportedError
			if !errors.As(err, &fe) && !errors.As(err, &ue) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		want, err := byteSize(a.Shape, a.DType.Size())
		if err != nil || want != len(a.raw) {
			t.Fatalf("%d bytes for %s %v", len(a.raw), a.DType, a.Shape)
		}
		var out bytes.Buffer
		switch a.DType {
		case F4:
			err = WriteFloat32(&out, a.Shape, a.Float32())
		case F8:
			err = WriteFloat64(&out, a.Shape, a.Float64())
		default:
			v, _ := a.Int64()
			err = WriteInt64(&out, a.Shape, v)
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := Read(&out)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Shape) != len(a.Shape) || (a.DType != I4 && !bytes.Equal(a.raw, b.raw)) {
			t.Fatalf("round trip changed the array")
		}
	})
}
