// Package torchpttest builds hostile torch.save checkpoints for tests: small,
// well-formed files that ask a careless reader for far more memory than they
// hold. Each is a ZIP archive laid out as torch.save writes it (archive/
// data.pkl, byteorder, version, data/<key>) whose pickle uses only the
// globals a restricted unpickler allows, so a reader must refuse it by its
// limits, not by its allowlist.
package torchpttest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Layout says where the tensors sit in the pickled object.
type Layout struct {
	// Outer, if set, nests the state dict under this top-level key (e.g.
	// "ema" for a lucidrains Trainer checkpoint); empty: the file is the
	// state dict itself (diffusion_pytorch_model.bin, a bare state dict).
	Outer string
	// Prefix starts every tensor name in the state dict (e.g.
	// "ema_model.model." for lucidrains' EMA U-Net weights).
	Prefix string
}

// ExpandBomb is a state dict of keys tensors, each a stride-0 view of
// elems float32 elements over one shared 1-element storage: the file takes
// a few bytes per key, the tensors keys·elems·4 bytes as float32. With
// shared, one tensor object is pickled once and its memo reference stored
// under every key; otherwise each key rebuilds its own view.
func ExpandBomb(l Layout, keys int, elems int64, shared bool) []byte {
	p := newPickle()
	p.beginDict(l)
	for i := 0; i < keys; i++ {
		p.str(fmt.Sprintf("%sw%d", l.Prefix, i))
		switch {
		case shared && i > 0:
			p.get(0)
		default:
			p.tensor("0", 1, []int64{elems}, []int64{0})
			if shared {
				p.put(0)
			}
		}
		p.op(opSetItem)
	}
	p.endDict(l)
	return archive(p.stop(), file{name: "data/0", data: make([]byte, 4)})
}

// PathBomb is a state dict with one entry, Prefix+"p", holding a list of
// two references to a list of two references … depth levels deep, ending
// in one stride-0 float32 tensor of elems elements over a 1-element
// storage: the pickle is a few hundred bytes, but 2^depth paths lead to
// the tensor, and a reader that converts each name converts it 2^depth times.
func PathBomb(l Layout, depth int, elems int64) []byte {
	p := newPickle()
	p.beginDict(l)
	p.str(l.Prefix + "p")
	p.tensor("0", 1, []int64{elems}, []int64{0})
	p.put(0)
	for d := 1; d <= depth; d++ {
		p.op(opPop, opEmptyList, opMark)
		p.get(uint32(d - 1))
		p.get(uint32(d - 1))
		p.op(opAppends)
		p.put(uint32(d))
	}
	p.op(opSetItem)
	p.endDict(l)
	return archive(p.stop(), file{name: "data/0", data: make([]byte, 4)})
}

// InflateBomb is a state dict of entries float32 tensors, each over its own
// storage of size bytes (a multiple of 1 MiB) of zeros, deflate-compressed
// about 1000:1 in the zip: four 1 GiB storages make a file of about 4 MB.
// The deflate streams and CRCs are valid: a reader that trusts the
// per-entry limit alone inflates them all.
func InflateBomb(l Layout, entries int, size int64) []byte {
	const mib = 1 << 20
	if size <= 0 || size%mib != 0 {
		panic("torchpttest.InflateBomb: size must be a positive multiple of 1 MiB")
	}
	stream, crc := zeroStream(size / mib)
	p := newPickle()
	p.beginDict(l)
	var files []file
	for i := 0; i < entries; i++ {
		key := fmt.Sprint(i)
		p.str(fmt.Sprintf("%sw%d", l.Prefix, i))
		p.tensor(key, size/4, []int64{size / 4}, []int64{1})
		p.op(opSetItem)
		files = append(files, file{name: "data/" + key, data: stream, deflated: true, crc: crc, usize: size})
	}
	p.endDict(l)
	return archive(p.stop(), files...)
}

// TupleKeyBomb is a dict (the state dict of l) with one key, set sets
// times: a tuple of width references to a tuple of width references …
// depth levels deep, ending in one memoised string of strLen bytes 'k'. The
// file holds the string once; a reader that hashes a tuple key by joining
// its elements' encodings builds width^depth·strLen bytes per set.
func TupleKeyBomb(l Layout, strLen, width, depth, sets int) []byte {
	p := newPickle()
	p.beginDict(l)
	p.str(string(bytes.Repeat([]byte("k"), strLen)))
	p.put(0)
	p.op(opPop)
	for d := 1; d <= depth; d++ {
		p.op(opMark)
		for i := 0; i < width; i++ {
			p.get(uint32(d - 1))
		}
		p.op(opTuple)
		p.put(uint32(d))
		p.op(opPop)
	}
	for i := 0; i < sets; i++ {
		p.get(uint32(depth))
		p.op(opNone, opSetItem)
	}
	p.endDict(l)
	return archive(p.stop())
}

// ContainerBomb is a state dict whose one entry, Prefix+"c", is a list of n
// empty dicts: two pickle bytes (EMPTY_DICT, APPEND) make each dict, which
// a reader keeps in a hundred bytes or more.
func ContainerBomb(l Layout, n int) []byte {
	p := newPickle()
	p.beginDict(l)
	p.str(l.Prefix + "c")
	p.op(opEmptyList)
	p.Grow(2 * n)
	for i := 0; i < n; i++ {
		p.op(opEmptyDict, opAppend)
	}
	p.op(opSetItem)
	p.endDict(l)
	return archive(p.stop())
}

