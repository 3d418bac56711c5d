//go:build js && wasm

package webgpu

import (
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// TestShippedModels runs every model in weights/ on the GPU and on the CPU
// reference at batch 2 (class-conditional ones with two labels) and compares
// by NMSE. The emoji UNet runs at 16×16 (its convolutions accept any size
// divisible by 8) to keep SwiftShader's time down; the others at their
// trained size. Each gets inputs from its own time domain.
func TestShippedModels(t *testing.T) {
	d := testDevice(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "weights", "*.safetensors"))
	if err != nil || len(files) < 4 {
		t.Fatalf("shipped models: %v %v", files, err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			m, err := model.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			shape := append([]int{2}, m.InShape()...)
			if name == "emoji.safetensors" {
				shape[2], shape[3] = 16, 16
			}
			r := rand.New(rand.NewSource(3))
			x := randT(r, 1, shape...)
			ts := []float32{17, 640} // discrete timesteps
			if m.Arch == model.ArchScoreNet {
				ts = []float32{0.05, 0.9} // the VE SDE's continuous time in (0, 1]
			}
			var cls []int
			if c, n := m.Conditional(); c {
				cls = []int{1, (n - 1) % n}
			}
			want, err := cpu.NewDenoiser(m).Denoise(x, ts, cls)
			if err != nil {
				t.Fatal(err)
			}
			dn, err := d.NewDenoiser(m)
			if err != nil {
				t.Fatal(err)
			}
			defer dn.Release()
			got, err := dn.Denoise(x, ts, cls)
			if err != nil {
				t.Fatal(err)
			}
			if !tensor.SameShape(got.Shape, want.Shape) {
				t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
			}
			e := nmse(got.Data, want.Data)
			t.Logf("%s %v, weights %s: NMSE vs CPU %.3g", name, shape, dn.WeightFormat(), e)
			if !(e <= nmseNetwork) {
				t.Errorf("NMSE vs CPU %.3g over %g", e, nmseNetwork)
			}
		})
	}
}
