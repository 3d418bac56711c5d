//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

// The app is the Go side of the browser worker and only runs as js/wasm
// (make dist). This native main exists so that the package's portable
// parts (guard.go) build and test natively.
func main() {
	fmt.Fprintln(os.Stderr, "wasm/app runs in the browser's Web Worker: build it with GOOS=js GOARCH=wasm (make dist)")
	os.Exit(2)
}
