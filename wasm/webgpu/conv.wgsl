// Conv2D and ConvTranspose2D as implicit GEMMs (no im2col buffer): M is the
// output channel, N the (batch, output pixel) pair, K the (input channel,
// kernel tap) pair; the B operand is gathered from the input on the fly.
// The epilogue adds the bias and, when the planner fused them, a per
// (batch, channel) term (add_channel of the time embedding) and a residual.
//
// Split-K: when a layer has few output tiles, the serial walk over K is what
// takes the time (one K step costs a load round trip and two barriers). With
// split > 1, workgroup z sums only its slice of K and stores the partial
// product to Out (a scratch buffer [split, O, N]); conv_reduce then sums the
// slices and applies the epilogue.

struct Params {
	B: u32, I: u32, H: u32, W: u32,
	O: u32, OH: u32, OW: u32, KH: u32,
	KW: u32, stride: u32, pad_t: u32, pad_l: u32,
	K: u32, N: u32, flags: u32, split: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Wt: array<u32>;
@group(0) @binding(3) var<storage, read> Bias: array<u32>;
@group(0) @binding(4) var<storage, read> E: array<f32>;
@group(0) @binding(5) var<storage, read> R: array<f32>;
@group(0) @binding(6) var<storage, read_write> Out: array<f32>;

fn weight(i: u32) -> f32 { return wvalue(Wt[wword(i)], i); }

// store is the GEMM's store: the epilogue, or a partial sum when split.
fn store(z: u32, m: u32, n: u32, v: f32) {
	if (P.split > 1u) {
		Out[(z * P.O + m) * P.N + n] = v;
		return;
	}
	epilogue(m, n, v);
}

// conv_reduce sums the split partial products (bound as X) and applies the
// epilogue: one thread per output element.
@compute @workgroup_size(256)
fn conv_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	let total = P.O * P.N;
	if (i >= total) {
		return;
	}
	var v = 0.0;
	for (var z = 0u; z < P.split; z++) {
		v += X[z * total + i];
	}
	epilogue(i / P.N, i % P.N, v);
}

fn epilogue(o: u32, n: u32, v: f32) {
	let plane = P.OH * P.OW;
	let b = n / plane;
	epilogue_store((b * P.O + o) * plane + n % plane, v + epilogue_add(o, b));
}

// epilogue_add is what the epilogue adds to output channel o of sample b
// besides the residual: the bias and the fused add_channel term (kernels
// that write many outputs of one channel compute it once).
fn epilogue_add(o: u32, b: u32) -> f32 {
	var r = 0.0;
	if (flag(F_BIAS)) {
		r += wvalue(Bias[wword(o)], o);
	}
	if (flag(F_E)) {
		r += E[b * P.O + o];
	}
	return r;
}

// epilogue_store stores v, plus the fused residual, at output index idx.
fn epilogue_store(idx: u32, v: f32) {
	var r = v;
	if (flag(F_R)) {
		r += R[idx];
	}
	Out[idx] = r;
}

// conv2d: weight [O,I,KH,KW] is row-major [M,K] already.
// A row of B is an (input channel, tap): the channel's plane offset and the
// tap's (ky, kx). A column is an output pixel: its sample's offset and the
// input position of its top-left tap.
struct Tap {
	off: u32, ky: i32, kx: i32,
}

struct Pixel {
	base: u32, y: i32, x: i32,
}

fn tap(k: u32) -> Tap {
	let taps = P.KH * P.KW;
	let r = k % taps;
	return Tap((k / taps) * P.H * P.W, i32(r / P.KW), i32(r % P.KW));
}

const conv2d_BT: bool = false;
alias conv2d_Row = Tap;
alias conv2d_Col = Pixel;
fn conv2d_dims() -> vec3<u32> { return vec3<u32>(P.O, P.N, P.K); }
fn conv2d_load_a(z: u32, m: u32, k: u32) -> f32 { return weight(m * P.K + k); }
fn conv2d_row(z: u32, k: u32) -> Tap { return tap(k); }
fn conv2d_col(z: u32, n: u32) -> Pixel {
	let plane = P.OH * P.OW;
	let p = n % plane;
	return Pixel((n / plane) * P.I * P.H * P.W,
		i32((p / P.OW) * P.stride) - i32(P.pad_t), i32((p % P.OW) * P.stride) - i32(P.pad_l));
}
fn conv2d_load_b(z: u32, r: Tap, c: Pixel) -> f32 {
	let iy = c.y + r.ky;
	let ix = c.x + r.kx;
	if (iy < 0 || ix < 0 || iy >= i32(P.H) || ix >= i32(P.W)) {
		return 0.0;
	}
	return X[c.base + r.off + u32(iy) * P.W + u32(ix)];
}
fn conv2d_store(z: u32, m: u32, n: u32, v: f32) { store(z, m, n, v); }
fn conv2d_krange(z: u32) -> vec2<u32> { return k_slice(P.K, P.split, z); }

