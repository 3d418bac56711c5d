#!/usr/bin/env bash
# Regenerates the shipped slim ONNX graphs, tools/bench/onnx/<model>.slim.onnx
# and <model>.slim.json, that make bench and make test-bench-smoke run under
# onnxruntime-web:
#
#   tools/bench/make-onnx.sh [MODEL ...]     (default: every shipped model)
#
# export_onnx.py (PyTorch, /usr/bin/python3: Debian's python3-torch will do)
# exports each network from our own weights/<model>.safetensors, then
# onnxweights.mjs replaces every initializer equal to one of those tensors by
# a reference into the weights file the bench rebuilds from the same
# safetensors. So the graphs hold no weights (kilobytes, not megabytes), and
# retrained weights of the same network need no new export; a changed
# network does (the bench then fails naming the missing tensor, or the smoke
# run's comparison with our backends fails).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-/usr/bin/python3}"
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "make-onnx.sh: $PYTHON cannot import torch (apt-get install python3-torch, or set PYTHON)" >&2
  exit 2
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" tools/bench/export_onnx.py --out "$tmp" "$@"
mkdir -p tools/bench/onnx
for f in "$tmp"/*.onnx; do
  m="$(basename "$f" .onnx)"
  node tools/bench/onnxweights.mjs slim "weights/$m.safetensors" "$f"
  cp "$tmp/$m.slim.onnx" "$tmp/$m.slim.json" tools/bench/onnx/
done
