#!/usr/bin/env bash
# Samples the shipped weights/ models through OUR Go sampler (bin/diffuse, CPU backend) and measures them:
# the numbers and sample grids of the model cards weights/*.md.
#
#   bash tools/train/eval_go_samples.sh mnist       # 10 per digit, DDIM 25 steps, guidance 2 -> eval_mnist.py
#   bash tools/train/eval_go_samples.sh emoji       # 16 samples, DDIM 25 steps -> grid + nearest-training-image check
#   bash tools/train/eval_go_samples.sh scoresde    # 16 samples, Euler-Maruyama 500 steps (SDE_STEPS) -> grid
#   bash tools/train/eval_go_samples.sh likelihood  # ScoreNet bits/dim on held-out digits
#   bash tools/train/eval_go_samples.sh likelihood_torch  # independent PyTorch check of those bits/dim (after likelihood)
#   bash tools/train/eval_go_samples.sh toy2d       # 2000 points, DDPM 1000 steps -> NN distance + scatter PNG
#   bash tools/train/eval_go_samples.sh toyfew      # toy2d-flow/-reflow/-cm: 2000 points at 1, 2, 4, 25 steps -> NN distances + 1-vs-25 PNGs
#   bash tools/train/eval_go_samples.sh table       # every sampler x 10/25/50 steps on MNIST -> $OUT/table.md
#   TABLE_KIND=emoji bash tools/train/eval_go_samples.sh table   # the same on the emoji model -> $OUT/table-emoji.md
#   bash tools/train/eval_go_samples.sh all
#
# Env: OUT (default /tmp/go_eval), N_PER (MNIST samples per digit, 10), SEED (base seed, 0),
#      LIK_N (held-out digits for the likelihood, 16), PY (python with numpy+torch, /usr/bin/python3),
#      MNIST_W, EMOJI_W (weights to sample, default the shipped ones), DIGITS (sampling order of the ten digits,
#      "0 1 2 3 4 5 6 7 8 9"; the grid and eval need all ten),
#      CLS (classifier folder, tools/train/out/gpu_run/classifier), DATA (tools/train/data),
#      BACKEND (passed to diffuse --backend when set), GUIDANCE (table: 1, the model alone), STEPS_LIST (table: "10 25 50"), RK45_TOL (table: 1e-3),
#      SAMPLERS (table: every sampler of `diffuse sample --sampler list`), TABLE_W (table: weights/mnist.safetensors),
#      UNCOND (table: set for an unconditional model — no class, no guidance; digit spread instead of accuracy),
#      RANGE01 (table: set when the model's data range is [0,1], e.g. scoresde-mnist), EXTRA (table: more
#      `diffuse sample` flags, e.g. --clip-denoised), TAG (table: suffix for the rows, table$TAG.md and the grids).
#      TABLE_KIND (table: mnist, or emoji for an unconditional 32x32 RGB emoji model, TABLE_W default
#      weights/emoji.safetensors, scored by eval_emoji.py), N_EMOJI (emoji table: samples per cell, 200),
#      EMOJI_BATCH (emoji table: samples per network call, 50), EMOJI_CLS (tools/train/out/emoji_classifier).
# Writes the grids to $OUT/*.png (copy them to weights/NAME-samples.png by hand) and the numbers to $OUT/*.json|.txt.
# Cost on 2 contended vCPUs: see weights/*.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-/tmp/go_eval}"
N_PER="${N_PER:-10}"
SEED="${SEED:-0}"
LIK_N="${LIK_N:-16}"
PY="${PY:-/usr/bin/python3}"
CLS="${CLS:-tools/train/out/gpu_run/classifier}"
DATA="${DATA:-tools/train/data}"
BIN="$ROOT/bin/diffuse"
mkdir -p "$OUT"
go build -o "$BIN" ./tools/diffuse
t() { /usr/bin/time -f "  [%e s wall, %U s user]" "$@"; }

