//go:build js && wasm

package main

import (
	"strings"
	"syscall/js"
	"testing"
)

// settle waits for a JavaScript promise: its value, or the Error it
// rejected with.
func settle(t *testing.T, p js.Value) (v, rejected js.Value) {
	t.Helper()
	if p.Type() != js.TypeObject || p.Get("then").Type() != js.TypeFunction {
		t.Fatalf("want a promise, got %v", p)
	}
	type res struct {
		v  js.Value
		ok bool
	}
	ch := make(chan res, 1)
	ok := js.FuncOf(func(_ js.Value, a []js.Value) any { ch <- res{a[0], true}; return nil })
	fail := js.FuncOf(func(_ js.Value, a []js.Value) any { ch <- res{a[0], false}; return nil })
	defer ok.Release()
	defer fail.Release()
	p.Call("then", ok, fail)
	r := <-ch
	if r.ok {
		return r.v, js.Undefined()
	}
	return js.Undefined(), r.v
}

// TestExportRecovers calls exported functions from JavaScript as the worker
// does: a panic in the synchronous part (a hostile argument) or in the
// promise's goroutine rejects that call with an Error of kind "internal"
// naming the panic, and the same functions keep working afterwards (the Go
// program did not exit).
func TestExportRecovers(t *testing.T) {
	defer func(old func(*panicError)) { logPanic = old }(logPanic)
	logPanic = func(*panicError) {}

	// The synchronous part panics on an argument of the wrong type, as
	// jsField does on a hostile point.
	sync := export(func(args []js.Value) any {
		n := args[0].Get("n").Int() // panics unless args[0] is an object with a number n
		return promise(func() (any, error) {
			if n < 0 {
				panic("negative n")
			}
			return n * 2, nil
		})
	})
	defer sync.Release()
	obj := func(n any) js.Value {
		o := js.Global().Get("Object").New()
		o.Set("n", n)
		return o
	}
	for _, c := range []struct {
		name string
		arg  any
		want string
	}{
		{"sync panic", 5, "Value.Get"},               // a number has no properties
		{"sync panic, field", obj("x"), "Value.Int"}, // n is a string
		{"promise panic", obj(-1), "negative n"},
	} {
		_, e := settle(t, sync.Invoke(c.arg))
		if e.Type() != js.TypeObject || e.Get("kind").String() != "internal" || !strings.Contains(e.Get("message").String(), c.want) {
			t.Errorf("%s: rejected with %v, want an Error of kind internal mentioning %q", c.name, e, c.want)
		}
		// The next call works.
		v, e := settle(t, sync.Invoke(obj(21)))
		if !e.IsUndefined() || v.Int() != 42 {
			t.Fatalf("%s: the next call gave %v, %v; want 42", c.name, v, e)
		}
	}
}
