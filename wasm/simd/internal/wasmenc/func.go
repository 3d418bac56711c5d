package wasmenc

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Func is one function under construction. Parameters come first (Param),
// then locals (Local); the body is written with statement methods (Set,
// Store, For, If, ...) whose operands are Exprs: typed expression trees that
// emit their own code. Type mismatches panic at generation time, so a bad
// kernel fails `go generate`, not the browser.
type Func struct {
	Name     string
	Exported bool

	index     uint32
	params    []ValType
	paramInfo []Param
	results   []ValType
	locals    []ValType
	code      []byte
	depth     int // open blocks, loops and ifs
}

// Expr is a value-producing expression.
type Expr interface {
	Type() ValType
	emit(f *Func)
}

// Var is a parameter or local.
type Var struct {
	idx uint32
	t   ValType
}

// Type implements Expr.
func (v Var) Type() ValType { return v.t }
func (v Var) emit(f *Func) {
	f.code = append(f.code, 0x20)
	f.code = AppendU32(f.code, v.idx)
}

type expr struct {
	t  ValType
	fn func(f *Func)
}

func (e expr) Type() ValType { return e.t }
func (e expr) emit(f *Func)  { e.fn(f) }

// Param declares the next parameter. kind is a free-form tag that binding
// generators read from Signature (for example "f32ptr" or "int").
func (f *Func) Param(name string, t ValType, kind string) Var {
	if len(f.locals) > 0 {
		panic("wasmenc: Param after Local")
	}
	f.params = append(f.params, t)
	f.paramInfo = append(f.paramInfo, Param{name, t, kind})
	return Var{uint32(len(f.params) - 1), t}
}

// Result declares a result type.
func (f *Func) Result(t ValType) { f.results = append(f.results, t) }

// Local declares a new local.
func (f *Func) Local(t ValType) Var {
	f.locals = append(f.locals, t)
	return Var{uint32(len(f.params) + len(f.locals) - 1), t}
}

// Locals declares n locals of one type.
func (f *Func) Locals(t ValType, n int) []Var {
	v := make([]Var, n)
	for i := range v {
		v[i] = f.Local(t)
	}
	return v
}

func (f *Func) op(b ...byte) { f.code = append(f.code, b...) }

func (f *Func) encode() []byte {
	if f.depth != 0 {
		panic(fmt.Sprintf("wasmenc: %s has %d unclosed blocks", f.Name, f.depth))
	}
	// Locals as runs of equal types.
	var groups [][2]uint32
	for _, t := range f.locals {
		if n := len(groups); n > 0 && groups[n-1][1] == uint32(t) {
			groups[n-1][0]++
		} else {
			groups = append(groups, [2]uint32{1, uint32(t)})
		}
	}
	b := AppendU32(nil, uint32(len(groups)))
	for _, g := range groups {
		b = AppendU32(b, g[0])
		b = append(b, byte(g[1]))
	}
	b = append(b, f.code...)
	return append(b, 0x0b)
}

func want(e Expr, t ValType, what string) {
	if e.Type() != t {
		panic(fmt.Sprintf("wasmenc: %s wants %v, got %v", what, t, e.Type()))
	}
}

// ---- statements ----

// Set assigns x to v.
func (f *Func) Set(v Var, x Expr) {
	want(x, v.t, "local.set")
	x.emit(f)
	f.op(0x21)
	f.code = AppendU32(f.code, v.idx)
}

// Inc adds a constant to an i32 local.
func (f *Func) Inc(v Var, n int32) { f.Set(v, Add(v, I(n))) }

// Drop evaluates x and discards it.
func (f *Func) Drop(x Expr) { x.emit(f); f.op(0x1a) }

// Call calls callee (a function without results) with args.
func (f *Func) Call(callee *Func, args ...Expr) {
	if len(args) != len(callee.params) || len(callee.results) != 0 {
		panic(fmt.Sprintf("wasmenc: call of %s with %d arguments", callee.Name, len(args)))
	}
	for i, a := range args {
		want(a, callee.params[i], "argument of "+callee.Name)
		a.emit(f)
	}
	f.op(0x10)
	f.code = AppendU32(f.code, callee.index)
}

// Return returns x (or nothing when x is nil).
func (f *Func) Return(x Expr) {
	if x != nil {
		x.emit(f)
	}
	f.op(0x0f)
}

// Label is the target of a branch: a block (branch = exit) or a loop
// (branch = continue).
type Label struct{ level int }

