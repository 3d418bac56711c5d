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
	"errors"
	"os"

	"github.com/diffuse-web/diffuse/core/limits"
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
	// MaxTotalInflatedBytes bounds the uncompressed sizes of all
	// deflate-compressed entries together (MaxInflatedBytes bounds each).
	// Zero in DefaultOptions: the smaller of DefaultMaxTotalInflatedBytes
	// and limits.Budget() when the file is opened.
	MaxTotalInflatedBytes int64
	// MaxTotalBytes bounds the tensor data one checkpoint hands out, counted
	// over every tensor and every conversion: StateDict refuses a result
	// whose tensors would take more than this as float32 (each name counts,
	// so stride-0 tensors, views sharing a storage and one tensor reached by
	// many pickle paths count by what they expand to), and Float32, Float64,
	// Int64, ToTensor and a copying Bytes refuse, before allocating, a
	// conversion that would take the total converted past it. Zero in
	// DefaultOptions: limits.Budget() when the file is opened.
	MaxTotalBytes int64
	// MaxObjectBytes bounds the memory the unpickler builds its objects
	// in: every string, bytes object, number, list, tuple, dict, tensor and
	// storage made while reading data.pkl, each container slot, memo entry
	// and growth of the pickle stack, the copies made when the result is
	// finalised, and the bytes of dict keys hashed. Counted approximately
	// (the heap bytes the Go runtime allocates, rounded up), before each
	// allocation; references to an object already built (memo gets, DUP)
	// cost only their slot, so a long string shared by many lists counts
	// once. Zero in DefaultOptions: the smaller of DefaultMaxObjectBytes
	// and limits.Budget()/4 when the file is opened.
	MaxObjectBytes int64
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

// DefaultMaxTotalInflatedBytes caps the default MaxTotalInflatedBytes:
// torch.save writes stored (uncompressed) entries, so deflated data comes
// only from re-zipped files, and no real checkpoint we know of inflates to
// more than half a GiB.
const DefaultMaxTotalInflatedBytes = 2 << 30

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
	if r.MaxTotalInflatedBytes <= 0 {
		r.MaxTotalInflatedBytes = d.MaxTotalInflatedBytes
		if r.MaxTotalInflatedBytes <= 0 {
			r.MaxTotalInflatedBytes = min(DefaultMaxTotalInflatedBytes, limits.Budget())
		}
	}
	if r.MaxTotalBytes <= 0 {
		r.MaxTotalBytes = d.MaxTotalBytes
		if r.MaxTotalBytes <= 0 {
			r.MaxTotalBytes = limits.Budget()
		}
	}
	if r.MaxObjectBytes <= 0 {
		r.MaxObjectBytes = d.MaxObjectBytes
		if r.MaxObjectBytes <= 0 {
			r.MaxObjectBytes = min(DefaultMaxObjectBytes, limits.Budget()/4)
		}
	}
	return r
}

// Checkpoint is an opened torch.save archive.
type Checkpoint struct {
	Root      Value  // the unpickled object
	Archive   string // top folder inside the zip, e.g. "archive" ("" if entries sit at the root)
	Version   string // contents of <top>/version, trimmed ("" if absent)
	ByteOrder string // "little" or "big"

	objectBytes int64 // charged to MaxObjectBytes
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

// LoadFile reads and decodes a torch.save file. The file must be a regular
// file (a symlink to one is fine) of at most limits.MaxWeightsBytes: a
// device, FIFO or directory is refused with ErrIO, a bigger file with
// ErrTooLarge (both wrapping a *limits.FileError).
func LoadFile(path string) (Value, error) {
	data, err := limits.ReadFile(path, limits.MaxWeightsBytes)
	if err != nil {
		var fe *limits.FileError
		if errors.As(err, &fe) {
			kind := ErrIO
			if st, serr := os.Stat(path); serr == nil && st.Mode().IsRegular() {
				kind = ErrTooLarge
			}
			return nil, &Error{Kind: kind, Err: err}
		}
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
	m := &meter{limit: o.MaxObjectBytes}
	u := newUnpickler(pkl, &o, m, a.persistentLoad)
	raw, err := u.run()
	if err != nil {
		return nil, err
	}
	root, err := finalize(raw, &o, m)
	if err != nil {
		return nil, err
	}
	return &Checkpoint{Root: root, Archive: a.top, Version: a.version, ByteOrder: a.byteOrderName,
		objectBytes: m.used}, nil
}
