package simd

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// winoGeom is the tile geometry of a [b, i, h, w] input with padding pad
// and a 3x3 stride-1 kernel, for the kernel-level tests.
type winoGeom struct {
	b, i, o, h, w, oh, ow, th, tw, hp, wp int
	pad                                   [4]int
}

func newWinoGeom(b, i, o, h, w int, pad [4]int) winoGeom {
	g := winoGeom{b: b, i: i, o: o, h: h, w: w, pad: pad}
	g.oh, g.ow = h+pad[0]+pad[2]-2, w+pad[1]+pad[3]-2
	g.th, g.tw = (g.oh+1)/2, (g.ow+1)/2
	g.hp, g.wp = 2*g.th+2, 2*g.tw+2
	return g
}

// refWinoIn is V = Bᵀ d B of tile j, channel i, read from the padded xp
// (float64, the definition's order).
func refWinoIn(xp []float32, pstride, wp, off, i int) [16]float64 {
	bt := [4][4]float64{{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}}
	var v [16]float64
	for r := range 4 {
		for c := range 4 {
			var s float64
			for a := range 4 {
				for b := range 4 {
					s += bt[r][a] * float64(xp[i*pstride+off+a*wp+b]) * bt[c][b]
				}
			}
			v[4*r+c] = s
		}
	}
	return v
}

// TestWinogradInMatchesDefinition checks winograd_in against Bᵀ d B of
// every tile, on awkward sizes (odd and tiny maps, channel counts that are
// not multiples of 4, batch 1 and 7, asymmetric padding), with guards
// around the output, aligned and not.
func TestWinogradInMatchesDefinition(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(11))
	cases := []struct {
		b, i, h, w int
		pad        [4]int
	}{
		{1, 1, 1, 1, [4]int{1, 1, 1, 1}}, {1, 3, 2, 2, [4]int{1, 1, 1, 1}}, {7, 5, 7, 7, [4]int{1, 1, 1, 1}},
		{2, 6, 5, 9, [4]int{0, 1, 2, 1}}, {1, 4, 28, 28, [4]int{1, 1, 1, 1}}, {7, 9, 4, 3, [4]int{0, 0, 0, 0}},
	}
	for _, c := range cases {
		g := newWinoGeom(c.b, c.i, 1, c.h, c.w, c.pad)
		nt := c.b * g.th * g.tw
		pstride := g.hp * g.wp
		for _, mis := range misalignments {
			name := fmt.Sprintf("b%d i%d %dx%d pad%v mis%d", c.b, c.i, c.h, c.w, c.pad, mis)
			xp, _ := mk(k, c.b*c.i*pstride, mis, randn(r, c.b*c.i*pstride))
			tab := k.AllocI32(PackedCols(nt))
			j := 0
			for b := 0; b < c.b; b++ {
				for ty := 0; ty < g.th; ty++ {
					for tx := 0; tx < g.tw; tx++ {
						tab[j] = int32(4 * (b*c.i*pstride + 2*ty*g.wp + 2*tx))
						j++
					}
				}
			}
			tt := NewWinoTables(tab, make([]int32, len(tab)), make([]int32, len(tab)), nt, g.wp, 1)
			vstride := PackedBLen(c.i, nt) + 3 // gaps between the 16 matrices stay untouched
			vp, vg := mk(k, 15*vstride+PackedBLen(c.i, nt), (mis+1)%4, nil)
			k.WinogradIn(vp, xp, tt, c.i, pstride, g.wp, vstride)
			for x := 0; x < 16; x++ {
				for q := PackedBLen(c.i, nt); x < 15 && q < vstride; q++ {
					if math.Float32bits(vp[x*vstride+q]) != 0x7fc0dead {
						t.Fatalf("%s: wrote the gap after V_%d", name, x)
					}
				}
			}
			vg.check(t, name)
			for j := 0; j < PackedCols(nt); j++ {
				for i := 0; i < c.i; i++ {
					want := refWinoIn(xp, pstride, g.wp, int(tab[j])/4, i)
					for x := range 16 {
						got := vp[x*vstride+(j/NR)*NR*c.i+i*NR+j%NR]
						if math.Abs(float64(got)-want[x]) > 1e-6*(1+math.Abs(want[x])) {
							t.Fatalf("%s: V_%d[%d, tile %d] = %v, want %v", name, x, i, j, got, want[x])
						}
					}
				}
			}
		}
	}
}