func (f *Func) open(opcode byte) Label {
	f.op(opcode, 0x40) // empty block type
	l := Label{f.depth}
	f.depth++
	return l
}

func (f *Func) close() { f.depth--; f.op(0x0b) }

func (f *Func) rel(l Label) uint32 {
	if l.level >= f.depth {
		panic("wasmenc: branch to a label that is not open")
	}
	return uint32(f.depth - 1 - l.level)
}

// Block emits a block; branching to its label leaves it.
func (f *Func) Block(body func(exit Label)) {
	l := f.open(0x02)
	body(l)
	f.close()
}

// Loop emits a loop; branching to its label starts the next iteration.
func (f *Func) Loop(body func(top Label)) {
	l := f.open(0x03)
	body(l)
	f.close()
}

// Br branches unconditionally.
func (f *Func) Br(l Label) { f.op(0x0c); f.code = AppendU32(f.code, f.rel(l)) }

// BrIf branches when cond (i32) is not zero.
func (f *Func) BrIf(l Label, cond Expr) {
	want(cond, I32, "br_if")
	cond.emit(f)
	f.op(0x0d)
	f.code = AppendU32(f.code, f.rel(l))
}

// If runs then when cond (i32) is not zero.
func (f *Func) If(cond Expr, then func()) { f.IfElse(cond, then, nil) }

// IfElse runs then or els.
func (f *Func) IfElse(cond Expr, then, els func()) {
	want(cond, I32, "if")
	cond.emit(f)
	f.open(0x04)
	then()
	if els != nil {
		f.op(0x05)
		els()
	}
	f.close()
}

// For runs body for v = from; v < to (unsigned); v += step. to is
// re-evaluated every iteration, so it should be a local or a constant.
func (f *Func) For(v Var, from, to Expr, step int32, body func()) {
	f.Set(v, from)
	f.Block(func(exit Label) {
		f.Loop(func(top Label) {
			f.BrIf(exit, GeU(v, to))
			body()
			f.Inc(v, step)
			f.Br(top)
		})
	})
}

// While runs body while cond (re-evaluated each time) is not zero.
func (f *Func) While(cond func() Expr, body func()) {
	f.Block(func(exit Label) {
		f.Loop(func(top Label) {
			f.BrIf(exit, Eqz(cond()))
			body()
			f.Br(top)
		})
	})
}

// memarg writes an alignment exponent and an offset.
func (f *Func) memarg(align, offset uint32) {
	f.code = AppendU32(f.code, align)
	f.code = AppendU32(f.code, offset)
}

func (f *Func) store(op []byte, align uint32, addr Expr, offset uint32, val Expr, t ValType) {
	want(addr, I32, "store address")
	want(val, t, "store value")
	addr.emit(f)
	val.emit(f)
	f.op(op...)
	f.memarg(align, offset)
}

// StoreF32 stores an f32 at addr+offset.
func (f *Func) StoreF32(addr Expr, offset uint32, val Expr) {
	f.store([]byte{0x38}, 2, addr, offset, val, F32)
}

// StoreF64 stores an f64 at addr+offset.
func (f *Func) StoreF64(addr Expr, offset uint32, val Expr) {
	f.store([]byte{0x39}, 3, addr, offset, val, F64)
}

// StoreI32 stores an i32 at addr+offset.
func (f *Func) StoreI32(addr Expr, offset uint32, val Expr) {
	f.store([]byte{0x36}, 2, addr, offset, val, I32)
}

// V128Store stores a vector at addr+offset (any alignment).
func (f *Func) V128Store(addr Expr, offset uint32, val Expr) {
	f.store(simd(0x0b), 2, addr, offset, val, V128)
}

// Store32Lane stores lane l of a vector as 4 bytes at addr+offset.
func (f *Func) Store32Lane(addr Expr, offset uint32, val Expr, lane int) {
	f.store(simd(0x5a), 2, addr, offset, val, V128)
	f.op(byte(lane))
}

// MemoryFill sets n bytes at dst to the byte value v (bulk memory).
func (f *Func) MemoryFill(dst, v, n Expr) {
	for _, e := range []Expr{dst, v, n} {
		want(e, I32, "memory.fill")
		e.emit(f)
	}
	f.op(0xfc, 0x0b, 0x00)
}

// MemoryCopy copies n bytes from src to dst (bulk memory, overlap-safe).
func (f *Func) MemoryCopy(dst, src, n Expr) {
	for _, e := range []Expr{dst, src, n} {
		want(e, I32, "memory.copy")
		e.emit(f)
	}
	f.op(0xfc, 0x0a, 0x00, 0x00)
}

