package torchpt

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/torchpt/torchpttest"
)

// bounded runs f and fails the test if it allocates maxAlloc bytes or more
// in all, or takes longer than maxTime (a guard against runaway work, not a
// benchmark); it returns how long f took and its error.
func bounded(t *testing.T, maxAlloc uint64, maxTime time.Duration, f func() error) (time.Duration, error) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	err := f()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > maxAlloc {
		t.Errorf("allocated %s (want < %s)", limits.Bytes(int64(alloc)), limits.Bytes(int64(maxAlloc)))
	}
	if took > maxTime {
		t.Errorf("took %v", took)
	}
	return took, err
}

// refusedCheaply runs f, which must fail with a *Error of kind whose
// message names limit, allocating less than maxAlloc bytes in all and
// within 60 s: generous enough for js/wasm in Node on a loaded 2-core
// machine (the repeated-BUILD case takes ~8 s there, milliseconds natively).
func refusedCheaply(t *testing.T, kind ErrKind, limit string, maxAlloc uint64, f func() error) {
	t.Helper()
	took, err := bounded(t, maxAlloc, 60*time.Second, f)
	wantKind(t, err, kind)
	if !strings.Contains(err.Error(), limit) {
		t.Errorf("error %q does not name %s", err, limit)
	}
	t.Logf("refused in %v: %v", took.Round(time.Millisecond), err)
}

// loadStateDict loads data and flattens it as a state dict.
func loadStateDict(data []byte) error {
	v, err := Load(data)
	if err != nil {
		return err
	}
	_, _, err = StateDict(v, "")
	return err
}

// 2,000 stride-0 tensors of 16M elements over one 1-element storage (a
// ~300 KB file, or ~30 KB when one memoised tensor sits under every key)
// ask for 128 GB as float32: each is within MaxExpandElements, the total is
// not. StateDict refuses before anything is converted.
func TestExpandBombTotal(t *testing.T) {
	for _, shared := range []bool{false, true} {
		data := torchpttest.ExpandBomb(torchpttest.Layout{}, 2000, 1<<24, shared)
		t.Logf("shared %v: %d-byte file", shared, len(data))
		refusedCheaply(t, ErrTooLarge, "MaxTotalBytes", 16<<20, func() error { return loadStateDict(data) })
	}
}

// A list of two references to a list of two references … 20 levels deep
// puts 2^20 paths on one 16M-element tensor: StateDict counts every path
// and refuses after a few hundred, without building a million names.
func TestPathBombTotal(t *testing.T) {
	data := torchpttest.PathBomb(torchpttest.Layout{}, 20, 1<<24)
	t.Logf("%d-byte file", len(data))
	refusedCheaply(t, ErrTooLarge, "MaxTotalBytes", 16<<20, func() error { return loadStateDict(data) })
}

// With a 1-element tensor the 2^20 paths stay within MaxTotalBytes, but
// the names themselves are bounded: StateDict stops at maxStateDictTensors.
func TestPathBombNames(t *testing.T) {
	data := torchpttest.PathBomb(torchpttest.Layout{}, 20, 1)
	refusedCheaply(t, ErrTooLarge, "tensors", 64<<20, func() error { return loadStateDict(data) })
	// a shallow graph is fine: 2^4 names for one tensor
	v, err := Load(torchpttest.PathBomb(torchpttest.Layout{}, 4, 1))
	if err != nil {
		t.Fatal(err)
	}
	m, names, err := StateDict(v, "")
	if err != nil || len(m) != 16 || names[0] != "p.0.0.0.0" {
		t.Fatalf("StateDict of 16 paths: %d names (%v), %v", len(m), names, err)
	}
}

// A long key above many paths makes every name long: the names' total
// length is bounded (256 names of 1 MiB each would otherwise be kept).
func TestStateDictLongNames(t *testing.T) {
	data := torchpttest.PathBomb(torchpttest.Layout{Prefix: strings.Repeat("k", 1<<20)}, 8, 1)
	v, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	refusedCheaply(t, ErrTooLarge, "names longer than", 100<<20, func() error {
		_, _, err := StateDict(v, "")
		return err
	})
}

