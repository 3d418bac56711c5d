// Command gen writes the SIMD128 kernel module kernels.wasm and its Go
// bindings (kernels_gen.go, kernels_js_gen.go, kernels_native_gen.go) into
// the wasm/simd package directory. Run it with `go generate ./wasm/simd`;
// never edit its outputs by hand. The flags exist to try other micro-kernel
// shapes (write them elsewhere with -o and benchmark with bench/gemm.mjs).
package main

import (
	"flag"
	"log"
	"os"
	"path/filepath"

	"github.com/diffuse-web/diffuse/wasm/simd/internal/kernelgen"
)

func main() {
	out := flag.String("o", ".", "directory to write kernels.wasm and the Go bindings into")
	mr := flag.Int("mr", kernelgen.Default.MR, "GEMM micro-tile rows (the tile is mr x 8)")
	unroll := flag.Int("unroll", kernelgen.Default.Unroll, "GEMM k-loop unrolling")
	flag.Parse()
	files, err := kernelgen.Generate(kernelgen.Options{MR: *mr, Unroll: *unroll})
	if err != nil {
		log.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
