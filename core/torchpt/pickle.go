package torchpt

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Pickle opcodes (see Python's pickletools for their documentation).
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opFloat          = 'F'
	opInt            = 'I'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opLong           = 'L'
	opBinInt2        = 'M'
	opNone           = 'N'
	opPersID         = 'P'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opString         = 'S'
	opBinString      = 'T'
	opShortBinString = 'U'
	opUnicode        = 'V'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opGet            = 'g'
	opBinGet         = 'h'
	opInst           = 'i'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opObj            = 'o'
	opPut            = 'p'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	// protocol 2
	opProto    = 0x80
	opNewObj   = 0x81
	opExt1     = 0x82
	opExt2     = 0x83
	opExt4     = 0x84
	opTuple1   = 0x85
	opTuple2   = 0x86
	opTuple3   = 0x87
	opNewTrue  = 0x88
	opNewFalse = 0x89
	opLong1    = 0x8a
	opLong4    = 0x8b
	// protocol 3
	opBinBytes      = 'B'
	opShortBinBytes = 'C'
	// protocol 4
	opShortBinUnicode = 0x8c
	opBinUnicode8     = 0x8d
	opBinBytes8       = 0x8e
	opEmptySet        = 0x8f
	opAddItems        = 0x90
	opFrozenSet       = 0x91
	opNewObjEx        = 0x92
	opStackGlobal     = 0x93
	opMemoize         = 0x94
	opFrame           = 0x95
	// protocol 5
	opByteArray8     = 0x96
	opNextBuffer     = 0x97
	opReadonlyBuffer = 0x98
)

var unsupportedOps = map[byte]string{
	opPersID: "PERSID", opString: "STRING", opUnicode: "UNICODE", opInst: "INST", opObj: "OBJ",
	opExt1: "EXT1", opExt2: "EXT2", opExt4: "EXT4", opEmptySet: "EMPTY_SET", opAddItems: "ADDITEMS",
	opFrozenSet: "FROZENSET", opNextBuffer: "NEXT_BUFFER", opReadonlyBuffer: "READONLY_BUFFER",
}

const maxLine = 4096 // text-opcode arguments (GLOBAL names, INT ...)

type unpickler struct {
	data    []byte
	pos     int
	stack   []any
	marks   []int
	memo    map[uint32]any
	opts    *Options
	m       *meter // Options.MaxObjectBytes: what is built, not what is referenced
	persist func(pid any, m *meter) (any, error)
}

// emptyTuple is pushed for every EMPTY_TUPLE: tuples are immutable, so one
// boxed value serves them all.
var emptyTuple any = Tuple{}

func newUnpickler(data []byte, opts *Options, m *meter, persist func(any, *meter) (any, error)) *unpickler {
	return &unpickler{data: data, opts: opts, m: m, persist: persist, memo: map[uint32]any{}}
}

func (u *unpickler) fail(kind ErrKind, format string, args ...any) error {
	return &Error{Kind: kind, Detail: fmt.Sprintf("pickle offset %d: ", u.pos) + fmt.Sprintf(format, args...)}
}

// charge counts n bytes about to be built for what against MaxObjectBytes.
func (u *unpickler) charge(n int64, what string) error {
	if err := u.m.charge(n, what); err != nil {
		return u.at(err)
	}
	return nil
}

// at adds the pickle offset to an error from outside the unpickler.
func (u *unpickler) at(err error) error {
	if e, ok := err.(*Error); ok && e.Kind == ErrTooLarge {
		e.Detail = fmt.Sprintf("pickle offset %d: ", u.pos) + e.Detail
	}
	return err
}

