package wasmenc

import (
	"bytes"
	"testing"
)

func TestLEB128(t *testing.T) {
	u := []struct {
		v    uint32
		want []byte
	}{{0, []byte{0}}, {1, []byte{1}}, {127, []byte{0x7f}}, {128, []byte{0x80, 0x01}},
		{624485, []byte{0xe5, 0x8e, 0x26}}, {0xffffffff, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}}}
	for _, c := range u {
		if got := AppendU32(nil, c.v); !bytes.Equal(got, c.want) {
			t.Errorf("u32 %d: % x, want % x", c.v, got, c.want)
		}
	}
	s := []struct {
		v    int64
		want []byte
	}{{0, []byte{0}}, {1, []byte{1}}, {-1, []byte{0x7f}}, {63, []byte{0x3f}}, {64, []byte{0xc0, 0x00}},
		{-64, []byte{0x40}}, {-65, []byte{0xbf, 0x7f}}, {-123456, []byte{0xc0, 0xbb, 0x78}},
		{-2147483648, []byte{0x80, 0x80, 0x80, 0x80, 0x78}}}
	for _, c := range s {
		if got := AppendS64(nil, c.v); !bytes.Equal(got, c.want) {
			t.Errorf("s %d: % x, want % x", c.v, got, c.want)
		}
	}
}

// The smallest modules, byte for byte as the binary format spells them.
func TestModuleEncoding(t *testing.T) {
	m := &Module{}
	m.DefineMemory(Limits{Min: 1, Max: 2}, "memory")
	want := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 1, 0, // type section: no types
		3, 1, 0, // function section: none
		5, 4, 1, 1, 1, 2, // memory section: one memory, limits min 1 max 2
		7, 10, 1, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0, // export "memory"
		10, 1, 0, // code section: none
		0, 8, 4, 'n', 'a', 'm', 'e', 1, 1, 0} // name section, no function names
	if got := m.Bytes(); !bytes.Equal(got, want) {
		t.Errorf("memory module:\n% x\nwant\n% x", got, want)
	}

	m = &Module{}
	f := m.Func("f", true)
	x := f.Param("x", I32, "int")
	f.Result(I32)
	f.Return(Add(x, I(1)))
	got := m.Bytes()
	code := []byte{10, 10, 1, 8, 0, 0x20, 0, 0x41, 1, 0x6a, 0x0f, 0x0b} // local.get 0; i32.const 1; i32.add; return; end
	if !bytes.Contains(got, code) {
		t.Errorf("function body not found in % x", got)
	}
	if !bytes.Contains(got, []byte{1, 6, 1, 0x60, 1, 0x7f, 1, 0x7f}) { // type (i32) -> i32
		t.Errorf("type section not found in % x", got)
	}
}

func TestTypeErrorsPanic(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("adding an f32 to an i32 did not panic")
		}
	}()
	Add(I(1), Fc(1))
}

func TestBranchDepths(t *testing.T) {
	m := &Module{}
	f := m.Func("g", false)
	f.Block(func(outer Label) {
		f.Loop(func(inner Label) {
			f.BrIf(outer, I(1)) // depth 1
			f.Br(inner)         // depth 0
		})
	})
	want := []byte{0x02, 0x40, 0x03, 0x40, 0x41, 1, 0x0d, 1, 0x0c, 0, 0x0b, 0x0b}
	if !bytes.Equal(f.code, want) {
		t.Errorf("code % x, want % x", f.code, want)
	}
}
