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
	let idx = (b * P.O + o) * plane + n % plane;
	var r = v;
	if (flag(F_BIAS)) {
		r += wvalue(Bias[wword(o)], o);
	}
	if (flag(F_E)) {
		r += E[b * P.O + o];
	}
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
