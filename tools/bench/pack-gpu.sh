#!/bin/sh
# Packs what `make bench-gpu` needs into tools/bench/.carry (gitignored) for
# an offline x86-64 Linux machine with a GPU and no Go, npm or network (the
# project's lent GPU machines): the bench wasm and Go's wasm_exec.js, a trimmed
# web/node_modules (webgpu's linux-x64 dawn.node, onnxruntime-web's wasm and
# webgpu builds), the slim ONNX files (tools/bench/onnxweights.mjs: weights
# are rebuilt there from weights/*.safetensors), wasm/webgpu's js/wasm test
# binary and, unless NODE=none, this machine's node binary (xz). Run there:
# sh tools/bench/carry-run.sh (the benchmark) or
# sh tools/bench/carry-run.sh test -test.run '^$' -test.bench Latency -test.v.
set -eu
cd "$(dirname "$0")/../.."
C=tools/bench/.carry
rm -rf "$C"
mkdir -p "$C/go/lib/wasm" "$C/nm/webgpu/dist/linux-x64" "$C/nm/onnxruntime-web/dist" "$C/onnx"
GOOS=js GOARCH=wasm go build -trimpath -ldflags=-s -o "$C/bench.wasm" ./tools/bench/wasm
GOOS=js GOARCH=wasm go test -c -o "$C/webgpu.test.wasm" ./wasm/webgpu
cp "$(go env GOROOT)/lib/wasm/wasm_exec.js" "$(go env GOROOT)/lib/wasm/wasm_exec_node.js" "$C/go/lib/wasm/"
NM=web/node_modules
cp $NM/webgpu/index.js $NM/webgpu/package.json "$C/nm/webgpu/"
cp $NM/webgpu/dist/linux-x64/dawn.node "$C/nm/webgpu/dist/linux-x64/"
cp $NM/onnxruntime-web/package.json "$C/nm/onnxruntime-web/"
for f in ort.wasm.min.mjs ort.webgpu.min.mjs ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm \
         ort-wasm-simd-threaded.asyncify.mjs ort-wasm-simd-threaded.asyncify.wasm; do
  cp "$NM/onnxruntime-web/dist/$f" "$C/nm/onnxruntime-web/dist/"
done
ls tools/bench/onnx/*.onnx >/dev/null 2>&1 || { echo "pack-gpu: no ONNX files: run /usr/bin/python3 tools/bench/export_onnx.py first (ORT will be skipped there)"; }
ls tools/bench/onnx/*.slim.onnx >/dev/null 2>&1 || node tools/bench/onnxweights.mjs slim || true
cp tools/bench/onnx/*.slim.onnx tools/bench/onnx/*.slim.json "$C/onnx/" 2>/dev/null || true
# Big binaries travel compressed.
xz -T0 -6 "$C/nm/webgpu/dist/linux-x64/dawn.node" "$C/nm/onnxruntime-web/dist/"*.wasm "$C/bench.wasm" "$C/webgpu.test.wasm"
if [ "${NODE:-}" != none ]; then xz -T0 -6 -c "$(command -v node)" > "$C/node.xz"; fi
du -sh "$C"