// ---- expressions ----

// I is an i32 constant.
func I(v int32) Expr {
	return expr{I32, func(f *Func) { f.op(0x41); f.code = AppendS32(f.code, v) }}
}

// Fc is an f32 constant.
func Fc(v float32) Expr {
	return expr{F32, func(f *Func) {
		f.op(0x43)
		f.code = binary.LittleEndian.AppendUint32(f.code, math.Float32bits(v))
	}}
}

// Dc is an f64 constant.
func Dc(v float64) Expr {
	return expr{F64, func(f *Func) {
		f.op(0x44)
		f.code = binary.LittleEndian.AppendUint64(f.code, math.Float64bits(v))
	}}
}

// V4 is a v128 constant of four f32 lanes.
func V4(a, b, c, d float32) Expr {
	return expr{V128, func(f *Func) {
		f.op(simd(0x0c)...)
		for _, v := range []float32{a, b, c, d} {
			f.code = binary.LittleEndian.AppendUint32(f.code, math.Float32bits(v))
		}
	}}
}

// I4 is a v128 constant of four i32 lanes.
func I4(a, b, c, d int32) Expr {
	return expr{V128, func(f *Func) {
		f.op(simd(0x0c)...)
		for _, v := range []int32{a, b, c, d} {
			f.code = binary.LittleEndian.AppendUint32(f.code, uint32(v))
		}
	}}
}

// Splat4 is an f32x4 constant with every lane v.
func Splat4(v float32) Expr { return V4(v, v, v, v) }

// SplatI4 is an i32x4 constant with every lane v.
func SplatI4(v int32) Expr { return I4(v, v, v, v) }

func simd(op uint32) []byte { return AppendU32([]byte{0xfd}, op) }

// un builds a unary op of input type in and result type out.
func un(name string, in, out ValType, op []byte, a Expr) Expr {
	want(a, in, name)
	return expr{out, func(f *Func) { a.emit(f); f.op(op...) }}
}

// bin builds a binary op.
func bin(name string, in, out ValType, op []byte, a, b Expr) Expr {
	want(a, in, name)
	want(b, in, name)
	return expr{out, func(f *Func) { a.emit(f); b.emit(f); f.op(op...) }}
}

// byType picks the opcode for a scalar arithmetic op from the operand type.
func byType(name string, a, b Expr, i32, f32, f64 byte) Expr {
	var op byte
	switch a.Type() {
	case I32:
		op = i32
	case F32:
		op = f32
	case F64:
		op = f64
	default:
		panic("wasmenc: " + name + " on " + a.Type().String())
	}
	if op == 0 {
		panic("wasmenc: no " + name + " for " + a.Type().String())
	}
	return bin(name, a.Type(), a.Type(), []byte{op}, a, b)
}

// Add, Sub, Mul are i32/f32/f64 arithmetic chosen by operand type.
func Add(a, b Expr) Expr { return byType("add", a, b, 0x6a, 0x92, 0xa0) }
func Sub(a, b Expr) Expr { return byType("sub", a, b, 0x6b, 0x93, 0xa1) }
func Mul(a, b Expr) Expr { return byType("mul", a, b, 0x6c, 0x94, 0xa2) }

// Div is f32/f64 division.
func Div(a, b Expr) Expr { return byType("div", a, b, 0, 0x95, 0xa3) }

// Min and Max are f32/f64 min and max.
func Min(a, b Expr) Expr { return byType("min", a, b, 0, 0x96, 0xa4) }
func Max(a, b Expr) Expr { return byType("max", a, b, 0, 0x97, 0xa5) }

// Sqrt is the f64 square root.
func Sqrt(a Expr) Expr { return un("f64.sqrt", F64, F64, []byte{0x9f}, a) }