// Converting tensor by tensor, without StateDict, is bounded as well: each
// conversion counts towards MaxTotalBytes and is refused before it allocates.
func TestConvertTotal(t *testing.T) {
	data := torchpttest.ExpandBomb(torchpttest.Layout{}, 8, 1<<20, true) // one tensor under 8 keys
	c, err := Open(data, &Options{MaxTotalBytes: 18 << 20})
	if err != nil {
		t.Fatal(err)
	}
	x := c.Root.(*OrderedDict).Values[0].(*Tensor)
	for i := 0; i < 4; i++ { // 4 × 4 MiB as float32
		if _, err := x.Float32(); err != nil {
			t.Fatalf("conversion %d: %v", i, err)
		}
	}
	refusedCheaply(t, ErrTooLarge, "MaxTotalBytes", 1<<20, func() error { _, err := x.Float32(); return err })
	refusedCheaply(t, ErrTooLarge, "MaxTotalBytes", 1<<20, func() error { _, err := x.ToTensor(); return err })
	refusedCheaply(t, ErrTooLarge, "MaxTotalBytes", 1<<20, func() error { _, err := x.Bytes(); return err })
	// 2 MiB left: a 1M-element Float64 (8 MiB) is refused, a smaller view is not
	refusedCheaply(t, ErrTooLarge, "MaxTotalBytes", 1<<20, func() error { _, err := x.Float64(); return err })
	x.Shape = []int{1 << 18}
	if _, err := x.Float64(); err != nil {
		t.Fatalf("2 MiB within the limit: %v", err)
	}
	// a shape grown after loading is refused before allocating, too
	c, err = Open(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	x = c.Root.(*OrderedDict).Values[0].(*Tensor)
	x.Shape = []int{1 << 40}
	refusedCheaply(t, ErrTooLarge, "MaxTotalBytes", 1<<20, func() error { _, err := x.Float32(); return err })
}

// Four 1 GiB deflated storages in a ~4 MB file: each is within
// MaxInflatedBytes, together they are not. Open refuses from the zip
// directory, before inflating anything.
func TestInflateBombTotal(t *testing.T) {
	data := torchpttest.InflateBomb(torchpttest.Layout{}, 4, 1<<30)
	t.Logf("%d-byte file", len(data))
	refusedCheaply(t, ErrTooLarge, "MaxTotalInflatedBytes", 1<<20, func() error {
		_, err := Open(data, nil)
		return err
	})
	// the per-entry limit alone lets it through
	if _, err := Open(data, &Options{MaxTotalInflatedBytes: 8 << 30}); err != nil {
		t.Fatalf("with the total limit lifted: %v", err)
	}
	// and a smaller bomb of the same make is a valid checkpoint
	c, err := Open(torchpttest.InflateBomb(torchpttest.Layout{}, 2, 1<<20), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, names, err := StateDict(c.Root, "")
	if err != nil || len(names) != 2 {
		t.Fatalf("StateDict: %v %v", names, err)
	}
	for _, n := range names {
		f, err := m[n].Float32()
		if err != nil || len(f) != 1<<18 || f[0] != 0 || f[len(f)-1] != 0 {
			t.Fatalf("%s: %d values, %v", n, len(f), err)
		}
	}
	// two 1 MiB entries are over a 1.5 MiB total
	_, err = Open(torchpttest.InflateBomb(torchpttest.Layout{}, 2, 1<<20), &Options{MaxTotalInflatedBytes: 3 << 19})
	wantKind(t, err, ErrTooLarge)
}

// A storage offset of 2^62 is out of range, not a stride overflow.
func TestOffsetOutOfRange(t *testing.T) {
	four := zfile{"0", f32bytes(1, 2, 3, 4)}
	for _, c := range []struct {
		off  int64
		size []int64
	}{{1 << 62, []int64{2}}, {1 << 62, []int64{0}}, {1<<62 - 1, []int64{2}}, {5, []int64{1}}} {
		_, err := loadPickle(t, newPK().tensor("FloatStorage", "0", 4, c.off, c.size, []int64{1}).stop(), four)
		wantKind(t, err, ErrBadTensor)
		if msg := err.Error(); !strings.Contains(msg, "offset") || !strings.Contains(msg, "out of range") || strings.Contains(msg, "stride") {
			t.Errorf("offset %d: %q", c.off, msg)
		}
	}
	// and on a tensor changed after loading
	v, err := loadPickle(t, newPK().tensor("FloatStorage", "0", 4, 0, []int64{2}, []int64{1}).stop(), four)
	if err != nil {
		t.Fatal(err)
	}
	x := v.(*Tensor)
	x.Offset = 1 << 62
	_, err = x.Float32()
	wantKind(t, err, ErrBadTensor)
	if !strings.Contains(err.Error(), "offset") || strings.Contains(err.Error(), "stride") {
		t.Errorf("mutated offset: %q", err)
	}
}

// LoadFile reads regular files of at most limits.MaxWeightsBytes only.
func TestLoadFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	var fe *limits.FileError
	if _, err := os.Stat("/dev/zero"); err == nil {
		link := filepath.Join(dir, "model.pt")
		if err := os.Symlink("/dev/zero", link); err != nil {
			t.Fatal(err)
		}
		refusedCheaply(t, ErrIO, "not a regular file", 1<<20, func() error { _, err := LoadFile(link); return err })
		if _, err := LoadFile(link); !errors.As(err, &fe) {
			t.Errorf("%v does not wrap a *limits.FileError", err)
		}
	}
	refusedCheaply(t, ErrIO, "not a regular file", 1<<20, func() error { _, err := LoadFile(dir); return err })
	big := filepath.Join(dir, "big.pt")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(limits.MaxWeightsBytes + 1); err != nil { // sparse
		f.Close()
		t.Skip(err)
	}
	f.Close()
	refusedCheaply(t, ErrTooLarge, "limit", 1<<20, func() error { _, err := LoadFile(big); return err })
	_, err = LoadFile(filepath.Join(dir, "missing.pt"))
	wantKind(t, err, ErrIO)
}
