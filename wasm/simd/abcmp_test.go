package simd

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/tensor"
)

// abSet switches between the variants an A/B comparison times (index 0 is
// the old code path); nil when there is nothing to compare. It is called
// before each variant's Denoiser builds its plan, so settings read at plan
// time (convChunkBytes) can be compared too.
var abSet = func(v int) { winogradMode = []int{-1, 0}[v] }

// BenchmarkABCompare times variant 0 and 1 of abSet interleaved in one
// process (AB_MODELS=mnist/1,emoji/16: model/batch; AB_ROUNDS=n; skipped
// unless AB_MODELS is set; run it as js/wasm, like make bench-simd) and
// reports, per model, the median time per call of each and the median of
// the paired new/old ratios (old and new alternate, ABBA, so load spikes
// hit both).
func BenchmarkABCompare(b *testing.B) {
	models := os.Getenv("AB_MODELS")
	if models == "" || abSet == nil {
		b.Skip("AB_MODELS not set")
	}
	defer func(c, w, wc int) { convChunkBytes, winogradMode, winoChunkBytes = c, w, wc }(convChunkBytes, winogradMode, winoChunkBytes) // what abSet changes
	rounds, _ := strconv.Atoi(os.Getenv("AB_ROUNDS"))
	if rounds == 0 {
		rounds = 7
	}
	for _, spec := range strings.Split(models, ",") {
		b.Run(spec, func(b *testing.B) { abCompare(b, spec, rounds) })
	}
}

// abCompare is one model/batch of BenchmarkABCompare.
func abCompare(b *testing.B, spec string, rounds int) {
	name, bs, _ := strings.Cut(spec, "/")
	batch, _ := strconv.Atoi(bs)
	if batch == 0 {
		batch = 1
	}
	m, err := benchModel(name)
	if err != nil {
		b.Fatal(err)
	}
	var ds [2]*Denoiser
	for v := range ds {
		if ds[v], err = NewDenoiser(m); err != nil {
			b.Fatal(err)
		}
	}
	x := tensor.New(append([]int{batch}, m.InShape()...)...)
	for i := range x.Data {
		x.Data[i] = float32(i%7) - 3
	}
	ts := make([]float32, batch)
	var class []int
	cond, _ := m.Conditional()
	for i := range ts {
		ts[i] = 500
		if cond {
			class = append(class, i%10)
		}
	}
	var times [2][]time.Duration
	for r := 0; r < rounds+1; r++ {
		for _, v := range [][]int{{0, 1}, {1, 0}}[r%2] {
			abSet(v)
			t0 := time.Now()
			if _, err := ds[v].Denoise(x, ts, class); err != nil {
				b.Fatal(err)
			}
			if r > 0 {
				times[v] = append(times[v], time.Since(t0))
			}
		}
	}
	var ratios []time.Duration // new/old of each round, in millionths
	for i := range times[0] {
		ratios = append(ratios, time.Duration(1e6*times[1][i].Seconds()/times[0][i].Seconds()))
	}
	med := func(s []time.Duration) time.Duration {
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	rm := med(ratios)
	b.ReportMetric(med(times[0]).Seconds()*1e3, "old-ms/call")
	b.ReportMetric(med(times[1]).Seconds()*1e3, "new-ms/call")
	b.ReportMetric(float64(rm)/1e6, "new/old")
	ds[0].Close()
	ds[1].Close()
}
