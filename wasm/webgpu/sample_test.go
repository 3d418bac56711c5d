//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/sampler"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// TestSampleDDIM checks the GPU-resident DDIM loop against core/sampler's
// DDIM driving the same GPU network, so only the sampler arithmetic differs
// (float32 state on the GPU, float64 on the CPU): deterministic and
// stochastic (η = 1, the CPU sampler's noise), guided, ε- and
// v-prediction, with and without clipping.
func TestSampleDDIM(t *testing.T) {
	d := testDevice(t)
	dn, f := smallestDenoiser(t, d)
	defer dn.Release()
	const B = 2
	cond, _ := f.m.Conditional()
	for _, c := range []struct {
		name, sched string
		eta, w      float64
	}{
		{"eps", `{"prediction_type": "epsilon", "clip_sample": false}`, 0, 0},
		{"v_clip_eta1_guided", `{"prediction_type": "v_prediction", "clip_sample": true, "use_clipped_model_output": true}`, 1, 2.5},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := schedule.Parse([]byte(c.sched))
			if err != nil {
				t.Fatal(err)
			}
			// 8x8 samples: the network is convolutional, and SwiftShader is slow.
			m := &sampler.Model{Net: dn, Schedule: s, Shape: []int{f.m.InShape()[0], 8, 8}, NullClass: -1}
			o := &sampler.Options{Steps: 3, Eta: c.eta, Seed: 42, FirstSample: 5}
			if cond {
				o.Class = []int{3, 7}
				if c.w != 0 {
					o.Guidance = c.w
					m.NullClass = 0 // any label will do for the arithmetic
				}
			} else if c.w != 0 {
				t.Skip("guidance needs a class-conditional fixture")
			}
			noise := sampler.InitialNoise(o.Seed, o.FirstSample, B, m.Shape)
			want, err := sampler.DDIM(context.Background(), m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			steps := 0
			o.Progress = func(sampler.Step) error { steps++; return nil }
			got, err := dn.SampleDDIM(context.Background(), m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			if steps != 3 || got.NFE != want.NFE {
				t.Errorf("%d progress calls and %d evaluations, want 3 and %d", steps, got.NFE, want.NFE)
			}
			g32, w32 := make([]float32, len(got.X)), make([]float32, len(want.X))
			for i := range got.X {
				g32[i], w32[i] = float32(got.X[i]), float32(want.X[i])
			}
			e := nmse(g32, w32)
			t.Logf("NMSE vs core/sampler.DDIM %.3g", e)
			if !(e <= 1e-9) {
				t.Errorf("NMSE %.3g over 1e-9", e)
			}
		})
	}
}