func (u *unpickler) read(n uint64) ([]byte, error) {
	if n > uint64(len(u.data)-u.pos) {
		return nil, u.fail(ErrTruncated, "needs %d more bytes, %d left", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+int(n)]
	u.pos += int(n)
	return b, nil
}

func (u *unpickler) readByte() (byte, error) {
	b, err := u.read(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (u *unpickler) readUint(n int) (uint64, error) {
	b, err := u.read(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (u *unpickler) readLine() (string, error) {
	rest := u.data[u.pos:]
	for i, c := range rest {
		if c == '\n' {
			if err := u.charge(int64(i)+costString, "a text argument"); err != nil {
				return "", err
			}
			u.pos += i + 1
			return string(rest[:i]), nil
		}
		if i >= maxLine {
			return "", u.fail(ErrBadPickle, "text argument longer than %d bytes", maxLine)
		}
	}
	return "", u.fail(ErrTruncated, "unterminated text argument")
}

func (u *unpickler) push(v any) error {
	if len(u.stack) >= u.opts.MaxStack {
		return u.fail(ErrTooLarge, "stack exceeds %d entries", u.opts.MaxStack)
	}
	if len(u.stack) == cap(u.stack) {
		s, err := grow(u.stack, 1, u.m, "the pickle stack")
		if err != nil {
			return u.at(err)
		}
		u.stack = s
	}
	u.stack = append(u.stack, v)
	return nil
}

// pushNew pushes a value just built, charging cost bytes for it.
func (u *unpickler) pushNew(v any, cost int64, what string) error {
	if err := u.charge(cost, what); err != nil {
		return err
	}
	return u.push(v)
}

func (u *unpickler) fence() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) pop() (any, error) {
	if len(u.stack) <= u.fence() {
		return nil, u.fail(ErrBadPickle, "stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack[len(u.stack)-1] = nil
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) <= u.fence() {
		return nil, u.fail(ErrBadPickle, "stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark removes and returns everything above the last MARK.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, u.fail(ErrBadPickle, "no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	if err := u.charge(int64(len(u.stack)-m)*costSlot, "the items after a MARK"); err != nil {
		return nil, err
	}
	items := append([]any(nil), u.stack[m:]...)
	clear(u.stack[m:])
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) memoPut(idx uint32) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	if _, ok := u.memo[idx]; !ok {
		if len(u.memo) >= u.opts.MaxMemo {
			return u.fail(ErrTooLarge, "memo exceeds %d entries", u.opts.MaxMemo)
		}
		if err := u.charge(costMemo, "a memo entry"); err != nil {
			return err
		}
	}
	u.memo[idx] = v
	return nil
}

func (u *unpickler) memoGet(idx uint64) error {
	if idx > math.MaxUint32 {
		return u.fail(ErrBadPickle, "memo key %d out of range", idx)
	}
	v, ok := u.memo[uint32(idx)]
	if !ok {
		return u.fail(ErrBadPickle, "memo key %d not defined", idx)
	}
	return u.push(v)
}

// decodeLong reads a little-endian two's-complement integer (LONG1/LONG4).
func decodeLong(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, true
	}
	neg := b[len(b)-1]&0x80 != 0
	if len(b) > 8 {
		ext := byte(0)
		if neg {
			ext = 0xff
		}
		for _, c := range b[8:] {
			if c != ext {
				return 0, false
			}
		}
		if (b[7]&0x80 != 0) != neg {
			return 0, false
		}
		b = b[:8]
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if neg && len(b) < 8 {
		v |= ^uint64(0) << (8 * uint(len(b)))
	}
	return int64(v), true
}

func (u *unpickler) appendTo(target any, items []any) error {
	l, ok := target.(*listBox)
	if !ok {
		return u.fail(ErrBadPickle, "APPEND to a %s", typeName(target))
	}
	if len(l.items)+len(items) > u.opts.MaxContainerLen {
		return u.fail(ErrTooLarge, "list exceeds %d items", u.opts.MaxContainerLen)
	}
	s, err := grow(l.items, len(items), u.m, "list items")
	if err != nil {
		return u.at(err)
	}
	l.items = append(s, items...)
	return nil
}

func (u *unpickler) setItems(target any, kv []any) error {
	d, ok := target.(*OrderedDict)
	if !ok {
		return u.fail(ErrBadPickle, "SETITEM on a %s", typeName(target))
	}
	if len(kv)%2 != 0 {
		return u.fail(ErrBadPickle, "SETITEMS with an odd number of items")
	}
	for i := 0; i < len(kv); i += 2 {
		if err := d.put(kv[i], kv[i+1], u.opts.MaxContainerLen, u.m); err != nil {
			return u.at(err)
		}
	}
	return nil
}

func (u *unpickler) run() (any, error) {
	for {
		op, err := u.readByte()
		if err != nil {
			return nil, err
		}
		if op == opStop {
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			return v, nil
		}
		if err := u.step(op); err != nil {
			return nil, err
		}
	}
}

func (u *unpickler) step(op byte) error {
	switch op {
	case opProto:
		v, err := u.readByte()
		if err != nil {
			return err
		}
		if v > 5 {
			return u.fail(ErrUnsupported, "pickle protocol %d", v)
		}
		return nil
	case opFrame:
		n, err := u.readUint(8)
		if err != nil {
			return err
		}
		if n > uint64(len(u.data)-u.pos) {
			return u.fail(ErrTruncated, "frame of %d bytes, %d left", n, len(u.data)-u.pos)
		}
		return nil
	case opMark:
		if len(u.marks) >= u.opts.MaxMarks {
			return u.fail(ErrTooLarge, "more than %d open MARKs", u.opts.MaxMarks)
		}
		u.marks = append(u.marks, len(u.stack))
		return nil
	case opPop:
		if len(u.stack) > u.fence() {
			_, err := u.pop()
			return err
		}
		if len(u.marks) > 0 {
			u.marks = u.marks[:len(u.marks)-1]
			return nil
		}
		return u.fail(ErrBadPickle, "stack underflow")
	case opPopMark:
		_, err := u.popMark()
		return err
	case opDup:
		v, err := u.top()
		if err != nil {
			return err
		}
		return u.push(v)
	case opNone:
		return u.push(nil)
	case opNewTrue:
		return u.push(true)
	case opNewFalse:
		return u.push(false)
	case opBinInt:
		v, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.pushNew(int64(int32(uint32(v))), costBox, "an int")
	case opBinInt1:
		v, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.pushNew(int64(v), costBox, "an int")
	case opBinInt2:
		v, err := u.readUint(2)
		if err != nil {
			return err
		}
		return u.pushNew(int64(v), costBox, "an int")
	case opLong1, opLong4:
		var n uint64
		var err error
		if op == opLong1 {
			n, err = u.readUint(1)
		} else {
			n, err = u.readUint(4)
			if err == nil && int32(uint32(n)) < 0 {
				return u.fail(ErrBadPickle, "LONG4 with negative length")
			}
		}
		if err != nil {
			return err
		}
		b, err := u.read(n)
		if err != nil {
			return err
		}
		v, ok := decodeLong(b)
		if !ok {
			return u.fail(ErrUnsupported, "integer of %d bytes does not fit in int64", n)
		}
		return u.pushNew(v, costBox, "an int")
	case opInt, opLong:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		if op == opInt && s == "00" {
			return u.push(false)
		}
		if op == opInt && s == "01" {
			return u.push(true)
		}
		s = strings.TrimSuffix(s, "L")
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return u.fail(ErrBadPickle, "bad integer %q", s)
		}
		return u.pushNew(v, costBox, "an int")
	case opFloat:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return u.fail(ErrBadPickle, "bad float %q", s)
		}
		return u.pushNew(v, costBox, "a float")
	case opBinFloat:
		b, err := u.read(8)
		if err != nil {
			return err
		}
		return u.pushNew(math.Float64frombits(binary.BigEndian.Uint64(b)), costBox, "a float")
	case opBinUnicode, opShortBinUnicode, opBinUnicode8, opBinString, opShortBinString:
		w := lenWidth(op)
		n, err := u.readUint(w)
		if err != nil {
			return err
		}
		if op == opBinString && int32(uint32(n)) < 0 {
			return u.fail(ErrBadPickle, "BINSTRING with negative length")
		}
		b, err := u.read(n)
		if err != nil {
			return err
		}
		if err := u.charge(int64(n)+costString, "a string"); err != nil {
			return err
		}
		return u.push(string(b))
	case opBinBytes, opShortBinBytes, opBinBytes8, opByteArray8:
		w := lenWidth(op)
		n, err := u.readUint(w)
		if err != nil {
			return err
		}
		b, err := u.read(n)
		if err != nil {
			return err
		}
		if err := u.charge(int64(n)+costSlice, "a bytes object"); err != nil {
			return err
		}
		return u.push(append([]byte{}, b...))
	case opEmptyList:
		return u.pushNew(&listBox{}, costList, "a list")
	case opEmptyDict:
		return u.pushNew(newDict(false), costDict, "a dict")
	case opEmptyTuple:
		return u.push(emptyTuple)
	case opList:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		if len(items) > u.opts.MaxContainerLen {
			return u.fail(ErrTooLarge, "list exceeds %d items", u.opts.MaxContainerLen)
		}
		return u.pushNew(&listBox{items: items}, costList, "a list")
	case opTuple:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return u.push(emptyTuple)
		}
		if len(items) > u.opts.MaxContainerLen {
			return u.fail(ErrTooLarge, "tuple exceeds %d items", u.opts.MaxContainerLen)
		}
		return u.pushNew(Tuple(items), costSlice, "a tuple")
	case opDict:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		if err := u.charge(costDict, "a dict"); err != nil {
			return err
		}
		d := newDict(false)
		if err := u.setItems(d, items); err != nil {
			return err
		}
		return u.push(d)
	case opTuple1, opTuple2, opTuple3:
		n := int(op-opTuple1) + 1
		if len(u.stack)-u.fence() < n {
			return u.fail(ErrBadPickle, "stack underflow")
		}
		if err := u.charge(int64(n)*costSlot+costSlice, "a tuple"); err != nil {
			return err
		}
		t := append(Tuple(nil), u.stack[len(u.stack)-n:]...)
		clear(u.stack[len(u.stack)-n:])
		u.stack = u.stack[:len(u.stack)-n]
		return u.push(t)
	case opAppend:
		v, err := u.pop()
		if err != nil {
			return err
		}
		l, err := u.top()
		if err != nil {
			return err
		}
		return u.appendTo(l, []any{v})
	case opAppends:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		l, err := u.top()
		if err != nil {
			return err
		}
		return u.appendTo(l, items)
	case opSetItem:
		v, err := u.pop()
		if err != nil {
			return err
		}
		k, err := u.pop()
		if err != nil {
			return err
		}
		d, err := u.top()
		if err != nil {
			return err
		}
		return u.setItems(d, []any{k, v})
	case opSetItems:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d, err := u.top()
		if err != nil {
			return err
		}
		return u.setItems(d, items)
	case opBinPut:
		n, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.memoPut(uint32(n))
	case opLongBinPut:
		n, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.memoPut(uint32(n))
	case opMemoize:
		return u.memoPut(uint32(len(u.memo)))
	case opPut:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return u.fail(ErrBadPickle, "bad memo key %q", s)
		}
		return u.memoPut(uint32(n))
	case opBinGet:
		n, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.memoGet(n)
	case opLongBinGet:
		n, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.memoGet(n)
	case opGet:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return u.fail(ErrBadPickle, "bad memo key %q", s)
		}
		return u.memoGet(n)
	case opGlobal:
		mod, err := u.readLine()
		if err != nil {
			return err
		}
		name, err := u.readLine()
		if err != nil {
			return err
		}
		if err := u.charge(int64(len(mod)+len(name))+costGlobal, "a global"); err != nil {
			return err
		}
		g, err := resolveGlobal(mod, name)
		if err != nil {
			return err
		}
		return u.push(g)
	case opStackGlobal:
		name, err := u.pop()
		if err != nil {
			return err
		}
		mod, err := u.pop()
		if err != nil {
			return err
		}
		ms, ok1 := mod.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return u.fail(ErrBadPickle, "STACK_GLOBAL needs two strings, got %s and %s", typeName(mod), typeName(name))
		}
		if err := u.charge(int64(len(ms)+len(ns))+costGlobal, "a global"); err != nil {
			return err
		}
		g, err := resolveGlobal(ms, ns)
		if err != nil {
			return err
		}
		return u.push(g)
	case opReduce:
		args, err := u.pop()
		if err != nil {
			return err
		}
		fn, err := u.pop()
		if err != nil {
			return err
		}
		at, ok := args.(Tuple)
		if !ok {
			return u.fail(ErrBadPickle, "REDUCE arguments are a %s, not a tuple", typeName(args))
		}
		g, ok := fn.(*global)
		if !ok {
			return u.fail(ErrForbiddenGlobal, "REDUCE calls a %s", typeName(fn))
		}
		v, err := call(g, at, u.opts, u.m)
		if err != nil {
			return u.at(err)
		}
		return u.push(v)
	case opNewObj, opNewObjEx:
		var kwargs any
		var err error
		if op == opNewObjEx {
			if kwargs, err = u.pop(); err != nil {
				return err
			}
		}
		args, err := u.pop()
		if err != nil {
			return err
		}
		cls, err := u.pop()
		if err != nil {
			return err
		}
		g, ok := cls.(*global)
		if !ok {
			return u.fail(ErrForbiddenGlobal, "NEWOBJ on a %s", typeName(cls))
		}
		if kw, ok := kwargs.(*OrderedDict); kwargs != nil && (!ok || kw.Len() != 0) {
			return u.fail(ErrUnsupported, "NEWOBJ_EX with keyword arguments")
		}
		at, ok := args.(Tuple)
		if !ok {
			return u.fail(ErrBadPickle, "NEWOBJ arguments are a %s, not a tuple", typeName(args))
		}
		v, err := newObj(g, at, u.opts, u.m)
		if err != nil {
			return u.at(err)
		}
		return u.push(v)
	case opBuild:
		state, err := u.pop()
		if err != nil {
			return err
		}
		obj, err := u.top()
		if err != nil {
			return err
		}
		return u.at(build(obj, state, u.m))
	case opBinPersID:
		pid, err := u.pop()
		if err != nil {
			return err
		}
		if u.persist == nil {
			return u.fail(ErrUnsupported, "persistent id without a storage resolver")
		}
		v, err := u.persist(pid, u.m)
		if err != nil {
			return u.at(err)
		}
		return u.push(v)
	}
	if name, ok := unsupportedOps[op]; ok {
		return u.fail(ErrUnsupported, "pickle opcode %s", name)
	}
	return u.fail(ErrBadPickle, "unknown opcode 0x%02x", op)
}

// lenWidth is the width of the length prefix of a string/bytes opcode.
func lenWidth(op byte) int {
	switch op {
	case opShortBinUnicode, opShortBinString, opShortBinBytes:
		return 1
	case opBinUnicode, opBinString, opBinBytes:
		return 4
	}
	return 8 // BINUNICODE8, BINBYTES8, BYTEARRAY8
}
