//go:build js && wasm

// Command app is the Go side of the browser sampler. It runs inside a Web
// Worker (web/worker.js), never on the page's main thread, and exposes one
// global object to the worker's JavaScript:
//
//	diffuseGo.samplers()                       -> JSON string: the sampler registry
//	diffuseGo.load(key, bytes, sha256, size, backend)
//	                                           -> Promise<JSON string>: model info + backend
//	diffuseGo.import(files, optionsJSON, backend, onPhase)
//	                                           -> Promise<{name, bytes: Uint8Array, info: JSON string, converted}>:
//	                                              a visitor's checkpoint (files: [{path, bytes}]),
//	                                              converted (engine.Import) and loaded as name
//	                                              ("user-" and its SHA-256's first 12 hex digits);
//	                                              onPhase("build") when the backend is being set up
//	diffuseGo.sample(job, key, requestJSON, onFrame, imageEveryMs, keyframes)
//	                                           -> Promise<{x: Float32Array, shape, nfe, totalMs}>
//	diffuseGo.field(key, point, xs, class)     -> Promise<Float32Array>: predicted x0 at
//	                                              point {t, alpha, sigma, level} for xs
//	diffuseGo.plan(key, requestJSON)           -> Promise<JSON string>: {steps, evals, end}
//	                                              of the run the request asks for (engine.Plan)
//	diffuseGo.likelihood(job, key, requestJSON, onFrame)
//	                                           -> Promise<JSON string>: bits/dim of one image
//	                                              (engine.LikelihoodRequest/Result); onFrame gets
//	                                              {level, nfe, deltaLogP, progress} per ODE step
//	diffuseGo.cancel(job)                      cancels a running or queued job
//	diffuseGo.unload(key)                      forgets a model
//
// onFrame receives {index, total, nfe, t, alpha, sigma, level, stepMs,
// step, steps, progress, x, x0} after every network evaluation (step and
// steps: the sampler's grid step and their number, 0 for rk45; progress:
// the estimated fraction done); the result also carries steps and end, the
// noise point {t, alpha, sigma, level} of x; x and x0 (Float32Array, [B,C,H,W])
// are null on frames thinned out by imageEveryMs, except on the first and last
// frames and on `keyframes` evenly spaced ones (for a trajectory strip). Errors reject the promise
// with an Error whose `kind` is "user" (a message to show as is: a damaged
// file, a bad parameter), "cancelled" or "internal". A Go panic in any of
// these calls, or in the goroutine behind its promise, is recovered (guard,
// export): that call fails with kind "internal" and the panic's message,
// its stack goes to the console, and the worker keeps serving; unrecovered,
// it would end the Go program and the worker with every loaded model.
//
// On the WebGPU backend every sampler runs whole on the GPU, its vectors
// kept there (backend.Sample): images are read back only for the frames
// that carry them. If the device is lost mid-run, or WebGPU reports a
// validation, out-of-memory or internal error (in an error scope or as an
// uncaptured error), the job finishes on the CPU from the last step read
// back before the fault, and the frames from then on, and the result, say
// backend "cpu" (as when a per-call job fails over).
//
// Between steps the sampler yields to the worker's event loop (see yield), so
// cancel messages and other jobs are served while a long job runs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"syscall/js"

	"github.com/diffuse-web/diffuse/core/engine"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/schedule"
)

type loadedModel struct {
	l       *engine.Loaded
	backend *backend
}

var (
	mu     sync.Mutex
	models = map[string]*loadedModel{}
	jobs   = map[string]context.CancelFunc{}
)

