"""PyTorch on the CPU, the native section's yardstick (tools/bench/native.mjs, make bench-native):
the same networks with the same weights as our backends, timed per call and for a whole sample.

  /usr/bin/python3 tools/bench/torch_cpu.py [--threads N] [--diffuse bin/diffuse] [--time M,...] [--out torch.json] [MODEL ...]

MODEL is a stem in --weights (default: mnist emoji scoresde-mnist toy2d). Each network is built by
export_onnx.build: tools/train's definition (unet2d.UNet2DModel with the config stored in the file,
train_scoresde.ScoreNet, train_toy2d.ToyMLP) with our fp16 weights upcast to fp32, loaded with
strict=True. Then, with torch.set_num_threads(--threads) (native.mjs passes the Go benchmarks'
GOMAXPROCS) under torch.inference_mode:

  check     one call at batch 2 on gobench's inputs, compared with `diffuse eval` on the same
            inputs (--diffuse; skipped without it): proves it is the same network. Fails the script
            when the relative RMS difference exceeds --tol. Models not in --time get only this.
  perCall   per batch size (--batches): --warmup untimed calls, then --iters timed ones (median,
            min, max in ms; time.perf_counter).
  sample    DDIM, eta 0, --steps steps for --n images in one batch, end to end (initial noise to
            result), after an untimed 2-step one: the VP models on the file's DDIM schedule
            (common.DDPM.ddim_sample), scoresde-mnist on its VE SDE (train_scoresde.ddim_ve), the
            class-conditional one with --class and classifier-free guidance --guidance (both passes
            in one call of twice the batch, as our sampler does).

Writes JSON (to --out, else stdout). Without PyTorch it prints one "skipped" line, writes
{"skipped": ...} and exits 0: torch is a benchmark-only dependency.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MODELS = ["mnist", "emoji", "scoresde-mnist", "toy2d"]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=MODELS)
    ap.add_argument("--weights", default=os.path.join(ROOT, "weights"))
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all cores)")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--steps", type=int, default=25, help="sample: DDIM steps (0: no sample)")
    ap.add_argument("--n", type=int, default=16, help="sample: images")
    ap.add_argument("--class", dest="cls", type=int, default=3, help="sample: the label of class-conditional models")
    ap.add_argument("--guidance", type=float, default=2.0, help="sample: guidance scale of class-conditional models")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--diffuse", help="the CLI binary for the check (diffuse eval)")
    ap.add_argument("--tol", type=float, default=1e-4, help="check: largest relative RMS difference")
    ap.add_argument("--time", help="comma-separated models to time (default: all); the others are only checked")
    ap.add_argument("--out")
    return ap.parse_args()


def emit(obj, out):
    text = json.dumps(obj, indent=1)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


def stats(ms):
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms), "n": len(ms)}


class Net:
    """One shipped model as a PyTorch module plus what the bench needs to call it."""

    def __init__(self, name, path):
        import st
        from export_onnx import build
        self.name, self.path = name, path
        self.module, ex, _, _ = build(name, path)
        meta = st.load_file_with_metadata(path)[1]
        self.arch = meta["diffuse.arch"]
        self.config = json.loads(meta["diffuse.config"])
        self.scheduler = json.loads(meta.get("diffuse.scheduler", "{}"))
        self.classes = self.config.get("num_class_embeds") if self.arch == "diffusers.UNet2DModel" else None
        self.null_class = int(meta["diffuse.null_class"]) if "diffuse.null_class" in meta else None
        self.in_shape = list(ex[0].shape[1:])
        self.params = sum(p.numel() for p in self.module.parameters())

    def inputs(self, batch):
        """tools/bench/gobench's inputs: x_i = (i mod 13)/6 - 1 over the whole batch, t = 500 (0.5 for the
        continuous-time ScoreNet), class i mod num_class_embeds."""
        import torch
        n = batch
        for d in self.in_shape:
            n *= d
        x = (torch.arange(n) % 13).float().div(6).sub(1).reshape([batch] + self.in_shape)
        t = torch.full((batch,), 0.5 if self.arch == "scoresde.ScoreNet" else 500.0)
        c = (torch.arange(batch) % self.classes) if self.classes else None
        return x, t, c

    def __call__(self, x, t, c=None):
        return self.module(x, t, c) if c is not None else self.module(x, t)

    def sample(self, steps, n, cls, guidance, seed):
        """The end-to-end DDIM sample (see the module doc); returns (x, network calls, batch per call)."""
        import torch
        g = torch.Generator().manual_seed(seed)
        shape = [n] + self.in_shape
        if self.arch == "scoresde.ScoreNet":
            from train_scoresde import ddim_ve, marginal_prob_std
            sc = self.scheduler
            x = torch.randn(shape, generator=g) * float(marginal_prob_std(1.0, sc["sigma"]))
            return ddim_ve(self.module, x, steps, eps=sc.get("sampling_eps", 1e-3), sigma=sc["sigma"]), steps, n
        import common
        sc = self.scheduler
        if sc.get("beta_schedule", "linear") != "linear":
            raise SystemExit("%s: beta_schedule %s is not implemented here" % (self.name, sc["beta_schedule"]))
        ddpm = common.DDPM(sc.get("num_train_timesteps", 1000), sc.get("beta_start", 1e-4), sc.get("beta_end", 0.02),
                           prediction=sc.get("prediction_type", "epsilon"))
        # Our sampler's default spacing (schedule.DDIMDefaultSpacing): trailing, or leading when the
        # config sets steps_offset.
        spacing = sc.get("timestep_spacing") or ("leading" if "steps_offset" in sc else "trailing")
        per = n
        if self.classes:
            from train_mnist import cfg_eps_fn
            labels = torch.full((n,), cls, dtype=torch.long)
            fn = cfg_eps_fn(self.module, labels, guidance, null_class=self.null_class)
            if guidance != 1:
                per = 2 * n
        else:
            fn = self.module
        x = ddpm.ddim_sample(fn, shape, steps=steps, generator=g, clip=bool(sc.get("clip_sample", False)), spacing=spacing)
        return x, steps, per


def check(net, diffuse, tol):
    """One call at batch 2 against `diffuse eval` on the same inputs."""
    import numpy as np
    import torch
    x, t, c = net.inputs(2)
    with torch.inference_mode():
        ref = net(x, t, c).numpy()
    with tempfile.TemporaryDirectory() as d:
        f = lambda s: os.path.join(d, s)  # noqa: E731
        # diffuse eval takes [B,C,H,W]: toy2d's points as [B,2,1,1] (its Go model's InShape).
        np.save(f("x.npy"), x.numpy().reshape(list(x.shape) + [1] * (4 - x.dim())))
        np.save(f("t.npy"), t.numpy())
        cmd = [diffuse, "eval", "--weights", net.path, "--x", f("x.npy"), "--t", f("t.npy"), "-o", f("y.npy")]
        if c is not None:
            np.save(f("c.npy"), c.numpy().astype(np.int64))
            cmd += ["--class", f("c.npy")]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return {"ok": False, "error": (p.stderr.strip().splitlines() or ["diffuse eval: exit %d" % p.returncode])[-1]}
        ours = np.load(f("y.npy"))
    if ours.size == ref.size:
        ours = ours.reshape(ref.shape)
    else:
        return {"ok": False, "error": "shape %s from diffuse eval, %s from PyTorch" % (ours.shape, ref.shape)}
    diff = ours.astype(np.float64) - ref
    rel = float(np.sqrt(np.mean(diff ** 2)) / max(np.sqrt(np.mean(ref.astype(np.float64) ** 2)), 1e-30))
    return {"ok": rel <= tol, "batch": 2, "maxAbs": float(np.abs(diff).max()), "relRms": rel, "tol": tol}


def main():
    a = parse_args()
    try:
        import torch
    except ImportError:
        print("torch_cpu: skipped: PyTorch not installed (apt-get install python3-torch)", file=sys.stderr)
        emit({"skipped": "PyTorch not installed (apt-get install python3-torch)", "python": sys.executable}, a.out)
        return 0
    sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
    sys.path.insert(0, HERE)  # first: tools/train has an export_onnx.py of its own
    torch.set_num_threads(a.threads)
    out = {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
           "config": {"batches": [int(b) for b in a.batches.split(",") if b], "warmup": a.warmup, "iters": a.iters,
                      "steps": a.steps, "n": a.n, "class": a.cls, "guidance": a.guidance, "seed": a.seed},
           "models": []}
    ok = True
    for name in a.models:
        path = os.path.join(a.weights, name + ".safetensors")
        if not os.path.exists(path):
            out["models"].append({"name": name, "error": "no %s" % path})
            continue
        net = Net(name, path)
        r = {"name": name, "arch": net.arch, "params": net.params, "perCall": {}}
        r["check"] = check(net, a.diffuse, a.tol) if a.diffuse else {"skipped": "no --diffuse"}
        if r["check"].get("ok") is False:
            ok = False
            print("torch_cpu: %s: PyTorch and diffuse eval disagree: %s" % (name, r["check"]), file=sys.stderr)
        if a.time is not None and name not in a.time.split(","):
            out["models"].append(r)
            print("torch_cpu: %s: checked only" % name, file=sys.stderr)
            continue
        with torch.inference_mode():
            for b in out["config"]["batches"]:
                x, t, c = net.inputs(b)
                for _ in range(a.warmup):
                    net(x, t, c)
                ms = []
                for _ in range(a.iters):
                    t0 = time.perf_counter()
                    net(x, t, c)
                    ms.append((time.perf_counter() - t0) * 1e3)
                r["perCall"][str(b)] = stats(ms)
            if a.steps > 0:
                cond = bool(net.classes)
                net.sample(min(2, a.steps), a.n, a.cls, a.guidance, a.seed)  # warm-up
                t0 = time.perf_counter()
                x, calls, per = net.sample(a.steps, a.n, a.cls, a.guidance, a.seed)
                r["sample"] = {"ms": (time.perf_counter() - t0) * 1e3, "steps": a.steps, "n": a.n, "calls": calls,
                               "batchPerCall": per, "finite": bool(torch.isfinite(x).all()),
                               **({"class": a.cls, "guidance": a.guidance} if cond else {})}
        out["models"].append(r)
        print("torch_cpu: %s: %s" % (name, ", ".join("b%s %.2f ms" % (b, s["median"]) for b, s in r["perCall"].items())
                                     + (", sample %.0f ms" % r["sample"]["ms"] if "sample" in r else "")), file=sys.stderr)
    emit(out, a.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
