package cpu

import (
	"math"
	"math/rand"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// naiveConv is the textbook definition, written as a gather with explicit
// bounds checks, to check the optimised loop order of Conv2D.
func naiveConv(x []float32, xs []int, w []float32, ws []int, bias []float32, stride int, pad [4]int) ([]float32, []int) {
	B, I, H, W := xs[0], xs[1], xs[2], xs[3]
	O, KH, KW := ws[0], ws[2], ws[3]
	OH := (H+pad[0]+pad[2]-KH)/stride + 1
	OW := (W+pad[1]+pad[3]-KW)/stride + 1
	out := make([]float32, B*O*OH*OW)
	for b := 0; b < B; b++ {
		for o := 0; o < O; o++ {
			for oy := 0; oy < OH; oy++ {
				for ox := 0; ox < OW; ox++ {
					var s float64
					if bias != nil {
						s = float64(bias[o])
					}
					for i := 0; i < I; i++ {
						for ky := 0; ky < KH; ky++ {
							for kx := 0; kx < KW; kx++ {
								iy, ix := oy*stride+ky-pad[0], ox*stride+kx-pad[1]
								if iy >= 0 && iy < H && ix >= 0 && ix < W {
									s += float64(x[((b*I+i)*H+iy)*W+ix]) * float64(w[((o*I+i)*KH+ky)*KW+kx])
								}
							}
						}
					}
					out[((b*O+o)*OH+oy)*OW+ox] = float32(s)
				}
			}
		}
	}
	return out, []int{B, O, OH, OW}
}

func maxDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestConv2DMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	cases := []struct {
		xs, ws []int
		stride int
		pad    [4]int
	}{
		{[]int{1, 3, 7, 5}, []int{4, 3, 3, 3}, 1, [4]int{1, 1, 1, 1}},
		{[]int{7, 5, 9, 9}, []int{3, 5, 3, 3}, 2, [4]int{1, 1, 1, 1}},
		{[]int{2, 4, 8, 8}, []int{6, 4, 3, 3}, 2, [4]int{0, 0, 1, 1}}, // diffusers' asymmetric pad
		{[]int{2, 6, 5, 3}, []int{5, 6, 1, 1}, 1, [4]int{}},
		{[]int{1, 2, 11, 6}, []int{3, 2, 3, 3}, 2, [4]int{}}, // unpadded, as in ScoreNet
	}
	for _, c := range cases {
		x := randSlice(r, prod(c.xs))
		w := randSlice(r, prod(c.ws))
		bias := randSlice(r, c.ws[0])
		want, os := naiveConv(x, c.xs, w, c.ws, bias, c.stride, c.pad)
		got := make([]float32, len(want))
		Conv2D(got, x, c.xs, w, c.ws, bias, c.stride, c.pad, os)
		if d := maxDiff(got, want); d > 1e-4 {
			t.Errorf("x %v w %v stride %d pad %v: max diff %g", c.xs, c.ws, c.stride, c.pad, d)
		}
	}
}

// A transposed convolution is the adjoint of the convolution with the same
// weights, stride and padding: <convT(y), x> = <y, conv(x)> for all x, y.
func TestConvTranspose2DIsAdjointOfConv(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, c := range []struct{ H, stride, pad, outPad int }{{7, 1, 0, 0}, {9, 2, 0, 0}, {8, 2, 1, 1}, {6, 2, 0, 1}} {
		I, O, K := 3, 4, 3
		xs := []int{2, I, c.H, c.H}
		ws := []int{O, I, K, K} // conv weight [O,I,K,K] is a transposed-conv weight [in=O, out=I, K, K]
		w := randSlice(r, prod(ws))
		x := randSlice(r, prod(xs))
		pad := [4]int{c.pad, c.pad, c.pad, c.pad}
		y, ys := naiveConv(x, xs, w, ws, nil, c.stride, pad)
		yr := randSlice(r, len(y))
		// The transposed conv maps ys back to the input size (plus outPad rows).
		os := []int{2, I, (ys[2]-1)*c.stride - 2*c.pad + K + c.outPad, (ys[3]-1)*c.stride - 2*c.pad + K + c.outPad}
		if os[2] < c.H {
			t.Fatalf("case %+v: output %v smaller than input", c, os)
		}
		back := make([]float32, prod(os))
		ConvTranspose2D(back, yr, ys, w, ws, nil, c.stride, c.pad, os)
		var lhs, rhs float64
		for b := 0; b < 2; b++ {
			for i := 0; i < I; i++ {
				for yy := 0; yy < c.H; yy++ {
					for xx := 0; xx < c.H; xx++ {
						lhs += float64(back[((b*I+i)*os[2]+yy)*os[3]+xx]) * float64(x[((b*I+i)*c.H+yy)*c.H+xx])
					}
				}
			}
		}
		for i := range y {
			rhs += float64(yr[i]) * float64(y[i])
		}
		if math.Abs(lhs-rhs) > 1e-3*math.Max(1, math.Abs(rhs)) {
			t.Errorf("case %+v: <convT(y),x> = %g, <y,conv(x)> = %g", c, lhs, rhs)
		}
	}
}

