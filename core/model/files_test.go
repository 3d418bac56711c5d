package model

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/diffuse-web/diffuse/core/limits"
)

// Files is what the page's converters read: sizes are checked before a
// read, a file comes back uncopied, folders exist through their files.
func TestFiles(t *testing.T) {
	data := []byte("0123456789")
	files := Files{"drop/unet/config.json": data}
	b, err := limits.ReadFS(files, "drop/unet/config.json", 10)
	if err != nil || &b[0] != &data[0] {
		t.Fatalf("ReadFS: %v (copied: %v)", err, err == nil && &b[0] != &data[0])
	}
	var fe *limits.FileError
	if _, err := limits.ReadFS(files, "drop/unet/config.json", 9); !errors.As(err, &fe) {
		t.Fatalf("a file over the cap: got %v, want a *limits.FileError", err)
	}
	if _, err := limits.ReadFS(files, "drop/unet", 100); !errors.As(err, &fe) {
		t.Fatalf("a folder: got %v, want a *limits.FileError (not a regular file)", err)
	}
	if st, err := fs.Stat(files, "drop"); err != nil || !st.IsDir() {
		t.Fatalf("drop: %v %v", st, err)
	}
	for _, n := range []string{"drop/scheduler/scheduler_config.json", "../etc/passwd", "/abs"} {
		if _, err := files.Open(n); err == nil {
			t.Fatalf("%s opened", n)
		}
	}
}
