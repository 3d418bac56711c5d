#!/bin/sh
# Runs the test binary packed by pack-gputest.sh on this machine's GPU
# (Dawn on the Vulkan driver), from the repository root. Arguments go to the
# test binary; it runs in wasm/webgpu like `go test` would. GPUTEST_DIR
# picks another pack (default .devgpu; tools/bench/.carry works too once the
# test binary and wasm_exec_node.js are copied in, sharing its node and Dawn).
set -eu
C="$(cd "${GPUTEST_DIR:-.devgpu}" && pwd)"
for f in $(find "$C" -name '*.xz'); do [ -e "${f%.xz}" ] || xz -dc "$f" > "${f%.xz}"; done
chmod +x "$C/node"
cat > "$C/setup.mjs" <<JS
import { create, globals } from '$C/nm/webgpu/index.js';
Object.assign(globalThis, globals);
const flags = (process.env.DAWN_FLAGS || '').split(',').filter(Boolean);
Object.defineProperty(globalThis, 'navigator', { value: { gpu: create(flags) }, writable: true, configurable: true });
JS
cd wasm/webgpu
W="$C/wasm_exec_node.js"
[ -e "$W" ] || W="$C/go/lib/wasm/wasm_exec_node.js"
exec "$C/node" --import="$C/setup.mjs" --stack-size=8192 "$W" "$C/webgpu.test.wasm" "$@"