func TestGroupNormNormalisesEachGroup(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	xs := []int{3, 6, 5, 7}
	x := randSlice(r, prod(xs))
	for i := range x {
		x[i] = x[i]*3 + 5
	}
	ones, zeros := make([]float32, 6), make([]float32, 6)
	for i := range ones {
		ones[i] = 1
	}
	out := make([]float32, len(x))
	GroupNorm(out, x, xs, 3, 1e-5, ones, zeros)
	per := 2 * 5 * 7
	for g := 0; g < 9; g++ {
		var m, v float64
		for _, y := range out[g*per : (g+1)*per] {
			m += float64(y)
		}
		m /= float64(per)
		for _, y := range out[g*per : (g+1)*per] {
			v += (float64(y) - m) * (float64(y) - m)
		}
		v /= float64(per)
		if math.Abs(m) > 1e-5 || math.Abs(v-1) > 1e-3 {
			t.Errorf("group %d: mean %g var %g, want 0 and 1", g, m, v)
		}
	}
	// The affine part: weight 2, bias 1 maps y to 2y+1.
	w2, b1 := make([]float32, 6), make([]float32, 6)
	for i := range w2 {
		w2[i], b1[i] = 2, 1
	}
	out2 := make([]float32, len(x))
	GroupNorm(out2, x, xs, 3, 1e-5, w2, b1)
	for i := range out {
		if math.Abs(float64(out2[i]-(2*out[i]+1))) > 1e-5 {
			t.Fatalf("affine: got %g want %g", out2[i], 2*out[i]+1)
		}
	}
}

func TestAttentionLimits(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	B, N, C, heads := 2, 5, 6, 2
	v := randSlice(r, B*N*C)
	q := randSlice(r, B*N*C)
	// Identical keys: every query attends uniformly, so the output is the mean of v.
	k := make([]float32, B*N*C)
	for i := range k {
		k[i] = 0.3
	}
	out := make([]float32, B*N*C)
	Attention(out, q, k, v, B, N, C, heads, 0.5)
	for b := 0; b < B; b++ {
		for c := 0; c < C; c++ {
			var mean float32
			for j := 0; j < N; j++ {
				mean += v[(b*N+j)*C+c] / float32(N)
			}
			for i := 0; i < N; i++ {
				if d := math.Abs(float64(out[(b*N+i)*C+c] - mean)); d > 1e-5 {
					t.Fatalf("uniform attention: got %g want %g", out[(b*N+i)*C+c], mean)
				}
			}
		}
	}
	// A very sharp query picks the one key it matches.
	N = 3
	C, heads = 2, 1
	q = []float32{100, 0, 0, 100, 100, 0}
	k = []float32{1, 0, 0, 1, -1, -1}
	v = []float32{1, 2, 3, 4, 5, 6}
	out = make([]float32, 6)
	Attention(out, q, k, v, 1, N, C, heads, 1)
	want := []float32{1, 2, 3, 4, 1, 2}
	if maxDiff(out, want) > 1e-4 {
		t.Errorf("sharp attention: got %v want %v", out, want)
	}
}

func TestTimestepEmbedFormula(t *testing.T) {
	// dim 6, shift 1: half 3, frequencies exp(-ln(1e4)·i/2) = 1, 0.01, 1e-4.
	out := make([]float32, 6)
	TimestepEmbed(out, []float32{50}, 6, false, 1, 1)
	want := []float64{math.Sin(50), math.Sin(0.5), math.Sin(0.005), math.Cos(50), math.Cos(0.5), math.Cos(0.005)}
	for i := range want {
		if math.Abs(float64(out[i])-want[i]) > 1e-5 {
			t.Errorf("element %d: got %g want %g", i, out[i], want[i])
		}
	}
	TimestepEmbed(out, []float32{50}, 6, true, 1, 1) // flip puts cos first
	if math.Abs(float64(out[0])-math.Cos(50)) > 1e-5 || math.Abs(float64(out[3])-math.Sin(50)) > 1e-5 {
		t.Errorf("flip_sin_to_cos: got %v", out)
	}
}

func TestFourierEmbedFormula(t *testing.T) {
	out := make([]float32, 4)
	FourierEmbed(out, []float32{0.5}, []float32{1, 0.25}, false, false)
	want := []float64{math.Sin(math.Pi), math.Sin(math.Pi / 4), math.Cos(math.Pi), math.Cos(math.Pi / 4)}
	for i := range want {
		if math.Abs(float64(out[i])-want[i]) > 1e-5 {
			t.Errorf("element %d: got %g want %g", i, out[i], want[i])
		}
	}
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}
