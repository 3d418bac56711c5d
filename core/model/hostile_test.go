package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/unet"
)

// hostileFile is a small safetensors file with the given metadata and tensors
// (data zero-filled), as a stranger could hand-make it.
func hostileFile(t *testing.T, meta map[string]string, shapes map[string][]int) []byte {
	t.Helper()
	var es []safetensors.Entry
	for name, s := range shapes {
		n := 1
		for _, d := range s {
			n *= d
		}
		es = append(es, safetensors.Entry{Name: name, Shape: s, Data: make([]float32, n), DType: safetensors.F16})
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, es, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ourMeta(arch, config, sched string) map[string]string {
	m := map[string]string{KeyFormat: "1", KeyArch: arch, KeyConfig: config}
	if sched != "" {
		m[KeyScheduler] = sched
	}
	return m
}

// loadBytes runs the whole path a dropped file takes: parse, build, check.
func loadBytes(data []byte) (*Model, error) {
	f, err := safetensors.Read(data)
	if err != nil {
		return nil, err
	}
	if _, ok := f.Metadata["config"]; ok && f.Metadata[KeyArch] == "" {
		return FromToy2D(f)
	}
	return FromSafetensors(f)
}

// bounded runs f, failing the test if it panics, takes longer than a few
// seconds or allocates more than maxAlloc bytes.
func bounded(t *testing.T, maxAlloc uint64, f func() error) error {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		err = f()
	}()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	runtime.ReadMemStats(&after)
	if a := after.TotalAlloc - before.TotalAlloc; a > maxAlloc {
		t.Errorf("allocated %d bytes (limit %d)", a, maxAlloc)
	}
	return err
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestHostileModelFiles(t *testing.T) {
	chans := make([]int, 65)
	for i := range chans {
		chans[i] = 32
	}
	deepUNet, _ := json.Marshal(map[string]any{"block_out_channels": chans,
		"down_block_types": repeat("DownBlock2D", 65), "up_block_types": repeat("UpBlock2D", 65), "sample_size": 32})
	mults := make([]int, 65)
	heads := make([]int, 65)
	full := make([]bool, 65)
	for i := range mults {
		mults[i], heads[i] = 1, 4
	}
	deepLucid, _ := json.Marshal(map[string]any{"dim": 32, "init_dim": 32, "out_dim": 3, "channels": 3, "dim_mults": mults,
		"attn_heads": heads, "attn_dim_head": heads, "full_attn": full, "sinusoidal_pos_emb_theta": 10000, "image_size": [2]int{64, 64}})
	toy := `{"dim":2,"temb_dim":32,"layers":["fc1","out"]}`
	toyShapes := map[string][]int{"fc1.weight": {8, 34}, "fc1.bias": {8}, "out.weight": {2, 8}, "out.bias": {2}}
	type tc struct {
		name   string
		meta   map[string]string
		shapes map[string][]int
		want   any    // pointer to the error type expected
		msg    string // a substring of the message
	}
	var (
		le *limits.Error
		se *graph.ShapeError
		fe *schedule.FieldError
		ce *unet.ConfigError
	)
	cases := []tc{
		{"unet 65 levels", ourMeta(ArchDiffusersUNet2D, string(deepUNet), ""), nil, &le, "block_out_channels (levels)"},
		{"lucid 65 stages", ourMeta(ArchLucidUnet, string(deepLucid), ""), nil, &le, "dim_mults (stages)"},
		{"toy2d zero-sized weights", ourMeta(ArchToy2D, toy, ""), map[string][]int{"fc1.weight": {0, 34}, "fc1.bias": {0}, "out.weight": {2, 0}, "out.bias": {2}}, &se, "every dimension must be positive"},
		{"toy2d hidden width 2^30 in zero elements", ourMeta(ArchToy2D, toy, ""), map[string][]int{"fc1.weight": {1 << 30, 0}, "fc1.bias": {1}, "out.weight": {2, 1}, "out.bias": {2}}, &se, "every dimension must be positive"},
		{"toy2d temb_dim 2^30", ourMeta(ArchToy2D, `{"dim":2,"temb_dim":1073741824,"layers":["fc1","out"]}`, ""), toyShapes, &le, "temb_dim"},
		{"toy2d 1e9 layers (trained format)", map[string]string{"config": `{"model_type":"toy2d_mlp","in_dim":2,"num_hidden_layers":1000000000,"time_embedding":{"dim":32}}`}, toyShapes, &le, "num_hidden_layers"},
		{"num_train_timesteps 1e10", ourMeta(ArchToy2D, toy, `{"num_train_timesteps":10000000000}`), toyShapes, nil, "num_train_timesteps"},
		{"num_train_timesteps 2e8", ourMeta(ArchToy2D, toy, `{"num_train_timesteps":200000000}`), toyShapes, &fe, "num_train_timesteps"},
		{"NaN in trained_betas", ourMeta(ArchToy2D, toy, `{"num_train_timesteps":2,"trained_betas":[0.1,NaN]}`), toyShapes, &fe, "trained_betas"},
		{"infinite VE sigma_max", ourMeta(ArchToy2D, toy, `{"sde":"ve","sigma_max":Infinity}`), toyShapes, &fe, "sigma_max"},
		{"sample_size 1e5", ourMeta(ArchDiffusersUNet2D, `{"block_out_channels":[32],"down_block_types":["DownBlock2D"],"up_block_types":["UpBlock2D"],"sample_size":100000}`, ""), nil, &le, "sample_size"},
		{"sample_size 2.5", ourMeta(ArchDiffusersUNet2D, `{"block_out_channels":[32],"down_block_types":["DownBlock2D"],"up_block_types":["UpBlock2D"],"sample_size":2.5}`, ""), nil, &ce, "sample_size"},
		{"layers_per_block 1e9", ourMeta(ArchDiffusersUNet2D, `{"layers_per_block":1000000000}`, ""), nil, &le, "layers_per_block"},
		{"channels 2^40", ourMeta(ArchDiffusersUNet2D, `{"block_out_channels":[1099511627776],"down_block_types":["DownBlock2D"],"up_block_types":["UpBlock2D"]}`, ""), nil, &le, "block_out_channels"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := hostileFile(t, c.meta, c.shapes)
			err := bounded(t, 32<<20, func() error { _, err := loadBytes(data); return err })
			if err == nil {
				t.Fatal("loaded")
			}
			if c.want != nil && !errors.As(err, c.want) {
				t.Errorf("error %T (%v), want %T", err, err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not mention %q", err, c.msg)
			}
		})
	}
}

func TestNullClassInRange(t *testing.T) {
	m, err := Load(shippedMNIST(t))
	if err != nil {
		t.Fatal(err)
	}
	_, classes := m.Conditional()
	for _, nc := range []string{"-2", fmt.Sprint(classes), "4611686018427387904"} {
		meta := ourMeta(m.Arch, string(m.Config), string(m.Scheduler))
		meta[KeyNullClass] = nc
		shapes := map[string][]int{}
		for n, p := range m.Params {
			shapes[n] = p.Shape
		}
		_, err := loadBytes(hostileFile(t, meta, shapes))
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
	err = bounded(t, 16<<20, func() error { _, err := m.Graph(4096, 28, 28); return err })
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
	if err := bounded(t, 1<<20, func() error { _, err := Load("/dev/zero"); return err }); !errors.As(err, &fe) {
		t.Errorf("Load(/dev/zero): %v", err)
	}
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "config.json")); err != nil {
		t.Skip(err)
	}
	if err := bounded(t, 1<<20, func() error { _, err := Load(dir); return err }); !errors.As(err, &fe) {
		t.Errorf("config.json → /dev/zero: %v", err)
	}
	os.Remove(filepath.Join(dir, "config.json"))
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{}`), 0o644)
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "diffusion_pytorch_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := bounded(t, 1<<20, func() error { _, err := Load(dir); return err }); !errors.As(err, &fe) {
		t.Errorf("weights → /dev/zero: %v", err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "scheduler_config.json")); err != nil {
		t.Fatal(err)
	}
}
