#!/bin/sh
# Runs the test binary packed by pack-gputest.sh on this machine's GPU
# (Dawn on the Vulkan driver), from the repository root. Arguments go to the
# test binary; it runs in wasm/webgpu like `go test` would.
set -eu
C="$(pwd)/.devgpu"
for f in $(find "$C" -name '*.xz'); do [ -e "${f%.xz}" ] || xz -dc "$f" > "${f%.xz}"; done
chmod +x "$C/node"
cat > "$C/setup.mjs" <<JS
import { create, globals } from '$C/nm/webgpu/index.js';
Object.assign(globalThis, globals);
const flags = (process.env.DAWN_FLAGS || '').split(',').filter(Boolean);
Object.defineProperty(globalThis, 'navigator', { value: { gpu: create(flags) }, writable: true, configurable: true });
JS
cd wasm/webgpu
exec "$C/node" --import="$C/setup.mjs" --stack-size=8192 "$C/wasm_exec_node.js" "$C/webgpu.test.wasm" "$@"
