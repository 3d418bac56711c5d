package main

import (
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/model/hostiletest"
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
			hostiletest.PlaceFile(t, ckpt, c.data)
			err := hostiletest.Bounded(t, 32<<20, func() error {
				return runConvert([]string{"--from", "lucidrains", ckpt, "--image-size", "8", "-o", filepath.Join(dir, "m.safetensors")})
			})
			hostiletest.WantCheckpointRefusal(t, err, c.data, torchpt.ErrTooLarge)
			t.Logf("%d-byte file refused: %v", len(c.data), err)
		})
	}
}
