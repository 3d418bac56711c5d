#!/bin/sh
# Runs `make bench-gpu` from tools/bench/.carry (made by pack-gpu.sh) on a
# machine without Go or npm: unpacks the carried files, uses the machine's
# node when it has one (>= 18) or the carried one, and runs node.mjs.
# BENCH_* settings pass through; BENCH_OUT defaults to dist/bench-gpu.
# With "test" first it runs wasm/webgpu's test binary instead (in
# wasm/webgpu, as `go test` would), the other arguments going to it, e.g.
#   sh tools/bench/carry-run.sh test -test.run '^$' -test.bench Latency -test.v
set -eu
cd "$(dirname "$0")/../.."
C="${CARRY_DIR:-tools/bench/.carry}"
unxz_() { # xz may be missing: fall back to Python's lzma
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"; else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
for f in $(find "$C" -name '*.xz'); do
  out="${f%.xz}"
  [ -e "$out" ] || unxz_ "$f" "$out"
done
C="$(cd "$C" && pwd)"
NODE=node
if [ "${CARRY_NODE:-}" = 1 ] || ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
  NODE="$C/node"; chmod +x "$NODE"
fi
echo "carry-run: $($NODE --version) ($NODE)"
if [ "${1:-}" = test ]; then
  shift
  cat > "$C/setup.mjs" <<JS
import { create, globals } from '$C/nm/webgpu/index.js';
Object.assign(globalThis, globals);
const flags = (process.env.DAWN_FLAGS || '').split(',').filter(Boolean);
Object.defineProperty(globalThis, 'navigator', { value: { gpu: create(flags) }, writable: true, configurable: true });
JS
  cd wasm/webgpu
  exec "$NODE" --import="$C/setup.mjs" --stack-size=8192 "$C/go/lib/wasm/wasm_exec_node.js" "$C/webgpu.test.wasm" "$@"
fi
export GOROOT="$C/go" BENCH_WASM="$C/bench.wasm" BENCH_NODE_DIR="$C/nm" BENCH_ONNX="${BENCH_ONNX:-$C/onnx}"
exec "$NODE" tools/bench/node.mjs
