package torchpt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/torchpt/torchpttest"
)

// cheaply runs f, which must succeed within a few seconds allocating less
// than maxAlloc bytes in all.
func cheaply(t *testing.T, maxAlloc uint64, f func() error) {
	t.Helper()
	if _, err := bounded(t, maxAlloc, 5*time.Second, f); err != nil {
		t.Fatal(err)
	}
}

// A dict key that is a tuple of 100 references to one 1 MiB string (a
// 1 MB file) is refused before its 100 MiB encoding is built; so is a
// tuple of two references to a tuple of two … 20 levels deep, whose
// encoding doubles with each level. Small tuple keys still work.
func TestTupleKeyBomb(t *testing.T) {
	wide := torchpttest.TupleKeyBomb(torchpttest.Layout{}, 1<<20, 100, 1, 4)
	t.Logf("%d-byte file", len(wide))
	refusedCheaply(t, ErrTooLarge, "tuple dict key longer than", 4<<20, func() error { _, err := Load(wide); return err })
	deep := torchpttest.TupleKeyBomb(torchpttest.Layout{Outer: "ema"}, 16, 2, 20, 1)
	refusedCheaply(t, ErrTooLarge, "tuple dict key longer than", 1<<20, func() error { _, err := Load(deep); return err })

	v, err := Load(torchpttest.TupleKeyBomb(torchpttest.Layout{}, 8, 3, 2, 5))
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*OrderedDict)
	s := "kkkkkkkk"
	inner := Tuple{s, s, s}
	if got, ok := d.GetKey(Tuple{inner, inner, inner}); d.Len() != 1 || !ok || got != nil {
		t.Errorf("small tuple key: %d entries, %v %v", d.Len(), got, ok)
	}
	if _, ok := d.GetKey(Tuple{inner, inner, Tuple{s, s, "kkkkkkk"}}); ok {
		t.Error("a different tuple key matched")
	}
}

// One memoised 1 MiB string set as a dict key 1,000 times: the key is not
// copied to be hashed, and the hashing is counted (MaxObjectBytes).
func TestRepeatedKey(t *testing.T) {
	data := torchpttest.RepeatedKey(torchpttest.Layout{}, 1<<20, 1000)
	refusedCheaply(t, ErrTooLarge, "MaxObjectBytes", 4<<20, func() error { _, err := Load(data); return err })
	v, err := Load(torchpttest.RepeatedKey(torchpttest.Layout{}, 1<<10, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if d := v.(*OrderedDict); d.Len() != 1 {
		t.Errorf("%d entries", d.Len())
	}
}

// Two pickle bytes (EMPTY_DICT, APPEND) make a dict: 2M of them in a 4 MB
// file are refused at MaxObjectBytes, not built in hundreds of MiB.
func TestContainerBomb(t *testing.T) {
	data := torchpttest.ContainerBomb(torchpttest.Layout{}, 2<<20)
	t.Logf("%d-byte file", len(data))
	refusedCheaply(t, ErrTooLarge, "MaxObjectBytes", 20<<20, func() error {
		_, err := Open(data, &Options{MaxObjectBytes: 16 << 20})
		return err
	})
	// the default limit, with a file of twice as many
	data = torchpttest.ContainerBomb(torchpttest.Layout{Outer: "ema"}, 4<<20)
	refusedCheaply(t, ErrTooLarge, "MaxObjectBytes", DefaultMaxObjectBytes+DefaultMaxObjectBytes/4, func() error {
		_, err := Load(data)
		return err
	})
	// a few are fine
	v, err := Load(torchpttest.ContainerBomb(torchpttest.Layout{}, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := v.(*OrderedDict).Get("c"); len(c.([]any)) != 1000 {
		t.Errorf("%d dicts", len(c.([]any)))
	}
}

// A list of 200,000 references to one memoised 1 MiB string is held, and
// charged, as one string and 200,000 slots: references are not copies.
func TestSharedStringList(t *testing.T) {
	data := torchpttest.SharedStringList(torchpttest.Layout{}, 1<<20, 200000)
	var c *Checkpoint
	cheaply(t, 24<<20, func() (err error) {
		c, err = Open(data, &Options{MaxObjectBytes: 24 << 20})
		return err
	})
	v, _ := c.Root.(*OrderedDict).Get("s")
	items := v.([]any)
	p := unsafe.StringData(items[0].(string))
	for i, it := range items {
		if s := it.(string); len(s) != 1<<20 || unsafe.StringData(s) != p {
			t.Fatalf("item %d is not the shared string", i)
		}
	}
	// the string counts once, each slot a few times (list growth, the
	// APPENDS batches, the finalised copy)
	if c.objectBytes < 1<<20 || c.objectBytes > 1<<20+200000*96 {
		t.Errorf("charged %s", limits.Bytes(c.objectBytes))
	}
	t.Logf("charged %s", limits.Bytes(c.objectBytes))
}

// BUILD applied again and again with one shared state of 10,000 keys does
// 10,000 steps each time: the steps are counted.
func TestRepeatedBuild(t *testing.T) {
	p := newPK().op(opEmptyDict, opEmptyDict)
	for i := 0; i < 10000; i++ {
		p.int(int32(i)).op(opPop).str("a" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26)))
		p.op(opNone, opSetItem)
	}
	p.op(opBinPut, 0, opBuild)
	for i := 0; i < 100000; i++ {
		p.op(opBinGet, 0, opBuild)
	}
	data := makeZip(t, "archive", p.stop())
	refusedCheaply(t, ErrTooLarge, "MaxObjectBytes", 8<<20, func() error { _, err := Load(data); return err })
}

// A dict of 100,000 float keys (which StateDict skips) reached by 2^16
// paths: the skipped keys count as visits.
func TestStateDictSkippedKeys(t *testing.T) {
	p := newPK().op(opEmptyDict).str("p").op(opEmptyDict)
	for i := 0; i < 100000; i++ {
		p.float(float64(i)+0.5).op(opNone, opSetItem)
	}
	p.op(opBinPut, 0)
	for d := 1; d <= 16; d++ {
		p.op(opPop, opEmptyList, opMark, opBinGet, byte(d-1), opBinGet, byte(d-1), opAppends, opBinPut, byte(d))
	}
	p.op(opSetItem)
	v, err := Load(makeZip(t, "archive", p.stop()))
	if err != nil {
		t.Fatal(err)
	}
	refusedCheaply(t, ErrTooLarge, "objects to visit", 1<<20, func() error { _, _, err := StateDict(v, ""); return err })
}

// Real checkpoints take a small part of the default MaxObjectBytes: the
// fixtures load within 2 MiB, at about 2.5 KiB per tensor (the default
// leaves room for 100,000 tensors).
func TestObjectBytesReal(t *testing.T) {
	files, _ := filepath.Glob("../lucid/testdata/cases/*/*.pt")
	more, _ := filepath.Glob("../scoresde/testdata/tiny_scorenet.pth")
	files = append(append(files, more...), "testdata/mixed.pt", "testdata/mixed_proto4.pt", "testdata/module_prefixed.pt")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(data, &Options{MaxObjectBytes: 2 << 20})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m, _, err := StateDict(c.Root, "")
		if err != nil || len(m) == 0 {
			t.Fatalf("%s: %d tensors, %v", f, len(m), err)
		}
		if c.objectBytes > 16<<10+int64(len(m))*(4<<10) {
			t.Errorf("%s: %s for %d tensors", f, limits.Bytes(c.objectBytes), len(m))
		}
		t.Logf("%s: %d tensors, %s", f, len(m), limits.Bytes(c.objectBytes))
	}
}
