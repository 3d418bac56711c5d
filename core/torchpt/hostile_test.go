package torchpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

// load wraps a hand-made pickle (and storages) in a torch-style zip.
func loadPickle(t *testing.T, pickle []byte, storages ...zfile) (Value, error) {
	t.Helper()
	var extra []zfile
	for _, s := range storages {
		extra = append(extra, zfile{"data/" + s.name, s.data})
	}
	return Load(makeZip(t, "archive", pickle, extra...))
}

func TestForbiddenGlobals(t *testing.T) {
	for _, g := range [][2]string{
		{"os", "system"}, {"posix", "system"}, {"nt", "system"}, {"builtins", "eval"}, {"builtins", "exec"},
		{"__builtin__", "eval"}, {"builtins", "getattr"}, {"subprocess", "Popen"}, {"subprocess", "check_output"},
		{"numpy.core.multiarray", "_reconstruct"}, {"numpy", "dtype"}, {"torch", "load"}, {"torch.serialization", "_get_layout"},
		{"torch._utils", "_rebuild_qtensor"}, {"collections", "defaultdict"}, {"builtins", "set"}, {"functools", "partial"},
		{"torch.storage", "_load_from_bytes"}, {"runpy", "_run_code"}, {"", ""}, {"os\x00", "system\n"},
	} {
		// GLOBAL form
		p := newPK().global(g[0], g[1]).str("touch /tmp/pwned").op(opTuple1, opReduce).stop()
		_, err := loadPickle(t, p)
		if strings.Contains(g[1], "\n") {
			wantKind(t, err, ErrForbiddenGlobal) // the name line ends early: still refused
			continue
		}
		wantKind(t, err, ErrForbiddenGlobal)
		if !strings.Contains(err.Error(), g[0]+"."+g[1]) {
			t.Errorf("error %q does not name %s.%s", err, g[0], g[1])
		}
		// STACK_GLOBAL form
		p = newPK().str(g[0]).str(g[1]).op(opStackGlobal).str("x").op(opTuple1, opReduce).stop()
		_, err = loadPickle(t, p)
		wantKind(t, err, ErrForbiddenGlobal)
	}
}

func TestForbiddenCalls(t *testing.T) {
	store := zfile{"0", f32bytes(1, 2, 3, 4)}
	cases := map[string][]byte{
		// allowlisted names that are type tags, not callables
		"storage type": newPK().global("torch", "FloatStorage").op(opEmptyTuple, opReduce).stop(),
		"Tensor type":  newPK().global("torch", "Tensor").op(opEmptyTuple, opReduce).stop(),
		"Parameter":    newPK().global("torch.nn.parameter", "Parameter").op(opEmptyTuple, opReduce).stop(),
		// NEWOBJ only builds OrderedDicts
		"newobj rebuild": newPK().global("torch._utils", "_rebuild_tensor_v2").op(opEmptyTuple, opNewObj).stop(),
		// REDUCE on a non-global value
		"reduce string": newPK().str("os.system").op(opEmptyTuple, opReduce).stop(),
		// _rebuild_from_type_v2 must wrap a tensor rebuild function
		"from_type storage fn": newPK().global("torch._tensor", "_rebuild_from_type_v2").op(opMark).
			global("torch", "FloatStorage").global("torch", "Tensor").op(opEmptyTuple, opNone, opTuple, opReduce).stop(),
		"from_type odd type": newPK().global("torch._tensor", "_rebuild_from_type_v2").op(opMark).
			global("torch._utils", "_rebuild_tensor_v2").global("collections", "OrderedDict").op(opEmptyTuple, opNone, opTuple, opReduce).stop(),
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadPickle(t, p, store)
			wantKind(t, err, ErrForbiddenGlobal)
		})
	}
}