// convt: weight [I,O,KH,KW]; output pixel (oy,ox) gathers input pixel
// ((oy+pad-ky)/stride, (ox+pad-kx)/stride) where that division is exact.
const convt_BT: bool = false;
alias convt_Row = Tap;
alias convt_Col = Pixel;
fn convt_dims() -> vec3<u32> { return vec3<u32>(P.O, P.N, P.K); }
fn convt_load_a(z: u32, m: u32, k: u32) -> f32 {
	let taps = P.KH * P.KW;
	return weight(((k / taps) * P.O + m) * taps + k % taps);
}
fn convt_row(z: u32, k: u32) -> Tap { return tap(k); }
fn convt_col(z: u32, n: u32) -> Pixel {
	let plane = P.OH * P.OW;
	let p = n % plane;
	return Pixel((n / plane) * P.I * P.H * P.W, i32(p / P.OW + P.pad_t), i32(p % P.OW + P.pad_l));
}
fn convt_load_b(z: u32, r: Tap, c: Pixel) -> f32 {
	let ty = c.y - r.ky;
	let tx = c.x - r.kx;
	let s = i32(P.stride);
	if (ty < 0 || tx < 0 || ty % s != 0 || tx % s != 0) {
		return 0.0;
	}
	let iy = u32(ty / s);
	let ix = u32(tx / s);
	if (iy >= P.H || ix >= P.W) {
		return 0.0;
	}
	return X[c.base + r.off + iy * P.W + ix];
}
fn convt_store(z: u32, m: u32, n: u32, v: f32) { store(z, m, n, v); }
fn convt_krange(z: u32) -> vec2<u32> { return k_slice(P.K, P.split, z); }

// The serial convolution (Options.Serial, for software adapters; see
// gemm_serial.wgsl for why) reads a padded copy of the input, so its inner
// loop has no bounds checks: conv_pad writes X [B,I,H,W] into Out
// [B,I,HP,WP] with the padding as zeros, HP = (OH−1)·stride + KH and
// WP = (OW−1)·stride + KW (every tap of every output pixel lands inside).
@compute @workgroup_size(256)
fn conv_pad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	pad_copy(index(wid, nwg, li), (P.OH - 1u) * P.stride + P.KH, (P.OW - 1u) * P.stride + P.KW,
		i32(P.pad_t), i32(P.pad_l), 1);
}

// convt_pad writes a conv_transpose2d's input X [B,I,H,W] spread for the
// equivalent stride-1 conv2d (serial.go's convtSerial) into Out
// [B,I,HP,WP], HP = OH + KH − 1: input pixels stride apart, KH − 1 − pad
// rows of zeros above (and the rest below), likewise across.
@compute @workgroup_size(256)
fn convt_pad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	pad_copy(index(wid, nwg, li), P.OH + P.KH - 1u, P.OW + P.KW - 1u,
		i32(P.KH - 1u - P.pad_t), i32(P.KW - 1u - P.pad_l), i32(P.stride));
}

// pad_copy writes element i of Out [B,I,HP,WP]: input pixel
// ((y − top)/s, (x − left)/s) of X [B,I,H,W] where that is a whole
// in-range pixel, else 0.
fn pad_copy(i: u32, HP: u32, WP: u32, top: i32, left: i32, s: i32) {
	if (i >= P.B * P.I * HP * WP) {
		return;
	}
	let bc = i / (HP * WP);
	let y = i32((i / WP) % HP) - top;
	let x = i32(i % WP) - left;
	var v = 0.0;
	if (y >= 0 && x >= 0 && y % s == 0 && x % s == 0 && y / s < i32(P.H) && x / s < i32(P.W)) {
		v = X[(bc * P.H + u32(y / s)) * P.W + u32(x / s)];
	}
	Out[i] = v;
}