// i32 operations.
func DivU(a, b Expr) Expr { return bin("i32.div_u", I32, I32, []byte{0x6e}, a, b) }
func RemU(a, b Expr) Expr { return bin("i32.rem_u", I32, I32, []byte{0x70}, a, b) }
func And(a, b Expr) Expr  { return bin("i32.and", I32, I32, []byte{0x71}, a, b) }
func Or(a, b Expr) Expr   { return bin("i32.or", I32, I32, []byte{0x72}, a, b) }
func Shl(a, b Expr) Expr  { return bin("i32.shl", I32, I32, []byte{0x74}, a, b) }
func ShrU(a, b Expr) Expr { return bin("i32.shr_u", I32, I32, []byte{0x76}, a, b) }
func Eqz(a Expr) Expr     { return un("i32.eqz", I32, I32, []byte{0x45}, a) }
func Eq(a, b Expr) Expr   { return bin("i32.eq", I32, I32, []byte{0x46}, a, b) }
func Ne(a, b Expr) Expr   { return bin("i32.ne", I32, I32, []byte{0x47}, a, b) }
func LtU(a, b Expr) Expr  { return bin("i32.lt_u", I32, I32, []byte{0x49}, a, b) }
func GtU(a, b Expr) Expr  { return bin("i32.gt_u", I32, I32, []byte{0x4b}, a, b) }
func LeU(a, b Expr) Expr  { return bin("i32.le_u", I32, I32, []byte{0x4d}, a, b) }
func GeU(a, b Expr) Expr  { return bin("i32.ge_u", I32, I32, []byte{0x4f}, a, b) }

// Select is a ? b : c where a and b share a type and c is i32.
func Select(a, b, c Expr) Expr {
	want(b, a.Type(), "select")
	want(c, I32, "select condition")
	return expr{a.Type(), func(f *Func) { a.emit(f); b.emit(f); c.emit(f); f.op(0x1b) }}
}

// Conversions.
func F64FromF32(a Expr) Expr  { return un("f64.promote_f32", F32, F64, []byte{0xbb}, a) }
func F32FromF64(a Expr) Expr  { return un("f32.demote_f64", F64, F32, []byte{0xb6}, a) }
func F64FromI32U(a Expr) Expr { return un("f64.convert_i32_u", I32, F64, []byte{0xb8}, a) }

// Loads.
func load(name string, op []byte, align uint32, t ValType, addr Expr, offset uint32) Expr {
	want(addr, I32, name+" address")
	return expr{t, func(f *Func) { addr.emit(f); f.op(op...); f.memarg(align, offset) }}
}

func LoadI32(addr Expr, offset uint32) Expr {
	return load("i32.load", []byte{0x28}, 2, I32, addr, offset)
}
func LoadF32(addr Expr, offset uint32) Expr {
	return load("f32.load", []byte{0x2a}, 2, F32, addr, offset)
}
func LoadF64(addr Expr, offset uint32) Expr {
	return load("f64.load", []byte{0x2b}, 3, F64, addr, offset)
}
func LoadU16(addr Expr, offset uint32) Expr {
	return load("i32.load16_u", []byte{0x2f}, 1, I32, addr, offset)
}

// V128Load loads 16 bytes (any alignment).
func V128Load(addr Expr, offset uint32) Expr {
	return load("v128.load", simd(0x00), 2, V128, addr, offset)
}

// Load32Splat loads 4 bytes into every lane.
func Load32Splat(addr Expr, offset uint32) Expr {
	return load("v128.load32_splat", simd(0x09), 2, V128, addr, offset)
}

// ---- SIMD128 ----