func TestBadTensors(t *testing.T) {
	four := zfile{"0", f32bytes(1, 2, 3, 4)}
	type tc struct {
		pickle []byte
		kind   ErrKind
	}
	tensor := func(typ string, numel, off int64, size, stride []int64) []byte {
		return newPK().tensor(typ, "0", numel, off, size, stride).stop()
	}
	cases := map[string]tc{
		"numel 1<<40":        {tensor("FloatStorage", 1<<40, 0, []int64{4}, []int64{1}), ErrBadStorage},
		"numel overflow":     {tensor("FloatStorage", 1<<62, 0, []int64{4}, []int64{1}), ErrBadStorage},
		"numel negative":     {tensor("FloatStorage", -4, 0, []int64{4}, []int64{1}), ErrBadStorage},
		"numel mismatch":     {tensor("FloatStorage", 3, 0, []int64{3}, []int64{1}), ErrBadStorage},
		"dtype mismatch":     {tensor("DoubleStorage", 4, 0, []int64{2}, []int64{1}), ErrBadStorage},
		"size*stride beyond": {tensor("FloatStorage", 4, 0, []int64{3}, []int64{2}), ErrBadTensor},
		"too many elements":  {tensor("FloatStorage", 4, 0, []int64{5}, []int64{1}), ErrBadTensor},
		"offset beyond":      {tensor("FloatStorage", 4, 2, []int64{3}, []int64{1}), ErrBadTensor},
		"offset of empty":    {tensor("FloatStorage", 4, 9, []int64{0}, []int64{1}), ErrBadTensor},
		"negative offset":    {tensor("FloatStorage", 4, -1, []int64{2}, []int64{1}), ErrBadTensor},
		"negative size":      {tensor("FloatStorage", 4, 0, []int64{-2}, []int64{1}), ErrBadTensor},
		"negative stride":    {tensor("FloatStorage", 4, 3, []int64{2}, []int64{-1}), ErrBadTensor},
		"stride overflow":    {tensor("FloatStorage", 4, 0, []int64{2}, []int64{1 << 62}), ErrBadTensor},
		"stride wraps":       {tensor("FloatStorage", 4, 0, []int64{3, 3}, []int64{1 << 61, 1 << 61}), ErrBadTensor},
		"size overflow":      {tensor("FloatStorage", 4, 0, []int64{1 << 40, 1 << 40}, []int64{0, 0}), ErrTooLarge},
		"expand bomb":        {tensor("FloatStorage", 4, 0, []int64{1 << 20, 1 << 20}, []int64{0, 0}), ErrTooLarge},
		"rank mismatch":      {tensor("FloatStorage", 4, 0, []int64{2, 2}, []int64{1}), ErrBadTensor},
		"unknown storage":    {tensor("QInt8Storage", 4, 0, []int64{2}, []int64{1}), ErrUnsupported},
		"missing entry":      {newPK().tensor("FloatStorage", "7", 4, 0, []int64{4}, []int64{1}).stop(), ErrBadStorage},
		"wrong arity": {newPK().global("torch._utils", "_rebuild_tensor_v2").tuple(1, 2, 3).op(opReduce).stop(),
			ErrBadPickle},
		"not a storage": {newPK().global("torch._utils", "_rebuild_tensor_v2").op(opMark).str("s").long(0).tuple(1).tuple(1).
			op(opNewFalse, opNone, opTuple, opReduce).stop(), ErrBadPickle},
		"size not ints": {newPK().global("torch._utils", "_rebuild_tensor_v2").op(opMark).storage("FloatStorage", "0", 4).long(0).
			str("4").tuple(1).op(opNewFalse, opNone, opTuple, opReduce).stop(), ErrBadTensor},
		"hooks present": {newPK().global("torch._utils", "_rebuild_tensor_v2").op(opMark).storage("FloatStorage", "0", 4).long(0).
			tuple(4).tuple(1).op(opNewFalse).op(opEmptyDict).str("h").long(1).op(opSetItem, opTuple, opReduce).stop(), ErrUnsupported},
		"pid not tuple": {newPK().str("storage").op(opBinPersID).stop(), ErrBadPickle},
		"pid bad kind": {newPK().op(opMark).str("module").global("torch", "FloatStorage").str("0").str("cpu").long(4).op(opTuple, opBinPersID).stop(),
			ErrUnsupported},
		"pid type not storage": {newPK().op(opMark).str("storage").str("torch.FloatStorage").str("0").str("cpu").long(4).op(opTuple, opBinPersID).stop(),
			ErrBadStorage},
		"param of non-tensor": {newPK().global("torch._utils", "_rebuild_parameter").op(opMark).long(1).op(opNewTrue, opNone, opTuple, opReduce).stop(),
			ErrBadPickle},
		"BUILD on tensor": {newPK().tensor("FloatStorage", "0", 4, 0, []int64{4}, []int64{1}).op(opEmptyDict, opBuild).stop(),
			ErrUnsupported},
		"conflicting storage refs": {newPK().op(opMark).tensor("FloatStorage", "0", 4, 0, []int64{4}, []int64{1}).
			tensor("IntStorage", "0", 4, 0, []int64{4}, []int64{1}).op(opTuple).stop(), ErrBadStorage},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadPickle(t, c.pickle, four)
			wantKind(t, err, c.kind)
		})
	}
}

