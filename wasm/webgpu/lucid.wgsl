// The ops of lucidrains' denoising-diffusion-pytorch U-Net
// (core/graph/lucid.go gives their exact semantics; core/cpu/lucid.go is the
// reference): RMSNorm over channels, pixel-unshuffle, channel slices, linear
// attention and attention with memory key/values. Every entry point shares
// one bind group layout: X (the op's input), W (its parameter: the RMSNorm
// gain or mem_kv, f32 or packed f16 as weights.wgsl reads them), E (a second
// read-only input: the fused scale_shift embedding, or linear attention's
// context) and Out (the output, or linear attention's context scratch).
//
// The qkv tensors of both attentions are [B, 3·heads·D, N] in the channel
// layout: q, k, v are its channel thirds and head h owns channels
// [h·D, (h+1)·D) of each, token n at stride 1 (as einops' 'b (h c) x y').

struct Params {
	n: u32, a: u32, b: u32, c: u32,
	d: u32, e: u32, f: f32, g: f32,
	flags: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read> E: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;

fn weight(i: u32) -> f32 { return wvalue(W[wword(i)], i); }

// rms_norm: lucidrains' RMSNorm, F.normalize(x, dim=1)·g·sqrt(C): one thread
// per (batch, position) takes the L2 norm over the C channels (a = C,
// b = positions per sample, n = B·b), f = sqrt(C), g = the norm's floor
// (1e-12, F.normalize's eps). Fused after it, as in a resnet block: a
// scale_shift by E [B,2C] = [scale | shift] (F_E) and a SiLU (F_SILU), or,
// without the scale_shift, a residual E of x's shape added last (F_R).
@compute @workgroup_size(256)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let C = P.a;
	let per = P.b;
	let bi = i / per;
	let base = bi * C * per + i % per;
	var sq = 0.0;
	for (var c = 0u; c < C; c++) {
		let v = X[base + c * per];
		sq += v * v;
	}
	let inv = P.f / max(sqrt(sq), P.g);
	let e0 = bi * 2u * C;
	for (var c = 0u; c < C; c++) {
		var y = X[base + c * per] * inv * weight(c);
		if (flag(F_E)) {
			y = y * (1.0 + E[e0 + c]) + E[e0 + C + c];
		}
		if (flag(F_SILU)) {
			y = y / (1.0 + exp(-y));
		}
		if (flag(F_R)) {
			y += E[base + c * per];
		}
		Out[base + c * per] = y;
	}
}

// pixel_unshuffle: out[b, (c·r+i)·r+j, y, x] = in[b, c, y·r+i, x·r+j]
// (torch.nn.PixelUnshuffle); a = C, b = H, c = W, d = r.
@compute @workgroup_size(256)
fn pixel_unshuffle(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let o = index(wid, nwg, li);
	if (o >= P.n) {
		return;
	}
	let r = P.d;
	let OH = P.b / r;
	let OW = P.c / r;
	let ox = o % OW;
	var t = o / OW;
	let oy = t % OH;
	t /= OH;
	let oc = t % (P.a * r * r);
	let bi = t / (P.a * r * r);
	let c = oc / (r * r);
	let i = (oc / r) % r;
	let j = oc % r;
	Out[o] = X[((bi * P.a + c) * P.b + oy * r + i) * P.c + ox * r + j];
}

// slice_channels: a = kept channels × positions, b = all channels ×
// positions (per sample), c = first kept channel × positions.
@compute @workgroup_size(256)
fn slice_channels(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let o = index(wid, nwg, li);
	if (o < P.n) {
		Out[o] = X[(o / P.a) * P.b + P.c + o % P.a];
	}
}

// Scratch for the kernels below that give one workgroup to a row (a key
// channel or a query); their reductions are reduce64.wgsl's.
var<workgroup> ps: array<f32, 64>;
var<workgroup> qs: array<f32, 256>;


// Linear attention (Shen et al. 2021, "Efficient Attention: Attention with
// Linear Complexities", as lucidrains' LinearAttention computes it): a = N
// tokens, b = heads, c = D, d = M memory tokens, mem_kv W [2, heads, D, M]
// prepended to k and v along the tokens. Two dispatches:
//
// linattn_context: one workgroup per (batch, head, d) softmaxes key channel d
// over its M+N tokens and writes context[d, e] = Σ_j k'[d,j]·v[e,j] for every
// e into Out (scratch [B·heads, D, D]); n = B·heads·D rows. Each thread
// accumulates up to four e (e = li + 64·q, so D ≤ 256).
fn lin_key(bh: u32, d: u32, j: u32) -> f32 {
	let N = P.a;
	let heads = P.b;
	let D = P.c;
	let M = P.d;
	if (j < M) {
		return weight(((bh % heads) * D + d) * M + j);
	}
	let hidden = heads * D;
	return X[((bh / heads) * 3u * hidden + hidden + (bh % heads) * D + d) * N + j - M];
}

