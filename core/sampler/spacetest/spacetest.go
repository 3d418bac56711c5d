// Package spacetest checks a sampler.Space's vector operations against
// direct float64 loops: what every backend that keeps the batch resident
// (core/sampler's host vectors, the WebGPU backend's) must compute, checked
// in one place for all of them.
package spacetest

import (
	"fmt"
	"math"
	"testing"

	"github.com/diffuse-web/diffuse/core/rng"
	"github.com/diffuse-web/diffuse/core/sampler"
)

// Tol is how close a Space must come to the float64 loops.
type Tol struct {
	Lincomb float64 // absolute, on Lincomb's values
	SumSq   float64 // relative, on SumSq's sums
	// Float32: the Space stores float32, so its Noise must equal core/rng's
	// draws rounded to float32 (else bit for bit).
	Float32 bool
}

// Check runs sp's operations on values it loads (float32-representable,
// so Load then Read must give them back exactly) and fails t where they
// differ from the loops: Lincomb of each count in terms (a per-sample
// coefficient on the last term or not; in place, out one of the inputs),
// Clamp (exact), SumSq with no scale, Y's and Y and Y2's, and Noise of a
// step and draw against rng.NormalStream64 with cfg's seed and first
// sample. cfg is sp's (B samples of N values, no NoiseSource); Check frees
// what it makes but one loaded vector, which it returns with its values
// for a backend's own checks.
func Check(t *testing.T, sp sampler.Space, cfg sampler.SpaceConfig, terms []int, tol Tol) (sampler.Vec, []float64) {
	t.Helper()
	B, N := cfg.B, cfg.N
	nv := 3
	for _, k := range terms {
		nv = max(nv, k)
	}
	host := make([][]float64, nv+1)
	vs := make([]sampler.Vec, len(host))
	for j := range host {
		host[j] = make([]float64, B*N)
		for i := range host[j] {
			host[j][i] = float64(float32(2 * math.Sin(float64(13*j+i)*0.37)))
		}
		vs[j] = sp.New()
		sp.Load(vs[j], host[j])
	}
	defer func() {
		for _, v := range vs[1:] {
			sp.Free(v)
		}
	}()
	check := func(what string, got, want []float64, tol float64) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: %d values, want %d", what, len(got), len(want))
			return
		}
		for i := range want {
			if d := math.Abs(got[i] - want[i]); !(d <= tol) {
				t.Errorf("%s: value %d off by %g (tolerance %g)", what, i, d, tol)
				return
			}
		}
	}
	check("Load then Read", sp.Read(vs[0]), host[0], 0)
	out := vs[nv]
	per := make([]float64, B)
	for b := range per {
		per[b] = 1 - 1.5*float64(b)
	}
	for _, nt := range terms {
		for _, perSample := range []bool{false, true} {
			ts := make([]sampler.Term, nt)
			want := make([]float64, B*N)
			for k := range ts {
				ts[k] = sampler.T(0.5-0.25*float64(k), vs[k])
				if perSample && k == nt-1 {
					ts[k].PerSample = per
				}
				for i := range want {
					c := ts[k].C
					if ts[k].PerSample != nil {
						c = ts[k].PerSample[i/N]
					}
					want[i] += c * host[k][i]
				}
			}
			sp.Lincomb(out, ts...)
			check(fmt.Sprintf("Lincomb of %d terms (per sample %v)", nt, perSample), sp.Read(out), want, tol.Lincomb)
		}
	}
	// in place: v1 = 2·v1 - v2
	want := make([]float64, B*N)
	for i := range want {
		want[i] = 2*host[1][i] - host[2][i]
	}
	sp.Lincomb(vs[1], sampler.T(2, vs[1]), sampler.T(-1, vs[2]))
	check("in-place Lincomb", sp.Read(vs[1]), want, tol.Lincomb)
	copy(host[1], sp.Read(vs[1]))

	sp.Clamp(out, vs[2], -0.5, 1)
	for i, x := range host[2] {
		want[i] = math.Max(-0.5, math.Min(1, x))
	}
	check("Clamp", sp.Read(out), want, 0)

	for _, sc := range []sampler.ErrScale{{}, {Y: vs[1], ATol: 1e-2, RTol: 0.1}, {Y: vs[1], Y2: vs[2], ATol: 1e-3, RTol: 1e-2}} {
		got := sp.SumSq(vs[3], sc)
		hs := make([]float64, B)
		for i, x := range host[3] {
			if sc.Y != nil {
				m := math.Abs(host[1][i])
				if sc.Y2 != nil {
					m = math.Max(m, math.Abs(host[2][i]))
				}
				x /= sc.ATol + sc.RTol*m
			}
			hs[i/N] += x * x
		}
		for b := range hs {
			if math.Abs(got[b]-hs[b]) > tol.SumSq*hs[b] {
				t.Errorf("SumSq (scale %+v) of sample %d: %g, want %g", sc, b, got[b], hs[b])
			}
		}
	}

	sp.Noise(out, 7, 2)
	got := sp.Read(out)
	z := make([]float64, N)
	for b := 0; b < B; b++ {
		rng.NormalStream64(cfg.Seed, cfg.FirstSample+b, 7, 2, z)
		for i, v := range z {
			g := got[b*N+i]
			if g != v && !(tol.Float32 && float32(g) == float32(v)) {
				t.Fatalf("Noise of sample %d, value %d: %v, want core/rng's %v", b, i, g, v)
			}
		}
	}
	return vs[0], host[0]
}