// TestWinogradOutMatchesDefinition checks winograd_out against Aᵀ M A plus
// the epilogue, with cropped edge tiles (odd output sizes), 1x1 and 2x2
// outputs, tile counts not multiples of 4, per-sample bias rows, with and
// without bias and residual, guards around the output, aligned and not.
func TestWinogradOutMatchesDefinition(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(12))
	at := [2][4]float64{{1, 1, 1, 0}, {0, 1, -1, -1}}
	cases := []struct{ b, o, oh, ow int }{{1, 1, 1, 1}, {1, 3, 2, 2}, {7, 5, 7, 7}, {2, 6, 5, 9}, {1, 4, 28, 28}, {7, 9, 4, 3}, {3, 2, 1, 6}}
	for _, c := range cases {
		th, tw := (c.oh+1)/2, (c.ow+1)/2
		nt, plane := c.b*th*tw, c.oh*c.ow
		ldm := ceilTo(nt, 4) + 1
		tab, btab := k.AllocI32(PackedCols(nt)), k.AllocI32(PackedCols(nt))
		j := 0
		for b := 0; b < c.b; b++ {
			for ty := 0; ty < th; ty++ {
				for tx := 0; tx < tw; tx++ {
					o := int32(4 * (b*c.o*plane + 2*ty*c.ow + 2*tx))
					if 2*tx+1 >= c.ow {
						o |= 1
					}
					if 2*ty+1 >= c.oh {
						o |= 2
					}
					tab[j], btab[j] = o, int32(4*b*c.o)
					j++
				}
			}
		}
		// The bias rows: one per sample (as conv uses them), or cycling
		// through the samples' rows tile by tile (the kernel must not take
		// one row for four tiles unless they share it).
		btab2 := k.AllocI32(PackedCols(nt))
		for j := 0; j < nt; j++ {
			btab2[j] = int32(4 * c.o * (j % c.b))
		}
		for _, mode := range []string{"plain", "bias", "res", "bias+res", "tilebias"} {
			bt := btab
			if mode == "tilebias" {
				bt = btab2
			}
			tt := NewWinoTables(make([]int32, PackedCols(nt)), tab, bt, nt, 1, c.ow)
			for _, mis := range misalignments {
				name := fmt.Sprintf("b%d o%d %dx%d %s mis%d", c.b, c.o, c.oh, c.ow, mode, mis)
				mv := randn(r, 16*c.o*ldm)
				m, _ := mk(k, len(mv), mis, mv)
				bias, res := randn(r, c.b*c.o), randn(r, c.b*c.o*plane)
				var bk, rk []float32
				if mode == "bias" || mode == "bias+res" || mode == "tilebias" {
					bk, _ = mk(k, len(bias), mis, bias)
				}
				if mode == "res" || mode == "bias+res" {
					rk, _ = mk(k, len(res), (mis+2)%4, res)
				}
				out, og := mk(k, c.b*c.o*plane, (mis+1)%4, nil)
				k.WinogradOut(out, m, tt, c.o, ldm, plane, c.ow, bk, rk)
				og.check(t, name)
				for j := 0; j < nt; j++ {
					b, ty, tx := j/(th*tw), (j/tw)%th, j%tw
					for oc := 0; oc < c.o; oc++ {
						for dy := range 2 {
							for dx := range 2 {
								y, x := 2*ty+dy, 2*tx+dx
								if y >= c.oh || x >= c.ow {
									continue
								}
								var want float64
								for a := range 4 {
									for bb := range 4 {
										want += at[dy][a] * float64(mv[(16*oc+4*a+bb)*ldm+j]) * at[dx][bb]
									}
								}
								idx := (b*c.o+oc)*plane + y*c.ow + x
								if bk != nil {
									want += float64(bias[int(bt[j])/4+oc])
								}
								if rk != nil {
									want += float64(res[idx])
								}
								if got := out[idx]; math.Abs(float64(got)-want) > 2e-6*(1+math.Abs(want)) {
									t.Fatalf("%s: out[%d] (tile %d, oc %d, %d,%d) = %v, want %v", name, idx, j, oc, dy, dx, got, want)
								}
							}
						}
					}
				}
				for i, v := range out {
					if math.Float32bits(v) == 0x7fc0dead {
						t.Fatalf("%s: out[%d] not written", name, i)
					}
				}
			}
		}
	}
}

