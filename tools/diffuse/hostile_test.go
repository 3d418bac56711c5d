package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/safetensors"
)

func shipped(t *testing.T, name string) string {
	p := filepath.Join("..", "..", "weights", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not present", p)
	}
	return p
}

// Every hostile parameter or file ends in exit code 1 and one line naming
// what was wrong, within seconds, never a panic (exit 2) or an OOM kill.
func TestCLIHostileInputs(t *testing.T) {
	mnist, toy := shipped(t, "mnist.safetensors"), shipped(t, "toy2d.safetensors")
	dir := t.TempDir()
	out := filepath.Join(dir, "o.npy")

	deep := filepath.Join(dir, "deep")
	os.Mkdir(deep, 0o755)
	chans, downs, ups := make([]int, 65), make([]string, 65), make([]string, 65)
	for i := range chans {
		chans[i], downs[i], ups[i] = 32, "DownBlock2D", "UpBlock2D"
	}
	cfg, _ := json.Marshal(map[string]any{"block_out_channels": chans, "down_block_types": downs, "up_block_types": ups})
	os.WriteFile(filepath.Join(deep, "config.json"), cfg, 0o644)
	safetensors.WriteFile(filepath.Join(deep, "diffusion_pytorch_model.safetensors"),
		[]safetensors.Entry{{Name: "conv_in.weight", Shape: []int{32, 3, 3, 3}, Data: make([]float32, 32*27), DType: "F16"}}, nil)

	zeroToy := filepath.Join(dir, "zero_toy.safetensors")
	safetensors.WriteFile(zeroToy, []safetensors.Entry{
		{Name: "fc1.weight", Shape: []int{0, 34}, DType: "F16"}, {Name: "fc1.bias", Shape: []int{0}, DType: "F16"},
		{Name: "out.weight", Shape: []int{2, 0}, DType: "F16"}, {Name: "out.bias", Shape: []int{2}, Data: make([]float32, 2), DType: "F16"},
	}, map[string]string{"config": `{"model_type":"toy2d_mlp","in_dim":2,"num_hidden_layers":1,"time_embedding":{"dim":32}}`})

	// The shipped toy model in the training script's format, to convert again.
	trainedToy := filepath.Join(dir, "trained_toy.safetensors")
	tf, err := safetensors.ReadFile(toy)
	if err != nil {
		t.Fatal(err)
	}
	var es []safetensors.Entry
	for i := range tf.Tensors {
		v, _ := tf.Tensors[i].Tensor()
		es = append(es, safetensors.Entry{Name: tf.Tensors[i].Name, Shape: v.Shape, Data: v.Data, DType: "F32"})
	}
	safetensors.WriteFile(trainedToy, es, map[string]string{"config": `{"model_type":"toy2d_mlp","in_dim":2,"num_hidden_layers":3,"time_embedding":{"dim":32}}`})

	hugeSched := filepath.Join(dir, "sched.json")
	os.WriteFile(hugeSched, []byte(`{"num_train_timesteps": 10000000000}`), 0o644)

	nanX, okT, x := filepath.Join(dir, "nan_x.npy"), filepath.Join(dir, "t.npy"), make([]float32, 784)
	x[5] = float32(math.NaN())
	npy.WriteFile(nanX, []int{1, 1, 28, 28}, x)
	npy.WriteFile(okT, []int{1}, []float32{10})
	okX := filepath.Join(dir, "x.npy")
	npy.WriteFile(okX, []int{1, 1, 28, 28}, make([]float32, 784))

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sample", "--weights", mnist, "--class", "3", "--n", "4611686018427387904", "--out-npy", out}, "--n"},
		{[]string{"sample", "--weights", mnist, "--class", "3", "--n", "1000000000000", "--out-npy", out}, "--n"},
		{[]string{"sample", "--weights", mnist, "--class", "3", "--size", "3037000500x3037000500", "--out-npy", out}, "at most 4096"},
		{[]string{"sample", "--weights", mnist, "--class", "3", "--size", "4294967296x4294967296", "--out-npy", out}, "at most 4096"},
		{[]string{"sample", "--weights", mnist, "--class", "3", "--size", "4096", "--out-npy", out}, "budget"},
		{[]string{"sample", "--weights", mnist, "--class", "3", "--eta", "-1", "--out-npy", out}, "--eta"},
		{[]string{"sample", "--weights", mnist, "--class", "3", "--eta", "1e10", "--out-npy", out}, "--eta"},
		{[]string{"sample", "--weights", mnist, "--class", "3", "--sampler", "euler", "--end-time", "NaN", "--out-npy", out}, "--end-time"},
		{[]string{"sample", "--weights", mnist, "--class", "3", "--guidance", "Inf", "--out-npy", out}, "--guidance"},
		{[]string{"sample", "--weights", mnist, "--class", "3", "--steps", "100000000", "--out-npy", out}, "--steps"},
		{[]string{"sample", "--weights", toy, "--n", "4096", "--batch", "4096", "--mem-budget", "1MiB", "--out-npy", out}, "budget"},
		{[]string{"sample", "--weights", toy, "--mem-budget", "lots", "--out-npy", out}, "mem-budget"},
		{[]string{"likelihood", "--weights", mnist, "--x", okX, "--class", "3", "--probes", "1000000000"}, "--probes"},
		{[]string{"likelihood", "--weights", mnist, "--x", okX, "--class", "3", "--rtol", "NaN"}, "--rtol"},
		{[]string{"eval", "--weights", mnist, "--x", nanX, "--t", okT, "-o", out}, "--x"},
		{[]string{"eval", "--weights", deep, "--x", okX, "--t", okT, "-o", out}, "block_out_channels"},
		{[]string{"convert", "--from", "diffusers", deep, "-o", filepath.Join(dir, "d.safetensors")}, "block_out_channels"},
		{[]string{"convert", "--from", "toy2d", zeroToy, "-o", filepath.Join(dir, "z.safetensors")}, "every dimension must be positive"},
		{[]string{"convert", "--from", "toy2d", trainedToy, "--scheduler", hugeSched, "-o", filepath.Join(dir, "s.safetensors")}, "num_train_timesteps"},
		{[]string{"convert", "--from", "scoresde", "/dev/zero", "-o", filepath.Join(dir, "s.safetensors")}, "not a regular file"},
	} {
		args := c.args
		start := time.Now()
		_, stderr, code := runMain(t, args...)
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%v: took %v", args, d)
		}
		if code != 1 {
			t.Errorf("%v: exit code %d, want 1; stderr %q", args, code, stderr)
		}
		if c.want == "mem-budget" { // a bad flag value also prints the usage
			stderr = stderr[strings.LastIndex(strings.TrimSpace(stderr), "\n")+1:]
		}
		if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: want one line mentioning %q, got %q", args, c.want, stderr)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "2GiB": 2 << 30, "1.5G": 3 << 29, "1000": 1000, "2GB": 2e9} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1GiB", "NaN", "1e30GiB", "lots"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
