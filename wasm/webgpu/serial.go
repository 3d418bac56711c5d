//go:build js && wasm

package webgpu

import (
	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// The serial kernels are the variants for software adapters (SwiftShader
// and the like: Device.Software): no workgroup memory, no barriers, one
// thread per row or per 8×4 block of a product. Such an adapter runs a
// workgroup that has barriers as one coroutine per SIMD group, switching at
// every barrier, and serves each storage load lane by lane with a bounds
// check. On SwiftShader here the GPU kernels spent most of a UNet call in
// GroupNorm and attention reductions and in the convolution's padding
// checks; on a GPU the serial ones would leave most of the chip idle.
// Options.Serial forces either set (the tests run both).

// software reports whether the program targets a software adapter, which
// wants no split-K and the serial kernels.
func (c *compiler) software() bool { return c.dev != nil && c.dev.software }

// serial reports whether to use the serial kernels (Options.Serial).
func (c *compiler) serial() bool { return useSerial(c.dev, c.o) }

// useSerial reports whether programs for d compiled with o use the serial
// kernels.
func useSerial(d *Device, o Options) bool {
	if o.Serial != 0 {
		return o.Serial > 0
	}
	return d != nil && d.software
}

// rowKernel picks entry or its serial variant (entry + "_serial", 64 rows
// per workgroup) for rows rows, with its grid.
func (c *compiler) rowKernel(what, entry string, rows int) (string, [3]uint32, error) {
	if c.serial() {
		g, err := c.grid(what, (rows+63)/64)
		return entry + "_serial", g, err
	}
	g, err := c.grid(what, rows)
	return entry, g, err
}

// convSerial adds a conv2d (conv.wgsl's Params in params, its bindings in
// binds, grid from gemmGrid) as Winograd where useWinograd says so
// (winograd.go), else as conv.wgsl's conv_pad into scratch, unless the
// input needs no padding, and conv2d_serial over that, which has no
// split-K.
func (c *compiler) convSerial(what string, params []uint32, binds []ref, v graph.Value, grid [3]uint32, order int, temps ...int) error {
	if c.useWinograd(params) {
		return c.winograd(what, params, binds, v, order, temps)
	}
	p := append([]uint32(nil), params...)
	b := append([]ref(nil), binds...)
	B, I, H, W := p[0], p[1], p[2], p[3]
	OH, OW, KH, KW, stride := p[5], p[6], p[7], p[8], p[9]
	HP, WP := (OH-1)*stride+KH, (OW-1)*stride+KW
	if p[10] != 0 || p[11] != 0 || HP != H || WP != W {
		numel := int(B * I * HP * WP)
		tmp := len(c.temps)
		c.temps = append(c.temps, 4*uint64(numel))
		temps = append([]int{tmp}, temps...)
		pgrid, err := c.grid(what, (numel+255)/256)
		if err != nil {
			return err
		}
		none := ref{k: rNone}
		c.add(pstep{what: what + " (pad)", key: kernelKey{fam: "conv", entry: "conv_pad"}, params: params,
			binds: []ref{b[0], none, none, none, none, {k: rTemp, i: tmp}}, out: -1, temps: temps, grid: pgrid}, order)
		b[0] = ref{k: rTemp, i: tmp}
		p[2], p[3], p[10], p[11] = HP, WP, 0, 0
	}
	p[15] = 1 // no split-K
	c.add(pstep{what: what, key: kernelKey{fam: "conv", entry: "conv2d_serial"}, params: p, binds: b, out: v, temps: temps, grid: grid}, order)
	return nil
}

// convtSerial adds a conv_transpose2d (conv.wgsl's Params, its bindings;
// padding below the kernel size) as the equivalent stride-1 conv2d (Dumoulin
// & Visin 2016, "A guide to convolution arithmetic for deep learning",
// section 4): convt_pad spreads the input s−1 zeros apart and pads it by
// K−1−padding (plus the output padding at the bottom and right), and
// convSerial convolves that with the kernel flipped and its channel axes
// swapped, so the transposed convolution gets the flat direct loop or
// Winograd instead of the GEMM template's per-element divisions and
// divergent bounds checks (scoresde's tconvs were 89% of its call).
func (c *compiler) convtSerial(what string, params []uint32, binds []ref, v graph.Value, order int) error {
	B, I, O, OH, OW, KH, KW := params[0], params[1], params[4], params[5], params[6], params[7], params[8]
	HP, WP := OH+KH-1, OW+KW-1
	numel := int(B * I * HP * WP)
	tmp := len(c.temps)
	c.temps = append(c.temps, 4*uint64(numel))
	pgrid, err := c.grid(what, (numel+255)/256)
	if err != nil {
		return err
	}
	none := ref{k: rNone}
	c.add(pstep{what: what + " (spread)", key: kernelKey{fam: "conv", entry: "convt_pad"}, params: params,
		binds: []ref{binds[0], none, none, none, none, {k: rTemp, i: tmp}}, out: -1, temps: []int{tmp}, grid: pgrid}, order)
	name := binds[1].name
	flipped := c.w.derived("flipT("+name+")", false, func() *tensor.Tensor { return flipTransposed(c.w.tensor(name)) })
	p := words(B, I, HP, WP, O, OH, OW, KH, KW, 1, 0, 0, I*KH*KW, B*OH*OW, params[14], 1)
	b := append([]ref{{k: rTemp, i: tmp}, c.weight(flipped)}, binds[2:]...)
	grid, err := c.gemmGrid(what, int(O), int(B*OH*OW), 1)
	if err != nil {
		return err
	}
	return c.convSerial(what, p, b, v, grid, order, tmp)
}

// flipTransposed is a conv_transpose2d weight [I, O, KH, KW] as the
// equivalent conv2d's [O, I, KH, KW], each kernel rotated by 180°.
func flipTransposed(w *tensor.Tensor) *tensor.Tensor {
	I, O, KH, KW := w.Shape[0], w.Shape[1], w.Shape[2], w.Shape[3]
	out := make([]float32, len(w.Data))
	for i := range I {
		for o := range O {
			for y := range KH {
				for x := range KW {
					out[((o*I+i)*KH+y)*KW+x] = w.Data[((i*O+o)*KH+KH-1-y)*KW+KW-1-x]
				}
			}
		}
	}
	return tensor.From(out, O, I, KH, KW)
}
