# Build, test and serve the browser diffusion sampler.
# `make test` is what CI runs (see .ci/run).

GO        ?= go
GOROOT    := $(shell $(GO) env GOROOT)
WASMEXEC  := $(GOROOT)/lib/wasm
FIXTURES_DIR ?= $(abspath ../shared/fixtures)
export FIXTURES_DIR

.PHONY: all build test test-native test-wasm fuzz clean

all: build

## build: the native CLI and the wasm core
build:
	$(GO) build -o bin/diffuse ./tools/diffuse
	GOOS=js GOARCH=wasm $(GO) build ./core/...

## test: everything CI runs: vet, native tests, the core tests under wasm in Node
test: test-native test-wasm test-simd test-webgpu

test-native:
	$(GO) vet ./...
	$(GO) test ./...

# The core's and the CLI's tests again, compiled to js/wasm and run in Node through Go's
# go_js_wasm_exec, so the wasm build computes what the native one does.
test-wasm:
	PATH="$(WASMEXEC):$$PATH" GOOS=js GOARCH=wasm $(GO) test ./core/... ./tools/diffuse

## fuzz: run the safetensors reader fuzzer for FUZZTIME (default 60s)
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./core/safetensors -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME)

clean:
	rm -rf bin dist

## test-simd: wasm/simd's tests as js/wasm in Node with the kernels attached through
## wasm/simd/simd_glue.js as a page does (zero-copy over Go's memory): with kernels.wasm,
## then with kernels_relaxed.wasm (FMA) when this Node runs relaxed SIMD.
SIMD_EXEC       := $(abspath wasm/simd/testdata/go_js_wasm_exec_simd)
SIMD_RELAXED    := $(shell node --experimental-wasm-relaxed-simd -e 0 2>/dev/null && echo --experimental-wasm-relaxed-simd)
SIMD_RELAXED_OK := $(shell node $(SIMD_RELAXED) -e "process.exit(WebAssembly.validate(require('fs').readFileSync('wasm/simd/kernels_relaxed.wasm'))?0:1)" 2>/dev/null && echo yes)
.PHONY: test-simd bench-simd
test-simd:
	GOROOT=$(GOROOT) GOOS=js GOARCH=wasm $(GO) test -short -exec $(SIMD_EXEC) ./wasm/simd
	$(if $(SIMD_RELAXED_OK),GOROOT=$(GOROOT) KERNELS=$(abspath wasm/simd/kernels_relaxed.wasm) NODE_FLAGS="$(SIMD_RELAXED)" GOOS=js GOARCH=wasm $(GO) test -short -exec $(SIMD_EXEC) ./wasm/simd,@echo "test-simd: this Node has no relaxed SIMD; kernels_relaxed.wasm not run")

## bench-simd: GFLOP/s of the SIMD GEMM kernel in Node, then whole-network timings of the
## SIMD backend as js/wasm in Node (SIMD_PROFILE=1 adds the time per op)
bench-simd:
	node wasm/simd/bench/gemm.mjs
	GOROOT=$(GOROOT) GOOS=js GOARCH=wasm $(GO) test -exec $(SIMD_EXEC) -run '^$$' -bench Denoise -benchtime 5x ./wasm/simd

# The WebGPU backend's tests: its js/wasm test binary in Node with Dawn (npm
# 'webgpu', from `cd web && npm ci`) on SwiftShader, the software Vulkan that
# Debian's chromium package ships; web/test/webgpu-setup.mjs installs
# navigator.gpu. Every kernel and both fixture networks are compared with the
# CPU reference.
SWIFTSHADER_ICD ?= /usr/lib/chromium/vk_swiftshader_icd.json
.PHONY: test-webgpu
test-webgpu:
	XDG_RUNTIME_DIR="$${XDG_RUNTIME_DIR:-/tmp}" VK_ICD_FILENAMES="$(SWIFTSHADER_ICD)" \
	NODE_OPTIONS="--import=$(abspath web/test/webgpu-setup.mjs)" \
	PATH="$(WASMEXEC):$$PATH" GOOS=js GOARCH=wasm $(GO) test -timeout 30m ./wasm/webgpu/...
