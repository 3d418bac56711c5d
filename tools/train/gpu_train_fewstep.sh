#!/usr/bin/env bash
# The few-step MNIST models (issue 21 item 6) in one command on one GPU: a class-conditional rectified flow
# (train_mnist_flow.py) and a 1-2-step consistency model tuned from weights/mnist.safetensors by easy consistency
# tuning (train_mnist_ect.py), trained in parallel, each evaluated at its end (PyTorch samplers, classifier
# accuracy + Fréchet distance, eval_mnist.py), then -- when a diffuse binary is there -- converted and sampled by
# OUR Go sampler too (100 digits per setting, scored the same way).
#
#   GPU (one H100, no network):  OUT=/some/dir bash tools/train/gpu_train_fewstep.sh
#   CPU smoke test (here):       DEVICE=cpu QUICK=1 bash tools/train/gpu_train_fewstep.sh
#
# Needs tools/train/data/ (bash tools/train/fetch_data.sh; gitignored: carry it) and weights/mnist.safetensors
# (in git). The classifier for the scores: $CLS (default tools/train/out/gpu_run/classifier, what gpu_train.sh
# trains); when it is missing it is trained here first, in parallel (CLS_MIN, 1 min). The Go check needs $BIN
# (default bin/diffuse: `go build -o bin/diffuse ./tools/diffuse` here, then carry bin/diffuse); skipped without.
# Time budget (training loops stop at their minute budget): flow FLOW_MIN (7) and ECT ECT_MIN (7) minutes in
# parallel, then the evaluation (1000 digits per setting: flow Euler 1/2/4/10/25 steps and consistency 1/2 steps,
# each unguided and at guidance 2) and the Go check => about 9-10 min wall on one H100 (an estimate, not measured:
# no GPU run of this script yet). Env: FLOW_MIN, ECT_MIN, CLS_MIN, EVAL_N, GO_N_PER (Go digits per class, 10),
# FLOW_GO_STEPS (the Go check's flow_euler step counts, "1 2 4 10"), THREADS, FLOW_ARGS / ECT_ARGS (extra
# trainer flags).
#
# $OUT receives (each file < 16 MiB):
#   mnist_flow.tar   mnist-flow/: config.json, diffusion_pytorch_model.safetensors (EMA fp32, ~6.8 MB),
#                    scheduler_config.json, train_info.json (incl. the eval numbers), train.log, eval/*.png, parity/
#   mnist_ect.tar    mnist-ect/: the same for the consistency model
#   go_eval.tar      go/: the converted fp16 files, the Go samples' grids and eval_*.json (when $BIN ran)
#   summary.json     key numbers;   run.log  everything printed
# Ship: bin/diffuse convert --from diffusers mnist-flow --null-class 10 -o weights/mnist-flow.safetensors (same for
# mnist-ect -> weights/mnist-cm.safetensors); the go/ folder already holds those fp16 files.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
OUT="${OUT:-$HERE/out/fewstep_out}"
WORK="${WORK:-$HERE/out/fewstep_run}"
DATA="${DATA:-$HERE/data}"
CLS="${CLS:-$HERE/out/gpu_run/classifier}"
BIN="${BIN:-$ROOT/bin/diffuse}"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif python3 -c 'import torch' 2>/dev/null; then PY=python3
else PY=/usr/bin/python3; fi
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/run.log") 2>&1
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
echo "== gpu_train_fewstep.sh start $(date -u +%FT%TZ)  device=$DEVICE quick=$QUICK python=$PY"
"$PY" -c 'import sys, torch, platform; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "", platform.platform())'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
[ -f "$DATA/mnist.npz" ] || { echo "missing $DATA/mnist.npz: run tools/train/fetch_data.sh first (and carry tools/train/data)"; exit 2; }
[ -f "$ROOT/weights/mnist.safetensors" ] || { echo "missing weights/mnist.safetensors"; exit 2; }