func TestBadPickles(t *testing.T) {
	deepChain := newPK().op(opEmptyList, opBinPut, 0)
	for i := 1; i < 20000; i++ {
		deepChain.op(opEmptyList, opLongBinGet)
		binary.Write(deepChain, binary.LittleEndian, uint32(i-1))
		deepChain.op(opAppend, opLongBinPut)
		binary.Write(deepChain, binary.LittleEndian, uint32(i))
	}
	deepStack := newPK().op(bytes.Repeat([]byte{opEmptyList}, 5000)...).op(bytes.Repeat([]byte{opAppend}, 4999)...)
	deepDict := newPK()
	for i := 0; i < 1000; i++ {
		deepDict.op(opEmptyDict).str("k")
	}
	deepDict.op(opNone).op(bytes.Repeat([]byte{opSetItem}, 1000)...)
	deepTupleKey := newPK().op(opEmptyDict).op(opNone)
	for i := 0; i < 100; i++ {
		deepTupleKey.op(opTuple1)
	}
	deepTupleKey.op(opNone, opSetItem)

	type tc struct {
		pickle []byte
		kind   ErrKind
	}
	cases := map[string]tc{
		"empty":              {[]byte{}, ErrTruncated},
		"no STOP":            {newPK().op(opNone).Bytes(), ErrTruncated},
		"STOP on empty":      {[]byte{opProto, 2, opStop}, ErrBadPickle},
		"APPEND underflow":   {newPK().op(opAppend).stop(), ErrBadPickle},
		"APPEND to non-list": {newPK().op(opNone, opNone, opAppend).stop(), ErrBadPickle},
		"SETITEM non-dict":   {newPK().op(opEmptyList, opNone, opNone, opSetItem).stop(), ErrBadPickle},
		"SETITEMS odd":       {newPK().op(opEmptyDict, opMark, opNone).op(opSetItems).stop(), ErrBadPickle},
		"pop through mark":   {newPK().op(opNone, opMark, opTuple1).stop(), ErrBadPickle},
		"APPENDS no mark":    {newPK().op(opEmptyList, opAppends).stop(), ErrBadPickle},
		"TUPLE no mark":      {newPK().op(opNone, opTuple).stop(), ErrBadPickle},
		"POP empty":          {newPK().op(opPop).stop(), ErrBadPickle},
		"memo undefined":     {newPK().op(opBinGet, 5).stop(), ErrBadPickle},
		"long memo undef":    {newPK().op(opLongBinGet, 0xff, 0xff, 0xff, 0xff).stop(), ErrBadPickle},
		"PUT empty":          {newPK().op(opBinPut, 0).stop(), ErrBadPickle},
		"bad opcode":         {newPK().op(0xff).stop(), ErrBadPickle},
		"bad opcode 2":       {newPK().op('z').stop(), ErrBadPickle},
		"INST":               {newPK().op(opInst).Write2("os\nsystem\n").stop(), ErrUnsupported},
		"OBJ":                {newPK().op(opMark, opObj).stop(), ErrUnsupported},
		"EXT1":               {newPK().op(opExt1, 1).stop(), ErrUnsupported},
		"PERSID text":        {newPK().op(opPersID).Write2("x\n").stop(), ErrUnsupported},
		"NEXT_BUFFER":        {newPK().op(opNextBuffer).stop(), ErrUnsupported},
		"EMPTY_SET":          {newPK().op(opEmptySet).stop(), ErrUnsupported},
		"protocol 9":         {[]byte{opProto, 9, opNone, opStop}, ErrUnsupported},
		"BINUNICODE 4G":      {newPK().op(opBinUnicode, 0xff, 0xff, 0xff, 0xff).Write2("abc").stop(), ErrTruncated},
		"BINUNICODE8 huge":   {newPK().op(opBinUnicode8, 0, 0, 0, 0, 0, 0, 0, 0x80).stop(), ErrTruncated},
		"BINBYTES8 huge":     {newPK().op(opBinBytes8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff).stop(), ErrTruncated},
		"BINSTRING negative": {newPK().op(opBinString, 0xff, 0xff, 0xff, 0xff).stop(), ErrBadPickle},
		"LONG4 negative":     {newPK().op(opLong4, 0xff, 0xff, 0xff, 0xff).stop(), ErrBadPickle},
		"LONG4 huge":         {newPK().op(opLong4, 0xff, 0xff, 0xff, 0x7f).stop(), ErrTruncated},
		"LONG1 too wide":     {newPK().op(opLong1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1).stop(), ErrUnsupported},
		"LONG1 2^63":         {newPK().op(opLong1, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0).stop(), ErrUnsupported},
		"FRAME past end":     {newPK().op(opFrame, 0xff, 0, 0, 0, 0, 0, 0, 0).stop(), ErrTruncated},
		"GLOBAL no newline":  {newPK().Write2("c" + strings.Repeat("a", 10000)).Bytes(), ErrBadPickle},
		"GLOBAL truncated":   {newPK().Write2("cos\nsys").Bytes(), ErrTruncated},
		"STACK_GLOBAL ints":  {newPK().long(1).long(2).op(opStackGlobal).stop(), ErrBadPickle},
		"REDUCE args":        {newPK().global("collections", "OrderedDict").op(opNone, opReduce).stop(), ErrBadPickle},
		"MARK bomb":          {newPK().op(bytes.Repeat([]byte{opMark}, 100000)...).stop(), ErrTooLarge},
		"deep memo chain":    {deepChain.stop(), ErrTooLarge},
		"deep stack nesting": {deepStack.stop(), ErrTooLarge},
		"deep dicts":         {deepDict.stop(), ErrTooLarge},
		"deep tuple key":     {deepTupleKey.stop(), ErrBadPickle},
		"list in itself":     {newPK().op(opEmptyList, opBinPut, 0, opBinGet, 0, opAppend).stop(), ErrBadPickle},
		"dict in itself":     {newPK().op(opEmptyDict, opBinPut, 0).str("a").op(opBinGet, 0, opSetItem).stop(), ErrBadPickle},
		"cycle via tuple": {newPK().op(opEmptyList, opBinPut, 0, opBinGet, 0, opTuple1, opAppend).stop(),
			ErrBadPickle},
		"unhashable key":  {newPK().op(opEmptyDict, opEmptyList, opNone, opSetItem).stop(), ErrBadPickle},
		"unhashable key2": {newPK().op(opEmptyDict, opEmptyDict, opNone, opSetItem).stop(), ErrBadPickle},
		"bare global":     {newPK().global("collections", "OrderedDict").stop(), ErrUnsupported},
		"codecs utf8":     {newPK().global("_codecs", "encode").str("x").str("utf-8").op(opTuple2, opReduce).stop(), ErrUnsupported},
		"codecs wide":     {newPK().global("_codecs", "encode").str("\u4e2d").str("latin1").op(opTuple2, opReduce).stop(), ErrBadPickle},
		"BUILD on list":   {newPK().op(opEmptyList, opEmptyDict, opBuild).stop(), ErrUnsupported},
		"BUILD bad state": {newPK().global("collections", "OrderedDict").op(opEmptyTuple, opReduce).long(3).op(opBuild).stop(), ErrBadPickle},
		"OrderedDict of int": {newPK().global("collections", "OrderedDict").long(3).op(opTuple1, opReduce).stop(),
			ErrBadPickle},
		"NEWOBJ_EX kwargs": {newPK().global("collections", "OrderedDict").op(opEmptyTuple, opEmptyDict).str("a").long(1).
			op(opSetItem, opNewObjEx).stop(), ErrUnsupported},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadPickle(t, c.pickle)
			wantKind(t, err, c.kind)
		})
	}
}

