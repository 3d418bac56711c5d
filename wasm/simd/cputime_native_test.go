//go:build !(js && wasm)

package simd

import "time"

// cpuTime: natively benchmarks report wall time only.
func cpuTime() (time.Duration, bool) { return 0, false }
