// Package graphtest is the backend test table (after ggml's
// test-backend-ops): one or more small graphs per op kind of graph.Kinds(),
// lucidrains' included, and per fusion pattern of graph.Fusion, each run on
// a backend and compared with the reference, core/cpu. Every backend's
// TestOpTable runs Cases(); CheckCoverage fails when a kind has no case.
package graphtest

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// opCases covers every graph op kind on awkward shapes: odd sizes, channel
// counts that are not multiples of 4, tiles only partly filled, batch 1 and 7.
func opCases(r *rand.Rand) []*Case {
	var cs []*Case
	p := func(kv ...any) map[string]*tensor.Tensor {
		m := map[string]*tensor.Tensor{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(*tensor.Tensor)
		}
		return m
	}
	type convCase struct {
		B, I, H, W, O, K, stride int
		pad                      [4]int
		bias                     bool
	}
	for _, cc := range []convCase{
		{1, 3, 5, 7, 4, 3, 1, [4]int{1, 1, 1, 1}, true},
		{7, 5, 6, 6, 9, 3, 2, [4]int{1, 1, 1, 1}, true},
		{2, 4, 8, 7, 6, 3, 2, [4]int{0, 0, 1, 1}, true}, // Downsample2D with padding 0
		{3, 6, 5, 5, 10, 1, 1, [4]int{}, false},         // 1x1 shortcut
		{1, 3, 9, 7, 5, 3, 1, [4]int{}, true},           // unpadded 3x3
		{2, 70, 9, 9, 67, 3, 1, [4]int{1, 1, 1, 1}, true},
		{1, 2, 4, 5, 3, 2, 1, [4]int{1, 0, 0, 1}, true}, // even kernel, asymmetric
	} {
		cc := cc
		params := p("c.weight", RandT(r, 1/math.Sqrt(float64(cc.I*cc.K*cc.K)), cc.O, cc.I, cc.K, cc.K))
		if cc.bias {
			params["c.bias"] = RandT(r, 0.5, cc.O)
		}
		cs = append(cs, &Case{Name: fmt.Sprintf("conv2d/%v", cc), Params: params,
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Conv2D("c", in("x", cc.B, cc.I, cc.H, cc.W), cc.stride, cc.pad)
			}})
	}
	type convtCase struct{ B, I, H, W, O, K, stride, pad, outPad int }
	for _, cc := range []convtCase{
		{2, 3, 5, 5, 4, 4, 2, 1, 0},
		{1, 5, 4, 3, 3, 3, 2, 1, 1},
		{7, 2, 3, 3, 5, 3, 1, 0, 0},
		// ScoreNet's shape (no padding, output padding 1, more channels
		// than a serial block's 8), a 5×5 kernel, and stride 3 with a 2×2
		// kernel (output rows no tap reaches).
		{1, 9, 5, 5, 11, 3, 2, 0, 1},
		{2, 4, 3, 4, 6, 5, 2, 2, 1},
		{2, 3, 4, 3, 5, 2, 3, 0, 2},
	} {
		cc := cc
		cs = append(cs, &Case{Name: fmt.Sprintf("conv_transpose2d/%v", cc),
			Params: p("c.weight", RandT(r, 0.3, cc.I, cc.O, cc.K, cc.K), "c.bias", RandT(r, 0.5, cc.O)),
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.ConvTranspose2D("c", in("x", cc.B, cc.I, cc.H, cc.W), cc.stride, cc.pad, cc.outPad)
			}})
	}
	for _, gc := range []struct {
		shape  []int
		groups int
		bias   bool
		offset float64 // added to the input: a mean far from zero tests the variance's stability
	}{
		{[]int{2, 12, 5, 5}, 3, true, 1.5},
		{[]int{1, 32, 7, 9}, 8, true, 1.5},
		{[]int{7, 10, 3, 11}, 5, false, 1.5},
		{[]int{3, 6, 33}, 2, true, 1.5},
		{[]int{1, 4, 40, 40}, 1, true, 1.5}, // a group larger than the workgroup many times over
		{[]int{2, 8, 9, 9}, 2, true, 1000},
	} {
		gc := gc
		params := p("n.weight", RandT(r, 1, gc.shape[1]))
		if gc.bias {
			params["n.bias"] = RandT(r, 1, gc.shape[1])
		}
		cs = append(cs, &Case{Name: fmt.Sprintf("group_norm/%v/%d/%g", gc.shape, gc.groups, gc.offset), Params: params,
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				x := in("x", gc.shape...)
				return b.GroupNorm("n", b.Affine(x, 3, gc.offset), gc.groups, 1e-5)
			}})
	}
	for _, lc := range []struct {
		shape []int
		O     int
		bias  bool
	}{
		{[]int{3, 5}, 7, true},
		{[]int{2, 17, 33}, 70, true},
		{[]int{1, 130}, 3, false},
		{[]int{7, 65, 64}, 64, true},
	} {
		lc := lc
		I := lc.shape[len(lc.shape)-1]
		params := p("l.weight", RandT(r, 1/math.Sqrt(float64(I)), lc.O, I))
		if lc.bias {
			params["l.bias"] = RandT(r, 0.5, lc.O)
		}
		cs = append(cs, &Case{Name: fmt.Sprintf("linear/%v->%d", lc.shape, lc.O), Params: params,
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Linear("l", in("x", lc.shape...))
			}})
	}
	for _, shape := range [][]int{{7, 3, 5, 5}, {1, 13}} {
		shape := shape
		for _, op := range []graph.Kind{graph.OpSiLU, graph.OpGELU} {
			op := op
			cs = append(cs, &Case{Name: fmt.Sprintf("%s/%v", op, shape), Params: p(),
				Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
					return b.Unary(op, b.Affine(in("x", shape...), 3, 0))
				}})
		}
		cs = append(cs, &Case{Name: fmt.Sprintf("affine/%v", shape), Params: p(),
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Affine(in("x", shape...), -0.7, 0.25)
			}})
		cs = append(cs, &Case{Name: fmt.Sprintf("add/%v", shape), Params: p(),
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Add(in("x", shape...), in("y", shape...))
			}})
	}
	cs = append(cs,
		&Case{Name: "add_channel", Params: p(), Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.AddChannel(in("x", 3, 5, 4, 3), in("e", 3, 5))
		}},
		&Case{Name: "scale_shift", Params: p(), Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.ScaleShift(in("x", 2, 5, 3, 3), in("e", 2, 10))
		}},
		&Case{Name: "concat", Params: p(), Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.Concat(in("x", 3, 2, 4, 5), in("y", 3, 5, 4, 5))
		}},
		&Case{Name: "upsample_nearest2x", Params: p(), Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.UpsampleNearest2x(in("x", 2, 3, 5, 7))
		}},
		&Case{Name: "to_tokens", Params: p(), Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.ToTokens(in("x", 2, 5, 3, 4))
		}},
		&Case{Name: "from_tokens", Params: p(), Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.FromTokens(in("x", 7, 12, 5), 3, 4)
		}},
		&Case{Name: "div_batch", Params: p(), Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			s := b.Affine(b.Unary(graph.OpSiLU, in("s", 3)), 1, 2) // divisors in (1.7, ∞)
			return b.DivBatch(in("x", 3, 2, 4, 4), s)
		}},
	)
	for _, ac := range []struct{ B, N, C, heads int }{
		{2, 10, 12, 3}, {1, 70, 8, 1}, {7, 5, 6, 2}, {1, 300, 16, 2},
	} {
		ac := ac
		cs = append(cs, &Case{Name: fmt.Sprintf("attention/%v", ac), Params: p(),
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.Attention("a", in("q", ac.B, ac.N, ac.C), in("k", ac.B, ac.N, ac.C), in("v", ac.B, ac.N, ac.C), ac.heads)
			}})
	}
	times := func(n int, lo, hi float32) []float32 {
		t := make([]float32, n)
		for i := range t {
			t[i] = lo + (hi-lo)*r.Float32()
		}
		t[0] = hi
		return t
	}
	cs = append(cs,
		&Case{Name: "reshape", Params: p(), Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.Reshape(in("x", 7, 2, 1, 1), 7, 2)
		}},
		&Case{Name: "ve_marginal_std", Params: p(), Inputs: map[string][]float32{"t": times(7, 1e-3, 1)},
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.VEMarginalStd(in("t", 7), 25)
			}},
	)
	for _, tc := range []struct {
		B, dim int
		flip   bool
		shift  float64
	}{{2, 32, false, 1}, {7, 33, true, 0}, {1, 128, true, 1}} {
		tc := tc
		cs = append(cs, &Case{Name: fmt.Sprintf("timestep_embed/%v", tc), Params: p(),
			Inputs: map[string][]float32{"t": times(tc.B, 0, 999)},
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.TimestepEmbed(in("t", tc.B), tc.dim, tc.flip, tc.shift, 1)
			}})
	}
	// Times as the models use them: σ in [0.01, 50] through log for VE
	// (score-SDE) models, t in [0, 1] otherwise. (Arguments reach |x·W·2π| ~
	// 1e3, where one ulp of the f32 argument is already 1e-4.)
	for _, fc := range []struct {
		B, half       int
		log, cosFirst bool
		tmax          float32
	}{{3, 8, true, false, 50}, {7, 5, false, true, 1}} {
		fc := fc
		lo := float32(0)
		if fc.log {
			lo = 0.01
		}
		cs = append(cs, &Case{Name: fmt.Sprintf("fourier_embed/%v", fc), Params: p("f.W", RandT(r, 16, fc.half)),
			Inputs: map[string][]float32{"t": times(fc.B, lo, fc.tmax)},
			Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
				return b.FourierEmbed("f.W", in("t", fc.B), fc.log, fc.cosFirst)
			}})
	}
	cs = append(cs, &Case{Name: "embedding", Params: p("e.weight", RandT(r, 1, 10, 13)),
		Inputs: map[string][]float32{"class": {3, 0, 9, 9, 1, 4, 2}},
		Build: func(b *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return b.Embedding("e", in("class", 7))
		}})
	return cs
}