// TestWinogradConvMatchesReference runs whole 3x3 stride-1 conv layers
// through Winograd (forced on) and through im2col (forced off) against
// core/cpu, with and without padding (asymmetric too), bias, per-sample
// channel bias and residual, in several tile blockings.
func TestWinogradConvMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(13))
	cases := []struct {
		xs   []int
		o    int
		pad  [4]int
		bias bool
	}{
		{[]int{1, 3, 7, 5}, 4, [4]int{1, 1, 1, 1}, true},
		{[]int{7, 5, 7, 7}, 9, [4]int{1, 1, 1, 1}, true},
		{[]int{1, 16, 1, 1}, 6, [4]int{1, 1, 1, 1}, true},
		{[]int{2, 6, 2, 2}, 5, [4]int{1, 1, 1, 1}, false},
		{[]int{2, 6, 8, 9}, 7, [4]int{0, 0, 0, 0}, true},
		{[]int{3, 7, 9, 6}, 8, [4]int{0, 1, 2, 0}, true},
		{[]int{1, 32, 28, 28}, 32, [4]int{1, 1, 1, 1}, true},
		{[]int{7, 64, 4, 4}, 33, [4]int{1, 1, 1, 1}, false},
		{[]int{2, 128, 14, 14}, 64, [4]int{1, 1, 1, 1}, true},
	}
	defer func(m, c int) { winogradMode, convChunkBytes = m, c }(winogradMode, convChunkBytes)
	for _, c := range cases {
		k := newK(t)
		ws := []int{c.o, c.xs[1], 3, 3}
		params := map[string]*tensor.Tensor{"w": tensor.From(randn(r, tensor.Numel(ws)), ws...)}
		biasName := ""
		var bias []float32
		if c.bias {
			bias = randn(r, c.o)
			params["b"] = tensor.From(bias, c.o)
			biasName = "b"
		}
		x := randn(r, tensor.Numel(c.xs))
		want, os := refConv(x, c.xs, params["w"].Data, ws, bias, 1, c.pad)
		e := randn(r, c.xs[0]*c.o)
		res := randn(r, len(want))
		want2 := append([]float32(nil), want...)
		plane := os[2] * os[3]
		for i := range want2 {
			want2[i] += e[i/plane] + res[i]
		}
		wt := newWeights(k, params)
		var viaIm2col []float32
		for _, mode := range []int{-1, 1} {
			for _, chunk := range []int{0, 128 << 10, 1, 4 * 16 * c.xs[1] * 3 * NR} {
				winogradMode, convChunkBytes = mode, chunk
				cv := newConv(k, wt, c.xs, "w", biasName, 1, c.pad, os)
				if (cv.wino != nil) != (mode == 1) {
					t.Fatalf("winogradMode %d: conv.wino = %v", mode, cv.wino)
				}
				s := cv.need().alloc(k)
				for _, mis := range misalignments {
					name := fmt.Sprintf("x%v o%d p%v bias%v mode%d chunk%d mis%d", c.xs, c.o, c.pad, c.bias, mode, chunk, mis)
					xs, _ := mk(k, len(x), mis, x)
					out, g := mk(k, len(want), mis, nil)
					cv.run(k, s, out, xs, nil, nil)
					g.check(t, name)
					closeTo(t, name, out, want, 2e-5)
					if chunk == 0 && mis == 0 {
						t.Logf("x%v o%d p%v, %s: vs core/cpu: max abs error / max abs %.2g", c.xs, c.o, c.pad,
							map[int]string{-1: "im2col", 1: "Winograd"}[mode], relErr(out, want))
					}
					if mode == -1 && chunk == 0 && mis == 0 {
						viaIm2col = append([]float32(nil), out...)
					}
					if mode == 1 {
						closeTo(t, name+" vs im2col", out, viaIm2col, 2e-5)
					}
					es, _ := mk(k, len(e), mis, e)
					rs, _ := mk(k, len(res), mis, res)
					cv.run(k, s, out, xs, es, rs)
					g.check(t, name+" fused")
					closeTo(t, name+" fused", out, want2, 2e-5)
					cv.run(k, s, out, xs, es, nil)
					for i := range want2 {
						want2[i] -= res[i]
					}
					closeTo(t, name+" e only", out, want2, 2e-5)
					for i := range want2 {
						want2[i] += res[i]
					}
					cv.run(k, s, out, xs, nil, rs)
					for i := range want {
						want2[i] = want[i] + res[i]
					}
					closeTo(t, name+" res only", out, want2, 2e-5)
					for i := range want2 {
						want2[i] += e[i/plane]
					}
				}
			}
		}
	}
}

