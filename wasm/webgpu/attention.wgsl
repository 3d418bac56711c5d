// Multi-head scaled dot-product attention over q, k, v [B,N,heads·D], in
// three dispatches sharing one bind group: scores S = q·kᵀ·scale per
// (batch, head) as a GEMM, a row softmax of S in place, then S·v as a GEMM
// written straight into the head's channels of the output.

struct Params {
	B: u32, N: u32, C: u32, heads: u32,
	D: u32, rows: u32, scale: f32, _p0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> Kt: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read_write> S: array<f32>;
@group(0) @binding(5) var<storage, read_write> Out: array<f32>;

// Offset of token t, head channel 0 of the (batch, head) pair z.
fn head_base(z: u32, t: u32) -> u32 {
	return ((z / P.heads) * P.N + t) * P.C + (z % P.heads) * P.D;
}

const scores_BT: bool = true;
fn scores_dims() -> vec3<u32> { return vec3<u32>(P.N, P.N, P.D); }
fn scores_krange(z: u32) -> vec2<u32> { return vec2<u32>(0u, P.D); }
fn scores_load_a(z: u32, m: u32, k: u32) -> f32 { return Q[head_base(z, m) + k]; }
alias scores_Row = u32;
alias scores_Col = u32;
fn scores_row(z: u32, k: u32) -> u32 { return k; }
fn scores_col(z: u32, n: u32) -> u32 { return head_base(z, n); }
fn scores_load_b(z: u32, k: u32, col: u32) -> f32 { return Kt[col + k]; }
fn scores_store(z: u32, m: u32, n: u32, v: f32) { S[(z * P.N + m) * P.N + n] = v * P.scale; }

const pv_BT: bool = false;
fn pv_dims() -> vec3<u32> { return vec3<u32>(P.N, P.D, P.N); }
fn pv_krange(z: u32) -> vec2<u32> { return vec2<u32>(0u, P.N); }
fn pv_load_a(z: u32, m: u32, k: u32) -> f32 { return S[(z * P.N + m) * P.N + k]; }
alias pv_Row = u32;
alias pv_Col = u32;
fn pv_row(z: u32, k: u32) -> u32 { return head_base(z, k); }
fn pv_col(z: u32, n: u32) -> u32 { return n; }
fn pv_load_b(z: u32, row: u32, n: u32) -> f32 { return V[row + n]; }
fn pv_store(z: u32, m: u32, n: u32, v: f32) { Out[head_base(z, m) + n] = v; }

// The fused attention block (attnblock.go) keeps everything channel-major:
// Q, Kt and V are all bound to one [B, 3·C, N] buffer (q's channels, then
// k's, then v's, as the block's 1×1 convolution writes them), and the
// weighted sum is written as [B, C, N] for the output convolution.
fn cm(z: u32, part: u32, c: u32, t: u32) -> u32 {
	return ((z / P.heads) * 3u * P.C + part * P.C + (z % P.heads) * P.D + c) * P.N + t;
}

const scorescm_BT: bool = false;
fn scorescm_dims() -> vec3<u32> { return vec3<u32>(P.N, P.N, P.D); }
fn scorescm_krange(z: u32) -> vec2<u32> { return vec2<u32>(0u, P.D); }
fn scorescm_load_a(z: u32, m: u32, k: u32) -> f32 { return Q[cm(z, 0u, k, m)]; }
alias scorescm_Row = u32;
alias scorescm_Col = u32;
fn scorescm_row(z: u32, k: u32) -> u32 { return cm(z, 1u, k, 0u); }
fn scorescm_col(z: u32, n: u32) -> u32 { return n; }
fn scorescm_load_b(z: u32, row: u32, n: u32) -> f32 { return Kt[row + n]; }
fn scorescm_store(z: u32, m: u32, n: u32, v: f32) { S[(z * P.N + m) * P.N + n] = v * P.scale; }

const pvcm_BT: bool = true;
fn pvcm_dims() -> vec3<u32> { return vec3<u32>(P.N, P.D, P.N); }
fn pvcm_krange(z: u32) -> vec2<u32> { return vec2<u32>(0u, P.N); }
fn pvcm_load_a(z: u32, m: u32, k: u32) -> f32 { return S[(z * P.N + m) * P.N + k]; }
alias pvcm_Row = u32;
alias pvcm_Col = u32;
fn pvcm_row(z: u32, k: u32) -> u32 { return k; }
fn pvcm_col(z: u32, n: u32) -> u32 { return cm(z, 2u, n, 0u); }
fn pvcm_load_b(z: u32, k: u32, col: u32) -> f32 { return V[col + k]; }
fn pvcm_store(z: u32, m: u32, n: u32, v: f32) {
	Out[((z / P.heads) * P.C + (z % P.heads) * P.D + n) * P.N + m] = v;
}

// softmax: one 64-thread workgroup per row of S (rows = B·heads·N),
// max-subtracted, with reduce64.wgsl's reductions. Rows are at most a few
// thousand long, so 64 threads keep the reductions short.
@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let row = wid.y * nwg.x + wid.x;
	if (row >= P.rows) {
		return;
	}
	let base = row * P.N;
	var m = -3.0e38;
	for (var j = li; j < P.N; j += 64u) {
		m = max(m, S[base + j]);
	}
	m = reduce_max(li, m);
	var s = 0.0;
	for (var j = li; j < P.N; j += 64u) {
		let e = exp(S[base + j] - m);
		S[base + j] = e;
		s += e;
	}
	let inv = 1.0 / reduce_sum(li, s);
	for (var j = li; j < P.N; j += 64u) {
		S[base + j] *= inv;
	}
}

// softmax_serial is softmax for the serial kernel set (serial.go): one
// thread per row, no workgroup memory and no barriers.
@compute @workgroup_size(64)
fn softmax_serial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let row = (wid.y * nwg.x + wid.x) * 64u + li;
	if (row >= P.rows) {
		return;
	}
	let base = row * P.N;
	var m = -3.0e38;
	for (var j = 0u; j < P.N; j++) {
		m = max(m, S[base + j]);
	}
	var s = 0.0;
	for (var j = 0u; j < P.N; j++) {
		let e = exp(S[base + j] - m);
		S[base + j] = e;
		s += e;
	}
	let inv = 1.0 / s;
	for (var j = 0u; j < P.N; j++) {
		S[base + j] *= inv;
	}
}
