#!/usr/bin/env python3
"""Where does the MNIST model's probability-flow ODE go wrong?

Measures, on the 1,000 held-out digits, the shipped (or any converted) MNIST UNet's error by noise
level: x_t = sqrt(abar_t)·x0 + sqrt(1-abar_t)·eps at fixed timesteps t, then
  eps_mse   = mean (eps_hat - eps)^2                  (the training loss at t; Ho et al. 2020, eq. 14)
  x0_mse    = mean (x0_hat - x0)^2, x0_hat = (x_t - sqrt(1-abar)·eps_hat)/sqrt(abar)
  hf_resid  = mean squared high-frequency residual of x0_hat - x0 (the part a 3x3 box blur removes):
              speckle noise lives there
with the requested class (and with the null class). A well-trained model's x0_mse falls towards 0 as
t -> 0; an under-trained one leaves a floor of high-frequency error at small t, which no sampler
can remove and which an ODE solver (no fresh noise, no clipping) carries to the final image.

Usage: python3 tools/train/diagnose_mnist.py [--weights weights/mnist.safetensors] [--data tools/train/data]
       [--n 1000] [--threads 2]
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import st  # noqa: E402
from unet2d import UNet2DModel  # noqa: E402


def load(path):
    tensors, meta = st.load_file_with_metadata(path)
    cfg = json.loads(meta["diffuse.config"])
    sched = json.loads(meta.get("diffuse.scheduler", "{}"))
    null = int(meta.get("diffuse.null_class", "-1"))
    model = UNet2DModel(cfg)
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    return model.eval(), sched, null


def main():
    p = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--weights", default=os.path.join(here, "..", "..", "weights", "mnist.safetensors"))
    p.add_argument("--data", default=os.path.join(here, "data"))
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, sched, null = load(a.weights)
    N = sched.get("num_train_timesteps", 1000)
    betas = torch.linspace(sched.get("beta_start", 1e-4), sched.get("beta_end", 0.02), N, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    _, _, xte, yte = common.load_mnist(a.data)
    x0 = (xte[: a.n] * 2 - 1)
    y = yte[: a.n]
    g = torch.Generator().manual_seed(a.seed)
    blur = torch.ones(1, 1, 3, 3) / 9
    print("| t | σ/α | ε MSE (class) | x̂0 MSE (class) | x̂0 high-freq error | ε MSE (null class) |")
    print("|---|---|---|---|---|---|")
    for t in [1, 5, 10, 20, 50, 100, 200, 300, 500, 700, 900, 999]:
        ab = abar[t].item()
        sa, sb = ab ** 0.5, (1 - ab) ** 0.5
        acc = {"eps": 0.0, "x0": 0.0, "hf": 0.0, "eps_null": 0.0}
        for i in range(0, len(x0), a.batch):
            xb, yb = x0[i:i + a.batch], y[i:i + a.batch]
            eps = torch.randn(xb.shape, generator=g)
            xt = sa * xb + sb * eps
            tt = torch.full((len(xb),), t, dtype=torch.long)
            with torch.no_grad():
                e = model(xt, tt, yb)
                en = model(xt, tt, torch.full_like(yb, null)) if null >= 0 else e
            x0h = (xt - sb * e) / sa
            d = x0h - xb
            hf = d - F.conv2d(d, blur, padding=1)
            k = len(xb)
            acc["eps"] += ((e - eps) ** 2).mean().item() * k
            acc["eps_null"] += ((en - eps) ** 2).mean().item() * k
            acc["x0"] += (d ** 2).mean().item() * k
            acc["hf"] += (hf ** 2).mean().item() * k
        n = len(x0)
        print("| %d | %.4g | %.4f | %.4f | %.4f | %.4f |" % (
            t, sb / sa, acc["eps"] / n, acc["x0"] / n, acc["hf"] / n, acc["eps_null"] / n))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
