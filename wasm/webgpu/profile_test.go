//go:build js && wasm

package webgpu

import (
	"context"
	"os"
	"sort"
	"testing"
	"time"
)

// TestProfile prints per-kernel times of each fixture network; it is a
// measurement, not a test, so it runs only with WEBGPU_PROFILE=1.
func TestProfile(t *testing.T) {
	if os.Getenv("WEBGPU_PROFILE") == "" {
		t.Skip("set WEBGPU_PROFILE=1 to print per-kernel times")
	}
	d := testDevice(t)
	ctx := context.Background()
	for _, f := range loadFixtures(t) {
		dn, err := d.NewDenoiser(f.m)
		if err != nil {
			t.Fatal(err)
		}
		B := f.x.Shape[0]
		if _, err := dn.Denoise(f.x, f.t, f.class); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := dn.Denoise(f.x, f.t, f.class); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s batch %d: one Denoise %v", f.name, B, time.Since(t0))
		p, _ := dn.program(ctx, B, f.x.Shape[2], f.x.Shape[3])
		st, err := p.Profile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(st, func(a, b int) bool { return st[a].Time > st[b].Time })
		var total time.Duration
		for _, s := range st {
			total += s.Time
		}
		t.Logf("%s: %d steps, %v in total one by one; slowest:", f.name, len(st), total)
		for _, s := range st[:min(12, len(st))] {
			t.Logf("  %8.2f ms  %s", float64(s.Time.Microseconds())/1000, s.Kernel)
		}
		dn.Release()
	}
}
