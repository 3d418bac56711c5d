#!/bin/sh
# Packs wasm/webgpu's js/wasm test binary, with what runs it (Go's wasm_exec
# scripts, Dawn from npm 'webgpu', this machine's node), into .devgpu/
# (ignored) for a GPU machine without Go or npm. There, from the repo root:
#   sh tools/bench/run-gputest.sh -test.run TestLatency -test.v
set -eu
cd "$(dirname "$0")/../.."
C=.devgpu
rm -rf "$C" && mkdir -p "$C/nm/webgpu/dist/linux-x64"
GOOS=js GOARCH=wasm go test -c -o "$C/webgpu.test.wasm" ./wasm/webgpu
cp "$(go env GOROOT)/lib/wasm/wasm_exec.js" "$(go env GOROOT)/lib/wasm/wasm_exec_node.js" "$C/"
cp web/node_modules/webgpu/index.js web/node_modules/webgpu/package.json "$C/nm/webgpu/"
cp web/node_modules/webgpu/dist/linux-x64/dawn.node "$C/nm/webgpu/dist/linux-x64/"
xz -T0 -6 "$C/webgpu.test.wasm" "$C/nm/webgpu/dist/linux-x64/dawn.node"
xz -T0 -6 -c "$(command -v node)" > "$C/node.xz"
du -sh "$C"
