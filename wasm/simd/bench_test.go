package simd

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/lucid"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// graphFlops counts the multiply-adds of the GEMM-shaped ops, times 2.
func graphFlops(g *graph.Graph) float64 {
	var f float64
	for _, n := range g.Nodes {
		switch n.Op {
		case graph.OpConv2D:
			w := g.Params[n.Weight].Shape
			f += 2 * float64(tensor.Numel(g.Shapes[n.Out])*w[1]*w[2]*w[3])
		case graph.OpConvTranspose2D:
			w := g.Params[n.Weight].Shape
			f += 2 * float64(tensor.Numel(g.Shapes[n.In[0]])*w[1]*w[2]*w[3])
		case graph.OpLinear:
			f += 2 * float64(tensor.Numel(g.Shapes[n.Out])*g.Params[n.Weight].Shape[1])
		case graph.OpAttention:
			s := g.Shapes[n.In[0]]
			f += 4 * float64(s[0]*s[1]*s[1]*s[2])
		case graph.OpAttentionMemKV, graph.OpLinearAttention:
			s := g.Shapes[n.In[0]] // [B, 3·hidden, H, W]
			hidden, heads, tok := s[1]/3, n.Ints[0], s[2]*s[3]
			t := tok + graph.MemTokens(g, &n)
			if n.Op == graph.OpAttentionMemKV {
				f += 4 * float64(s[0]*tok*t*hidden)
			} else {
				f += 2 * float64(s[0]*hidden*(hidden/heads)*(t+tok))
			}
		}
	}
	return f
}

// BenchmarkDenoise times whole network evaluations on the fixture models.
// Natively the kernels run under wazero, so only the js/wasm run in Node
// (make bench-simd) says anything about the browser; there the process CPU
// time is reported too (cpu-ms/eval), which leaves out the time other jobs
// held the core on a shared machine. SIMD_PROFILE=1 prints the time per step
// kind.
func BenchmarkDenoise(b *testing.B) {
	for _, name := range []string{"mnist_cond", "cifar_like", "scoresde", "lucid_small", "mnist", "emoji"} {
		m, err := benchModel(name)
		if err != nil {
			b.Logf("%s: %v", name, err)
			continue
		}
		cond, _ := m.Conditional()
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/b%d", name, batch), func(b *testing.B) {
				d, err := NewDenoiser(m)
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				x := tensor.New(append([]int{batch}, m.InShape()...)...)
				for i := range x.Data {
					x.Data[i] = float32(i%7) - 3
				}
				t := make([]float32, batch)
				var class []int
				for i := range t {
					t[i] = 500
					if cond {
						class = append(class, i%10)
					}
				}
				for i := 0; i < 3; i++ { // plan and pack; let V8 tier the kernels up
					if _, err := d.Denoise(x, t, class); err != nil {
						b.Fatal(err)
					}
				}
				g, _ := m.Graph(batch, x.Shape[2], x.Shape[3])
				prof := map[string]time.Duration{}
				if os.Getenv("SIMD_PROFILE") != "" {
					d.Profile(prof)
				}
				b.ResetTimer()
				c0, cpuOK := cpuTime()
				for i := 0; i < b.N; i++ {
					if _, err := d.Denoise(x, t, class); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				per := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(per*1e3, "ms/eval")
				b.ReportMetric(graphFlops(g)/per/1e9, "GFLOP/s")
				if c1, _ := cpuTime(); cpuOK {
					cper := (c1 - c0).Seconds() / float64(b.N)
					b.ReportMetric(cper*1e3, "cpu-ms/eval")
					b.ReportMetric(graphFlops(g)/cper/1e9, "cpu-GFLOP/s")
				}
				if len(prof) > 0 && b.N > 1 {
					var kinds []string
					for k := range prof {
						kinds = append(kinds, k)
					}
					sort.Slice(kinds, func(i, j int) bool { return prof[kinds[i]] > prof[kinds[j]] })
					fmt.Fprintf(os.Stderr, "%s: time per step kind (indented: parts of a step)\n", b.Name())
					for _, k := range kinds {
						fmt.Fprintf(os.Stderr, "    %-32s %8.3f ms/eval\n", k, prof[k].Seconds()*1e3/float64(b.N))
					}
				}
			})
		}
	}
}

// benchModel loads a diffusers fixture, shipped weights (scoresde, mnist,
// emoji) or the lucidrains fixture.
func benchModel(name string) (*model.Model, error) {
	switch name {
	case "scoresde":
		return model.Load(filepath.Join("..", "..", "weights", "scoresde-mnist.safetensors"))
	case "mnist", "emoji": // the shipped weights
		return model.Load(filepath.Join("..", "..", "weights", name+".safetensors"))
	case "lucid_small":
		data, err := os.ReadFile(filepath.Join(fixturesDir(), "lucidrains", "lucid_small", "model-1.pt"))
		if err != nil {
			return nil, err
		}
		return model.FromLucidrains(data, true, lucid.Overrides{ImageSize: [2]int{28, 28}})
	}
	return model.FromDiffusersDir(filepath.Join(fixturesDir(), "diffusers", name))
}
