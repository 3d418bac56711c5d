// Tiled matrix product C[M,N] = A[M,K]·B[K,N], shared by every GEMM-shaped op.
// It is a template: the Go side pastes it once per user with GEMM replaced by
// that user's prefix, and the user's file provides
//   fn GEMM_dims() -> vec3<u32>                        (M, N, K)
//   fn GEMM_load_a(z: u32, m: u32, k: u32) -> f32
//   GEMM_Row, GEMM_Col types and
//   fn GEMM_row(z: u32, k: u32) -> GEMM_Row            what B's row k needs
//   fn GEMM_col(z: u32, n: u32) -> GEMM_Col            what B's column n needs
//   fn GEMM_load_b(z: u32, r: GEMM_Row, c: GEMM_Col) -> f32
//   fn GEMM_store(z: u32, m: u32, n: u32, v: f32)
//   fn GEMM_krange(z: u32) -> vec2<u32>                 the k range [x, y) this z sums
//                                                        (split-K: each z a slice of K)
//   const GEMM_BT: bool  (B is contiguous along k: load its tile k-fastest)
// Loads and stores are only called in bounds; z is workgroup_id.z (a batch
// of independent products, e.g. batch×heads in attention). The row/column
// split lets an implicit GEMM (convolution) decode a column's pixel once
// per thread and a row's channel and tap once per K step, not per element.
//
// A 256-thread workgroup owns a 64×64 tile of C and walks K in steps of 16,
// staging both operand tiles in workgroup memory as vec4s; each thread
// accumulates a 4×4 block of C in four vec4 registers (vector FMAs; a
// dynamically indexed array would live in memory on some implementations).

var<workgroup> GEMM_As: array<vec4<f32>, 256>; // [16 k][16 quads of m]
var<workgroup> GEMM_Bs: array<vec4<f32>, 256>; // [16 k][16 quads of n]

@compute @workgroup_size(256)
fn GEMM_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let dims = GEMM_dims();
	let M = dims.x;
	let N = dims.y;
	let m0 = wid.y * 64u;
	let n0 = wid.x * 64u;
	let z = wid.z;
	let kr = GEMM_krange(z);
	// Compute roles: rows 4·tm.., columns 4·tn.. of the tile.
	let tm = li / 16u;
	let tn = li % 16u;
	// Load roles: this thread fills A at (k0+ak, quad aq) and B at (k0+bk, quad bq).
	let ak = li % 16u;
	let aq = li / 16u;
	var bk = li / 16u;
	var bq = li % 16u;
	if (GEMM_BT) {
		bk = li % 16u;
		bq = li / 16u;
	}
	var cols: array<GEMM_Col, 4>;
	for (var r = 0u; r < 4u; r++) {
		cols[r] = GEMM_col(z, min(n0 + bq * 4u + r, N - 1u));
	}
	var acc0 = vec4<f32>();
	var acc1 = vec4<f32>();
	var acc2 = vec4<f32>();
	var acc3 = vec4<f32>();
	// Software pipelining: the loads for the next K step are issued before
	// this step's arithmetic, so their latency overlaps it (with few
	// workgroups on the GPU nothing else would hide it).
	var ab = GEMM_fetch(z, kr.x, kr.y, m0, n0, M, N, ak, aq, bk, bq, cols);
	for (var k0 = kr.x; k0 < kr.y; k0 += 16u) {
		GEMM_As[ak * 16u + aq] = ab[0];
		GEMM_Bs[bk * 16u + bq] = ab[1];
		workgroupBarrier();
		ab = GEMM_fetch(z, k0 + 16u, kr.y, m0, n0, M, N, ak, aq, bk, bq, cols);
		for (var kk = 0u; kk < 16u; kk++) {
			let av = GEMM_As[kk * 16u + tm];
			let bv = GEMM_Bs[kk * 16u + tn];
			acc0 = fma(vec4<f32>(av.x), bv, acc0);
			acc1 = fma(vec4<f32>(av.y), bv, acc1);
			acc2 = fma(vec4<f32>(av.z), bv, acc2);
			acc3 = fma(vec4<f32>(av.w), bv, acc3);
		}
		workgroupBarrier();
	}
	let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
	for (var i = 0u; i < 4u; i++) {
		let m = m0 + tm * 4u + i;
		for (var j = 0u; j < 4u; j++) {
			let n = n0 + tn * 4u + j;
			if (m < M && n < N) {
				GEMM_store(z, m, n, accs[i][j]);
			}
		}
	}
}

// GEMM_fetch loads this thread's share of the A and B tiles at K step k0
// (zeros outside [k0, kend) and outside the matrix).
fn GEMM_fetch(z: u32, k0: u32, kend: u32, m0: u32, n0: u32, M: u32, N: u32,
		ak: u32, aq: u32, bk: u32, bq: u32, cols: array<GEMM_Col, 4>) -> array<vec4<f32>, 2> {
	var a = vec4<f32>();
	var b = vec4<f32>();
	if (k0 + ak < kend) {
		for (var r = 0u; r < 4u; r++) {
			let m = m0 + aq * 4u + r;
			if (m < M) {
				a[r] = GEMM_load_a(z, m, k0 + ak);
			}
		}
	}
	if (k0 + bk < kend) {
		let row = GEMM_row(z, k0 + bk);
		for (var r = 0u; r < 4u; r++) {
			if (n0 + bq * 4u + r < N) {
				b[r] = GEMM_load_b(z, row, cols[r]);
			}
		}
	}
	return array<vec4<f32>, 2>(a, b);
}