fn lin_value(bh: u32, e: u32, j: u32) -> f32 {
	let N = P.a;
	let heads = P.b;
	let D = P.c;
	let M = P.d;
	if (e >= D) {
		return 0.0;
	}
	if (j < M) {
		return weight(((heads + bh % heads) * D + e) * M + j);
	}
	let hidden = heads * D;
	return X[((bh / heads) * 3u * hidden + 2u * hidden + (bh % heads) * D + e) * N + j - M];
}

@compute @workgroup_size(64)
fn linattn_context(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let row = wid.y * nwg.x + wid.x;
	if (row >= P.n) {
		return;
	}
	let D = P.c;
	let T = P.a + P.d;
	let bh = row / D;
	let d = row % D;
	var m = -3.0e38;
	for (var j = li; j < T; j += 64u) {
		m = max(m, lin_key(bh, d, j));
	}
	m = reduce_max(li, m);
	var s = 0.0;
	for (var j = li; j < T; j += 64u) {
		s += exp(lin_key(bh, d, j) - m);
	}
	let inv = 1.0 / reduce_sum(li, s);
	var acc = vec4<f32>();
	for (var j0 = 0u; j0 < T; j0 += 64u) {
		let j = j0 + li;
		var p = 0.0;
		if (j < T) {
			p = exp(lin_key(bh, d, j) - m) * inv;
		}
		ps[li] = p;
		workgroupBarrier();
		let n = min(64u, T - j0);
		for (var jj = 0u; jj < n; jj++) {
			let pj = ps[jj];
			acc += pj * vec4<f32>(lin_value(bh, li, j0 + jj), lin_value(bh, li + 64u, j0 + jj),
				lin_value(bh, li + 128u, j0 + jj), lin_value(bh, li + 192u, j0 + jj));
		}
		workgroupBarrier();
	}
	let o = (bh * D + d) * D;
	for (var q = 0u; q < 4u; q++) {
		let e = li + 64u * q;
		if (e < D) {
			Out[o + e] = acc[q];
		}
	}
}

// linattn_out: one thread per output element (b, h·D+e, n) softmaxes query
// token n over its D channels and writes f · Σ_d context[d,e]·q'[d,n], with
// the context in E; n = B·heads·D·N, f = the scale.
@compute @workgroup_size(256)
fn linattn_out(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let N = P.a;
	let heads = P.b;
	let D = P.c;
	let hidden = heads * D;
	let n = i % N;
	let ch = (i / N) % hidden;
	let bi = i / (N * hidden);
	let h = ch / D;
	let e = ch % D;
	let q0 = (bi * 3u * hidden + h * D) * N + n;
	var m = -3.0e38;
	for (var d = 0u; d < D; d++) {
		m = max(m, X[q0 + d * N]);
	}
	var s = 0.0;
	var acc = 0.0;
	let c0 = (bi * heads + h) * D * D + e;
	for (var d = 0u; d < D; d++) {
		let p = exp(X[q0 + d * N] - m);
		s += p;
		acc += E[c0 + d * D] * p;
	}
	Out[i] = acc / s * P.f;
}

// mem_attention: softmax(f·q·Kᵀ)·V per (batch, head) with M memory tokens
// prepended to the keys and values (lucidrains' Attention with Attend; W =
// mem_kv [2, heads, M, D]): a = N, b = heads, c = D ≤ 256, d = M, f = the
// scale, n = B·heads·N query rows. One 64-thread workgroup per query walks
// the M+N keys 64 at a time with an online softmax (Milakov & Gimelshein
// 2018, "Online normalizer calculation for softmax"): each thread scores one
// key of the chunk, the running maximum and sum are rescaled, and each
// thread accumulates up to four output channels (d = li + 64·q). No scores
// are stored, so the op needs no scratch.
fn mem_key(bh: u32, j: u32, d: u32) -> f32 {
	let N = P.a;
	let heads = P.b;
	let D = P.c;
	let M = P.d;
	if (j < M) {
		return weight(((bh % heads) * M + j) * D + d);
	}
	let hidden = heads * D;
	return X[((bh / heads) * 3u * hidden + hidden + (bh % heads) * D + d) * N + j - M];
}

fn mem_value(bh: u32, j: u32, d: u32) -> f32 {
	let N = P.a;
	let heads = P.b;
	let D = P.c;
	let M = P.d;
	if (d >= D) {
		return 0.0;
	}
	if (j < M) {
		return weight(((heads + bh % heads) * M + j) * D + d);
	}
	let hidden = heads * D;
	return X[((bh / heads) * 3u * hidden + 2u * hidden + (bh % heads) * D + d) * N + j - M];
}

