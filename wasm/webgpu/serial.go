//go:build js && wasm

package webgpu

import "github.com/diffuse-web/diffuse/core/graph"

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
