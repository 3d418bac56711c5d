// index is the flat element index of a one-thread-per-element kernel with
// 256-thread workgroups laid out in two dimensions (program.go's grid), so
// tensors past 65535×256 elements still fit the dispatch limits. Pasted
// into the families that list it (kernels.go).
fn index(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
	return (wid.y * nwg.x + wid.x) * 256u + li;
}
