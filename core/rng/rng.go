// Package rng is the project's seeded Gaussian noise: a counter-based
// generator whose values depend only on (seed, sample, step, sub) and are
// bit-identical on every GOOS/GOARCH, native or js/wasm.
//
// The bits come from Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel
// Random Numbers: As Easy as 1, 2, 3", SC 2011), keyed by the 64-bit seed;
// the counter holds (block, sample, step, sub), so the noise of sample i never
// depends on the batch it was drawn in or on the backend. Uniforms become
// normals by the Box–Muller transform (Box and Muller, "A Note on the
// Generation of Random Normal Deviates", Ann. Math. Statist. 1958):
//
//	z0 = sqrt(-2 ln u1) cos(2π u2),  z1 = sqrt(-2 ln u1) sin(2π u2).
//
// Bit-identity: the transform is computed in float64 with this package's own
// logarithm, sine and cosine (series evaluated with every product explicitly
// rounded, so no compiler may fuse them into FMAs; math.Log has assembly on
// some architectures and math.Sin/Cos may be fused differently per GOARCH),
// and only correctly rounded IEEE operations (+, -, *, /, sqrt). Every value
// is then rounded to float32, and the float64 entry points return those same
// float32 values widened, so all entry points agree.
package rng

import "math"

// Reserved step numbers. Samplers use step = 0, 1, 2, ... for the noise they
// add during step i; these negative values name the other draws.
const (
	// Initial is the step of the starting noise x_T.
	Initial = -1
	// Probe is the step of the Hutchinson probe vectors used by likelihood
	// estimation.
	Probe = -2
	// Dequant is the step of the uniform dequantisation noise.
	Dequant = -3
)

// Philox4x32-10 constants (Salmon et al. 2011, section 3.3 / Random123).
const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9 // golden ratio
	philoxW1 = 0xBB67AE85 // sqrt(3) - 1
)

// Philox4x32 returns the Philox4x32-10 block for counter ctr and key key.
func Philox4x32(ctr [4]uint32, key [2]uint32) [4]uint32 {
	c0, c1, c2, c3 := ctr[0], ctr[1], ctr[2], ctr[3]
	k0, k1 := key[0], key[1]
	for r := 0; r < 10; r++ {
		if r > 0 {
			k0 += philoxW0
			k1 += philoxW1
		}
		p0 := uint64(philoxM0) * uint64(c0)
		p1 := uint64(philoxM1) * uint64(c2)
		hi0, lo0 := uint32(p0>>32), uint32(p0)
		hi1, lo1 := uint32(p1>>32), uint32(p1)
		c0, c1, c2, c3 = hi1^c1^k0, lo1, hi0^c3^k1, lo0
	}
	return [4]uint32{c0, c1, c2, c3}
}

// Normal fills out with standard normal values for sample `sample` at step
// `step` of the request seeded by seed. The same (seed, sample, step) always
// gives the same values, and a longer out extends a shorter one.
func Normal(seed uint64, sample, step int, out []float32) {
	NormalStream(seed, sample, step, 0, out)
}

// NormalStream is Normal with one more counter word, sub, for samplers that
// draw several independent vectors in one step (a predictor and its
// corrector steps, say). NormalStream(s, i, k, 0, out) equals Normal(s, i, k, out).
func NormalStream(seed uint64, sample, step, sub int, out []float32) {
	key := [2]uint32{uint32(seed), uint32(seed >> 32)}
	for b := 0; 2*b < len(out); b++ {
		z0, z1 := boxMuller(Philox4x32([4]uint32{uint32(b), uint32(sample), uint32(step), uint32(sub)}, key))
		out[2*b] = float32(z0)
		if 2*b+1 < len(out) {
			out[2*b+1] = float32(z1)
		}
	}
}

// Normal64 is Normal returning the same float32 values widened to float64.
func Normal64(seed uint64, sample, step int, out []float64) {
	NormalStream64(seed, sample, step, 0, out)
}

// NormalStream64 is NormalStream returning float32 values widened to float64.
func NormalStream64(seed uint64, sample, step, sub int, out []float64) {
	key := [2]uint32{uint32(seed), uint32(seed >> 32)}
	for b := 0; 2*b < len(out); b++ {
		z0, z1 := boxMuller(Philox4x32([4]uint32{uint32(b), uint32(sample), uint32(step), uint32(sub)}, key))
		out[2*b] = float64(float32(z0))
		if 2*b+1 < len(out) {
			out[2*b+1] = float64(float32(z1))
		}
	}
}

// Uniform64 fills out with uniform values in [0, 1), each a multiple of
// 2^-32, from the same counter space as NormalStream (one Philox block gives
// four of them; the streams of Uniform64 and NormalStream for equal arguments
// are not independent, so use a different step or sub for each).
func Uniform64(seed uint64, sample, step, sub int, out []float64) {
	key := [2]uint32{uint32(seed), uint32(seed >> 32)}
	for b := 0; 4*b < len(out); b++ {
		w := Philox4x32([4]uint32{uint32(b), uint32(sample), uint32(step), uint32(sub)}, key)
		for j := 0; j < 4 && 4*b+j < len(out); j++ {
			out[4*b+j] = float64(w[j]) * 0x1p-32
		}
	}
}

