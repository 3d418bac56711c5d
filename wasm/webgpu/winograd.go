//go:build js && wasm

package webgpu

import (
	"fmt"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// Winograd minimal filtering F(m×m, 3×3), m = 2 or 4, for the serial kernel
// set (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural
// Networks", arXiv:1509.09308). On a software adapter the convolution is
// bound by per-lane loads, and a direct 3×3 convolution spends 9
// multiply-adds (and their loads) per output and channel pair where
// F(2×2) spends 4 and F(4×4) 2.25. Per tile, Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A
// with d the (m+2)×(m+2) input tile (the tiles overlap by 2); summed over
// input channels, each of the a² = (m+2)² positions ξ of the products is
// one GEMM M_ξ[O, T] = U_ξ[O, I]·V_ξ[I, T] over the T tiles of the batch.
// So a conv2d runs as three steps (winograd.wgsl): wino{m}_in writes
// V = Bᵀ d B, gemm_serial.wgsl's template computes the a² products, and
// wino{m}_out writes Y = Aᵀ M A through the convolution's epilogue (bias,
// add_channel, residual). U = G g Gᵀ is computed here once per weight and
// kept as f32 (weightStore.derived): a² / 9 times the weight count, 4 bytes
// each. Accuracy on the op tests: NMSE ≤ 1.2e-13 (F(2×2)) and ≤ 2.4e-12
// (F(4×4)) against the CPU; the direct kernel 2e-13.

// useWinograd reports whether the serial conv2d with these conv.wgsl
// Params runs as Winograd: 3×3, stride 1, and (unless Options.winograd
// forces it either way) at least winoMinChannels input channels, below
// which the 16 GEMMs have too short a K to pay for the transforms, and
// scratch for one sample that fits one binding (winoFits).
func (c *compiler) useWinograd(p []uint32) bool {
	if p[7] != 3 || p[8] != 3 || p[9] != 1 || c.o.winograd < 0 {
		return false
	}
	if c.o.winograd > 0 {
		return true
	}
	return p[1] >= winoMinChannels && winoFits(int(p[1]), int(p[4]), int(p[5]), int(p[6]), c.bindLimit())
}

// winoFits reports whether a Winograd convolution's scratch for one
// sample (V and M: (m+2)² values per m×m tile and channel, at either tile
// size) fits a binding of limit bytes. Where it does not (a 256×256 map of
// 256 channels needs 256 MiB at F(2×2), 144 MiB at F(4×4); WebGPU's default
// limit is 128 MiB) the convolution runs direct, which needs only its padded
// input: slower on a software adapter, but it runs, and the batch is not
// cut to nothing by chunk.
func winoFits(I, O, OH, OW int, limit uint64) bool {
	for _, tile := range []int{2, 4} { // either tile size (winoTile)
		t := uint64(winoTiles(tile, 1, OH, OW))
		if 4*uint64((tile+2)*(tile+2))*t*uint64(max(I, O)) > limit {
			return false
		}
	}
	return true
}

const winoMinChannels = 8

// winoTile is the output tile m of F(m×m, 3×3) for a B×OH×OW output: 4
// (36 products per 4×4 tile, 2.25 per output) when that makes at least 16
// tiles, else 2 (16 per 2×2 tile, 4 per output). Per layer on SwiftShader
// F(4×4) took 0.58–0.69× F(2×2)'s time on 28² and 14² maps but 1.2× on a
// 7² one at batch 1 (4 tiles: the GEMMs' columns mostly idle, the larger
// transforms not repaid; BenchmarkSerialLayers). Options.winoTile forces
// either.
func (c *compiler) winoTile(B, OH, OW int) int {
	if c.o.winoTile != 0 {
		return c.o.winoTile
	}
	if winoTiles(4, B, OH, OW) >= 16 {
		return 4
	}
	return 2
}

// winoTiles is the number of m×m output tiles of a B×OH×OW output.
func winoTiles(m, B, OH, OW int) int { return B * ((OH + m - 1) / m) * ((OW + m - 1) / m) }

// winograd adds the conv2d as wino{m}_in, the (m+2)² GEMMs (wino_serial)
// and wino{m}_out, with the conv's params, bindings (input, weight, bias,
// add_channel term, residual, output) and extra scratch temps.
func (c *compiler) winograd(what string, p []uint32, binds []ref, v graph.Value, order int, temps []int) error {
	B, I, O, OH, OW := int(p[0]), int(p[1]), int(p[4]), int(p[5]), int(p[6])
	m := c.winoTile(B, OH, OW)
	xi := (m + 2) * (m + 2)
	T := winoTiles(m, B, OH, OW)
	p = append([]uint32(nil), p...)
	p[12], p[13] = uint32(I), uint32(T) // K and N of the GEMMs (winograd.wgsl)
	vt, mt := len(c.temps), len(c.temps)+1
	c.temps = append(c.temps, 4*uint64(xi)*uint64(I)*uint64(T), 4*uint64(xi)*uint64(O)*uint64(T))
	name := binds[1].name
	key := fmt.Sprintf("winograd%d(%s)", m, name)
	u := c.w.derived(key, true, func() *tensor.Tensor { return winogradFilters(c.w.stored(name), winoG[m]) })
	none := ref{k: rNone}
	ts := append([]int{vt, mt}, temps...)
	g1, err := c.grid(what, (I*T+255)/256)
	if err != nil {
		return err
	}
	g2, err := c.gemmGrid(what, O, T, xi)
	if err != nil {
		return err
	}
	g3, err := c.grid(what, (O*T+255)/256)
	if err != nil {
		return err
	}
	step := func(entry, suffix string, b []ref, grid [3]uint32) {
		c.add(pstep{what: what + suffix, key: kernelKey{fam: "winograd", entry: entry}, params: p, binds: b, out: v, temps: ts, grid: grid}, order)
	}
	step(fmt.Sprintf("wino%d_in", m), " (winograd in)", []ref{binds[0], none, none, none, none, {k: rTemp, i: vt}}, g1)
	step("wino_serial", " (winograd GEMMs)", []ref{{k: rTemp, i: vt}, c.weight(u), none, none, none, {k: rTemp, i: mt}}, g2)
	step(fmt.Sprintf("wino%d_out", m), " (winograd out)", []ref{{k: rTemp, i: mt}, none, binds[2], binds[3], binds[4], binds[5]}, g3)
	return nil
}

// winoG is the filter transform G of F(m×m, 3×3) by m (Lavin & Gray 2016,
// section 4.1 for m = 2, 4.2 for m = 4; interpolation points 0, ±1 and,
// for m = 4, ±2).
var winoG = map[int][][3]float64{
	2: {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}},
	4: {{0.25, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
		{1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}},
}

// winogradFilters is U = G g Gᵀ for every (output, input) channel pair of
// a [O, I, 3, 3] weight, laid out as a² matrices [ξ][O][I] (a = len(G),
// ξ = a·row + column of U), the GEMMs' A operands; computed in float64 and
// rounded once.
func winogradFilters(w *tensor.Tensor, G [][3]float64) *tensor.Tensor {
	O, I, a := w.Shape[0], w.Shape[1], len(G)
	u := make([]float32, a*a*O*I)
	gg := make([][3]float64, a) // G g
	for o := 0; o < O; o++ {
		for i := 0; i < I; i++ {
			g := w.Data[(o*I+i)*9 : (o*I+i+1)*9]
			for r := range a {
				for col := range 3 {
					gg[r][col] = 0
					for k := range 3 {
						gg[r][col] += G[r][k] * float64(g[k*3+col])
					}
				}
			}
			for r := range a {
				for b := range a {
					var s float64 // (G g Gᵀ)[r][b]
					for col := range 3 {
						s += gg[r][col] * G[b][col]
					}
					u[((r*a+b)*O+o)*I+i] = float32(s)
				}
			}
		}
	}
	return tensor.From(u, a*a, O, I)
}

// winoScratch is the largest scratch buffer the serial Winograd
// convolutions of g use (V and M hold 16 values per 2×2 tile and channel),
// for perSampleBytes; convolutions whose scratch does not fit limit run
// direct (winoFits) and are not counted.
func winoScratch(g *graph.Graph, limit uint64) uint64 {
	var m uint64
	for _, n := range g.Nodes {
		if n.Op != graph.OpConv2D && n.Op != graph.OpConvTranspose2D {
			continue
		}
		w, o := g.Params[n.Weight].Shape, g.Shapes[n.Out]
		// A transposed one runs as a stride-1 conv2d (convtSerial).
		if w[2] == 3 && w[3] == 3 && (n.Ints[0] == 1 || n.Op == graph.OpConvTranspose2D) && winoFits(w[1], w[0], o[2], o[3], limit) {
			for _, tile := range []int{2, 4} { // either tile size (winoTile)
				t := uint64(winoTiles(tile, o[0], o[2], o[3]))
				m = max(m, 4*uint64((tile+2)*(tile+2))*t*uint64(max(w[0], w[1])))
			}
		}
	}
	return m
}
