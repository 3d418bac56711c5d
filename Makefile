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
test: test-native test-wasm test-simd test-browser test-webgpu test-bench-smoke test-train

test-native:
	$(GO) vet ./...
	$(GO) test ./...

# The core's, the CLI's and the page engine's tests again, compiled to js/wasm and run in Node through Go's
# go_js_wasm_exec, so the wasm build computes what the native one does.
test-wasm:
	PATH="$(WASMEXEC):$$PATH" GOOS=js GOARCH=wasm $(GO) test ./core/... ./tools/diffuse

## test-train: the PyTorch side (tools/train), part of `make test` (.ci/run installs Debian's PyTorch and fetches the data): our UNet2DModel
## against real diffusers (test_unet2d.py), the 2-D few-step toys (test_toy2d_flow.py), and the MNIST flow and
## ECT trainers' smoke runs (test_mnist_fewstep.py: a few CPU iterations each, the loss falls, the output converts,
## samples with `diffuse sample` in 1 and 2 steps and matches PyTorch in Go). Skipped without PyTorch;
## test_mnist_fewstep.py also needs tools/train/data (fetch_data.sh, or DATA=folder).
PYTHON ?= $(shell python3 -c 'import torch' 2>/dev/null && echo python3 || echo /usr/bin/python3)
.PHONY: test-train
test-train:
	@$(PYTHON) -c 'import torch' 2>/dev/null || { echo "test-train: no PyTorch ($(PYTHON)), skipped"; exit 0; }; \
	set -e; $(PYTHON) tools/train/test_unet2d.py; OMP_NUM_THREADS=1 $(PYTHON) tools/train/test_toy2d_flow.py; \
	$(PYTHON) tools/train/test_mnist_fewstep.py

## fuzz: run the safetensors reader fuzzer for FUZZTIME (default 60s)
## fuzz-model: the model-level fuzzer (bytes → load → graph → one CPU call) for FUZZTIME
FUZZTIME ?= 60s
.PHONY: fuzz-model
fuzz:
	$(GO) test ./core/safetensors -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME)
fuzz-model:
	$(GO) test ./core/model -run '^$$' -fuzz FuzzModel -fuzztime $(FUZZTIME) -fuzzminimizetime 5s

clean:
	rm -rf bin dist

