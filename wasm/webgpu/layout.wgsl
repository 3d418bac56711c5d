// Data movement: channel concat, nearest 2× upsampling and the NCHW ↔
// token-major transposes around attention. One thread per output element.

struct Params {
	n: u32, a: u32, b: u32, c: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;

// concat: a, b = per-sample sizes of X and Y.
@compute @workgroup_size(256)
fn concat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		let per = P.a + P.b;
		let s = i / per;
		let r = i % per;
		if (r < P.a) {
			Out[i] = X[s * P.a + r];
		} else {
			Out[i] = Y[s * P.b + r - P.a];
		}
	}
}

// upsample2x: a, b = input height and width.
@compute @workgroup_size(256)
fn upsample2x(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		let ow = 2u * P.b;
		let ox = i % ow;
		let rest = i / ow;
		let oy = rest % (2u * P.a);
		let bc = rest / (2u * P.a);
		Out[i] = X[(bc * P.a + oy / 2u) * P.b + ox / 2u];
	}
}

// to_tokens: [B,C,HW] -> [B,HW,C]; a = C, b = HW.
@compute @workgroup_size(256)
fn to_tokens(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		let ch = i % P.a;
		let bp = i / P.a;
		let b = bp / P.b;
		let p = bp % P.b;
		Out[i] = X[(b * P.a + ch) * P.b + p];
	}
}

// from_tokens: [B,HW,C] -> [B,C,HW]; a = C, b = HW.
@compute @workgroup_size(256)
fn from_tokens(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i < P.n) {
		let p = i % P.b;
		let bc = i / P.b;
		let b = bc / P.a;
		let ch = bc % P.a;
		Out[i] = X[(b * P.b + p) * P.a + ch];
	}
}
