package main

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestGuard: a panic in a guarded call becomes a *panicError carrying the
// panic's message and stack (logged once), never a user or cancelled error
// whatever the panic value wraps, and the next guarded call runs normally.
func TestGuard(t *testing.T) {
	var logged []*panicError
	defer func(old func(*panicError)) { logPanic = old }(logPanic)
	logPanic = func(e *panicError) { logged = append(logged, e) }

	var nilMap map[string]int
	var nilPtr *struct{ x int }
	for _, c := range []struct {
		name string
		f    func() (any, error)
		want string
	}{
		{"string", func() (any, error) { panic("boom") }, "boom"},
		{"error", func() (any, error) { panic(context.Canceled) }, "context canceled"},
		{"nil map", func() (any, error) { nilMap["x"] = 1; return nil, nil }, "assignment to entry in nil map"},
		{"nil pointer", func() (any, error) { return nilPtr.x, nil }, "nil pointer dereference"},
		{"index", func() (any, error) { s := []int{}; i := 3; return s[i], nil }, "index out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			logged = nil
			v, err := guard(c.f)
			var pe *panicError
			if v != nil || !errors.As(err, &pe) {
				t.Fatalf("guard = %v, %v; want nil and a *panicError", v, err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "panic") {
				t.Errorf("message %q, want it to name the panic and contain %q", err, c.want)
			}
			if errors.Is(err, context.Canceled) {
				t.Error("a recovered panic must not read as a cancellation")
			}
			if len(logged) != 1 || logged[0] != pe || !strings.Contains(string(pe.stack), "guard_test.go") {
				t.Errorf("logged %d panics, want this one with its stack", len(logged))
			}
			// The next call is unaffected.
			v, err = guard(func() (any, error) { return 42, nil })
			if v != 42 || err != nil {
				t.Errorf("guard after a panic = %v, %v; want 42, nil", v, err)
			}
		})
	}
	logged = nil
	want := errors.New("plain")
	if v, err := guard(func() (any, error) { return "x", want }); v != "x" || err != want {
		t.Errorf("guard passes results through: got %v, %v", v, err)
	}
	if len(logged) != 0 {
		t.Errorf("logged %d panics for calls that did not panic", len(logged))
	}
}
