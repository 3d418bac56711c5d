// Winograd F(m×m, 3×3), m = 2 or 4, for the serial kernel set (Lavin &
// Gray 2016, "Fast Algorithms for Convolutional Neural Networks"; why and
// the layouts: winograd.go). conv.wgsl is pasted in before this file: the
// same Params, bindings and epilogue, with N = T, the number of tiles
// (winograd.go sets it, so the GEMM's inner loop divides nothing). With
// a = m + 2, tiles are numbered n = (b·TH + ty)·TW + tx over the batch,
// TH×TW = ⌈OH/m⌉×⌈OW/m⌉; V is [a², I, T], U [a², O, I] (f32, bound as Wt),
// M [a², O, T]; ξ = a·row + column.

// wino_tiles is (TH, TW, T) for m×m tiles.
fn wino_tiles(m: u32) -> vec3<u32> {
	return vec3<u32>((P.OH + m - 1u) / m, (P.OW + m - 1u) / m, P.N);
}

// wino_tile is thread i's (channel c, tile n), tiles fastest, with the
// tile's sample b and its top-left output pixel (y, x), for m×m tiles.
struct WinoTile {
	c: u32, n: u32, b: u32, y: u32, x: u32,
}

fn wino_tile(i: u32, m: u32) -> WinoTile {
	let t = wino_tiles(m);
	let n = i % t.z;
	let per = t.x * t.y;
	let r = n % per;
	return WinoTile(i / t.z, n, n / per, (r / t.y) * m, (r % t.y) * m);
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

// wino2_in writes V = Bᵀ d B for one (input channel, tile) per thread.
@compute @workgroup_size(256)
fn wino2_in(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.I * P.N) {
		return;
	}
	let w = wino_tile(i, 2u);
	let base = (w.b * P.I + w.c) * P.H * P.W;
	let y = i32(w.y) - i32(P.pad_t);
	let x = i32(w.x) - i32(P.pad_l);
	let d0 = wino_x(base, y, x);
	let d1 = wino_x(base, y + 1, x);
	let d2 = wino_x(base, y + 2, x);
	let d3 = wino_x(base, y + 3, x);
	let stride = P.I * P.N;
	let o = w.c * P.N + w.n;
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
fn wino_dims() -> vec3<u32> { return vec3<u32>(P.O, P.N, P.I); }
fn wino_load_a(z: u32, m: u32, k: u32) -> f32 { return bitcast<f32>(Wt[(z * P.O + m) * P.I + k]); }
fn wino_row(z: u32, k: u32) -> u32 { return (z * P.I + k) * P.N; }
fn wino_col(z: u32, n: u32) -> u32 { return n; }
fn wino_load_b(z: u32, r: u32, c: u32) -> f32 { return X[r + c]; }
fn wino_store(z: u32, m: u32, n: u32, v: f32) { Out[(z * P.O + m) * P.N + n] = v; }
fn wino_krange(z: u32) -> vec2<u32> { return vec2<u32>(0u, P.I); }

// wino_at is v·A for a row v of AᵀM: Aᵀ = [1 1 1 0; 0 1 −1 −1].
fn wino_at(v: vec4<f32>) -> vec2<f32> {
	return vec2<f32>(v.x + v.y + v.z, v.y - v.z - v.w);
}

// wino2_out writes the 2×2 outputs Y = Aᵀ M A of one (output channel, tile)
// per thread (bound as X: M), cropped to OH×OW, through the epilogue.
@compute @workgroup_size(256)
fn wino2_out(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.O * P.N) {
		return;
	}
	let w = wino_tile(i, 2u);
	let stride = P.O * P.N;
	let at = w.c * P.N + w.n;
	let m0 = wino_get(at, stride);
	let m1 = wino_get(at + 4u * stride, stride);
	let m2 = wino_get(at + 8u * stride, stride);
	let m3 = wino_get(at + 12u * stride, stride);
	let y0 = wino_at(m0 + m1 + m2);
	let y1 = wino_at(m1 - m2 - m3);
	let add = epilogue_add(w.c, w.b);
	wino_store_row(w, 2u, 0u, vec4<f32>(y0, 0.0, 0.0), add);
	wino_store_row(w, 2u, 1u, vec4<f32>(y1, 0.0, 0.0), add);
}

