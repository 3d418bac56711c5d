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
test: test-native test-wasm

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
