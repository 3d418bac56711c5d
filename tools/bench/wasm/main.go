//go:build js && wasm

// Command wasm is the Go side of the benchmark page (tools/bench/page) and of
// the Node GPU runner (tools/bench/node.mjs). It links the project's
// backends directly, not through the app's worker, and exposes one global:
//
//	diffuseBench.load(name, bytes, batches)    -> Promise<JSON>: model info, FLOPs per batch size
//	diffuseBench.open(name, backend)           -> Promise<JSON>: {ms, detail}; backend "webgpu" or "simd"
//	diffuseBench.run(name, backend, x, t, class, warmup, iters)
//	                                           -> Promise<{times: number[] (ms), out: Float32Array}>
//	diffuseBench.sample(name, backend, batch, steps, seed)
//	                                           -> Promise<{ms, nfe, x: Float32Array}>
//	diffuseBench.setJS(key, fn)                registers fn(x, shape, t, class) -> Promise<Float32Array>
//	                                           as backend "js:"+key (onnxruntime-web driven by our sampler)
//	diffuseBench.close(name, backend)
//
// x and t are Float32Arrays, class an Int32Array or null. A full sample is
// DDIM (η = 0) run through the request engine (core/engine) as the app runs
// it: over the backend's Denoiser, or on "webgpu" the same sampler.DDIM with
// its vectors on the GPU (webgpu.Denoiser's Space).
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
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/tools/bench/flops"
	"github.com/diffuse-web/diffuse/wasm/simd"
	"github.com/diffuse-web/diffuse/wasm/webgpu"
)

type loaded struct {
	m    *model.Model
	eng  *engine.Loaded // the request engine's view: samples run as the app runs them
	nets map[string]model.Denoiser
}

var (
	mu      sync.Mutex
	models  = map[string]*loaded{}
	jsNets  = map[string]js.Value{}
	gpuDev  *webgpu.Device
	gpuErr  error
	gpuOnce sync.Once
)

func main() {
	api := js.Global().Get("Object").New()
	api.Set("load", js.FuncOf(jsLoad))
	api.Set("open", js.FuncOf(jsOpen))
	api.Set("run", js.FuncOf(jsRun))
	api.Set("sample", js.FuncOf(jsSample))
	api.Set("setJS", js.FuncOf(func(_ js.Value, a []js.Value) any {
		mu.Lock()
		jsNets[a[0].String()] = a[1]
		mu.Unlock()
		return nil
	}))
	api.Set("close", js.FuncOf(jsClose))
	js.Global().Set("diffuseBench", api)
	if r := js.Global().Get("diffuseBenchReady"); r.Type() == js.TypeFunction {
		r.Invoke()
	}
	select {}
}