// Write2 appends raw text (helper for hand-written opcodes).
func (p *pk) Write2(s string) *pk { p.WriteString(s); return p }

func TestLimits(t *testing.T) {
	many := newPK().op(opEmptyList, opMark)
	for i := 0; i < 100; i++ {
		many.op(opNone)
	}
	manyItems := many.op(opAppends).stop()
	memo := newPK().op(opNone)
	for i := 0; i < 100; i++ {
		memo.op(opBinPut, byte(i))
	}
	memoBomb := memo.stop()
	stack := newPK().op(bytes.Repeat([]byte{opNone}, 100)...).stop()
	cases := []struct {
		name   string
		pickle []byte
		opts   Options
	}{
		{"container", manyItems, Options{MaxContainerLen: 10}},
		{"memo", memoBomb, Options{MaxMemo: 10}},
		{"stack", stack, Options{MaxStack: 10}},
		{"depth", newPK().op(opEmptyList, opEmptyList, opEmptyList, opAppend, opAppend).stop(), Options{MaxDepth: 1}},
		{"pickle size", manyItems, Options{MaxPickleBytes: 10}},
		{"dims", newPK().tensor("FloatStorage", "0", 1, 0, []int64{1, 1, 1}, []int64{1, 1, 1}).stop(), Options{MaxDims: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := makeZip(t, "archive", c.pickle, zfile{"data/0", f32bytes(1)})
			if _, err := Open(data, nil); err != nil {
				t.Fatalf("default limits: %v", err)
			}
			_, err := Open(data, &c.opts)
			wantKind(t, err, ErrTooLarge)
		})
	}
}

