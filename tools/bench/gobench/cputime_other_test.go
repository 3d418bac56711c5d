//go:build !unix

package gobench

import "time"

// cpuTime: no CPU-time metric here.
func cpuTime() (time.Duration, bool) { return 0, false }
