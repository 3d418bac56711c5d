// Linear: out[r,o] = x[r,:]·w[o,:] + bias[o], a GEMM with M = rows,
// N = output features, K = input features; w is read transposed, so its
// tile is loaded along k.

struct Params {
	rows: u32, I: u32, O: u32, flags: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Wt: array<u32>;
@group(0) @binding(3) var<storage, read> Bias: array<u32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;

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
fn linear_store(z: u32, m: u32, n: u32, v: f32) {
	var r = v;
	if (flag(F_BIAS)) {
		r += wvalue(Bias[wword(n)], n);
	}
	Out[m * P.O + n] = r;
}
