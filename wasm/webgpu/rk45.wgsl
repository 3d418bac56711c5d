// The GPU-resident rk45 sampler (sample_rk45.go drives it): the adaptive
// Dormand–Prince 5(4) method (Dormand & Prince 1980, RK5(4)7M) with the
// step-size control of Hairer, Nørsett & Wanner, "Solving Ordinary
// Differential Equations I", II.4, on the probability-flow ODE in
// core/sampler.RK45's form: x = x_t/α, u = log(σ/α), dx/du = x - D(x; e^u)
// (Song et al. 2021, eq. 13; Karras et al. 2022, eq. 3). It mirrors
// core/sampler's dopri45 step for step: the tableau, tolerances and
// controller constants come from core/sampler as uniforms; the control
// runs in f32 here where dopri45 runs in float64.
//
// The step control lives on the GPU so that attempts are encoded back to
// back without the host: rk_control decides accept/reject and the next
// step into the control buffer C, and every other kernel reads the point
// it works at from C. The noise level → (α, σ, network time) map of the
// schedule (core/schedule's PointAtLevel, TimeAt, NetTime) is point() below.
//
// Buffers: P the uniforms (the stage in `stage`), Y the network output
// ([cond | uncond] when guided), L the discrete schedule's log levels
// (f32 bits) then the preview mask (a bit per accepted step), C the
// control words and per-sample sums (below), S this chunk's regions (y, the
// slopes k0..k6, the stage input tmp, which after stage 6 is the 5th-order
// solution, then A preview slots of [y | x̂0]), X and T the network's x and
// t inputs.

struct Params {
	n: u32, per: u32, nb: u32, copies: u32,
	B: u32, b0: u32, guided: u32, pred: u32,
	stage: u32, kind: u32, tmode: u32, nlev: u32,
	A: u32, nmask: u32, ok: u32, otmp: u32,
	opv: u32, _p0: u32, _p1: u32, _p2: u32,
	rtol: f32, atol: f32, w: f32, u1: f32,
	dir: f32, span: f32, tscale: f32, _f0: f32,
	c0: f32, c1: f32, c2: f32, c3: f32,
	safety: f32, minf: f32, maxf: f32, expo: f32,
	cs: f32, a0: f32, a1: f32, a2: f32,
	a3: f32, a4: f32, a5: f32, e0: f32,
	e1: f32, e2: f32, e3: f32, e4: f32,
	e5: f32, e6: f32, s_minh: f32, s_tiny: f32,
	s_frac: f32, s_zero: f32, s_shrink: f32, s_grow: f32, // core/sampler's RK45Start*
}

// Control words of C (f32 as bits where noted).
const C_U: u32 = 0u;        // f32: the current point u
const C_H: u32 = 1u;        // f32: the step size to try (|h|)
const C_HS: u32 = 2u;       // f32: this attempt's signed step (0 once done)
const C_UN: u32 = 3u;       // f32: this attempt's end point
const C_REJ: u32 = 4u;      // the last attempt was rejected
const C_DONE: u32 = 5u;     // finished (or failed)
const C_FAIL: u32 = 6u;     // step size underflow
const C_ATT: u32 = 7u;      // attempts made
const C_ACC: u32 = 8u;      // accepted steps
const C_NOW: u32 = 9u;      // 1 + this attempt's index if it was accepted, else 0
const C_H0: u32 = 10u;      // f32: the initial trial step
const C_D1: u32 = 11u;      // f32: the initial derivative's norm
const C_ES: u32 = 16u;      // per-sample sums: 2·B words from here
// then the log: 4 words per attempt (1 rejected / 2 accepted, u, h, err) at
// C_ES + 2·B.

// The schedule kinds of point().
const K_DISCRETE: u32 = 0u;
const K_VP: u32 = 1u;
const K_VE: u32 = 2u;
const K_VE_TUTORIAL: u32 = 3u;
// The network time inputs (core/schedule's NetTime).
const T_TIME: u32 = 0u;     // t itself (times tscale: t_scaled)
const T_SIGMA: u32 = 1u;
const T_LOG_SIGMA: u32 = 2u;

const PRED_SAMPLE: u32 = 1u;
const PRED_V: u32 = 2u;
const PRED_SCORE: u32 = 3u;

