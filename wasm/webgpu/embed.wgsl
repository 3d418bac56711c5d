// Time and class embeddings: the sinusoidal timestep embedding (frequency
// table computed on the host exactly as the CPU reference does), Gaussian
// Fourier features, and class-embedding row lookup. One thread per output.

struct Params {
	n: u32, dim: u32, half: u32, flip: u32,
	scale: f32, log_input: u32, rows: u32, flags: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> T: array<f32>;
@group(0) @binding(2) var<storage, read> Wt: array<u32>;
@group(0) @binding(3) var<storage, read> F: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;

// sincos returns (sin x, cos x) accurate to about an f32 ulp for |x| up to
// a few thousand. Built-in sin/cos are only specified to 2^-11 absolute
// error on [-π, π], and timestep arguments reach 1000: so reduce by π/2 in
// three parts (Cody–Waite; C1 and C2 have few enough bits that k·C is exact)
// and evaluate Taylor polynomials on [-π/4, π/4].
fn sincos(x: f32) -> vec2<f32> {
	let k = round(x * 0.63661977236758134);
	let r = ((x - k * 1.5703125) - k * 4.837512969970703125e-4) - k * 7.549789948768648e-8;
	let r2 = r * r;
	let s = r + r * r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0 + r2 * (-1.0 / 39916800.0)))));
	let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
	switch (i32(k) & 3) {
		case 0: { return vec2<f32>(s, c); }
		case 1: { return vec2<f32>(c, -s); }
		case 2: { return vec2<f32>(-s, -c); }
		default: { return vec2<f32>(-c, s); }
	}
}

// timestep: [sin | cos] (or [cos | sin] when flip) of scale·t·freq, a zero
// last column when dim is odd.
@compute @workgroup_size(256)
fn timestep(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let b = i / P.dim;
	let j = i % P.dim;
	if (j >= 2u * P.half) {
		Out[i] = 0.0;
		return;
	}
	let sc = sincos(P.scale * (T[b] * F[j % P.half]));
	let first = j < P.half;
	Out[i] = select(sc.y, sc.x, first != (P.flip == 1u));
}

// fourier: [sin | cos] (or [cos | sin]) of 2π·x·W, x = log t when log_input.
@compute @workgroup_size(256)
fn fourier(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let b = i / P.dim;
	let j = i % P.dim;
	let k = j % P.half;
	var x = T[b];
	if (P.log_input == 1u) {
		x = log(x);
	}
	let sc = sincos((x * wvalue(Wt[wword(k)], k)) * 6.2831853071795865);
	let first = j < P.half;
	Out[i] = select(sc.y, sc.x, first != (P.flip == 1u));
}

// embedding: row T[b] (a class label stored as float, checked on the host)
// of the table [rows, dim].
@compute @workgroup_size(256)
fn embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let b = i / P.dim;
	let l = u32(clamp(T[b], 0.0, f32(P.rows - 1u)));
	let w = l * P.dim + i % P.dim;
	Out[i] = wvalue(Wt[wword(w)], w);
}
