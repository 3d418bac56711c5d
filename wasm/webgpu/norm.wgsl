// GroupNorm: one workgroup per (batch, group) computes the mean and the
// centred variance in one pass (Welford per thread, Chan's merge across
// threads) and writes the normalised, affine-transformed values. The
// planner fuses what follows in a UNet resnet: a scale_shift by the time
// embedding (E [B,2C] = [scale | shift]) and a SiLU.
//
// With split > 0 the input is a split-K convolution's partial sums
// [split, C, B·per] (program.go's convIntoNorm): the first pass adds the
// slices, the conv's bias (conv bit 1, CBias) and its add_channel term
// (conv bit 2, E [B,C]) and stores the sum in Out; the later passes read it
// back from Out (each thread revisits only its own elements, so no barrier
// is needed for that).

struct Params {
	groups: u32, cg: u32, per: u32, count: u32,
	eps: f32, flags: u32, split: u32, conv: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Gamma: array<u32>;
@group(0) @binding(3) var<storage, read> Beta: array<u32>;
@group(0) @binding(4) var<storage, read> E: array<f32>;
@group(0) @binding(5) var<storage, read_write> Out: array<f32>;
@group(0) @binding(6) var<storage, read> CBias: array<u32>;

// Mean and variance in one pass and one reduction: each thread keeps a
// running (count, mean, M2) over its elements (Welford 1962), and the
// workgroup tree merges them pairwise with Chan, Golub & LeVeque's update
// (1979): n = na + nb, δ = mb − ma, mean = ma + δ·nb/n,
// M2 = M2a + M2b + δ²·na·nb/n. Stable like the two-pass form, with half the
// barriers and one read of the group fewer.
var<workgroup> red: array<vec3<f32>, 256>;

fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
	let n = a.x + b.x;
	if (n == 0.0) {
		return a;
	}
	let d = b.y - a.y;
	return vec3<f32>(n, a.y + d * (b.x / n), a.z + b.z + d * d * (a.x * b.x / n));
}

fn reduce_stats(li: u32, v: vec3<f32>) -> vec3<f32> {
	red[li] = v;
	workgroupBarrier();
	for (var s = 128u; s > 0u; s >>= 1u) {
		if (li < s) {
			red[li] = merge(red[li], red[li + s]);
		}
		workgroupBarrier();
	}
	let r = red[0];
	workgroupBarrier();
	return r;
}

// first reads element i of group bg in the first pass (summing a split
// conv's slices and storing the result in Out); value reads it afterwards.
fn first(bg: u32, i: u32, start: u32) -> f32 {
	if (P.split == 0u) {
		return X[start + i];
	}
	let C = P.groups * P.cg;
	let b = bg / P.groups;
	let ch = (bg % P.groups) * P.cg + i / P.per;
	let N = (P.count / P.groups) * P.per;
	let at = ch * N + b * P.per + i % P.per;
	var v = 0.0;
	for (var z = 0u; z < P.split; z++) {
		v += X[z * C * N + at];
	}
	if ((P.conv & 1u) != 0u) {
		v += wvalue(CBias[wword(ch)], ch);
	}
	if ((P.conv & 2u) != 0u) {
		v += E[b * C + ch];
	}
	Out[start + i] = v;
	return v;
}

fn value(k: u32) -> f32 {
	if (P.split == 0u) {
		return X[k];
	}
	return Out[k];
}

// group_stats is one thread's running (count, mean, M2) over elements
// li, li+stride, … of group bg (which starts at start and holds L values).
fn group_stats(bg: u32, start: u32, L: u32, li: u32, stride: u32) -> vec3<f32> {
	var st = vec3<f32>();
	for (var i = li; i < L; i += stride) {
		let x = first(bg, i, start);
		st.x += 1.0;
		let d = x - st.y;
		st.y += d / st.x;
		st.z += d * (x - st.y);
	}
	return st;
}

