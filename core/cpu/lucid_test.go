package cpu

import (
	"errors"
	"math"
	"math/rand"
	"testing"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// The references below are the textbook definitions in float64, written as
// the PyTorch code reads (concatenate, softmax, then einsum), independently
// of the loop order of the implementations.

func softmax64(s []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range s {
		m = math.Max(m, v)
	}
	out := make([]float64, len(s))
	var sum float64
	for i, v := range s {
		out[i] = math.Exp(v - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// qkvAt reads q (part 0), k (1) or v (2) of head h, channel d, token n from
// qkv [B, 3·heads·D, N].
func qkvAt(qkv []float32, b, part, h, d, n, heads, D, N int) float64 {
	return float64(qkv[((b*3+part)*heads*D+h*D+d)*N+n])
}

func refLinearAttention(qkv, mem []float32, B, heads, D, N, M int, scale float64) []float32 {
	out := make([]float32, B*heads*D*N)
	for b := 0; b < B; b++ {
		for h := 0; h < heads; h++ {
			// k = cat((mk, k), dim=-1); v likewise.
			k := make([][]float64, D)
			v := make([][]float64, D)
			for d := 0; d < D; d++ {
				for m := 0; m < M; m++ {
					k[d] = append(k[d], float64(mem[((0*heads+h)*D+d)*M+m]))
					v[d] = append(v[d], float64(mem[((1*heads+h)*D+d)*M+m]))
				}
				for n := 0; n < N; n++ {
					k[d] = append(k[d], qkvAt(qkv, b, 1, h, d, n, heads, D, N))
					v[d] = append(v[d], qkvAt(qkv, b, 2, h, d, n, heads, D, N))
				}
				k[d] = softmax64(k[d]) // k.softmax(dim=-1)
			}
			// q.softmax(dim=-2) * scale
			q := make([][]float64, D)
			for d := range q {
				q[d] = make([]float64, N)
			}
			for n := 0; n < N; n++ {
				col := make([]float64, D)
				for d := 0; d < D; d++ {
					col[d] = qkvAt(qkv, b, 0, h, d, n, heads, D, N)
				}
				col = softmax64(col)
				for d := 0; d < D; d++ {
					q[d][n] = col[d] * scale
				}
			}
			// context = einsum('d n, e n -> d e', k, v); out = einsum('d e, d n -> e n', context, q)
			for e := 0; e < D; e++ {
				for n := 0; n < N; n++ {
					var s float64
					for d := 0; d < D; d++ {
						var ctx float64
						for j := range k[d] {
							ctx += k[d][j] * v[e][j]
						}
						s += ctx * q[d][n]
					}
					out[((b*heads+h)*D+e)*N+n] = float32(s)
				}
			}
		}
	}
	return out
}

func refAttentionMemKV(qkv, mem []float32, B, heads, D, N, M int, scale float64) []float32 {
	out := make([]float32, B*heads*D*N)
	for b := 0; b < B; b++ {
		for h := 0; h < heads; h++ {
			key := func(j, d int) float64 {
				if j < M {
					return float64(mem[((0*heads+h)*M+j)*D+d])
				}
				return qkvAt(qkv, b, 1, h, d, j-M, heads, D, N)
			}
			val := func(j, d int) float64 {
				if j < M {
					return float64(mem[((1*heads+h)*M+j)*D+d])
				}
				return qkvAt(qkv, b, 2, h, d, j-M, heads, D, N)
			}
			for i := 0; i < N; i++ {
				sim := make([]float64, M+N)
				for j := range sim {
					for d := 0; d < D; d++ {
						sim[j] += qkvAt(qkv, b, 0, h, d, i, heads, D, N) * key(j, d)
					}
					sim[j] *= scale
				}
				p := softmax64(sim)
				for d := 0; d < D; d++ {
					var s float64
					for j := range p {
						s += p[j] * val(j, d)
					}
					out[((b*heads+h)*D+d)*N+i] = float32(s)
				}
			}
		}
	}
	return out
}

func TestLinearAttentionMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, c := range []struct{ B, heads, D, N, M int }{{2, 3, 4, 10, 4}, {1, 1, 5, 7, 0}, {1, 2, 8, 1, 3}} {
		qkv := randSlice(r, c.B*3*c.heads*c.D*c.N)
		mem := randSlice(r, 2*c.heads*c.D*c.M)
		scale := 1 / math.Sqrt(float64(c.D))
		got := make([]float32, c.B*c.heads*c.D*c.N)
		LinearAttention(got, qkv, mem, c.B, c.heads*c.D, c.N, c.heads, c.M, float32(scale))
		want := refLinearAttention(qkv, mem, c.B, c.heads, c.D, c.N, c.M, scale)
		if d := maxDiff(got, want); d > 1e-6 {
			t.Errorf("%+v: max diff %g", c, d)
		}
	}
}

func TestAttentionMemKVMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, c := range []struct{ B, heads, D, N, M int }{{2, 3, 4, 10, 4}, {1, 2, 8, 5, 0}, {1, 1, 3, 1, 2}} {
		qkv := randSlice(r, c.B*3*c.heads*c.D*c.N)
		mem := randSlice(r, 2*c.heads*c.M*c.D)
		scale := 1 / math.Sqrt(float64(c.D))
		got := make([]float32, c.B*c.heads*c.D*c.N)
		AttentionMemKV(got, qkv, mem, c.B, c.heads*c.D, c.N, c.heads, c.M, float32(scale))
		want := refAttentionMemKV(qkv, mem, c.B, c.heads, c.D, c.N, c.M, scale)
		if d := maxDiff(got, want); d > 1e-6 {
			t.Errorf("%+v: max diff %g", c, d)
		}
	}
}

// Without memory, attention_mem_kv is the existing attention op in the
// channel layout.
func TestAttentionMemKVWithoutMemoryIsAttention(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	B, heads, D, N := 2, 2, 4, 6
	C := heads * D
	qkv := randSlice(r, B*3*C*N)
	got := make([]float32, B*C*N)
	AttentionMemKV(got, qkv, nil, B, C, N, heads, 0, 0.5)
	tok := func(part int) []float32 { // [B, N, C]
		s := make([]float32, B*N*C)
		for b := 0; b < B; b++ {
			for c := 0; c < C; c++ {
				for n := 0; n < N; n++ {
					s[(b*N+n)*C+c] = qkv[((b*3+part)*C+c)*N+n]
				}
			}
		}
		return s
	}
	ref := make([]float32, B*N*C)
	Attention(ref, tok(0), tok(1), tok(2), B, N, C, heads, 0.5)
	want := make([]float32, B*C*N)
	for b := 0; b < B; b++ {
		for c := 0; c < C; c++ {
			for n := 0; n < N; n++ {
				want[(b*C+c)*N+n] = ref[(b*N+n)*C+c]
			}
		}
	}
	if d := maxDiff(got, want); d > 1e-6 {
		t.Errorf("max diff %g", d)
	}
}

func TestRMSNormChannel(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	B, C, P := 2, 5, 6
	x := randSlice(r, B*C*P)
	for c := 0; c < C; c++ { // one all-zero position: the norm's floor keeps it 0, not NaN
		x[c*P] = 0
	}
	g := randSlice(r, C)
	got := make([]float32, len(x))
	RMSNormChannel(got, x, []int{B, C, 2, 3}, g, math.Sqrt(float64(C)), 1e-12)
	for b := 0; b < B; b++ {
		for p := 0; p < P; p++ {
			var sq float64
			for c := 0; c < C; c++ {
				sq += float64(x[(b*C+c)*P+p]) * float64(x[(b*C+c)*P+p])
			}
			for c := 0; c < C; c++ {
				i := (b*C+c)*P + p
				want := float64(x[i]) / math.Max(math.Sqrt(sq), 1e-12) * float64(g[c]) * math.Sqrt(float64(C))
				if math.Abs(float64(got[i])-want) > 1e-6 || math.IsNaN(float64(got[i])) {
					t.Fatalf("b%d c%d p%d: got %v want %v", b, c, p, got[i], want)
				}
			}
		}
	}
}

func TestPixelUnshuffle(t *testing.T) {
	B, C, H, W, r := 2, 3, 4, 6, 2
	x := make([]float32, B*C*H*W)
	for i := range x {
		x[i] = float32(i)
	}
	got := make([]float32, len(x))
	PixelUnshuffle(got, x, []int{B, C, H, W}, r)
	// 'b c (h p1) (w p2) -> b (c p1 p2) h w', read as nested loops over the output.
	i := 0
	for b := 0; b < B; b++ {
		for c := 0; c < C; c++ {
			for p1 := 0; p1 < r; p1++ {
				for p2 := 0; p2 < r; p2++ {
					for h := 0; h < H/r; h++ {
						for w := 0; w < W/r; w++ {
							want := x[((b*C+c)*H+h*r+p1)*W+w*r+p2]
							if got[i] != want {
								t.Fatalf("out[%d] = %v, want %v", i, got[i], want)
							}
							i++
						}
					}
				}
			}
		}
	}
}

// The ops run through a graph: builder shape checks, registration in
// moreOps, and the slice op.
func TestLucidOpsInGraph(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	heads, D, M := 2, 3, 4
	params := map[string]*tensor.Tensor{
		"g":          tensor.From(randSlice(r, 6), 1, 6, 1, 1),
		"lin":        tensor.From(randSlice(r, 2*heads*D*M), 2, heads, D, M),
		"full":       tensor.From(randSlice(r, 2*heads*M*D), 2, heads, M, D),
		"qkv.weight": tensor.From(randSlice(r, 3*heads*D*6*4), 3*heads*D, 6*4, 1, 1),
	}
	g := graph.New(params)
	b := graph.NewBuilder(g)
	x := g.Input("x", 2, 6, 4, 6)
	h := b.RMSNormChannel("g", x)
	h = b.PixelUnshuffle(h, 2) // [2,24,2,3]
	qkv := b.Conv2D("qkv", h, 1, [4]int{})
	la := b.LinearAttention("la", qkv, "lin", heads, D)
	fa := b.AttentionMemKV("fa", qkv, "full", heads, D)
	g.Output = b.SliceChannels(b.Add(la, fa), 1, 4)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if err := graph.CheckAllUsed(g); err != nil {
		t.Fatal(err)
	}
	if s := g.Shape(g.Output); !tensor.SameShape(s, []int{2, 4, 2, 3}) {
		t.Fatalf("output shape %v", s)
	}
	xin := randSlice(r, 2*6*4*6)
	y, err := Run(g, map[string][]float32{"x": xin})
	if err != nil {
		t.Fatal(err)
	}
	// Recompute step by step with the exported functions.
	n1 := make([]float32, len(xin))
	RMSNormChannel(n1, xin, []int{2, 6, 4, 6}, params["g"].Data, math.Sqrt(6), 1e-12)
	n2 := make([]float32, len(xin))
	PixelUnshuffle(n2, n1, []int{2, 6, 4, 6}, 2)
	q := make([]float32, 2*3*heads*D*6)
	Conv2D(q, n2, []int{2, 24, 2, 3}, params["qkv.weight"].Data, params["qkv.weight"].Shape, nil, 1, [4]int{}, []int{2, 18, 2, 3})
	want := refLinearAttention(q, params["lin"].Data, 2, heads, D, 6, M, 1/math.Sqrt(3))
	fw := refAttentionMemKV(q, params["full"].Data, 2, heads, D, 6, M, 1/math.Sqrt(3))
	var sliced []float32
	for bb := 0; bb < 2; bb++ {
		for c := 1; c < 5; c++ {
			for p := 0; p < 6; p++ {
				i := (bb*6+c)*6 + p
				sliced = append(sliced, want[i]+fw[i])
			}
		}
	}
	if d := maxDiff(y.Data, sliced); d > 1e-5 {
		t.Errorf("graph output differs by %g", d)
	}
}

func TestLucidBuilderChecks(t *testing.T) {
	params := map[string]*tensor.Tensor{
		"g":   tensor.New(1, 5, 1, 1),
		"mem": tensor.New(2, 2, 3, 4),
	}
	for name, f := range map[string]func(b *graph.Builder, x graph.Value){
		"gain width":     func(b *graph.Builder, x graph.Value) { b.RMSNormChannel("g", x) },
		"missing gain":   func(b *graph.Builder, x graph.Value) { b.RMSNormChannel("nope", x) },
		"odd unshuffle":  func(b *graph.Builder, x graph.Value) { b.PixelUnshuffle(x, 3) },
		"slice too far":  func(b *graph.Builder, x graph.Value) { b.SliceChannels(x, 10, 3) },
		"qkv width":      func(b *graph.Builder, x graph.Value) { b.LinearAttention("a", x, "mem", 2, 3) },
		"mem layout":     func(b *graph.Builder, x graph.Value) { b.AttentionMemKV("a", x, "mem", 2, 2) },
		"missing memory": func(b *graph.Builder, x graph.Value) { b.LinearAttention("a", x, "nope", 2, 2) },
	} {
		g := graph.New(params)
		b := graph.NewBuilder(g)
		b.SliceChannels(g.Input("x", 1, 12, 4, 4), 0, 12) // a valid op first
		f(b, graph.Value(1))
		var se *graph.ShapeError
		var me *graph.MissingWeightError
		if err := b.Err(); !errors.As(err, &se) && !errors.As(err, &me) {
			t.Errorf("%s: got %v, want a shape or missing-weight error", name, err)
		}
	}
}
