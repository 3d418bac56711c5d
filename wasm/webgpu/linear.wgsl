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
	if (flag(F_COLS)) {
		Out[Cols[2u * n] + m * Cols[2u * n + 1u]] = r;
		return;
	}
	Out[m * P.O + n] = r;
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