# mnist_digits SAMPLER STEPS GUIDANCE WEIGHTS: N_PER samples of each digit (seed SEED+D, one network batch per
# digit) into $OUT/mnist_d$D.npy, stacked into $OUT/mnist_go_x.npy / _y.npy with a grid $OUT/mnist-samples.png;
# the CLI's summary lines ("... N network calls in T s") go to $OUT/calls.txt.
mnist_digits() {
  local s="$1" k="$2" g="$3" w="$4"
  local stepflag=(--steps "$k"); [ "$s" = rk45 ] && stepflag=(--rtol "${RK45_TOL:-1e-3}" --atol "${RK45_TOL:-1e-3}")
  : > "$OUT/calls.txt"
  rm -f "$OUT"/mnist_d?.npy
  # UNCOND=1: an unconditional model (no --class, no guidance; batch D still uses seed SEED+D); RANGE01=1: the
  # model's data range is [0,1] (scoresde-mnist), rescaled to [-1,1] for the grid and eval_mnist.py.
  # EXTRA: more `diffuse sample` flags for every run (e.g. --clip-denoised).
  local condflag
  for D in ${DIGITS:-0 1 2 3 4 5 6 7 8 9}; do
    condflag=(--class "$D" --guidance "$g"); [ -n "${UNCOND:-}" ] && condflag=()
    "$BIN" sample --weights "$w" --sampler "$s" "${stepflag[@]}" "${condflag[@]}" ${BACKEND:+--backend "$BACKEND"} ${EXTRA:-} \
      --n "$N_PER" --batch "$N_PER" --seed $((SEED + D)) --out-npy "$OUT/mnist_d$D.npy" \
      2> >(tr '\r' '\n' | grep 'network calls in' >> "$OUT/calls.txt")
  done
  wait
  "$PY" - "$OUT" "$N_PER" "${RANGE01:-}" <<'EOF'
import sys, numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
x = np.concatenate([np.load("%s/mnist_d%d.npy" % (out, d)) for d in range(10)]).astype(np.float32)
if sys.argv[3]:
    x = x * 2 - 1
y = np.repeat(np.arange(10), n).astype(np.int64)
np.save(out + "/mnist_go_x.npy", x); np.save(out + "/mnist_go_y.npy", y)
# grid: one row per digit, first 10 samples of each, 2 px gaps, pixel = round((v+1)/2*255) as `diffuse sample --out-png`
k, g = min(n, 10), 2
img = np.full((10 * (28 + g) - g, k * (28 + g) - g), 0, np.uint8)
for d in range(10):
    for j in range(k):
        v = np.clip(np.round((x[d * n + j, 0] + 1) / 2 * 255), 0, 255).astype(np.uint8)
        img[d * 30:d * 30 + 28, j * 30:j * 30 + 28] = v
Image.fromarray(img).save(out + "/mnist-samples.png")
print("samples", x.shape, "labels", np.bincount(y).tolist())
EOF
}

# emoji_batch SAMPLER STEPS WEIGHTS: N_EMOJI unconditional samples of a [-1,1] RGB model in one `diffuse sample`
# run (seed SEED; sample i gets the same noise whatever EMOJI_BATCH is), EMOJI_BATCH per network call, into
# $OUT/emoji_go_x.npy with a grid of the first 40 $OUT/emoji-table.png; the summary line goes to $OUT/calls.txt
# (its network calls are summed over the ceil(N_EMOJI/EMOJI_BATCH) batches).
emoji_batch() {
  local s="$1" k="$2" w="$3"
  local stepflag=(--steps "$k"); [ "$s" = rk45 ] && stepflag=(--rtol "${RK45_TOL:-1e-3}" --atol "${RK45_TOL:-1e-3}")
  : > "$OUT/calls.txt"
  rm -f "$OUT/emoji_go_x.npy"
  "$BIN" sample --weights "$w" --sampler "$s" "${stepflag[@]}" ${BACKEND:+--backend "$BACKEND"} ${EXTRA:-} \
    --n "${N_EMOJI:-200}" --batch "${EMOJI_BATCH:-50}" --seed "$SEED" --out-npy "$OUT/emoji_go_x.npy" \
    2> >(tr '\r' '\n' | grep 'network calls in' >> "$OUT/calls.txt")
  wait
  "$PY" - "$OUT" <<'EOF2'
import sys, numpy as np
from PIL import Image
out = sys.argv[1]
x = np.load(out + "/emoji_go_x.npy")
# grid: 4 rows of 10, 2 px white gaps, pixel = round((v+1)/2*255) as `diffuse sample --out-png`
k = min(len(x), 40)
img = np.full((4 * 34 - 2, 10 * 34 - 2, 3), 255, np.uint8)
for i in range(k):
    r, c = divmod(i, 10)
    img[r * 34:r * 34 + 32, c * 34:c * 34 + 32] = np.clip(np.round((x[i].transpose(1, 2, 0) + 1) / 2 * 255), 0, 255).astype(np.uint8)
Image.fromarray(img).save(out + "/emoji-table.png")
EOF2
}

