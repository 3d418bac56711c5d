#!/usr/bin/env bash
# Trains every model of tools/train in one go, as parallel streams on one GPU, then samples + evaluates
# MNIST and the ScoreNet with the classifier, and packs the small results into $OUT.
#
#   GPU (one H100, no network):  OUT=/some/dir bash tools/train/gpu_train.sh
#   CPU smoke test (here):       DEVICE=cpu QUICK=1 bash tools/train/gpu_train.sh
#
# Needs tools/train/data/ from `bash tools/train/fetch_data.sh` (gitignored: carry it to the GPU box).
# Time budget (training loops; each stops at its minute budget or step count, whichever comes first):
#   classifier 1 min, MNIST DDPM 4 min, ScoreNet 3 min, toy2d 1.5 min, emoji 5 min (all in parallel)
#   then ~1 min of sampling/eval/packing  => about 6-7 min wall in total.
# Override with env: MNIST_MIN, SDE_MIN, TOY_MIN, CLS_MIN, EMOJI_MIN, THREADS (per process).
#
# $OUT receives (each file < 16 MiB, nothing deeper than $OUT/file):
#   mnist.tar        mnist/ (diffusers folder, EMA fp32) + classifier/ + eval/ (eval_mnist{,_cfg1}.json, eval_scoresde.json, logs)
#   scoresde_toy.tar scoresde/ (ckpt.pth, 'module.' keys) + toy2d/ (toy2d.safetensors)
#   emoji.tar        emoji/ (config.json, diffusion_pytorch_model.fp16.safetensors, scheduler_config.json, ...)
#   run.log          everything this script printed;   summary.json  key numbers
# Full-size outputs (fp32 emoji weights, checkpoints) stay in $WORK (default tools/train/out/gpu_run).
# The few-step MNIST models (rectified flow; 1-2-step consistency model by ECT from weights/mnist.safetensors)
# have their own one-command run, tools/train/gpu_train_fewstep.sh (about 9-10 min; it reuses this run's classifier).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
# The MNIST recipe since 2026-12-07 (weights/mnist.md, "Why the ODE samplers were noisy"): v-prediction
# (Salimans & Ho 2022) with Min-SNR-5 weighting (Hang et al. 2023) trains x0 at high noise, where the
# epsilon-trained model was far off; EMA 0.9995 over a longer run. MNIST_RECIPE="" gives the old one.
MNIST_RECIPE="${MNIST_RECIPE---prediction v_prediction --loss-weighting min_snr --min-snr-gamma 5 --ema-decay 0.9995}"
OUT="${OUT:-$HERE/out/gpu_out}"
WORK="${WORK:-$HERE/out/gpu_run}"
DATA="${DATA:-$HERE/data}"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif python3 -c 'import torch' 2>/dev/null; then PY=python3
else PY=/usr/bin/python3; fi
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/run.log") 2>&1
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
echo "== gpu_train.sh start $(date -u +%FT%TZ)  device=$DEVICE quick=$QUICK python=$PY"
"$PY" -c 'import sys, torch, platform; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "", platform.platform())'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if [ ! -f "$DATA/mnist.npz" ] || [ ! -f "$DATA/emoji32.npz" ]; then
  echo "missing $DATA/{mnist,emoji32}.npz: run tools/train/fetch_data.sh first (and carry tools/train/data)"; exit 2
fi

echo "== [$(el)s] unet2d vs diffusers fixtures"
"$PY" "$HERE/test_unet2d.py" 2>&1 | tail -8

if [ "$QUICK" = "1" ]; then
  THREADS="${THREADS:-1}"
  C="--device $DEVICE --threads $THREADS --no-onnx --log-every 5 --ckpt-every 10 --data $DATA"
  CLS_ARGS="--steps 20 --batch 32"
  MNIST_ARGS="--steps 20 --batch 16 --n-samples 40 --ddim-steps 4 $MNIST_RECIPE"
  SDE_ARGS="--steps 20 --batch 16 --n-samples 40 --sde-steps 5"
  TOY_ARGS="--steps 50 --batch 256 --n-samples 200"
  EMOJI_ARGS="--steps 10 --batch 8 --n-samples 8 --ddim-steps 4"
  MNIST_EVAL_N=40; MNIST_EVAL_STEPS=4
