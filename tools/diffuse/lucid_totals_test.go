package main

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/torchpt"
	"github.com/diffuse-web/diffuse/core/torchpt/torchpttest"
)

// A lucidrains model-N.pt that asks for far more than it holds (its EMA
// U-Net weights: 2,000 names on one stride-0 tensor, 2^20 pickle paths to
// one tensor, four 1 GiB deflated storages) or that is a symlink to
// /dev/zero is refused by convert with a typed error, quickly and without
// a big allocation.
func TestConvertLucidTotals(t *testing.T) {
	ema := torchpttest.Layout{Outer: "ema", Prefix: "ema_model.model."}
	for _, c := range []struct {
		name string
		data []byte // nil: a symlink to /dev/zero
	}{
		{"expand", torchpttest.ExpandBomb(ema, 2000, 1<<24, true)},
		{"paths", torchpttest.PathBomb(ema, 20, 1<<24)},
		{"inflate", torchpttest.InflateBomb(ema, 4, 1<<30)},
		{"dev zero", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ckpt := filepath.Join(dir, "model-1.pt")
			if c.data == nil {
				if _, err := os.Stat("/dev/zero"); err != nil {
					t.Skip(err)
				}
				if err := os.Symlink("/dev/zero", ckpt); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(ckpt, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			err := runConvert([]string{"--from", "lucidrains", ckpt, "--image-size", "8", "-o", filepath.Join(dir, "m.safetensors")})
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if c.data == nil {
				var fe *limits.FileError
				if !errors.As(err, &fe) {
					t.Fatalf("got %v, want a *limits.FileError", err)
				}
			} else {
				var te *torchpt.Error
				if !errors.As(err, &te) || te.Kind != torchpt.ErrTooLarge {
					t.Fatalf("got %v, want a torchpt ErrTooLarge error", err)
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