// TestHandBuilt covers opcodes and globals torch itself rarely writes.
func TestHandBuilt(t *testing.T) {
	p := newPK().op(opEmptyDict, opMark)
	// protocol-0 text opcodes
	p.str("text").op(opMark).Write2("I42\nI01\nL-7L\nF2.5\n").op(opList, opPut).Write2("3\n").op(opPop, opGet).Write2("3\n")
	// DICT, DUP, POP_MARK
	p.str("dict").op(opMark).str("a").long(1).op(opDict, opDup, opPop)
	p.op(opMark, opNone, opNone, opPopMark)
	// torch.Size, OrderedDict from pairs, NEWOBJ OrderedDict, bytes opcodes
	p.str("size").global("torch", "Size").tuple(2, 3).op(opTuple1, opReduce)
	p.str("od").global("collections", "OrderedDict").op(opMark).str("x").long(1).op(opTuple2).str("y").long(2).op(opTuple2, opList, opTuple1, opReduce)
	p.str("newobj").global("collections", "OrderedDict").op(opEmptyTuple, opNewObj)
	p.str("b8").op(opBinBytes8, 2, 0, 0, 0, 0, 0, 0, 0).Write2("hi")
	p.str("ba8").op(opByteArray8, 1, 0, 0, 0, 0, 0, 0, 0).Write2("!")
	p.str("s8").op(opBinUnicode8, 2, 0, 0, 0, 0, 0, 0, 0).Write2("ok")
	p.str("py2str").op(opShortBinString, 3).Write2("abc")
	p.str("neg1").op(opLong1, 1, 0xff)
	p.str("bigneg").op(opLong1, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xff) // -2^63, 9 bytes
	p.str("zero").op(opLong1, 0)
	p.str("binint").int(-5)
	p.str("float").float(-0.125)
	p.str("memo4").long(77).op(opMemoize) // slot 1: the memo already holds slot 3
	p.str("memo4b").op(opBinGet, 1)
	p.str("tupkey").op(opEmptyDict).op(opMark).long(1).str("a").op(opTuple).str("v").op(opSetItem)
	// a parameter built through _rebuild_from_type_v2 and _rebuild_parameter_with_state
	p.str("ftype").global("torch._tensor", "_rebuild_from_type_v2").op(opMark).
		global("torch._utils", "_rebuild_tensor_v2").global("torch.nn.parameter", "Parameter").
		op(opMark).storage("FloatStorage", "0", 4).long(1).tuple(2).tuple(1).op(opNewTrue, opNone, opTuple).
		op(opEmptyDict, opTuple, opReduce)
	p.str("pstate").global("torch._utils", "_rebuild_parameter_with_state").op(opMark).
		global("torch._utils", "_rebuild_tensor").op(opMark).storage("FloatStorage", "0", 4).long(0).tuple(2, 2).tuple(1, 2).op(opTuple, opReduce).
		op(opNewFalse, opNone, opEmptyDict, opTuple, opReduce)
	p.str("codecs").global("_codecs", "encode").str("\u00ff\u0001").str("latin1").op(opTuple2, opReduce)
	p.op(opSetItems)

	root, err := loadPickle(t, p.stop(), zfile{"0", f32bytes(10, 20, 30, 40)})
	if err != nil {
		t.Fatal(err)
	}
	d := root.(*OrderedDict)
	get := func(k string) any { v, _ := d.Get(k); return v }
	txt := get("text").([]any)
	if txt[0] != int64(42) || txt[1] != true || txt[2] != int64(-7) || txt[3] != 2.5 {
		t.Errorf("text = %#v", txt)
	}
	if dd := get("dict").(*OrderedDict); dd.Ordered || dd.Len() != 1 {
		t.Errorf("dict = %#v", dd)
	}
	if s := get("size").(Tuple); len(s) != 2 || s[1] != int64(3) {
		t.Errorf("size = %#v", s)
	}
	if od := get("od").(*OrderedDict); !od.Ordered || od.Len() != 2 || od.Keys[1] != "y" {
		t.Errorf("od = %#v", od)
	}
	if od := get("newobj").(*OrderedDict); !od.Ordered || od.Len() != 0 {
		t.Errorf("newobj = %#v", od)
	}
	if string(get("b8").([]byte)) != "hi" || string(get("ba8").([]byte)) != "!" || get("s8") != "ok" || get("py2str") != "abc" {
		t.Errorf("bytes/strings: %#v %#v %#v %#v", get("b8"), get("ba8"), get("s8"), get("py2str"))
	}
	if get("memo4") != int64(77) || get("memo4b") != int64(77) {
		t.Errorf("MEMOIZE: %#v %#v", get("memo4"), get("memo4b"))
	}
	if get("neg1") != int64(-1) || get("bigneg") != int64(-1<<63) || get("zero") != int64(0) || get("binint") != int64(-5) || get("float") != -0.125 {
		t.Errorf("numbers: %#v %#v %#v %#v %#v", get("neg1"), get("bigneg"), get("zero"), get("binint"), get("float"))
	}
	tk := get("tupkey").(*OrderedDict)
	if v, ok := tk.GetKey(Tuple{int64(1), "a"}); !ok || v != "v" {
		t.Errorf("tuple key lookup: %#v %v", v, ok)
	}
	if v, ok := tk.GetKey(Tuple{true, "a"}); !ok || v != "v" { // (True, "a") == (1, "a")
		t.Errorf("tuple key lookup with bool: %#v %v", v, ok)
	}
	ft := get("ftype").(*Tensor)
	if f, err := ft.Float32(); err != nil || !ft.Parameter || !ft.RequiresGrad || len(f) != 2 || f[0] != 20 || f[1] != 30 {
		t.Errorf("ftype = %+v %v %v", ft, f, err)
	}
	ps := get("pstate").(*Tensor)
	if f, err := ps.Float32(); err != nil || !ps.Parameter || ps.RequiresGrad || ps.Contiguous() || f[1] != 30 || f[2] != 20 {
		t.Errorf("pstate = %+v %v %v", ps, f, err)
	}
	if b := get("codecs").([]byte); len(b) != 2 || b[0] != 0xff || b[1] != 1 {
		t.Errorf("codecs = %v", b)
	}
}