// conv2d_serial is the convolution on conv_pad's output, its parameters
// saying H = HP, W = WP and no padding. Each of 64 threads owns 8 output
// channels × 4 output pixels of a 64×32 tile (as gemm_serial.wgsl) and
// walks K in one flat loop, stepping (ky, kx) and the input offset with
// selects: no division per K step, and no nested loops, which SwiftShader
// runs far slower (per layer 0.56–0.74× the time of (channel, ky, kx)
// loops for 3×3, 0.26–0.38× for 1×1; BenchmarkSerialLayers).
@compute @workgroup_size(64)
fn conv2d_serial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let blk = serial_block(wid, li, P.N);
	let m0 = blk.x;
	let n0 = blk.y;
	if (m0 >= P.O || n0 >= P.N) {
		return;
	}
	let plane = P.OH * P.OW;
	var base = vec4<u32>();
	for (var j = 0u; j < 4u; j++) {
		let n = min(n0 + j, P.N - 1u);
		let p = n % plane;
		base[j] = (n / plane) * P.I * P.H * P.W + (p / P.OW) * P.stride * P.W + (p % P.OW) * P.stride;
	}
	let b0 = base.x;
	let b1 = base.y;
	let b2 = base.z;
	let b3 = base.w;
	let w0 = m0 * P.K;
	let w1 = min(m0 + 1u, P.O - 1u) * P.K; // rows past O repeat the last
	let w2 = min(m0 + 2u, P.O - 1u) * P.K;
	let w3 = min(m0 + 3u, P.O - 1u) * P.K;
	let w4 = min(m0 + 4u, P.O - 1u) * P.K;
	let w5 = min(m0 + 5u, P.O - 1u) * P.K;
	let w6 = min(m0 + 6u, P.O - 1u) * P.K;
	let w7 = min(m0 + 7u, P.O - 1u) * P.K;
	var acc0 = vec4<f32>();
	var acc1 = vec4<f32>();
	var acc2 = vec4<f32>();
	var acc3 = vec4<f32>();
	var acc4 = vec4<f32>();
	var acc5 = vec4<f32>();
	var acc6 = vec4<f32>();
	var acc7 = vec4<f32>();
	// (ky, kx) and the input offset follow k without divisions or nested loops.
	var off = 0u;
	var kx = 0u;
	var ky = 0u;
	let row_step = P.W - P.KW;
	let chan_step = (P.H - P.KH) * P.W;
	for (var k = 0u; k < P.K; k++) {
		let bv = vec4<f32>(X[b0 + off], X[b1 + off], X[b2 + off], X[b3 + off]);
		acc0 = fma(vec4<f32>(weight(w0 + k)), bv, acc0);
		acc1 = fma(vec4<f32>(weight(w1 + k)), bv, acc1);
		acc2 = fma(vec4<f32>(weight(w2 + k)), bv, acc2);
		acc3 = fma(vec4<f32>(weight(w3 + k)), bv, acc3);
		acc4 = fma(vec4<f32>(weight(w4 + k)), bv, acc4);
		acc5 = fma(vec4<f32>(weight(w5 + k)), bv, acc5);
		acc6 = fma(vec4<f32>(weight(w6 + k)), bv, acc6);
		acc7 = fma(vec4<f32>(weight(w7 + k)), bv, acc7);
		kx++;
		off++;
		let wx = kx == P.KW;
		kx = select(kx, 0u, wx);
		ky = select(ky, ky + 1u, wx);
		off = select(off, off + row_step, wx);
		let wy = ky == P.KH;
		ky = select(ky, 0u, wy);
		off = select(off, off + chan_step, wy);
	}
	let acc = array<vec4<f32>, 8>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7);
	for (var j = 0u; j < 4u && n0 + j < P.N; j++) {
		let b = (n0 + j) / plane;
		let at = b * P.O * plane + (n0 + j) % plane;
		for (var i = 0u; i < 8u && m0 + i < P.O; i++) {
			epilogue_store(at + (m0 + i) * plane, acc[i][j] + epilogue_add(m0 + i, b));
		}
	}
}
