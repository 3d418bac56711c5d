// Linear: out[r,o] = x[r,:]·w[o,:] + bias[o], a GEMM with M = rows,
// N = output features, K = input features; w is read transposed, so its
// tile is loaded along k. Split-K as in conv.wgsl: with split > 1, Out is
// a scratch [split, rows, O] of partial sums and linear_reduce finishes.
//
// Merged linears (linears.go: several linears of one input, e.g. every
// resnet's time_emb_proj, as one GEMM over their concatenated weights):
// with F_COLS, output column n goes to Out[Cols[2n] + m·Cols[2n+1]]: each
// linear's [rows, O] block at its own aligned offset, so its consumers bind
// it as an ordinary buffer.

struct Params {
	rows: u32, I: u32, O: u32, flags: u32,
	split: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Wt: array<u32>;
@group(0) @binding(3) var<storage, read> Bias: array<u32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;
@group(0) @binding(5) var<storage, read> Cols: array<u32>;

const linear_BT: bool = true;
fn linear_dims() -> vec3<u32> { return vec3<u32>(P.rows, P.O, P.I); }
fn linear_load_a(z: u32, m: u32, k: u32) -> f32 { return X[m * P.I + k]; }
alias linear_Row = u32;
alias linear_Col = u32;
fn linear_row(z: u32, k: u32) -> u32 { return k; }
fn linear_col(z: u32, n: u32) -> u32 { return n * P.I; }
fn linear_load_b(z: u32, k: u32, col: u32) -> f32 {
	let i = col + k;
	return wvalue(Wt[wword(i)], i);
}
fn linear_krange(z: u32) -> vec2<u32> { return k_slice(P.I, P.split, z); }
fn linear_store(z: u32, m: u32, n: u32, v: f32) {
	if (P.split > 1u) {
		Out[(z * P.rows + m) * P.O + n] = v;
		return;
	}
	finish(m, n, v);
}
fn finish(m: u32, n: u32, v: f32) {
	var r = v;
	if (flag(F_BIAS)) {
		r += wvalue(Bias[wword(n)], n);
	}
	if (flag(F_SILU)) { // a fused SiLU, as elementwise.wgsl's
		r = r / (1.0 + exp(-r));
	}
	if (flag(F_COLS)) {
		Out[Cols[2u * n] + m * Cols[2u * n + 1u]] = r;
		return;
	}
	Out[m * P.O + n] = r;
}

// linear_rows is the serial-kernel linear for fewer than 8 rows (a
// batch's time embedding, the 2-D MLP at batch 1), where GEMM_serial's 8×4
// block would compute 8 copies of one row: each thread owns one row and 4
// output features and walks K, 5 loads per 4 multiply-adds. No split.
// Workgroups of 16, so even a 128-feature layer spreads over two cores.
@compute @workgroup_size(16)
fn linear_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let quads = (P.O + 3u) / 4u;
	let t = (wid.y * nwg.x + wid.x) * 16u + li;
	if (t >= P.rows * quads) {
		return;
	}
	let m = t / quads;
	let n0 = (t % quads) * 4u;
	let x0 = m * P.I;
	let w0 = n0 * P.I;
	let w1 = min(n0 + 1u, P.O - 1u) * P.I; // features past O repeat the last
	let w2 = min(n0 + 2u, P.O - 1u) * P.I;
	let w3 = min(n0 + 3u, P.O - 1u) * P.I;
	var acc = vec4<f32>();
	for (var k = 0u; k < P.I; k++) {
		let wv = vec4<f32>(wvalue(Wt[wword(w0 + k)], w0 + k), wvalue(Wt[wword(w1 + k)], w1 + k),
			wvalue(Wt[wword(w2 + k)], w2 + k), wvalue(Wt[wword(w3 + k)], w3 + k));
		acc += X[x0 + k] * wv;
	}
	for (var j = 0u; j < 4u && n0 + j < P.O; j++) {
		finish(m, n0 + j, acc[j]);
	}
}

@compute @workgroup_size(256)
fn linear_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	let total = P.rows * P.O;
	if (i >= total) {
		return;
	}
	var v = 0.0;
	for (var z = 0u; z < P.split; z++) {
		v += X[z * total + i];
	}
	finish(i / P.O, i % P.O, v);
}
