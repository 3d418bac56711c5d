package torchpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"sync/atomic"

	"github.com/diffuse-web/diffuse/core/limits"
)

// entry is one validated member of the archive.
type entry struct {
	f      *zip.File
	name   string
	off    int64 // start of the (possibly compressed) data in the file
	csize  int64 // compressed size
	usize  int64 // uncompressed size
	stored bool
}

type archive struct {
	data          []byte
	opts          *Options
	entries       map[string]*entry
	top           string // top folder without slash
	prefix        string // top + "/" (or "")
	pickle        *entry
	version       string
	order         binary.ByteOrder
	byteOrderName string
	storages      map[string]*Storage
	converted     atomic.Int64 // bytes of tensor data handed out by conversions (Options.MaxTotalBytes)
}

const (
	maxSmallEntry   = 64 // version/byteorder files are a few bytes
	maxDeflateRatio = 1032
)

func sniffNonZip(data []byte) error {
	if len(data) > 0 && data[0] == 0x80 {
		return errf(ErrLegacyFormat, "file starts with a pickle stream: pre-1.6 torch.save format (re-save it with a current PyTorch)")
	}
	if len(data) >= 262 && string(data[257:262]) == "ustar" {
		return errf(ErrLegacyFormat, "tar container: very old torch.save format")
	}
	return errf(ErrNotZip, "no zip signature")
}

func openArchive(data []byte, opts *Options) (*archive, error) {
	if !bytes.HasPrefix(data, []byte("PK\x03\x04")) && !bytes.HasPrefix(data, []byte("PK\x05\x06")) {
		return nil, sniffNonZip(data)
	}
	size := int64(len(data))
	zr, err := zip.NewReader(bytes.NewReader(data), size)
	if err != nil {
		return nil, wrapErr(ErrTruncated, err, "zip directory unreadable (file cut short or corrupt)")
	}
	a := &archive{data: data, opts: opts, entries: make(map[string]*entry, len(zr.File)),
		storages: map[string]*Storage{}}
	var pickles []*entry
	var inflated int64 // declared uncompressed bytes of all deflated entries
	deflated := 0
	for _, f := range zr.File {
		e := &entry{f: f, name: f.Name}
		if f.CompressedSize64 > uint64(size) || f.UncompressedSize64 > 1<<62 {
			return nil, errf(ErrTruncated, "entry %q claims %d bytes in a %d-byte file", f.Name, f.CompressedSize64, size)
		}
		e.csize, e.usize = int64(f.CompressedSize64), int64(f.UncompressedSize64)
		switch f.Method {
		case zip.Store:
			e.stored = true
			if e.csize != e.usize {
				return nil, errf(ErrBadStorage, "stored entry %q: compressed size %d != size %d", f.Name, e.csize, e.usize)
			}
		case zip.Deflate:
			if e.usize > opts.MaxInflatedBytes {
				return nil, errf(ErrTooLarge, "compressed entry %q inflates to %d bytes (limit %d)", f.Name, e.usize, opts.MaxInflatedBytes)
			}
			// DEFLATE cannot expand more than about 1032:1.
			if e.usize > maxDeflateRatio*e.csize+1024 {
				return nil, errf(ErrBadStorage, "compressed entry %q claims %d bytes from %d: impossible ratio", f.Name, e.usize, e.csize)
			}
			inflated = limits.Add(inflated, e.usize)
			deflated++
		default:
			return nil, errf(ErrUnsupported, "entry %q uses zip compression method %d", f.Name, f.Method)
		}
		off, err := f.DataOffset()
		if err != nil {
			return nil, wrapErr(ErrTruncated, err, "entry %q: local header unreadable", f.Name)
		}
		if off < 0 || off > size || e.csize > size-off {
			return nil, errf(ErrTruncated, "entry %q: data [%d, +%d) runs past the end of the %d-byte file", f.Name, off, e.csize, size)
		}
		e.off = off
		a.entries[f.Name] = e
		if f.Name == "data.pkl" || (strings.HasSuffix(f.Name, "/data.pkl") && strings.Count(f.Name, "/") == 1) {
			pickles = append(pickles, e)
		}
	}
	// Every entry is read at most once (data.pkl, byteorder, version, one
	// Storage per key) and never past its declared size, so bounding the
	// declared total bounds what inflating can ever allocate.
	if inflated > opts.MaxTotalInflatedBytes {
		return nil, errf(ErrTooLarge, "%d compressed entries inflate to %s together (%d bytes), over the %s limit on inflated data (MaxTotalInflatedBytes)",
			deflated, limits.Bytes(inflated), inflated, limits.Bytes(opts.MaxTotalInflatedBytes))
	}
	switch len(pickles) {
	case 0:
		return nil, errf(ErrUnsupported, "zip archive has no data.pkl: not a torch.save file")
	case 1:
	default:
		return nil, errf(ErrUnsupported, "zip archive has %d data.pkl records", len(pickles))
	}
	a.pickle = pickles[0]
	a.prefix = strings.TrimSuffix(a.pickle.name, "data.pkl")
	a.top = strings.TrimSuffix(a.prefix, "/")

	a.order, a.byteOrderName = binary.LittleEndian, "little"
	if e := a.entries[a.prefix+"byteorder"]; e != nil {
		b, err := a.readEntry(e, maxSmallEntry, "byteorder")
		if err != nil {
			return nil, err
		}
		switch strings.TrimSpace(string(b)) {
		case "little":
		case "big":
			a.order, a.byteOrderName = binary.BigEndian, "big"
		default:
			return nil, errf(ErrUnsupported, "byteorder %q", b)
		}
	}
	if e := a.entries[a.prefix+"version"]; e != nil {
		b, err := a.readEntry(e, maxSmallEntry, "version")
		if err != nil {
			return nil, err
		}
		a.version = strings.TrimSpace(string(b))
	}
	return a, nil
}