// Stages: 1..6 are an attempt's, these the start's.
const ST_START: u32 = 0u;   // the derivative at the start, into k0
const ST_TRIAL: u32 = 7u;   // the initial step's trial point, into k1

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> L: array<u32>;
@group(0) @binding(3) var<storage, read_write> C: array<u32>;
@group(0) @binding(4) var<storage, read_write> S: array<f32>;
@group(0) @binding(5) var<storage, read_write> X: array<f32>;
@group(0) @binding(6) var<storage, read_write> T: array<f32>;

fn cf(i: u32) -> f32 { return bitcast<f32>(C[i]); }
fn setf(i: u32, v: f32) { C[i] = bitcast<u32>(v); }

// log1p with Goldberg's correction (WGSL has none; log(1 + x) loses the
// digits of small x, and VP levels near the end time are ~1e-2).
fn log1p_(x: f32) -> f32 {
	let v = 1.0 + x;
	if (v == 1.0) {
		return x;
	}
	return log(v) * x / (v - 1.0);
}

// point returns (α, σ, network time) at log level u (core/schedule:
// PointAtLevel(e^u, TimeAt(e^u)) and NetTime).
fn point(u: f32) -> vec3<f32> {
	let l = exp(u);
	var a = 1.0;
	if (P.kind != K_VE && P.kind != K_VE_TUTORIAL) {
		a = 1.0 / sqrt(l * l + 1.0);
	}
	var t: f32;
	switch (P.kind) {
		case K_VP: {
			// solve t²(β1-β0)/2 + tβ0 = log(1+l²); c0 = β0, c1 = (β1-β0)/2
			let q = log1p_(l * l);
			t = 2.0 * q / (P.c0 + sqrt(P.c0 * P.c0 + 4.0 * P.c1 * q));
		}
		case K_VE: {
			// l = lo·(hi/lo)^t; c0 = log lo, c1 = 1/log(hi/lo)
			t = (u - P.c0) * P.c1;
		}
		case K_VE_TUTORIAL: {
			// c0 = 2·log σ
			t = log1p_(P.c0 * l * l) / P.c0;
		}
		default: {
			// diffusers' _sigma_to_t: the last log level ≤ log l, then
			// linear in the log levels between it and the next.
			let ll = max(u, log(1e-10));
			var lo = 0u;
			var hi = P.nlev;
			while (lo + 1u < hi) {
				let mid = (lo + hi) / 2u;
				if (bitcast<f32>(L[mid]) <= ll) {
					lo = mid;
				} else {
					hi = mid;
				}
			}
			let low = min(lo, P.nlev - 2u);
			let l0 = bitcast<f32>(L[low]);
			let l1 = bitcast<f32>(L[low + 1u]);
			let w = clamp((l0 - ll) / (l0 - l1), 0.0, 1.0);
			t = (1.0 - w) * f32(low) + w * f32(low + 1u);
		}
	}
	var nt = t * P.tscale;
	if (P.tmode == T_SIGMA) {
		nt = l;
	} else if (P.tmode == T_LOG_SIGMA) {
		nt = u;
	}
	return vec3<f32>(a, l * a, nt);
}

// stage_u is the point of this stage's evaluation.
fn stage_u() -> f32 {
	let u = cf(C_U);
	if (P.stage == ST_START) {
		return u;
	}
	if (P.stage == ST_TRIAL) {
		return u + P.dir * cf(C_H0);
	}
	return u + P.cs * cf(C_HS);
}

fn k(j: u32, i: u32) -> f32 { return S[P.ok + j * P.n + i]; }

// rk_input: the stage's input tmp (y, y + h0·k0 for the trial, or
// y + hs·Σ a_j k_j) and the network's inputs α·tmp (per copy) and t.
@compute @workgroup_size(256)
fn rk_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	let y = S[i];
	var v = y;
	if (P.stage == ST_TRIAL) {
		v = y + P.dir * cf(C_H0) * k(0u, i);
	} else if (P.stage != ST_START) {
		var a = array<f32, 6>(P.a0, P.a1, P.a2, P.a3, P.a4, P.a5);
		var acc = 0.0;
		for (var j = 0u; j < P.stage; j++) {
			acc += a[j] * k(j, i);
		}
		v = y + cf(C_HS) * acc;
	}
	S[P.otmp + i] = v;
	let p = point(stage_u());
	for (var c = 0u; c < P.copies; c++) {
		X[c * P.n + i] = p.x * v;
	}
	if (i < P.nb) {
		T[i] = p.z;
	}
}

