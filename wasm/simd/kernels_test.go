package simd

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Every kernel is checked against the reference (core/cpu) on awkward
// sizes, with its buffers placed both 16-byte aligned and misaligned, and
// surrounded by guard values that must survive the call.

func newK(t testing.TB) *Kernels {
	t.Helper()
	if testGoKernels {
		return newGoK()
	}
	k, err := NewKernels()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// testGoKernels: the package's tests run a second time (TestMain, natively)
// with newK and newTestDenoiser giving the native Go kernel set.
var (
	testGoKernels bool
	newGoK        func() *Kernels
)

// newTestDenoiser is NewDenoiser, or the native Go set's denoiser on the
// second run.
func newTestDenoiser(m *model.Model) (*Denoiser, error) {
	if testGoKernels {
		return newDenoiser(m, newGoK()), nil
	}
	return NewDenoiser(m)
}

const guardN = 19

// GemmBatch must compute exactly what Gemm computes item by item, touching
// nothing between items: here the items' C interleave row by row, as
// Winograd's M [O, 16, ldm] does, with a gap after each item's row.
func TestGemmBatchMatchesGemm(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(2))
	for _, sz := range [][4]int{{1, 1, 1, 1}, {3, 7, 13, 5}, {16, MR + 1, NR - 1, 9}, {5, 33, 17, 64}, {2, 64, 100, 27}} {
		count, m, n, kd := sz[0], sz[1], sz[2], sz[3]
		mis := misalignments[(count+m+n)%len(misalignments)]
		name := fmt.Sprintf("count%d m%d n%d k%d mis%d", count, m, n, kd, mis)
		sa, sb := PackedALen(m, kd)+3, PackedBLen(kd, n)+5 // strides that are not the items' sizes
		sc := n + 2                                        // a two-float gap after each item's row
		ldc := count * sc
		ap, _ := mk(k, (count-1)*sa+PackedALen(m, kd), mis, randn(r, (count-1)*sa+PackedALen(m, kd)))
		bp, _ := mk(k, (count-1)*sb+PackedBLen(kd, n), (mis+1)%4, randn(r, (count-1)*sb+PackedBLen(kd, n)))
		c, cg := mk(k, (count-1)*sc+matLen(m, n, ldc), mis, nil)
		k.GemmBatch(c, sc, ldc, ap, sa, bp, sb, count, m, n, kd)
		cg.check(t, name)
		for i := 0; i < count; i++ {
			want, _ := mk(k, m*n, 0, nil)
			k.Gemm(want, n, ap[i*sa:], bp[i*sb:], m, n, kd, nil, NoBias, nil)
			for row := 0; row < m; row++ {
				for j := 0; j < sc && i*sc+row*ldc+j < len(c); j++ {
					got := c[i*sc+row*ldc+j]
					if j >= n {
						if math.Float32bits(got) != 0x7fc0dead {
							t.Fatalf("%s: item %d wrote into the gap after row %d", name, i, row)
						}
						continue
					}
					if math.Float32bits(got) != math.Float32bits(want[row*n+j]) {
						t.Fatalf("%s: item %d C[%d,%d] = %v, Gemm gives %v", name, i, row, j, got, want[row*n+j])
					}
				}
			}
		}
	}
}

var sentinel = math.Float32frombits(0x7fc0dead) // a NaN no kernel computes

// buf is a slice inside a larger kernel allocation whose surroundings hold
// the sentinel.
type buf struct {
	all   []float32
	lo, n int
}

// mk allocates n floats at misalignment mis (in floats, 0..3) with guards,
// filled with the sentinel (outputs) or from fill (inputs).
func mk(k *Kernels, n, mis int, fill []float32) ([]float32, *buf) {
	all := k.Alloc(n + 2*guardN + mis)
	for i := range all {
		all[i] = sentinel
	}
	b := &buf{all, guardN + mis, n}
	s := all[b.lo : b.lo+n : b.lo+n]
	copy(s, fill)
	return s, b
}

func (b *buf) check(t testing.TB, what string) {
	t.Helper()
	for i, v := range b.all {
		if (i < b.lo || i >= b.lo+b.n) && math.Float32bits(v) != 0x7fc0dead {
			t.Fatalf("%s: guard at offset %d overwritten with %v", what, i-b.lo, v)
		}
	}
}

func randn(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// closeTo fails unless got and want agree to tol relative to the scale of want.
func closeTo(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	scale = math.Max(scale, 1e-30)
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if !(d <= tol*scale) {
			t.Fatalf("%s: element %d is %v, want %v (diff %.3g, scale %.3g, tol %.1g)", what, i, got[i], want[i], d, scale, tol)
		}
	}
}

