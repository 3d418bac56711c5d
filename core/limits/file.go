package limits

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Byte caps for files read whole.
const (
	// MaxConfigBytes bounds a JSON config file (config.json,
	// scheduler_config.json): real ones are a few kB.
	MaxConfigBytes = 1 << 20
	// MaxWeightsBytes bounds a weights file read whole (safetensors, .pt,
	// .bin): the largest public UNet2DModel checkpoints are ~450 MB in fp32.
	MaxWeightsBytes = 4 << 30
)

// FileError says a file is not something we read: not a regular file (a
// device such as /dev/zero, a FIFO, a directory, even through a symlink) or
// larger than the cap for its kind.
type FileError struct {
	Path, Why string
}

func (e *FileError) Error() string { return e.Path + ": " + e.Why }

// ReadFile reads a regular file of at most max bytes. Symlinks are followed,
// but what they point to must be a regular file too; the read itself is
// capped as well, so a file that grows while read is refused too.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return readCapped(f, path, max)
}

// ReadFS is ReadFile for a file of fsys: the converters read through an
// fs.FS, so the CLI (os.DirFS) and the page (the files a visitor dropped,
// held in memory) share them. The size is checked before anything is read.
func ReadFS(fsys fs.FS, name string, max int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	return readCapped(f, name, max)
}

func readCapped(f fs.File, path string, max int64) ([]byte, error) {
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &FileError{path, fmt.Sprintf("not a regular file (%s)", st.Mode().Type())}
	}
	if st.Size() > max {
		return nil, &FileError{path, fmt.Sprintf("%s, more than the %s limit for this kind of file", Bytes(st.Size()), Bytes(max))}
	}
	if b, ok := f.(interface{ Bytes() []byte }); ok {
		// An in-memory file (core/model Files): no copy, which matters for a
		// large model inside the browser's 4 GB wasm memory.
		return b.Bytes(), nil
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &FileError{path, fmt.Sprintf("grew past the %s limit while being read", Bytes(max))}
	}
	return data, nil
}