func promise(f func() (any, error)) js.Value {
	var ex js.Func
	ex = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		ex.Release()
		go func() {
			v, err := f()
			if err != nil {
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return js.Global().Get("Promise").New(ex)
}

func get(name string) (*loaded, error) {
	mu.Lock()
	defer mu.Unlock()
	l, ok := models[name]
	if !ok {
		return nil, fmt.Errorf("model %q is not loaded", name)
	}
	return l, nil
}

// load(name, bytes, batches)
func jsLoad(_ js.Value, a []js.Value) any {
	name := a[0].String()
	data := make([]byte, a[1].Get("length").Int())
	js.CopyBytesToGo(data, a[1])
	batches := []int{1, 16}
	if len(a) > 2 && a[2].Truthy() {
		batches = ints(a[2])
	}
	return promise(func() (any, error) {
		start := time.Now()
		f, err := safetensors.Read(data)
		if err != nil {
			return nil, err
		}
		m, err := model.FromSafetensors(f)
		if err != nil {
			return nil, err
		}
		eng, err := engine.FromModel(m)
		if err != nil {
			return nil, err
		}
		s := eng.Schedule
		parseMs := ms(time.Since(start))
		shape := m.InShape()
		cond, classes := m.Conditional()
		info := map[string]any{
			"shape": shape, "conditional": cond, "classes": classes, "nullClass": m.NullClass,
			"prediction": s.Config.PredictionType, "parseMs": parseMs,
			"tMid":  s.NetTime(s.PointAt(s.StartTime() / 2)),
			"flops": map[string]flops.Count{},
		}
		for _, b := range batches {
			g, err := m.Graph(b, shape[1], shape[2])
			if err != nil {
				return nil, err
			}
			c := flops.Of(g)
			c.ByOp = nil
			info["flops"].(map[string]flops.Count)[fmt.Sprint(b)] = c
			info["params"] = c.Params
		}
		mu.Lock()
		models[name] = &loaded{m: m, eng: eng, nets: map[string]model.Denoiser{}}
		mu.Unlock()
		out, err := json.Marshal(info)
		return string(out), err
	})
}

func device() (*webgpu.Device, error) {
	gpuOnce.Do(func() { gpuDev, gpuErr = webgpu.Open(context.Background()) })
	return gpuDev, gpuErr
}

// open(name, backend)
func jsOpen(_ js.Value, a []js.Value) any {
	name, backend := a[0].String(), a[1].String()
	return promise(func() (any, error) {
		l, err := get(name)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		var net model.Denoiser
		detail := ""
		switch backend {
		case "webgpu":
			d, err := device()
			if err != nil {
				return nil, err
			}
			dn, err := d.NewDenoiser(l.m)
			if err != nil {
				return nil, err
			}
			net, detail = dn, "weights "+dn.WeightFormat()
		case "simd":
			d, err := simd.NewDenoiser(l.m)
			if err != nil {
				return nil, err
			}
			net, detail = d, "WebAssembly SIMD128 kernels"
		default:
			return nil, fmt.Errorf("unknown backend %q", backend)
		}
		mu.Lock()
		l.nets[backend] = net
		mu.Unlock()
		out, _ := json.Marshal(map[string]any{"ms": ms(time.Since(start)), "detail": detail})
		return string(out), nil
	})
}

func jsClose(_ js.Value, a []js.Value) any {
	name, backend := a[0].String(), a[1].String()
	mu.Lock()
	defer mu.Unlock()
	if l, ok := models[name]; ok {
		switch n := l.nets[backend].(type) {
		case *webgpu.Denoiser:
			n.Release()
		case *simd.Denoiser:
			_ = n.Close()
		}
		delete(l.nets, backend)
	}
	return nil
}

func net(l *loaded, backend string) (model.Denoiser, error) {
	mu.Lock()
	defer mu.Unlock()
	if len(backend) > 3 && backend[:3] == "js:" {
		fn, ok := jsNets[backend[3:]]
		if !ok {
			return nil, fmt.Errorf("no JS denoiser %q", backend)
		}
		return &jsDenoiser{fn: fn}, nil
	}
	n, ok := l.nets[backend]
	if !ok {
		return nil, fmt.Errorf("backend %q is not open", backend)
	}
	return n, nil
}

// run(name, backend, x, t, class, warmup, iters)
func jsRun(_ js.Value, a []js.Value) any {
	name, backend := a[0].String(), a[1].String()
	x, t := floats(a[2]), floats(a[3])
	var class []int
	if a[4].Truthy() {
		class = ints(a[4])
	}
	warm, iters := a[5].Int(), a[6].Int()
	return promise(func() (any, error) {
		l, err := get(name)
		if err != nil {
			return nil, err
		}
		n, err := net(l, backend)
		if err != nil {
			return nil, err
		}
		shape := append([]int{len(t)}, l.m.InShape()...)
		if tensor.Numel(shape) != len(x) {
			return nil, fmt.Errorf("%d input values for shape %v", len(x), shape)
		}
		in := tensor.From(x, shape...)
		var y *tensor.Tensor
		times := make([]any, 0, iters)
		for i := 0; i < warm+iters; i++ {
			start := time.Now()
			if y, err = n.Denoise(in, t, class); err != nil {
				return nil, err
			}
			if i >= warm {
				times = append(times, ms(time.Since(start)))
			}
		}
		o := js.Global().Get("Object").New()
		o.Set("times", times)
		if y != nil {
			o.Set("out", float32Array(y.Data))
		}
		return o, nil
	})
}

// sample(name, backend, batch, steps, seed)
func jsSample(_ js.Value, a []js.Value) any {
	name, backend := a[0].String(), a[1].String()
	batch, steps, seed := a[2].Int(), a[3].Int(), uint64(a[4].Float())
	return promise(func() (any, error) {
		l, err := get(name)
		if err != nil {
			return nil, err
		}
		n, err := net(l, backend)
		if err != nil {
			return nil, err
		}
		// DDIM (η = 0) through the request engine, as the app runs it: on
		// "webgpu" the engine hands it to the GPU-resident sampler.
		r := engine.Request{Sampler: "ddim", Steps: steps, Seed: seed, Batch: batch}
		if l.eng.Info.Conditional && l.eng.Info.NullClass < 0 {
			r.Class = new(int) // a model that needs a label gets class 0
		}
		start := time.Now()
		res, err := l.eng.Run(context.Background(), n, r, nil, nil)
		if err != nil {
			return nil, err
		}
		el := ms(time.Since(start))
		o := js.Global().Get("Object").New()
		o.Set("ms", el)
		o.Set("nfe", res.NFE)
		o.Set("x", float32Array(res.X))
		return o, nil
	})
}

// jsDenoiser runs the network in JavaScript (onnxruntime-web): fn(x, shape,
// t, class) -> Promise<Float32Array>.
type jsDenoiser struct{ fn js.Value }

func (d *jsDenoiser) Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error) {
	shape := make([]any, len(x.Shape))
	for i, v := range x.Shape {
		shape[i] = v
	}
	cls := js.Null()
	if class != nil {
		c := make([]int32, len(class))
		for i, v := range class {
			c[i] = int32(v)
		}
		cls = int32Array(c)
	}
	p := d.fn.Invoke(float32Array(x.Data), shape, float32Array(t), cls)
	v, err := await(p)
	if err != nil {
		return nil, err
	}
	y := floats(v)
	if len(y) != len(x.Data) {
		return nil, fmt.Errorf("JS denoiser returned %d values for %d", len(y), len(x.Data))
	}
	return tensor.From(y, x.Shape...), nil
}

func await(p js.Value) (js.Value, error) {
	type res struct {
		v   js.Value
		err error
	}
	ch := make(chan res, 1)
	var ok, fail js.Func
	ok = js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- res{v: a[0]}
		ok.Release()
		fail.Release()
		return nil
	})
	fail = js.FuncOf(func(_ js.Value, a []js.Value) any {
		msg := "promise rejected"
		if len(a) > 0 {
			msg = a[0].Call("toString").String()
		}
		ch <- res{err: errors.New(msg)}
		ok.Release()
		fail.Release()
		return nil
	})
	p.Call("then", ok, fail)
	r := <-ch
	return r.v, r.err
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func bytesOf(v js.Value) js.Value {
	return js.Global().Get("Uint8Array").New(v.Get("buffer"), v.Get("byteOffset"), v.Get("byteLength"))
}

func floats(v js.Value) []float32 {
	n := v.Get("length").Int()
	out := make([]float32, n)
	if n > 0 {
		js.CopyBytesToGo(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 4*n), bytesOf(v))
	}
	return out
}

func ints(v js.Value) []int {
	n := v.Get("length").Int()
	out := make([]int, n)
	for i := range out {
		out[i] = v.Index(i).Int()
	}
	return out
}

func float32Array(v []float32) js.Value {
	u8 := js.Global().Get("Uint8Array").New(4 * len(v))
	if len(v) > 0 {
		js.CopyBytesToJS(u8, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
	}
	return js.Global().Get("Float32Array").New(u8.Get("buffer"))
}

func int32Array(v []int32) js.Value {
	u8 := js.Global().Get("Uint8Array").New(4 * len(v))
	if len(v) > 0 {
		js.CopyBytesToJS(u8, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
	}
	return js.Global().Get("Int32Array").New(u8.Get("buffer"))
}