// Block b of the counter (block, sample, step, sub) gives values 2b and 2b+1.

// boxMuller turns one Philox block into two normals. u1 = (n1+1)/2^53 in
// (0, 1] takes 53 bits from words 0 and 1 (so ln u1 is finite); the angle
// 2π·n2/2^53 takes 53 bits from words 2 and 3.
func boxMuller(w [4]uint32) (float64, float64) {
	n1 := (uint64(w[0])<<32 | uint64(w[1])) >> 11
	n2 := (uint64(w[2])<<32 | uint64(w[3])) >> 11
	u1 := float64(n1+1) * 0x1p-53
	r := math.Sqrt(-2 * logUnit(u1))
	s, c := sinCos2Pi(n2)
	return mul(r, c), mul(r, s)
}

// mul is a product rounded to float64 on its own: the explicit conversion
// forbids fusing it with a following addition (Go spec, "Arithmetic
// operators": an explicit conversion rounds to the target precision and
// prevents fusion).
func mul(a, b float64) float64 { return float64(a * b) }

const (
	ln2Hi = 6.93147180369123816490e-01 // high bits of ln 2 (fdlibm split)
	ln2Lo = 1.90821492927058770002e-10 // ln 2 - ln2Hi
)

// logUnit is ln x for 0 < x <= 1 (it is correct for any positive finite x).
// x = m·2^e with m in [sqrt(1/2), sqrt(2)); with f = m-1 and s = f/(2+f),
// ln m = 2 atanh(s) = 2(s + s³/3 + s⁵/5 + ...) (Abramowitz & Stegun 4.1.27
// with z = m); |s| <= 0.1716, so 14 odd terms reach below 1e-19 relative.
func logUnit(x float64) float64 {
	m, e := math.Frexp(x) // exact: m in [0.5, 1)
	if m < math.Sqrt2/2 {
		m *= 2 // exact
		e--
	}
	f := m - 1 // exact (Sterbenz)
	s := f / (2 + f)
	s2 := mul(s, s)
	// Horner in s² for sum_{k=0..13} s^(2k)/(2k+1).
	p := logCoef[13]
	for k := 12; k >= 0; k-- {
		p = mul(p, s2) + logCoef[k]
	}
	lnm := mul(2*s, p)
	fe := float64(e)
	return mul(fe, ln2Hi) + (mul(fe, ln2Lo) + lnm)
}

// sinCos2Pi returns sin and cos of 2π·n/2^53 for 0 <= n < 2^53. The top three
// bits pick the octant exactly; the remaining 50 bits give the angle within
// it, reflected so the series argument lies in [0, π/4].
func sinCos2Pi(n uint64) (sin, cos float64) {
	oct := n >> 50
	r := n & (1<<50 - 1)
	var g float64 // fraction of π/4
	if oct&1 == 0 {
		g = float64(r) * 0x1p-50
	} else {
		g = float64(1<<50-r) * 0x1p-50
	}
	phi := mul(g, math.Pi/4)
	s, c := sinCosSeries(phi)
	if oct&1 == 1 { // angle within the quadrant is π/2 - phi
		s, c = c, s
	}
	switch oct >> 1 { // quadrant
	case 0:
		return s, c
	case 1:
		return c, -s
	case 2:
		return -s, -c
	default:
		return -c, s
	}
}

// sinCosSeries is the Taylor series of sin and cos for 0 <= x <= π/4, to the
// x^19 and x^18 terms (truncation below 1e-19).
func sinCosSeries(x float64) (float64, float64) {
	x2 := mul(x, x)
	// sin x = x·(1 - x²/3! + x⁴/5! - ...), cos x = 1 - x²/2! + x⁴/4! - ...
	ps, pc := 0.0, 0.0
	for k := 9; k >= 1; k-- {
		ps = mul(ps, x2) + sinCoef[k]
		pc = mul(pc, x2) + cosCoef[k]
	}
	s := x + mul(x, mul(ps, x2))
	c := 1 + mul(pc, x2)
	return s, c
}

// sinCoef[k] = (-1)^k/(2k+1)!, cosCoef[k] = (-1)^k/(2k)!, logCoef[k] = 1/(2k+1).
var sinCoef, cosCoef [10]float64
var logCoef [14]float64

func init() {
	for k := range logCoef {
		logCoef[k] = 1 / float64(2*k+1)
	}
	f := 1.0 // running factorial; IEEE products and quotients, so identical everywhere
	for i := 1; i <= 19; i++ {
		f *= float64(i)
		sign := 1.0
		if (i/2)%2 == 1 {
			sign = -1
		}
		if i%2 == 1 {
			sinCoef[i/2] = sign / f
		} else {
			cosCoef[i/2] = sign / f
		}
	}
}
