// Elementwise ops, one thread per output element. Workgroups are laid out
// in two dimensions so tensors past 65535×256 elements still fit the
// dispatch limits.

struct Params {
	n: u32, plane: u32, c: u32, per: u32,
	f: f32, g: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;

fn sigmoid_mul(v: f32) -> f32 { return v / (1.0 + exp(-v)); }

// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), as WGSL has none.
fn erf_approx(x: f32) -> f32 {
	let a = abs(x);
	let t = 1.0 / (1.0 + 0.3275911 * a);
	let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
	return sign(x) * (1.0 - p * exp(-a * a));
}

@compute @workgroup_size(256)
fn silu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		Out[i] = sigmoid_mul(X[i]);
	}
}

// gelu: the exact (erf) form, x·Φ(x).
@compute @workgroup_size(256)
fn gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		let v = X[i];
		Out[i] = 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
	}
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		Out[i] = X[i] + Y[i];
	}
}

// add_channel: Y [B,C] broadcast over each plane of X [B,C,H,W].
@compute @workgroup_size(256)
fn add_channel(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		Out[i] = X[i] + Y[i / P.plane];
	}
}

// scale_shift: X·(1+scale)+shift with Y [B,2C] = [scale | shift].
@compute @workgroup_size(256)
fn scale_shift(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		let bc = i / P.plane;
		let e = (bc / P.c) * 2u * P.c + bc % P.c;
		Out[i] = X[i] * (1.0 + Y[e]) + Y[e + P.c];
	}
}

@compute @workgroup_size(256)
fn affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		Out[i] = X[i] * P.f + P.g;
	}
}

// div_batch: every element of sample b divided by Y[b] (per = elements per sample).
@compute @workgroup_size(256)
fn div_batch(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		Out[i] = X[i] / Y[i / P.per];
	}
}

// reshape: the same elements under a new shape (a plain copy).
@compute @workgroup_size(256)
fn reshape(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		Out[i] = X[i];
	}
}

// ve_marginal_std: sqrt((f^(2t) - 1) / (2 ln f)) for times t, the marginal std
// of the score-SDE tutorial's VE SDE dx = f^t dw. f^(2t) - 1 is expm1(2t ln f),
// taken from its series for small arguments, where exp(a) - 1 would cancel.
@compute @workgroup_size(256)
fn ve_marginal_std(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		let ls = log(P.f);
		let a = 2.0 * X[i] * ls;
		var m = exp(a) - 1.0;
		if (abs(a) < 0.01) {
			m = a * (1.0 + a * (0.5 + a * (1.0 / 6.0 + a / 24.0)));
		}
		Out[i] = sqrt(m / (2.0 * ls));
	}
}
