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

// benchModels loads the models the environment variable env lists
// (comma-separated .safetensors paths; default weights/mnist.safetensors)
// as batch-1 fixtures with a fixed input, t = 500 and class 0.
func benchModels(b *testing.B, env string) []fixture {
	paths := strings.Split(os.Getenv(env), ",")
	if paths[0] == "" {
		paths = []string{filepath.Join("..", "..", "weights", "mnist.safetensors")}
	}
	var fs []fixture
	for _, path := range paths {
		m, err := model.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		f := fixture{name: filepath.Base(path), m: m, x: tensor.New(append([]int{1}, m.InShape()...)...), t: []float32{500}}
		for i := range f.x.Data {
			f.x.Data[i] = float32(i%17)/8 - 1
		}
		if c, _ := m.Conditional(); c {
			f.class = []int{0}
		}
		fs = append(fs, f)
	}
	return fs
}

// BenchmarkLatency breaks a Denoise call on the shipped models
// (WEBGPU_PROFILE_MODELS, comma-separated .safetensors paths; default
// weights/mnist.safetensors) into its parts, with and without split-K, and
// with Run's steps in one submission instead of runChunks:
//
//	roundtrip   an empty submission and the wait for it
//	…/denoise   one call: upload, the submissions, readback
//	…/gpu       calls submitted back to back, one wait at the end: the GPU
//	            time of a call, what a GPU-resident sampler step costs
//	…/record    encoding the dispatch list from Go
//
// and logs, at batch 1, the per-kernel costs (Program.Profile) summed by
// kind with the 15 dearest steps. Run with -test.bench Latency.
func BenchmarkLatency(b *testing.B) {
	d := testDevice(&testing.T{})
	ctx := context.Background()
	gd := d.gpu
	b.Run("roundtrip", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			gd.NewEncoder("empty").Submit()
			if err := gd.WorkDone(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, f := range benchModels(b, "WEBGPU_PROFILE_MODELS") {
		m := f.m
		for _, v := range []struct {
			name string
			o    Options
		}{{"default", Options{}}, {"no-split-K", Options{SplitK: 1}}, {"one-submission", Options{oneSubmission: true}}} {
			for _, B := range []int{1, 16} {
				b.Run(fmt.Sprintf("%s/%s/b%d", f.name, v.name, B), func(b *testing.B) {
					b.Run("denoise", func(b *testing.B) { benchDenoise(b, d, f, B, v.o) })
					if v.o.oneSubmission {
						return // the rest does not use Run: the same as default's
					}
					dn, err := d.NewDenoiserWith(m, v.o)
					if err != nil {
						b.Fatal(err)
					}
					defer dn.Release()
					x, ts, cls := batchOf(f, B)
					if _, err := dn.Denoise(x, ts, cls); err != nil {
						b.Fatal(err)
					}
					p := dn.programs[[3]int{B, x.Shape[2], x.Shape[3]}]
					b.Run("gpu", func(b *testing.B) {
						for i := 0; i < b.N; i++ {
							e := gd.NewEncoder("back to back")
							p.encode(e)
							e.Submit()
						}
						if err := gd.WorkDone(ctx); err != nil {
							b.Fatal(err)
						}
					})
					b.Run("record", func(b *testing.B) {
						for i := 0; i < b.N; i++ {
							p.encode(gd.NewEncoder("record"))
						}
					})
					if B == 1 {
						logProfile(b, p)
					}
				})
			}
		}
	}
}

// logProfile logs p's per-kernel costs summed by kind and its 15 dearest steps.
func logProfile(b *testing.B, p *Program) {
	st, err := p.Profile(context.Background(), 20)
	if err != nil {
		b.Fatal(err)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Nanoseconds())/1e6) }
	kind := map[string]time.Duration{}
	var sum time.Duration
	for _, s := range st {
		sum += s.Time
		kind[strings.Fields(s.Kernel)[0]] += s.Time
	}
	var ks []string
	for k, v := range kind {
		ks = append(ks, k+" "+ms(v))
	}
	sort.Strings(ks)
	b.Logf("%d dispatches, %s in total one by one; by kind: %s", len(st), ms(sum), strings.Join(ks, "; "))
	sort.Slice(st, func(i, j int) bool { return st[i].Time > st[j].Time })
	for _, s := range st[:min(15, len(st))] {
		b.Logf("  %s  %s", ms(s.Time), s.Kernel)
	}
}
