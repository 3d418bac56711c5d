package engine

import (
	"context"
	"math"
	"os"
	"testing"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/sampler"
)

func fakeImage(n int) []float32 {
	img := make([]float32, n)
	for i := range img {
		img[i] = float32(math.Sin(float64(i))) * 0.8
	}
	return img
}

func TestModeRequests(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	img := fakeImage(16)
	ctx := context.Background()
	// SDEdit at strength 0 is the image.
	res, err := l.Run(ctx, &shrink{}, Request{Sampler: "ddim", Steps: 10, Mode: ModeSDEdit, Image: img}, nil, nil)
	if err != nil || maxDiff(res.X, img) != 0 {
		t.Fatalf("sdedit strength 0: %v, %v", res, err)
	}
	// SDEdit at strength 0.5 makes half the evaluations.
	net := &shrink{}
	if _, err := l.Run(ctx, net, Request{Sampler: "ddim", Steps: 10, Mode: ModeSDEdit, Image: img, Strength: 0.5}, nil, nil); err != nil || net.calls != 5 {
		t.Fatalf("sdedit strength 0.5: %d calls, %v", net.calls, err)
	}
	// Inpainting keeps the known pixels (mask per pixel) exactly.
	mask := make([]float32, 16)
	for i := 0; i < 8; i++ {
		mask[i] = 1
	}
	res, err = l.Run(ctx, &shrink{}, Request{Sampler: "euler", Steps: 10, Mode: ModeInpaint, Image: img, Mask: mask, Batch: 2}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range res.X {
		if i%16 < 8 && v != img[i%16] {
			t.Fatalf("inpaint: known value %d is %g, want %g", i, v, img[i%16])
		}
	}
	// RePaint: 10 steps, blocks of 2 resampled 3 times: 10 + 2·2·4 calls.
	net = &shrink{}
	res, err = l.Run(ctx, net, Request{Sampler: "ddpm", Steps: 10, Mode: ModeInpaint, Image: img, Mask: mask, Resample: 3, JumpLength: 2}, nil, nil)
	if err != nil || net.calls != 10+2*2*4 {
		t.Fatalf("repaint: %d calls, %v", net.calls, err)
	}
	for i, v := range res.X {
		if i%16 < 8 && v != img[i%16] {
			t.Fatalf("repaint: known value %d is %g, want %g", i, v, img[i%16])
		}
	}
	// Inversion then DDIM from its noise (Noise) comes back.
	inv, err := l.Run(ctx, &shrink{}, Request{Sampler: "ddim", Steps: 10, Mode: ModeInvert, Image: img}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := l.Run(ctx, &shrink{}, Request{Sampler: "ddim", Steps: 10, Noise: inv.X}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := sampler.DDIM(ctx, l.SamplerModel(&shrink{}), f64(inv.X), &sampler.Options{Steps: 10})
	if d := maxDiff(back.X, f32(want.X)); d != 0 {
		t.Errorf("regenerating from the request's noise differs from DDIM on it by %g", d)
	}
	// A morph between two noises ends at both.
	morph, err := l.Run(ctx, &shrink{}, Request{Sampler: "ddim", Steps: 10, Noise: inv.X, NoiseTo: fakeImage(16), Batch: 3}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(morph.X[:16], back.X); d != 0 {
		t.Errorf("morph start differs by %g", d)
	}
	for _, bad := range []struct {
		field string
		r     Request
	}{
		{"mode", Request{Sampler: "ddim", Mode: "paint", Image: img}},
		{"image", Request{Sampler: "ddim", Mode: ModeSDEdit, Image: img[:3], Strength: 0.5}},
		{"sampler", Request{Sampler: "euler", Mode: ModeInvert, Image: img}},
		{"sampler", Request{Sampler: "dpmpp_2m", Mode: ModeSDEdit, Image: img, Strength: 0.5}},
		{"strength", Request{Sampler: "ddim", Mode: ModeSDEdit, Image: img, Strength: 2}},
		{"strength", Request{Sampler: "ddim", Strength: 0.5}},
		{"mask", Request{Sampler: "ddim", Mode: ModeInpaint, Image: img, Mask: mask[:5]}},
		{"noise", Request{Sampler: "ddim", Noise: img[:4]}},
		{"sampler", Request{Sampler: "ddim", Mode: ModeInpaint, Image: img, Mask: mask, Resample: 2}},
		{"resample", Request{Sampler: "ddpm", Resample: 2}},
		{"resample", Request{Sampler: "ddpm", Mode: ModeInpaint, Image: img, Mask: mask, Resample: 99}},
	} {
		_, err := l.Run(ctx, &shrink{}, bad.r, nil, nil)
		re, ok := err.(*RequestError)
		if !ok || re.Field != bad.field {
			t.Errorf("%+v: error %v, want one about %s", bad.r, err, bad.field)
		}
	}
}

// The page's likelihood is the CLI's: the same options by default.
func TestLikelihoodIsTheCLIs(t *testing.T) {
	l := fakeLoaded(t, false, -1)
	img := fakeImage(16)
	var frames []LikelihoodFrame
	got, err := l.Likelihood(context.Background(), &shrink{}, LikelihoodRequest{Image: img, Seed: 3}, func(f LikelihoodFrame) error {
		frames = append(frames, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// tools/diffuse likelihood's defaults
	want, err := sampler.Likelihood(context.Background(), l.SamplerModel(&shrink{}), f64(img),
		&sampler.LikelihoodOptions{RTol: 1e-5, ATol: 1e-5, Delta: 1e-3, Probes: 1, Seed: 3, Offset: 7})
	if err != nil {
		t.Fatal(err)
	}
	if got.BitsPerDim != want.BitsPerDim[0] || got.NFE != want.NFE {
		t.Errorf("bits/dim %v (%d calls), the CLI's %v (%d)", got.BitsPerDim, got.NFE, want.BitsPerDim[0], want.NFE)
	}
	if len(frames) == 0 || frames[len(frames)-1].DeltaLogP != got.DeltaLogP || frames[len(frames)-1].Progress < 0.99 {
		t.Errorf("frames %+v end away from the result's Δlog p %v", frames[len(frames)-1:], got.DeltaLogP)
	}
}

// Inversion of a sample of the shipped MNIST model and DDIM from the
// inverted noise reconstruct it. Measured RMSE (data range [-1, 1]): 0.17
// at 20 steps, 0.059 at 50 (first order in the step); bound 0.1 at 50.
func TestInvertMNISTReconstructs(t *testing.T) {
	data, err := os.ReadFile("../../weights/mnist.safetensors")
	if err != nil {
		t.Skip("weights/mnist.safetensors not found")
	}
	if testing.Short() {
		t.Skip("short")
	}
	l, err := Load(data, "", -1)
	if err != nil {
		t.Fatal(err)
	}
	net := cpu.NewDenoiser(l.Model)
	ctx := context.Background()
	x, err := l.Run(ctx, net, Request{Sampler: "ddim", Steps: invSteps, Seed: 7}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := l.Run(ctx, net, Request{Sampler: "ddim", Steps: invSteps, Mode: ModeInvert, Image: x.X}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := l.Run(ctx, net, Request{Sampler: "ddim", Steps: invSteps, Noise: inv.X}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var se float64
	for i := range x.X {
		d := float64(back.X[i] - x.X[i])
		se += d * d
	}
	rmse := math.Sqrt(se / float64(len(x.X)))
	t.Logf("MNIST, %d DDIM steps", invSteps)
	t.Logf(": reconstruction RMSE %.4g, max %.4g", rmse, maxDiff(back.X, x.X))
	if rmse > 0.1 {
		t.Errorf("reconstruction RMSE %.4g, bound 0.1", rmse)
	}
}

// invSteps is the inversion test's DDIM steps (the page's default).
const invSteps = 50