// lucidCases covers the ops of lucidrains' U-Net (core/graph/lucid.go) on awkward
// shapes: odd sizes, channel counts that are not multiples of 4, batch 1
// and 7, with and without memory key/values, more than 64 tokens (several
// chunks of the attention kernels) and head widths past 64, 128 and 192
// (every accumulator lane).
func lucidCases(r *rand.Rand) []*Case {
	var cs []*Case
	type in = func(string, ...int) graph.Value
	for _, rc := range []struct {
		shape []int
		flat  bool // gain stored as [C] instead of [1,C,1,1]
	}{
		{[]int{1, 5, 3, 7}, false},
		{[]int{7, 6, 5, 3}, true},
		{[]int{2, 67, 4, 5}, false},
		{[]int{3, 10}, true},
	} {
		rc := rc
		C := rc.shape[1]
		gain := RandT(r, 1, 1, C, 1, 1)
		if rc.flat {
			gain = RandT(r, 1, C)
		}
		cs = append(cs, &Case{Name: fmt.Sprintf("rms_norm_channel/%v", rc.shape), Params: map[string]*tensor.Tensor{"n.g": gain},
			Build: func(b *graph.Builder, in in) graph.Value {
				return b.RMSNormChannel("n.g", b.Affine(in("x", rc.shape...), 3, 1.5))
			}})
	}
	for _, pc := range []struct {
		shape []int
		r     int
	}{{[]int{1, 3, 6, 10}, 2}, {[]int{7, 5, 4, 4}, 2}, {[]int{2, 3, 9, 6}, 3}} {
		pc := pc
		cs = append(cs, &Case{Name: fmt.Sprintf("pixel_unshuffle/%v/%d", pc.shape, pc.r), Params: map[string]*tensor.Tensor{},
			Build: func(b *graph.Builder, in in) graph.Value {
				return b.PixelUnshuffle(in("x", pc.shape...), pc.r)
			}})
	}
	for _, sc := range []struct {
		shape    []int
		start, n int
	}{{[]int{7, 6, 3, 5}, 1, 3}, {[]int{1, 5, 7}, 4, 1}, {[]int{2, 9, 2, 3}, 0, 9}} {
		sc := sc
		cs = append(cs, &Case{Name: fmt.Sprintf("slice_channels/%v/%d+%d", sc.shape, sc.start, sc.n), Params: map[string]*tensor.Tensor{},
			Build: func(b *graph.Builder, in in) graph.Value {
				return b.SliceChannels(in("x", sc.shape...), sc.start, sc.n)
			}})
	}
	type attCase struct {
		B, heads, D, H, W, M int
		sharp                float64 // input scale: larger makes the softmaxes peakier
	}
	for _, full := range []bool{false, true} {
		for _, ac := range []attCase{
			{1, 2, 5, 3, 7, 3, 1},
			{7, 1, 8, 2, 3, 0, 1},
			{2, 4, 32, 5, 5, 4, 3}, // lucidrains' defaults: 4 heads of 32, 4 memory tokens
			{1, 2, 3, 10, 9, 4, 2}, // 94 keys: two chunks of 64
			{1, 1, 70, 3, 3, 2, 1},
			{1, 1, 197, 2, 2, 1, 1},
		} {
			ac := ac
			op := graph.OpLinearAttention
			memShape := []int{2, ac.heads, ac.D, ac.M}
			if full {
				op = graph.OpAttentionMemKV
				memShape = []int{2, ac.heads, ac.M, ac.D}
			}
			params := map[string]*tensor.Tensor{}
			mem := ""
			if ac.M > 0 {
				mem = "a.mem_kv"
				params[mem] = RandT(r, 1, memShape...)
			}
			cs = append(cs, &Case{Name: fmt.Sprintf("%s/%+v", op, ac), Params: params,
				Build: func(b *graph.Builder, in in) graph.Value {
					qkv := b.Affine(in("qkv", ac.B, 3*ac.heads*ac.D, ac.H, ac.W), ac.sharp, 0)
					if full {
						return b.AttentionMemKV("a", qkv, mem, ac.heads, ac.D)
					}
					return b.LinearAttention("a", qkv, mem, ac.heads, ac.D)
				}})
		}
	}
	return cs
}
