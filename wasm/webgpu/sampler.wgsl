// Sampler updates that keep the sample on the GPU between network calls
// (sample.go drives them). Every step's coefficients are computed on the
// host in float64 by core/sampler's exported step functions and passed here
// as f32; the noise z is drawn on the host (core/rng) so it is the CPU
// sampler's.
//
// Buffers: Y is the network output ([cond | uncond] when guided), Z the
// step's noise, S the sampler's state: regions of n values at the offsets
// below (x, the x̂0 of the last evaluation, DPM-Solver++'s history, Heun's
// slope and trial point). net_input binds S read-only at binding 1 and the
// network's input buffer at binding 3 instead (so there Y is S).
//
// Every update starts the same way (predict): guidance mixing
// y = u + w·(c - u) (Ho & Salimans 2022), then x̂0 and ε̂ from y by the
// prediction type at the point (a, s) of x_t = scale·S[src + i], x̂0 clipped
// when asked (and ε̂ re-derived from it with use_clipped_model_output).

struct Params {
	n: u32, guided: u32, pred: u32, flags: u32,
	src: u32, ox: u32, o0: u32, o1: u32,
	o2: u32, od: u32, ox2: u32, copies: u32,
	a: f32, s: f32, scale: f32, w: f32,
	clip: f32, k0: f32, k1: f32, k2: f32,
	k3: f32, k4: f32, k5: f32, k6: f32,
	k7: f32, k8: f32, per: u32, _p1: u32,
}

const PRED_EPS: u32 = 0u;
const PRED_SAMPLE: u32 = 1u;
const PRED_V: u32 = 2u;
const PRED_SCORE: u32 = 3u;

const S_CLIP: u32 = 1u;        // clamp x̂0 to [-clip, clip]
const S_CLIPPED_EPS: u32 = 2u; // re-derive ε̂ from the clipped x̂0
const S_NOISE: u32 = 4u;       // add the noise term
const S_HEUN: u32 = 8u;        // dpm_step: order-2 heun form (else midpoint)
const S_FINAL: u32 = 16u;      // heun_first, em_step: the step ends at σ = 0
const S_KEEPX: u32 = 32u;      // ddim_step (inversion from σ = 0): x̂0 = x itself

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> Z: array<f32>;
@group(0) @binding(3) var<storage, read_write> S: array<f32>;

// predict returns (x̂0, ε̂) for element i.
fn predict(i: u32) -> vec2<f32> {
	var y = Y[i];
	if (P.guided == 1u) {
		let u = Y[P.n + i];
		y = u + P.w * (y - u);
	}
	let x = P.scale * S[P.src + i];
	let a = P.a;
	let s = P.s;
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
	S[P.o0 + i] = x0;
	return vec2<f32>(x0, e);
}

fn noise(i: u32) -> f32 {
	if ((P.flags & S_NOISE) != 0u) {
		return Z[i];
	}
	return 0.0;
}

// net_input writes the network's input: `copies` back-to-back copies of
// scale·S[src..src+n) (binding 3 is the input buffer here, binding 1 S).
@compute @workgroup_size(256)
fn net_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let v = P.scale * Y[P.src + i];
	for (var c = 0u; c < P.copies; c++) {
		S[c * P.n + i] = v;
	}
}

// ddim_step: DDIM (Song, Meng & Ermon 2021, eq. 12),
// x ← α_s·x̂0 + dir·ε̂ + c·z with k0 = α_s, k1 = dir, k2 = c.
@compute @workgroup_size(256)
fn ddim_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let p = predict(i);
	var x0 = p.x;
	if ((P.flags & S_KEEPX) != 0u) {
		// DDIM inversion's first step (core/sampler.InvertDDIM): ε̂ from
		// the model at the noisier point on the clean input, x̂0 = x.
		x0 = S[P.src + i];
		S[P.o0 + i] = x0;
	}
	S[P.ox + i] = P.k0 * x0 + P.k1 * p.y + P.k2 * noise(i);
}

// ddpm_step: ancestral DDPM (Ho, Jain & Abbeel 2020, eq. 6-7),
// x ← cx·x + c0·x̂0 + std·z with k0 = cx, k1 = c0, k2 = std.
@compute @workgroup_size(256)
fn ddpm_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let p = predict(i);
	S[P.ox + i] = P.k0 * S[P.ox + i] + P.k1 * p.x + P.k2 * noise(i);
}

// euler_step: Euler (and Euler ancestral) on dx/dσ = (x - D)/σ (Karras et
// al. 2022, eq. 3) in x = x_t/α, x ← x + (x - x̂0)/σ·dσ + up·z with
// k0 = σ, k1 = dσ (to σ_down for ancestral), k2 = up.
@compute @workgroup_size(256)
fn euler_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let p = predict(i);
	let x = S[P.ox + i];
	S[P.ox + i] = x + (x - p.x) / P.k0 * P.k1 + P.k2 * noise(i);
}