// TestSample checks every GPU-resident sampler against the core/sampler
// sampler of the same name driving the same GPU network (so only the
// sampler arithmetic differs: float32 on the GPU, float64 on the CPU), with
// stochastic, guided, v- and sample-prediction and clipped cases spread
// over them; and the previews: Progress is called for every evaluation, in
// order, with X and X0 exactly at the evaluations Preview picks (the
// default: every DefaultPreviewEvery-th and the last), equal to the CPU
// sampler's.
func TestSample(t *testing.T) {
	d := testDevice(t)
	dn, f := smallestDenoiser(t, d)
	defer dn.Release()
	for _, c := range residentCases() {
		t.Run(c.name, func(t *testing.T) {
			if !dn.Supports(c.name) {
				t.Fatalf("Supports(%q) is false", c.name)
			}
			m, o, noise := c.setup(t, dn, f)
			var cpuSteps []sampler.Step
			o.Progress = recordSteps(&cpuSteps)
			want, err := sampler.Run(context.Background(), c.name, m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			var gpuSteps []sampler.Step
			o.Progress = func(st sampler.Step) error { gpuSteps = append(gpuSteps, st); return nil }
			o.Preview = c.preview
			got, err := dn.Sample(context.Background(), c.name, m, noise, o)
			if err != nil {
				t.Fatal(err)
			}
			if e := nmse64(got.X, want.X); !(e <= 1e-9) {
				t.Errorf("NMSE vs core/sampler %.3g over 1e-9", e)
			} else {
				t.Logf("NMSE vs core/sampler %.3g (%d evaluations)", e, got.NFE)
			}
			if got.NFE != want.NFE || len(gpuSteps) != len(cpuSteps) {
				t.Fatalf("%d evaluations, %d progress calls; want %d and %d", got.NFE, len(gpuSteps), want.NFE, len(cpuSteps))
			}
			checkProgress(t, c.name, gpuSteps, cpuSteps, c.preview)
		})
	}
}

// sampleCase is one run that the GPU tests compare with core/sampler's:
// sampler name on schedule sched, its steps, η, guidance w (where the
// fixture is class-conditional), the previews to read back (nil: the
// default) and the NMSE bound on the result (0: 1e-9).
type sampleCase struct {
	name, sched string
	steps       int
	eta, w      float64
	preview     func(int, int) bool
	tol         float64
}

// pickPreviews reads back evaluations 1 and 3.
func pickPreviews(i, _ int) bool { return i == 1 || i == 3 }

// residentCases are the samplers with a GPU-resident loop (Denoiser.Sample),
// with stochastic, guided, v- and sample-prediction and clipped cases
// spread over them. TestSpaceSamplers runs them too.
func residentCases() []sampleCase {
	return []sampleCase{
		{"ddim", `{"prediction_type": "sample", "clip_sample": true}`, 3, 0.5, 0, pickPreviews, 0},
		{"ddpm", `{"prediction_type": "epsilon", "clip_sample": true, "variance_type": "fixed_large"}`, 3, 0, 3, nil, 0},
		{"euler", `{"prediction_type": "v_prediction", "clip_sample": false}`, 3, 0, 2, pickPreviews, 0},
		{"euler_ancestral", `{"prediction_type": "epsilon", "clip_sample": false}`, 3, 0, 0, nil, 0},
		{"heun", `{"prediction_type": "epsilon", "clip_sample": false}`, 3, 0, 1.5, pickPreviews, 0},
		{"dpmpp_2m", `{"prediction_type": "epsilon", "clip_sample": false, "lower_order_final": false}`, 4, 0, 2.5, pickPreviews, 0},
		{"dpmpp_3m", `{"prediction_type": "v_prediction", "clip_sample": false, "lower_order_final": false, "solver_type": "heun"}`, 4, 0, 0, nil, 0},
		{"dpmpp_3m_diffusers", `{"prediction_type": "epsilon", "clip_sample": false, "lower_order_final": false}`, 4, 0, 0, pickPreviews, 0},
		// The SDE samplers: a VP (discrete) and a VE schedule; pc's default
		// previews fall on a Langevin evaluation (index 4) and the last.
		{"em", `{"prediction_type": "v_prediction", "clip_sample": true}`, 3, 0, 2, pickPreviews, 0},
		{"pc", veSched, 3, 0, 1.5, nil, 0},
	}
}

// setup makes c's model (net on an 8×8 input of fixture f), options
// (seed 11 from sample 3; labels 1 and 4 where f is class-conditional,
// guided by c.w) and starting noise for a batch of 2.
func (c sampleCase) setup(t *testing.T, net model.Denoiser, f fixture) (*sampler.Model, *sampler.Options, []float64) {
	t.Helper()
	s, err := schedule.Parse([]byte(c.sched))
	if err != nil {
		t.Fatal(err)
	}
	m := &sampler.Model{Net: net, Schedule: s, Shape: []int{f.m.InShape()[0], 8, 8}, NullClass: -1}
	o := &sampler.Options{Steps: c.steps, Eta: c.eta, Seed: 11, FirstSample: 3}
	if cond, _ := f.m.Conditional(); cond {
		o.Class = []int{1, 4}
		if c.w != 0 {
			o.Guidance = c.w
			m.NullClass = 0
		}
	}
	return m, o, sampler.InitialNoise(o.Seed, o.FirstSample, 2, m.Shape)
}

// recordSteps is a Progress that keeps a copy of every step in *steps.
func recordSteps(steps *[]sampler.Step) func(sampler.Step) error {
	return func(st sampler.Step) error {
		st.X, st.X0 = append([]float64(nil), st.X...), append([]float64(nil), st.X0...)
		*steps = append(*steps, st)
		return nil
	}
}

// TestSampleDeviceLost destroys the device in the middle of a DPM-Solver++
// run (whose checkpoints carry history): Sample must fail with an
// *InterruptedError (ErrDeviceLost) holding a checkpoint from a preview
// read back before the loss, and finishing from it on the CPU backend must
// give the run's undisturbed result. (Its own device: the shared one must
// survive.)
func TestSampleDeviceLost(t *testing.T) {
	const name = "dpmpp_2m"
	o := &sampler.Options{Steps: 7, Seed: 5}
	fr := newFaultRig(t, name, epsSched, o, 2, o.Seed)
	d, dn, m, noise, want := fr.d, fr.dn, fr.m, fr.noise, fr.want
	o.Preview = func(i, total int) bool { return i%2 == 1 }
	ie := lostAt(t, d, dn, name, m, noise, o, 3)
	if c := ie.Checkpoint; c.Step != 3 || len(c.History) != 1 || c.NFE != 3 {
		t.Errorf("checkpoint at step %d with %d predictions and %d evaluations, want the preview of evaluation 3: step 3, 1, 3",
			c.Step, len(c.History), c.NFE)
	}
	got, resumed := finishOnCPU(t, ie, m, noise, o)
	if len(resumed) == 0 || resumed[0] != ie.Checkpoint.Step || got.NFE != want.NFE {
		t.Errorf("finished with progress %v and %d evaluations, want from %d and %d", resumed, got.NFE, ie.Checkpoint.Step, want.NFE)
	}
	e := nmse64(got.X, want.X)
	t.Logf("GPU to step %d, then CPU: NMSE vs an undisturbed CPU run %.3g", ie.Checkpoint.Step, e)
	if !(e <= 1e-9) {
		t.Errorf("NMSE %.3g over 1e-9", e)
	}

	// On the lost device a run fails at once, with the start as its
	// checkpoint; an Euler-type one (x/α state) finishes on the CPU too.
	o.Progress = nil
	want, err := sampler.Run(context.Background(), "heun", m, noise, o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dn.Sample(context.Background(), "heun", m, noise, o)
	if !errors.As(err, &ie) || ie.Checkpoint.Step != 0 {
		t.Fatalf("Sample on a lost device: %v, want an InterruptedError at step 0", err)
	}
	if got, err = ie.Finish(context.Background(), m, noise, o); err != nil {
		t.Fatal(err)
	}
	if e := nmse64(got.X, want.X); !(e <= 1e-20) {
		t.Errorf("heun from the start checkpoint: NMSE %.3g vs a CPU run", e)
	}
}

// TestSampleGPUError injects WebGPU errors into the middle of a
// DPM-Solver++ run (previews at evaluations 1, 3, 5, ...), into the
// network evaluation 3: a dispatch over the workgroup limit (a
// validation error: the step's commands do not run) and a
// maxBufferSize buffer that does not allocate, into which the step copies
// (out of memory, and the copy invalid). Sample must fail as on device
// loss, with an *InterruptedError whose checkpoint is the preview of
// evaluation 1 (the one at 3 comes after the failed commands), carrying the
// *Error; finishing on the CPU must give the undisturbed run's result; and
// the device must still work: the same run without the fault matches too.
func TestSampleGPUError(t *testing.T) {
	const name = "dpmpp_2m"
	o := &sampler.Options{Steps: 7, Seed: 5}
	fr := newFaultRig(t, name, epsSched, o, 2, o.Seed)
	defer fr.d.Destroy()
	d, dn, m, noise, want := fr.d, fr.dn, fr.m, fr.noise, fr.want
	o.Preview = func(i, total int) bool { return i%2 == 1 }
	defer func() { testHookNet = nil }()
	for _, c := range []struct {
		kind   gpu.ErrorKind
		inject func(sp *gpuSpace, e *gpu.Encoder)
	}{
		{gpu.Validation, func(sp *gpuSpace, e *gpu.Encoder) {
			e.Dispatch(sp.pipes["lincomb"], sp.bgs[0], uint32(d.limits.MaxComputeWorkgroupsPerDimension+1), 1, 1)
		}},
		{gpu.OutOfMemory, func(sp *gpuSpace, e *gpu.Encoder) {
			big := sp.buffer("test: too big", d.gpu.Limits.MaxBufferSize, gpu.MapRead|gpu.CopyDst)
			e.Copy(sp.arena, 0, big, 0, 16)
		}},
	} {
		t.Run(string(c.kind), func(t *testing.T) {
			if c.kind == gpu.OutOfMemory {
				probe := d.gpu.Scoped(context.Background(), "probe", func() {
					d.gpu.CreateBuffer("probe", d.gpu.Limits.MaxBufferSize, gpu.MapRead|gpu.CopyDst).Destroy()
				})
				var ge *Error
				if !errors.As(probe, &ge) || ge.Kind != gpu.OutOfMemory {
					t.Skipf("a maxBufferSize buffer gives %v here, not out of memory", probe)
				}
			}
			ev := 0
			testHookNet = func(sp *gpuSpace, e *gpu.Encoder) {
				if ev == 3 {
					c.inject(sp, e)
				}
				ev++
			}
			var seen []int
			o.Progress = func(st sampler.Step) error { seen = append(seen, st.Index); return nil }
			_, err := dn.Sample(context.Background(), name, m, noise, o)
			testHookNet = nil
			var ie *InterruptedError
			var ge *Error
			if !errors.As(err, &ie) || !errors.As(err, &ge) || ge.Kind != c.kind || errors.Is(err, ErrDeviceLost) || !IsFault(err) {
				t.Fatalf("%s with a %s error at evaluation 3: %v, want an InterruptedError carrying it", name, c.kind, err)
			}
			ck := ie.Checkpoint
			t.Logf("%v (progress calls %v; checkpoint at step %d after %d evaluations)", err, seen, ck.Step, ck.NFE)
			if ck.Step != 1 || len(ck.History) != 1 || ck.NFE != 1 {
				t.Errorf("checkpoint at step %d with %d predictions and %d evaluations, want the preview of evaluation 1: step 1, 1, 1",
					ck.Step, len(ck.History), ck.NFE)
			}
			got, resumed := finishOnCPU(t, ie, m, noise, o)
			if len(resumed) == 0 || resumed[0] != ck.Step || got.NFE != want.NFE {
				t.Errorf("finished with progress %v and %d evaluations, want from %d and %d", resumed, got.NFE, ck.Step, want.NFE)
			}
			if e := nmse64(got.X, want.X); !(e <= 1e-9) {
				t.Errorf("GPU to step %d, then CPU: NMSE %.3g vs an undisturbed CPU run, over 1e-9", ck.Step, e)
			}
			// The device is still usable.
			o.Progress = nil
			again, err := dn.Sample(context.Background(), name, m, noise, o)
			if err != nil {
				t.Fatalf("the next run: %v", err)
			}
			if e := nmse64(again.X, want.X); !(e <= 1e-9) {
				t.Errorf("the next run: NMSE %.3g vs the CPU run, over 1e-9", e)
			}
		})
	}
}

// TestSampleUncapturedError: a WebGPU error raised outside any error scope
// (here an invalid buffer, created before the run) reaches the device's
// uncapturederror listener; the next run must not ignore it: Sample fails
// as on device loss, with the error, and the CPU finishes the run from its
// start; a per-call Denoise fails with the next such error (a fault the
// app falls back on) and the one after works.
func TestSampleUncapturedError(t *testing.T) {
	o := &sampler.Options{Steps: 3, Seed: 9}
	fr := newFaultRig(t, "euler", epsSched, o, 1, o.Seed)
	defer fr.d.Destroy()
	d, dn, m, noise, want := fr.d, fr.dn, fr.m, fr.noise, fr.want
	uncaptured := func() {
		t.Helper()
		n := d.gpu.UncapturedCount()
		d.gpu.CreateBuffer("test: no usage", 16, 0)
		for i := 0; i < 200 && d.gpu.UncapturedCount() == n; i++ {
			if err := d.gpu.WorkDone(context.Background()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		if d.gpu.UncapturedCount() == n {
			t.Fatal("the uncaptured error was not reported")
		}
	}
	uncaptured()
	_, err := dn.Sample(context.Background(), "euler", m, noise, o)
	var ie *InterruptedError
	var ge *Error
	if !errors.As(err, &ie) || !errors.As(err, &ge) || ge.What != "uncaptured" || ie.Checkpoint.Step != 0 {
		t.Fatalf("Sample after an uncaptured error: %v, want an InterruptedError at step 0 carrying it", err)
	}
	t.Log(err)
	got, err := ie.Finish(context.Background(), m, noise, o)
	if err != nil {
		t.Fatal(err)
	}
	if e := nmse64(got.X, want.X); !(e <= 1e-20) {
		t.Errorf("finished from the start on the CPU: NMSE %.3g vs a CPU run", e)
	}

	x := tensor.New(1, m.Shape[0], m.Shape[1], m.Shape[2])
	class := o.Class // the rig's label, nil for an unconditional fixture
	uncaptured()
	if _, err := dn.Denoise(x, []float32{500}, class); !errors.As(err, &ge) || ge.What != "uncaptured" || !IsFault(err) {
		t.Fatalf("Denoise after an uncaptured error: %v, want the error", err)
	}
	if _, err := dn.Denoise(x, []float32{500}, class); err != nil {
		t.Fatalf("the next Denoise: %v", err)
	}
}

// TestInvertDDIM checks Denoiser.InvertDDIM against core/sampler.InvertDDIM
// driving the same GPU network (ε and v prediction, guided, previews
// picked and default), and the previews against the CPU's progress.
func TestInvertDDIM(t *testing.T) {
	d := testDevice(t)
	dn, f := smallestDenoiser(t, d)
	defer dn.Release()
	const B = 2
	cond, _ := f.m.Conditional()
	for _, c := range []struct {
		name, sched string
		w           float64
		preview     func(int, int) bool
	}{
		{"eps", `{"prediction_type": "epsilon", "clip_sample": true}`, 0, func(i, _ int) bool { return i == 0 || i == 2 }},
		{"v_guided", `{"prediction_type": "v_prediction", "clip_sample": false}`, 2, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := schedule.Parse([]byte(c.sched))
			if err != nil {
				t.Fatal(err)
			}
			m := &sampler.Model{Net: dn, Schedule: s, Shape: []int{f.m.InShape()[0], 8, 8}, NullClass: -1}
			o := &sampler.Options{Steps: 4}
			if cond {
				o.Class = []int{2, 5}
				if c.w != 0 {
					o.Guidance = c.w
					m.NullClass = 0
				}
			}
			// Data-like input: bounded, not unit noise.
			data := sampler.InitialNoise(4, 0, B, m.Shape)
			for i, v := range data {
				data[i] = math.Tanh(v)
			}
			var cpuSteps, gpuSteps []sampler.Step
			o.Progress = recordSteps(&cpuSteps)
			want, err := sampler.InvertDDIM(context.Background(), m, data, o)
			if err != nil {
				t.Fatal(err)
			}
			o.Progress = func(st sampler.Step) error { gpuSteps = append(gpuSteps, st); return nil }
			o.Preview = c.preview
			got, err := dn.InvertDDIM(context.Background(), m, data, o)
			if err != nil {
				t.Fatal(err)
			}
			e := nmse64(got.X, want.X)
			t.Logf("NMSE vs core/sampler.InvertDDIM %.3g", e)
			if !(e <= 1e-9) {
				t.Errorf("NMSE %.3g over 1e-9", e)
			}
			if got.NFE != want.NFE || len(gpuSteps) != len(cpuSteps) {
				t.Fatalf("%d evaluations, %d progress calls; want %d and %d", got.NFE, len(gpuSteps), want.NFE, len(cpuSteps))
			}
			checkProgress(t, "inversion", gpuSteps, cpuSteps, c.preview)
		})
	}
}

// TestSampleDeviceLostSDE destroys the device in the middle of a
// predictor–corrector run (previews on predictor and on Langevin
// evaluations; only the predictor's are checkpoints, at grid step
// boundaries): Sample must fail with an *InterruptedError whose checkpoint
// is at a step boundary, and finishing on the CPU (same noise keys) must
// give the undisturbed CPU run's result. Then em and DDIM inversion on the
// lost device fail at once and finish on the CPU from their start.
func TestSampleDeviceLostSDE(t *testing.T) {
	o := &sampler.Options{Steps: 5, Seed: 8}
	fr := newFaultRig(t, "pc", epsSched, o, 6, o.Seed)
	d, dn, m, noise, want := fr.d, fr.dn, fr.m, fr.noise, fr.want
	// Previews at 1 (predictor, step 0), 2 (Langevin, step 1), 4, 5, ...;
	// the loss at the second one: its state is mid-step, so the
	// checkpoint is still the first's, step 1.
	o.Preview = func(i, total int) bool { return i%3 != 0 }
	ie := lostAt(t, d, dn, "pc", m, noise, o, 2)
	c := ie.Checkpoint
	if c.Step != 1 || c.NFE != 2 {
		t.Errorf("checkpoint at step %d after %d evaluations, want step 1 after 2", c.Step, c.NFE)
	}
	got, resumed := finishOnCPU(t, ie, m, noise, o)
	if len(resumed) == 0 || resumed[0] != c.NFE || got.NFE != want.NFE {
		t.Errorf("finished with progress %v and %d evaluations, want from %d and %d", resumed, got.NFE, c.NFE, want.NFE)
	}
	e := nmse64(got.X, want.X)
	t.Logf("pc: GPU to step %d, then CPU: NMSE vs an undisturbed CPU run %.3g", c.Step, e)
	if !(e <= 1e-9) {
		t.Errorf("NMSE %.3g over 1e-9", e)
	}

	o.Progress = nil
	want, err := sampler.Run(context.Background(), "em", m, noise, o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dn.Sample(context.Background(), "em", m, noise, o)
	if !errors.As(err, &ie) || ie.Checkpoint.Step != 0 {
		t.Fatalf("em on a lost device: %v, want an InterruptedError at step 0", err)
	}
	if got, err = ie.Finish(context.Background(), m, noise, o); err != nil {
		t.Fatal(err)
	}
	if e := nmse64(got.X, want.X); !(e <= 1e-20) {
		t.Errorf("em from the start checkpoint: NMSE %.3g vs a CPU run", e)
	}
	data := noise
	want, err = sampler.InvertDDIM(context.Background(), m, data, o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dn.InvertDDIM(context.Background(), m, data, o)
	if !errors.As(err, &ie) || ie.Checkpoint.Step != 0 {
		t.Fatalf("InvertDDIM on a lost device: %v, want an InterruptedError at step 0", err)
	}
	if got, err = ie.Finish(context.Background(), m, data, o); err != nil {
		t.Fatal(err)
	}
	if e := nmse64(got.X, want.X); !(e <= 1e-20) {
		t.Errorf("InvertDDIM from the start checkpoint: NMSE %.3g vs a CPU run", e)
	}
}

func nmse64(got, want []float64) float64 {
	g32, w32 := make([]float32, len(got)), make([]float32, len(want))
	for i := range got {
		g32[i] = float32(got[i])
	}
	for i := range want {
		w32[i] = float32(want[i])
	}
	if len(got) != len(want) {
		return math.Inf(1)
	}
	return nmse(g32, w32)
}

// checkProgress compares a GPU run's progress calls with the CPU run's:
// the same index, total, evaluations and point at every call, X and X0
// exactly at the evaluations preview picks (nil: every
// DefaultPreviewEvery-th and the last), within 1e-9 NMSE of the CPU's.
func checkProgress(t *testing.T, label string, gpuSteps, cpuSteps []sampler.Step, preview func(i, total int) bool) {
	t.Helper()
	if preview == nil {
		preview = func(i, total int) bool { return i%DefaultPreviewEvery == DefaultPreviewEvery-1 || i == total-1 }
	}
	var worst float64
	for i, g := range gpuSteps {
		w := cpuSteps[i]
		if g.Index != i || g.Total != w.Total || g.NFE != w.NFE || g.Point != w.Point {
			t.Errorf("%s: progress %d: %+v, want %+v", label, i, g, w)
		}
		if preview(i, w.Total) != (g.X != nil) || (g.X == nil) != (g.X0 == nil) {
			t.Errorf("%s: progress %d: X given %v, X0 %v, want %v", label, i, g.X != nil, g.X0 != nil, preview(i, w.Total))
			continue
		}
		if g.X != nil {
			worst = max(worst, nmse64(g.X, w.X), nmse64(g.X0, w.X0))
		}
	}
	t.Logf("%s: previews: worst NMSE of X, X0 vs the CPU trajectory %.3g", label, worst)
	if !(worst <= 1e-9) {
		t.Errorf("%s: preview NMSE %.3g over 1e-9", label, worst)
	}
}

// lostAt runs sampler name on the GPU and destroys d from the progress
// call of evaluation `at`: the run must fail with an *InterruptedError that
// matches ErrDeviceLost, which it returns. It sets o.Progress.
func lostAt(t *testing.T, d *Device, dn *Denoiser, name string, m *sampler.Model, noise []float64, o *sampler.Options, at int) *InterruptedError {
	t.Helper()
	var seen []int
	o.Progress = func(st sampler.Step) error {
		seen = append(seen, st.Index)
		if st.Index == at {
			d.Destroy()
		}
		return nil
	}
	_, err := dn.Sample(context.Background(), name, m, noise, o)
	var ie *InterruptedError
	if !errors.As(err, &ie) || !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("%s with the device destroyed mid-run: %v, want an InterruptedError", name, err)
	}
	c := ie.Checkpoint
	t.Logf("%v (progress calls %v; checkpoint at step %d after %d evaluations)", err, seen, c.Step, c.NFE)
	return ie
}

// finishOnCPU finishes ie's run with m (a CPU model) and returns the
// result and the progress indices it reported. It sets o.Progress.
func finishOnCPU(t *testing.T, ie *InterruptedError, m *sampler.Model, noise []float64, o *sampler.Options) (*sampler.Result, []int) {
	t.Helper()
	var resumed []int
	o.Progress = func(st sampler.Step) error { resumed = append(resumed, st.Index); return nil }
	got, err := ie.Finish(context.Background(), m, noise, o)
	if err != nil {
		t.Fatal(err)
	}
	return got, resumed
}

// The fault tests' schedules: discrete with ε prediction, and a VE-SDE
// with score prediction.
const (
	epsSched = `{"prediction_type": "epsilon", "clip_sample": false}`
	veSched  = `{"sde": "ve", "prediction_type": "score", "sigma_max": 5}`
)

// faultRig is the setup of the tests that break a run (device loss, GPU
// errors): a device of the test's own (d), the smallest fixture's GPU
// denoiser on it (dn), a CPU model of the same network on schedule sched
// (m: one 8×8 sample, labelled class where the fixture is conditional, set
// in o), that sample's starting noise from noiseSeed, and want, the
// undisturbed CPU run of sampler name with o.
type faultRig struct {
	d     *Device
	dn    *Denoiser
	m     *sampler.Model
	noise []float64
	want  *sampler.Result
}

func newFaultRig(t *testing.T, name, sched string, o *sampler.Options, class int, noiseSeed uint64) *faultRig {
	t.Helper()
	d := ownDevice(t)
	dn, f := smallestDenoiser(t, d)
	s, err := schedule.Parse([]byte(sched))
	if err != nil {
		t.Fatal(err)
	}
	m := &sampler.Model{Net: cpu.NewDenoiser(f.m), Schedule: s, Shape: []int{f.m.InShape()[0], 8, 8}, NullClass: -1}
	if cond, _ := f.m.Conditional(); cond {
		o.Class = []int{class}
	}
	noise := sampler.InitialNoise(noiseSeed, 0, 1, m.Shape)
	want, err := sampler.Run(context.Background(), name, m, noise, o)
	if err != nil {
		t.Fatal(err)
	}
	return &faultRig{d: d, dn: dn, m: m, noise: noise, want: want}
}