// wino_store_row writes output row r of w's m-wide tile (v's first m
// components) through the epilogue, cropped to OH×OW; add is
// epilogue_add's term for the tile's channel and sample.
fn wino_store_row(w: WinoTile, m: u32, r: u32, v: vec4<f32>, add: f32) {
	let oy = w.y + r;
	if (oy >= P.OH) {
		return;
	}
	let at = ((w.b * P.O + w.c) * P.OH + oy) * P.OW + w.x;
	let cols = min(m, P.OW - w.x);
	epilogue_store(at, v.x + add);
	if (cols > 1u) {
		epilogue_store(at + 1u, v.y + add);
	}
	if (cols > 2u) {
		epilogue_store(at + 2u, v.z + add);
	}
	if (cols > 3u) {
		epilogue_store(at + 3u, v.w + add);
	}
}

// wino_get loads X[at], X[at + stride], … (four ξ of one row of M).
fn wino_get(at: u32, stride: u32) -> vec4<f32> {
	return vec4<f32>(X[at], X[at + stride], X[at + 2u * stride], X[at + 3u * stride]);
}

// F(4×4, 3×3): 6×6 input tiles (overlapping by 2), 36 GEMMs. A tile row of
// 6 values is two vec4s (columns 0–3, and 4–5 in xy); wino4_bt and
// wino4_at apply the 1-D transform down 6 rows of vec4s, and a transpose
// turns the result's columns into rows for the second pass.

// wino4_bt is Bᵀ·(d0…d5) for Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0;
// 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1].
fn wino4_bt(d0: vec4<f32>, d1: vec4<f32>, d2: vec4<f32>, d3: vec4<f32>, d4: vec4<f32>, d5: vec4<f32>) -> array<vec4<f32>, 6> {
	return array<vec4<f32>, 6>(4.0 * d0 - 5.0 * d2 + d4, d3 + d4 - 4.0 * (d1 + d2), 4.0 * (d1 - d2) + d4 - d3,
		2.0 * (d3 - d1) + d4 - d2, 2.0 * (d1 - d3) + d4 - d2, 4.0 * d1 - 5.0 * d3 + d5);
}

// wino4_at is Aᵀ·(m0…m5) for Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0;
// 0 1 1 4 4 0; 0 1 −1 8 −8 1].
fn wino4_at(m0: vec4<f32>, m1: vec4<f32>, m2: vec4<f32>, m3: vec4<f32>, m4: vec4<f32>, m5: vec4<f32>) -> array<vec4<f32>, 4> {
	let a = m1 + m2;
	let b = m1 - m2;
	let c = m3 + m4;
	let d = m3 - m4;
	return array<vec4<f32>, 4>(m0 + a + c, b + 2.0 * d, a + 4.0 * c, b + 8.0 * d + m5);
}

// wino4_in writes V = Bᵀ d B for one (input channel, tile) per thread.
@compute @workgroup_size(256)
fn wino4_in(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.I * P.N) {
		return;
	}
	let w = wino_tile(i, 4u);
	let base = (w.b * P.I + w.c) * P.H * P.W;
	let y = i32(w.y) - i32(P.pad_t);
	let x = i32(w.x) - i32(P.pad_l);
	// Rows of Bᵀd: columns 0–3 (l) and 4–5 (h).
	let l = wino4_bt(wino_x(base, y, x), wino_x(base, y + 1, x), wino_x(base, y + 2, x),
		wino_x(base, y + 3, x), wino_x(base, y + 4, x), wino_x(base, y + 5, x));
	let h = wino4_bt(wino_x2(base, y, x + 4), wino_x2(base, y + 1, x + 4), wino_x2(base, y + 2, x + 4),
		wino_x2(base, y + 3, x + 4), wino_x2(base, y + 4, x + 4), wino_x2(base, y + 5, x + 4));
	// Columns of (Bᵀd)B: rows 0–3 (cl from l, ch from h) and rows 4–5 (zl, zh).
	let cl = transpose(mat4x4<f32>(l[0], l[1], l[2], l[3]));
	let ch = transpose(mat4x4<f32>(h[0], h[1], h[2], h[3]));
	let zl = transpose(mat4x4<f32>(l[4], l[5], vec4<f32>(), vec4<f32>()));
	let zh = transpose(mat4x4<f32>(h[4], h[5], vec4<f32>(), vec4<f32>()));
	let top = wino4_bt(cl[0], cl[1], cl[2], cl[3], ch[0], ch[1]);
	let bot = wino4_bt(zl[0], zl[1], zl[2], zl[3], zh[0], zh[1]);
	// top[j] is column j of V's rows 0–3, bot[j] of rows 4–5: ξ = 6·row + j.
	let s = P.I * P.N;
	let o = w.c * P.N + w.n;
	wino4_put(o, s, top[0], bot[0]);
	wino4_put(o + s, s, top[1], bot[1]);
	wino4_put(o + 2u * s, s, top[2], bot[2]);
	wino4_put(o + 3u * s, s, top[3], bot[3]);
	wino4_put(o + 4u * s, s, top[4], bot[4]);
	wino4_put(o + 5u * s, s, top[5], bot[5]);
}

