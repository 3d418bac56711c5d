// Sampler updates that keep the sample x on the GPU between network calls.
// ddim_step is one step of DDIM (Song, Meng & Ermon 2021, eq. 12), with
// classifier-free guidance mixing and the injection of host-drawn noise:
//
//	y  = u + w·(c - u)                      (guided: Y = [cond | uncond])
//	x̂0, ε̂ from y by prediction type, x̂0 clipped when asked
//	x ← α_s·x̂0 + dir·ε̂ + c·z
//
// The step's coefficients are computed on the host in float64.

struct Params {
	n: u32, guided: u32, pred: u32, flags: u32,
	a_t: f32, s_t: f32, a_s: f32, dir: f32,
	c: f32, w: f32, clip: f32, _p0: u32,
}

const PRED_EPS: u32 = 0u;
const PRED_SAMPLE: u32 = 1u;
const PRED_V: u32 = 2u;
const PRED_SCORE: u32 = 3u;

const S_CLIP: u32 = 1u;        // clamp x̂0 to [-clip, clip]
const S_CLIPPED_EPS: u32 = 2u; // re-derive ε̂ from the clipped x̂0
const S_NOISE: u32 = 4u;       // add c·z

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> Z: array<f32>;
@group(0) @binding(3) var<storage, read_write> X: array<f32>;

@compute @workgroup_size(256)
fn ddim_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = (wid.y * nwg.x + wid.x) * 256u + li;
	if (i >= P.n) {
		return;
	}
	var y = Y[i];
	if (P.guided == 1u) {
		let u = Y[P.n + i];
		y = u + P.w * (y - u);
	}
	let x = X[i];
	let a = P.a_t;
	let s = P.s_t;
	var x0: f32;
	var e: f32;
	switch (P.pred) {
		case PRED_SAMPLE: {
			x0 = y;
			e = (x - a * y) / s;
		}
		case PRED_V: {
			x0 = a * x - s * y;
			e = s * x + a * y;
		}
		case PRED_SCORE: {
			e = -s * y;
			x0 = (x - s * e) / a;
		}
		default: {
			e = y;
			x0 = (x - s * y) / a;
		}
	}
	if ((P.flags & S_CLIP) != 0u) {
		x0 = clamp(x0, -P.clip, P.clip);
		if ((P.flags & S_CLIPPED_EPS) != 0u) {
			e = (x - a * x0) / s;
		}
	}
	var v = P.a_s * x0 + P.dir * e;
	if ((P.flags & S_NOISE) != 0u) {
		v += P.c * Z[i];
	}
	X[i] = v;
}
