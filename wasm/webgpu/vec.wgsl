// The vector operations of core/sampler.Space on the GPU (space.go): every
// sampler's arithmetic is a few of these over vectors kept in one arena
// buffer A, each vector n = B·per values at a word offset.
//
// P is one operation's parameters (a slot of the parameter ring):
//
//	P[0] n, P[1] per (values per sample), P[2] terms K (lincomb),
//	P[3] output offset, P[4..11] input offsets, P[12], P[13] f32 lo/hi
//	(clamp) or atol/rtol (sumsq), P[14] flags (sumsq: 1 scale by Y at
//	P[5], 2 also Y2 at P[6]), P[16 + k·B + b] f32 coefficient of term k
//	for sample b.
//
// R holds a reduction's per-sample results.

@group(0) @binding(0) var<storage, read> P: array<u32>;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> R: array<f32>;

fn pf(i: u32) -> f32 {
	return bitcast<f32>(P[i]);
}

// lincomb: out = Σ_k c_k·v_k (per-sample c), summed in term order.
@compute @workgroup_size(256)
fn lincomb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	let n = P[0];
	if (i >= n) {
		return;
	}
	let b = i / P[1];
	let B = n / P[1];
	var acc = 0.0;
	for (var k = 0u; k < P[2]; k++) {
		acc += pf(16u + k * B + b) * A[P[4u + k] + i];
	}
	A[P[3] + i] = acc;
}

// clamp: out = min(max(v, lo), hi).
@compute @workgroup_size(256)
fn clamp_vec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P[0]) {
		return;
	}
	A[P[3] + i] = clamp(A[P[4] + i], pf(12u), pf(13u));
}

var<workgroup> part: array<f32, 256>;

// sumsq: R[b] = Σ_i (v_i/s_i)² over sample b (workgroup b), with
// s_i = atol + rtol·max(|y_i|, |y2_i|) when flagged, else 1.
@compute @workgroup_size(256)
fn sumsq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let per = P[1];
	let b = wid.x;
	let base = b * per;
	var acc = 0.0;
	for (var j = li; j < per; j += 256u) {
		let i = base + j;
		var w = A[P[4] + i];
		if ((P[14] & 1u) != 0u) {
			var m = abs(A[P[5] + i]);
			if ((P[14] & 2u) != 0u) {
				m = max(m, abs(A[P[6] + i]));
			}
			w = w / (pf(12u) + m * pf(13u));
		}
		acc += w * w;
	}
	part[li] = acc;
	workgroupBarrier();
	for (var s = 128u; s > 0u; s >>= 1u) {
		if (li < s) {
			part[li] += part[li + s];
		}
		workgroupBarrier();
	}
	if (li == 0u) {
		R[b] = part[0];
	}
}