// rk_slope: the slope at the stage, k = tmp - D(α·tmp) with D the model's
// x̂0 (guidance mixed, by prediction type; rk45 does not clip), into k0
// (start), k1 (trial) or k_stage.
@compute @workgroup_size(256)
fn rk_slope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.n) {
		return;
	}
	var y = Y[i];
	if (P.guided == 1u) {
		let un = Y[P.n + i];
		y = un + P.w * (y - un);
	}
	let p = point(stage_u());
	let a = p.x;
	let s = p.y;
	let v = S[P.otmp + i];
	let x = a * v;
	var x0: f32;
	switch (P.pred) {
		case PRED_SAMPLE: {
			x0 = y;
		}
		case PRED_V: {
			x0 = a * x - s * y;
		}
		case PRED_SCORE: {
			x0 = (x + s * s * y) / a;
		}
		default: {
			x0 = (x - s * y) / a;
		}
	}
	var j = P.stage;
	if (j == ST_TRIAL) {
		j = 1u;
	}
	S[P.ok + j * P.n + i] = v - x0;
}

var<workgroup> partial: array<f32, 512>;

// sums reduces the workgroup's (a, b) into C_ES + sample and C_ES + B +
// sample (b only when two).
fn sums(li: u32, b: u32, a: f32, c: f32, two: bool) {
	partial[li] = a;
	partial[256u + li] = c;
	workgroupBarrier();
	for (var w = 128u; w > 0u; w >>= 1u) {
		if (li < w) {
			partial[li] += partial[li + w];
			partial[256u + li] += partial[256u + li + w];
		}
		workgroupBarrier();
	}
	if (li == 0u) {
		setf(C_ES + P.b0 + b, partial[0]);
		if (two) {
			setf(C_ES + P.B + P.b0 + b, partial[256]);
		}
	}
}

// rk_norm_start: per sample, Σ(y/sc)² and Σ(k0/sc)², sc = atol + rtol·|y|
// (the d0 and d1 of the starting step size), a workgroup per sample.
@compute @workgroup_size(256)
fn rk_norm_start(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let b = wid.y * nwg.x + wid.x;
	var s0 = 0.0;
	var s1 = 0.0;
	for (var q = li; q < P.per; q += 256u) {
		let i = b * P.per + q;
		let y = S[i];
		let sc = P.atol + abs(y) * P.rtol;
		let w0 = y / sc;
		let w1 = k(0u, i) / sc;
		s0 += w0 * w0;
		s1 += w1 * w1;
	}
	sums(li, b, s0, s1, true);
}

// rk_norm_trial: per sample, Σ((k1 - k0)/sc)² (the starting step's d2).
@compute @workgroup_size(256)
fn rk_norm_trial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let b = wid.y * nwg.x + wid.x;
	var s0 = 0.0;
	for (var q = li; q < P.per; q += 256u) {
		let i = b * P.per + q;
		let w = (k(1u, i) - k(0u, i)) / (P.atol + abs(S[i]) * P.rtol);
		s0 += w * w;
	}
	sums(li, b, s0, 0.0, false);
}

// rk_norm_err: per sample, Σ w² with the error estimate
// w = hs·Σ e_j k_j / (atol + rtol·max(|y|, |y_new|)).
@compute @workgroup_size(256)
fn rk_norm_err(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let b = wid.y * nwg.x + wid.x;
	let hs = cf(C_HS);
	var s0 = 0.0;
	for (var q = li; q < P.per; q += 256u) {
		let i = b * P.per + q;
		let e = P.e0 * k(0u, i) + P.e1 * k(1u, i) + P.e2 * k(2u, i) + P.e3 * k(3u, i) +
			P.e4 * k(4u, i) + P.e5 * k(5u, i) + P.e6 * k(6u, i);
		let w = hs * e / (P.atol + max(abs(S[i]), abs(S[P.otmp + i])) * P.rtol);
		s0 += w * w;
	}
	sums(li, b, s0, 0.0, false);
}

// rmsmax is the error norm: the largest per-sample RMS of the sums at
// C_ES + off (core/sampler's rmsMax).
fn rmsmax(off: u32) -> f32 {
	var m = 0.0;
	for (var b = 0u; b < P.B; b++) {
		m = max(m, sqrt(cf(C_ES + off + b) / f32(P.per)));
	}
	return m;
}