var misalignments = []int{0, 1, 3}

func TestGemmMatchesReference(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(1))
	sizes := [][3]int{{1, 1, 1}, {1, 8, 3}, {MR, NR, 4}, {7, 13, 5}, {3, 9, 1}, {33, 17, 9}, {5, 64, 300},
		{64, 100, 27}, {2 * MR, 3 * NR, 17}, {MR + 1, NR - 1, 8}, {16, 1, 65}}
	for _, sz := range sizes {
		m, n, kd := sz[0], sz[1], sz[2]
		for _, mode := range []BiasMode{NoBias, RowBias, ColBias} {
			for _, withRes := range []bool{false, true} {
				mis := misalignments[(m+n+kd+int(mode))%len(misalignments)]
				name := fmt.Sprintf("m%d n%d k%d bias%d res%v mis%d", m, n, kd, mode, withRes, mis)
				a, bt := randn(r, m*kd), randn(r, n*kd) // B given as Bᵀ [n,k], the layout of cpu.Linear's weight
				ldc := n + mis + 2                      // gaps between rows must stay untouched
				// Reference: cpu.Linear computes x·wᵀ + bias with x = A, w = Bᵀ.
				want := make([]float32, m*n)
				var colBias []float32
				if mode == ColBias {
					colBias = randn(r, n)
				}
				cpu.Linear(want, a, bt, colBias, kd, n)
				rowBias := randn(r, m)
				if mode == RowBias {
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							want[i*n+j] += rowBias[i]
						}
					}
				}
				resv := randn(r, m*ldc)
				if withRes {
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							want[i*n+j] += resv[i*ldc+j]
						}
					}
				}

				as, _ := mk(k, m*kd, mis, a)
				bts, _ := mk(k, n*kd, mis, bt)
				ap, apg := mk(k, PackedALen(m, kd), mis, nil)
				bp, bpg := mk(k, PackedBLen(kd, n), (mis+1)%4, nil)
				k.PackA(ap, as, kd, m, kd)
				apg.check(t, name+" pack_a")
				k.PackBT(bp, bts, kd, n, kd)
				bpg.check(t, name+" pack_bt")
				var bias []float32
				switch mode {
				case RowBias:
					bias, _ = mk(k, PackedRows(m), mis, rowBias)
				case ColBias:
					bias, _ = mk(k, PackedCols(n), mis, colBias)
				}
				var res []float32
				if withRes {
					res, _ = mk(k, matLen(m, n, ldc), mis, resv)
				}
				c, cg := mk(k, matLen(m, n, ldc), mis, nil)
				k.Gemm(c, ldc, ap, bp, m, n, kd, bias, mode, res)
				cg.check(t, name)
				got := make([]float32, m*n)
				for i := 0; i < m; i++ {
					copy(got[i*n:(i+1)*n], c[i*ldc:])
					for j := n; j < ldc && i*ldc+j < len(c); j++ {
						if math.Float32bits(c[i*ldc+j]) != 0x7fc0dead {
							t.Fatalf("%s: wrote into the row gap at (%d,%d)", name, i, j)
						}
					}
				}
				closeTo(t, name, got, want, 1e-5*math.Sqrt(float64(kd)))
			}
		}
	}
}

func TestPackBMatchesLayout(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(2))
	for _, sz := range [][2]int{{1, 1}, {5, 7}, {3, 8}, {9, 17}, {4, 33}} {
		kd, n := sz[0], sz[1]
		for _, mis := range misalignments {
			ldb := n + mis
			b := randn(r, kd*ldb)
			bs, _ := mk(k, len(b), mis, b)
			bp, g := mk(k, PackedBLen(kd, n), mis, nil)
			k.PackB(bp, bs, ldb, kd, n)
			g.check(t, "pack_b")
			for j := 0; j < PackedCols(n); j++ {
				for kk := 0; kk < kd; kk++ {
					want := float32(0)
					if j < n {
						want = b[kk*ldb+j]
					}
					if got := bp[(j/NR)*NR*kd+kk*NR+j%NR]; got != want {
						t.Fatalf("k%d n%d: packed (%d,%d) = %v, want %v", kd, n, kk, j, got, want)
					}
				}
			}
		}
	}
}

// refConv runs the reference Conv2D.
func refConv(x []float32, xs []int, w []float32, ws []int, bias []float32, stride int, pad [4]int) ([]float32, []int) {
	oh := (xs[2]+pad[0]+pad[2]-ws[2])/stride + 1
	ow := (xs[3]+pad[1]+pad[3]-ws[3])/stride + 1
	os := []int{xs[0], ws[0], oh, ow}
	out := make([]float32, tensor.Numel(os))
	cpu.Conv2D(out, x, xs, w, ws, bias, stride, pad, os)
	return out, os
}

func TestConvMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	cases := []struct {
		xs, ws []int
		stride int
		pad    [4]int
		bias   bool
	}{
		{[]int{1, 3, 7, 5}, []int{4, 3, 3, 3}, 1, [4]int{1, 1, 1, 1}, true},
		{[]int{7, 5, 9, 9}, []int{3, 5, 3, 3}, 2, [4]int{1, 1, 1, 1}, true},
		{[]int{2, 4, 8, 8}, []int{6, 4, 3, 3}, 2, [4]int{0, 0, 1, 1}, true},
		{[]int{2, 6, 5, 3}, []int{5, 6, 1, 1}, 1, [4]int{}, true},
		{[]int{1, 2, 11, 6}, []int{3, 2, 3, 3}, 2, [4]int{}, false},
		{[]int{7, 9, 28, 28}, []int{11, 9, 3, 3}, 1, [4]int{1, 1, 1, 1}, true},
		{[]int{1, 16, 14, 14}, []int{16, 16, 3, 3}, 1, [4]int{1, 1, 1, 1}, true},
		{[]int{3, 8, 7, 7}, []int{9, 8, 3, 3}, 1, [4]int{1, 1, 1, 1}, false},
		{[]int{2, 32, 16, 16}, []int{64, 32, 1, 1}, 1, [4]int{}, true},
	}
	for _, c := range cases {
		k := newK(t)
		params := map[string]*tensor.Tensor{"w": tensor.From(randn(r, tensor.Numel(c.ws)), c.ws...)}
		biasName := ""
		var bias []float32
		if c.bias {
			bias = randn(r, c.ws[0])
			params["b"] = tensor.From(bias, c.ws[0])
			biasName = "b"
		}
		x := randn(r, tensor.Numel(c.xs))
		want, os := refConv(x, c.xs, params["w"].Data, c.ws, bias, c.stride, c.pad)
		wt := newWeights(k, params)
		kd := c.ws[1] * c.ws[2] * c.ws[3]
		// Pixel blocks: all at once, the default, one panel, three panels
		// (the last block narrower when the pixels do not divide evenly).
		for _, chunk := range []int{0, convChunkBytes, 1, 4 * kd * 3 * NR} {
			saved := convChunkBytes
			convChunkBytes = chunk
			cv := newConv(k, wt, c.xs, "w", biasName, c.stride, c.pad, os)
			convChunkBytes = saved
			need := cv.need()
			s := need.alloc(k)
			for _, mis := range misalignments {
				name := fmt.Sprintf("x%v w%v s%d p%v chunk%d mis%d", c.xs, c.ws, c.stride, c.pad, chunk, mis)
				xs, _ := mk(k, len(x), mis, x)
				out, g := mk(k, len(want), mis, nil)
				cv.run(k, s, out, xs, nil, nil)
				g.check(t, name)
				closeTo(t, name, out, want, 2e-5)

				// With a per-sample channel bias and a residual fused in.
				e := randn(r, c.xs[0]*c.ws[0])
				res := randn(r, len(want))
				want2 := append([]float32(nil), want...)
				plane := os[2] * os[3]
				for i := range want2 {
					want2[i] += e[i/plane] + res[i]
				}
				es, _ := mk(k, len(e), mis, e)
				rs, _ := mk(k, len(res), mis, res)
				cv.run(k, s, out, xs, es, rs)
				g.check(t, name+" fused")
				closeTo(t, name+" fused", out, want2, 2e-5)
			}
		}
	}
}

