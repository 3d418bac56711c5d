package lucid

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/torchpt"
)

// unetParams reads the EMA Unet weights of a Trainer checkpoint made by
// testdata/make.py.
func unetParams(t *testing.T, path string) map[string]*tensor.Tensor {
	t.Helper()
	v, err := torchpt.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sd, _, err := torchpt.StateDict(v, "ema.ema_model.model.")
	if err != nil {
		t.Fatal(err)
	}
	p := map[string]*tensor.Tensor{}
	for k, tt := range sd {
		if p[k], err = tt.ToTensor(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func copyParams(p map[string]*tensor.Tensor) map[string]*tensor.Tensor {
	q := make(map[string]*tensor.Tensor, len(p))
	for k, v := range p {
		q[k] = v
	}
	return q
}

const selfCond = "testdata/cases/selfcond_learnedsin/model-0.pt"

func TestInferConfigVariants(t *testing.T) {
	p := unetParams(t, selfCond)
	c, err := InferConfig(p, Overrides{ImageSize: [2]int{8, 12}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(c)
	want := `{"dim":8,"init_dim":8,"out_dim":3,"dim_mults":[1,2],"channels":3,"self_condition":true,"learned_variance":false,` +
		`"learned_sinusoidal_cond":true,"learned_sinusoidal_dim":10,"sinusoidal_pos_emb_theta":10000,` +
		`"attn_heads":[2,3],"attn_dim_head":[8,4],"full_attn":[true,false],"image_size":[8,12]}`
	if string(got) != want {
		t.Errorf("inferred\n%s\nwant\n%s", got, want)
	}
	if _, err := Build(c, p, 2, 8, 12); err != nil {
		t.Fatal(err)
	}
	// Other sizes that are multiples of the down factor build too.
	if _, err := Build(c, p, 1, 16, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(c, p, 1, 9, 12); err == nil {
		t.Error("built for a height that is not a multiple of 2")
	}
}

// Input and output widths of 2 fit "2 channels" and "1 channel with
// self-conditioning and learned variance": refused unless an override settles it.
func TestInferAmbiguousChannels(t *testing.T) {
	p := copyParams(unetParams(t, selfCond))
	p["init_conv.weight"] = tensor.New(8, 2, 7, 7)
	p["final_conv.weight"] = tensor.New(2, 8, 1, 1)
	p["final_conv.bias"] = tensor.New(2)
	_, err := InferConfig(p, Overrides{ImageSize: [2]int{8, 8}})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "channels" || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("got %v, want an ambiguous-channels ConfigError", err)
	}
	t.Logf("refused with: %v", err)
	two, yes := 2, true
	c, err := InferConfig(p, Overrides{ImageSize: [2]int{8, 8}, Channels: &two})
	if err != nil || c.Channels != 2 || c.SelfCondition || c.LearnedVariance {
		t.Errorf("--channels 2: %+v, %v", c, err)
	}
	c, err = InferConfig(p, Overrides{ImageSize: [2]int{8, 8}, SelfCondition: &yes})
	if err != nil || c.Channels != 1 || !c.SelfCondition || !c.LearnedVariance {
		t.Errorf("--self-condition true: %+v, %v", c, err)
	}
	three := 3
	if _, err := InferConfig(p, Overrides{ImageSize: [2]int{8, 8}, Channels: &three}); !errors.As(err, &ce) {
		t.Errorf("--channels 3 with widths 2 -> 2: got %v", err)
	}
}

func TestInferRefusals(t *testing.T) {
	base := unetParams(t, selfCond)
	cases := map[string]struct {
		edit  func(p map[string]*tensor.Tensor)
		o     Overrides
		field string
	}{
		"1.x layout":     {func(p map[string]*tensor.Tensor) { p["downs.0.2.fn.fn.to_qkv.weight"] = tensor.New(1) }, Overrides{ImageSize: [2]int{8, 8}}, "version"},
		"no image size":  {func(map[string]*tensor.Tensor) {}, Overrides{}, "image_size"},
		"odd image size": {func(map[string]*tensor.Tensor) {}, Overrides{ImageSize: [2]int{8, 7}}, "image_size"},
		"not a Unet": {func(p map[string]*tensor.Tensor) {
			for k := range p {
				delete(p, k)
			}
			p["conv1.weight"] = tensor.New(1, 1, 3, 3)
		}, Overrides{ImageSize: [2]int{8, 8}}, "weights"},
		"no attention output": {func(p map[string]*tensor.Tensor) { delete(p, "downs.1.2.to_out.1.g") }, Overrides{ImageSize: [2]int{8, 8}}, "full_attn"},
		"no memory":           {func(p map[string]*tensor.Tensor) { delete(p, "mid_attn.mem_kv") }, Overrides{ImageSize: [2]int{8, 8}}, "attn_heads"},
	}
	for name, c := range cases {
		p := copyParams(base)
		c.edit(p)
		_, err := InferConfig(p, c.o)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%s: got %v, want a ConfigError on %s", name, err, c.field)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", name, err)
		}
	}
}

func TestBuildChecksWeights(t *testing.T) {
	base := unetParams(t, selfCond)
	c, err := InferConfig(base, Overrides{ImageSize: [2]int{8, 8}})
	if err != nil {
		t.Fatal(err)
	}
	p := copyParams(base)
	delete(p, "ups.0.1.block2.norm.g")
	var me *graph.MissingWeightError
	if _, err := Build(c, p, 1, 8, 8); !errors.As(err, &me) {
		t.Errorf("missing weight: got %v", err)
	}
	p = copyParams(base)
	p["mid_attn.extra"] = tensor.New(3)
	var ue *graph.UnusedWeightError
	if _, err := Build(c, p, 1, 8, 8); !errors.As(err, &ue) {
		t.Errorf("extra weight: got %v", err)
	}
	p = copyParams(base)
	p["downs.0.2.mem_kv"] = tensor.New(2, 2, 8, 4) // full attention keeps [2, heads, mem, dim_head]
	var se *graph.ShapeError
	if _, err := Build(c, p, 1, 8, 8); !errors.As(err, &se) {
		t.Errorf("transposed memory: got %v", err)
	}
}

// alphasCumprod of the library's sigmoid schedule (start -3, end 3, tau 1;
// Jabri et al. 2022, fig. 8), rounded to float32 as the buffers are.
func sigmoidCumprod(T int) []float64 {
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	vs, ve := sig(-3), sig(3)
	ac := make([]float64, T+1)
	for i := range ac {
		ac[i] = (-sig(float64(i)/float64(T)*6-3) + ve) / (ve - vs)
	}
	out := make([]float64, T)
	prod := 1.0
	for i := 0; i < T; i++ {
		prod *= 1 - math.Min(1-ac[i+1]/ac[i], 0.999)
		out[i] = float64(float32(prod))
	}
	return out
}

func TestInferObjective(t *testing.T) {
	ac := sigmoidCumprod(1000)
	for _, obj := range []string{"pred_noise", "pred_x0", "pred_v"} {
		for _, gamma := range []float64{math.Inf(1), 5} {
			lw := make([]float64, len(ac))
			for i, a := range ac {
				snr := a / (1 - a)
				clipped := math.Min(snr, gamma)
				switch obj {
				case "pred_noise":
					lw[i] = clipped / snr
				case "pred_x0":
					lw[i] = clipped
				case "pred_v":
					lw[i] = clipped / (snr + 1)
				}
				lw[i] = float64(float32(lw[i]))
			}
			got, err := InferObjective(ac, lw)
			if err != nil || got != obj {
				t.Errorf("%s, min-SNR gamma %v: got %q, %v", obj, gamma, got, err)
			}
		}
	}
	// 1.x p2 loss weights ((k + snr)^-gamma) fit no objective.
	lw := make([]float64, len(ac))
	for i, a := range ac {
		lw[i] = math.Pow(1+a/(1-a), -0.5)
	}
	var oe *ObjectiveError
	if _, err := InferObjective(ac, lw); !errors.As(err, &oe) {
		t.Errorf("p2 weights: got %v, want an ObjectiveError", err)
	}
	if _, err := InferObjective(ac, nil); !errors.As(err, &oe) {
		t.Errorf("no loss_weight: got %v", err)
	}
}

// The stored schedule parses as a diffusers DDIM config, and its betas give
// back the checkpoint's alphas_cumprod.
func TestScheduleMetadata(t *testing.T) {
	ac := sigmoidCumprod(1000)
	betas := make([]float64, len(ac))
	prev := 1.0
	for i, a := range ac {
		betas[i] = float64(float32(1 - a/prev))
		prev = a
	}
	raw, err := Schedule(betas, ac, "pred_v", "test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := schedule.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.PredictionType != "v_prediction" || !c.ClipSampleOn() || c.ClipSampleRange != 1 || c.TimestepSpacing != "trailing" || !c.AlphaToOne() {
		t.Errorf("config %+v", c)
	}
	prod := 1.0
	for i, b := range c.TrainedBetas {
		prod *= 1 - b
		if math.Abs(prod-ac[i]) > 1e-12*ac[i] {
			t.Fatalf("alphas_cumprod[%d]: %v from the stored betas, %v in the checkpoint", i, prod, ac[i])
		}
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	if dr, _ := json.Marshal(m["data_range"]); string(dr) != "[-1,1]" {
		t.Errorf("data_range %s", dr)
	}
	if m["use_clipped_model_output"] != true {
		t.Errorf("use_clipped_model_output %v, want true (ddim_sample re-derives the noise from the clipped x0)", m["use_clipped_model_output"])
	}
	if _, err := Schedule(betas, ac, "pred_eps", "test"); err == nil {
		t.Error("accepted an unknown objective")
	}
}

func TestTimeShift(t *testing.T) {
	// exp(-ln 10000 · i/(half - shift)) = exp(-ln θ · i/(half - 1)).
	for _, theta := range []float64{10000, 1000, 50} {
		dim := 16
		half := float64(dim / 2)
		s := timeShift(dim, theta)
		for i := 0.0; i < half; i++ {
			a := math.Log(10000) * i / (half - s)
			b := math.Log(theta) * i / (half - 1)
			if math.Abs(a-b) > 1e-12 {
				t.Errorf("theta %v, i %v: %v vs %v", theta, i, a, b)
			}
		}
	}
}
