package simd

import (
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

// BenchmarkWinogradLayers times every distinct 3x3 stride-1 convolution of
// the shipped MNIST and emoji UNets (WINO_MODELS=mnist/1,emoji/16; skipped
// unless set; run it as js/wasm in Node) through im2col and through
// Winograd, alternated ABBA in one process (WINO_ROUNDS, default 9), and
// prints per layer the median time of each and the median of the paired
// Winograd/im2col ratios: the measurements behind winoRule.
func BenchmarkWinogradLayers(b *testing.B) {
	specs := os.Getenv("WINO_MODELS")
	if specs == "" {
		b.Skip("WINO_MODELS not set")
	}
	rounds, _ := strconv.Atoi(os.Getenv("WINO_ROUNDS"))
	if rounds == 0 {
		rounds = 9
	}
	defer func(m int) { winogradMode = m }(winogradMode)
	for _, spec := range strings.Split(specs, ",") {
		name, bs, _ := strings.Cut(spec, "/")
		batch, _ := strconv.Atoi(bs)
		m, err := benchModel(name)
		if err != nil {
			b.Fatal(err)
		}
		in := m.InShape()
		g, err := m.Graph(batch, in[1], in[2])
		if err != nil {
			b.Fatal(err)
		}
		seen := map[string]int{}
		var order []string
		nodes := map[string]graph.Node{}
		for _, n := range g.Nodes {
			if n.Op != graph.OpConv2D {
				continue
			}
			ws := g.Params[n.Weight].Shape
			if ws[2] != 3 || ws[3] != 3 || n.Ints[0] != 1 {
				continue
			}
			key := fmt.Sprintf("%v->%d", g.Shapes[n.In[0]], ws[0])
			if seen[key] == 0 {
				order = append(order, key)
				nodes[key] = n
			}
			seen[key]++
		}
		k := newK(b)
		wt := newWeights(k, g.Params)
		r := rand.New(rand.NewSource(1))
		for _, key := range order {
			n := nodes[key]
			xs, osh := g.Shapes[n.In[0]], g.Shapes[n.Out]
			var cv [2]*conv
			var sc [2]*scratch
			for v, mode := range []int{-1, 1} {
				winogradMode = mode
				cv[v] = newConv(k, wt, xs, n.Weight, n.Bias, 1, [4]int(n.Ints[1:5]), osh)
				sc[v] = cv[v].need().alloc(k)
			}
			x := k.Alloc(tensor.Numel(xs))
			copy(x, randn(r, len(x)))
			out := k.Alloc(tensor.Numel(osh))
			reps := max(1, int(2e7/(float64(tensor.Numel(osh))*float64(xs[1])*9)))
			var times [2][]time.Duration
			for rd := 0; rd <= rounds; rd++ {
				for _, v := range [][]int{{0, 1}, {1, 0}}[rd%2] {
					t0 := time.Now()
					for i := 0; i < reps; i++ {
						cv[v].run(k, sc[v], out, x, nil, nil)
					}
					if rd > 0 {
						times[v] = append(times[v], time.Since(t0)/time.Duration(reps))
					}
				}
			}
			var ratios []float64
			for i := range times[0] {
				ratios = append(ratios, times[1][i].Seconds()/times[0][i].Seconds())
			}
			sort.Float64s(ratios)
			med := func(s []time.Duration) time.Duration {
				sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
				return s[len(s)/2]
			}
			fmt.Fprintf(os.Stderr, "%s/%d %-22s x%-2d im2col %8.3f ms  winograd %8.3f ms  ratio %.3f (%.3f-%.3f)\n",
				name, batch, key, seen[key], med(times[0]).Seconds()*1e3, med(times[1]).Seconds()*1e3,
				ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
		}
	}
}
