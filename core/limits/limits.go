// Package limits holds the bounds on every size and value that comes from a
// file or from a user, and the memory budget a model may use, so that hostile
// or mistaken input is refused with one clear line before anything is
// allocated — natively and in the page's worker, where an out-of-memory or a
// panic kills the worker.
//
// The bounds are generous for every real checkpoint we know of (diffusers'
// 256² UNet2DModels have 4–6 levels, ≤ 1024 channels, 1000 training steps)
// and tight enough that the arithmetic that follows cannot overflow an int
// on a 32-bit heap. Sizes that depend on batch and image size are left to
// the memory budget (see Budget), which sees the whole network at once.
package limits

import (
	"fmt"
	"math"
)

// Structural bounds on network configs. Each is checked by the package that
// parses the field (core/unet, core/lucid, core/toy2d, core/scoresde).
const (
	// MaxLevels bounds UNet resolution levels (diffusers' block_out_channels,
	// lucidrains' dim_mults): the image shrinks by 2^(levels-1).
	MaxLevels = 12
	// MaxChannels bounds any channel count, hidden width or embedding size.
	MaxChannels = 1 << 16
	// MaxLayers bounds repeated layers (layers_per_block, MLP hidden layers).
	MaxLayers = 64
	// MaxClasses bounds class-embedding tables.
	MaxClasses = 1 << 20
	// MaxGraphNodes bounds the ops of one network graph.
	MaxGraphNodes = 1 << 16
	// MaxElements bounds the elements of any one tensor value (a WebGPU
	// buffer or a wasm32 slice of float32 cannot hold more).
	MaxElements = 1<<31 - 1
)

// Bounds on schedules and requests.
const (
	// MaxTrainTimesteps bounds num_train_timesteps (diffusers uses 1000;
	// improved DDPM 4000). Each step costs a few float64 tables.
	MaxTrainTimesteps = 100_000
	// MaxSide bounds a sample's height or width (sample_size, --size).
	MaxSide = 4096
	// MaxBatch bounds the samples of one network call.
	MaxBatch = 4096
	// MaxSamples bounds the samples of one CLI request (--n).
	MaxSamples = 1 << 20
	// MaxSteps bounds sampler steps (the page's own cap is lower).
	MaxSteps = 10_000
	// MaxProbes bounds Hutchinson probes for likelihood.
	MaxProbes = 1000
)

// Error is a value from a file or a user outside what we accept. Field names
// the config field, flag or parameter as the user wrote it.
type Error struct {
	Field string
	Value any
	Limit string // what is accepted, e.g. "at most 12" or "finite, in 0…1"
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s = %v: %s", e.Field, e.Value, e.Limit)
}

// Int checks lo ≤ v ≤ hi.
func Int(field string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return &Error{field, v, rangeText(float64(lo), float64(hi))}
	}
	return nil
}

// AtMost checks v ≤ hi only (the caller checks the low end with its own
// message, e.g. "must be positive" among related fields).
func AtMost(field string, v, hi int64) error {
	if v > hi {
		return &Error{field, v, fmt.Sprintf("must be at most %d", hi)}
	}
	return nil
}

// Float checks that v is finite and lo ≤ v ≤ hi.
func Float(field string, v, lo, hi float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return &Error{field, v, "must be a finite number"}
	}
	if v < lo || v > hi {
		return &Error{field, v, rangeText(lo, hi)}
	}
	return nil
}

// Finite checks that every v is a finite number.
func Finite(field string, vs ...float64) error {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &Error{field, v, "must be a finite number"}
		}
	}
	return nil
}

// FiniteValues checks that every value of a float32 array (weights, an
// input file, a network output) is a finite number, naming the first that
// is not by its index.
func FiniteValues(field string, vs []float32) error {
	for i, v := range vs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return &Error{field, fmt.Sprintf("%v at index %d", v, i), "must be finite numbers"}
		}
	}
	return nil
}

func rangeText(lo, hi float64) string {
	switch {
	case lo == 1 && hi >= 1:
		return fmt.Sprintf("must be positive and at most %g", hi)
	case lo == 0:
		return fmt.Sprintf("must be in 0…%g", hi)
	}
	return fmt.Sprintf("must be in %g…%g", lo, hi)
}

// Numel is the product of dims, or an *Error when a dimension is not
// positive or the product exceeds MaxElements (so it never overflows).
func Numel(what string, dims []int) (int, error) {
	n := 1
	for _, d := range dims {
		if d <= 0 {
			return 0, &Error{what, fmt.Sprint(dims), "every dimension must be positive"}
		}
		if n > MaxElements/d {
			return 0, &Error{what, fmt.Sprint(dims), fmt.Sprintf("more than %d elements", MaxElements)}
		}
		n *= d
	}
	return n, nil
}

// Mul returns a·b, saturating at math.MaxInt64 (sizes are added up in int64
// and compared with a budget; saturation keeps a hostile product from
// wrapping round to something small).
func Mul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

// Add returns a+b for non-negative sizes, saturating at math.MaxInt64.
func Add(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