else
  THREADS="${THREADS:-2}"
  C="--device $DEVICE --threads $THREADS --no-onnx --log-every 200 --ckpt-every 2000 --data $DATA"
  CLS_ARGS="--steps 3000 --batch 256 --max-minutes ${CLS_MIN:-1.0}"
  MNIST_ARGS="--steps 100000 --batch 256 --max-minutes ${MNIST_MIN:-8.0} --n-samples 1000 --ddim-steps 50 --cfg 2.0 $MNIST_RECIPE"
  SDE_ARGS="--steps 100000 --batch 256 --max-minutes ${SDE_MIN:-3.0} --n-samples 1000 --sde-steps 500"
  TOY_ARGS="--steps 20000 --batch 1024 --max-minutes ${TOY_MIN:-1.5} --n-samples 2000"
  EMOJI_ARGS="--steps 100000 --batch 128 --max-minutes ${EMOJI_MIN:-5.0} --n-samples 64 --ddim-steps 50"
  MNIST_EVAL_N=1000; MNIST_EVAL_STEPS=50
fi

echo "== [$(el)s] training (parallel streams)"
declare -A PIDS
"$PY" "$HERE/train_classifier.py" $C $CLS_ARGS --out "$WORK/classifier" > "$WORK/classifier.stdout" 2>&1 & PIDS[classifier]=$!
"$PY" "$HERE/train_mnist.py" $C $MNIST_ARGS --out "$WORK/mnist" --samples-npy "$WORK/mnist_samples" > "$WORK/mnist.stdout" 2>&1 & PIDS[mnist]=$!
"$PY" "$HERE/train_scoresde.py" $C $SDE_ARGS --out "$WORK/scoresde" --samples-npy "$WORK/scoresde_samples" > "$WORK/scoresde.stdout" 2>&1 & PIDS[scoresde]=$!
"$PY" "$HERE/train_toy2d.py" $C $TOY_ARGS --out "$WORK/toy2d" > "$WORK/toy2d.stdout" 2>&1 & PIDS[toy2d]=$!
"$PY" "$HERE/train_emoji.py" $C $EMOJI_ARGS --out "$WORK/emoji" > "$WORK/emoji.stdout" 2>&1 & PIDS[emoji]=$!

declare -A RC
FAILED=0
for name in classifier toy2d scoresde mnist emoji; do
  wait "${PIDS[$name]}"; RC[$name]=$?
  echo "== [$(el)s] $name finished rc=${RC[$name]}"
  tail -n 4 "$WORK/$name.stdout"
  [ "${RC[$name]}" = "0" ] || { FAILED=1; echo "---- $name stdout (tail) ----"; tail -n 40 "$WORK/$name.stdout"; }
done

echo "== [$(el)s] evaluation"
mkdir -p "$WORK/eval"
if [ "${RC[classifier]}" = "0" ] && [ "${RC[mnist]}" = "0" ]; then
  "$PY" "$HERE/eval_mnist.py" --samples "$WORK/mnist_samples_x.npy" --labels "$WORK/mnist_samples_y.npy" \
    --classifier "$WORK/classifier" --data "$DATA" --device "$DEVICE" --json "$WORK/eval/eval_mnist.json" \
    || FAILED=1