// TestWinogradUsedWhereChosen plans the shipped MNIST and emoji UNets and
// checks, conv by conv, that every 3x3 stride-1 convolution the rule picks
// runs as Winograd (and the others as im2col), and that the rule picks
// some: the fast path cannot silently fall back.
func TestWinogradUsedWhereChosen(t *testing.T) {
	for _, name := range []string{"mnist", "emoji"} {
		m, err := benchModel(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, batch := range []int{1, 16} {
			in := m.InShape()
			g, err := m.Graph(batch, in[1], in[2])
			if err != nil {
				t.Fatal(err)
			}
			k := newK(t)
			p, err := newPlan(k, newWeights(k, g.Params), g)
			if err != nil {
				t.Fatal(err)
			}
			chosen, used := 0, 0
			for _, st := range p.steps {
				if st.conv == nil {
					continue
				}
				n := g.Nodes[st.node]
				ws := g.Params[n.Weight].Shape
				c := st.conv
				want := ws[2] == 3 && ws[3] == 3 && n.Ints[0] == 1 && winoRule(c.b, c.i, c.o, c.oh, c.ow)
				if want {
					chosen++
				}
				if c.wino != nil {
					used++
				}
				if want != (c.wino != nil) {
					t.Errorf("%s b%d: conv %s %v: rule says %v, plan uses Winograd %v", name, batch, n.Weight, g.Shapes[n.In[0]], want, c.wino != nil)
				}
			}
			t.Logf("%s b%d: %d convolutions by Winograd", name, batch, used)
			if chosen == 0 {
				t.Errorf("%s b%d: the rule picks no convolution", name, batch)
			}
		}
	}
	_ = graph.OpConv2D
}

// TestPadMatchesDefinition checks the pad kernel (Winograd pads every
// input it transforms) on row lengths below, at and past a vector,
// asymmetric and zero borders, guards around the output, aligned and not.
func TestPadMatchesDefinition(t *testing.T) {
	k := newK(t)
	r := rand.New(rand.NewSource(14))
	cases := [][7]int{ // planes, h, w, hp, wp, top, left
		{1, 1, 1, 3, 3, 1, 1}, {3, 2, 2, 4, 4, 1, 1}, {2, 5, 9, 8, 12, 2, 1}, {4, 7, 7, 8, 10, 0, 0},
		{1, 28, 28, 30, 30, 1, 1}, {5, 3, 4, 3, 4, 0, 0}, {2, 6, 5, 9, 8, 0, 3},
	}
	for _, c := range cases {
		planes, h, w, hp, wp, top, left := c[0], c[1], c[2], c[3], c[4], c[5], c[6]
		for _, mis := range misalignments {
			name := fmt.Sprintf("%v mis%d", c, mis)
			x := randn(r, planes*h*w)
			xs, _ := mk(k, len(x), mis, x)
			xp, g := mk(k, planes*hp*wp, (mis+1)%4, nil)
			k.Pad(xp, xs, planes, h, w, hp, wp, top, left)
			g.check(t, name)
			for pl := 0; pl < planes; pl++ {
				for y := 0; y < hp; y++ {
					for xx := 0; xx < wp; xx++ {
						want := float32(0)
						if y >= top && y < top+h && xx >= left && xx < left+w {
							want = x[(pl*h+y-top)*w+xx-left]
						}
						if got := xp[(pl*hp+y)*wp+xx]; math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("%s: plane %d (%d,%d) = %v, want %v", name, pl, y, xx, got, want)
						}
					}
				}
			}
		}
	}
}

// TestWinogradShippedModelsMatchCPU runs the shipped MNIST and emoji UNets
// (the models the rule was measured on) at batch 3 with Winograd where the
// rule picks it and with im2col only, against core/cpu, and logs both
// errors: Winograd's extra rounding must stay inside the whole-network
// tolerance the other tests use.
func TestWinogradShippedModelsMatchCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("core/cpu on the emoji UNet is slow in js/wasm")
	}
	defer func(m int) { winogradMode = m }(winogradMode)
	for _, name := range []string{"mnist", "emoji"} {
		m, err := benchModel(name)
		if err != nil {
			t.Fatal(err)
		}
		cond, _ := m.Conditional()
		const batch = 3
		r := rand.New(rand.NewSource(15))
		x := tensor.From(randn(r, batch*tensor.Numel(m.InShape())), append([]int{batch}, m.InShape()...)...)
		ts := []float32{999, 500, 20}
		var class []int
		if cond {
			class = []int{1, 4, 7}
		}
		want, err := cpu.NewDenoiser(m).Denoise(x, ts, class)
		if err != nil {
			t.Fatal(err)
		}
		var outs [][]float32
		for _, mode := range []int{0, -1} {
			winogradMode = mode
			d, err := newTestDenoiser(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Denoise(x, ts, class)
			d.Close()
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, got.Data)
			e := relErr(got.Data, want.Data)
			t.Logf("%s, %s: vs core/cpu: max abs error / max abs %.3g", name, map[int]string{0: "Winograd by the rule", -1: "im2col only"}[mode], e)
			if !(e <= tolVsCPU) {
				t.Errorf("%s mode %d: vs core/cpu: relative error %.3g > %g", name, mode, e, tolVsCPU)
			}
		}
		diff := relErr(outs[0], outs[1])
		t.Logf("%s: Winograd vs im2col: %.3g", name, diff)
		if diff == 0 {
			t.Errorf("%s: Winograd and im2col gave identical outputs: is Winograd used?", name)
		}
	}
}