// group_apply writes the normalised values of elements li, li+stride, … of
// group bg, with the fused epilogue.
fn group_apply(bg: u32, start: u32, L: u32, li: u32, stride: u32, r: vec3<f32>) {
	let mean = r.y;
	let inv = inverseSqrt(r.z / f32(L) + P.eps);
	let c0 = (bg % P.groups) * P.cg;
	let C = P.groups * P.cg;
	let e0 = (bg / P.groups) * 2u * C;
	for (var i = li; i < L; i += stride) {
		let ch = c0 + i / P.per;
		var y = (value(start + i) - mean) * (inv * wvalue(Gamma[wword(ch)], ch));
		if (flag(F_BIAS)) {
			y += wvalue(Beta[wword(ch)], ch);
		}
		if (flag(F_E)) {
			y = y * (1.0 + E[e0 + ch]) + E[e0 + C + ch];
		}
		if (flag(F_SILU)) {
			y = y / (1.0 + exp(-y));
		}
		Out[start + i] = y;
	}
}

// group_terms is channel ch's (γ, β, 1 + scale, shift) of sample bg /
// groups: β 0 without a bias, scale and shift (a fused scale_shift) 0
// without one. With group_finish it is group_apply's epilogue in the
// per-channel form group_norm_serial wants (group_apply keeps its own
// lines: f16_experiment_test.go patches them).
fn group_terms(bg: u32, ch: u32) -> vec4<f32> {
	var t = vec4<f32>(wvalue(Gamma[wword(ch)], ch), 0.0, 1.0, 0.0);
	if (flag(F_BIAS)) {
		t.y = wvalue(Beta[wword(ch)], ch);
	}
	if (flag(F_E)) {
		let C = P.groups * P.cg;
		let e0 = (bg / P.groups) * 2u * C;
		t.z += E[e0 + ch];
		t.w = E[e0 + C + ch];
	}
	return t;
}

// group_finish takes y = (x − mean)·γ/σ and adds β, then applies the
// fused scale_shift and SiLU (t from group_terms).
fn group_finish(y: f32, t: vec4<f32>) -> f32 {
	var r = (y + t.y) * t.z + t.w;
	if (flag(F_SILU)) {
		r = r / (1.0 + exp(-r));
	}
	return r;
}

@compute @workgroup_size(256)
fn group_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let bg = wid.y * nwg.x + wid.x; // (batch, group); the group's values are contiguous
	if (bg >= P.count) {
		return;
	}
	let L = P.cg * P.per;
	let start = bg * L;
	let r = reduce_stats(li, group_stats(bg, start, L, li, 256u));
	group_apply(bg, start, L, li, 256u, r);
}

// group_norm_serial is group_norm for software adapters (Device.Software):
// one thread per (batch, group), no barriers (see lucid.wgsl's
// mem_attention_serial for why barriers cost so much there). It walks the
// group channel by channel, so a channel's γ, β and scale_shift terms are
// read once and the statistics need no division per element: per channel
// the sums of x − x₀ and its square (x₀ the channel's first value, which
// keeps the subtraction from cancelling), merged across channels with
// Chan et al.'s update.
@compute @workgroup_size(64)
fn group_norm_serial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let bg = (wid.y * nwg.x + wid.x) * 64u + li;
	if (bg >= P.count) {
		return;
	}
	let L = P.cg * P.per;
	let start = bg * L;
	let n = f32(P.per);
	var st = vec3<f32>();
	for (var k0 = 0u; k0 < L; k0 += P.per) {
		let x0 = first(bg, k0, start);
		var s = 0.0;
		var q = 0.0;
		for (var i = k0; i < k0 + P.per; i++) {
			let d = first(bg, i, start) - x0;
			s += d;
			q = fma(d, d, q);
		}
		st = merge(st, vec3<f32>(n, x0 + s / n, max(q - s * s / n, 0.0)));
	}
	let inv = inverseSqrt(st.z / f32(L) + P.eps);
	var ch = (bg % P.groups) * P.cg;
	for (var k0 = 0u; k0 < L; k0 += P.per) {
		let t = group_terms(bg, ch);
		let a = inv * t.x;
		for (var k = start + k0; k < start + k0 + P.per; k++) {
			Out[k] = group_finish((value(k) - st.y) * a, t);
		}
		ch++;
	}
}
