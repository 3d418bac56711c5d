//go:build js && wasm

package webgpu

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// BenchmarkDenoise times one Denoise call (upload, the submissions, readback)
// on each fixture network at batch 1 and 16. A measurement, not a test.
func BenchmarkDenoise(b *testing.B) {
	t := &testing.T{}
	d := testDevice(t)
	for _, f := range loadFixtures(t) {
		for _, c := range []struct {
			B      int
			goLoop bool
		}{{1, false}, {16, false}, {1, true}} {
			B := c.B
			name := fmt.Sprintf("%s/b%d", f.name, B)
			if c.goLoop {
				name += "-dispatch-from-go"
			}
			b.Run(name, func(b *testing.B) {
				gpu.ReplayInJS = !c.goLoop
				defer func() { gpu.ReplayInJS = true }()
				benchDenoise(b, d, f, B, Options{})
			})
		}
	}
}

// benchDenoise times Denoise on fixture f at batch B, compiled with o,
// after one warm-up call and reports the program's dispatch count.
func benchDenoise(b *testing.B, d *Device, f fixture, B int, o Options) {
	dn, err := d.NewDenoiserWith(f.m, o)
	if err != nil {
		b.Fatal(err)
	}
	defer dn.Release()
	x, ts, cls := batchOf(f, B)
	if _, err := dn.Denoise(x, ts, cls); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := dn.Denoise(x, ts, cls); err != nil {
			b.Fatal(err)
		}
	}
	if p, ok := dn.programs[[3]int{B, x.Shape[2], x.Shape[3]}]; ok {
		b.ReportMetric(float64(p.Steps()), "dispatches")
	}
}

// BenchmarkSampleDDIM times one step of DDIM with its vectors on the GPU
// (dn.SampleDDIM; 20 steps per op, η = 1 so the noise upload is included)
// at batch 16.
func BenchmarkSampleDDIM(b *testing.B) {
	t := &testing.T{}
	d := testDevice(t)
	for _, f := range loadFixtures(t) {
		b.Run(f.name, func(b *testing.B) {
			dn, err := d.NewDenoiser(f.m)
			if err != nil {
				b.Fatal(err)
			}
			defer dn.Release()
			s, _ := schedule.Parse(nil)
			m := &sampler.Model{Net: dn, Schedule: s, Shape: f.m.InShape(), NullClass: -1}
			o := &sampler.Options{Steps: 20, Eta: 1, Seed: 1}
			if c, _ := f.m.Conditional(); c {
				o.Class = []int{1}
			}
			noise := sampler.InitialNoise(1, 0, 16, m.Shape)
			if _, err := dn.SampleDDIM(context.Background(), m, noise, o); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := dn.SampleDDIM(context.Background(), m, noise, o); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*o.Steps), "ms/step")
		})
	}
}

// batchOf repeats the fixture's samples to a batch of B.
func batchOf(f fixture, B int) (*tensor.Tensor, []float32, []int) {
	per := tensor.Numel(f.x.Shape[1:])
	x := tensor.New(append([]int{B}, f.x.Shape[1:]...)...)
	ts := make([]float32, B)
	var cls []int
	for i := 0; i < B; i++ {
		src := i % f.x.Shape[0]
		copy(x.Data[i*per:], f.x.Data[src*per:(src+1)*per])
		ts[i] = f.t[src]
		if f.class != nil {
			cls = append(cls, f.class[src])
		}
	}
	return x, ts, cls
}

// BenchmarkEncode times recording one Denoise's dispatches from Go (the
// syscall/js calls), without submitting: the host-side part of a call.
func BenchmarkEncode(b *testing.B) {
	t := &testing.T{}
	d := testDevice(t)
	for _, f := range loadFixtures(t) {
		b.Run(f.name, func(b *testing.B) {
			dn, err := d.NewDenoiser(f.m)
			if err != nil {
				b.Fatal(err)
			}
			defer dn.Release()
			p, err := dn.program(context.Background(), 1, f.x.Shape[2], f.x.Shape[3])
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := d.gpu.NewEncoder("bench")
				p.encode(e)
			}
			b.ReportMetric(float64(p.Steps()), "dispatches")
		})
	}
}

// BenchmarkSampleDDIMPaths times the 25-step DDIM sample (η = 0, batch 4;
// on a software adapter only the smallest fixture, at 8×8 and batch 2)
// two ways in the same run, in ABBA order within each op: core/sampler.DDIM
// with its vectors on the GPU (dn.Sample) and with float64 vectors on the
// host calling the GPU network once per step (hostNet). It reports each
// one's ms per step, their ratio, and the GPU Space's dispatches, copies
// and submissions per step beyond the network's.
//
// Before the GPU-resident samplers (sampler.wgsl) were removed, the same
// benchmark against them (SwiftShader, load ~10 on 2 cores, noisy) gave
// resident 136.4 and 137.5 ms/step, Space 131.4 and 97.8 ms/step (ratios
// 0.96 and 0.71) on mnist_cond, with 4 Space dispatches (the two
// prediction combinations, clip_sample's clamp, the step) and 2 copies
// per step against the resident sampler's 2 dispatches.
func BenchmarkSampleDDIMPaths(b *testing.B) {
	t := &testing.T{}
	d := testDevice(t)
	fs, batch := loadFixtures(t), 4
	if d.Software() {
		fs, batch = []fixture{smallestFixture(t)}, 2
	}
	for _, f := range fs {
		b.Run(f.name, func(b *testing.B) {
			dn, err := d.NewDenoiser(f.m)
			if err != nil {
				b.Fatal(err)
			}
			defer dn.Release()
			s, _ := schedule.Parse(nil)
			shape := f.m.InShape()
			if d.Software() {
				shape = []int{shape[0], 8, 8}
			}
			m := &sampler.Model{Net: hostNet{dn}, Schedule: s, Shape: shape, NullClass: -1}
			o := &sampler.Options{Steps: 25, Seed: 1}
			if c, _ := f.m.Conditional(); c {
				o.Class = []int{1}
			}
			noise := sampler.InitialNoise(1, 0, batch, m.Shape)
			var st SpaceStats
			spaceClosed = func(s SpaceStats) { st = s }
			defer func() { spaceClosed = nil }()
			host := func() time.Duration {
				t0 := time.Now()
				if _, err := sampler.DDIM(context.Background(), m, noise, o); err != nil {
					b.Fatal(err)
				}
				return time.Since(t0)
			}
			space := func() time.Duration {
				t0 := time.Now()
				if _, err := dn.SampleDDIM(context.Background(), m, noise, o); err != nil {
					b.Fatal(err)
				}
				return time.Since(t0)
			}
			host()
			space()
			b.ResetTimer()
			var th, ts time.Duration
			for i := 0; i < b.N; i++ {
				th += host()
				ts += space()
				ts += space()
				th += host()
			}
			steps := float64(2 * b.N * o.Steps)
			b.ReportMetric(float64(th.Microseconds())/1e3/steps, "host-vectors-ms/step")
			b.ReportMetric(float64(ts.Microseconds())/1e3/steps, "space-ms/step")
			b.ReportMetric(float64(ts)/float64(th), "space/host-vectors")
			b.ReportMetric(float64(st.Dispatches)/float64(o.Steps), "space-dispatches/step")
			b.ReportMetric(float64(st.Copies)/float64(o.Steps), "space-copies/step")
			b.ReportMetric(float64(st.Submits)/float64(o.Steps), "space-submits/step")
		})
	}
}
