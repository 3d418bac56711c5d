package simd

// Winograd minimal filtering F(2x2, 3x3) for 3x3 stride-1 convolutions
// (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks",
// §4): the output is cut into 2x2 tiles, each computed from the 4x4 input
// tile around it (overlapping its neighbours by 2) as
//
//	Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//
// summed over input channels, which is 16 multiplies per tile and channel
// pair instead of the 36 of a direct 2x2 output (2.25x fewer). Summing over
// channels makes the elementwise product 16 independent GEMMs
// M_ξ [O, tiles] = U_ξ [O, I] · V_ξ [I, tiles], ξ = 4ρ+c the position in the
// 4x4 transformed tile. Here:
//
//   - U = G g Gᵀ per (o, i) is made once per Denoiser (float64, rounded
//     once) and stored as 16 packed A operands (weights.WinoU);
//   - per block of tiles, winograd_in writes V = Bᵀ d B of every tile of
//     the block straight into 16 packed B operands (a block may hold the
//     tiles of several samples, so 7x7 and 4x4 maps still fill the GEMM's
//     8-column panels), the input of the block's samples being first
//     zero-padded (any padding the graph gives, asymmetric included) to
//     2·ceil(OH/2)+2 rows and 2·ceil(OW/2)+2 columns, so every tile is
//     inside it;
//   - the 16 GEMMs run on the existing packed kernel;
//   - winograd_out computes Aᵀ M A, adds the bias, the fused per-sample
//     channel bias and the residual, and crops the edge tiles of odd
//     output sizes.
//
// Memory: U is 16/9 the size of the im2col weights it replaces, and the
// padded input is one group of samples (winoGroup): the shipped MNIST and
// emoji UNets' kernel memory grows from 10.1 to 13.7 MiB and 40.0 to 49.1
// MiB at batch 1, from 41.4 to 45.6 and 120.9 to 135.0 MiB at batch 16
// (padding the whole batch at once took emoji's to 147.7).
//
// The matrices (Lavin & Gray's F(2x2, 3x3)):
//
//	Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//	G  = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]
//	Aᵀ = [1 1 1 0; 0 1 -1 -1]

// winoG is G of F(2x2, 3x3).
var winoG = [4][3]float64{{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}}

// winoTransformWeights returns U = G g Gᵀ of a [O, I, 3, 3] weight as 16
// row-major [O, I] matrices (ξ = 4ρ+c).
func winoTransformWeights(w []float32, o, in int) [16][]float32 {
	var u [16][]float32
	for x := range u {
		u[x] = make([]float32, o*in)
	}
	for oi := 0; oi < o*in; oi++ {
		g := w[9*oi : 9*oi+9]
		var gg [4][3]float64 // G·g
		for r := range 4 {
			for b := range 3 {
				for a := range 3 {
					gg[r][b] += winoG[r][a] * float64(g[3*a+b])
				}
			}
		}
		for r := range 4 {
			for c := range 4 {
				var s float64
				for b := range 3 {
					s += gg[r][b] * winoG[c][b]
				}
				u[4*r+c][oi] = float32(s)
			}
		}
	}
	return u
}

// WinoU returns conv weight [O,I,3,3] transformed and packed as 16 A
// operands [O, I], PackedALen(O, I) floats apart.
func (w *weights) WinoU(name string) []float32 {
	if r, ok := w.winoU[name]; ok {
		return r
	}
	s := w.param(name).Shape
	o, in := s[0], s[1]
	u := winoTransformWeights(w.param(name).Data, o, in)
	st := PackedALen(o, in)
	r := w.k.Alloc(16 * st)
	if len(w.staging) < o*in {
		w.staging = w.k.Alloc(o * in)
	}
	for x := range u {
		copy(w.staging, u[x])
		w.k.PackA(r[x*st:], w.staging[:o*in], in, o, in)
	}
	w.winoU[name] = r
	return r
}

// winoChunkBytes bounds the 16 packed B operands (V) of one block of tiles,
// as convChunkBytes does im2col's (read when a plan is built), times the
// kernel set's chunkScale.
var winoChunkBytes = 128 << 10