func TestGroupNormMatchesReference(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(4))
	cases := []struct{ b, c, h, w, groups int }{
		{1, 4, 3, 3, 2}, {7, 6, 5, 1, 3}, {2, 32, 8, 8, 16}, {1, 8, 7, 7, 8}, {3, 5, 1, 1, 1}, {1, 64, 32, 32, 16},
	}
	for _, c := range cases {
		for _, mis := range misalignments {
			xs := []int{c.b, c.c, c.h, c.w}
			n := tensor.Numel(xs)
			per := c.h * c.w
			x := randn(r, n)
			for i := range x {
				x[i] = x[i]*3 + 2 // nonzero mean
				if mis == 3 {
					x[i] = 300 + x[i]*0.01 // mean far from 0 relative to the spread
				}
			}
			gamma, beta, e := randn(r, c.c), randn(r, c.c), randn(r, 2*c.b*c.c)
			for _, mode := range []string{"plain", "nobias", "silu", "scaleshift+silu"} {
				name := fmt.Sprintf("%v g%d mis%d %s", xs, c.groups, mis, mode)
				b := beta
				if mode == "nobias" {
					b = nil
				}
				want := make([]float32, n)
				cpu.GroupNorm(want, x, xs, c.groups, 1e-5, gamma, b)
				if mode == "scaleshift+silu" {
					for i := range want {
						bb, ch := i/(c.c*per), (i/per)%c.c
						want[i] = want[i]*(1+e[bb*2*c.c+ch]) + e[bb*2*c.c+c.c+ch]
					}
				}
				if mode == "silu" || mode == "scaleshift+silu" {
					for i := range want {
						want[i] = cpu.SiLU(want[i])
					}
				}
				xk, _ := mk(k, n, mis, x)
				gk, _ := mk(k, c.c, mis, gamma)
				var bk, ek []float32
				if b != nil {
					bk, _ = mk(k, c.c, mis, b)
				}
				if mode == "scaleshift+silu" {
					ek, _ = mk(k, len(e), mis, e)
				}
				out, g := mk(k, n, (mis+2)%4, nil)
				k.GroupNorm(out, xk, c.b, c.c, per, c.groups, 1e-5, gk, bk, mode == "silu" || mode == "scaleshift+silu", ek)
				g.check(t, name)
				closeTo(t, name, out, want, 3e-6)
			}
		}
	}
}

// runNode runs one graph node through the reference, for elementwise checks.
func runNode(t testing.TB, n graph.Node, shapes [][]int, ins ...[]float32) []float32 {
	g := &graph.Graph{Shapes: shapes}
	vals := make([][]float32, len(shapes))
	for i := range ins {
		vals[i] = ins[i]
		n.In = append(n.In, graph.Value(i))
	}
	n.Out = graph.Value(len(ins))
	out := make([]float32, tensor.Numel(shapes[n.Out]))
	if err := cpu.Exec(g, &n, vals, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestElementwiseMatchesReference(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(5))
	for _, xs := range [][]int{{1, 1, 1, 1}, {1, 3, 5, 7}, {7, 4, 4, 4}, {2, 5, 3, 1}, {1, 64, 16, 16}} {
		n := tensor.Numel(xs)
		bsz, c, plane := xs[0], xs[1], xs[2]*xs[3]
		for _, mis := range misalignments {
			a, b := randn(r, n), randn(r, n)
			for i := range a {
				a[i] *= 12 // SiLU over a wide range
			}
			e, e2 := randn(r, bsz*c), randn(r, bsz*2*c)
			ak, _ := mk(k, n, mis, a)
			bk, _ := mk(k, n, (mis+1)%4, b)
			ek, _ := mk(k, len(e), mis, e)
			e2k, _ := mk(k, len(e2), mis, e2)
			out, g := mk(k, n, (mis+2)%4, nil)
			name := func(op string) string { return fmt.Sprintf("%s %v mis%d", op, xs, mis) }

			k.Add(out, ak, bk)
			g.check(t, name("add"))
			closeTo(t, name("add"), out, runNode(t, graph.Node{Op: graph.OpAdd}, [][]int{xs, xs, xs}, a, b), 0)

			k.Affine(out, ak, 0.37, -1.5)
			g.check(t, name("affine"))
			closeTo(t, name("affine"), out, runNode(t, graph.Node{Op: graph.OpAffine, F: 0.37, G: -1.5}, [][]int{xs, xs}, a), 1e-7)

			k.SiLU(out, ak)
			g.check(t, name("silu"))
			closeTo(t, name("silu"), out, runNode(t, graph.Node{Op: graph.OpSiLU}, [][]int{xs, xs}, a), 1e-6)

			k.AddChannel(out, ak, ek, bsz*c, plane)
			g.check(t, name("add_channel"))
			closeTo(t, name("add_channel"), out, runNode(t, graph.Node{Op: graph.OpAddChannel}, [][]int{xs, {bsz, c}, xs}, a, e), 0)

			k.ScaleShift(out, ak, e2k, bsz, c, plane)
			g.check(t, name("scale_shift"))
			closeTo(t, name("scale_shift"), out, runNode(t, graph.Node{Op: graph.OpScaleShift}, [][]int{xs, {bsz, 2 * c}, xs}, a, e2), 1e-7)

			// In place.
			k.Add(ak, ak, bk)
			want := make([]float32, n)
			for i := range want {
				want[i] = a[i] + b[i]
			}
			closeTo(t, name("add in place"), ak, want, 0)
		}
	}
}

// SiLU relative accuracy over the whole float range that matters, including
// where exp over- and underflows.
func TestSiLUAccuracy(t *testing.T) {
	k := newK(t)
	const n = 20001
	x := k.Alloc(n)
	for i := range x {
		x[i] = float32(-100 + 200*float64(i)/(n-1))
	}
	out := k.Alloc(n)
	k.SiLU(out, x)
	var worst float64
	for i, v := range x {
		want := float64(v) / (1 + math.Exp(-float64(v)))
		d := math.Abs(float64(out[i]) - want)
		if want != 0 {
			d /= math.Abs(want)
		}
		if math.Abs(want) < 1e-30 {
			d = math.Abs(float64(out[i]) - want) // both tiny: absolute
		}
		worst = math.Max(worst, d)
	}
	if worst > 2e-6 {
		t.Errorf("SiLU worst relative error %.3g", worst)
	}
	t.Logf("SiLU worst relative error over [-100, 100]: %.3g", worst)
}

func TestAttentionMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	for _, c := range []struct{ b, n, c, heads int }{
		{1, 1, 4, 1}, {2, 16, 64, 1}, {1, 49, 64, 4}, {7, 13, 12, 3}, {1, 196, 64, 4}, {3, 9, 8, 2},
	} {
		k := newK(t)
		d := c.c / c.heads
		scale := float32(1 / math.Sqrt(float64(d)))
		q, kk, v := randn(r, c.b*c.n*c.c), randn(r, c.b*c.n*c.c), randn(r, c.b*c.n*c.c)
		for i := range q {
			q[i] *= 2 // peakier softmax
		}
		want := make([]float32, len(q))
		cpu.Attention(want, q, kk, v, c.b, c.n, c.c, c.heads, scale)
		a := &attention{b: c.b, n: c.n, c: c.c, heads: c.heads, d: d, scale: scale}
		need := a.need()
		s := need.alloc(k)
		for _, mis := range misalignments {
			name := fmt.Sprintf("%+v mis%d", c, mis)
			qk, _ := mk(k, len(q), mis, q)
			kk2, _ := mk(k, len(kk), mis, kk)
			vk, _ := mk(k, len(v), mis, v)
			out, g := mk(k, len(q), mis, nil)
			a.run(k, s, out, qk, kk2, vk)
			g.check(t, name)
			closeTo(t, name, out, want, 3e-6)
		}
	}
}

