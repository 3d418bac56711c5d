package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/diffuse-web/diffuse/core/fixtures"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/lucid"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/npy"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/torchpt"
)

const lucidTestdata = "../../core/lucid/testdata"

// Tolerances for lucidrains cases, as a fraction of max|y|. f32 is the
// issue's bar (measured: 1.3e-6 on the library's lucid_small, at most 3.2e-6
// on the local cases). The f16 file measured 1.5e-3 on lucid_small, and on
// the local cases 8.7e-4 (learned_variance), 3.7e-3 (selfcond_learnedsin,
// where f16 learned Fourier frequencies move sin(2π·t·w) at t up to 499) and
// 4.1e-3 (bare_state_dict, a 4-channel net); the bound is the one the
// diffusers conformance test uses.
const (
	lucidTolF32 = 1e-4
	lucidTolF16 = 5e-3
)

// lucidCases lists every case folder (a model-*.pt Trainer checkpoint,
// unet_kwargs.json, x.npy, t.npy, y.npy) under $FIXTURES_DIR/lucidrains,
// made with the library itself, and under core/lucid/testdata/cases, made by
// core/lucid/testdata/make.py for the variants the fixtures lack.
func lucidCases(t *testing.T) []string {
	var found []string
	fix := fixtures.Dir()
	if _, err := os.Stat(fix); err == nil {
		found, _ = filepath.Glob(filepath.Join(fix, "lucidrains", "*", "unet_kwargs.json"))
		if len(found) == 0 {
			t.Errorf("no lucidrains cases under %s", fix)
		}
	} else {
		t.Logf("fixtures not found at %s (set FIXTURES_DIR): running the local cases only", fix)
	}
	local, _ := filepath.Glob(filepath.Join(lucidTestdata, "cases", "*", "unet_kwargs.json"))
	if len(local) == 0 {
		t.Error("no local lucidrains cases")
	}
	var dirs []string
	for _, p := range append(found, local...) {
		dirs = append(dirs, filepath.Dir(p))
	}
	return dirs
}

// TestLucidConformance converts every case (EMA and online weights, f32 and
// f16), checks the inferred Unet arguments and objective against
// unet_kwargs.json, and compares eval with the library's output.
func TestLucidConformance(t *testing.T) {
	for _, dir := range lucidCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var kw map[string]any
			b, err := os.ReadFile(filepath.Join(dir, "unet_kwargs.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &kw); err != nil {
				t.Fatal(err)
			}
			ckpts, _ := filepath.Glob(filepath.Join(dir, "model-*.pt"))
			if len(ckpts) != 1 {
				t.Fatalf("want one model-*.pt in %s, found %v", dir, ckpts)
			}
			want, err := npy.ReadFile(filepath.Join(dir, "y.npy"))
			if err != nil {
				t.Fatal(err)
			}
			size, err := kwImageSize(kw)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"--from", "lucidrains", ckpts[0], "--image-size", size}
			if th, ok := kw["sinusoidal_pos_emb_theta"].(float64); ok { // not in the weights
				args = append(args, "--theta", fmt.Sprint(th))
			}
			wantCfg := expectedConfig(t, kw)
			for _, run := range []struct {
				name  string
				extra []string
				tol   float64
			}{
				{"ema-f32", []string{"--dtype", "f32"}, lucidTolF32},
				{"online-f32", []string{"--dtype", "f32", "--online"}, lucidTolF32},
				{"ema-f16", nil, lucidTolF16},
			} {
				out := filepath.Join(t.TempDir(), "m.safetensors")
				if err := runConvert(append(append(append([]string(nil), args...), run.extra...), "-o", out)); err != nil {
					t.Fatalf("%s: %v", run.name, err)
				}
				m, err := model.Load(out)
				if err != nil {
					t.Fatalf("%s: %v", run.name, err)
				}
				if m.Arch != model.ArchLucidUnet {
					t.Fatalf("arch %q", m.Arch)
				}
				got, _ := lucid.ParseConfig(m.Config)
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(wantCfg)
				if string(gj) != string(wj) {
					t.Errorf("%s: inferred\n%s\nunet_kwargs.json says\n%s", run.name, gj, wj)
				}
				checkLucidSchedule(t, m, kw)
				// The f32 EMA weights also on the fast backend.
				backends := []string{backendReference}
				if run.name == "ema-f32" {
					backends = append(backends, backendFast)
				}
				for _, backend := range backends {
					y, err := evalFiles(m, filepath.Join(dir, "x.npy"), filepath.Join(dir, "t.npy"), "", backend)
					if err != nil {
						t.Fatalf("%s %s: %v", run.name, backend, err)
					}
					// With learned variance the model output is the first half of the
					// Unet's channels (LearnedGaussianDiffusion's chunk(2, dim=1)).
					ref := want.Float32()
					if c := y.Shape[1]; want.Shape[1] != c {
						ref = firstChannels(ref, want.Shape, c)
					}
					checkClose(t, run.name+" "+backend, y.Data, ref, run.tol)
				}
			}
		})
	}
}