fi
if [ "${RC[classifier]}" = "0" ] && [ "${RC[mnist]}" = "0" ]; then
  # the same 1000 labels without guidance (cfg 1 = plain conditional model)
  "$PY" "$HERE/train_mnist.py" --sample-only --device "$DEVICE" --out "$WORK/mnist" --cfg 1.0 \
    --n-samples "$MNIST_EVAL_N" --ddim-steps "$MNIST_EVAL_STEPS" --samples-npy "$WORK/mnist_cfg1" \
    > "$WORK/mnist_cfg1.stdout" 2>&1 || FAILED=1
  "$PY" "$HERE/eval_mnist.py" --samples "$WORK/mnist_cfg1_x.npy" --labels "$WORK/mnist_cfg1_y.npy" \
    --classifier "$WORK/classifier" --data "$DATA" --device "$DEVICE" --json "$WORK/eval/eval_mnist_cfg1.json" \
    || FAILED=1
fi
if [ "${RC[classifier]}" = "0" ] && [ "${RC[scoresde]}" = "0" ]; then
  "$PY" "$HERE/eval_mnist.py" --samples "$WORK/scoresde_samples_x.npy" \
    --classifier "$WORK/classifier" --data "$DATA" --device "$DEVICE" --json "$WORK/eval/eval_scoresde.json" \
    || FAILED=1
fi

echo "== [$(el)s] packing into $OUT"
cp "$WORK"/*.stdout "$WORK/eval/" 2>/dev/null
pack() {  # pack NAME.tar paths... (relative to $WORK, missing ones skipped)
  local tarname="$1"; shift
  local have=()
  for p in "$@"; do [ -e "$WORK/$p" ] && have+=("$p"); done
  [ ${#have[@]} -gt 0 ] && tar -C "$WORK" -cf "$OUT/$tarname" "${have[@]}"
}
pack mnist.tar mnist/config.json mnist/diffusion_pytorch_model.safetensors mnist/scheduler_config.json \
  mnist/train_info.json mnist/samples_ddim.png mnist/samples_ddim_cfg1.png mnist/sanity_cfg1.json mnist/train.log \
  classifier/classifier.safetensors classifier/config.json classifier/train_info.json classifier/train.log eval
pack scoresde_toy.tar scoresde/ckpt.pth scoresde/config.json scoresde/train_info.json scoresde/samples_em.png \
  scoresde/train.log toy2d/toy2d.safetensors toy2d/config.json toy2d/train_info.json toy2d/samples.png toy2d/train.log
pack emoji.tar emoji/config.json emoji/diffusion_pytorch_model.fp16.safetensors emoji/scheduler_config.json \
  emoji/train_info.json emoji/samples_ddim.png emoji/train.log

"$PY" - "$WORK" "$OUT/summary.json" <<'EOF'
import json, os, sys
work, out = sys.argv[1], sys.argv[2]
s = {}
for name in ["classifier", "mnist", "scoresde", "toy2d", "emoji"]:
    p = os.path.join(work, name, "train_info.json")
    if os.path.exists(p):
        i = json.load(open(p))
        s[name] = {k: i.get(k) for k in ["steps", "train_seconds", "final_loss", "params", "held_out_accuracy",
                                          "fd_floor_real_1000_vs_heldout_1000", "sanity"] if k in i}
        s[name]["gpu"] = i.get("machine", {}).get("gpu")
        s[name]["torch"] = i.get("machine", {}).get("torch")
    else:
        s[name] = "missing"
for e in ["eval_mnist", "eval_mnist_cfg1", "eval_scoresde"]:
    p = os.path.join(work, "eval", e + ".json")
    if os.path.exists(p):
        s[e] = json.load(open(p))
json.dump(s, open(out, "w"), indent=2)
print(json.dumps(s, indent=1)[:4000])
EOF

LIMIT=16777216
for f in "$OUT"/*; do
  sz=$(stat -c %s "$f"); echo "$(basename "$f") $sz bytes"
  [ "$sz" -lt "$LIMIT" ] || { echo "WARNING: $f is over 16 MiB and will not come back"; FAILED=1; }
done
echo "== [$(el)s] done, failed=$FAILED"
exit $FAILED