// SharedStringList is a state dict whose one entry, Prefix+"s", is a list
// of n references to one memoised string of strLen bytes 's': a valid
// file that a reader should hold in strLen + 16·n bytes or so, not in
// n·strLen.
func SharedStringList(l Layout, strLen, n int) []byte {
	p := newPickle()
	p.beginDict(l)
	p.str(l.Prefix + "s")
	p.op(opEmptyList)
	p.str(string(bytes.Repeat([]byte("s"), strLen)))
	p.put(0)
	p.op(opPop)
	for i := 0; i < n; {
		p.op(opMark)
		for j := 0; j < 1000 && i < n; j, i = j+1, i+1 {
			p.get(0)
		}
		p.op(opAppends)
	}
	p.op(opSetItem)
	p.endDict(l)
	return archive(p.stop())
}

// RepeatedKey is a dict (the state dict of l) whose one key, a memoised
// string of strLen bytes 'r', is set n times: a reader that copies the key
// to hash it copies strLen bytes n times.
func RepeatedKey(l Layout, strLen, n int) []byte {
	p := newPickle()
	p.beginDict(l)
	p.str(string(bytes.Repeat([]byte("r"), strLen)))
	p.put(0)
	p.op(opNone, opSetItem)
	for i := 1; i < n; i++ {
		p.get(0)
		p.op(opNone, opSetItem)
	}
	p.endDict(l)
	return archive(p.stop())
}

// zeroStream is a raw deflate stream of mibs MiB of zeros and its CRC-32:
// one compressed MiB, flushed to a byte boundary, repeated (a flushed chunk
// only refers back into itself), then an empty final block.
func zeroStream(mibs int64) ([]byte, uint32) {
	var chunk, end bytes.Buffer
	w, _ := flate.NewWriter(&chunk, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	w.Write(zeros)
	w.Flush()
	w, _ = flate.NewWriter(&end, flate.BestCompression)
	w.Close()
	out := bytes.Repeat(chunk.Bytes(), int(mibs))
	crc := uint32(0)
	for i := int64(0); i < mibs; i++ {
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}
	return append(out, end.Bytes()...), crc
}

type file struct {
	name     string
	data     []byte
	deflated bool // data is a raw deflate stream of usize bytes with CRC crc
	crc      uint32
	usize    int64
}

// archive writes a torch.save-style zip under the top folder "archive".
func archive(pickle []byte, extra ...file) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	files := append([]file{{name: "data.pkl", data: pickle}, {name: "byteorder", data: []byte("little")},
		{name: "version", data: []byte("3\n")}}, extra...)
	for _, f := range files {
		h := &zip.FileHeader{Name: "archive/" + f.name, Method: zip.Store}
		var fw io.Writer
		var err error
		if f.deflated {
			h.Method, h.CRC32 = zip.Deflate, f.crc
			h.CompressedSize64, h.UncompressedSize64 = uint64(len(f.data)), uint64(f.usize)
			fw, err = w.CreateRaw(h)
		} else {
			fw, err = w.CreateHeader(h)
		}
		if err == nil {
			_, err = fw.Write(f.data)
		}
		if err != nil {
			panic(err) // writing to memory cannot fail
		}
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Pickle opcodes (protocol 2) used here.
const (
	opMark       = '('
	opStop       = '.'
	opPop        = '0'
	opBinPersID  = 'Q'
	opReduce     = 'R'
	opBinUnicode = 'X'
	opAppend     = 'a'
	opAppends    = 'e'
	opNone       = 'N'
	opGlobal     = 'c'
	opEmptyDict  = '}'
	opLongBinGet = 'j'
	opEmptyList  = ']'
	opLongBinPut = 'r'
	opSetItem    = 's'
	opTuple      = 't'
	opEmptyTuple = ')'
	opProto      = 0x80
	opNewFalse   = 0x89
	opLong1      = 0x8a
)

type pickle struct{ bytes.Buffer }

func newPickle() *pickle {
	p := &pickle{}
	p.op(opProto, 2)
	return p
}

func (p *pickle) op(b ...byte) { p.Write(b) }

func (p *pickle) str(s string) {
	p.op(opBinUnicode)
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
}

func (p *pickle) long(n int64) {
	p.op(opLong1, 8)
	binary.Write(p, binary.LittleEndian, n)
}

func (p *pickle) global(mod, name string) {
	p.WriteString(string(rune(opGlobal)) + mod + "\n" + name + "\n")
}

func (p *pickle) put(i uint32) { p.op(opLongBinPut); binary.Write(p, binary.LittleEndian, i) }
func (p *pickle) get(i uint32) { p.op(opLongBinGet); binary.Write(p, binary.LittleEndian, i) }

func (p *pickle) ints(ns []int64) {
	p.op(opMark)
	for _, n := range ns {
		p.long(n)
	}
	p.op(opTuple)
}

// tensor pushes torch._utils._rebuild_tensor_v2(storage key (numel float32
// elements), 0, size, stride, False, OrderedDict()).
func (p *pickle) tensor(key string, numel int64, size, stride []int64) {
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.op(opMark)
	p.op(opMark)
	p.str("storage")
	p.global("torch", "FloatStorage")
	p.str(key)
	p.str("cpu")
	p.long(numel)
	p.op(opTuple, opBinPersID)
	p.long(0)
	p.ints(size)
	p.ints(stride)
	p.op(opNewFalse)
	p.global("collections", "OrderedDict")
	p.op(opEmptyTuple, opReduce)
	p.op(opTuple, opReduce)
}

// beginDict pushes the top-level dict (and the outer key and the state
// dict under it, for a nested layout); endDict closes them.
func (p *pickle) beginDict(l Layout) {
	p.op(opEmptyDict)
	if l.Outer != "" {
		p.str(l.Outer)
		p.op(opEmptyDict)
	}
}

func (p *pickle) endDict(l Layout) {
	if l.Outer != "" {
		p.op(opSetItem)
	}
}

func (p *pickle) stop() []byte { p.op(opStop); return p.Bytes() }
