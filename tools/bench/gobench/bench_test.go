package gobench

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/engine"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/tools/bench/flops"
	"github.com/diffuse-web/diffuse/wasm/simd"
)

var models = []string{"mnist", "emoji", "scoresde-mnist", "toy2d"}

func load(b *testing.B, name string) *model.Model {
	_, file, _, _ := runtime.Caller(0)
	m, err := model.Load(filepath.Join(filepath.Dir(file), "..", "..", "..", "weights", name+".safetensors"))
	if err != nil {
		b.Skip(err)
	}
	return m
}

func inputs(m *model.Model, batch int) (*tensor.Tensor, []float32, []int) {
	x := tensor.New(append([]int{batch}, m.InShape()...)...)
	for i := range x.Data {
		x.Data[i] = float32(i%13)/6 - 1
	}
	t := make([]float32, batch)
	for i := range t {
		t[i] = 500
	}
	if m.Arch == model.ArchScoreNet {
		for i := range t {
			t[i] = 0.5
		}
	}
	var class []int
	if cond, n := m.Conditional(); cond {
		class = make([]int, batch)
		for i := range class {
			class[i] = i % n
		}
	}
	return x, t, class
}

func run(b *testing.B, m *model.Model, net model.Denoiser, batch int) {
	x, t, class := inputs(m, batch)
	s := m.InShape()
	g, err := m.Graph(batch, s[1], s[2])
	if err != nil {
		b.Fatal(err)
	}
	gemm := flops.Of(g).GEMM
	if _, err := net.Denoise(x, t, class); err != nil { // plans, packing
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0, haveCPU := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := net.Denoise(x, t, class); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(gemm*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	// CPU time per call (all threads): steadier than ns/op when other
	// processes share the cores, though not a wall time.
	if cpu1, ok := cpuTime(); ok && haveCPU {
		b.ReportMetric(float64(cpu1-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkCPU is the plain-Go reference backend (core/cpu).
func BenchmarkCPU(b *testing.B) {
	for _, name := range models {
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/b%d", name, batch), func(b *testing.B) {
				m := load(b, name)
				run(b, m, cpu.NewDenoiser(m), batch)
			})
		}
	}
}

// BenchmarkSIMD is the SIMD backend with its kernel module under wazero
// (natively; in the browser the same kernels run in V8).
func BenchmarkSIMD(b *testing.B) {
	for _, name := range models {
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/b%d", name, batch), func(b *testing.B) {
				m := load(b, name)
				d, err := simd.NewDenoiser(m)
				if err != nil {
					b.Skip(err)
				}
				defer d.Close()
				run(b, m, d, batch)
			})
		}
	}
}

// BenchmarkSample is a whole request as the app and the CLI run it (the
// request engine, core/engine): DDIM, 10 steps, one sample, on the
// CLI's default backend (the native kernels). The network calls dominate; the rest is the engine's
// and the sampler's overhead.
func BenchmarkSample(b *testing.B) {
	for _, name := range models {
		b.Run(name, func(b *testing.B) {
			m := load(b, name)
			l, err := engine.FromModel(m)
			if err != nil {
				b.Fatal(err)
			}
			r := engine.Request{Sampler: "ddim", Steps: 10, Seed: 1}
			if l.Info.Conditional && l.Info.NullClass < 0 {
				r.Class = new(int)
			}
			net := simd.NewNativeDenoiser(m)
			defer net.Close()
			for i := 0; i < b.N; i++ {
				if _, err := l.Run(context.Background(), net, r, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNative is the SIMD backend over the native Go kernel set
// (simd.NewNativeDenoiser: AVX2+FMA GEMM, all cores): the CLI's default.
func BenchmarkNative(b *testing.B) {
	for _, name := range models {
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/b%d", name, batch), func(b *testing.B) {
				m := load(b, name)
				d := simd.NewNativeDenoiser(m)
				defer d.Close()
				run(b, m, d, batch)
			})
		}
	}
}