func vbin(name string, op uint32, a, b Expr) Expr { return bin(name, V128, V128, simd(op), a, b) }
func vun(name string, op uint32, a Expr) Expr     { return un(name, V128, V128, simd(op), a) }
func F4Add(a, b Expr) Expr                        { return vbin("f32x4.add", 0xe4, a, b) }
func F4Sub(a, b Expr) Expr                        { return vbin("f32x4.sub", 0xe5, a, b) }
func F4Mul(a, b Expr) Expr                        { return vbin("f32x4.mul", 0xe6, a, b) }
func F4Div(a, b Expr) Expr                        { return vbin("f32x4.div", 0xe7, a, b) }
func F4PMin(a, b Expr) Expr                       { return vbin("f32x4.pmin", 0xea, a, b) }
func F4PMax(a, b Expr) Expr                       { return vbin("f32x4.pmax", 0xeb, a, b) }
func F4Sqrt(a Expr) Expr                          { return vun("f32x4.sqrt", 0xe3, a) }
func F4Max(a, b Expr) Expr                        { return vbin("f32x4.max", 0xe9, a, b) }
func F4Gt(a, b Expr) Expr                         { return vbin("f32x4.gt", 0x44, a, b) }
func F4Nearest(a Expr) Expr                       { return vun("f32x4.nearest", 0x6a, a) }
func F4Neg(a Expr) Expr                           { return vun("f32x4.neg", 0xe1, a) }
func F4FromI4(a Expr) Expr                        { return vun("f32x4.convert_i32x4_s", 0xfa, a) }
func I4TruncSat(a Expr) Expr                      { return vun("i32x4.trunc_sat_f32x4_s", 0xf8, a) }
func I4Add(a, b Expr) Expr                        { return vbin("i32x4.add", 0xae, a, b) }
func I4GeU(a, b Expr) Expr                        { return vbin("i32x4.ge_u", 0x40, a, b) }
func I4GtU(a, b Expr) Expr                        { return vbin("i32x4.gt_u", 0x3c, a, b) }
func VAnd(a, b Expr) Expr                         { return vbin("v128.and", 0x4e, a, b) }
func VOr(a, b Expr) Expr                          { return vbin("v128.or", 0x50, a, b) }
func I4ExtendLowU16(a Expr) Expr                  { return vun("i32x4.extend_low_i16x8_u", 0xa9, a) }
func I4ExtendHighU16(a Expr) Expr                 { return vun("i32x4.extend_high_i16x8_u", 0xaa, a) }
func D2Add(a, b Expr) Expr                        { return vbin("f64x2.add", 0xf0, a, b) }
func D2Sub(a, b Expr) Expr                        { return vbin("f64x2.sub", 0xf1, a, b) }
func D2Mul(a, b Expr) Expr                        { return vbin("f64x2.mul", 0xf2, a, b) }
func D2PromoteLow(a Expr) Expr                    { return vun("f64x2.promote_low_f32x4", 0x5f, a) }
func I4Shl(a, n Expr) Expr                        { return shift("i32x4.shl", 0xab, a, n) }
func I4ShrU(a, n Expr) Expr                       { return shift("i32x4.shr_u", 0xad, a, n) }
func shift(name string, op uint32, a, n Expr) Expr {
	want(a, V128, name)
	want(n, I32, name+" amount")
	return expr{V128, func(f *Func) { a.emit(f); n.emit(f); f.op(simd(op)...) }}
}

// F4RelaxedMadd is f32x4.relaxed_madd (relaxed SIMD): a·b + c per lane,
// fused or not as the hardware prefers.
func F4RelaxedMadd(a, b, c Expr) Expr {
	for _, e := range []Expr{a, b, c} {
		want(e, V128, "f32x4.relaxed_madd")
	}
	return expr{V128, func(f *Func) { a.emit(f); b.emit(f); c.emit(f); f.op(simd(0x105)...) }}
}

// Bitselect takes bits of a where mask is 1 and of b where it is 0.
func Bitselect(a, b, mask Expr) Expr {
	want(a, V128, "bitselect")
	want(b, V128, "bitselect")
	want(mask, V128, "bitselect")
	return expr{V128, func(f *Func) { a.emit(f); b.emit(f); mask.emit(f); f.op(simd(0x52)...) }}
}

// F4Splat makes a vector of four copies of an f32.
func F4Splat(a Expr) Expr { return un("f32x4.splat", F32, V128, simd(0x13), a) }

// I4Splat makes a vector of four copies of an i32.
func I4Splat(a Expr) Expr { return un("i32x4.splat", I32, V128, simd(0x11), a) }

// D2Splat makes a vector of two copies of an f64.
func D2Splat(a Expr) Expr { return un("f64x2.splat", F64, V128, simd(0x14), a) }

// F4Lane extracts f32 lane l.
func F4Lane(a Expr, l int) Expr {
	want(a, V128, "f32x4.extract_lane")
	return expr{F32, func(f *Func) { a.emit(f); f.op(simd(0x1f)...); f.op(byte(l)) }}
}

// D2Lane extracts f64 lane l.
func D2Lane(a Expr, l int) Expr {
	want(a, V128, "f64x2.extract_lane")
	return expr{F64, func(f *Func) { a.emit(f); f.op(simd(0x21)...); f.op(byte(l)) }}
}

// Shuffle32 picks four 32-bit lanes from a (0-3) and b (4-7).
func Shuffle32(a, b Expr, l0, l1, l2, l3 int) Expr {
	want(a, V128, "i8x16.shuffle")
	want(b, V128, "i8x16.shuffle")
	return expr{V128, func(f *Func) {
		a.emit(f)
		b.emit(f)
		f.op(simd(0x0d)...)
		for _, l := range []int{l0, l1, l2, l3} {
			for k := 0; k < 4; k++ {
				f.op(byte(4*l + k))
			}
		}
	}}
}
