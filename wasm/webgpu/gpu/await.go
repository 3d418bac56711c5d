//go:build js && wasm

// Package gpu is a thin typed binding over the browser's WebGPU API
// (navigator.gpu) through syscall/js: only the calls the compute backend
// uses, with JavaScript failures turned into Go errors.
//
// Promises are awaited by blocking the calling goroutine on a channel that a
// js.FuncOf callback fills. Go's js/wasm scheduler returns to the JavaScript
// event loop while every goroutine is blocked, so the promise can settle; no
// call here may be made from inside a js.FuncOf callback (that would block
// the event loop).
package gpu

import (
	"context"
	"fmt"
	"syscall/js"
)

// JSError is a rejected promise or thrown exception, by its JavaScript name
// (OperationError, AbortError, GPUPipelineError, ...) and message.
type JSError struct {
	Name, Message string
}

func (e *JSError) Error() string {
	if e.Name == "" {
		return "webgpu: " + e.Message
	}
	return fmt.Sprintf("webgpu: %s: %s", e.Name, e.Message)
}

func jsError(v js.Value) error {
	if v.Type() == js.TypeObject {
		name, msg := v.Get("name"), v.Get("message")
		e := &JSError{}
		if name.Type() == js.TypeString {
			e.Name = name.String()
		}
		if msg.Type() == js.TypeString {
			e.Message = msg.String()
		} else {
			e.Message = v.Call("toString").String()
		}
		return e
	}
	return &JSError{Message: v.String()}
}

type settled struct {
	v   js.Value
	err error
}

// future is a promise with its handlers attached: a rejection is always
// handled (Node ends the process on an unhandled one, e.g. a map that a
// device loss aborted after we stopped waiting for it).
type future struct{ ch chan settled }

// start attaches handlers to p now; wait reads the outcome later.
func start(p js.Value) *future {
	ch := make(chan settled, 1)
	var onOK, onErr js.Func
	release := func() {
		onOK.Release()
		onErr.Release()
	}
	onOK = js.FuncOf(func(_ js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- settled{v: v}
		release()
		return nil
	})
	onErr = js.FuncOf(func(_ js.Value, args []js.Value) any {
		var err error = &JSError{Message: "promise rejected"}
		if len(args) > 0 {
			err = jsError(args[0])
		}
		ch <- settled{err: err}
		release()
		return nil
	})
	p.Call("then", onOK, onErr)
	return &future{ch: ch}
}

// wait waits for the outcome. It gives up when ctx ends or when abort
// closes (the device was lost), returning abortErr in the latter case. The
// callbacks are released only once the promise settles, since JavaScript
// may still call them after an early return. A future is waited for once.
func (f *future) wait(ctx context.Context, abort <-chan struct{}, abortErr func() error) (js.Value, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case r := <-f.ch:
		return r.v, r.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err()
	case <-abort:
		// The promise may have settled in the same turn as the loss; prefer its result.
		select {
		case r := <-f.ch:
			if r.err == nil {
				return r.v, nil
			}
		default:
		}
		return js.Undefined(), abortErr()
	}
}

// await waits for promise p (see future.wait).
func await(ctx context.Context, p js.Value, abort <-chan struct{}, abortErr func() error) (js.Value, error) {
	return start(p).wait(ctx, abort, abortErr)
}

// call invokes a JavaScript method and turns a thrown exception into an error.
func call(v js.Value, method string, args ...any) (res js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = jsError(je.Value)
				return
			}
			err = fmt.Errorf("webgpu: %s: %v", method, r)
		}
	}()
	return v.Call(method, args...), nil
}

// obj builds a plain JavaScript object from a Go map (values as js.ValueOf
// accepts them, plus js.Value).
func obj(m map[string]any) js.Value { return js.ValueOf(m) }