func kwImageSize(kw map[string]any) (string, error) {
	switch s := kw["image_size"].(type) {
	case float64:
		return fmt.Sprint(int(s)), nil
	case []any:
		if len(s) == 2 {
			return fmt.Sprintf("%vx%v", s[0], s[1]), nil
		}
	}
	return "", fmt.Errorf("unet_kwargs.json has no usable image_size: %v", kw["image_size"])
}

// expectedConfig applies the defaults of the library's Unet constructor
// (2.x: dim_mults (1,2,4,8), channels 3, init_dim = dim, out_dim = channels
// (·2 with learned_variance), attn_heads 4, attn_dim_head 32, full attention
// on the innermost stage only, learned_sinusoidal_dim 16, theta 10000) to the
// arguments in unet_kwargs.json.
func expectedConfig(t *testing.T, kw map[string]any) *lucid.Config {
	num := func(k string, d int) int {
		if v, ok := kw[k].(float64); ok {
			return int(v)
		}
		return d
	}
	flag := func(k string) bool { v, _ := kw[k].(bool); return v }
	c := &lucid.Config{Dim: num("dim", 0), Channels: num("channels", 3), SelfCondition: flag("self_condition"),
		LearnedVariance: flag("learned_variance"), SinusoidalPosEmbTheta: 10000, LearnedSinusoidalDim: num("learned_sinusoidal_dim", 16),
		LearnedSinusoidalCond: flag("learned_sinusoidal_cond") || flag("random_fourier_features")}
	if th, ok := kw["sinusoidal_pos_emb_theta"].(float64); ok {
		c.SinusoidalPosEmbTheta = th
	}
	c.InitDim = num("init_dim", c.Dim)
	c.OutDim = c.Channels
	if c.LearnedVariance {
		c.OutDim *= 2
	}
	c.OutDim = num("out_dim", c.OutDim)
	c.DimMults = []int{1, 2, 4, 8}
	if v, ok := kw["dim_mults"].([]any); ok {
		c.DimMults = nil
		for _, m := range v {
			c.DimMults = append(c.DimMults, int(m.(float64)))
		}
	}
	n := len(c.DimMults)
	perStage := func(k string, d int) []int { // cast_tuple
		out := make([]int, n)
		switch v := kw[k].(type) {
		case []any:
			for i := range out {
				out[i] = int(v[i].(float64))
			}
		case float64:
			for i := range out {
				out[i] = int(v)
			}
		default:
			for i := range out {
				out[i] = d
			}
		}
		return out
	}
	c.AttnHeads, c.AttnDimHead = perStage("attn_heads", 4), perStage("attn_dim_head", 32)
	c.FullAttn = make([]bool, n)
	switch v := kw["full_attn"].(type) {
	case []any:
		for i := range c.FullAttn {
			c.FullAttn[i] = v[i].(bool)
		}
	case bool:
		for i := range c.FullAttn {
			c.FullAttn[i] = v
		}
	}
	if !anyTrue(c.FullAttn) && kw["full_attn"] == nil {
		c.FullAttn[n-1] = true
	}
	size, _ := kwImageSize(kw)
	h, w, err := parseImageSize(size)
	if err != nil {
		t.Fatal(err)
	}
	c.ImageSize = [2]int{h, w}
	return c
}

func anyTrue(b []bool) bool {
	for _, v := range b {
		if v {
			return true
		}
	}
	return false
}