// wino4_put stores column j of V (rows 0–3 in t, 4–5 in b.xy) from
// Out[o], o = ξ of row 0, on in steps of 6 ξ (s apart).
fn wino4_put(o: u32, s: u32, t: vec4<f32>, b: vec4<f32>) {
	wino_put(o, 6u * s, t);
	Out[o + 24u * s] = b.x;
	Out[o + 30u * s] = b.y;
}

// wino_x2 is input row y, columns x, x+1 of plane base in xy, zero outside.
fn wino_x2(base: u32, y: i32, x: i32) -> vec4<f32> {
	let row = y >= 0 && y < i32(P.H);
	let at = base + u32(max(y, 0)) * P.W;
	return vec4<f32>(wino_x1(row, at, x), wino_x1(row, at, x + 1), 0.0, 0.0);
}

// wino4_out writes the 4×4 outputs Y = Aᵀ M A of one (output channel,
// tile) per thread (bound as X: M), cropped to OH×OW, through the epilogue.
@compute @workgroup_size(256)
fn wino4_out(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
		@builtin(local_invocation_index) li: u32) {
	let i = index(wid, nwg, li);
	if (i >= P.O * P.N) {
		return;
	}
	let w = wino_tile(i, 4u);
	let s = P.O * P.N;
	let at = w.c * P.N + w.n;
	// Rows of AᵀM: columns 0–3 (l) and 4–5 (h).
	let l = wino4_at(wino_get(at, s), wino_get(at + 6u * s, s), wino_get(at + 12u * s, s),
		wino_get(at + 18u * s, s), wino_get(at + 24u * s, s), wino_get(at + 30u * s, s));
	let h = wino4_at(wino_get2(at + 4u * s, s), wino_get2(at + 10u * s, s), wino_get2(at + 16u * s, s),
		wino_get2(at + 22u * s, s), wino_get2(at + 28u * s, s), wino_get2(at + 34u * s, s));
	let cl = transpose(mat4x4<f32>(l[0], l[1], l[2], l[3]));
	let ch = transpose(mat4x4<f32>(h[0], h[1], h[2], h[3]));
	// yc[c] is output column c (rows 0–3), y[r] output row r.
	let yc = wino4_at(cl[0], cl[1], cl[2], cl[3], ch[0], ch[1]);
	let y = transpose(mat4x4<f32>(yc[0], yc[1], yc[2], yc[3]));
	let add = epilogue_add(w.c, w.b);
	wino_store_row(w, 4u, 0u, y[0], add);
	wino_store_row(w, 4u, 1u, y[1], add);
	wino_store_row(w, 4u, 2u, y[2], add);
	wino_store_row(w, 4u, 3u, y[3], add);
}

// wino_get2 loads X[at], X[at + stride] (ξ in columns 4–5) into xy.
fn wino_get2(at: u32, stride: u32) -> vec4<f32> {
	return vec4<f32>(X[at], X[at + stride], 0.0, 0.0);
}
