"""Makes extra lucidrains conformance cases under cases/: small random Unets
of denoising-diffusion-pytorch 2.x in variants the shared fixture does not
cover (self-conditioning, learned sinusoidal time features, per-stage heads
and head widths, full attention on an outer stage, init_dim != dim, learned
variance, a non-default theta, non-square images, the pred_noise and pred_x0
objectives with min-SNR loss weights), saved in the library's Trainer format.

The library is not installable here, so the network is re-expressed below
from its source (denoising_diffusion_pytorch/denoising_diffusion_pytorch.py,
version 2.x: RMSNorm, SinusoidalPosEmb, RandomOrLearnedSinusoidalPosEmb,
Block, ResnetBlock, LinearAttention, Attention with attend.py's Attend,
Downsample, Upsample, Unet; GaussianDiffusion's schedules and loss_weight),
with the same parameter names. Running this script first checks that
re-expression against the shared fixture produced by the real library
($FIXTURES_DIR/lucidrains/lucid_small, y.npy), and refuses to write cases
if it does not match.

    /usr/bin/python3 core/lucid/testdata/make.py
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
fixtures = os.environ.get("FIXTURES_DIR", os.path.join(here, "..", "..", "..", "..", "shared", "fixtures"))


class RMSNorm(nn.Module):
    # F.normalize over channels, times a gain and sqrt(C).
    def __init__(self, c):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, c, 1, 1))
        self.c = c

    def forward(self, x):
        return F.normalize(x, dim=1) * self.g * self.c ** 0.5


class SinEmb(nn.Module):
    def __init__(self, dim, theta):
        super().__init__()
        self.dim, self.theta = dim, theta

    def forward(self, t):
        half = self.dim // 2
        f = torch.exp(torch.arange(half) * -(math.log(self.theta) / (half - 1)))
        a = t[:, None] * f[None, :]
        return torch.cat((a.sin(), a.cos()), dim=-1)


class LearnedSinEmb(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, t):
        t = t[:, None]
        a = t * self.weights[None, :] * 2 * math.pi
        return torch.cat((t, a.sin(), a.cos()), dim=-1)


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = RMSNorm(cout)

    def forward(self, x, ss=None):
        x = self.norm(self.proj(x))
        if ss is not None:
            x = x * (ss[0] + 1) + ss[1]
        return F.silu(x)


class Resnet(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(tdim, 2 * cout))
        self.block1 = Block(cin, cout)
        self.block2 = Block(cout, cout)
        self.res_conv = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, t):
        e = self.mlp(t)[:, :, None, None].chunk(2, dim=1)
        return self.block2(self.block1(x, e)) + self.res_conv(x)


def heads_split(t, heads):  # 'b (h c) x y -> b h c (x y)'
    b, c, hh, ww = t.shape
    return t.reshape(b, heads, c // heads, hh * ww)


class LinAttn(nn.Module):
    def __init__(self, dim, heads, dim_head, mem=4):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        self.norm = RMSNorm(dim)
        self.mem_kv = nn.Parameter(torch.randn(2, heads, dim_head, mem))
        self.to_qkv = nn.Conv2d(dim, 3 * heads * dim_head, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(heads * dim_head, dim, 1), RMSNorm(dim))

    def forward(self, x):
        b, _, hh, ww = x.shape
        q, k, v = (heads_split(t, self.heads) for t in self.to_qkv(self.norm(x)).chunk(3, dim=1))
        mk, mv = (m.unsqueeze(0).expand(b, -1, -1, -1) for m in self.mem_kv)
        k, v = torch.cat((mk, k), dim=-1), torch.cat((mv, v), dim=-1)
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        ctx = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", ctx, q)
        return self.to_out(out.reshape(b, -1, hh, ww))


class FullAttn(nn.Module):
    def __init__(self, dim, heads, dim_head, mem=4):
        super().__init__()
        self.heads = heads
        self.norm = RMSNorm(dim)
        self.mem_kv = nn.Parameter(torch.randn(2, heads, mem, dim_head))
        self.to_qkv = nn.Conv2d(dim, 3 * heads * dim_head, 1, bias=False)
        self.to_out = nn.Conv2d(heads * dim_head, dim, 1)

    def forward(self, x):
        b, _, hh, ww = x.shape
        q, k, v = (heads_split(t, self.heads).transpose(-1, -2) for t in self.to_qkv(self.norm(x)).chunk(3, dim=1))
        mk, mv = (m.unsqueeze(0).expand(b, -1, -1, -1) for m in self.mem_kv)
        k, v = torch.cat((mk, k), dim=-2), torch.cat((mv, v), dim=-2)
        p = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
        out = (p @ v).transpose(-1, -2)  # b h d n
        return self.to_out(out.reshape(b, -1, hh, ww))


class Unshuffle(nn.Module):  # 'b c (h p1) (w p2) -> b (c p1 p2) h w'
    def forward(self, x):
        b, c, h, w = x.shape
        return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)


class Unet(nn.Module):
    def __init__(self, dim, init_dim=None, out_dim=None, dim_mults=(1, 2, 4, 8), channels=3, self_condition=False,
                 learned_variance=False, learned_sinusoidal_cond=False, random_fourier_features=False,
                 learned_sinusoidal_dim=16, sinusoidal_pos_emb_theta=10000, attn_dim_head=32, attn_heads=4,
                 full_attn=None):
        super().__init__()
        n = len(dim_mults)
        tup = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
        full_attn = tup(full_attn) if full_attn else (False,) * (n - 1) + (True,)
        attn_heads, attn_dim_head = tup(attn_heads), tup(attn_dim_head)
        self.self_condition = self_condition
        init_dim = init_dim or dim
        self.init_conv = nn.Conv2d(channels * (2 if self_condition else 1), init_dim, 7, padding=3)
        dims = [init_dim] + [dim * m for m in dim_mults]
        in_out = list(zip(dims[:-1], dims[1:]))
        tdim = 4 * dim
        if learned_sinusoidal_cond or random_fourier_features:
            emb, fdim = LearnedSinEmb(learned_sinusoidal_dim), learned_sinusoidal_dim + 1
        else:
            emb, fdim = SinEmb(dim, sinusoidal_pos_emb_theta), dim
        self.time_mlp = nn.Sequential(emb, nn.Linear(fdim, tdim), nn.GELU(), nn.Linear(tdim, tdim))
        attn = lambda full, d, h, dh: (FullAttn if full else LinAttn)(d, h, dh)
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for i, (a, b) in enumerate(in_out):
            last = i == n - 1
            self.downs.append(nn.ModuleList([
                Resnet(a, a, tdim), Resnet(a, a, tdim), attn(full_attn[i], a, attn_heads[i], attn_dim_head[i]),
                nn.Conv2d(a, b, 3, padding=1) if last else nn.Sequential(Unshuffle(), nn.Conv2d(4 * a, b, 1))]))
        self.mid_block1 = Resnet(dims[-1], dims[-1], tdim)
        self.mid_attn = FullAttn(dims[-1], attn_heads[-1], attn_dim_head[-1])
        self.mid_block2 = Resnet(dims[-1], dims[-1], tdim)
        for i, s in enumerate(reversed(range(n))):
            a, b = in_out[s]
            last = i == n - 1
            self.ups.append(nn.ModuleList([
                Resnet(a + b, b, tdim), Resnet(a + b, b, tdim), attn(full_attn[s], b, attn_heads[s], attn_dim_head[s]),
                nn.Conv2d(b, a, 3, padding=1) if last else
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(b, a, 3, padding=1))]))
        self.out_dim = out_dim or channels * (2 if learned_variance else 1)
        self.final_res_block = Resnet(2 * init_dim, init_dim, tdim)
        self.final_conv = nn.Conv2d(init_dim, self.out_dim, 1)

    def forward(self, x, t):
        if self.self_condition:
            x = torch.cat((torch.zeros_like(x), x), dim=1)
        x = self.init_conv(x)
        r = x.clone()
        t = self.time_mlp(t)
        h = []
        for b1, b2, at, down in self.downs:
            x = b1(x, t)
            h.append(x)
            x = b2(x, t)
            x = at(x) + x
            h.append(x)
            x = down(x)
        x = self.mid_block1(x, t)
        x = self.mid_attn(x) + x
        x = self.mid_block2(x, t)
        for b1, b2, at, up in self.ups:
            x = b1(torch.cat((x, h.pop()), dim=1), t)
            x = b2(torch.cat((x, h.pop()), dim=1), t)
            x = at(x) + x
            x = up(x)
        return self.final_conv(self.final_res_block(torch.cat((x, r), dim=1), t))


def betas_for(schedule, T):
    x = torch.linspace(0, T, T + 1, dtype=torch.float64) / T
    if schedule == "linear":
        s = 1000 / T
        return torch.linspace(s * 1e-4, s * 0.02, T, dtype=torch.float64)
    if schedule == "cosine":
        ac = torch.cos((x + 0.008) / 1.008 * math.pi * 0.5) ** 2
    else:  # sigmoid, start -3, end 3, tau 1
        vs, ve = torch.tensor(-3.0).sigmoid(), torch.tensor(3.0).sigmoid()
        ac = (-((x * 6 - 3)).sigmoid() + ve) / (ve - vs)
    ac = ac / ac[0]
    return torch.clip(1 - ac[1:] / ac[:-1], 0, 0.999)


def diffusion_buffers(schedule, T, objective, min_snr_gamma=None):
    b = betas_for(schedule, T)
    ac = torch.cumprod(1 - b, dim=0)
    snr = ac / (1 - ac)
    clipped = snr.clamp(max=min_snr_gamma) if min_snr_gamma else snr
    lw = {"pred_noise": clipped / snr, "pred_x0": clipped, "pred_v": clipped / (snr + 1)}[objective]
    acp = F.pad(ac[:-1], (1, 0), value=1.0)
    post = b * (1 - acp) / (1 - ac)
    bufs = {
        "betas": b, "alphas_cumprod": ac, "alphas_cumprod_prev": acp, "sqrt_alphas_cumprod": ac.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1 - ac).sqrt(), "log_one_minus_alphas_cumprod": (1 - ac).log(),
        "sqrt_recip_alphas_cumprod": (1 / ac).sqrt(), "sqrt_recipm1_alphas_cumprod": (1 / ac - 1).sqrt(),
        "posterior_variance": post, "posterior_log_variance_clipped": post.clamp(min=1e-20).log(),
        "posterior_mean_coef1": b * acp.sqrt() / (1 - ac), "posterior_mean_coef2": (1 - acp) * (1 - b).sqrt() / (1 - ac),
        "loss_weight": lw,
    }
    return {k: v.float() for k, v in bufs.items()}


def check_against_library():
    d = os.path.join(fixtures, "lucidrains", "lucid_small")
    kw = json.load(open(os.path.join(d, "unet_kwargs.json")))
    net = Unet(dim=kw["dim"], dim_mults=tuple(kw["dim_mults"]), channels=kw["channels"]).eval()
    ck = torch.load(os.path.join(d, "model-1.pt"), map_location="cpu")
    net.load_state_dict({k[len("model."):]: v for k, v in ck["model"].items() if k.startswith("model.")})
    x, t, y = (torch.from_numpy(np.load(os.path.join(d, n))) for n in ("x.npy", "t.npy", "y.npy"))
    with torch.no_grad():
        err = (net(x, t) - y).abs().max().item() / y.abs().max().item()
    print("re-expression vs the library on lucid_small: relative error %.3g" % err)
    if not err < 1e-5:
        raise SystemExit("the re-expressed Unet does not match the library")


CASES = {
    # Self-conditioning, learned sinusoidal features, per-stage heads, full
    # attention on the outer stage (linear on the inner one), pred_noise with
    # min-SNR weights, linear schedule, non-square images.
    "selfcond_learnedsin": dict(
        unet=dict(dim=8, dim_mults=[1, 2], channels=3, self_condition=True, learned_sinusoidal_cond=True,
                  learned_sinusoidal_dim=10, attn_heads=[2, 3], attn_dim_head=[8, 4], full_attn=[True, False]),
        size=(8, 12), schedule="linear", T=500, objective="pred_noise", min_snr_gamma=5, t=[0.0, 123.0, 499.0]),
    # learned variance (two output channels per channel), init_dim != dim,
    # theta 1000, three stages, pred_x0 with min-SNR weights, cosine schedule.
    "learned_variance": dict(
        unet=dict(dim=8, init_dim=12, dim_mults=[1, 1, 2], channels=1, learned_variance=True,
                  sinusoidal_pos_emb_theta=1000, attn_heads=2, attn_dim_head=6),
        size=(16, 16), schedule="cosine", T=1000, objective="pred_x0", min_snr_gamma=5, t=[7.0, 999.0]),
    # One stage (no down- or upsampling), one head, and saved as a bare
    # GaussianDiffusion state dict (torch.save(diffusion.state_dict())) rather
    # than a Trainer checkpoint; sigmoid schedule, pred_v without min-SNR.
    "bare_state_dict": dict(
        unet=dict(dim=4, dim_mults=[1], channels=1, attn_heads=1, attn_dim_head=4),
        size=(6, 6), schedule="sigmoid", T=100, objective="pred_v", t=[0.0, 42.0, 99.0], bare=True),
}


def make(name, c):
    torch.manual_seed(sum(map(ord, name)))
    net = Unet(**c["unet"]).eval()
    with torch.no_grad():
        for p in net.parameters():  # non-trivial gains and biases
            p.add_(torch.randn_like(p) * 0.05)
    bufs = diffusion_buffers(c["schedule"], c["T"], c["objective"], c.get("min_snr_gamma"))
    sd = dict(bufs)
    sd.update({"model." + k: v for k, v in net.state_dict().items()})
    ema = {"initted": torch.tensor(True), "step": torch.tensor(0)}
    # The library's EMA wrapper also keeps an online_model.* copy; left out to keep the files small.
    ema.update({"ema_model." + k: v.clone() for k, v in sd.items()})
    out = os.path.join(here, "cases", name)
    os.makedirs(out, exist_ok=True)
    ckpt = {"step": 0, "model": sd, "opt": {"state": {}, "param_groups": []}, "ema": ema, "scaler": None,
            "version": "2.3.1"}
    torch.save(sd if c.get("bare") else ckpt, os.path.join(out, "model-0.pt"))
    kw = dict(c["unet"])
    kw.update(image_size=list(c["size"]), objective=c["objective"], beta_schedule=c["schedule"], timesteps=c["T"])
    if c.get("min_snr_gamma"):
        kw.update(min_snr_loss_weight=True, min_snr_gamma=c["min_snr_gamma"])
    json.dump(kw, open(os.path.join(out, "unet_kwargs.json"), "w"), indent=1)
    x = torch.randn(len(c["t"]), c["unet"]["channels"], *c["size"])
    t = torch.tensor(c["t"])
    with torch.no_grad():
        y = net(x, t)
    for n, a in (("x", x), ("t", t), ("y", y)):
        np.save(os.path.join(out, n + ".npy"), a.numpy().astype(np.float32))
    print(name, "y", tuple(y.shape), "max|y| %.3g" % y.abs().max().item())


class Pwn:
    """Unpickling this would run a shell command: what a hostile checkpoint
    looks like. The converter must refuse it without running it."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/diffuse-pwned-lucid",))


def make_hostile():
    # A Trainer-shaped checkpoint whose scaler entry carries the payload.
    sd = {"betas": torch.linspace(1e-4, 0.02, 10), "model.init_conv.weight": torch.zeros(4, 1, 7, 7)}
    torch.save({"step": 0, "model": sd, "opt": {}, "ema": {"ema_model." + k: v for k, v in sd.items()},
                "scaler": Pwn(), "version": "2.3.1"}, os.path.join(here, "hostile.pt"))


if __name__ == "__main__":
    check_against_library()
    for name, c in CASES.items():
        make(name, c)
    make_hostile()