// begin sets up the next attempt from (u, h): its end point clamped to u1
// and signed step, or done when u has reached u1; a step under 10 ulps of
// u fails (dopri45's underflow, in f32 ulps).
fn begin() {
	let u = cf(C_U);
	let h = cf(C_H);
	if (P.dir * (P.u1 - u) > 0.0) {
		let au = abs(u);
		let ulp = max(bitcast<f32>(bitcast<u32>(au) + 1u) - au, 1e-37);
		if (!(h >= 10.0 * ulp)) {
			C[C_FAIL] = 1u;
			C[C_DONE] = 1u;
			setf(C_HS, 0.0);
			return;
		}
		var un = u + P.dir * h;
		if (P.dir * (un - P.u1) > 0.0) {
			un = P.u1;
		}
		setf(C_UN, un);
		setf(C_HS, un - u);
	} else {
		C[C_DONE] = 1u;
		setf(C_HS, 0.0);
	}
}

// rk_start_h0: the trial step h0 from d0, d1 (Hairer et al. II.4,
// "Starting step size", with core/sampler's RK45Start* constants, as
// dopriStart), or done for an empty span.
@compute @workgroup_size(1)
fn rk_start_h0() {
	let d0 = rmsmax(0u);
	let d1 = rmsmax(P.B);
	var h0 = P.s_minh;
	if (d0 >= P.s_tiny && d1 >= P.s_tiny) {
		h0 = P.s_frac * d0 / d1;
	}
	setf(C_H0, min(h0, P.span));
	setf(C_D1, d1);
	if (P.span == 0.0) {
		C[C_DONE] = 1u;
	}
}

// rk_start_h: the first step from d1 and d2, then the first attempt.
@compute @workgroup_size(1)
fn rk_start_h() {
	if (C[C_DONE] != 0u) {
		return;
	}
	let h0 = cf(C_H0);
	let d1 = cf(C_D1);
	let d2 = rmsmax(0u) / h0;
	var h1: f32;
	if (d1 <= P.s_zero && d2 <= P.s_zero) {
		h1 = max(P.s_minh, h0 * P.s_shrink);
	} else {
		h1 = pow(P.s_frac / max(d1, d2), -P.expo);
	}
	setf(C_H, min(min(P.s_grow * h0, h1), P.span));
	begin();
}

// rk_control: accept or reject the attempt by its error norm and set the
// next step size (Hairer et al. II.4 eq. 4.13: safety·err^(-1/5) within
// [minf, maxf], at most 1 right after a rejection), log it and begin the
// next attempt. A no-op once done.
@compute @workgroup_size(1)
fn rk_control() {
	C[C_NOW] = 0u;
	if (C[C_DONE] != 0u) {
		return;
	}
	let err = rmsmax(0u);
	let hs = abs(cf(C_HS));
	let a = C[C_ATT];
	var flag = 1u;
	if (err <= 1.0) {
		var f = P.maxf;
		if (err > 0.0) {
			f = min(P.maxf, P.safety * pow(err, P.expo));
		}
		if (C[C_REJ] != 0u) {
			f = min(1.0, f);
		}
		setf(C_H, hs * f);
		C[C_REJ] = 0u;
		setf(C_U, cf(C_UN));
		C[C_ACC] = C[C_ACC] + 1u;
		C[C_NOW] = a + 1u;
		flag = 2u;
	} else {
		setf(C_H, hs * max(P.minf, P.safety * pow(err, P.expo)));
		C[C_REJ] = 1u;
	}
	let lg = C_ES + 2u * P.B + 4u * a;
	C[lg] = flag;
	C[lg + 1u] = C[C_U];
	C[lg + 2u] = C[C_H];
	setf(lg + 3u, err);
	C[C_ATT] = a + 1u;
	begin();
}

fn previewed(q: u32) -> bool {
	let wd = q / 32u;
	return wd < P.nmask && ((L[P.nlev + wd] >> (q % 32u)) & 1u) != 0u;
}

// rk_accept: after an accepted attempt y ← y_new and k0 ← k6 (FSAL), and
// when the mask picks the accepted step (or it is the last) a copy of y
// and x̂0 = y - k0 into the attempt's preview slot.
@compute @workgroup_size(256)
fn rk_accept(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	let now = C[C_NOW];
	if (i >= P.n || now == 0u) {
		return;
	}
	let y = S[P.otmp + i];
	let d = k(6u, i);
	S[i] = y;
	S[P.ok + i] = d;
	if (previewed(C[C_ACC] - 1u) || C[C_DONE] != 0u) {
		let o = P.opv + ((now - 1u) % P.A) * 2u * P.n;
		S[o + i] = y;
		S[o + P.n + i] = y - d;
	}
}
