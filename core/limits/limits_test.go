package limits

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestNumelRefusesOverflowAndEmpty(t *testing.T) {
	if n, err := Numel("x", []int{2, 3, 4}); err != nil || n != 24 {
		t.Errorf("2·3·4 = %d, %v", n, err)
	}
	for _, dims := range [][]int{{3037000500, 3037000500}, {1 << 62, 4}, {0, 5}, {5, -1}, {1 << 16, 1 << 16}} {
		var e *Error
		if _, err := Numel("x", dims); !errors.As(err, &e) {
			t.Errorf("%v: got %v, want an *Error", dims, err)
		}
	}
}

func TestSaturatingArithmetic(t *testing.T) {
	if Mul(1<<40, 1<<40) != math.MaxInt64 || Add(math.MaxInt64-1, 5) != math.MaxInt64 || Mul(3, 4) != 12 || Add(3, 4) != 7 {
		t.Error("Mul/Add do not saturate or compute")
	}
}

func TestRangesAndMessages(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{Int("steps", 20000, 0, MaxSteps), "steps = 20000: must be in 0…10000"},
		{Int("batch", 0, 1, MaxBatch), "batch = 0: must be positive and at most 4096"},
		{Float("eta", math.NaN(), 0, 1), "eta = NaN: must be a finite number"},
		{Float("eta", -1, 0, 1), "eta = -1: must be in 0…1"},
		{AtMost("dim", 1<<20, MaxChannels), "dim = 1048576: must be at most 65536"},
		{Finite("sigma", 1, math.Inf(1)), "sigma = +Inf: must be a finite number"},
		{FiniteValues("--x", []float32{0, 1, float32(math.NaN())}), "--x = NaN at index 2: must be finite numbers"},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("got %v, want %q", c.err, c.want)
		}
	}
	if FiniteValues("x", []float32{0, -1, 3e38}) != nil || Int("steps", 5, 0, 10) != nil || Float("eta", 0.5, 0, 1) != nil || Finite("x", 1, 2) != nil {
		t.Error("a value in range was refused")
	}
}

func TestBudgetCheck(t *testing.T) {
	defer SetBudget(SetBudget(1000))
	if err := Check("a", Part{"weights", 400}, Part{"activations", 500}); err != nil {
		t.Errorf("900 of 1000: %v", err)
	}
	err := Check("a batch", Part{"weights", 400}, Part{"activations", math.MaxInt64})
	var me *MemoryError
	if !errors.As(err, &me) || me.Need() != math.MaxInt64 || !strings.Contains(err.Error(), "over the 1000 bytes budget") {
		t.Errorf("got %v", err)
	}
	SetBudget(0)
	if want := map[bool]int64{true: WasmBudget, false: NativeBudget}[runtime.GOARCH == "wasm"]; Budget() != want {
		t.Errorf("default budget %d, want %d", Budget(), want)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte("0123456789"), 0o644)
	if b, err := ReadFile(p, 10); err != nil || string(b) != "0123456789" {
		t.Errorf("10 bytes at cap 10: %q, %v", b, err)
	}
	var fe *FileError
	if _, err := ReadFile(p, 9); !errors.As(err, &fe) {
		t.Errorf("10 bytes at cap 9: %v", err)
	}
	if _, err := ReadFile(dir, 1<<20); err == nil {
		t.Error("a directory was read")
	}
	if runtime.GOOS == "js" {
		return
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		link := filepath.Join(dir, "zero")
		if os.Symlink("/dev/zero", link) == nil {
			if _, err := ReadFile(link, 1<<20); !errors.As(err, &fe) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("symlink to /dev/zero: %v", err)
			}
		}
	}
}
