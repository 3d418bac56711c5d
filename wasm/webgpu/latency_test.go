//go:build js && wasm

package webgpu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// TestLatency breaks one Denoise call's wall time into its parts on the
// shipped models (WEBGPU_PROFILE_MODELS, comma-separated .safetensors paths;
// default weights/mnist.safetensors): the queue round trip, recording, GPU
// work per kernel family (each step repeated in one pass, so the cost
// includes the dispatch and its barrier) and the readback. A measurement,
// not a test: it runs only with WEBGPU_PROFILE=1.
func TestLatency(t *testing.T) {
	if os.Getenv("WEBGPU_PROFILE") == "" {
		t.Skip("set WEBGPU_PROFILE=1 to print the latency breakdown")
	}
	d := testDevice(t)
	ctx := context.Background()
	gd := d.gpu
	paths := strings.Split(os.Getenv("WEBGPU_PROFILE_MODELS"), ",")
	if paths[0] == "" {
		paths = []string{filepath.Join("..", "..", "weights", "mnist.safetensors")}
	}
	// WEBGPU_PROFILE_QUICK=1 measures once each, batch 1 only (a smoke run on SwiftShader).
	quick := os.Getenv("WEBGPU_PROFILE_QUICK") != ""
	batches, R := []int{1, 16}, 20
	if quick {
		batches, R = []int{1}, 1
	}
	median := func(n int, f func()) time.Duration {
		if quick {
			n = 1
		}
		ts := make([]time.Duration, n)
		for i := range ts {
			t0 := time.Now()
			f()
			ts[i] = time.Since(t0)
		}
		sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
		return ts[n/2]
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Nanoseconds())/1e6) }
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	rt := median(30, func() { gd.NewEncoder("empty").Submit(); must(gd.WorkDone(ctx)) })
	t.Logf("empty submit + onSubmittedWorkDone: %s", ms(rt))

	for _, path := range paths {
		m, err := model.Load(path)
		must(err)
		for _, o := range profileVariants() {
			dn, err := d.NewDenoiserWith(m, o.opt)
			must(err)
			for _, B := range batches {
				shape := append([]int{B}, m.InShape()...)
				x := tensor.New(shape...)
				for i := range x.Data {
					x.Data[i] = float32(i%17)/8 - 1
				}
				ts := make([]float32, B)
				var cls []int
				if c, _ := m.Conditional(); c {
					cls = make([]int, B)
				}
				for i := range ts {
					ts[i] = 500
				}
				_, err := dn.Denoise(x, ts, cls)
				must(err)
				call := median(30, func() { _, err := dn.Denoise(x, ts, cls); must(err) })
				p, err := dn.program(ctx, B, shape[2], shape[3])
				must(err)
				rec := median(30, func() { e := gd.NewEncoder("rec"); p.encode(e) })
				// Back to back: 20 submissions, one wait (GPU-bound throughput).
				const back = 20
				bb := median(5, func() {
					for i := 0; i < back; i++ {
						e := gd.NewEncoder("bb")
						p.encode(e)
						e.Submit()
					}
					must(gd.WorkDone(ctx))
				}) / back
				t.Logf("%s [%s] b%d: %d dispatches; Denoise %s; record %s; back-to-back %s/call",
					filepath.Base(path), o.name, B, p.Steps(), ms(call), ms(rec), ms(bb))
				if B != 1 {
					continue
				}
				// Each step alone, repeated R times in one pass.
				fam := map[string]time.Duration{}
				type one struct {
					what string
					d    time.Duration
				}
				var all []one
				var sum time.Duration
				for _, s := range p.steps {
					run := func(reps int) time.Duration {
						return median(5, func() {
							e := gd.NewEncoder("rep")
							for r := 0; r < reps; r++ {
								e.Dispatch(s.pipe, s.bg, s.grid[0], s.grid[1], s.grid[2])
							}
							e.Submit()
							must(gd.WorkDone(ctx))
						})
					}
					per, single := run(R+1), run(1)
					c := (per - single) / time.Duration(R)
					sum += c
					fam[strings.Fields(s.what)[0]] += c
					all = append(all, one{s.what + fmt.Sprintf(" grid %v", s.grid), c})
				}
				t.Logf("  sum of steps (each: (time of %d in one pass − time of 1)/%d): %s", R+1, R, ms(sum))
				var fs []string
				for k, v := range fam {
					fs = append(fs, fmt.Sprintf("%s %s", k, ms(v)))
				}
				sort.Strings(fs)
				t.Logf("  by kind: %s", strings.Join(fs, "; "))
				sort.Slice(all, func(a, b int) bool { return all[a].d > all[b].d })
				for _, s := range all[:min(15, len(all))] {
					t.Logf("    %s  %s", ms(s.d), s.what)
				}
			}
			dn.Release()
		}
	}
}

type profileVariant struct {
	name string
	opt  Options
}

// profileVariants are the compile options TestLatency compares.
func profileVariants() []profileVariant {
	return []profileVariant{{"default", Options{}}, {"no split-K", Options{SplitK: 1}}}
}
