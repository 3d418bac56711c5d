package model_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/fixtures"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/lucid"
	. "github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/model/hostiletest"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// fuzzBudget keeps each execution small: a model whose weights and batch-2
// activations exceed it is refused by the budget check, which is itself
// under test.
const fuzzBudget = 8 << 20

// loadAny reads bytes the way a dropped file is read: PyTorch zips through
// the lucidrains and score-SDE converters, anything else as safetensors
// (ours, or the toy training script's).
func loadAny(data []byte) (*Model, error) {
	if bytes.HasPrefix(data, []byte("PK\x03\x04")) {
		if m, err := FromLucidrains(data, true, lucid.Overrides{ImageSize: [2]int{16, 16}}); err == nil {
			return m, nil
		}
		return FromScoreSDE(data, 25, 28)
	}
	f, err := safetensors.Read(data)
	if err != nil {
		return nil, err
	}
	if _, ok := f.Metadata["config"]; ok && f.Metadata[KeyArch] == "" {
		return FromToy2D(f)
	}
	return FromSafetensors(f)
}

// fuzzSeeds are every shipped model, fixture and testdata model file, and
// the hostile cases.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	var paths []string
	for _, pat := range []string{
		"../../weights/*.safetensors", "../safetensors/testdata/*/*.safetensors", "../toy2d/testdata/*.safetensors",
		"../lucid/testdata/*.pt", "../lucid/testdata/cases/*/*.pt", "../scoresde/testdata/*.pth",
	} {
		m, _ := filepath.Glob(pat)
		paths = append(paths, m...)
	}
	if dir := fixtures.Dir(); dir != "" {
		m, _ := filepath.Glob(filepath.Join(dir, "lucidrains", "*", "*.pt"))
		paths = append(paths, m...)
		// diffusers folders, as the one file a conversion makes of them
		folders, _ := filepath.Glob(filepath.Join(dir, "diffusers", "*"))
		for _, d := range folders {
			m, err := FromDiffusersDir(d)
			if err != nil {
				t.Fatalf("fixture %s: %v", d, err)
			}
			p := filepath.Join(t.TempDir(), "m.safetensors")
			if err := m.Save(p, safetensors.F16); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, c := range hostiletest.Cases() {
		seeds = append(seeds, c.Data)
	}
	return seeds
}

// FuzzModel: bytes → load → validate → build the graph for a batch of 2 →
// one reference-backend call. Whatever the bytes, it must return (an error
// is fine), never panic, hang or allocate beyond the budget. config and sched,
// when not empty, replace a safetensors file's network config and schedule
// JSON, so the fuzzer also mutates them as text (a byte flip in a file's
// header mostly breaks the header before the config is ever read).
// runawayAfter is the guard against a runaway input (a hang, an allocation
// loop), not a speed target: the largest seed (a 2.4 MB fixture) takes well
// under a second natively, but 3.7 s was seen as js/wasm on a loaded 2-core
// machine, whose math and copies are several times slower.
var runawayAfter = map[bool]time.Duration{false: 5 * time.Second, true: 30 * time.Second}[runtime.GOARCH == "wasm"]

func FuzzModel(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, "", "")
		if sf, err := safetensors.Read(s); err == nil && sf.Metadata[KeyConfig] != "" {
			f.Add(s, sf.Metadata[KeyConfig], sf.Metadata[KeyScheduler]+" ")
		}
	}
	old := limits.SetBudget(fuzzBudget)
	f.Cleanup(func() { limits.SetBudget(old) })
	f.Fuzz(func(t *testing.T, data []byte, config, sched string) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > runawayAfter {
				t.Errorf("%d-byte input took %v", len(data), d)
			}
		}()
		m, err := loadParts(data, config, sched)
		if err != nil {
			return
		}
		s := m.InShape()
		if len(s) != 3 {
			t.Fatalf("loaded model without a sample shape: %v", s)
		}
		const b = 2
		if err := m.CheckRun(b, b, s[1], s[2]); err != nil {
			return
		}
		n, err := limits.Numel("x", append([]int{b}, s...))
		if err != nil {
			t.Fatalf("CheckRun passed a shape whose size is refused: %v", err)
		}
		var class []int
		if cond, classes := m.Conditional(); cond {
			class = []int{0, classes - 1}
		}
		_, _ = cpu.NewDenoiser(m).Denoise(tensor.From(make([]float32, n), append([]int{b}, s...)...), []float32{0.5, 500}, class)
	})
}

// loadParts is loadAny, with a safetensors file's config and schedule
// replaced when given.
func loadParts(data []byte, config, sched string) (*Model, error) {
	if config == "" && sched == "" {
		return loadAny(data)
	}
	f, err := safetensors.Read(data)
	if err != nil {
		return nil, err
	}
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	if config != "" {
		f.Metadata[KeyConfig] = config
	}
	if sched != "" {
		f.Metadata[KeyScheduler] = sched
	}
	return FromSafetensors(f)
}
