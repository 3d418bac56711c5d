package model_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/torchpt"
	"github.com/diffuse-web/diffuse/core/torchpt/torchpttest"
)

// A diffusion_pytorch_model.bin that asks for far more than it holds is
// refused with a typed error, quickly and without a big allocation: 2,000
// keys on one stride-0 tensor (128 GB as float32 from a 30 KB file), 2^20
// pickle paths to one tensor, four 1 GiB deflated storages in a 4 MB file,
// and a .bin that is a symlink to /dev/zero.
func TestFromDiffusersDirBinTotals(t *testing.T) {
	bare := torchpttest.Layout{}
	for _, c := range []struct {
		name string
		data []byte // nil: a symlink to /dev/zero
		kind torchpt.ErrKind
	}{
		{"expand", torchpttest.ExpandBomb(bare, 2000, 1<<24, true), torchpt.ErrTooLarge},
		{"paths", torchpttest.PathBomb(bare, 20, 1<<24), torchpt.ErrTooLarge},
		{"inflate", torchpttest.InflateBomb(bare, 4, 1<<30), torchpt.ErrTooLarge},
		{"dev zero", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, filepath.Join(binDir, "config.json"), filepath.Join(dir, "config.json"))
			bin := filepath.Join(dir, "diffusion_pytorch_model.bin")
			if c.data == nil {
				if _, err := os.Stat("/dev/zero"); err != nil {
					t.Skip(err)
				}
				if err := os.Symlink("/dev/zero", bin); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(bin, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := model.FromDiffusersDir(dir)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if c.data == nil {
				var fe *limits.FileError
				if !errors.As(err, &fe) {
					t.Fatalf("got %v, want a *limits.FileError", err)
				}
			} else {
				var te *torchpt.Error
				if !errors.As(err, &te) || te.Kind != c.kind {
					t.Fatalf("got %v, want a torchpt %v error", err, c.kind)
				}
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
				t.Errorf("refused after allocating %s", limits.Bytes(int64(alloc)))
			}
			if took > 5*time.Second {
				t.Errorf("refused after %v", took)
			}
			t.Logf("%d-byte file refused in %v: %v", len(c.data), took.Round(time.Millisecond), err)
		})
	}
}
