// GEMM_serial is gemm.wgsl's GEMM_main for software adapters
// (Options.Serial), over the same template functions: no workgroup memory
// and no barriers. A CPU implementation of WebGPU such as SwiftShader runs
// a workgroup that has barriers as one coroutine per SIMD group and
// switches at every barrier, and it serves every storage load lane by lane
// with a bounds check; so here each of 64 threads owns an 8×4 block of a
// 64×32 tile (program.go's gemmGrid) and reads its operands straight from
// memory, 12 loads per 32 multiply-adds (the best of 4×4, 8×4, 4×8 and
// 8×8 measured on SwiftShader). A family that defines its own
// PREFIX_serial (conv.wgsl's conv2d_serial) does not get this one.
@compute @workgroup_size(64)
fn GEMM_serial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let dims = GEMM_dims();
	let M = dims.x;
	let N = dims.y;
	let blk = serial_block(wid, li, N);
	let m0 = blk.x;
	let n0 = blk.y;
	if (m0 >= M || n0 >= N) {
		return;
	}
	let z = wid.z;
	let kr = GEMM_krange(z);
	let c0 = GEMM_col(z, n0);
	let c1 = GEMM_col(z, min(n0 + 1u, N - 1u));
	let c2 = GEMM_col(z, min(n0 + 2u, N - 1u));
	let c3 = GEMM_col(z, min(n0 + 3u, N - 1u));
	let m1 = min(m0 + 1u, M - 1u); // rows past M repeat the last
	let m2 = min(m0 + 2u, M - 1u);
	let m3 = min(m0 + 3u, M - 1u);
	let m4 = min(m0 + 4u, M - 1u);
	let m5 = min(m0 + 5u, M - 1u);
	let m6 = min(m0 + 6u, M - 1u);
	let m7 = min(m0 + 7u, M - 1u);
	var acc0 = vec4<f32>();
	var acc1 = vec4<f32>();
	var acc2 = vec4<f32>();
	var acc3 = vec4<f32>();
	var acc4 = vec4<f32>();
	var acc5 = vec4<f32>();
	var acc6 = vec4<f32>();
	var acc7 = vec4<f32>();
	for (var k = kr.x; k < kr.y; k++) {
		let row = GEMM_row(z, k);
		let bv = vec4<f32>(GEMM_load_b(z, row, c0), GEMM_load_b(z, row, c1), GEMM_load_b(z, row, c2), GEMM_load_b(z, row, c3));
		acc0 = fma(vec4<f32>(GEMM_load_a(z, m0, k)), bv, acc0);
		acc1 = fma(vec4<f32>(GEMM_load_a(z, m1, k)), bv, acc1);
		acc2 = fma(vec4<f32>(GEMM_load_a(z, m2, k)), bv, acc2);
		acc3 = fma(vec4<f32>(GEMM_load_a(z, m3, k)), bv, acc3);
		acc4 = fma(vec4<f32>(GEMM_load_a(z, m4, k)), bv, acc4);
		acc5 = fma(vec4<f32>(GEMM_load_a(z, m5, k)), bv, acc5);
		acc6 = fma(vec4<f32>(GEMM_load_a(z, m6, k)), bv, acc6);
		acc7 = fma(vec4<f32>(GEMM_load_a(z, m7, k)), bv, acc7);
	}
	let acc = array<vec4<f32>, 8>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7);
	for (var i = 0u; i < 8u; i++) {
		for (var j = 0u; j < 4u; j++) {
			if (m0 + i < M && n0 + j < N) {
				GEMM_store(z, m0 + i, n0 + j, acc[i][j]);
			}
		}
	}
}
