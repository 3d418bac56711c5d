package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/engine"
	"github.com/diffuse-web/diffuse/core/sampler"
)

// The step dial's measurement (web/dial.js, issue 21 item 5) run natively:
// every sampler that runs a shipped model, at 1, 2, 4, 8, 16 and 32 network
// calls (the largest step count whose plan fits the budget), from the same
// seeded noise, against RK45 at rtol = atol = 1e-5; the error is the
// per-value RMS, as the dial computes it.

var nfeBudgets = []int{1, 2, 4, 8, 16, 32}

// nfeRow is one sampler's errors: by budget, the calls it took and its RMS
// (NaN where one step costs more than the budget).
type nfeRow struct {
	name       string
	stochastic bool
	evals      []int
	rms        []float64
}

// errorVsNFE measures every applicable sampler on the model in weights.
// only, when not nil, names the samplers to measure. size is the RMS of the
// reference's values (a result more than 3·size from it diverged, as the
// dial marks it: dial.js diverged).
func errorVsNFE(t *testing.T, weights string, batch int, seed uint64, backend string, only []string) (refNFE int, size float64, rows []nfeRow) {
	t.Helper()
	l, err := loadForSampling(weights, "")
	if err != nil {
		t.Fatal(err)
	}
	net, err := newNet(l.Model, backend)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref, err := l.Run(ctx, net, engine.Request{Sampler: "rk45", Seed: seed, Batch: batch, Params: map[string]float64{"rtol": 1e-5, "atol": 1e-5}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range ref.X {
		size += float64(v) * float64(v)
	}
	size = math.Sqrt(size / float64(len(ref.X)))
	for _, s := range engine.Samplers() {
		if only != nil && !slices.Contains(only, s.Name) {
			continue
		}
		if !slices.Contains(l.Info.Samplers, s.Name) || !slices.ContainsFunc(s.Params, func(p sampler.Param) bool { return p.Name == "steps" }) {
			continue // not for this model, or adaptive (rk45)
		}
		// Stochastic as the dial runs it: with its default η (DDIM's is 0).
		noisy := s.Stochastic
		for _, p := range s.Params {
			if p.Name == "eta" && p.Default == 0 {
				noisy = false
			}
		}
		row := nfeRow{name: s.Name, stochastic: noisy}
		for _, b := range nfeBudgets {
			steps, evals := 0, 0
			for k := b; k >= 1; k-- {
				p, err := l.Plan(engine.Request{Sampler: s.Name, Steps: k, Batch: batch})
				if err == nil && p.Evals <= b {
					steps, evals = k, p.Evals
					break
				}
			}
			if steps == 0 {
				row.evals, row.rms = append(row.evals, 0), append(row.rms, math.NaN())
				continue
			}
			res, err := l.Run(ctx, net, engine.Request{Sampler: s.Name, Steps: steps, Seed: seed, Batch: batch}, nil, nil)
			if err != nil {
				t.Fatalf("%s, %d steps: %v", s.Name, steps, err)
			}
			if res.NFE != evals {
				t.Errorf("%s, %d steps: planned %d network calls, took %d", s.Name, steps, evals, res.NFE)
			}
			d := 0.0
			for i := range res.X {
				e := float64(res.X[i]) - float64(ref.X[i])
				d += e * e
			}
			row.evals, row.rms = append(row.evals, evals), append(row.rms, math.Sqrt(d/float64(len(res.X))))
		}
		rows = append(rows, row)
	}
	return ref.NFE, size, rows
}

// TestErrorVsNFEToys: on the shipped flow toys the ODE solvers converge to
// the RK45 solution (error at 32 calls under a fifth of that at 2), and
// reflow's one Euler step is far closer to it than the flow model's (its
// straighter paths). With DIAL_TABLE=dir it measures every applicable
// sampler on every shipped model and writes each model's table (markdown)
// and log-log plot (SVG) there: the README's error-vs-NFE figures
// (docs/error-vs-nfe; DIAL_TABLE=$PWD/docs/error-vs-nfe go test
// ./tools/diffuse -run TestErrorVsNFEToys -timeout 60m; DIAL_MODELS=a,b
// measures only those).
func TestErrorVsNFEToys(t *testing.T) {
	type job struct {
		file    string
		batch   int
		backend string
		ode     []string // deterministic solvers that must converge
	}
	flowODE := []string{"flow_euler", "flow_heun", "euler", "dpmpp_2m"}
	jobs := []job{
		{"toy2d-flow", 64, backendFast, flowODE},
		{"toy2d-reflow", 64, backendFast, flowODE},
	}
	dir := os.Getenv("DIAL_TABLE")
	only := flowODE
	if dir != "" {
		only = nil // every sampler, the dial's batch of points
		jobs = []job{{"toy2d-flow", 256, backendFast, flowODE}, {"toy2d-reflow", 256, backendFast, flowODE},
			{"toy2d-cm", 256, backendFast, []string{"euler", "dpmpp_2m"}}, {"toy2d", 256, backendFast, nil},
			{"mnist", 4, backendFast, nil}, {"scoresde-mnist", 4, backendFast, nil}, {"emoji", 2, backendFast, nil}}
	}
	if names := os.Getenv("DIAL_MODELS"); dir != "" && names != "" { // e.g. DIAL_MODELS=toy2d-flow,toy2d-reflow
		jobs = slices.DeleteFunc(jobs, func(j job) bool { return !slices.Contains(strings.Split(names, ","), j.file) })
	}
	first := map[string]float64{}
	for _, j := range jobs {
		t.Run(j.file, func(t *testing.T) {
			refNFE, size, rows := errorVsNFE(t, shipped(t, j.file+".safetensors"), j.batch, 3, j.backend, only)
			at := func(name string, b int) float64 {
				for _, r := range rows {
					if r.name == name {
						return r.rms[slices.Index(nfeBudgets, b)]
					}
				}
				t.Fatalf("no row for %s", name)
				return 0
			}
			for _, s := range j.ode {
				if !(at(s, 32) < 0.2*at(s, 2)) {
					t.Errorf("%s: RMS %.3g at 2 calls, %.3g at 32: not converging", s, at(s, 2), at(s, 32))
				}
			}
			if strings.HasPrefix(j.file, "toy2d-") && j.file != "toy2d-cm" {
				first[j.file] = at("flow_euler", 1)
			}
			md := nfeMarkdown(rows, size)
			t.Logf("%s (batch %d, seed 3; reference RK45 1e-5: %d network calls):\n%s", j.file, j.batch, refNFE, md)
			if dir != "" {
				head := fmt.Sprintf("`%s`, %d samples of seed 3: per-value RMS against RK45 at rtol = atol = 1e-5 (%d network calls; "+
					"the reference's own RMS is %.3g, † marks a result more than 3 times that from it)\n\n", j.file, j.batch, refNFE, size)
				if err := os.WriteFile(filepath.Join(dir, j.file+".md"), []byte(head+md), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, j.file+".svg"), []byte(nfeSVG(j.file, rows)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if f, r := first["toy2d-flow"], first["toy2d-reflow"]; f > 0 && r > 0 && !(r < 0.2*f) {
		t.Errorf("one Euler step: RMS %.3g on toy2d-reflow, %.3g on toy2d-flow: reflow should be far closer", r, f)
	}
}

// nfeMarkdown is the table of rows: one line per sampler, the calls taken in
// brackets where a budget fits fewer, † where the result diverged (more than
// 3·size from the reference, as the dial marks it).
func nfeMarkdown(rows []nfeRow, size float64) string {
	var b strings.Builder
	b.WriteString("| sampler |")
	for _, n := range nfeBudgets {
		fmt.Fprintf(&b, " %d |", n)
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(nfeBudgets)) + "\n")
	for _, r := range rows {
		name := "`" + r.name + "`"
		if r.stochastic {
			name += " (stochastic)"
		}
		b.WriteString("| " + name + " |")
		for i, n := range nfeBudgets {
			switch {
			case math.IsNaN(r.rms[i]):
				b.WriteString(" – |")
			default:
				v := fmt.Sprintf("%.2g", r.rms[i])
				if r.rms[i] > 3*size {
					v += "†"
				}
				if r.evals[i] < n {
					v += fmt.Sprintf(" (%d)", r.evals[i])
				}
				b.WriteString(" " + v + " |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// nfeSVG draws rows as the dial's plot does: log₂ network calls across,
// log₁₀ RMS up, one polyline per sampler (dashed: stochastic), with a legend.
func nfeSVG(title string, rows []nfeRow) string {
	const W, H, L, R, T, B = 640.0, 360.0, 56.0, 170.0, 28.0, 40.0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		for _, v := range r.rms {
			if v > 0 && !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1e-3, 1
	}
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi <= dlo {
		dhi = dlo + 1
	}
	X := func(n int) float64 { return L + (W-L-R)*math.Log2(float64(n))/5 }
	Y := func(v float64) float64 { return T + (H-T-B)*(dhi-math.Log10(v))/(dhi-dlo) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" font-family="sans-serif" font-size="11">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="#fff"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%g" y="16" text-anchor="middle" font-size="13">%s: RMS against RK45 (1e-5) vs network calls</text>`+"\n", (L+W-R)/2, title)
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#888"/>`+"\n", L, T, W-L-R, H-T-B)
	for _, n := range nfeBudgets {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#ddd"/><text x="%.1f" y="%g" text-anchor="middle">%d</text>`+"\n", X(n), X(n), T, H-B, X(n), H-B+14, n)
	}
	for d := dlo; d <= dhi; d++ {
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%g" y="%.1f" text-anchor="end">1e%d</text>`+"\n", L, W-R, Y(math.Pow(10, d)), Y(math.Pow(10, d)), L-4, Y(math.Pow(10, d))+4, int(d))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">network calls (NFE)</text>`+"\n", (L+W-R)/2, H-6)
	for i, r := range rows {
		col := fmt.Sprintf("hsl(%d,70%%,45%%)", 360*i/max(len(rows), 1))
		dash := ""
		if r.stochastic {
			dash = ` stroke-dasharray="5 4"`
		}
		var pts []string
		seen := map[int]bool{}
		for k, v := range r.rms {
			if v > 0 && !math.IsNaN(v) && !seen[r.evals[k]] {
				seen[r.evals[k]] = true
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(r.evals[k]), Y(v)))
			}
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.6"%s/>`+"\n", strings.Join(pts, " "), col, dash)
		}
		y := T + 4 + float64(i)*12.5
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/><text x="%g" y="%.1f">%s</text>`+"\n", W-R+8, W-R+26, y, y, col, dash, W-R+30, y+4, r.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
