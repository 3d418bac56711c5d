// Shared by the kernels that read parameters. Weight buffers are arrays of
// u32 words holding either f32 bits or two f16 halves (element 2i in the low
// half, as unpack2x16float reads it); the F16 flag in the kernel's uniform
// says which, so one pipeline serves both formats. The flags are uniform,
// so the branches cost next to nothing.

const F_BIAS: u32 = 1u;  // a bias buffer is bound
const F_E: u32 = 2u;     // conv: add a per-(batch, channel) term (fused add_channel);
                         // group_norm: apply scale_shift (fused)
const F_R: u32 = 4u;     // conv: add a residual (fused add)
const F_F16: u32 = 8u;   // weights are packed f16
const F_SILU: u32 = 16u; // group_norm, linear: apply SiLU (fused)
const F_COLS: u32 = 32u; // linear: scattered output columns (merged linears)

fn flag(f: u32) -> bool { return (P.flags & f) != 0u; }

// wword is the index of the word holding element i.
fn wword(i: u32) -> u32 { return select(i, i >> 1u, flag(F_F16)); }

// wvalue extracts element i from its word.
fn wvalue(word: u32, i: u32) -> f32 {
	if (flag(F_F16)) {
		return unpack2x16float(word)[i & 1u];
	}
	return bitcast<f32>(word);
}

// k_slice is split-K slice z of [0, K) in `split` slices: 16-aligned (a GEMM
// K step), the last one shorter or empty; all of K when split ≤ 1.
fn k_slice(K: u32, split: u32, z: u32) -> vec2<u32> {
	if (split <= 1u) {
		return vec2<u32>(0u, K);
	}
	let per = (K + split * 16u - 1u) / (split * 16u) * 16u;
	return vec2<u32>(min(z * per, K), min((z + 1u) * per, K));
}
