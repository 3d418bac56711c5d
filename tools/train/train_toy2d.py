"""2-D toy diffusion model: a swiss roll learned by a small time-conditioned MLP (DDPM, epsilon prediction).

Data (generated, seeded, fresh every step): u ~ U(0,1), theta = 1.5*pi*(1 + 2u),
  p = (theta*cos(theta), theta*sin(theta)) / 7 + N(0, 0.03^2)   -> roughly in [-2, 2]^2.
Diffusion: DDPM, T = 1000, linear betas 1e-4..0.02 (diffusers "linear"), epsilon prediction, timesteps are
  the integers 0..999.
Network (tensor names as saved):
  temb = [sin(t*f_0..f_15), cos(t*f_0..f_15)], f_i = exp(-ln(10000) * i / 16)     (32 values, no weights)
  h = silu(fc1([x, temb]))        fc1: 34 -> 128
  h = silu(fc2(h)); h = silu(fc3(h))   128 -> 128
  eps = out(h)                    out: 128 -> 2
Output (<out>, default tools/train/out/toy2d): toy2d.safetensors (EMA, fp32; the config JSON is also in its
__metadata__ under "config"), config.json, train_info.json, samples.png, model.onnx
(inputs x float32 [B,2], t float32 [B] -> eps [B,2]), train.log.
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import st  # noqa: E402

TEMB_DIM = 32
HIDDEN = 128


def swiss_roll(n, gen, device):
    u = torch.rand(n, device=device, generator=gen)
    th = 1.5 * math.pi * (1 + 2 * u)
    p = torch.stack([th * torch.cos(th), th * torch.sin(th)], 1) / 7.0
    return p + 0.03 * torch.randn(n, 2, device=device, generator=gen)


def time_embedding(t, dim=TEMB_DIM):
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t.float()[:, None] * f[None]
    return torch.cat([torch.sin(a), torch.cos(a)], 1)


class ToyMLP(nn.Module):
    def __init__(self, hidden=HIDDEN, temb=TEMB_DIM):
        super().__init__()
        self.temb = temb
        self.fc1 = nn.Linear(2 + temb, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 2)

    def forward(self, x, t):
        h = F.silu(self.fc1(torch.cat([x, time_embedding(t, self.temb)], 1)))
        h = F.silu(self.fc2(h))
        h = F.silu(self.fc3(h))
        return self.out(h)


@torch.no_grad()
def ddpm_sample(model, sched, n, device, seed=0):
    """Ancestral DDPM sampling (posterior variance beta_tilde)."""
    g = torch.Generator().manual_seed(seed)
    betas = sched.betas
    ac = sched.alphas_cumprod
    x = torch.randn(n, 2, generator=g).to(device)
    for t in range(sched.T - 1, -1, -1):
        eps = model(x, torch.full((n,), t, device=device, dtype=torch.long))
        a_t = 1 - float(betas[t])
        ab = float(ac[t])
        ab_prev = float(ac[t - 1]) if t > 0 else 1.0
        mean = (x - float(betas[t]) / math.sqrt(1 - ab) * eps) / math.sqrt(a_t)
        if t > 0:
            var = float(betas[t]) * (1 - ab_prev) / (1 - ab)
            x = mean + math.sqrt(var) * torch.randn(n, 2, generator=g).to(device)
        else:
            x = mean
    return x


def scatter_png(path, pts, ref=None, size=256, lim=2.5):
    img = np.full((size, size, 3), 255, dtype=np.uint8)

    def put(p, color):
        ij = np.clip(((p + lim) / (2 * lim) * (size - 1)).round().astype(int), 0, size - 1)
        img[size - 1 - ij[:, 1], ij[:, 0]] = color

    if ref is not None:
        put(ref, (190, 190, 190))
    put(pts, (200, 30, 30))
    try:
        from PIL import Image
        Image.fromarray(img).save(path)
    except ImportError:
        pass


def nn_dist(a, b):
    return float(torch.cdist(a, b).min(1).values.mean())


def main():
    p = common.base_parser("2-D swiss-roll DDPM with a small MLP", steps=8000, batch=1024, lr=2e-3)
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--n-samples", type=int, default=2000)
    args = p.parse_args()
    args.out = args.out or os.path.join(common.DEFAULT_OUT, "toy2d")
    dev = common.setup(args)
    log = common.Logger(args.out, "toy2d")
    sched = common.DDPM(1000, 1e-4, 0.02, device=dev)
    model = ToyMLP().to(dev)
    n_params = sum(q.numel() for q in model.parameters())
    log("params %d; device %s" % (n_params, dev))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    ema = common.EMA(model, args.ema_decay)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    step, last_loss, t0 = 0, float("nan"), time.time()
    loss_acc, n_acc = 0.0, 0
    while not common.should_stop(step, args, log):
        x0 = swiss_roll(args.batch, gen, dev)
        t = torch.randint(0, sched.T, (args.batch,), device=dev, generator=gen)
        noise = torch.randn(x0.shape, device=dev, generator=gen)
        loss = F.mse_loss(model(sched.q_sample(x0, t, noise), t), noise)
        for g in opt.param_groups:  # cosine decay to 5% over the planned steps
            g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step / max(args.steps, 1), 1.0))))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model)
        step += 1
        loss_acc += loss.detach()
        n_acc += 1
        if step % args.log_every == 0 or step == args.steps:
            last_loss = float(loss_acc) / n_acc
            loss_acc, n_acc = 0.0, 0
            log("step %6d  loss %.4f  %.1f it/s" % (step, last_loss, step / max(time.time() - t0, 1e-9)))
        if args.ckpt_every and step % args.ckpt_every == 0:
            torch.save({"model": model.state_dict(), "ema": ema.state(), "step": step},
                       os.path.join(args.out, "ckpt.pt"))
    if n_acc:
        last_loss = float(loss_acc) / n_acc
    common.sync(dev)
    train_s = time.time() - t0
    torch.save({"model": model.state_dict(), "ema": ema.state(), "step": step}, os.path.join(args.out, "ckpt.pt"))
    sd = {k: v.detach().float().cpu().contiguous() for k, v in ema.state_dict_for(model).items()}
    model.load_state_dict(sd)
    model.eval()
    cfg = {
        "model_type": "toy2d_mlp",
        "data": "swiss roll: theta=1.5*pi*(1+2u), (theta cos theta, theta sin theta)/7 + N(0,0.03^2)",
        "in_dim": 2, "hidden": HIDDEN, "num_hidden_layers": 3, "activation": "silu",
        "time_embedding": {"type": "sinusoidal", "dim": TEMB_DIM, "order": "sin_then_cos", "max_period": 10000,
                           "freq": "f_i = exp(-ln(max_period) * i / (dim/2)), i = 0..dim/2-1",
                           "input": "integer timestep t in [0, 999] as float"},
        "forward": "h=silu(fc1(cat[x, temb])); h=silu(fc2(h)); h=silu(fc3(h)); eps=out(h)",
        "tensors": {k: list(v.shape) for k, v in sd.items()},
        "scheduler": {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4,
                      "beta_end": 0.02, "prediction_type": "epsilon", "clip_sample": False},
    }
    import json
    st.save_file(sd, os.path.join(args.out, "toy2d.safetensors"),
                 metadata={"format": "pt", "config": json.dumps(cfg, sort_keys=True)})
    common.write_json(os.path.join(args.out, "config.json"), cfg)
    log("saved toy2d.safetensors after %d steps (%.1fs)" % (step, train_s))

    sanity = None
    if args.n_samples > 0:
        t1 = time.time()
        xs = ddpm_sample(model, sched, args.n_samples, dev, seed=args.seed).cpu()
        ref = swiss_roll(10000, torch.Generator().manual_seed(999), "cpu")
        ref2 = swiss_roll(args.n_samples, torch.Generator().manual_seed(998), "cpu")
        sanity = {"n": args.n_samples, "sampler": "DDPM ancestral, 1000 steps", "seconds": round(time.time() - t1, 1),
                  "mean_nn_dist_to_data": nn_dist(xs, ref), "mean_nn_dist_real_floor": nn_dist(ref2, ref)}
        scatter_png(os.path.join(args.out, "samples.png"), xs.numpy(), ref.numpy())
        log("sanity: mean NN distance samples->data %.4f (real floor %.4f)" % (
            sanity["mean_nn_dist_to_data"], sanity["mean_nn_dist_real_floor"]))
    onnx_ok = None
    if not args.no_onnx:
        m = ToyMLP().eval()
        m.load_state_dict(sd)
        onnx_ok = common.onnx_export(m, (torch.randn(4, 2), torch.tensor([0.0, 10.0, 500.0, 999.0])),
                                     os.path.join(args.out, "model.onnx"), ["x", "t"], ["eps"],
                                     {"x": {0: "batch"}, "t": {0: "batch"}, "eps": {0: "batch"}}, log)
    common.write_json(os.path.join(args.out, "train_info.json"), common.train_info(args, dev, {
        "model": "toy2d MLP (swiss roll DDPM)", "params": n_params, "config": cfg,
        "optimizer": {"name": "Adam", "lr": args.lr, "schedule": "cosine to 5%", "batch": args.batch},
        "ema_decay": args.ema_decay, "weights": "EMA, fp32", "steps": step, "train_seconds": round(train_s, 1),
        "final_loss": last_loss, "sanity": sanity, "onnx": onnx_ok,
        "onnx_inputs": {"x": "float32 [B,2]", "t": "float32 [B]"},
    }))
    log("done")


if __name__ == "__main__":
    main()
