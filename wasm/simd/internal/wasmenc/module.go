package wasmenc

import (
	"fmt"
	"strings"
)

// ValType is a WebAssembly value type.
type ValType byte

// Value types (spec 5.3.1).
const (
	I32  ValType = 0x7f
	I64  ValType = 0x7e
	F32  ValType = 0x7d
	F64  ValType = 0x7c
	V128 ValType = 0x7b
)

func (t ValType) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	case V128:
		return "v128"
	}
	return fmt.Sprintf("valtype(%#x)", byte(t))
}

// Section ids (spec 5.5.2).
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secMemory   = 5
	secExport   = 7
	secCode     = 10
)

// Limits of a memory, in 64 KiB pages. Max < 0 means no maximum. Shared
// marks a shared memory (threads proposal: a SharedArrayBuffer that workers
// can use at once); it needs a maximum.
type Limits struct {
	Min    uint32
	Max    int64
	Shared bool
}

func (l Limits) append(b []byte) []byte {
	if l.Max < 0 {
		if l.Shared {
			panic("wasmenc: a shared memory needs a maximum")
		}
		return AppendU32(append(b, 0x00), l.Min)
	}
	flags := byte(0x01)
	if l.Shared {
		flags = 0x03
	}
	b = AppendU32(append(b, flags), l.Min)
	return AppendU32(b, uint32(l.Max))
}

// Module collects the parts of one module and encodes them with Bytes.
type Module struct {
	memImport *[2]string // module, name
	memLimits Limits
	memDefine bool
	memExport string
	funcs     []*Func
}

// ImportMemory makes the module's memory 0 an import (module.name).
func (m *Module) ImportMemory(module, name string, l Limits) {
	m.memImport = &[2]string{module, name}
	m.memLimits = l
}

// DefineMemory gives the module its own memory 0, exported under export
// when that is not empty.
func (m *Module) DefineMemory(l Limits, export string) {
	m.memDefine = true
	m.memLimits = l
	m.memExport = export
}

// Func starts a new function. Exported functions are exported under name.
func (m *Module) Func(name string, exported bool) *Func {
	f := &Func{Name: name, Exported: exported, index: uint32(len(m.funcs))}
	m.funcs = append(m.funcs, f)
	return f
}

// Funcs returns the functions in index order.
func (m *Module) Funcs() []*Func { return m.funcs }

func funcType(f *Func) []byte {
	b := []byte{0x60}
	b = AppendU32(b, uint32(len(f.params)))
	for _, p := range f.params {
		b = append(b, byte(p))
	}
	b = AppendU32(b, uint32(len(f.results)))
	for _, r := range f.results {
		b = append(b, byte(r))
	}
	return b
}

func section(out []byte, id byte, body []byte) []byte {
	out = append(out, id)
	out = AppendU32(out, uint32(len(body)))
	return append(out, body...)
}

// Bytes encodes the module. It panics on a function left with open blocks.
func (m *Module) Bytes() []byte {
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

	// Types, deduplicated by encoding.
	var types [][]byte
	typeIdx := map[string]uint32{}
	fnType := make([]uint32, len(m.funcs))
	for i, f := range m.funcs {
		t := funcType(f)
		idx, ok := typeIdx[string(t)]
		if !ok {
			idx = uint32(len(types))
			typeIdx[string(t)] = idx
			types = append(types, t)
		}
		fnType[i] = idx
	}
	body := AppendU32(nil, uint32(len(types)))
	for _, t := range types {
		body = append(body, t...)
	}
	out = section(out, secType, body)

	if m.memImport != nil {
		body = AppendU32(nil, 1)
		body = appendName(body, m.memImport[0])
		body = appendName(body, m.memImport[1])
		body = append(body, 0x02) // memory
		body = m.memLimits.append(body)
		out = section(out, secImport, body)
	}

	body = AppendU32(nil, uint32(len(m.funcs)))
	for _, t := range fnType {
		body = AppendU32(body, t)
	}
	out = section(out, secFunction, body)

	if m.memDefine {
		body = AppendU32(nil, 1)
		body = m.memLimits.append(body)
		out = section(out, secMemory, body)
	}

	var exports [][]byte
	for _, f := range m.funcs {
		if f.Exported {
			e := appendName(nil, f.Name)
			e = append(e, 0x00)
			exports = append(exports, AppendU32(e, f.index))
		}
	}
	if m.memDefine && m.memExport != "" {
		e := appendName(nil, m.memExport)
		exports = append(exports, AppendU32(append(e, 0x02), 0))
	}
	body = AppendU32(nil, uint32(len(exports)))
	for _, e := range exports {
		body = append(body, e...)
	}
	out = section(out, secExport, body)

	body = AppendU32(nil, uint32(len(m.funcs)))
	for _, f := range m.funcs {
		c := f.encode()
		body = AppendU32(body, uint32(len(c)))
		body = append(body, c...)
	}
	out = section(out, secCode, body)

	// The "name" custom section (spec 7.4) so profilers show kernel names.
	names := AppendU32(nil, uint32(len(m.funcs)))
	for _, f := range m.funcs {
		names = AppendU32(names, f.index)
		names = appendName(names, f.Name)
	}
	body = appendName(nil, "name")
	body = append(body, 1) // function names subsection
	body = AppendU32(body, uint32(len(names)))
	body = append(body, names...)
	return section(out, secCustom, body)
}

// Signature describes a function's parameters for binding generators.
type Signature struct {
	Name    string
	Params  []Param
	Results []ValType
}

// Param is a named function parameter.
type Param struct {
	Name string
	Type ValType
	Kind string // free-form tag for binding generators (e.g. "f32ptr")
}

// Signatures lists the exported functions' signatures in index order.
func (m *Module) Signatures() []Signature {
	var s []Signature
	for _, f := range m.funcs {
		if f.Exported {
			s = append(s, Signature{f.Name, append([]Param(nil), f.paramInfo...), append([]ValType(nil), f.results...)})
		}
	}
	return s
}

// String renders a signature like "gemm(ap i32, ...)".
func (s Signature) String() string {
	var parts []string
	for _, p := range s.Params {
		parts = append(parts, p.Name+" "+p.Type.String())
	}
	r := ""
	for _, t := range s.Results {
		r += " " + t.String()
	}
	return s.Name + "(" + strings.Join(parts, ", ") + ")" + r
}
