// Package torchpt reads PyTorch checkpoints written by torch.save (the ZIP
// container used since PyTorch 1.6) without executing any pickle code.
//
// The pickle inside the archive is interpreted by a restricted unpickler that
// knows a short allowlist of globals (collections.OrderedDict, the torch
// tensor/parameter rebuild functions, the torch.*Storage type tags,
// torch.Size and _codecs.encode for bytes). Any other global is refused with
// ErrForbiddenGlobal before anything is built. Tensor data stays in the
// archive bytes and is decoded only when Float32, Float64, Int64 or Bytes is
// called.
//
// Values are returned as: nil, bool, int64, float64, string, []byte,
// []any (Python list), Tuple, *OrderedDict (dict or collections.OrderedDict),
// *Tensor, and, if a bare storage was saved, *Storage.
package torchpt

import (
	"os"
)

// Value is any value decoded from a checkpoint.
type Value = any

// Options bounds the work and memory a checkpoint may demand. A zero field
// takes its value from DefaultOptions.
type Options struct {
	MaxPickleBytes    int64 // uncompressed size of data.pkl
	MaxInflatedBytes  int64 // uncompressed size of any deflate-compressed entry
	MaxStack          int   // pickle stack entries
	MaxMarks          int   // open MARKs at once
	MaxMemo           int   // distinct memo slots
	MaxContainerLen   int   // items in one list, tuple or dict
	MaxDepth          int   // nesting depth of containers in the result
	MaxDims           int   // dimensions of one tensor
	MaxExpandElements int64 // a tensor may have more elements than its storage (stride 0) only up to this
	// SkipChecksums disables the CRC-32 check of stored entries (storages are
	// checked lazily, on first access). Deflated entries are always checked.
	SkipChecksums bool
}

// DefaultOptions are the limits Load and LoadFile use.
var DefaultOptions = Options{
	MaxPickleBytes:    256 << 20,
	MaxInflatedBytes:  1 << 30,
	MaxStack:          1 << 20,
	MaxMarks:          1024,
	MaxMemo:           1 << 22,
	MaxContainerLen:   1 << 24,
	MaxDepth:          256,
	MaxDims:           64,
	MaxExpandElements: 1 << 24,
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	d := DefaultOptions
	if r.MaxPickleBytes <= 0 {
		r.MaxPickleBytes = d.MaxPickleBytes
	}
	if r.MaxInflatedBytes <= 0 {
		r.MaxInflatedBytes = d.MaxInflatedBytes
	}
	if r.MaxStack <= 0 {
		r.MaxStack = d.MaxStack
	}
	if r.MaxMarks <= 0 {
		r.MaxMarks = d.MaxMarks
	}
	if r.MaxMemo <= 0 {
		r.MaxMemo = d.MaxMemo
	}
	if r.MaxContainerLen <= 0 {
		r.MaxContainerLen = d.MaxContainerLen
	}
	if r.MaxDepth <= 0 {
		r.MaxDepth = d.MaxDepth
	}
	if r.MaxDims <= 0 {
		r.MaxDims = d.MaxDims
	}
	if r.MaxExpandElements <= 0 {
		r.MaxExpandElements = d.MaxExpandElements
	}
	return r
}

// Checkpoint is an opened torch.save archive.
type Checkpoint struct {
	Root      Value  // the unpickled object
	Archive   string // top folder inside the zip, e.g. "archive" ("" if entries sit at the root)
	Version   string // contents of <top>/version, trimmed ("" if absent)
	ByteOrder string // "little" or "big"
}

// Load decodes a torch.save file held in memory. Tensor data is not copied:
// the returned tensors read from data when converted, so data must not be
// modified afterwards.
func Load(data []byte) (Value, error) {
	c, err := Open(data, nil)
	if err != nil {
		return nil, err
	}
	return c.Root, nil
}

// LoadFile reads and decodes a torch.save file.
func LoadFile(path string) (Value, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, wrapErr(ErrIO, err, "reading %s", path)
	}
	return Load(data)
}

// Open decodes a torch.save file with the given limits (nil: DefaultOptions).
func Open(data []byte, opts *Options) (*Checkpoint, error) {
	o := opts.withDefaults()
	a, err := openArchive(data, &o)
	if err != nil {
		return nil, err
	}
	pkl, err := a.readEntry(a.pickle, o.MaxPickleBytes, "data.pkl")
	if err != nil {
		return nil, err
	}
	u := newUnpickler(pkl, &o, a.persistentLoad)
	raw, err := u.run()
	if err != nil {
		return nil, err
	}
	root, err := finalize(raw, &o)
	if err != nil {
		return nil, err
	}
	return &Checkpoint{Root: root, Archive: a.top, Version: a.version, ByteOrder: a.byteOrderName}, nil
}
