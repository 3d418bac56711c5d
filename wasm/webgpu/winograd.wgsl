// Winograd F(2×2, 3×3) for the serial kernel set (Lavin & Gray 2016, "Fast
// Algorithms for Convolutional Neural Networks"; why and the layouts:
// winograd.go). conv.wgsl is pasted in before this file: the same Params,
// bindings and epilogue. Tiles are numbered n = (b·TH + ty)·TW + tx over
// the batch, TH×TW = ⌈OH/2⌉×⌈OW/2⌉; V is [16, I, T], U [16, O, I] (f32,
// bound as Wt), M [16, O, T].

// wino_tiles is (TH, TW, T).
fn wino_tiles() -> vec3<u32> {
	let th = (P.OH + 1u) / 2u;
	let tw = (P.OW + 1u) / 2u;
	return vec3<u32>(th, tw, P.B * th * tw);
}

// wino_x is input row y, columns x..x+3 of plane base, zero outside
// (branch-free and loop-free: SwiftShader runs loops and divergent branches
// slowly).
fn wino_x(base: u32, y: i32, x: i32) -> vec4<f32> {
	let row = y >= 0 && y < i32(P.H);
	let at = base + u32(max(y, 0)) * P.W;
	return vec4<f32>(wino_x1(row, at, x), wino_x1(row, at, x + 1), wino_x1(row, at, x + 2), wino_x1(row, at, x + 3));
}

fn wino_x1(row: bool, at: u32, x: i32) -> f32 {
	let ok = row && x >= 0 && x < i32(P.W);
	return select(0.0, X[select(0u, at + u32(x), ok)], ok);
}

// wino_bt is v·B for a row v of Bᵀd: Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1].
fn wino_bt(v: vec4<f32>) -> vec4<f32> {
	return vec4<f32>(v.x - v.z, v.y + v.z, v.z - v.y, v.y - v.w);
}

// wino_in writes V = Bᵀ d B for one (input channel, tile) per thread.
@compute @workgroup_size(256)
fn wino_in(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let t = wino_tiles();
	let i = index(wid, nwg, li);
	if (i >= P.I * t.z) {
		return;
	}
	let ci = i / t.z;
	let n = i % t.z;
	let per = t.x * t.y;
	let r = n % per;
	let base = ((n / per) * P.I + ci) * P.H * P.W;
	let y = i32((r / t.y) * 2u) - i32(P.pad_t);
	let x = i32((r % t.y) * 2u) - i32(P.pad_l);
	let d0 = wino_x(base, y, x);
	let d1 = wino_x(base, y + 1, x);
	let d2 = wino_x(base, y + 2, x);
	let d3 = wino_x(base, y + 3, x);
	let stride = P.I * t.z;
	let o = ci * t.z + n;
	wino_put(o, stride, wino_bt(d0 - d2));
	wino_put(o + 4u * stride, stride, wino_bt(d1 + d2));
	wino_put(o + 8u * stride, stride, wino_bt(d2 - d1));
	wino_put(o + 12u * stride, stride, wino_bt(d1 - d3));
}

// wino_put stores v at Out[o], Out[o + stride], … (four ξ of one row).
fn wino_put(o: u32, stride: u32, v: vec4<f32>) {
	Out[o] = v.x;
	Out[o + stride] = v.y;
	Out[o + 2u * stride] = v.z;
	Out[o + 3u * stride] = v.w;
}

// The 16 GEMMs M_ξ = U_ξ V_ξ (z = ξ) through gemm_serial.wgsl's template.
const wino_BT: bool = false;
alias wino_Row = u32; // offset of V_ξ's row k
alias wino_Col = u32; // tile
fn wino_dims() -> vec3<u32> { return vec3<u32>(P.O, wino_tiles().z, P.I); }
fn wino_load_a(z: u32, m: u32, k: u32) -> f32 { return bitcast<f32>(Wt[(z * P.O + m) * P.I + k]); }
fn wino_row(z: u32, k: u32) -> u32 { return (z * P.I + k) * wino_tiles().z; }
fn wino_col(z: u32, n: u32) -> u32 { return n; }
fn wino_load_b(z: u32, r: u32, c: u32) -> f32 { return X[r + c]; }
fn wino_store(z: u32, m: u32, n: u32, v: f32) { Out[(z * P.O + m) * wino_tiles().z + n] = v; }
fn wino_krange(z: u32) -> vec2<u32> { return vec2<u32>(0u, P.I); }

// wino_at is v·A for a row v of AᵀM: Aᵀ = [1 1 1 0; 0 1 −1 −1].
fn wino_at(v: vec4<f32>) -> vec2<f32> {
	return vec2<f32>(v.x + v.y + v.z, v.y - v.z - v.w);
}

// wino_out writes the 2×2 outputs Y = Aᵀ M A of one (output channel, tile)
// per thread (bound as X: M), cropped to OH×OW, through the epilogue.
@compute @workgroup_size(256)
fn wino_out(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let t = wino_tiles();
	let i = index(wid, nwg, li);
	if (i >= P.O * t.z) {
		return;
	}
	let o = i / t.z;
	let n = i % t.z;
	let stride = P.O * t.z;
	let at = o * t.z + n;
	let m0 = wino_get(at, stride);
	let m1 = wino_get(at + 4u * stride, stride);
	let m2 = wino_get(at + 8u * stride, stride);
	let m3 = wino_get(at + 12u * stride, stride);
	let y0 = wino_at(m0 + m1 + m2);
	let y1 = wino_at(m1 - m2 - m3);
	let per = t.x * t.y;
	let r = n % per;
	let plane = P.OH * P.OW;
	let oy = (r / t.y) * 2u;
	let ox = (r % t.y) * 2u;
	let p = (n / per) * plane + oy * P.OW + ox;
	let right = ox + 1u < P.OW;
	let below = oy + 1u < P.OH;
	epilogue(o, p, y0.x);
	if (right) {
		epilogue(o, p + 1u, y0.y);
	}
	if (below) {
		epilogue(o, p + P.OW, y1.x);
	}
	if (right && below) {
		epilogue(o, p + P.OW + 1u, y1.y);
	}
}

// wino_get loads X[at], X[at + stride], … (four ξ of one row of M).
fn wino_get(at: u32, stride: u32) -> vec4<f32> {
	return vec4<f32>(X[at], X[at + stride], X[at + 2u * stride], X[at + 3u * stride]);
}
