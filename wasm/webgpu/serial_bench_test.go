//go:build js && wasm

package webgpu

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// BenchmarkSerialAB compares two compile options of the serial kernel set
// (software adapters) on whole Denoise calls of the shipped models in one
// process: the settings alternate in ABBA order (so a drift in the
// machine's load hits both), and it logs each round and the median of the
// paired ratios B/A. A measurement for choosing kernels, not a test.
//
//	WEBGPU_AB_MODELS  comma-separated .safetensors (default weights/mnist.safetensors)
//	WEBGPU_AB         which pair of settings (serialAB below)
//	WEBGPU_AB_ROUNDS  ABBA rounds (default 3)
//	WEBGPU_AB_BATCH   batch (default 1)
//	WEBGPU_AB_PROFILE 1: also log B's per-kernel profile (Program.Profile)
func BenchmarkSerialAB(b *testing.B) {
	d, pair, rounds, batch := abSettings(b)
	for _, f := range benchModels(b, "WEBGPU_AB_MODELS") {
		m := f.m
		x, ts, cls := batchOf(f, batch)
		var dns [2]*Denoiser
		for k, o := range pair {
			var err error
			if dns[k], err = d.NewDenoiserWith(m, o); err != nil {
				b.Fatal(err)
			}
			defer dns[k].Release()
			if _, err := dns[k].Denoise(x, ts, cls); err != nil { // compile and warm up
				b.Fatal(err)
			}
		}
		call := func(k int) time.Duration {
			t0 := time.Now()
			if _, err := dns[k].Denoise(x, ts, cls); err != nil {
				b.Fatal(err)
			}
			return time.Since(t0)
		}
		ta, tb, ratios := abba(rounds, call)
		for r := 0; r < rounds; r++ {
			b.Logf("%s b%d round %d: A %v %v, B %v %v, B/A %.3f", f.name, batch, r, ta[2*r], ta[2*r+1], tb[2*r], tb[2*r+1],
				float64(tb[2*r]+tb[2*r+1])/float64(ta[2*r]+ta[2*r+1]))
		}
		b.Logf("%s b%d %s: median B/A %.3f over %d rounds (%v); weights on the GPU: A %.1f MiB, B %.1f MiB", f.name, batch, os.Getenv("WEBGPU_AB"),
			ratios[len(ratios)/2], rounds, ratios, weightMiB(dns[0].w), weightMiB(dns[1].w))
		if os.Getenv("WEBGPU_AB_PROFILE") == "1" {
			logSerialProfile(b, dns[1].programs[[3]int{batch, x.Shape[2], x.Shape[3]}])
		}
	}
}

// BenchmarkSerialLayers is BenchmarkSerialAB on single layers shaped like
// the shipped UNets' (weights exact in f16, stored as the pair's options
// say; batch WEBGPU_AB_BATCH): per layer, the
// median time of A and B over the ABBA rounds and their ratio.
func BenchmarkSerialLayers(b *testing.B) {
	d, pair, rounds, batch := abSettings(b)
	type layer struct{ I, O, HW, K, stride int }
	only := os.Getenv("WEBGPU_AB_LAYERS") // e.g. "1x1" or "3x3/1": only layers whose name starts so
	for _, l := range []layer{{96, 32, 28, 3, 1}, {64, 64, 14, 3, 1}, {128, 64, 7, 3, 1}, {32, 32, 28, 3, 1}, {1, 32, 28, 3, 1},
		{32, 1, 28, 3, 1}, {32, 32, 28, 3, 2}, {96, 32, 28, 1, 1}, {64, 192, 14, 1, 1}} {
		if !strings.HasPrefix(fmt.Sprintf("%dx%d/%d", l.K, l.K, l.stride), only) {
			continue
		}
		r := rand.New(rand.NewSource(1))
		params := RoundF16(map[string]*tensor.Tensor{"c.weight": randT(r, 0.1, l.O, l.I, l.K, l.K), "c.bias": randT(r, 1, l.O)})
		pad := [4]int{l.K / 2, l.K / 2, l.K / 2, l.K / 2}
		c := &opCase{name: "layer", params: params, build: func(g *graph.Builder, in func(string, ...int) graph.Value) graph.Value {
			return g.Conv2D("c", in("x", batch, l.I, l.HW, l.HW), l.stride, pad)
		}}
		g, err := c.graphOf(r, params)
		if err != nil {
			b.Fatal(err)
		}
		var ps [2]*Program
		for k, o := range pair {
			if ps[k], err = d.Compile(context.Background(), g, o); err != nil {
				b.Fatal(err)
			}
			defer ps[k].Release()
		}
		call := func(k int) time.Duration {
			t0 := time.Now()
			if _, err := ps[k].Run(context.Background(), c.inputs); err != nil {
				b.Fatal(err)
			}
			return time.Since(t0)
		}
		call(0)
		call(1)
		ta, tb, ratios := abba(rounds, call)
		ma, mb := median(ta), median(tb)
		b.Logf("%dx%d/%d %d→%d %d² b%d: A %v B %v (medians), median paired B/A %.3f (%.3f–%.3f), fastest B/A %.3f", l.K, l.K, l.stride, l.I, l.O, l.HW, batch,
			ma.Round(100*time.Microsecond), mb.Round(100*time.Microsecond), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1],
			float64(tb[0])/float64(ta[0]))
	}
}

