package limits

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
)

// Default memory budgets. In the page's worker the Go heap lives in a 32-bit
// wasm memory (4 GiB at most, less on many devices) and the garbage collector
// needs room beside the live set, so a model's live bytes are kept to 1 GiB.
// Natively the CLI's --mem-budget flag sets it.
const (
	WasmBudget   int64 = 1 << 30
	NativeBudget int64 = 8 << 30
)

var budget atomic.Int64

func init() { budget.Store(defaultBudget()) }

// defaultBudget is WasmBudget in the browser build, NativeBudget elsewhere.
func defaultBudget() int64 {
	if runtime.GOARCH == "wasm" {
		return WasmBudget
	}
	return NativeBudget
}

// Budget is the most bytes a model's weights, one network call's live
// activations and a sampler's state may take together in this process.
func Budget() int64 { return budget.Load() }

// SetBudget changes the budget (bytes ≤ 0 restores the default) and returns
// the previous one.
func SetBudget(bytes int64) int64 {
	if bytes <= 0 {
		bytes = defaultBudget()
	}
	return budget.Swap(bytes)
}

// Part is one named share of a memory estimate.
type Part struct {
	Name  string
	Bytes int64
}

// MemoryError says a request would need more memory than the budget.
type MemoryError struct {
	What   string // what was asked, e.g. "a batch of 64 at 32×32"
	Parts  []Part
	Budget int64
}

// Need is the total of the parts.
func (e *MemoryError) Need() int64 {
	var n int64
	for _, p := range e.Parts {
		n = Add(n, p.Bytes)
	}
	return n
}

func (e *MemoryError) Error() string {
	var ps []string
	for _, p := range e.Parts {
		if p.Bytes > 0 {
			ps = append(ps, p.Name+" "+Bytes(p.Bytes))
		}
	}
	return fmt.Sprintf("%s needs %s of memory (%s), over the %s budget", e.What, Bytes(e.Need()), strings.Join(ps, ", "), Bytes(e.Budget))
}

// Check refuses parts whose total exceeds the budget.
func Check(what string, parts ...Part) error {
	e := &MemoryError{What: what, Parts: parts, Budget: Budget()}
	if e.Need() > e.Budget {
		return e
	}
	return nil
}

// SamplerVectors is how many sample-sized float64 vectors a sampler keeps at
// once, at most: x, x̂0, noise, a multistep history or RK45's seven stages
// and its error estimate, and the copies handed to progress callbacks.
const SamplerVectors = 16

// SamplerState is the bytes a sampler's state takes for batch samples of
// numel values each.
func SamplerState(batch, numel int) int64 {
	return Mul(Mul(int64(batch), int64(numel)), 8*SamplerVectors)
}

// Bytes formats a byte count for people (binary units).
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
