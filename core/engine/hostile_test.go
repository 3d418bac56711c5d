package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/model/hostiletest"
)

// Every hostile file a visitor could drop is refused as the file's fault
// (shown as is), quickly, without a panic or a large allocation — in Node
// under js/wasm too (make test-wasm), where a panic would kill the worker.
func TestHostileFilesAreUserErrors(t *testing.T) {
	for _, c := range hostiletest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			err := hostiletest.Bounded(t, 32<<20, func() error { _, err := Load(c.Data, "", -1); return err })
			if c.Trained { // the page reads converted files only
				c.Want = "convert it"
			}
			if err == nil || !IsUserError(err) || !strings.Contains(err.Error(), c.Want) {
				t.Errorf("got %v (user error %v), want a user error mentioning %q", err, IsUserError(err), c.Want)
			}
		})
	}
}

// A request whose run would not fit the memory budget is refused before
// anything is allocated, naming the batch; a small one still runs.
func TestRequestOverBudget(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "weights", "mnist.safetensors"))
	if err != nil {
		t.Skip("weights/mnist.safetensors not present")
	}
	l, err := Load(data, "", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer limits.SetBudget(limits.SetBudget(64 << 20))
	seven := 7
	_, _, err = l.Options(Request{Sampler: "ddim", Steps: 5, Class: &seven, Guidance: 2, Batch: 512})
	var re *RequestError
	if !errors.As(err, &re) || re.Field != "batch" || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("batch 512: got %v, want a batch RequestError about the budget", err)
	}
	if _, _, err := l.Options(Request{Sampler: "ddim", Steps: 5, Class: &seven, Guidance: 2, Batch: 1}); err != nil {
		t.Errorf("batch 1: %v", err)
	}
	for _, p := range []map[string]float64{{"end_time": 1e300}, {"snr": -1}} {
		if _, _, err := l.Options(Request{Sampler: "pc", Class: &seven, Params: p}); !errors.As(err, &re) {
			t.Errorf("%v: got %v, want a RequestError", p, err)
		}
	}
}