@compute @workgroup_size(64)
fn mem_attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let row = wid.y * nwg.x + wid.x;
	if (row >= P.n) {
		return;
	}
	let N = P.a;
	let heads = P.b;
	let D = P.c;
	let T = N + P.d;
	let hidden = heads * D;
	let bh = row / N;
	let i = row % N;
	let q0 = ((bh / heads) * 3u * hidden + (bh % heads) * D) * N + i;
	for (var d = li; d < D; d += 64u) {
		qs[d] = X[q0 + d * N];
	}
	workgroupBarrier();
	var m = -3.0e38;
	var l = 0.0;
	var acc = vec4<f32>();
	for (var j0 = 0u; j0 < T; j0 += 64u) {
		let j = j0 + li;
		var sc = -3.0e38;
		if (j < T) {
			var dot = 0.0;
			for (var d = 0u; d < D; d++) {
				dot += qs[d] * mem_key(bh, j, d);
			}
			sc = dot * P.f;
		}
		let mn = max(m, reduce_max(li, sc));
		let alpha = exp(m - mn);
		var p = 0.0;
		if (j < T) {
			p = exp(sc - mn);
		}
		ps[li] = p;
		l = l * alpha + reduce_sum(li, p); // its barriers publish ps too
		acc *= alpha;
		let n = min(64u, T - j0);
		for (var jj = 0u; jj < n; jj++) {
			let pj = ps[jj];
			acc += pj * vec4<f32>(mem_value(bh, j0 + jj, li), mem_value(bh, j0 + jj, li + 64u),
				mem_value(bh, j0 + jj, li + 128u), mem_value(bh, j0 + jj, li + 192u));
		}
		m = mn;
		workgroupBarrier();
	}
	let o = ((bh / heads) * hidden + (bh % heads) * D) * N + i;
	for (var q = 0u; q < 4u; q++) {
		let d = li + 64u * q;
		if (d < D) {
			Out[o + d * N] = acc[q] / l;
		}
	}
}

// mem_attention_serial is mem_attention for software adapters
// (Options.Serial; see serial.go): one thread per query row, no workgroup
// memory and no barriers. Each thread walks all M+N keys with the online
// softmax in registers, rescaling its accumulators only when the running
// maximum grows; neighbouring threads read the same key and value, which a
// CPU serves from cache. Addresses are computed once per key, not per
// element (integer division costs dearly there).
@compute @workgroup_size(64)
fn mem_attention_serial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let row = (wid.y * nwg.x + wid.x) * 64u + li;
	if (row >= P.n) {
		return;
	}
	let N = P.a;
	let heads = P.b;
	let D = P.c;
	let M = P.d;
	let hidden = heads * D;
	let bh = row / N;
	let h = bh % heads;
	let q0 = ((bh / heads) * 3u * hidden + h * D) * N + row % N;
	let k0 = ((bh / heads) * 3u * hidden + hidden + h * D) * N; // key d of token t: k0 + d·N + t
	let v0 = k0 + hidden * N;
	var q: array<f32, 256>;
	var acc: array<f32, 256>;
	for (var d = 0u; d < D; d++) {
		q[d] = X[q0 + d * N] * P.f;
		acc[d] = 0.0;
	}
	var m = -3.0e38;
	var l = 0.0;
	for (var j = 0u; j < M + N; j++) {
		var sc = 0.0;
		if (j < M) {
			let kw = (h * M + j) * D;
			for (var d = 0u; d < D; d++) {
				sc += q[d] * weight(kw + d);
			}
		} else {
			let kx = k0 + j - M;
			for (var d = 0u; d < D; d++) {
				sc += q[d] * X[kx + d * N];
			}
		}
		if (sc > m) {
			let alpha = exp(m - sc);
			l *= alpha;
			for (var d = 0u; d < D; d++) {
				acc[d] *= alpha;
			}
			m = sc;
		}
		let p = exp(sc - m);
		l += p;
		if (j < M) {
			let vw = ((heads + h) * M + j) * D;
			for (var d = 0u; d < D; d++) {
				acc[d] += p * weight(vw + d);
			}
		} else {
			let vx = v0 + j - M;
			for (var d = 0u; d < D; d++) {
				acc[d] += p * X[vx + d * N];
			}
		}
	}
	let o = ((bh / heads) * hidden + h * D) * N + row % N;
	for (var d = 0u; d < D; d++) {
		Out[o + d * N] = acc[d] / l;
	}
}