## dist: the static site in dist/: the Go wasm app, Go's wasm_exec.js, web/, index.html,
## weights/ with its manifest (random dev models from the fixtures when none is shipped),
## the model cards and the images they show, the versioned service worker, and FILE.gz
## beside each compressible file (tools/serve sends them; DIST_GZIP=0 leaves them out).
## DEFAULT_MODEL names the model the page opens with. Only these files are the site's:
## what tests and benchmarks leave in dist/ (bench-smoke/, bench/, screenshots/) is
## never listed in the service worker; do not copy it to a host.
DIST          ?= dist
DEFAULT_MODEL ?= $(if $(wildcard weights/mnist.safetensors),mnist)
SERVE_ADDR    ?= localhost:8080
WEB_FILES     := $(filter-out web/sw.js,$(wildcard web/*.js web/*.css web/*.html web/*.svg web/*.webmanifest))
SHIPPED       := $(wildcard weights/*.safetensors)
DIST_GZIP     ?= 1
DEV_MODELS    := $(if $(SHIPPED),,$(if $(wildcard $(FIXTURES_DIR)/diffusers),-dev-models $(FIXTURES_DIR)))
.PHONY: dist serve test-browser
dist:
	rm -rf $(DIST)/web $(DIST)/weights $(DIST)/index.html $(DIST)/sw.js
	mkdir -p $(DIST)/web $(DIST)/weights
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags=-s -o $(DIST)/web/diffuse.wasm ./wasm/app
	cp $(WASMEXEC)/wasm_exec.js index.html $(DIST)/
	mv $(DIST)/wasm_exec.js $(DIST)/web/
	cp $(WEB_FILES) $(DIST)/web/
	cp wasm/simd/simd_glue.js wasm/simd/simd_thread.js wasm/simd/kernels*.wasm $(DIST)/web/
	$(if $(SHIPPED),cp $(SHIPPED) $(wildcard weights/*.md weights/*.png) $(DIST)/weights/)
	$(GO) run ./tools/manifest -site $(DIST) -sw web/sw.js $(DEV_MODELS) $(if $(DEFAULT_MODEL),-default $(DEFAULT_MODEL)) $(if $(filter 0,$(DIST_GZIP)),-gzip=false)

## serve: build dist/ and serve it on SERVE_ADDR (default localhost:8080)
serve: dist
	$(GO) run ./tools/serve -dir $(DIST) -addr $(SERVE_ADDR)

## test-browser: end-to-end tests in headless Chromium (web/test/e2e; screenshots in dist/screenshots)
test-browser: dist
	cd web && node --test --test-concurrency=1 --test-timeout=600000 test/e2e/*.test.mjs

## test-simd: wasm/simd's tests as js/wasm in Node with the kernels attached through
## wasm/simd/simd_glue.js as a page does (zero-copy over Go's memory, large GEMMs split over
## helper threads): with kernels.wasm, then with kernels_relaxed.wasm (FMA) when this Node
## runs relaxed SIMD; and the glue's threaded GEMM against one thread (threads.test.mjs).
SIMD_EXEC       := $(abspath wasm/simd/testdata/go_js_wasm_exec_simd)
SIMD_RELAXED    := $(shell node --experimental-wasm-relaxed-simd -e 0 2>/dev/null && echo --experimental-wasm-relaxed-simd)
SIMD_RELAXED_OK := $(shell node $(SIMD_RELAXED) -e "process.exit(WebAssembly.validate(require('fs').readFileSync('wasm/simd/kernels_relaxed.wasm'))?0:1)" 2>/dev/null && echo yes)
.PHONY: test-simd bench-simd
test-simd:
	GOROOT=$(GOROOT) GOOS=js GOARCH=wasm $(GO) test -short -exec $(SIMD_EXEC) ./wasm/simd
	$(if $(SIMD_RELAXED_OK),GOROOT=$(GOROOT) KERNELS=$(abspath wasm/simd/kernels_relaxed.wasm) NODE_FLAGS="$(SIMD_RELAXED)" GOOS=js GOARCH=wasm $(GO) test -short -exec $(SIMD_EXEC) ./wasm/simd,@echo "test-simd: this Node has no relaxed SIMD; kernels_relaxed.wasm not run")
	GOROOT=$(GOROOT) GOOS=js GOARCH=wasm $(GO) test -exec $(SIMD_EXEC) ./wasm/app
	node --test wasm/simd/testdata/threads.test.mjs
	$(if $(SIMD_RELAXED_OK),KERNELS=$(abspath wasm/simd/kernels_relaxed.wasm) SHARED=$(abspath wasm/simd/kernels_relaxed_shared.wasm) node $(SIMD_RELAXED) --test wasm/simd/testdata/threads.test.mjs)

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

## bench: our WebGPU and SIMD backends against onnxruntime-web (wasm, 1 thread; webgpu) on every
## shipped model in headless Chromium, plus page load to first image, cold and warm, phase by
## phase (tools/bench/pageload.mjs; BENCHMARKS.md; BENCH_*
## variables set models, backends and iteration counts). ORT runs the slim ONNX graphs shipped in
## tools/bench/onnx (tools/bench/make-onnx.sh regenerates them with PyTorch); then the native
## section (bench-native below; BENCH_NATIVE=0 leaves it out). Results:
## dist/bench/bench-*.json and .md
## bench-gpu: the same in Node with Dawn (npm webgpu) for a machine with a GPU and no browser
## (tools/bench/setup-gpu.sh installs the Vulkan/GLVND libraries)
## bench-native: the native section alone (also the end of make bench): tools/bench/gobench's
## backends (reference, SIMD under wazero, Native where present) at batch 1 and 16, the
## 25-step 16-image `bin/diffuse sample`, and PyTorch on the same networks
## (tools/bench/torch_cpu.py; skipped without PyTorch); dist/bench/bench-native.json and .md.
## BENCH_BROWSER=dist/bench/bench-*.json adds the ratios to that run's browser SIMD figures.
## test-bench-smoke: one iteration of each part of the harness (checks it runs, never times;
## a page load that does not report every phase fails it), and the native section's parsing
## and report tests
.PHONY: bench bench-gpu bench-native test-bench-smoke
bench:
	node tools/bench/run.mjs
bench-gpu:
	XDG_RUNTIME_DIR="$${XDG_RUNTIME_DIR:-/tmp}" node tools/bench/node.mjs
bench-native:
	node tools/bench/native.mjs $(BENCH_BROWSER)
test-bench-smoke:
	node --test tools/bench/native.test.mjs
	BENCH_SMOKE=1 node tools/bench/run.mjs