mnist() {
  echo "== MNIST: $N_PER per digit, ddim 25 steps, guidance 2, seeds $SEED+D"
  t mnist_digits ddim 25 2 "${MNIST_W:-weights/mnist.safetensors}"
  "$PY" tools/train/eval_mnist.py --samples "$OUT/mnist_go_x.npy" --labels "$OUT/mnist_go_y.npy" \
    --classifier "$CLS" --data "$DATA" --device cpu --json "$OUT/eval_mnist_go.json"
}

emoji() {
  echo "== emoji: 16 samples, ddim 25 steps, seed $SEED"
  t "$BIN" sample --weights "${EMOJI_W:-weights/emoji.safetensors}" --sampler ddim --steps 25 --n 16 --seed "$SEED" \
    --quiet --out-png "$OUT/emoji-samples.png" --out-npy "$OUT/emoji_go.npy"
  # copy check, not a quality metric: RMS pixel distance ([0,1] scale) from each sample to its nearest
  # training emoji, next to each training emoji's distance to its nearest other training emoji
  "$PY" - "$OUT" "$DATA" <<'EOF2'
import sys, numpy as np, torch
out, data = sys.argv[1], sys.argv[2]
x = np.load(out + "/emoji_go.npy").astype(np.float32)
s = torch.from_numpy(((np.clip(x, -1, 1) + 1) / 2).reshape(len(x), -1))
d = np.load(data + "/emoji32.npz")["x"].astype(np.float32) / 255.0
r = torch.from_numpy(d.transpose(0, 3, 1, 2).reshape(len(d), -1).copy())
nn = (torch.cdist(s, r) / s.shape[1] ** 0.5).min(1).values
rr = torch.cdist(r, r) / s.shape[1] ** 0.5
rr.fill_diagonal_(float("inf"))
loo = rr.min(1).values
print("samples -> nearest training emoji, RMS: mean %.3f, min %.3f, max %.3f" % (nn.mean(), nn.min(), nn.max()))
print("training emoji -> nearest other training emoji, RMS: mean %.3f, median %.3f" % (loo.mean(), loo.median()))
EOF2
}

scoresde() {
  echo "== ScoreNet: 16 samples, Euler-Maruyama ${SDE_STEPS:-500} steps, seed $SEED"
  t "$BIN" sample --weights weights/scoresde-mnist.safetensors --sampler em --steps "${SDE_STEPS:-500}" --n 16 \
    --batch 16 --seed "$SEED" --quiet --out-png "$OUT/scoresde-mnist-samples.png" --out-npy "$OUT/scoresde_go.npy"
}

