// index is the flat element index of a one-thread-per-element kernel with
// 256-thread workgroups laid out in two dimensions (program.go's grid), so
// tensors past 65535×256 elements still fit the dispatch limits. Pasted
// into the families that list it (kernels.go).
fn index(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
	return (wid.y * nwg.x + wid.x) * 256u + li;
}

// serial_block is the first (row, column) of the 8×4 block a thread of a
// serial GEMM (gemm_serial.wgsl, conv2d_serial) owns in its workgroup's
// 64×32 tile. Threads next to each other in a SIMD group step along the
// columns, except in a tile with fewer than 32 columns (a GEMM over a few
// pixels or Winograd tiles at batch 1, or the last tile of a row): then
// they step along the rows, so
// the threads left without columns are whole SIMD groups, which return,
// rather than 3 lanes of every 4 (measured on SwiftShader, which spends
// the same time on a SIMD group whatever its live lanes). Returns (row,
// column). The grid has no tile past N (gemmGrid), so N − wid.x·32 does
// not wrap.
fn serial_block(wid: vec3<u32>, li: u32, N: u32) -> vec2<u32> {
	let across = N - wid.x * 32u < 32u;
	let r = select(li / 8u, li % 8u, across);
	let c = select(li % 8u, li / 8u, across);
	return vec2<u32>(wid.y * 64u + r * 8u, wid.x * 32u + c * 4u);
}
