package graphtest

import (
	"fmt"
	"math/rand"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Patterns names the epilogue fusions graph.Fuse proposes, each with a
// case in fusionCases (a head op and the ops it absorbs, "+"-joined).
var Patterns = []string{
	"conv2d+add_channel",
	"conv2d+add",
	"conv2d+add_channel+add",
	"conv_transpose2d+add_channel",
	"conv_transpose2d+add_channel+add",
	"group_norm+silu",
	"group_norm+scale_shift+silu",
	"linear+silu",
	"rms_norm_channel+scale_shift+silu",
	"rms_norm_channel+silu+add",
	"rms_norm_channel+add",
}

// fusionCases are the networks' fusable patterns, with the fused value's
// operands made after the head in graph order (so a fused step must run
// where its last node was), a value that is also read elsewhere (no
// fusion), Add(h, h) (not a residual) and the residual as either operand.
func fusionCases(r *rand.Rand) []*Case {
	type in = func(string, ...int) graph.Value
	const B, C, O, H, W = 3, 6, 10, 7, 5
	params := map[string]*tensor.Tensor{
		"n1.weight": RandT(r, 1, C), "n1.bias": RandT(r, 1, C),
		"c1.weight": RandT(r, 0.2, O, C, 3, 3), "c1.bias": RandT(r, 1, O),
		"n2.weight": RandT(r, 1, O), "n2.bias": RandT(r, 1, O),
		"c2.weight": RandT(r, 0.2, O, O, 3, 3), "c2.bias": RandT(r, 1, O),
		"s.weight": RandT(r, 0.3, O, C, 1, 1), "s.bias": RandT(r, 1, O),
		"p.weight": RandT(r, 0.3, O, 4), "p.bias": RandT(r, 1, O),
	}
	var cs []*Case
	// The two time conditionings of diffusers' ResnetBlock2D: "default" adds
	// the embedding after conv1, "scale_shift" applies it after norm2.
	for _, scaleShift := range []bool{false, true} {
		pattern := "conv2d+add_channel"
		if scaleShift {
			pattern = "group_norm+scale_shift+silu"
		}
		cs = append(cs, &Case{Name: fmt.Sprintf("fusion/resnet/scale_shift=%v", scaleShift), Params: params, Fusions: []string{pattern},
			Build: func(b *graph.Builder, in in) graph.Value {
				x := in("x", B, C, H, W)
				h := b.Unary(graph.OpSiLU, b.GroupNorm("n1", x, 2, 1e-5))
				h = b.Conv2D("c1", h, 1, [4]int{1, 1, 1, 1})
				if scaleShift {
					h = b.ScaleShift(b.GroupNorm("n2", h, 5, 1e-5), in("e", B, 2*O))
				} else {
					e := b.Linear("p", in("temb", B, 4)) // made after conv1
					h = b.GroupNorm("n2", b.AddChannel(h, e), 5, 1e-5)
				}
				h = b.Conv2D("c2", b.Unary(graph.OpSiLU, h), 1, [4]int{1, 1, 1, 1})
				return b.Add(b.Conv2D("s", x, 1, [4]int{}), h) // the shortcut made after conv2
			}})
	}
	cs = append(cs,
		&Case{Name: "fusion/conv+residual", Params: params, Fusions: []string{"conv2d+add"},
			Build: func(b *graph.Builder, in in) graph.Value {
				x := in("x", B, C, H, W)
				h := b.Add(b.Conv2D("s", x, 1, [4]int{}), b.Conv2D("c1", x, 1, [4]int{1, 1, 1, 1}))
				g := b.GroupNorm("n2", h, 2, 1e-5) // read twice: no SiLU fusion
				h = b.Add(g, b.Unary(graph.OpSiLU, g))
				c := b.Conv2D("c2", h, 1, [4]int{1, 1, 1, 1})
				return b.Affine(b.Add(c, c), 0.5, 0.25) // Add(h, h) is not a residual
			}},
		&Case{Name: "fusion/conv+add_channel+residual", Params: params, Fusions: []string{"conv2d+add_channel+add"},
			Build: func(b *graph.Builder, in in) graph.Value {
				x := in("x", B, C, H, W)
				h := b.AddChannel(b.Conv2D("c1", x, 1, [4]int{1, 1, 1, 1}), in("e", B, O))
				return b.Add(b.Conv2D("s", x, 1, [4]int{}), h)
			}},
		&Case{Name: "fusion/group_norm+silu", Params: params, Fusions: []string{"group_norm+silu"},
			Build: func(b *graph.Builder, in in) graph.Value {
				return b.Unary(graph.OpSiLU, b.GroupNorm("n1", in("x", B, C, H, W), 3, 1e-5))
			}},
	)
	// ScoreNet's decoder: a transposed conv, the time embedding per channel
	// and (here) a residual.
	tparams := map[string]*tensor.Tensor{"t.weight": RandT(r, 0.3, C, O, 3, 3), "t.bias": RandT(r, 1, O)}
	for _, res := range []bool{false, true} {
		pattern := "conv_transpose2d+add_channel"
		if res {
			pattern += "+add"
		}
		cs = append(cs, &Case{Name: "fusion/" + pattern, Params: tparams, Fusions: []string{pattern},
			Build: func(b *graph.Builder, in in) graph.Value {
				h := b.AddChannel(b.ConvTranspose2D("t", in("x", 2, C, 4, 3), 2, 0, 1), in("e", 2, O))
				if res {
					h = b.Add(in("y", 2, O, 10, 8), h)
				}
				return h
			}})
	}
	// The 2-D MLP: a linear absorbs the SiLU after it; reshapes between.
	mparams := map[string]*tensor.Tensor{
		"a.weight": RandT(r, 0.3, 9, 5), "a.bias": RandT(r, 1, 9),
		"b.weight": RandT(r, 0.3, 6, 9), "b.bias": RandT(r, 1, 6),
		"c.weight": RandT(r, 0.3, 2, 3),
	}
	for _, rows := range []int{1, 7, 8, 33} {
		cs = append(cs, &Case{Name: fmt.Sprintf("fusion/mlp/rows=%d", rows), Params: mparams, Fusions: []string{"linear+silu"},
			Build: func(b *graph.Builder, in in) graph.Value {
				h := b.Unary(graph.OpSiLU, b.Linear("a", b.Reshape(in("x", rows, 5, 1, 1), rows, 5)))
				h = b.Reshape(b.Unary(graph.OpSiLU, b.Linear("b", h)), 2*rows, 3)
				return b.Reshape(b.Linear("c", h), rows, 4)
			}})
	}
	// lucidrains' ResnetBlock: RMSNorm, scale_shift, SiLU; RMSNorm, SiLU and
	// the residual; and a residual alone (attention's x + to_out(...)),
	// the residual first.
	lparams := map[string]*tensor.Tensor{"n1.g": RandT(r, 1, 1, C, 1, 1), "n2.g": RandT(r, 1, 1, C, 1, 1), "n3.g": RandT(r, 1, C)}
	cs = append(cs, &Case{Name: "fusion/lucid resnet norms", Params: lparams,
		Fusions: []string{"rms_norm_channel+scale_shift+silu", "rms_norm_channel+silu+add", "rms_norm_channel+add"},
		Build: func(b *graph.Builder, in in) graph.Value {
			x := in("x", B, C, H, W)
			h := b.Unary(graph.OpSiLU, b.ScaleShift(b.RMSNormChannel("n1.g", x), in("e", B, 2*C)))
			h = b.Add(b.Unary(graph.OpSiLU, b.RMSNormChannel("n2.g", h)), x)
			return b.Add(x, b.RMSNormChannel("n3.g", h))
		}})
	return cs
}