likelihood() {
  echo "== ScoreNet likelihood: first $LIK_N held-out digits (round robin over classes), dequantised, offset 8"
  "$PY" - "$DATA" "$OUT" "$LIK_N" <<'EOF'
import sys, numpy as np
data, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
z = np.load(data + "/mnist.npz"); x, y = z["x"], z["y"]
# held-out split of common.load_mnist: the last 100 digits of each class (package order)
held = [np.nonzero(y == c)[0][-100:] for c in range(10)]
idx = [held[i % 10][i // 10] for i in range(n)]
a = (x[idx].astype(np.float32) / 255.0)[:, None]  # ScoreNet data range [0,1]
np.save(out + "/heldout%d.npy" % n, a)
print("held-out digits", a.shape, "classes", y[idx].tolist())
EOF
  t "$BIN" likelihood --weights weights/scoresde-mnist.safetensors --x "$OUT/heldout$LIK_N.npy" \
    --dequantize --offset 8 --batch 8 --seed "$SEED" --each | tee "$OUT/likelihood.txt"
}

likelihood_torch() {
  # Independent check of `diffuse likelihood` in PyTorch on the tutorial's fp32 ckpt.pth with weights rounded to
  # fp16 as in the shipped file: probability-flow ODE dx/dt = -g(t)^2/2 * score, t from eps=1e-3 to 1, RK4 with
  # ${LIK_TORCH_STEPS:-100} steps uniform in log marginal std, one Rademacher probe per image (autograd
  # Hutchinson trace), prior N(0, std(1)^2), tutorial dequantisation (255x+u)/256, +8 bits/dim.
  # Different probes and dequantisation noise than the Go run: expect agreement within a few standard errors.
  "$PY" - "$OUT/heldout$LIK_N.npy" "${LIK_TORCH_N:-8}" "${LIK_TORCH_STEPS:-100}" <<'EOF2'
import sys, math, time, numpy as np, torch
sys.path.insert(0, "tools/train")
from train_scoresde import ScoreNet, SIGMA
path, n, steps, eps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 1e-3
sd = torch.load("tools/train/out/gpu_run/scoresde/ckpt.pth", map_location="cpu")
m = ScoreNet(); m.load_state_dict({k[len("module."):]: v.half().float() for k, v in sd.items()}); m.eval()
x0 = torch.from_numpy(np.load(path))[:n]
g = torch.Generator().manual_seed(0)
x = (x0 * 255.0 + torch.rand(x0.shape, generator=g)) / 256.0
z = (torch.randint(0, 2, x.shape, generator=g) * 2 - 1).float()
ls = math.log(SIGMA)
std = lambda t: math.sqrt((SIGMA ** (2 * t) - 1) / (2 * ls))
ss = np.exp(np.linspace(math.log(std(eps)), math.log(std(1.0)), steps + 1))
ts = [eps] + [math.log(1 + 2 * ls * s * s) / (2 * ls) for s in ss[1:-1]] + [1.0]
def f(x, t):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        dx = -0.5 * SIGMA ** (2 * t) * m(x, torch.full((x.shape[0],), t))  # the ScoreNet output is the score
        div = (torch.autograd.grad((dx * z).sum(), x)[0] * z).flatten(1).sum(1)
    return dx.detach(), div.detach()
t0, logdet = time.time(), torch.zeros(x.shape[0])
for a, b in zip(ts[:-1], ts[1:]):
    h = b - a
    k1, d1 = f(x, a); k2, d2 = f(x + h / 2 * k1, a + h / 2); k3, d3 = f(x + h / 2 * k2, a + h / 2); k4, d4 = f(x + h * k3, b)
    x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4); logdet += h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
N, s1 = x[0].numel(), std(1.0)
prior = -N / 2 * math.log(2 * math.pi * s1 ** 2) - (x ** 2).flatten(1).sum(1) / (2 * s1 ** 2)
bpd = -(prior + logdet) / math.log(2) / N + 8
print("PyTorch RK4 %d steps: bits/dim %.4f +- %.4f over the first %d images (%d network calls, %.0f s)" % (
    steps, bpd.mean(), bpd.std() / math.sqrt(len(bpd)), len(bpd), 4 * steps, time.time() - t0))
print("\t".join("%.4f" % v for v in bpd.tolist()))
EOF2
}

toy2d() {
  echo "== toy2d: 2000 points, ddpm 1000 steps, seed $SEED"
  t "$BIN" sample --weights weights/toy2d.safetensors --sampler ddpm --steps 1000 --n 2000 --batch 2000 \
    --seed "$SEED" --quiet --out-npy "$OUT/toy2d_go.npy"
  # the training sanity metric of train_toy2d.py, same reference sets (seeds 999 and 998)
  "$PY" - "$OUT" <<'EOF2'
import sys, json, numpy as np, torch
sys.path.insert(0, "tools/train")
from train_toy2d import swiss_roll, nn_dist, scatter_png
out = sys.argv[1]
xs = torch.from_numpy(np.load(out + "/toy2d_go.npy").reshape(-1, 2).astype(np.float32))
ref = swiss_roll(10000, torch.Generator().manual_seed(999), "cpu")
ref2 = swiss_roll(len(xs), torch.Generator().manual_seed(998), "cpu")
r = {"n": len(xs), "mean_nn_dist_to_data": nn_dist(xs, ref), "mean_nn_dist_real_floor": nn_dist(ref2, ref),
     "mean_nn_dist_data_to_samples": nn_dist(ref, xs), "mean_nn_dist_data_to_real": nn_dist(ref, ref2)}
json.dump(r, open(out + "/toy2d_go.json", "w"), indent=2)
print(json.dumps(r))
scatter_png(out + "/toy2d-samples.png", xs.numpy(), ref.numpy())
EOF2
}

# toyfew: the few-step toys of train_toy2d_flow.py (issue 21), each with its own sampler (flow_euler for the flow
# and reflow models, the multistep consistency sampler for the CM; seed SEED) at 1, 2, 4 and 25 steps, 2000
# points each: the toy2d metrics of each into $OUT/toyfew.json, and $OUT/NAME-samples.png, the 1-step cloud
# beside the 25-step one (4-step for the CM, whose default grid has 40 levels).
toyfew() {
  local name s k
  for name in toy2d-flow toy2d-reflow toy2d-cm; do
    s=flow_euler; [ "$name" = toy2d-cm ] && s=consistency
    for k in 1 2 4 25; do
      echo "== $name: 2000 points, $s $k steps, seed $SEED"
      t "$BIN" sample --weights "weights/$name.safetensors" --sampler "$s" --steps "$k" --n 2000 --batch 2000 \
        --seed "$SEED" --quiet --out-npy "$OUT/${name}_$k.npy"
    done
  done
  "$PY" - "$OUT" <<'EOF2'
import sys, json, numpy as np, torch
sys.path.insert(0, "tools/train")
from train_toy2d import swiss_roll, nn_dist, scatter_png
out = sys.argv[1]
ref = swiss_roll(10000, torch.Generator().manual_seed(999), "cpu")
ref2 = swiss_roll(2000, torch.Generator().manual_seed(998), "cpu")
res = {"real_floor": nn_dist(ref2, ref), "data_to_real": nn_dist(ref, ref2)}
for name in ("toy2d-flow", "toy2d-reflow", "toy2d-cm"):
    for k in (1, 2, 4, 25):
        xs = torch.from_numpy(np.load("%s/%s_%d.npy" % (out, name, k)).reshape(-1, 2).astype(np.float32))
        res["%s/%d" % (name, k)] = {"samples_to_data": nn_dist(xs, ref), "data_to_samples": nn_dist(ref, xs)}
    from PIL import Image
    many = 4 if name == "toy2d-cm" else 25
    panels = []
    for k in (1, many):
        xs = np.load("%s/%s_%d.npy" % (out, name, k)).reshape(-1, 2)
        scatter_png("%s/p.png" % out, xs, ref.numpy())
        panels.append(np.array(Image.open("%s/p.png" % out)))
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([panels[0], gap, panels[1]], 1)).save("%s/%s-samples.png" % (out, name))
json.dump(res, open(out + "/toyfew.json", "w"), indent=2)
print(json.dumps(res, indent=1))
EOF2
}

