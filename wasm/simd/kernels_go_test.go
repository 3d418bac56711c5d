//go:build !(js && wasm)

package simd

import (
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"testing"
)

// Natively every test of the package runs twice: over kernels.wasm under
// wazero, then over the native Go kernel set (kernels_go.go), so the Go set
// is held to the same kernel references and whole-network comparisons with
// core/cpu. SIMD_TEST_KERNELS=wasm or =go runs only one of the two.
// Benchmarks run in the first pass only.
func TestMain(m *testing.M) {
	flag.Parse()
	newGoK = NewGoKernels
	code := 0
	only := os.Getenv("SIMD_TEST_KERNELS")
	if only != "go" {
		code = m.Run()
		flag.Set("test.bench", "")
	}
	if code == 0 && only != "wasm" {
		fmt.Println("simd: running the tests again over the native Go kernel set")
		testGoKernels = true
		code = m.Run()
	}
	os.Exit(code)
}

// The assembly micro-kernels and the portable Go one must agree (up to
// FMA rounding) on every tile shape, whole and cut, with bias and residual.
func TestGemmAsmMatchesGo(t *testing.T) {
	if !hasAsm {
		t.Skip("no assembly GEMM on this CPU")
	}
	r := rand.New(rand.NewSource(9))
	asm, pure := &goKernels{asm: true}, &goKernels{asm: false}
	for _, sz := range [][3]int{{1, 1, 1}, {4, 8, 1}, {4, 24, 7}, {4, 16, 3}, {5, 25, 33}, {13, 40, 64}, {64, 100, 27}, {36, 72, 300}, {8, 200, 9}} {
		m, n, kd := sz[0], sz[1], sz[2]
		for _, mode := range []BiasMode{NoBias, RowBias, ColBias} {
			for _, withRes := range []bool{false, true} {
				name := fmt.Sprintf("m%d n%d k%d bias%d res%v", m, n, kd, mode, withRes)
				ap, bp := randn(r, PackedALen(m, kd)), randn(r, PackedBLen(kd, n))
				ldc := n + 3
				var bias, res []float32
				switch mode {
				case RowBias:
					bias = randn(r, PackedRows(m))
				case ColBias:
					bias = randn(r, PackedCols(n))
				}
				if withRes {
					res = randn(r, matLen(m, n, ldc))
				}
				got, want := make([]float32, matLen(m, n, ldc)), make([]float32, matLen(m, n, ldc))
				for i := range got {
					got[i], want[i] = sentinel, sentinel
				}
				asm.gemm(ap, bp, got, ldc, m, n, kd, bias, res, int(mode))
				pure.gemm(ap, bp, want, ldc, m, n, kd, bias, res, int(mode))
				for i := range want {
					if math.Float32bits(want[i]) == 0x7fc0dead {
						if math.Float32bits(got[i]) != 0x7fc0dead {
							t.Fatalf("%s: asm wrote into the row gap at %d", name, i)
						}
						got[i], want[i] = 0, 0
					}
				}
				closeTo(t, name, got, want, 1e-6*math.Sqrt(float64(kd)))
			}
		}
	}
}

// The Go set's exp must stay as close to e^x as the wasm kernels' is.
func TestExp32(t *testing.T) {
	for x := -87.0; x <= 88; x += 0.01 {
		got, want := float64(exp32(float32(x))), math.Exp(float64(float32(x)))
		if math.Abs(got-want) > 4e-7*want {
			t.Fatalf("exp32(%v) = %v, want %v", x, got, want)
		}
	}
}

// The Go set without its assembly (as on other architectures) must pass
// the same kernel checks.
func TestGoKernelsPortable(t *testing.T) {
	if !testGoKernels {
		t.Skip("runs in the Go kernel set's pass")
	}
	newGoK = func() *Kernels { k := NewGoKernels(); k.gok.asm = false; return k }
	defer func() { newGoK = NewGoKernels }()
	for name, f := range map[string]func(*testing.T){
		"gemm": TestGemmMatchesReference, "gemm_batch": TestGemmBatchMatchesGemm, "conv": TestConvMatchesReference,
		"groupnorm": TestGroupNormMatchesReference, "elementwise": TestElementwiseMatchesReference,
		"silu": TestSiLUAccuracy, "softmax": TestSoftmaxRows, "attention": TestAttentionMatchesReference,
		"winograd": TestWinogradConvMatchesReference, "winograd_in": TestWinogradInMatchesDefinition,
		"winograd_out": TestWinogradOutMatchesDefinition, "mem_attention": TestMemAttentionMatchesReference,
	} {
		t.Run(name, f)
	}
}

// panelGroups must cover every panel once, in order, in groups of 1 to 3,
// never leaving a lone panel after a group of 3.
func TestPanelGroups(t *testing.T) {
	for np := 1; np < 40; np++ {
		ng, group := panelGroups(np)
		next := 0
		for gi := range ng {
			p0, nb := group(gi)
			if p0 != next || nb < 1 || nb > gemmGroup || (nb == 1 && np > 1) {
				t.Fatalf("np %d: group %d is (%d, %d), next panel %d", np, gi, p0, nb, next)
			}
			next += nb
		}
		if next != np {
			t.Fatalf("np %d: groups cover %d panels", np, next)
		}
	}
}

// BenchmarkGoGemm: the Go set's GEMM on the shapes that dominate the
// shipped UNets (Winograd's 16-item batches and a 1x1/attention GEMM),
// single-threaded and on all cores.
func BenchmarkGoGemm(b *testing.B) {
	for _, sz := range [][4]int{{16, 128, 64, 128}, {16, 64, 128, 64}, {1, 256, 256, 256}} {
		count, m, n, kd := sz[0], sz[1], sz[2], sz[3]
		r := rand.New(rand.NewSource(1))
		ap, bp := randn(r, count*PackedALen(m, kd)), randn(r, count*PackedBLen(kd, n))
		c := make([]float32, count*m*n)
		g := &goKernels{asm: hasAsm}
		b.Run(fmt.Sprintf("count%d_m%d_n%d_k%d", count, m, n, kd), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				g.gemmBatch(count, ap, PackedALen(m, kd), bp, PackedBLen(kd, n), c, m*n, n, m, n, kd)
			}
			b.ReportMetric(2*float64(count*m*n*kd)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