if [ "$QUICK" = "1" ]; then
  THREADS="${THREADS:-1}"
  C="--device $DEVICE --threads $THREADS --no-onnx --log-every 5 --ckpt-every 0 --data $DATA --classifier $CLS"
  FLOW="--tiny --steps 20 --batch 8 --lr 2e-3 --warmup 1 --train-subset 512 --eval-n 20 --eval-steps 1,2 --eval-cfg 1,2"
  ECT="--steps 8 --batch 4 --lr 5e-4 --warmup 1 --dsm-frac 0.5 --train-subset 512 --eval-n 20 --eval-cfg 1,2"
  CLS_ARGS="--steps 20 --batch 32"
  GO_N_PER="${GO_N_PER:-2}"
  FLOW_GO_STEPS="${FLOW_GO_STEPS:-1 2}"
else
  THREADS="${THREADS:-2}"
  C="--device $DEVICE --threads $THREADS --no-onnx --log-every 200 --ckpt-every 2000 --data $DATA --classifier $CLS"
  FLOW="--steps 1000000 --max-minutes ${FLOW_MIN:-7.0} --eval-n ${EVAL_N:-1000}"
  ECT="--steps 1000000 --max-minutes ${ECT_MIN:-7.0} --eval-n ${EVAL_N:-1000}"
  CLS_ARGS="--steps 3000 --batch 256 --max-minutes ${CLS_MIN:-1.0}"
  GO_N_PER="${GO_N_PER:-10}"
  FLOW_GO_STEPS="${FLOW_GO_STEPS:-1 2 4 10}"
fi

if [ ! -f "$CLS/classifier.safetensors" ]; then
  echo "== [$(el)s] no classifier at $CLS: training one"
  "$PY" "$HERE/train_classifier.py" --device "$DEVICE" --threads "$THREADS" --no-onnx --data "$DATA" $CLS_ARGS \
    --out "$CLS" > "$WORK/classifier.stdout" 2>&1 || { echo "classifier failed"; tail -20 "$WORK/classifier.stdout"; }
fi

echo "== [$(el)s] training flow and ECT (parallel)"
"$PY" "$HERE/train_mnist_flow.py" $C $FLOW ${FLOW_ARGS:-} --out "$WORK/mnist-flow" > "$WORK/mnist-flow.stdout" 2>&1 & P_FLOW=$!
"$PY" "$HERE/train_mnist_ect.py" $C $ECT ${ECT_ARGS:-} --out "$WORK/mnist-ect" > "$WORK/mnist-ect.stdout" 2>&1 & P_ECT=$!
FAILED=0
declare -A RC
wait $P_FLOW; RC[flow]=$?
wait $P_ECT; RC[ect]=$?
for n in flow ect; do
  echo "== [$(el)s] mnist-$n finished rc=${RC[$n]}"
  tail -n 14 "$WORK/mnist-$n.stdout"
  [ "${RC[$n]}" = "0" ] || FAILED=1
done

# Our Go sampler on the converted files: GO_N_PER digits of each class per setting, scored like the PyTorch ones.
if [ -x "$BIN" ]; then
  echo "== [$(el)s] Go check with $BIN"
  mkdir -p "$WORK/go"
  go_eval() {  # NAME SAMPLER STEPS GUIDANCE
    local w="$WORK/go/mnist-$1.safetensors" tag="$1_$2$3_cfg$4" d
    for d in 0 1 2 3 4 5 6 7 8 9; do
      "$BIN" sample --weights "$w" --sampler "$2" --steps "$3" --guidance "$4" --class "$d" --n "$GO_N_PER" \
        --batch "$GO_N_PER" --seed "$d" --quiet --out-npy "$WORK/go/d$d.npy" || return 1
    done
    "$PY" - "$WORK/go" "$tag" "$GO_N_PER" <<'EOF'
import sys, numpy as np
d, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
np.save("%s/%s_x.npy" % (d, tag), np.concatenate([np.load("%s/d%d.npy" % (d, c)) for c in range(10)]).astype(np.float32))
np.save("%s/%s_y.npy" % (d, tag), np.repeat(np.arange(10), n).astype(np.int64))
EOF
    "$BIN" sample --weights "$w" --sampler "$2" --steps "$3" --guidance "$4" --class 7 --n 16 --seed 0 --quiet \
      --out-png "$WORK/go/$tag.png" --scale 2 || return 1
    if [ -f "$CLS/classifier.safetensors" ]; then
      "$PY" "$HERE/eval_mnist.py" --samples "$WORK/go/${tag}_x.npy" --labels "$WORK/go/${tag}_y.npy" \
        --classifier "$CLS" --data "$DATA" --device "$DEVICE" --json "$WORK/go/eval_$tag.json" \
        > "$WORK/go/eval_$tag.txt" || return 1
      grep -E "^accuracy|^FD" "$WORK/go/eval_$tag.txt"
    fi
  }
  for n in flow ect; do
    [ "${RC[$n]}" = "0" ] || continue
    "$BIN" convert --from diffusers "$WORK/mnist-$n" --null-class 10 -o "$WORK/go/mnist-$n.safetensors" || { FAILED=1; continue; }
  done
  if [ "${RC[flow]}" = "0" ]; then
    for k in $FLOW_GO_STEPS; do for g in 1 2; do echo "-- flow_euler $k steps, guidance $g"; go_eval flow flow_euler $k $g || FAILED=1; done; done
  fi
  if [ "${RC[ect]}" = "0" ]; then
    for k in 1 2; do for g in 1 2; do echo "-- consistency $k steps, guidance $g"; go_eval ect consistency $k $g || FAILED=1; done; done
  fi
  rm -f "$WORK/go"/d?.npy
