package torchpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"github.com/diffuse-web/diffuse/core/fixtures"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

type expectedTensor struct {
	DType      string `json:"dtype"`
	Shape      []int  `json:"shape"`
	Stride     []int  `json:"stride"`
	Offset     int    `json:"offset"`
	Contiguous bool   `json:"contiguous"`
	Parameter  bool   `json:"parameter"`
	Values     []any  `json:"values"`
}

func loadExpected(t *testing.T) map[string]map[string]expectedTensor {
	var doc struct {
		Files map[string]map[string]expectedTensor `json:"files"`
	}
	dec := json.NewDecoder(bytes.NewReader(readTestdata(t, "expected.json")))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.Files
}

// numStr gives a JSON value (json.Number or "inf"/"-inf"/"nan") as text.
func numStr(v any) string {
	switch x := v.(type) {
	case json.Number:
		return x.String()
	case string:
		return x
	}
	return "?"
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAgainstTorch checks every tensor of the generated fixtures against
// what torch reported when it wrote them (tools/train/make_pt_fixtures.py).
func TestAgainstTorch(t *testing.T) {
	for file, tensors := range loadExpected(t) {
		t.Run(file, func(t *testing.T) {
			root, err := Load(readTestdata(t, file))
			if err != nil {
				t.Fatal(err)
			}
			got, names, err := StateDict(root, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tensors) || len(names) != len(tensors) {
				t.Fatalf("%d tensors (%d names), torch saved %d", len(got), len(names), len(tensors))
			}
			for name, want := range tensors {
				tt := got[name]
				if tt == nil {
					t.Errorf("%s missing", name)
					continue
				}
				if tt.DType != want.DType || !sameShape(tt.Shape, want.Shape) || !sameShape(tt.Stride, want.Stride) ||
					tt.Offset != want.Offset || tt.Contiguous() != want.Contiguous || tt.Parameter != want.Parameter {
					t.Errorf("%s: got %s %v stride %v off %d contig %v param %v; torch: %s %v stride %v off %d contig %v param %v",
						name, tt.DType, tt.Shape, tt.Stride, tt.Offset, tt.Contiguous(), tt.Parameter,
						want.DType, want.Shape, want.Stride, want.Offset, want.Contiguous, want.Parameter)
					continue
				}
				if isIntDType(tt.DType) {
					ints, err := tt.Int64()
					if err != nil || len(ints) != len(want.Values) {
						t.Fatalf("%s: Int64: %v (%d values)", name, err, len(ints))
					}
					for i, w := range want.Values {
						n, err := strconv.ParseInt(numStr(w), 10, 64)
						if err != nil || n != ints[i] {
							t.Errorf("%s[%d] = %d, torch %s", name, i, ints[i], w)
						}
					}
				} else {
					if _, err := tt.Int64(); err == nil {
						t.Errorf("%s: Int64 of a float tensor should fail", name)
					}
				}
				f64, err := tt.Float64()
				if err != nil || len(f64) != len(want.Values) {
					t.Fatalf("%s: Float64: %v (%d values, want %d)", name, err, len(f64), len(want.Values))
				}
				f32, err := tt.Float32()
				if err != nil || len(f32) != len(want.Values) {
					t.Fatalf("%s: Float32: %v", name, err)
				}
				for i, w := range want.Values {
					var ref float64
					switch numStr(w) {
					case "inf":
						ref = math.Inf(1)
					case "-inf":
						ref = math.Inf(-1)
					case "nan":
						ref = math.NaN()
					default:
						ref, _ = strconv.ParseFloat(numStr(w), 64)
					}
					if !(f64[i] == ref || (math.IsNaN(ref) && math.IsNaN(f64[i]))) || math.Signbit(f64[i]) != math.Signbit(ref) {
						t.Errorf("%s[%d] = %v, torch %v", name, i, f64[i], ref)
					}
					if r32 := float32(ref); !(f32[i] == r32 || (math.IsNaN(ref) && math.IsNaN(float64(f32[i])))) {
						t.Errorf("%s[%d] float32 = %v, torch %v", name, i, f32[i], r32)
					}
				}
			}
		})
	}
}

func TestMixedScalars(t *testing.T) {
	for _, file := range []string{"mixed.pt", "mixed_proto4.pt"} {
		c, err := Open(readTestdata(t, file), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Archive != file[:len(file)-3] || c.ByteOrder != "little" {
			t.Errorf("archive %q byteorder %q", c.Archive, c.ByteOrder)
		}
		d, ok := c.Root.(*OrderedDict)
		if !ok || d.Ordered {
			t.Fatalf("root is %T (ordered %v), want a plain dict", c.Root, ok && d.Ordered)
		}
		want := map[string]any{"step": int64(1234), "big": int64(1) << 40, "neg": int64(-7), "huge_neg": int64(math.MinInt64),
			"lr": 1e-4, "name": "tiny \u00e9\u4e2d", "flag": true, "off": false, "nothing": nil}
		for k, w := range want {
			v, ok := d.Get(k)
			if !ok || v != w {
				t.Errorf("%s: %s = %#v, want %#v", file, k, v, w)
			}
		}
		if v, _ := d.Get("raw"); !bytes.Equal(v.([]byte), []byte("\x00\x01bytes\xff")) {
			t.Errorf("raw = %q", v)
		}
		l, _ := d.Get("list")
		if ll, ok := l.([]any); !ok || len(ll) != 4 || ll[0] != int64(1) || ll[1] != 2.5 || ll[2] != "x" {
			t.Errorf("list = %#v", l)
		} else if inner, ok := ll[3].([]any); !ok || len(inner) != 2 || inner[1] != int64(4) {
			t.Errorf("inner list = %#v", ll[3])
		}
		tu, _ := d.Get("tuple")
		if tt, ok := tu.(Tuple); !ok || len(tt) != 2 || tt[0] != 0.9 || tt[1] != 0.999 {
			t.Errorf("tuple = %#v", tu)
		}
		n, _ := d.Get("nested")
		nd := n.(*OrderedDict)
		if v, ok := nd.GetKey(int64(3)); !ok || v != "int key" {
			t.Errorf("nested[3] = %#v", v)
		}
		if v, ok := nd.GetKey(3.0); !ok || v != "int key" { // Python: 3.0 == 3
			t.Errorf("nested[3.0] = %#v", v)
		}
		sdv, _ := d.Get("state_dict")
		sd := sdv.(*OrderedDict)
		if !sd.Ordered || sd.Len() != 19 || sd.StringKeys()[0] != "f32" {
			t.Errorf("state_dict: ordered %v len %d", sd.Ordered, sd.Len())
		}
		// shared storage: the views alias one Storage
		a, _ := sd.Get("shared")
		b, _ := sd.Get("shared_slice")
		if a.(*Tensor).Storage != b.(*Tensor).Storage {
			t.Error("shared and shared_slice should share a Storage")
		}
		p, _ := sd.Get("param")
		if pt := p.(*Tensor); !pt.Parameter || !pt.RequiresGrad {
			t.Errorf("param: Parameter %v RequiresGrad %v", pt.Parameter, pt.RequiresGrad)
		}
		// conversion into the core tensor type
		f, _ := sd.Get("transposed")
		ct, err := f.(*Tensor).ToTensor()
		if err != nil || !sameShape(ct.Shape, []int{4, 3}) || ct.Data[1] != 0 || ct.Data[3] != -0.75 {
			t.Errorf("ToTensor: %v %v", ct, err)
		}
	}
}

func TestModulePrefixed(t *testing.T) {
	root, err := Load(readTestdata(t, "module_prefixed.pt"))
	if err != nil {
		t.Fatal(err)
	}
	sd := root.(*OrderedDict)
	meta, ok := sd.Attrs["_metadata"].(*OrderedDict)
	if !ok || meta.Len() == 0 {
		t.Fatalf("_metadata attribute missing: %#v", sd.Attrs)
	}
	m, names, err := StateDict(root, "module.")
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"}
	if len(names) != len(wantNames) {
		t.Fatalf("names %v", names)
	}
	for i, n := range wantNames {
		if names[i] != n || m[n] == nil {
			t.Errorf("name %d = %q, want %q", i, names[i], n)
		}
	}
	if !sameShape(m["0.weight"].Shape, []int{2, 1, 3, 3}) || !sameShape(m["2.weight"].Shape, []int{3, 4}) {
		t.Errorf("shapes %v %v", m["0.weight"].Shape, m["2.weight"].Shape)
	}
	if m2, _, _ := StateDict(root, "nomatch."); len(m2) != 0 {
		t.Errorf("prefix filter kept %d tensors", len(m2))
	}
}

func TestLegacyFixture(t *testing.T) {
	_, err := Load(readTestdata(t, "legacy.pt"))
	wantKind(t, err, ErrLegacyFormat)
}

// TestDeflated re-packs a fixture with deflate compression.
func TestDeflated(t *testing.T) {
	src := readTestdata(t, "mixed.pt")
	zr, err := zip.NewReader(bytes.NewReader(src), int64(len(src)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		fw, _ := w.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate})
		fw.Write(b)
	}
	w.Close()
	root, err := Load(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := StateDict(root, "state_dict.")
	if err != nil {
		t.Fatal(err)
	}
	v, err := m["shared_strided"].Float32()
	if err != nil || len(v) != 3 || v[0] != 102 || v[2] != 108 {
		t.Fatalf("shared_strided = %v, %v", v, err)
	}
	// A small inflate limit refuses the archive before inflating anything.
	_, err = Open(buf.Bytes(), &Options{MaxInflatedBytes: 16})
	wantKind(t, err, ErrTooLarge)
}

// TestHalfExhaustive reads a HalfStorage of all 65536 halves, in both
// byte orders, and checks each against the format's definition (IEEE
// 754-2008, 3.4): exact values and signed zeros, ±Inf, NaN for NaN.
func TestHalfExhaustive(t *testing.T) {
	for _, order := range []string{"little", "big"} {
		var bo binary.ByteOrder = binary.LittleEndian
		if order == "big" {
			bo = binary.BigEndian
		}
		raw := make([]byte, 2<<16)
		for h := 0; h < 1<<16; h++ {
			bo.PutUint16(raw[2*h:], uint16(h))
		}
		p := newPK().tensor("HalfStorage", "0", 1<<16, 0, []int64{1 << 16}, []int64{1}).stop()
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		for _, f := range []zfile{{"h/data.pkl", p}, {"h/byteorder", []byte(order)}, {"h/data/0", raw}} {
			fw, _ := w.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Store})
			fw.Write(f.data)
		}
		w.Close()
		c, err := Open(buf.Bytes(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Root.(*Tensor).Float32()
		if err != nil {
			t.Fatal(err)
		}
		for h, g := range got {
			s, e, m := h>>15, (h>>10)&0x1f, h&0x3ff
			var want float64
			switch {
			case e == 0x1f && m == 0:
				want = math.Inf(1)
			case e == 0x1f:
				want = math.NaN()
			case e == 0:
				want = math.Ldexp(float64(m), -24)
			default:
				want = math.Ldexp(1+float64(m)/1024, e-15)
			}
			if s == 1 {
				want = -want
			}
			if math.IsNaN(want) {
				if !math.IsNaN(float64(g)) || math.Signbit(float64(g)) != (s == 1) {
					t.Fatalf("%s endian: %#04x: got %v, want NaN", order, h, g)
				}
				continue
			}
			if float64(g) != want || math.Signbit(float64(g)) != (s == 1) {
				t.Fatalf("%s endian: %#04x: got %v, want %v", order, h, g, want)
			}
		}
	}
}

func fixturesDir() string { return fixtures.Dir() }

// TestLucidrainsCheckpoint reads a real denoising-diffusion-pytorch
// Trainer checkpoint (torch 2.x writer, "model-1/" top folder).
func TestLucidrainsCheckpoint(t *testing.T) {
	dir := filepath.Join(fixturesDir(), "lucidrains", "lucid_small")
	path := filepath.Join(dir, "model-1.pt")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("fixture not available: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Archive != "model-1" || c.Version != "3" || c.ByteOrder != "little" {
		t.Errorf("archive %q version %q byteorder %q", c.Archive, c.Version, c.ByteOrder)
	}
	root := c.Root.(*OrderedDict)
	keys := root.StringKeys()
	wantKeys := []string{"step", "model", "opt", "ema", "scaler", "version"}
	if len(keys) != len(wantKeys) {
		t.Fatalf("top-level keys %v", keys)
	}
	for i := range wantKeys {
		if keys[i] != wantKeys[i] {
			t.Fatalf("top-level keys %v, want %v", keys, wantKeys)
		}
	}
	if v, _ := root.Get("step"); v != int64(1) {
		t.Errorf("step = %#v", v)
	}
	if v, _ := root.Get("scaler"); v != nil {
		t.Errorf("scaler = %#v", v)
	}
	if v, _ := root.Get("version"); v != "2.3.1" {
		t.Errorf("version = %#v", v)
	}

	// unet_kwargs.json beside it describes the network: dim 16, dim_mults (1,2,2), 1 channel.
	var kw struct {
		Dim      int   `json:"dim"`
		DimMults []int `json:"dim_mults"`
		Channels int   `json:"channels"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "unet_kwargs.json")); err == nil {
		if err := json.Unmarshal(b, &kw); err != nil {
			t.Fatal(err)
		}
	} else {
		kw.Dim, kw.DimMults, kw.Channels = 16, []int{1, 2, 2}, 1
	}

	mv, _ := root.Get("model")
	model := mv.(*OrderedDict)
	if !model.Ordered || model.Len() != 206 {
		t.Errorf("model: ordered %v, %d entries", model.Ordered, model.Len())
	}
	all, _, err := StateDict(mv, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, buf := range []string{"betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
		"posterior_variance", "posterior_mean_coef1", "loss_weight"} {
		if tt := all[buf]; tt == nil || !sameShape(tt.Shape, []int{1000}) || tt.DType != "float32" {
			t.Errorf("buffer %s: %+v", buf, tt)
		}
	}
	betas, err := all["betas"].Float32()
	if err != nil || math.Float32bits(betas[0]) != 0x399d6ecb || math.Float32bits(betas[999]) != 0x3f7fbe77 {
		t.Errorf("betas[0], betas[999] = %v, %v (%v)", betas[0], betas[999], err)
	}
	ac, _ := all["alphas_cumprod"].Float32()
	for i := 1; i < len(ac); i++ {
		if !(ac[i] <= ac[i-1]) || ac[i] < 0 {
			t.Fatalf("alphas_cumprod not decreasing at %d", i)
		}
	}

	unet, names, err := StateDict(mv, "model.")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 193 {
		t.Errorf("%d unet tensors, want 193", len(names))
	}
	d := kw.Dim
	shapes := map[string][]int{
		"init_conv.weight":                {d, kw.Channels, 7, 7},
		"init_conv.bias":                  {d},
		"time_mlp.1.weight":               {4 * d, d},
		"downs.0.0.block1.proj.weight":    {d, d, 3, 3},
		"downs.0.0.block1.norm.g":         {1, d, 1, 1},
		"downs.0.2.mem_kv":                {2, 4, 32, 4},
		"downs.2.0.block1.proj.weight":    {d * kw.DimMults[2], d * kw.DimMults[2], 3, 3},
		"mid_attn.to_qkv.weight":          {384, d * kw.DimMults[2], 1, 1},
		"ups.0.0.block1.proj.weight":      {32, 64, 3, 3},
		"final_res_block.res_conv.weight": {d, 2 * d, 1, 1},
		"final_conv.weight":               {kw.Channels, d, 1, 1},
		"final_conv.bias":                 {kw.Channels},
	}
	for n, s := range shapes {
		if tt := unet[n]; tt == nil || !sameShape(tt.Shape, s) {
			t.Errorf("model.%s: %+v, want shape %v", n, tt, s)
		}
	}
	w, err := unet["init_conv.weight"].Float64()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range w {
		sum += v
	}
	if math.Abs(sum-3.3639861946794554) > 1e-9 {
		t.Errorf("sum(init_conv.weight) = %v", sum)
	}
	if b, _ := unet["final_conv.bias"].Float32(); len(b) != 1 || b[0] != float32(-0.23056724667549133) {
		t.Errorf("final_conv.bias = %v", b)
	}

	// EMA wrapper: scalars plus two full copies of the diffusion model.
	ev, _ := root.Get("ema")
	ema := ev.(*OrderedDict)
	if ema.Len() != 414 {
		t.Errorf("ema has %d entries", ema.Len())
	}
	initted, _ := ema.Get("initted")
	if iv, err := initted.(*Tensor).Int64(); err != nil || initted.(*Tensor).DType != "bool" || len(iv) != 1 || iv[0] != 1 {
		t.Errorf("ema.initted = %v %v", iv, err)
	}
	step, _ := ema.Get("step")
	if sv, err := step.(*Tensor).Int64(); err != nil || step.(*Tensor).DType != "int64" || len(sv) != 1 || len(step.(*Tensor).Shape) != 0 {
		t.Errorf("ema.step = %v %v", sv, err)
	}
	for _, pfx := range []string{"ema_model.model.", "online_model.model."} {
		m, n, err := StateDict(ev, pfx)
		if err != nil || len(n) != 193 {
			t.Fatalf("%s: %d tensors, %v", pfx, len(n), err)
		}
		if !sameShape(m["init_conv.weight"].Shape, unet["init_conv.weight"].Shape) {
			t.Errorf("%s init_conv.weight shape %v", pfx, m["init_conv.weight"].Shape)
		}
	}
	emaW, _, _ := StateDict(ev, "ema_model.model.")
	ew, _ := emaW["init_conv.weight"].Float64()
	for i := range ew {
		if ew[i] != w[i] { // after one step the EMA copy still equals the model
			t.Fatalf("ema init_conv.weight[%d] = %v, model %v", i, ew[i], w[i])
		}
	}

	// Adam state: one entry per unet parameter, in parameter order.
	ov, _ := root.Get("opt")
	opt := ov.(*OrderedDict)
	sv, _ := opt.Get("state")
	state := sv.(*OrderedDict)
	if state.Len() != 193 {
		t.Fatalf("opt.state has %d entries", state.Len())
	}
	for i, n := range names {
		e, ok := state.GetKey(int64(i))
		if !ok {
			t.Fatalf("opt.state[%d] missing", i)
		}
		ed := e.(*OrderedDict)
		for _, k := range []string{"exp_avg", "exp_avg_sq"} {
			tv, _ := ed.Get(k)
			if tt, ok := tv.(*Tensor); !ok || !sameShape(tt.Shape, unet[n].Shape) {
				t.Fatalf("opt.state[%d].%s does not match model.%s %v", i, k, n, unet[n].Shape)
			}
		}
		stp, _ := ed.Get("step")
		if f, err := stp.(*Tensor).Float32(); err != nil || len(f) != 1 || f[0] != 1 {
			t.Fatalf("opt.state[%d].step = %v %v", i, f, err)
		}
	}
	pgv, _ := opt.Get("param_groups")
	pg := pgv.([]any)[0].(*OrderedDict)
	if lr, _ := pg.Get("lr"); lr != 1e-4 {
		t.Errorf("lr = %#v", lr)
	}
	if b, _ := pg.Get("betas"); len(b.(Tuple)) != 2 || b.(Tuple)[1] != 0.999 {
		t.Errorf("betas = %#v", b)
	}
	if p, _ := pg.Get("params"); len(p.([]any)) != 193 || p.([]any)[192] != int64(192) {
		t.Errorf("params = %#v", p)
	}
	if v, _ := pg.Get("amsgrad"); v != false {
		t.Errorf("amsgrad = %#v", v)
	}

	// Everything in the file: 206 model + 414 ema (2 scalars) + 3*193 optimizer tensors.
	every, _, err := StateDict(c.Root, "")
	if err != nil || len(every) != 206+414+3*193 {
		t.Errorf("%d tensors in the checkpoint (%v)", len(every), err)
	}
	var total float64
	for _, n := range func() []string { _, n, _ := StateDict(mv, ""); return n }() {
		f, err := all[n].Float64()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range f {
			total += v
		}
	}
	if math.Abs(total-6150.808437882989) > 1e-6 {
		t.Errorf("sum over model = %v", total)
	}
}
