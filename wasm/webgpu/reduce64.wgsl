// Maximum and sum over a 64-thread workgroup (every thread calls with its
// value and gets the result), for kernels that give one workgroup to a row.
// Pasted into the families that list it (kernels.go).

var<workgroup> red: array<f32, 64>;

fn reduce_max(li: u32, v: f32) -> f32 {
	red[li] = v;
	workgroupBarrier();
	for (var s = 32u; s > 0u; s >>= 1u) {
		if (li < s) {
			red[li] = max(red[li], red[li + s]);
		}
		workgroupBarrier();
	}
	let r = red[0];
	workgroupBarrier();
	return r;
}

fn reduce_sum(li: u32, v: f32) -> f32 {
	red[li] = v;
	workgroupBarrier();
	for (var s = 32u; s > 0u; s >>= 1u) {
		if (li < s) {
			red[li] += red[li + s];
		}
		workgroupBarrier();
	}
	let r = red[0];
	workgroupBarrier();
	return r;
}