// abba times call(0) (A) and call(1) (B) for rounds rounds in ABBA order,
// so a drift in the machine's load hits both: ta and tb hold every time in
// call order (A: a1, a2 per round; B: b1, b2), ratios the paired
// (b1+b2)/(a1+a2), sorted.
func abba(rounds int, call func(int) time.Duration) (ta, tb []time.Duration, ratios []float64) {
	for range rounds {
		a1, b1 := call(0), call(1)
		b2, a2 := call(1), call(0)
		ta, tb = append(ta, a1, a2), append(tb, b1, b2)
		ratios = append(ratios, float64(b1+b2)/float64(a1+a2))
	}
	sort.Float64s(ratios)
	return ta, tb, ratios
}

// abSettings is the device and the WEBGPU_AB* settings both serial
// benchmarks read (it skips b without a known pair).
func abSettings(b *testing.B) (d *Device, pair [2]Options, rounds, batch int) {
	pair, ok := serialAB[os.Getenv("WEBGPU_AB")]
	if !ok {
		b.Skipf("WEBGPU_AB: one of %v", keys(serialAB))
	}
	return testDevice(&testing.T{}), pair, envInt("WEBGPU_AB_ROUNDS", 3), envInt("WEBGPU_AB_BATCH", 1)
}

// serialAB names the pairs BenchmarkSerialAB compares, A then B.
var serialAB = map[string][2]Options{
	"f16-f32": {{Serial: 1, Weights: WeightsF16, winograd: -1}, {Serial: 1, Weights: WeightsF32, winograd: -1}},
	"same":    {{Serial: 1}, {Serial: 1}},
	"weights": {{Serial: 1, Weights: WeightsF16}, {Serial: 1, Weights: WeightsF32}},
	"wino":    {{Serial: 1, winograd: -1}, {Serial: 1}},
	"f2-f4":   {{Serial: 1, winoTile: 2}, {Serial: 1, winoTile: 4}},
	"f2-rule": {{Serial: 1, winoTile: 2}, {Serial: 1}},
}

// logSerialProfile logs p's steps summed by kind and its 15 dearest, with
// one repetition per step (a SwiftShader call takes seconds).
func logSerialProfile(b *testing.B, p *Program) {
	st, err := p.Profile(b.Context(), 1)
	if err != nil {
		b.Fatal(err)
	}
	kind := map[string]time.Duration{}
	var sum time.Duration
	for _, s := range st {
		sum += s.Time
		w := strings.Fields(s.Kernel)
		k := w[0]
		if i := strings.Index(s.Kernel, "("); i >= 0 {
			k += " " + s.Kernel[i:]
		}
		kind[k] += s.Time
	}
	var ks []string
	for k, v := range kind {
		ks = append(ks, fmt.Sprintf("%s %v", k, v.Round(time.Millisecond)))
	}
	sort.Strings(ks)
	b.Logf("%d steps, %v one by one; by kind: %s", len(st), sum.Round(time.Millisecond), strings.Join(ks, "; "))
	sort.Slice(st, func(i, j int) bool { return st[i].Time > st[j].Time })
	for _, s := range st[:min(15, len(st))] {
		b.Logf("  %v  %s", s.Time.Round(100*time.Microsecond), s.Kernel)
	}
}

// weightMiB is the size of w's uploaded buffers.
func weightMiB(w *weightStore) float64 {
	var n uint64
	for name := range w.bufs {
		n += w.bytes(name)
	}
	return float64(n) / (1 << 20)
}

func median(x []time.Duration) time.Duration {
	sort.Slice(x, func(i, j int) bool { return x[i] < x[j] })
	return x[len(x)/2]
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