func TestSoftmaxRows(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(7))
	for _, n := range []int{1, 3, 4, 5, 17, 196, 256} {
		rows, ld := 3, n+2
		s0 := randn(r, rows*ld)
		for i := range s0 {
			s0[i] *= 20
			if i%7 == 3 {
				s0[i] = -170 - float32(i%5) // weights around e^-85 and below: flushed to 0
			}
		}
		for _, mis := range misalignments {
			sk, g := mk(k, matLen(rows, n, ld), mis, s0)
			k.Softmax(sk, rows, n, ld, 0.5)
			g.check(t, "softmax")
			for i := 0; i < rows; i++ {
				mx := math.Inf(-1)
				for j := 0; j < n; j++ {
					mx = math.Max(mx, float64(s0[i*ld+j]*0.5))
				}
				var sum float64
				for j := 0; j < n; j++ {
					sum += math.Exp(float64(s0[i*ld+j]*0.5) - mx)
				}
				for j := 0; j < n; j++ {
					arg := float64(s0[i*ld+j]*0.5) - mx
					want := math.Exp(arg) / sum
					// float32 rounding of the argument costs |arg|·2^-24 relative.
					// (weights below e^-80 are flushed to 0: absolute 1e-34.)
					if d := math.Abs(float64(sk[i*ld+j]) - want); d > (1e-6+6e-8*math.Abs(arg))*want+1e-34 {
						t.Fatalf("n%d row %d col %d: %v, want %v", n, i, j, sk[i*ld+j], want)
					}
				}
				for j := n; j < ld && i*ld+j < len(sk); j++ {
					if sk[i*ld+j] != s0[i*ld+j] {
						t.Fatalf("n%d: softmax wrote into the row gap", n)
					}
				}
			}
		}
	}
}

func TestConvTransposeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(8))
	cases := []struct {
		xs, ws              []int // x [B,I,H,W], weight [I,O,KH,KW]
		stride, pad, outPad int
		bias                bool
	}{
		{[]int{1, 256, 2, 2}, []int{256, 128, 3, 3}, 2, 0, 0, false}, // ScoreNet tconv4
		{[]int{7, 32, 5, 5}, []int{32, 16, 3, 3}, 2, 0, 1, false},    // tconv3-like, batch 7
		{[]int{2, 12, 12, 12}, []int{12, 5, 3, 3}, 2, 0, 1, true},    // tconv2-like
		{[]int{1, 8, 26, 26}, []int{8, 1, 3, 3}, 1, 0, 0, true},      // tconv1-like: O = 1
		{[]int{3, 5, 7, 6}, []int{5, 7, 4, 4}, 2, 1, 0, true},        // diffusers-style up-sampling
		{[]int{1, 3, 5, 4}, []int{3, 2, 2, 3}, 3, 2, 2, true},        // taps that miss the output
		{[]int{1, 1, 1, 1}, []int{1, 1, 1, 1}, 1, 0, 0, true},
		{[]int{7, 3, 9, 3}, []int{3, 9, 5, 2}, 1, 2, 0, false}, // padding wider than some taps
	}
	for _, c := range cases {
		k := newK(t)
		oh := (c.xs[2]-1)*c.stride - 2*c.pad + c.ws[2] + c.outPad
		ow := (c.xs[3]-1)*c.stride - 2*c.pad + c.ws[3] + c.outPad
		os := []int{c.xs[0], c.ws[1], oh, ow}
		params := map[string]*tensor.Tensor{"w": tensor.From(randn(r, tensor.Numel(c.ws)), c.ws...)}
		biasName := ""
		var bias []float32
		if c.bias {
			bias = randn(r, c.ws[1])
			params["b"] = tensor.From(bias, c.ws[1])
			biasName = "b"
		}
		x := randn(r, tensor.Numel(c.xs))
		want := make([]float32, tensor.Numel(os))
		cpu.ConvTranspose2D(want, x, c.xs, params["w"].Data, c.ws, bias, c.stride, c.pad, os)
		wt := newWeights(k, params)
		cv := newConvT(k, wt, c.xs, "w", biasName, c.stride, c.pad, os)
		need := cv.need()
		s := need.alloc(k)
		tol := 2e-5 * math.Sqrt(float64(c.xs[1]*c.ws[2]*c.ws[3])/9)
		for _, mis := range misalignments {
			name := fmt.Sprintf("x%v w%v s%d p%d op%d mis%d", c.xs, c.ws, c.stride, c.pad, c.outPad, mis)
			xs, _ := mk(k, len(x), mis, x)
			out, g := mk(k, len(want), (mis+1)%4, nil)
			cv.run(k, s, out, xs, nil)
			g.check(t, name)
			closeTo(t, name, out, want, tol)

			// With a per-sample channel bias fused in.
			e := randn(r, c.xs[0]*c.ws[1])
			want2 := append([]float32(nil), want...)
			plane := oh * ow
			for i := range want2 {
				want2[i] += e[i/plane]
			}
			es, _ := mk(k, len(e), mis, e)
			cv.run(k, s, out, xs, es)
			g.check(t, name+" fused")
			closeTo(t, name+" fused", out, want2, tol)
		}
	}
}

func TestPackATMatchesLayout(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(9))
	for _, sz := range [][2]int{{1, 1}, {5, 7}, {3, MR}, {9, 17}, {4, 33}, {MR + 1, 2}} {
		kd, m := sz[0], sz[1]
		for _, mis := range misalignments {
			ld := m + mis
			at := randn(r, kd*ld)
			as, _ := mk(k, len(at), mis, at)
			ap, g := mk(k, PackedALen(m, kd), (mis+1)%4, nil)
			k.PackAT(ap, as, ld, m, kd)
			g.check(t, "pack_at")
			// The same A packed from its row-major form must be identical.
			a := make([]float32, m*kd)
			for i := 0; i < m; i++ {
				for kk := 0; kk < kd; kk++ {
					a[i*kd+kk] = at[kk*ld+i]
				}
			}
			ak, _ := mk(k, len(a), 0, a)
			want := k.Alloc(PackedALen(m, kd))
			k.PackA(want, ak, kd, m, kd)
			for i := range want {
				if ap[i] != want[i] {
					t.Fatalf("k%d m%d mis%d: packed[%d] = %v, want %v", kd, m, mis, i, ap[i], want[i])
				}
			}
		}
	}
}

func TestSoftmaxColsMatchesReference(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(10))
	for _, sz := range [][2]int{{1, 1}, {32, 784}, {7, 5}, {3, 9}, {16, 4}, {1, 13}} {
		rows, n := sz[0], sz[1]
		for _, mis := range misalignments {
			x := randn(r, rows*n)
			for i := range x {
				x[i] *= 6
			}
			want := make([]float32, rows*n)
			col := make([]float64, rows)
			for j := 0; j < n; j++ {
				mx := math.Inf(-1)
				for i := 0; i < rows; i++ {
					col[i] = float64(x[i*n+j])
					mx = math.Max(mx, col[i])
				}
				var sum float64
				for i := range col {
					col[i] = math.Exp(col[i] - mx)
					sum += col[i]
				}
				for i := range col {
					want[i*n+j] = float32(col[i] / sum * 0.25)
				}
			}
			name := fmt.Sprintf("softmax_cols %dx%d mis%d", rows, n, mis)
			xs, xg := mk(k, len(x), mis, x)
			out, g := mk(k, len(x), (mis+2)%4, nil)
			k.SoftmaxCols(out, xs, rows, n, 0.25)
			g.check(t, name)
			closeTo(t, name, out, want, 2e-6)
			k.SoftmaxCols(xs, xs, rows, n, 0.25) // in place
			xg.check(t, name+" in place")
			closeTo(t, name+" in place", xs, want, 2e-6)
		}
	}
}