func TestBigEndianArchive(t *testing.T) {
	p := newPK().tensor("HalfStorage", "0", 2, 0, []int64{2}, []int64{1}).stop()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, f := range []zfile{{"be/data.pkl", p}, {"be/byteorder", []byte("big")}, {"be/data/0", []byte{0x3c, 0x00, 0xc0, 0x00}}} {
		fw, _ := w.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Store})
		fw.Write(f.data)
	}
	w.Close()
	c, err := Open(buf.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Root.(*Tensor).Float32()
	if c.ByteOrder != "big" || err != nil || f[0] != 1 || f[1] != -2 {
		t.Errorf("big-endian half: %v %v %s", f, err, c.ByteOrder)
	}
}

func TestContainerErrors(t *testing.T) {
	good := readTestdata(t, "mixed.pt")
	// cut anywhere: always a typed error, never a panic
	for n := 0; n < len(good); n += 37 {
		_, err := Load(good[:n])
		var e *Error
		if err == nil || !asError(err, &e) {
			t.Fatalf("cut at %d: %v", n, err)
		}
		if n >= 4 && e.Kind != ErrTruncated {
			t.Fatalf("cut at %d: kind %v (%v)", n, e.Kind, err)
		}
	}
	_, err := Load(good[:len(good)/2])
	wantKind(t, err, ErrTruncated)

	_, err = Load([]byte("hello, world"))
	wantKind(t, err, ErrNotZip)
	_, err = Load(nil)
	wantKind(t, err, ErrNotZip)
	_, err = Load(newPK().op(opNone).stop())
	wantKind(t, err, ErrLegacyFormat)
	tar := make([]byte, 1024)
	copy(tar[257:], "ustar")
	_, err = Load(tar)
	wantKind(t, err, ErrLegacyFormat)
	_, err = LoadFile("testdata/does-not-exist.pt")
	wantKind(t, err, ErrIO)

	// a zip that is not a torch file
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	fw, _ := w.Create("hello.txt")
	fw.Write([]byte("hi"))
	w.Close()
	_, err = Load(buf.Bytes())
	wantKind(t, err, ErrUnsupported)

	// two archives in one zip
	two := makeZip(t, "", newPK().op(opNone).stop(), zfile{"b/data.pkl", newPK().op(opNone).stop()})
	_, err = Load(two)
	wantKind(t, err, ErrUnsupported)

	// data.pkl at the zip root is accepted
	if v, err := Load(makeZip(t, "", newPK().long(5).stop())); err != nil || v != int64(5) {
		t.Errorf("root-level data.pkl: %v %v", v, err)
	}

	// unknown compression method
	buf.Reset()
	w = zip.NewWriter(&buf)
	w.RegisterCompressor(99, func(out io.Writer) (io.WriteCloser, error) { return nopCloser{out}, nil })
	fw, _ = w.CreateHeader(&zip.FileHeader{Name: "x/data.pkl", Method: 99})
	fw.Write(newPK().op(opNone).stop())
	w.Close()
	_, err = Load(buf.Bytes())
	wantKind(t, err, ErrUnsupported)

	// corrupted pickle byte: CRC mismatch
	pick := newPK().long(12345).stop()
	z := makeZip(t, "archive", pick, zfile{"data/0", f32bytes(1, 2)})
	bad := append([]byte(nil), z...)
	i := bytes.Index(bad, pick)
	bad[i+5] ^= 0xff
	_, err = Load(bad)
	wantKind(t, err, ErrBadStorage)
	if _, err := Open(bad, &Options{SkipChecksums: true}); err != nil {
		t.Errorf("SkipChecksums: %v", err)
	}

	// corrupted storage byte: refused lazily, when the data is read
	p := newPK().tensor("FloatStorage", "0", 2, 0, []int64{2}, []int64{1}).stop()
	z = makeZip(t, "archive", p, zfile{"data/0", f32bytes(1, 2)})
	bad = append([]byte(nil), z...)
	i = bytes.Index(bad, f32bytes(1, 2))
	bad[i] ^= 1
	v, err := Load(bad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.(*Tensor).Float32()
	wantKind(t, err, ErrBadStorage)

	// central directory claims an entry larger than the file
	bad = append([]byte(nil), z...)
	cd := bytes.Index(bad, []byte("PK\x01\x02"))
	for cd >= 0 && !bytes.HasPrefix(bad[cd+46:], []byte("archive/data/0")) {
		next := bytes.Index(bad[cd+4:], []byte("PK\x01\x02"))
		if next < 0 {
			cd = -1
			break
		}
		cd += 4 + next
	}
	if cd < 0 {
		t.Fatal("central directory entry not found")
	}
	binary.LittleEndian.PutUint32(bad[cd+20:], 0x7fffffff)
	binary.LittleEndian.PutUint32(bad[cd+24:], 0x7fffffff)
	_, err = Load(bad)
	wantKind(t, err, ErrTruncated)
	// ... or one whose size disagrees with the storage it backs
	binary.LittleEndian.PutUint32(bad[cd+20:], 4)
	binary.LittleEndian.PutUint32(bad[cd+24:], 4)
	_, err = Load(bad)
	wantKind(t, err, ErrBadStorage)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func asError(err error, e **Error) bool {
	x, ok := err.(*Error)
	*e = x
	return ok
}

func TestStateDictErrors(t *testing.T) {
	if _, _, err := StateDict(int64(3), ""); err == nil {
		t.Error("StateDict of an int should fail")
	}
	// duplicate names: {"a.b": T, "a": {"b": T}}
	st := &Storage{Key: "0", DType: "float32", Numel: 1, itemsize: 4}
	tt := &Tensor{DType: "float32", Storage: st}
	inner := newDict(false)
	inner.set("b", tt, 10)
	outer := newDict(false)
	outer.set("a.b", tt, 10)
	outer.set("a", inner, 10)
	_, _, err := StateDict(outer, "")
	wantKind(t, err, ErrUnsupported)
	// a hand-made cycle is caught too
	loop := newDict(false)
	loop.set("self", loop, 10)
	_, _, err = StateDict(loop, "")
	wantKind(t, err, ErrBadPickle)
	// a storage without an archive
	_, err = tt.Float32()
	wantKind(t, err, ErrBadStorage)
	// dtype checks
	cx := &Tensor{DType: "complex64", Shape: []int{1}, Stride: []int{1}, Storage: &Storage{DType: "complex64", Numel: 1, itemsize: 8, data: make([]byte, 8)}}
	cx.Storage.once.Do(func() {})
	_, err = cx.Float32()
	wantKind(t, err, ErrUnsupported)
	_, err = cx.Int64()
	wantKind(t, err, ErrUnsupported)
}

// TestMutatedTensor: the exported view fields are re-checked before use.
func TestMutatedTensor(t *testing.T) {
	p := newPK().tensor("FloatStorage", "0", 4, 0, []int64{2, 2}, []int64{2, 1}).stop()
	load := func() *Tensor {
		v, err := loadPickle(t, p, zfile{"0", f32bytes(1, 2, 3, 4)})
		if err != nil {
			t.Fatal(err)
		}
		return v.(*Tensor)
	}
	for name, mutate := range map[string]func(*Tensor){
		"bigger shape":   func(x *Tensor) { x.Shape[0] = 3 },
		"offset":         func(x *Tensor) { x.Offset = 3 },
		"negative":       func(x *Tensor) { x.Stride[1] = -1 },
		"rank mismatch":  func(x *Tensor) { x.Stride = x.Stride[:1] },
		"dtype":          func(x *Tensor) { x.DType = "float64" },
		"huge stride":    func(x *Tensor) { x.Stride[0] = 1 << 62 },
		"overflow shape": func(x *Tensor) { x.Shape = []int{1 << 40, 1 << 40}; x.Stride = []int{0, 0} },
	} {
		x := load()
		mutate(x)
		if _, err := x.Float32(); err == nil {
			t.Errorf("%s: Float32 succeeded", name)
		} else if _, ok := err.(*Error); !ok {
			t.Errorf("%s: untyped error %v", name, err)
		}
	}
	x := load()
	x.Storage = nil
	_, err := x.Float32()
	wantKind(t, err, ErrBadStorage)
}

func TestUntypedStorage(t *testing.T) {
	p := newPK().op(opMark).str("storage").global("torch.storage", "UntypedStorage").str("0").str("cpu").long(3).op(opTuple, opBinPersID).stop()
	v, err := loadPickle(t, p, zfile{"0", []byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	s := v.(*Storage)
	if b, err := s.Bytes(); err != nil || s.DType != "uint8" || s.Numel != 3 || len(b) != 3 || s.Location != "cpu" {
		t.Errorf("untyped storage: %+v %v", s, err)
	}
}