// winogradMode is read when a plan is built: 0 picks Winograd per layer by
// useWinograd, 1 uses it for every 3x3 stride-1 convolution, -1 never.
var winogradMode = 0

// useWinograd is the per-layer rule (see the numbers in the comment of
// winoRule).
func useWinograd(b, i, o, oh, ow int) bool {
	switch winogradMode {
	case 1:
		return true
	case -1:
		return false
	}
	return winoRule(b, i, o, oh, ow)
}

// winoRule picks Winograd for a 3x3 stride-1 convolution of a [b, i, ·, ·]
// input to [b, o, oh, ow] when it has at least 16 input channels and its
// GEMMs do at most 0.75 of the multiplies of the im2col GEMM once both are
// rounded up to whole 8-column panels: 16·⌈b·⌈oh/2⌉·⌈ow/2⌉⌉₈ against
// 9·b·⌈oh·ow⌉₈ (Winograd's tiles are taken across the batch, im2col's
// pixels per sample).
//
// Measured per layer (BenchmarkWinogradLayers: Winograd/im2col time,
// median of 7 paired ABBA rounds, js/wasm in Node 20 with the relaxed-SIMD
// kernels on the shared 2-core Xeon, load average 4-5, 2026-11-26), on
// every distinct 3x3 stride-1 layer of the shipped MNIST and emoji UNets:
//
//   - the first layers (i = 1 or 3) lose: 2.2x and 1.6x at batch 1, 2.8x
//     and 1.5x at 16 (a GEMM of depth 1 or 3 per ξ, and transforms that
//     cost more than the multiplies they save); no layer has 4 ≤ i < 32,
//     so the bound 16 is a guess between the two.
//   - 4x4 maps at batch 1 (four tiles, half an 8-column panel; predicted
//     0.89) are a tie: 0.93-1.00x; at batch 16 (64 tiles) 0.47-0.51x.
//   - every other layer wins: 7x7 0.59x at batch 1 and 0.59-0.62x at 16
//     (predicted 0.51 and 0.50), 8x8 to 32x32 0.47-0.56x at batch 1 and
//     0.40-0.60x at 16; the last layers, with 1 and 3 output channels,
//     0.71x and 0.68x at batch 1, 0.76x and 0.83x at 16.
func winoRule(b, i, o, oh, ow int) bool {
	if i < 16 {
		return false
	}
	wino := 16 * PackedCols(b*((oh+1)/2)*((ow+1)/2))
	im2col := 9 * b * PackedCols(oh*ow)
	return 4*wino <= 3*im2col
}

// wino is the Winograd form of a conv (its fields b, i, o, oh, ow, top, left).
// The batch is taken in groups of samples: one sample when its tiles fill
// a block, else as many as fill one (small maps), so that the padded input
// of a group stays small (scratch, and in cache for winograd_in) while the
// GEMMs still get full blocks of tiles.
type wino struct {
	th, tw, hp, wp int // tiles per sample down and across; padded input size
	g              int // samples per group
	tb             int // tiles per block, at most (a multiple of NR)
	u              []float32
	ustride        int
	groups         []winoGroup
}

// winoGroup is samples [s0, s1) and its blocks of tiles.
type winoGroup struct {
	s0, s1 int
	blocks []*WinoTables
}