func TestRMSNormMatchesReference(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(11))
	for _, xs := range [][]int{{1, 16, 28, 28}, {7, 32, 7, 7}, {2, 3, 5, 1}, {1, 64, 1, 1}, {3, 5, 2, 3}} {
		n, c, per := tensor.Numel(xs), xs[1], xs[2]*xs[3]
		for _, mis := range misalignments {
			x, g := randn(r, n), randn(r, c)
			for i := range x[:min(n, 3)] {
				x[i] = 0 // a position with some zero channels
			}
			scale := math.Sqrt(float64(c))
			want := make([]float32, n)
			cpu.RMSNormChannel(want, x, xs, g, scale, 1e-12)
			name := fmt.Sprintf("rms_norm %v mis%d", xs, mis)
			xk, _ := mk(k, n, mis, x)
			gk, _ := mk(k, c, mis, g)
			out, og := mk(k, n, (mis+1)%4, nil)
			k.RMSNorm(out, xk, gk, xs[0], c, per, float32(scale), 1e-12)
			og.check(t, name)
			closeTo(t, name, out, want, 2e-6)
		}
	}
}

func TestMemAttentionMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(12))
	for _, c := range []struct {
		linear                bool
		b, heads, d, h, w, mt int
	}{
		{true, 1, 4, 32, 28, 28, 4}, {true, 7, 2, 5, 3, 7, 3}, {true, 2, 3, 8, 5, 5, 0}, {true, 1, 1, 1, 1, 1, 1},
		{false, 1, 4, 32, 7, 7, 4}, {false, 7, 2, 5, 3, 7, 3}, {false, 2, 3, 8, 5, 5, 0}, {false, 1, 1, 1, 1, 1, 1},
		{false, 1, 2, 16, 14, 14, 2},
	} {
		k := newK(t)
		hidden, n := c.heads*c.d, c.h*c.w
		qkv := randn(r, c.b*3*hidden*n)
		for i := range qkv {
			qkv[i] *= 2
		}
		scale := float32(1 / math.Sqrt(float64(c.d)))
		params := map[string]*tensor.Tensor{}
		memName := ""
		var mem []float32
		if c.mt > 0 {
			memName = "mem"
			shape := []int{2, c.heads, c.mt, c.d}
			if c.linear {
				shape = []int{2, c.heads, c.d, c.mt}
			}
			mem = randn(r, tensor.Numel(shape))
			params[memName] = tensor.From(mem, shape...)
		}
		want := make([]float32, c.b*hidden*n)
		if c.linear {
			cpu.LinearAttention(want, qkv, mem, c.b, hidden, n, c.heads, c.mt, scale)
		} else {
			cpu.AttentionMemKV(want, qkv, mem, c.b, hidden, n, c.heads, c.mt, scale)
		}
		a := newMemAttention(k, newWeights(k, params), c.linear, []int{c.b, 3 * hidden, c.h, c.w}, c.heads, c.mt, memName, scale)
		need := a.need()
		s := need.alloc(k)
		for _, mis := range misalignments {
			name := fmt.Sprintf("%+v mis%d", c, mis)
			qk, _ := mk(k, len(qkv), mis, qkv)
			out, g := mk(k, len(want), (mis+1)%4, nil)
			a.run(k, s, out, qk)
			g.check(t, name)
			closeTo(t, name, out, want, 3e-6)
		}
	}
}