// checkLucidSchedule: the stored schedule is a valid diffusers DDIM config
// with the objective of unet_kwargs.json (GaussianDiffusion's default pred_v).
func checkLucidSchedule(t *testing.T, m *model.Model, kw map[string]any) {
	t.Helper()
	c, err := schedule.ParseConfig(m.Scheduler)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	obj, _ := kw["objective"].(string)
	if obj == "" {
		obj = "pred_v"
	}
	want := map[string]string{"pred_noise": "epsilon", "pred_x0": "sample", "pred_v": "v_prediction"}[obj]
	if c.PredictionType != want {
		t.Errorf("prediction_type %q, objective %s means %q", c.PredictionType, obj, want)
	}
	if T, ok := kw["timesteps"].(float64); ok && c.NumTrainTimesteps != int(T) {
		t.Errorf("num_train_timesteps %d, want %v", c.NumTrainTimesteps, T)
	}
	if !c.ClipSampleOn() || c.ClipSampleRange != 1 {
		t.Error("x0 clipping to [-1, 1] is not on")
	}
}

// firstChannels keeps channels [0, c) of a [B,C,...] array.
func firstChannels(a []float32, shape []int, c int) []float32 {
	per := 1
	for _, d := range shape[2:] {
		per *= d
	}
	var out []float32
	for b := 0; b < shape[0]; b++ {
		out = append(out, a[b*shape[1]*per:(b*shape[1]+c)*per]...)
	}
	return out
}

// A Trainer-shaped checkpoint whose pickle would call os.system (made by
// core/lucid/testdata/make.py) is refused with a typed error, and nothing runs.
func TestConvertLucidRefusesHostilePickle(t *testing.T) {
	const marker = "/tmp/diffuse-pwned-lucid"
	os.Remove(marker)
	err := runConvert([]string{"--from", "lucidrains", filepath.Join(lucidTestdata, "hostile.pt"), "--image-size", "8",
		"-o", filepath.Join(t.TempDir(), "x.safetensors")})
	var te *torchpt.Error
	if !errors.As(err, &te) || te.Kind != torchpt.ErrForbiddenGlobal {
		t.Fatalf("got %v, want a torchpt ErrForbiddenGlobal error", err)
	}
	t.Logf("refused with: %v", err)
	if _, statErr := os.Stat(marker); statErr == nil {
		t.Fatal("the hostile payload ran")
	}
}

func TestConvertLucidFlags(t *testing.T) {
	ckpt := filepath.Join(lucidTestdata, "cases", "selfcond_learnedsin", "model-0.pt")
	out := filepath.Join(t.TempDir(), "m.safetensors")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--image-size is required"},
		{[]string{"--image-size", "8x"}, "--image-size"},
		{[]string{"--image-size", "8", "--ema", "--online"}, "exclude each other"},
		{[]string{"--image-size", "8", "--self-condition", "maybe"}, "--self-condition"},
		{[]string{"--image-size", "8", "--objective", "pred_eps"}, "--objective"},
		{[]string{"--image-size", "7"}, "not a multiple of 2"},
		{[]string{"--image-size", "8", "--self-condition", "false"}, "channels"},
	} {
		err := runConvert(append([]string{"--from", "lucidrains", ckpt, "-o", out}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error mentioning %q", c.args, err, c.want)
		}
	}
	// An explicit objective overrides the one read off loss_weight.
	if err := runConvert([]string{"--from", "lucidrains", ckpt, "-o", out, "--image-size", "8", "--objective", "pred_x0"}); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.InShape(); len(s) != 3 || s[0] != 3 || s[1] != 8 || s[2] != 8 {
		t.Errorf("InShape %v", s)
	}
	if c, _ := schedule.ParseConfig(m.Scheduler); c.PredictionType != "sample" {
		t.Errorf("prediction_type %q after --objective pred_x0", c.PredictionType)
	}
}

func TestConvertHelpDocumentsLucidFlags(t *testing.T) {
	_, stderr, _ := runMain(t, "convert", "--help")
	for _, f := range []string{"-ema", "-online", "-image-size", "-channels", "-self-condition", "-theta", "-objective"} {
		if !strings.Contains(stderr, "  "+f+" ") && !strings.Contains(stderr, "  "+f+"\n") {
			t.Errorf("convert --help does not document %s", f)
		}
	}
	if !strings.Contains(stderr, "lucidrains") {
		t.Error("convert --help does not mention --from lucidrains")
	}
}