# table: README's and the card's per-sampler quality table. Every sampler at every step count of STEPS_LIST
# (rk45 once, its steps being adaptive, at rtol = atol = RK45_TOL, default 1e-3: the page's suggestion), the same
# seeds in every cell, network calls per sample (a guided call evaluates the conditional and unconditional batch
# together) and wall time. TABLE_KIND=mnist (default): N_PER per digit (n = 10*N_PER), guidance GUIDANCE, accuracy
# of the requested digit and FD from eval_mnist.py. TABLE_KIND=emoji: N_EMOJI unconditional samples, FD to the
# 3,786 real emoji and its real-vs-real floor (mean +- sd over 5 draws) from eval_emoji.py.
# Each row goes to $OUT/table$TAG.md (table-emoji$TAG.md) as its cell finishes; each cell's grid to
# $OUT/table-SAMPLER-STEPS$TAG.png (table-emoji-...).
table() {
  local kind="${TABLE_KIND:-mnist}"
  [ "$kind" = mnist ] || [ "$kind" = emoji ] || { echo "TABLE_KIND must be mnist or emoji, not $kind"; exit 2; }
  local w g="${GUIDANCE:-1}" pre=table
  if [ "$kind" = emoji ]; then w="${TABLE_W:-weights/emoji.safetensors}" pre=table-emoji; else w="${TABLE_W:-weights/mnist.safetensors}"; fi
  local list="${SAMPLERS:-$("$BIN" sample --sampler list | awk '/^[a-z]/{print $1}')}"
  local md="$OUT/$pre${TAG:-}.md"
  if [ "$kind" = emoji ]; then
    [ -f "${EMOJI_CLS:-tools/train/out/emoji_classifier}/config.json" ] || {
      echo "no emoji classifier in ${EMOJI_CLS:-tools/train/out/emoji_classifier}: run tools/train/train_emoji_classifier.py"; exit 2; }
    {
      echo "<!-- $(basename "$w"): ${N_EMOJI:-200} unconditional samples per cell (seed $SEED, batches of ${EMOJI_BATCH:-50})${EXTRA:+, flags $EXTRA}, rk45 tolerances ${RK45_TOL:-1e-3}, backend ${BACKEND:-default}, $(nproc) cores, $(date -u +%F); FD in eval_emoji.py's classifier features vs all 3,786 real emoji; floor = ${N_EMOJI:-200} real emoji vs the same 3,786, mean ± sd over 5 draws -->"
      echo "| sampler | steps | network calls / sample | FD | floor | wall s |"
      echo "|---|---:|---:|---:|---:|---:|"
    } > "$md"
  else
    {
      echo "<!-- $(basename "$w"): $((10 * N_PER)) samples per cell ($N_PER per digit, seeds $SEED+digit)${UNCOND:+ unconditional}${EXTRA:+, flags $EXTRA}, guidance $g, rk45 tolerances ${RK45_TOL:-1e-3}, backend ${BACKEND:-default}, $(nproc) cores, $(date -u +%F) -->"
      echo "| sampler | steps | network calls / sample | requested digit | FD | wall s |"
      echo "|---|---:|---:|---:|---:|---:|"
    } > "$md"
  fi
  # step counts outermost, so a cut-short run still has every sampler at the smaller counts
  local cells=() k s
  for k in ${STEPS_LIST:-10 25 50}; do for s in $list; do [ "$s" != rk45 ] && cells+=("$s:$k"); done; done
  [[ " $list " == *" rk45 "* ]] && cells+=("rk45:adaptive")
  for c in "${cells[@]}"; do
    s="${c%%:*}" k="${c##*:}"
    {
      echo "== $pre: $s, steps $k"
      local t0; t0=$(date +%s.%N)
      local ok=1
      if [ "$kind" = emoji ]; then
        emoji_batch "$s" "${k/adaptive/0}" "$w" > /dev/null 2>&1 || ok=
      else
        mnist_digits "$s" "${k/adaptive/0}" "$g" "$w" > /dev/null 2>&1 || ok=
      fi
      if [ -z "$ok" ]; then
        echo "| $s${TAG:-} | $k | – | does not run this model | – | – |" >> "$md"; tail -1 "$md"; continue
      fi
      local dt; dt=$(echo "$(date +%s.%N) - $t0" | bc)
      if [ "$kind" = emoji ]; then
        "$PY" tools/train/eval_emoji.py --samples "$OUT/emoji_go_x.npy" --classifier "${EMOJI_CLS:-tools/train/out/emoji_classifier}" \
          --data "$DATA" --json "$OUT/cell.json" > /dev/null
        cp "$OUT/emoji-table.png" "$OUT/$pre-$s-$k${TAG:-}.png"
      else
        local lab=(--labels "$OUT/mnist_go_y.npy"); [ -n "${UNCOND:-}" ] && lab=()
        "$PY" tools/train/eval_mnist.py --samples "$OUT/mnist_go_x.npy" "${lab[@]}" \
          --classifier "$CLS" --data "$DATA" --device cpu --json "$OUT/cell.json" > /dev/null
        cp "$OUT/mnist-samples.png" "$OUT/$pre-$s-$k${TAG:-}.png"
      fi
      "$PY" - "$OUT" "$s" "$k" "$dt" "${TAG:-}" "$kind" "${N_EMOJI:-200}" "${EMOJI_BATCH:-50}" >> "$md" <<'EOF2'
import sys, json, re
out, s, k, dt, tag, kind = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5], sys.argv[6]
r = json.load(open(out + "/cell.json"))
calls = [int(m.group(1)) for m in re.finditer(r"(\d+) network calls in", open(out + "/calls.txt").read())]
if kind == "emoji":
    n, b = int(sys.argv[7]), int(sys.argv[8])
    per = calls[0] / -(-n // b)  # one run, its calls summed over its ceil(n/b) batches
    print("| %s%s | %s | %.0f | %.2f | %.2f ± %.2f | %.0f |" % (s, tag, k, per, r["fd"], r["fd_floor"], r["fd_floor_sd"], dt))
    sys.exit()
per = sum(calls) / len(calls)  # one batch per digit: a run's calls are each sample's calls
# unconditional models: no requested digit; the spread of the classifier's digits (fewest-most of 10) instead
acc = "%.1f%%" % (100 * r["accuracy"]) if "accuracy" in r else "digits %d–%d" % (min(r["pred_histogram"]), max(r["pred_histogram"]))
print("| %s%s | %s | %.0f | %s | %.2f | %.0f |" % (s, tag, k, per, acc, r["fd"], dt))
EOF2
      tail -1 "$md"
    }
  done
}

case "${1:-all}" in
  mnist) mnist ;; table) table ;; emoji) emoji ;; toy2d) toy2d ;; toyfew) toyfew ;; scoresde) scoresde ;; likelihood) likelihood ;; likelihood_torch) likelihood_torch ;;
  all) mnist; emoji; scoresde; likelihood; likelihood_torch; toy2d ;;
  *) echo "usage: $0 mnist|table|emoji|scoresde|likelihood|likelihood_torch|toy2d|toyfew|all"; exit 2 ;;
esac