// readEntry returns an entry's bytes: a sub-slice of the file for stored
// entries (CRC-checked unless SkipChecksums), a fresh buffer for deflated ones.
func (a *archive) readEntry(e *entry, limit int64, what string) ([]byte, error) {
	if e.usize > limit {
		return nil, errf(ErrTooLarge, "%s (%s) is %d bytes (limit %d)", what, e.name, e.usize, limit)
	}
	if e.stored {
		b := a.data[e.off : e.off+e.csize : e.off+e.csize]
		if !a.opts.SkipChecksums && crc32.ChecksumIEEE(b) != e.f.CRC32 {
			return nil, errf(ErrBadStorage, "%s (%s): CRC-32 mismatch", what, e.name)
		}
		return b, nil
	}
	rc, err := e.f.Open()
	if err != nil {
		return nil, wrapErr(ErrBadStorage, err, "%s (%s): cannot open", what, e.name)
	}
	defer rc.Close()
	// Grow the buffer as data actually arrives rather than trusting the
	// declared size for one big allocation.
	var bb bytes.Buffer
	bb.Grow(int(min(e.usize, 1<<20)))
	if _, err := io.CopyN(&bb, rc, e.usize); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, wrapErr(ErrTruncated, err, "%s (%s): inflated data shorter than declared", what, e.name)
		}
		return nil, wrapErr(ErrBadStorage, err, "%s (%s): inflate failed", what, e.name)
	}
	buf := bb.Bytes()
	// Reading past the declared size makes archive/zip verify the CRC and
	// that nothing follows.
	var one [1]byte
	if n, err := rc.Read(one[:]); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			return nil, errf(ErrBadStorage, "%s (%s): more data than declared", what, e.name)
		}
		return nil, wrapErr(ErrBadStorage, err, "%s (%s): inflate failed", what, e.name)
	}
	return buf, nil
}
