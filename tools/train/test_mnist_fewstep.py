"""CPU smoke test of the few-step MNIST trainers (issue 21 item 6): train_mnist_flow.py (a tiny UNet of the same
family, from scratch) and train_mnist_ect.py (from the shipped weights/mnist.safetensors) each train a few
iterations on a small subset of the digits, and

  * the probe loss (the objective on a fixed batch, before and after) falls;
  * the diffusers folder each writes converts with `diffuse convert --from diffusers --null-class 10` and samples
    with `diffuse sample` and the model's own sampler (flow_euler; consistency) in 1 and 2 steps, guided and not,
    to finite values in a sane range;
  * our Go samplers reproduce PyTorch's samples of the same weights from the same noise
    (tools/diffuse/trained_fewstep_test.go, TestTrainedFewStepParity, on each trainer's parity/ folder).

Run: /usr/bin/python3 tools/train/test_mnist_fewstep.py [flow|ect]   (or `make test-train`)
Needs PyTorch, Go, tools/train/data/mnist.npz (fetch_data.sh; or DATA=folder) and weights/mnist.safetensors;
skips (exit 0, says why) without PyTorch or the data. Cost: a few training iterations of each; the time depends
on the machine's load (see tools/train/README.md).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("DATA", os.path.join(HERE, "data"))
THREADS = os.environ.get("THREADS", "1")


def train(script, out, *args):
    cmd = [sys.executable, os.path.join(HERE, script), "--device", "cpu", "--threads", THREADS, "--data", DATA,
           "--no-onnx", "--out", out, "--ckpt-every", "0", "--eval-n", "0", "--parity-n", "2", "--probe-n", "8",
           "--train-subset", "256"] + list(args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise AssertionError("%s failed:\n%s" % (script, r.stdout[-3000:]))
    with open(os.path.join(out, "train_info.json")) as f:
        return json.load(f)


def convert_and_sample(bin_, folder, sampler, d):
    w = os.path.join(d, "model.safetensors")
    subprocess.run([bin_, "convert", "--from", "diffusers", folder, "--null-class", "10", "-o", w], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for steps in (1, 2):
        for g in ("1", "2"):
            npy = os.path.join(d, "s%d_%s.npy" % (steps, g))
            subprocess.run([bin_, "sample", "--weights", w, "--sampler", sampler, "--steps", str(steps), "--n", "2",
                            "--class", "7", "--guidance", g, "--seed", "3", "--quiet", "--out-npy", npy], check=True,
                           stdout=subprocess.DEVNULL)
            x = np.load(npy)
            assert x.shape == (2, 1, 28, 28), x.shape
            assert np.isfinite(x).all(), "%s %d steps guidance %s: non-finite samples" % (sampler, steps, g)
            # sane range: the consistency sampler clips x̂0 to [-1, 1]; an untrained flow's Euler steps stay near
            # the noise scale
            assert np.abs(x).max() < 20, "%s %d steps: |x| up to %g" % (sampler, steps, np.abs(x).max())


def check(info, kind):
    pl = info["probe_loss"]
    print("%s: %d steps in %.0fs, probe loss %.4f -> %.4f, logged loss %.4f -> %.4f" % (
        kind, info["steps"], info["train_seconds"], pl["start"], pl["end"], info["first_loss"], info["final_loss"]))
    assert np.isfinite(pl["start"]) and np.isfinite(pl["end"]), pl
    assert pl["end"] < 0.95 * pl["start"], "%s: probe loss did not fall: %s" % (kind, pl)


def main():
    which = sys.argv[1:] or ["flow", "ect"]
    try:
        import torch  # noqa: F401
    except ImportError:
        print("skip: no PyTorch")
        return
    if not os.path.exists(os.path.join(DATA, "mnist.npz")):
        print("skip: no %s/mnist.npz (run tools/train/fetch_data.sh or set DATA)" % DATA)
        return
    with tempfile.TemporaryDirectory() as d:
        bin_ = os.path.join(d, "diffuse")
        subprocess.run(["go", "build", "-o", bin_, "./tools/diffuse"], cwd=ROOT, check=True)
        parity = []
        if "flow" in which:
            out = os.path.join(d, "flow")
            info = train("train_mnist_flow.py", out, "--tiny", "--steps", "15", "--batch", "8", "--lr", "2e-3",
                         "--warmup", "1", "--log-every", "5")
            check(info, "flow")
            assert json.load(open(os.path.join(out, "scheduler_config.json")))["_class_name"] == \
                "FlowMatchEulerDiscreteScheduler"
            os.makedirs(os.path.join(d, "flow-go"))
            convert_and_sample(bin_, out, "flow_euler", os.path.join(d, "flow-go"))
            parity.append(os.path.join(out, "parity"))
        if "ect" in which:
            out = os.path.join(d, "ect")
            info = train("train_mnist_ect.py", out, "--init", os.path.join(ROOT, "weights", "mnist.safetensors"),
                         "--steps", "6", "--batch", "4", "--lr", "5e-4", "--warmup", "1", "--dsm-frac", "0.7",
                         "--log-every", "2")
            check(info, "ect")
            s = json.load(open(os.path.join(out, "scheduler_config.json")))
            assert s["_class_name"] == "CMStochasticIterativeScheduler" and s["sigma_data"] == 0.5, s
            stages = [e["stage"] for e in info["objective"]["stage_log"]]
            assert stages[0] == -1 and stages[-1] >= 0, stages  # the r = 0 warm-up, then ECT stages
            os.makedirs(os.path.join(d, "ect-go"))
            convert_and_sample(bin_, out, "consistency", os.path.join(d, "ect-go"))
            parity.append(os.path.join(out, "parity"))
        env = dict(os.environ, DIFFUSE_PARITY_DIRS=os.pathsep.join(parity))
        r = subprocess.run(["go", "test", "-count=1", "-v", "-run", "TestTrainedFewStepParity", "./tools/diffuse"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print("\n".join(l for l in r.stdout.splitlines() if "PyTorch" in l or l.startswith(("---", "ok", "FAIL"))))
        assert r.returncode == 0, r.stdout[-3000:]
        assert "SKIP" not in r.stdout, r.stdout
    print("ok")


if __name__ == "__main__":
    main()