func newWino(k *Kernels, wt *weights, c *conv, weight string) *wino {
	w := &wino{th: (c.oh + 1) / 2, tw: (c.ow + 1) / 2}
	w.hp, w.wp = 2*w.th+2, 2*w.tw+2
	w.u, w.ustride = wt.WinoU(weight), PackedALen(c.o, c.i)
	tps := w.th * w.tw
	w.g = c.b
	chunk := winoChunkBytes * k.chunkScale()
	if chunk > 0 {
		w.g = min(c.b, max(1, max(NR, chunk/(4*16*c.i)/NR*NR)/tps))
	}
	for s0 := 0; s0 < c.b; s0 += w.g {
		gr := winoGroup{s0: s0, s1: min(c.b, s0+w.g)}
		nt := (gr.s1 - s0) * tps
		tb := blockCols(chunk, 16*c.i, nt)
		w.tb = max(w.tb, tb)
		n := PackedCols(nt)
		in, out, bias := k.AllocI32(n), k.AllocI32(n), k.AllocI32(n)
		j := 0
		for b := s0; b < gr.s1; b++ {
			for ty := 0; ty < w.th; ty++ {
				for tx := 0; tx < w.tw; tx++ {
					in[j] = int32(4 * ((b-s0)*c.i*w.hp*w.wp + 2*ty*w.wp + 2*tx))
					o := int32(4 * (b*c.o*c.npix + 2*ty*c.ow + 2*tx))
					if 2*tx+1 >= c.ow {
						o |= 1
					}
					if 2*ty+1 >= c.oh {
						o |= 2
					}
					out[j], bias[j] = o, int32(4*b*c.o)
					j++
				}
			}
		}
		for j0 := 0; j0 < nt; j0 += tb {
			m := min(tb, nt-j0)
			e := j0 + PackedCols(m)
			gr.blocks = append(gr.blocks, NewWinoTables(in[j0:e], out[j0:e], bias[j0:e], m, w.wp, c.ow))
		}
		w.groups = append(w.groups, gr)
	}
	return w
}

// vstride is the distance between the 16 packed V_ξ of a block: one
// cache line more than they need, so that they are not a multiple of 4 KiB
// apart (winograd_in stores to all 16 in turn; on one L1 set that ran 3x
// slower, 20 ns per tile and channel against 6-7).
func (w *wino) vstride(c *conv) int { return PackedBLen(c.i, w.tb) + 16 }

// ldm is the row stride of M [O, 16, ldm]: four floats more than a block's
// tiles, so that the GEMM's rows of C (16·ldm floats apart) spread over 16
// L1 sets rather than two (tb is a multiple of 8, so 16·tb floats is a
// multiple of 512 bytes). Against ldm = tb this measured no difference
// (paired ratios 0.995-1.006 on MNIST and emoji at batch 1 and 16).
func (w *wino) ldm() int { return w.tb + 4 }

func (w *wino) need(c *conv) scratchSize {
	return scratchSize{xp: w.g * c.i * w.hp * w.wp, bp: 16 * w.vstride(c), cols: 16 * c.o * w.ldm(),
		bias: c.b * c.o}
}

// run computes out = conv(x) (+ e[b] per output channel) (+ res) for the
// whole batch.
func (w *wino) run(k *Kernels, c *conv, s *scratch, out, x, e, res []float32) {
	t := s.prof.start()
	var bias []float32
	if e != nil || c.bias != nil {
		bias = s.bias[:c.b*c.o]
		for b := 0; b < c.b; b++ {
			sampleBias(k, bias[b*c.o:], c.bias, e, b, c.o)
		}
	}
	vstride, ldm, in := w.vstride(c), w.ldm(), c.i*c.h*c.w
	for _, gr := range w.groups {
		k.Pad(s.xp, x[gr.s0*in:gr.s1*in], (gr.s1-gr.s0)*c.i, c.h, c.w, w.hp, w.wp, c.top, c.left)
		t = s.prof.lap(t, "  conv: winograd pad")
		for _, bt := range gr.blocks {
			k.WinogradIn(s.bp, s.xp, bt, c.i, w.hp*w.wp, w.wp, vstride)
			t = s.prof.lap(t, "  conv: winograd in")
			// M_ξ [O, tiles] as rows 16 apart of M [O, 16, ldm], ξ = 0..15.
			k.GemmBatch(s.cols, ldm, 16*ldm, w.u, w.ustride, s.bp, vstride, 16, c.o, bt.n, c.i)
			t = s.prof.lap(t, "  conv: winograd gemm")
			k.WinogradOut(out, s.cols, bt, c.o, ldm, c.npix, c.ow, bias, res)
			t = s.prof.lap(t, "  conv: winograd out")
		}
	}
}