else
  echo "== [$(el)s] no $BIN: Go check skipped (go build -o bin/diffuse ./tools/diffuse, then carry bin/diffuse)"
fi

echo "== [$(el)s] packing into $OUT"
for n in flow ect; do
  [ -d "$WORK/mnist-$n" ] || continue
  cp "$WORK/mnist-$n.stdout" "$WORK/mnist-$n/" 2>/dev/null
  # the eval samples' .npy (3 MB per setting) and the checkpoint stay in $WORK; parity/ (small) comes back
  (cd "$WORK" && tar -cf "$OUT/mnist_$n.tar" --exclude='*/eval/*.npy' --exclude='ckpt.pt' --exclude='*.onnx' "mnist-$n")
done
[ -f "$WORK/classifier.stdout" ] && cp "$WORK/classifier.stdout" "$OUT/"
[ -d "$WORK/go" ] && (cd "$WORK" && tar -cf "$OUT/go_eval.tar" --exclude='*.npy' go)

"$PY" - "$WORK" "$OUT/summary.json" <<'EOF'
import glob, json, os, sys
work, out = sys.argv[1], sys.argv[2]
s = {}
for name in ["mnist-flow", "mnist-ect"]:
    p = os.path.join(work, name, "train_info.json")
    if not os.path.exists(p):
        s[name] = "missing"
        continue
    i = json.load(open(p))
    keep = ("accuracy", "fd", "fd_floor_real_vs_heldout", "n", "seconds")
    s[name] = {"steps": i.get("steps"), "train_seconds": i.get("train_seconds"), "probe_loss": i.get("probe_loss"),
               "first_loss": i.get("first_loss"), "final_loss": i.get("final_loss"),
               "gpu": i.get("machine", {}).get("gpu"), "torch": i.get("machine", {}).get("torch"),
               "eval_pytorch": {k: {kk: v.get(kk) for kk in keep if kk in v}
                                for k, v in i.get("eval", {}).get("results", {}).items()}}
for p in sorted(glob.glob(os.path.join(work, "go", "eval_*.json"))):
    r = json.load(open(p))
    s.setdefault("eval_go", {})[os.path.basename(p)[5:-5]] = {k: r.get(k) for k in ("n", "accuracy", "fd", "fd_floor_real_vs_heldout")}
json.dump(s, open(out, "w"), indent=2)
print(json.dumps(s, indent=1)[:6000])
EOF

LIMIT=16777216
for f in "$OUT"/*; do
  sz=$(stat -c %s "$f"); echo "$(basename "$f") $sz bytes"
  [ "$sz" -lt "$LIMIT" ] || { echo "WARNING: $f is over 16 MiB and will not come back"; FAILED=1; }
done
echo "== [$(el)s] done, failed=$FAILED"
exit $FAILED
