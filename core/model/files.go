package model

import (
	"bytes"
	"io/fs"
	"path"
	"strings"
	"time"
)

// Files is an in-memory file system: slash-separated paths (a dropped
// folder's webkitRelativePath, say) to contents. It is how the page hands
// a visitor's files to the same converters the CLI runs over os.DirFS
// (Family.Convert); only regular files are stored, and the directories
// above them exist implicitly (fs.Stat of one says so).
type Files map[string][]byte

// Open implements fs.FS. A file's reads come from its slice without a copy
// (limits.ReadFS takes it whole through Bytes).
func (f Files) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if b, ok := f[name]; ok {
		return &memFile{name: name, Reader: bytes.NewReader(b), data: b}, nil
	}
	prefix := name + "/"
	if name == "." {
		prefix = ""
	}
	for k := range f {
		if strings.HasPrefix(k, prefix) {
			return &memFile{name: name, dir: true, Reader: bytes.NewReader(nil)}, nil
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

type memFile struct {
	*bytes.Reader
	name string
	data []byte
	dir  bool
}

func (m *memFile) Stat() (fs.FileInfo, error) { return m, nil }
func (m *memFile) Close() error               { return nil }

// Bytes is the whole file, uncopied.
func (m *memFile) Bytes() []byte { return m.data }

func (m *memFile) Name() string       { return path.Base(m.name) }
func (m *memFile) Size() int64        { return int64(len(m.data)) }
func (m *memFile) ModTime() time.Time { return time.Time{} }
func (m *memFile) IsDir() bool        { return m.dir }
func (m *memFile) Sys() any           { return nil }
func (m *memFile) Mode() fs.FileMode {
	if m.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
