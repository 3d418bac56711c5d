//go:build js && wasm

package simd

import (
	"syscall/js"
	"time"
)

// cpuTime is the Node process's CPU time (user+system), so benchmarks on a
// shared machine can leave out the time other jobs held the core; ok is
// false outside Node.
func cpuTime() (time.Duration, bool) {
	p := js.Global().Get("process")
	if p.IsUndefined() || p.Get("cpuUsage").IsUndefined() {
		return 0, false
	}
	u := p.Call("cpuUsage")
	return time.Duration(u.Get("user").Float()+u.Get("system").Float()) * time.Microsecond, true
}
