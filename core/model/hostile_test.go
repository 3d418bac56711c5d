package model_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/limits"
	. "github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/model/hostiletest"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/unet"
)

func TestHostileModelFiles(t *testing.T) {
	for _, c := range hostiletest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			err := hostiletest.Bounded(t, 32<<20, func() error { _, err := loadAny(c.Data); return err })
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), c.Want) {
				t.Errorf("error %q does not mention %q", err, c.Want)
			}
		})
	}
}

// The refusals are typed: the field's limit, a shape, or a schedule field.
func TestHostileErrorTypes(t *testing.T) {
	for _, c := range hostiletest.Cases() {
		_, err := loadAny(c.Data)
		var (
			le *limits.Error
			se *graph.ShapeError
			fe *schedule.FieldError
			ce *unet.ConfigError
		)
		if !errors.As(err, &le) && !errors.As(err, &se) && !errors.As(err, &fe) && !errors.As(err, &ce) {
			t.Errorf("%s: untyped error %T: %v", c.Name, err, err)
		}
	}
}

func TestNullClassInRange(t *testing.T) {
	m, err := Load(shippedMNIST(t))
	if err != nil {
		t.Fatal(err)
	}
	_, classes := m.Conditional()
	for _, nc := range []string{"-2", fmt.Sprint(classes), "4611686018427387904"} {
		meta := hostiletest.Meta(m.Arch, string(m.Config), string(m.Scheduler))
		meta[KeyNullClass] = nc
		shapes := map[string][]int{}
		for n, p := range m.Params {
			shapes[n] = p.Shape
		}
		_, err := loadAny(hostiletest.File(meta, shapes))
		var le *limits.Error
		if !errors.As(err, &le) {
			t.Errorf("null class %s: got %v, want a limits.Error", nc, err)
		}
	}
}

func shippedMNIST(t *testing.T) string {
	p := filepath.Join("..", "..", "weights", "mnist.safetensors")
	if _, err := os.Stat(p); err != nil {
		t.Skip("weights/mnist.safetensors not present")
	}
	return p
}

// The budget stops a batch whose activations would not fit, before any
// backend allocates them; the same model at batch 1 builds.
func TestMemoryBudget(t *testing.T) {
	m, err := Load(shippedMNIST(t))
	if err != nil {
		t.Fatal(err)
	}
	defer limits.SetBudget(limits.SetBudget(256 << 20))
	err = hostiletest.Bounded(t, 16<<20, func() error { _, err := m.Graph(4096, 28, 28); return err })
	var me *limits.MemoryError
	if !errors.As(err, &me) {
		t.Fatalf("batch 4096: got %v, want a MemoryError", err)
	}
	if me.Need() <= me.Budget || !strings.Contains(err.Error(), "activations") {
		t.Errorf("message %q", err)
	}
	if _, err := m.Graph(1, 28, 28); err != nil {
		t.Errorf("batch 1: %v", err)
	}
	// Sizes beyond the per-side bound are refused by name before building.
	var le *limits.Error
	if _, err := m.Graph(1, 65536, 65536); !errors.As(err, &le) || le.Field != "height" {
		t.Errorf("65536×65536: got %v", err)
	}
	if _, err := m.Graph(1<<62, 28, 28); !errors.As(err, &le) || le.Field != "batch" {
		t.Errorf("batch 2^62: got %v", err)
	}
}

// The estimate counts the peak of live values: for a chain x → a → b it is
// never less than the largest two neighbours, and never the sum of all.
func TestMemoryEstimatePeak(t *testing.T) {
	params := map[string]*tensor.Tensor{
		"l1.weight": tensor.New(1000, 2), "l2.weight": tensor.New(10, 1000), "l3.weight": tensor.New(1000, 10),
	}
	g := graph.New(params)
	b := graph.NewBuilder(g)
	x := g.Input("x", 1, 2)
	h := b.Linear("l3", b.Linear("l2", b.Linear("l1", x)))
	g.Output = h
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	mem := g.Memory()
	if want := int64(4 * (2000 + 10000 + 10000)); mem.Weights != want {
		t.Errorf("weights %d, want %d", mem.Weights, want)
	}
	// Peak: x (kept, an input) + l1's 1000 + l2's 10, or x + l2's 10 + l3's 1000.
	if want := int64(4 * (2 + 1000 + 10)); mem.Activations != want {
		t.Errorf("activations %d, want %d", mem.Activations, want)
	}
}

// Files that are not regular files are refused without reading them.
func TestNonRegularFilesRefused(t *testing.T) {
	if runtime.GOOS == "js" || runtime.GOOS == "windows" {
		t.Skip("no /dev/zero")
	}
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	var fe *limits.FileError
	if err := hostiletest.Bounded(t, 1<<20, func() error { _, err := Load("/dev/zero"); return err }); !errors.As(err, &fe) {
		t.Errorf("Load(/dev/zero): %v", err)
	}
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "config.json")); err != nil {
		t.Skip(err)
	}
	if err := hostiletest.Bounded(t, 1<<20, func() error { _, err := Load(dir); return err }); !errors.As(err, &fe) {
		t.Errorf("config.json → /dev/zero: %v", err)
	}
	os.Remove(filepath.Join(dir, "config.json"))
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{}`), 0o644)
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "diffusion_pytorch_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := hostiletest.Bounded(t, 1<<20, func() error { _, err := Load(dir); return err }); !errors.As(err, &fe) {
		t.Errorf("weights → /dev/zero: %v", err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "scheduler_config.json")); err != nil {
		t.Fatal(err)
	}
}