func TestLayoutKernelsMatchReference(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(13))
	for _, xs := range [][]int{{1, 1, 1, 1}, {7, 5, 3, 7}, {2, 6, 4, 4}, {1, 13, 9, 1}, {3, 8, 5, 6}, {1, 64, 14, 14}} {
		b, c, h, w := xs[0], xs[1], xs[2], xs[3]
		n := tensor.Numel(xs)
		for _, mis := range misalignments {
			name := func(op string) string { return fmt.Sprintf("%s %v mis%d", op, xs, mis) }
			x := randn(r, n)
			xk, _ := mk(k, n, mis, x)

			out, g := mk(k, n, (mis+1)%4, nil)
			k.Transpose(out, xk, b, c, h*w)
			g.check(t, name("to_tokens"))
			closeTo(t, name("to_tokens"), out, runNode(t, graph.Node{Op: graph.OpToTokens}, [][]int{xs, {b, h * w, c}}, x), 0)

			out, g = mk(k, n, (mis+2)%4, nil)
			k.Transpose(out, xk, b, h*w, c) // x read as tokens [B, HW, C]
			closeTo(t, name("from_tokens"), out, runNode(t, graph.Node{Op: graph.OpFromTokens, Ints: []int{h, w}}, [][]int{{b, h * w, c}, xs}, x), 0)
			g.check(t, name("from_tokens"))

			out, g = mk(k, 4*n, (mis+3)%4, nil)
			k.Upsample2x(out, xk, b*c, h, w)
			g.check(t, name("upsample"))
			closeTo(t, name("upsample"), out, runNode(t, graph.Node{Op: graph.OpUpsampleNearest2x}, [][]int{xs, {b, c, 2 * h, 2 * w}}, x), 0)

			// Concat with a second input of 3 channels, then a channel slice.
			ys := []int{b, 3, h, w}
			y := randn(r, tensor.Numel(ys))
			yk, _ := mk(k, len(y), (mis+1)%4, y)
			os := []int{b, c + 3, h, w}
			out, g = mk(k, tensor.Numel(os), mis, nil)
			na, nb := c*h*w, 3*h*w
			k.CopyRows(out, na+nb, xk, na, b, na)
			k.CopyRows(out[na:], na+nb, yk, nb, b, nb)
			g.check(t, name("concat"))
			cat := runNode(t, graph.Node{Op: graph.OpConcat}, [][]int{xs, ys, os}, x, y)
			closeTo(t, name("concat"), out, cat, 0)

			start, cnt := c/2, 2
			ss := []int{b, cnt, h, w}
			sl, g2 := mk(k, tensor.Numel(ss), (mis+2)%4, nil)
			per := h * w
			k.CopyRows(sl, cnt*per, out[start*per:], (c+3)*per, b, cnt*per)
			g2.check(t, name("slice_channels"))
			closeTo(t, name("slice_channels"), sl, runNode(t, graph.Node{Op: graph.OpSliceChannels, Ints: []int{start, cnt}}, [][]int{os, ss}, cat), 0)
		}
	}
}

// im2col on the padded input sized exactly to the tables' span, between
// guards: every panel (contiguous, wrapping to the next row, gathered) must
// hold exactly the values its offsets name.
func TestIm2colMatchesDefinition(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(14))
	for _, c := range []struct{ ci, hp, wp, kh, kw, stride int }{
		{3, 30, 30, 3, 3, 1}, {2, 16, 16, 3, 3, 1}, {2, 9, 9, 3, 3, 1}, {1, 11, 7, 3, 3, 2}, {4, 6, 6, 3, 3, 1},
		{2, 28, 28, 1, 1, 1}, {1, 5, 13, 2, 2, 1}, {3, 10, 10, 3, 3, 1},
	} {
		oh, ow := (c.hp-c.kh)/c.stride+1, (c.wp-c.kw)/c.stride+1
		kd, npix := c.ci*c.kh*c.kw, oh*ow
		koff := k.AllocI32(kd)
		for i := 0; i < c.ci; i++ {
			for ky := 0; ky < c.kh; ky++ {
				for kx := 0; kx < c.kw; kx++ {
					koff[(i*c.kh+ky)*c.kw+kx] = int32(4 * ((i*c.hp+ky)*c.wp + kx))
				}
			}
		}
		pixoff := k.AllocI32(PackedCols(npix))
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				pixoff[oy*ow+ox] = int32(4 * (oy*c.stride*c.wp + ox*c.stride))
			}
		}
		tab := NewIm2colTables(koff, pixoff)
		for _, mis := range misalignments {
			name := fmt.Sprintf("%+v mis%d", c, mis)
			x := randn(r, tab.span)
			xp, _ := mk(k, len(x), mis, x)
			bp, g := mk(k, PackedBLen(kd, npix), (mis+1)%4, nil)
			k.Im2col(bp, xp, tab)
			g.check(t, name)
			for j := 0; j < npix; j++ {
				for kk := 0; kk < kd; kk++ {
					want := x[(koff[kk]+pixoff[j])/4]
					if got := bp[(j/NR)*NR*kd+kk*NR+j%NR]; got != want {
						t.Fatalf("%s: pixel %d depth %d: %v, want %v", name, j, kk, got, want)
					}
				}
			}
		}
	}
}