func main() {
	api := js.Global().Get("Object").New()
	api.Set("samplers", export(func(args []js.Value) any {
		b, _ := json.Marshal(engine.Samplers())
		return string(b)
	}))
	api.Set("load", export(jsLoad))
	api.Set("import", export(jsImport))
	api.Set("sample", export(jsSample))
	api.Set("field", export(jsField))
	api.Set("plan", export(jsPlan))
	api.Set("likelihood", export(jsLikelihood))
	api.Set("cancel", export(func(args []js.Value) any {
		mu.Lock()
		defer mu.Unlock()
		if c, ok := jobs[args[0].String()]; ok {
			c()
		}
		return nil
	}))
	api.Set("unload", export(func(args []js.Value) any {
		mu.Lock()
		defer mu.Unlock()
		if m, ok := models[args[0].String()]; ok {
			m.backend.release()
			delete(models, args[0].String())
		}
		return nil
	}))
	js.Global().Set("diffuseGo", api)
	if ready := js.Global().Get("diffuseGoReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}

// export makes f a function JavaScript can call. f runs under guard: if it
// panics (a hostile argument of the wrong type, say), the call returns a
// rejected Promise of an Error of kind "internal" instead of ending the Go
// program, and with it the worker.
func export(f func(args []js.Value) any) js.Func {
	return js.FuncOf(func(this js.Value, args []js.Value) any {
		v, err := guard(func() (any, error) { return f(args), nil })
		if err != nil {
			return js.Global().Get("Promise").Call("reject", jsError(err))
		}
		return v
	})
}

// promise runs f in a goroutine and returns a JS Promise of its result; a
// panic in f rejects it with an Error of kind "internal" (guard).
func promise(f func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(this js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		executor.Release()
		go func() {
			v, err := guard(f)
			if err != nil {
				reject.Invoke(jsError(err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

func jsError(err error) js.Value {
	e := js.Global().Get("Error").New(err.Error())
	var pe *panicError
	switch {
	case errors.As(err, &pe):
		e.Set("kind", "internal")
	case errors.Is(err, context.Canceled):
		e.Set("kind", "cancelled")
	case engine.IsUserError(err), isBackendUserError(err):
		e.Set("kind", "user")
	default:
		e.Set("kind", "internal")
	}
	return e
}

// mark records a load phase on the page's Performance timeline through the
// worker's diffuseMark (web/worker.js), where there is one.
func mark(name string) {
	if f := js.Global().Get("diffuseMark"); f.Type() == js.TypeFunction {
		f.Invoke(name)
	}
}

// jsLoad(key, bytes Uint8Array, sha256, size, backend)
func jsLoad(args []js.Value) any {
	key := args[0].String()
	data := make([]byte, args[1].Get("length").Int())
	js.CopyBytesToGo(data, args[1])
	sha, size, want := args[2].String(), int64(args[3].Float()), args[4].String()
	return promise(func() (any, error) {
		l, err := engine.Load(data, sha, size)
		if err != nil {
			return nil, err
		}
		data = nil
		mark("weights-verified")
		b, err := pickBackend(context.Background(), want, l)
		if err != nil {
			return nil, err
		}
		mark("backend-chosen")
		mu.Lock()
		if old, ok := models[key]; ok {
			old.backend.release()
		}
		models[key] = &loadedModel{l: l, backend: b}
		mu.Unlock()
		out, _ := json.Marshal(struct {
			engine.Info
			Backend choice `json:"backend"`
		}{l.Info, b.choice})
		return string(out), nil
	})
}

// jsImport(files [{path, bytes}], optionsJSON, backend, onPhase): the page's
// "bring your own model". The files are copied into Go once and converted
// there (nothing leaves the machine); the converted file comes back for the
// worker to keep, so a reload goes through load without converting again.
func jsImport(args []js.Value) any {
	files := model.Files{}
	for i, n := 0, args[0].Length(); i < n; i++ {
		f := args[0].Index(i)
		b := f.Get("bytes")
		if b.Get("length").Int() > int(limits.MaxWeightsBytes) {
			return js.Global().Get("Promise").Call("reject", jsError(&engine.ImportError{Err: fmt.Errorf("%s: larger than the %s limit",
				f.Get("path").String(), limits.Bytes(limits.MaxWeightsBytes))}))
		}
		data := make([]byte, b.Get("length").Int())
		js.CopyBytesToGo(data, b)
		files[f.Get("path").String()] = data
	}
	optJSON, want, onPhase := args[1].String(), args[2].String(), args[3]
	return promise(func() (any, error) {
		var o engine.ImportOptions
		if err := json.Unmarshal([]byte(optJSON), &o); err != nil {
			return nil, &engine.ImportError{Err: fmt.Errorf("options: %w", err)}
		}
		data, converted, l, err := engine.Import(files, o)
		files = nil
		if err != nil {
			return nil, err
		}
		if onPhase.Type() == js.TypeFunction {
			onPhase.Invoke("build")
		}
		b, err := pickBackend(context.Background(), want, l)
		if err != nil {
			return nil, err
		}
		key := "user-" + l.Info.SHA256[:12]
		mu.Lock()
		if old, ok := models[key]; ok {
			old.backend.release()
		}
		models[key] = &loadedModel{l: l, backend: b}
		mu.Unlock()
		info, _ := json.Marshal(struct {
			engine.Info
			Backend choice `json:"backend"`
		}{l.Info, b.choice})
		u8 := js.Global().Get("Uint8Array").New(len(data))
		js.CopyBytesToJS(u8, data)
		o2 := js.Global().Get("Object").New()
		o2.Set("name", key)
		o2.Set("bytes", u8)
		o2.Set("info", string(info))
		o2.Set("converted", converted)
		return o2, nil
	})
}

// jsSample(job, key, requestJSON, onFrame, imageEveryMs, keyframes)
func jsSample(args []js.Value) any {
	job, key, reqJSON, onFrame := args[0].String(), args[1].String(), args[2].String(), args[3]
	every, keys := 0.0, 0
	if len(args) > 4 && args[4].Type() == js.TypeNumber {
		every = args[4].Float()
	}
	if len(args) > 5 && args[5].Type() == js.TypeNumber {
		keys = args[5].Int()
	}
	ctx, m, done := startJob(job, key)
	return promise(func() (any, error) {
		defer done()
		if m == nil {
			return nil, fmt.Errorf("model %q is not loaded", key)
		}
		var r engine.Request
		if err := json.Unmarshal([]byte(reqJSON), &r); err != nil {
			return nil, &engine.RequestError{Field: "request", Msg: err.Error()}
		}
		lastImage := time.Time{}
		want := func(i, total int) bool {
			if every <= 0 || i == 0 || (total > 0 && (i >= total-1 || isKeyframe(i, total, keys))) ||
				time.Since(lastImage) >= time.Duration(every*float64(time.Millisecond)) {
				lastImage = time.Now()
				return true
			}
			return false
		}
		res, err := m.l.Run(ctx, jobNet{m.backend, ctx}, r, want, func(f *engine.Frame) error {
			if onFrame.Type() == js.TypeFunction {
				o := js.Global().Get("Object").New()
				o.Set("index", f.Index)
				o.Set("total", f.Total)
				o.Set("nfe", f.NFE)
				o.Set("t", f.Point.T)
				o.Set("alpha", f.Point.Alpha)
				o.Set("sigma", f.Point.Sigma)
				o.Set("level", f.Point.Level)
				o.Set("stepMs", f.StepMs)
				o.Set("step", f.Step)
				o.Set("steps", f.Steps)
				o.Set("progress", f.Progress)
				o.Set("backend", m.backend.current())
				o.Set("x", float32Array(f.X))
				o.Set("x0", float32Array(f.X0))
				onFrame.Invoke(o)
			}
			yield()
			return ctx.Err()
		})
		if err != nil {
			return nil, err
		}
		o := js.Global().Get("Object").New()
		o.Set("x", float32Array(res.X))
		shape := make([]any, len(res.Shape))
		for i, v := range res.Shape {
			shape[i] = v
		}
		o.Set("shape", shape)
		o.Set("nfe", res.NFE)
		o.Set("totalMs", res.TotalMs)
		o.Set("backend", m.backend.current())
		o.Set("steps", res.Steps)
		o.Set("end", pointJS(res.End))
		return o, nil
	})
}

func pointJS(p schedule.Point) js.Value {
	o := js.Global().Get("Object").New()
	o.Set("t", p.T)
	o.Set("alpha", p.Alpha)
	o.Set("sigma", p.Sigma)
	o.Set("level", p.Level)
	return o
}

// jsPlan(key, requestJSON): the run a request asks for, without running it.
func jsPlan(args []js.Value) any {
	key, reqJSON := args[0].String(), args[1].String()
	mu.Lock()
	m := models[key]
	mu.Unlock()
	return promise(func() (any, error) {
		if m == nil {
			return nil, fmt.Errorf("model %q is not loaded", key)
		}
		var r engine.Request
		if err := json.Unmarshal([]byte(reqJSON), &r); err != nil {
			return nil, &engine.RequestError{Field: "request", Msg: err.Error()}
		}
		p, err := m.l.Plan(r)
		if err != nil {
			return nil, err
		}
		type point struct {
			T     float64 `json:"t"`
			Alpha float64 `json:"alpha"`
			Sigma float64 `json:"sigma"`
			Level float64 `json:"level"`
		}
		out, _ := json.Marshal(struct {
			Steps int   `json:"steps"`
			Evals int   `json:"evals"`
			End   point `json:"end"`
		}{p.Steps, p.Evals, point{p.End.T, p.End.Alpha, p.End.Sigma, p.End.Level}})
		return string(out), nil
	})
}

// isKeyframe reports whether step i of total is one of n evenly spaced
// steps from the first to the last.
func isKeyframe(i, total, n int) bool {
	if n < 2 || total < 2 {
		return false
	}
	for k := 0; k < n; k++ {
		if (k*(total-1)+(n-1)/2)/(n-1) == i {
			return true
		}
	}
	return false
}

// jsField(key, point, xs Float32Array, class)
func jsField(args []js.Value) any {
	key, pt, xsJS := args[0].String(), args[1], args[2]
	p := schedule.Point{T: pt.Get("t").Float(), Alpha: pt.Get("alpha").Float(), Sigma: pt.Get("sigma").Float(), Level: pt.Get("level").Float()}
	u8 := js.Global().Get("Uint8Array").New(xsJS.Get("buffer"), xsJS.Get("byteOffset"), xsJS.Get("byteLength"))
	xs := make([]float32, xsJS.Get("length").Int())
	if len(xs) > 0 {
		js.CopyBytesToGo(unsafe.Slice((*byte)(unsafe.Pointer(&xs[0])), 4*len(xs)), u8)
	}
	var class *int
	if len(args) > 3 && args[3].Type() == js.TypeNumber {
		c := args[3].Int()
		class = &c
	}
	mu.Lock()
	m := models[key]
	mu.Unlock()
	return promise(func() (any, error) {
		if m == nil {
			return nil, fmt.Errorf("model %q is not loaded", key)
		}
		x0, err := m.l.Field(m.backend.net, p, xs, class)
		if err != nil {
			return nil, err
		}
		return float32Array(x0), nil
	})
}

// float32Array copies v into a new JS Float32Array (null for nil).
func float32Array(v []float32) js.Value {
	if v == nil {
		return js.Null()
	}
	u8 := js.Global().Get("Uint8Array").New(4 * len(v))
	if len(v) > 0 {
		js.CopyBytesToJS(u8, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
	}
	return js.Global().Get("Float32Array").New(u8.Get("buffer"))
}

// yield lets the worker's event loop run (messages, other jobs' callbacks)
// before the calling goroutine goes on: a macrotask through the worker's
// diffuseYield (a MessageChannel round trip), falling back to a 0 ms timer.
func yield() {
	done := make(chan struct{})
	var cb js.Func
	cb = js.FuncOf(func(this js.Value, args []js.Value) any {
		cb.Release()
		close(done)
		return nil
	})
	if y := js.Global().Get("diffuseYield"); y.Type() == js.TypeFunction {
		y.Invoke(cb)
	} else {
		js.Global().Call("setTimeout", cb, 0)
	}
	<-done
}

// startJob registers a cancellable job (jsCancel finds it by id) on the
// model loaded under key (nil when none is); done unregisters and cancels it.
func startJob(job, key string) (ctx context.Context, m *loadedModel, done func()) {
	ctx, cancel := context.WithCancel(context.Background())
	mu.Lock()
	jobs[job] = cancel
	m = models[key]
	mu.Unlock()
	return ctx, m, func() {
		mu.Lock()
		delete(jobs, job)
		mu.Unlock()
		cancel()
	}
}

// jsLikelihood(job, key, requestJSON, onFrame): engine.Likelihood, the
// CLI's estimate, on the model's backend, cancellable like a sample.
func jsLikelihood(args []js.Value) any {
	job, key, reqJSON, onFrame := args[0].String(), args[1].String(), args[2].String(), args[3]
	ctx, m, done := startJob(job, key)
	return promise(func() (any, error) {
		defer done()
		if m == nil {
			return nil, fmt.Errorf("model %q is not loaded", key)
		}
		var r engine.LikelihoodRequest
		if err := json.Unmarshal([]byte(reqJSON), &r); err != nil {
			return nil, &engine.RequestError{Field: "request", Msg: err.Error()}
		}
		res, err := m.l.Likelihood(ctx, jobNet{m.backend, ctx}, r, func(f engine.LikelihoodFrame) error {
			if onFrame.Type() == js.TypeFunction {
				b, _ := json.Marshal(f)
				onFrame.Invoke(string(b))
			}
			yield()
			return ctx.Err()
		})
		if err != nil {
			return nil, err
		}
		out, _ := json.Marshal(res)
		return string(out), nil
	})
}