// heun_first: Heun's method (Karras et al. 2022, Alg. 1), first stage:
// d = (x - x̂0)/σ, trial point x2 = x + d·dσ (k0 = σ, k1 = dσ); a step to
// σ = 0 ends there.
@compute @workgroup_size(256)
fn heun_first(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let p = predict(i);
	let x = S[P.ox + i];
	let d = (x - p.x) / P.k0;
	let x2 = x + d * P.k1;
	S[P.od + i] = d;
	S[P.ox2 + i] = x2;
	if ((P.flags & S_FINAL) != 0u) {
		S[P.ox + i] = x2;
	}
}

// heun_second: the correction with the slope at the trial point,
// x ← x + (d + (x2 - x̂0')/σ')/2·dσ (k0 = σ', k1 = dσ).
@compute @workgroup_size(256)
fn heun_second(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let p = predict(i);
	let d2 = (S[P.ox2 + i] - p.x) / P.k0;
	S[P.ox + i] = S[P.ox + i] + (S[P.od + i] + d2) / 2.0 * P.k1;
}

// dpm_step: multistep DPM-Solver++ (Lu et al. 2022, Algorithm 2; order 3
// from DPM-Solver's Algorithm 3 in data-prediction form; see
// core/sampler.DPMSolverPP), with the data predictions m0 = x̂0, m1, m2 of
// the last points (S at o1, o2, shifted here). k0 = order (0: the step to
// σ = 0, x = α_t·m0), k1 = σ_t/σ_s, k2 = α_t, k3 = e^{-h}-1, k4 = r0,
// k5 = r1, k6 = C2, k7 = C3, k8 = the D2 scale.
@compute @workgroup_size(256)
fn dpm_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let p = predict(i);
	let m0 = p.x;
	let m1 = S[P.o1 + i];
	let m2 = S[P.o2 + i];
	let x = S[P.ox + i];
	let ord = u32(P.k0);
	let ratio = P.k1;
	let at = P.k2;
	let em1 = P.k3;
	var v: f32;
	switch (ord) {
		case 0u: {
			v = at * m0;
		}
		case 1u: {
			v = ratio * x - at * em1 * m0;
		}
		case 2u: {
			let d1 = (m0 - m1) / P.k4;
			if ((P.flags & S_HEUN) != 0u) {
				v = ratio * x - at * em1 * m0 + P.k6 * d1;
			} else {
				v = ratio * x - at * em1 * m0 - 0.5 * at * em1 * d1;
			}
		}
		default: {
			let r0 = P.k4;
			let r1 = P.k5;
			let d10 = (m0 - m1) / r0;
			let d11 = (m1 - m2) / r1;
			let d1 = d10 + r0 / (r0 + r1) * (d10 - d11);
			let d2 = P.k8 * (d10 - d11) / (r0 + r1);
			v = ratio * x - at * em1 * m0 + P.k6 * d1 - P.k7 * d2;
		}
	}
	S[P.ox + i] = v;
	S[P.o2 + i] = m1;
	S[P.o1 + i] = m0;
}

// em_step: Euler–Maruyama on the reverse-time SDE (Song et al. 2021, eq. 6;
// core/sampler.EMCoeffs), x ← x + (k0·x + k1·ε̂ + k2·z); a step to σ = 0
// (S_FINAL) returns the denoised mean x ← x̂0 (Tweedie's formula, their
// appendix G).
@compute @workgroup_size(256)
fn em_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let p = predict(i);
	if ((P.flags & S_FINAL) != 0u) {
		S[P.ox + i] = p.x;
		return;
	}
	let x = S[P.ox + i];
	S[P.ox + i] = x + (P.k0 * x + P.k1 * p.y + P.k2 * noise(i));
}

var<workgroup> partial: array<f32, 256>;

// langevin_norm: the squared norm of the score ∇log p = -ε̂/σ of each
// sample (P.per values), one workgroup per sample, into S[od + sample]:
// the predictor–corrector's Langevin step size ε_L = k0/‖∇log p‖² (Song
// et al. 2021, Alg. 5 with the per-sample norm of
// core/sampler.PredictorCorrector).
@compute @workgroup_size(256)
fn langevin_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let b = wid.y * nwg.x + wid.x;
	var acc = 0.0;
	for (var k = li; k < P.per; k += 256u) {
		let g = predict(b * P.per + k).y / P.s;
		acc += g * g;
	}
	partial[li] = acc;
	workgroupBarrier();
	for (var w = 128u; w > 0u; w >>= 1u) {
		if (li < w) {
			partial[li] += partial[li + w];
		}
		workgroupBarrier();
	}
	if (li == 0u) {
		S[P.od + b] = partial[0];
	}
}

// langevin_step: one Langevin corrector step, x ← x + ε_L·∇log p +
// sqrt(2ε_L)·z with ε_L = k0/S[od + sample] (langevin_norm); a sample whose
// score is 0 stays.
@compute @workgroup_size(256)
fn langevin_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let p = predict(i);
	let gn = S[P.od + i / P.per];
	if (gn == 0.0) {
		return;
	}
	let e = P.k0 / gn;
	S[P.ox + i] = S[P.ox + i] + (e * (-p.y / P.s) + sqrt(2.0 * e) * noise(i));
}
