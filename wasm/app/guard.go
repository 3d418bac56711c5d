package main

// The recover-to-error boundary between JavaScript and Go. It builds
// natively too (unlike main.go), so guard_test.go runs in `go test ./...`.

import (
	"fmt"
	"os"
	"runtime/debug"
)

// panicError is a Go panic recovered where a call from JavaScript enters
// Go. Under js/wasm an unrecovered panic ends the whole Go program, and
// with it the worker and every model loaded in it; recovered, it fails
// only the call that hit it (as an Error of kind "internal") and the
// worker goes on serving.
//
// It deliberately does not unwrap to the panic value: whatever the value
// was, the page sees an internal error, never a "user" or "cancelled" one.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string {
	return fmt.Sprintf("internal error (recovered from a Go panic): %v", e.value)
}

// logPanic is where a recovered panic's stack goes: the worker's console
// (Go's stderr under js/wasm). Tests replace it.
var logPanic = func(e *panicError) {
	fmt.Fprintf(os.Stderr, "diffuse: %v\n%s", e, e.stack)
}

// guard calls f and returns what it returns, or, if f panics, a nil value
// and a *panicError carrying the panic value and its stack (also logged by
// logPanic). Every function exported to JavaScript and every goroutine
// behind a promise runs through it.
func guard(f func() (any, error)) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			pe := &panicError{value: r, stack: debug.Stack()}
			logPanic(pe)
			v, err = nil, pe
		}
	}()
	return f()
}
