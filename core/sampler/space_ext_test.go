package sampler_test

import (
	"testing"

	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/sampler/spacetest"
)

// TestHostSpace checks the host's vector operations (float64, exact but
// for Lincomb's and SumSq's rounding), and those of the float32 Space the
// sampler tests use as a device stand-in, against spacetest's loops.
func TestHostSpace(t *testing.T) {
	cfg := sampler.SpaceConfig{B: 3, N: 5, Seed: 9, FirstSample: 2}
	spacetest.Check(t, sampler.NewHostSpace(cfg), cfg, []int{1, 2, 3, 4, 5}, spacetest.Tol{Lincomb: 1e-12, SumSq: 1e-9})
	t.Run("f32", func(t *testing.T) {
		spacetest.Check(t, sampler.NewF32Space(cfg), cfg, []int{1, 3, 5}, spacetest.Tol{Lincomb: 1e-5, SumSq: 1e-9, Float32: true})
	})
}
