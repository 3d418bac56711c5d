package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/engine"
	"github.com/diffuse-web/diffuse/core/model"
)

// dropped reads the files under root as the page hands them to the worker:
// model.Files keyed by their path below root's parent, as a dropped
// folder's webkitRelativePath ("cifar_like/config.json").
func dropped(t *testing.T, root string, skip func(string) bool) model.Files {
	t.Helper()
	files := model.Files{}
	base := filepath.Dir(root)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (skip != nil && skip(p)) {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestImportMatchesConvert: the page's import (engine.Import over the files
// in memory) writes byte for byte the file `diffuse convert` writes, for
// every checkpoint kind, and a file of ours comes back as it is.
func TestImportMatchesConvert(t *testing.T) {
	fix := fixturesDir(t)
	npys := func(p string) bool {
		return strings.HasSuffix(p, ".npy") || strings.HasSuffix(p, ".json") && filepath.Base(p) == "unet_kwargs.json"
	}
	cases := []struct {
		name  string
		files model.Files
		opt   engine.ImportOptions
		args  []string // convert's, the input last
	}{
		{"diffusers cifar_like", dropped(t, filepath.Join(fix, "diffusers", "cifar_like"), npys), engine.ImportOptions{},
			[]string{"--from", "diffusers", filepath.Join(fix, "diffusers", "cifar_like")}},
		{"diffusers mnist_cond", dropped(t, filepath.Join(fix, "diffusers", "mnist_cond"), npys), engine.ImportOptions{},
			[]string{"--from", "diffusers", filepath.Join(fix, "diffusers", "mnist_cond")}},
		{"diffusers .bin", dropped(t, filepath.Join("..", "..", "core", "model", "testdata", "diffusers_bin"), nil), engine.ImportOptions{},
			[]string{"--from", "diffusers", filepath.Join("..", "..", "core", "model", "testdata", "diffusers_bin")}},
		{"lucidrains EMA", model.Files{"model-1.pt": mustRead(t, filepath.Join(fix, "lucidrains", "lucid_small", "model-1.pt"))},
			engine.ImportOptions{From: "lucidrains", Size: 28},
			[]string{"--from", "lucidrains", "--image-size", "28", filepath.Join(fix, "lucidrains", "lucid_small", "model-1.pt")}},
		{"lucidrains online", model.Files{"model-1.pt": mustRead(t, filepath.Join(fix, "lucidrains", "lucid_small", "model-1.pt"))},
			engine.ImportOptions{From: "lucidrains", Size: 28, Online: true},
			[]string{"--from", "lucidrains", "--image-size", "28", "--online", filepath.Join(fix, "lucidrains", "lucid_small", "model-1.pt")}},
		{"scoresde", model.Files{"ckpt.pth": mustRead(t, filepath.Join(scoreTestdata, "tiny_scorenet.pth"))},
			engine.ImportOptions{From: "scoresde", Size: 28, Sigma: 25},
			[]string{"--from", "scoresde", "--size", "28", "--sigma", "25", filepath.Join(scoreTestdata, "tiny_scorenet.pth")}},
		{"toy2d", model.Files{"toy.safetensors": mustRead(t, filepath.Join("..", "..", "core", "toy2d", "testdata", "toy.safetensors"))},
			engine.ImportOptions{},
			[]string{"--from", "toy2d", filepath.Join("..", "..", "core", "toy2d", "testdata", "toy.safetensors")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m.safetensors")
			if err := runConvert(append([]string{"-o", out}, c.args...)); err != nil {
				t.Fatal(err)
			}
			want := mustRead(t, out)
			got, converted, l, err := engine.Import(c.files, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !converted || !bytes.Equal(got, want) {
				t.Fatalf("import: %d bytes (converted %v), convert wrote %d; they differ", len(got), converted, len(want))
			}
			if l.Info.Bytes != len(want) || l.Info.Arch == "" {
				t.Fatalf("info %+v", l.Info)
			}
			// The converted file, dropped again, is taken as it is.
			again, converted, l2, err := engine.Import(model.Files{"m.safetensors": got}, engine.ImportOptions{})
			if err != nil || converted || !bytes.Equal(again, got) || l2.Info.SHA256 != l.Info.SHA256 {
				t.Fatalf("re-import: converted %v, err %v", converted, err)
			}
		})
	}
}

// A pipeline folder (unet/ beside scheduler/) takes scheduler/'s settings,
// as convert does for a folder with ../scheduler/.
func TestImportPipelineScheduler(t *testing.T) {
	fix := fixturesDir(t)
	files := model.Files{}
	for n, b := range dropped(t, filepath.Join(fix, "diffusers", "mnist_cond"), func(p string) bool { return strings.HasSuffix(p, ".npy") }) {
		files["pipe/unet/"+filepath.Base(n)] = b
	}
	sched := `{"_class_name":"DDPMScheduler","num_train_timesteps":500,"beta_schedule":"linear","beta_start":0.0001,"beta_end":0.02,"prediction_type":"v_prediction"}`
	files["pipe/scheduler/scheduler_config.json"] = []byte(sched)
	_, _, l, err := engine.Import(files, engine.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Info.Prediction != "v_prediction" || !strings.Contains(l.Info.Schedule, "500 steps") || l.Info.DefaultSchedule {
		t.Fatalf("the scheduler/ settings were not taken: %+v", l.Info)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
