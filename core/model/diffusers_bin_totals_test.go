package model_test

import (
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/model/hostiletest"
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
			hostiletest.PlaceFile(t, bin, c.data)
			err := hostiletest.Bounded(t, 32<<20, func() error { _, err := model.FromDiffusersDir(dir); return err })
			hostiletest.WantCheckpointRefusal(t, err, c.data, c.kind)
			t.Logf("%d-byte file refused: %v", len(c.data), err)
		})
	}
}
