// Package hostiletest builds small hand-made model files that try to crash,
// hang or exhaust the memory of whatever loads them, for the tests of every
// layer that loads models (core/model, the page's engine, the CLI) and as
// seeds of the model-level fuzzer. Each one must be refused with an error.
package hostiletest

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/torchpt"
)

// Case is one hostile file and a substring its refusal must contain.
type Case struct {
	Name string
	Data []byte
	Want string
	// Trained is true for a file in the toy training script's format, which
	// only 'diffuse convert' reads (model.FromToy2D); the rest are ours.
	Trained bool
}

// File is a small safetensors file with the given metadata and tensors
// (zero-filled fp16), as a stranger could hand-make it.
func File(meta map[string]string, shapes map[string][]int) []byte {
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
		panic(err) // only for shapes this package chose
	}
	return buf.Bytes()
}

// Meta is the metadata of one of our converted files.
func Meta(arch, config, sched string) map[string]string {
	m := map[string]string{model.KeyFormat: "1", model.KeyArch: arch, model.KeyConfig: config}
	if sched != "" {
		m[model.KeyScheduler] = sched
	}
	return m
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// Cases are the hostile model files.
func Cases() []Case {
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
	unet1 := func(extra string) string {
		return `{"block_out_channels":[32],"down_block_types":["DownBlock2D"],"up_block_types":["UpBlock2D"]` + extra + `}`
	}
	const (
		unetArch, lucidArch, toyArch = model.ArchDiffusersUNet2D, model.ArchLucidUnet, model.ArchToy2D
	)
	type c = struct {
		name   string
		meta   map[string]string
		shapes map[string][]int
		want   string
	}
	list := []c{
		{"unet 65 levels", Meta(unetArch, string(deepUNet), ""), nil, "block_out_channels (levels)"},
		{"lucid 65 stages", Meta(lucidArch, string(deepLucid), ""), nil, "dim_mults (stages)"},
		{"toy2d zero-sized weights", Meta(toyArch, toy, ""), map[string][]int{"fc1.weight": {0, 34}, "fc1.bias": {0}, "out.weight": {2, 0}, "out.bias": {2}}, "every dimension must be positive"},
		{"toy2d hidden width 2^30 in zero elements", Meta(toyArch, toy, ""), map[string][]int{"fc1.weight": {1 << 30, 0}, "fc1.bias": {1}, "out.weight": {2, 1}, "out.bias": {2}}, "every dimension must be positive"},
		{"toy2d temb_dim 2^30", Meta(toyArch, `{"dim":2,"temb_dim":1073741824,"layers":["fc1","out"]}`, ""), toyShapes, "temb_dim"},
		{"toy2d 1e9 layers (trained format)", map[string]string{"config": `{"model_type":"toy2d_mlp","in_dim":2,"num_hidden_layers":1000000000,"time_embedding":{"dim":32}}`}, toyShapes, "num_hidden_layers"},
		{"num_train_timesteps 1e10", Meta(toyArch, toy, `{"num_train_timesteps":10000000000}`), toyShapes, "num_train_timesteps"},
		{"num_train_timesteps 2e8", Meta(toyArch, toy, `{"num_train_timesteps":200000000}`), toyShapes, "num_train_timesteps"},
		{"NaN in trained_betas", Meta(toyArch, toy, `{"num_train_timesteps":2,"trained_betas":[0.1,NaN]}`), toyShapes, "trained_betas"},
		{"infinite VE sigma_max", Meta(toyArch, toy, `{"sde":"ve","sigma_max":Infinity}`), toyShapes, "sigma_max"},
		{"sample_size 1e5", Meta(unetArch, unet1(`,"sample_size":100000`), ""), nil, "sample_size"},
		{"sample_size 2.5", Meta(unetArch, unet1(`,"sample_size":2.5`), ""), nil, "sample_size"},
		{"layers_per_block 1e9", Meta(unetArch, `{"layers_per_block":1000000000}`, ""), nil, "layers_per_block"},
		{"channels 2^40", Meta(unetArch, `{"block_out_channels":[1099511627776],"down_block_types":["DownBlock2D"],"up_block_types":["UpBlock2D"]}`, ""), nil, "block_out_channels"},
		{"NaN weights", Meta(toyArch, toy, ""), nil, "must be finite"},
	}
	out := make([]Case, len(list))
	for i, l := range list {
		data := File(l.meta, l.shapes)
		if l.name == "NaN weights" {
			data = nanToy(toy, toyShapes)
		}
		_, ours := l.meta[model.KeyArch]
		out[i] = Case{l.name, data, l.want, !ours}
	}
	return out
}

// nanToy is a valid toy model whose first weight holds a NaN.

func nanToy(config string, shapes map[string][]int) []byte {
	var es []safetensors.Entry
	for name, s := range shapes {
		n := 1
		for _, d := range s {
			n *= d
		}
		data := make([]float32, n)
		if name == "fc1.weight" {
			data[3] = float32(math.NaN())
		}
		es = append(es, safetensors.Entry{Name: name, Shape: s, Data: data, DType: safetensors.F16})
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, es, Meta(model.ArchToy2D, config, "")); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Bounded runs f, failing the test if it panics, takes longer than a few
// seconds or allocates more than maxAlloc bytes.
func Bounded(t *testing.T, maxAlloc uint64, f func() error) error {
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
	// A guard against runaway work, not a benchmark: refusals take
	// milliseconds natively, and js/wasm on a loaded machine is far slower.
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("took %v", d)
	}
	runtime.ReadMemStats(&after)
	if a := after.TotalAlloc - before.TotalAlloc; a > maxAlloc {
		t.Errorf("allocated %d bytes (limit %d)", a, maxAlloc)
	}
	return err
}

// PlaceFile writes data at path or, when data is nil, makes path a symlink
// to /dev/zero (skipping the test where there is none).
func PlaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if data != nil {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip(err)
	}
	if err := os.Symlink("/dev/zero", path); err != nil {
		t.Skip(err)
	}
}

// WantCheckpointRefusal checks the error of loading a file PlaceFile made:
// a *limits.FileError for /dev/zero (data nil), else a torchpt error of kind.
func WantCheckpointRefusal(t *testing.T, err error, data []byte, kind torchpt.ErrKind) {
	t.Helper()
	if data == nil {
		var fe *limits.FileError
		if !errors.As(err, &fe) {
			t.Fatalf("got %v, want a *limits.FileError", err)
		}
		return
	}
	var te *torchpt.Error
	if !errors.As(err, &te) || te.Kind != kind {
		t.Fatalf("got %v, want a torchpt %v error", err, kind)
	}
}
