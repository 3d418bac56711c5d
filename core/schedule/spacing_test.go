package schedule

import (
	"math"
	"testing"
)

func levelsOf(g Grid) []float64 {
	var lv []float64
	for _, st := range g.Steps {
		lv = append(lv, st.From.Level)
	}
	return lv
}

// TestPolyexponentialAndRho: the polyexponential spacing is exponential at
// its default ρ = 1 and follows k-diffusion's formula at another ρ
// (log σ_i - log σ_min ∝ (1-i/(n-1))^ρ), on discrete (Euler and DPM grids)
// and continuous schedules; WithSigmaRho sets the Karras ρ too.
func TestPolyexponentialAndRho(t *testing.T) {
	d := mustNew(t, DefaultConfig())
	vc := DefaultConfig()
	vc.SDE = "ve"
	lo, hi := 0.01, 50.0
	vc.SigmaMin, vc.SigmaMax = &lo, &hi
	ve := mustNew(t, vc)
	const n = 9
	for _, s := range []*Schedule{d, ve} {
		for gi, grid := range []func(*Schedule, int, string) (Grid, error){(*Schedule).EulerGrid, (*Schedule).DPMGrid} {
			ge, err := grid(s, n, SigmasExponential)
			if err != nil {
				t.Fatal(err)
			}
			gp, err := grid(s, n, SigmasPolyexponential)
			if err != nil {
				t.Fatal(err)
			}
			e, p := levelsOf(ge), levelsOf(gp)
			for i := range e {
				if !relClose(p[i], e[i], 1e-6) {
					t.Errorf("%v grid %d: polyexponential ρ=1 level %d = %v, exponential %v", s.Kind, gi, i, p[i], e[i])
				}
			}
			g2, err := grid(s.WithSigmaRho(2), n, SigmasPolyexponential)
			if err != nil {
				t.Fatal(err)
			}
			l2 := levelsOf(g2)
			top, bot := math.Log(l2[0]), math.Log(l2[n-1])
			if !relClose(l2[0], e[0], 1e-6) || !relClose(l2[n-1], e[n-1], 1e-6) {
				t.Errorf("%v grid %d: ρ=2 ends %v, %v; want %v, %v", s.Kind, gi, l2[0], l2[n-1], e[0], e[n-1])
			}
			for i, l := range l2 {
				r := 1 - float64(i)/(n-1)
				if want := bot + r*r*(top-bot); math.Abs(math.Log(l)-want) > 1e-5 {
					t.Errorf("%v grid %d: ρ=2 log level %d = %v, want %v", s.Kind, gi, i, math.Log(l), want)
				}
			}
			gk, err := grid(s.WithSigmaRho(3), n, SigmasKarras)
			if err != nil {
				t.Fatal(err)
			}
			lk := levelsOf(gk)
			c := func(i int) float64 { return math.Pow(lk[i], 1.0/3) }
			if d1, d2 := c(0)-c(1), c(n-2)-c(n-1); !relClose(d1, d2, 1e-4) {
				t.Errorf("%v grid %d: Karras ρ=3 not linear in σ^(1/3): %v vs %v", s.Kind, gi, d1, d2)
			}
		}
	}
	if s := d.WithSigmaRho(0); s != d {
		t.Error("WithSigmaRho(0) on a default schedule copied it")
	}
}
