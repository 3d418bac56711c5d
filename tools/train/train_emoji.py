"""Unconditional 32x32 RGB DDPM on Noto emoji with our diffusers-compatible UNet2DModel (unet2d.py).

Model: block_out_channels (64,128,128,160), 1 layer per block (2 resnets per up block), attention at 16x16
and 8x8 (AttnDownBlock2D/AttnUpBlock2D) and in the mid block (4x4), ~7.4M parameters (fp16 file ~15 MB).
Diffusion: DDPM T=1000, linear betas 1e-4..0.02, epsilon prediction, data in [-1,1]; EMA weights.
Data: emoji-datasource-google@16.0.0 64px PNGs (Noto Emoji, Apache-2.0 images; MIT package), composited
on white and box-downsampled to 32x32 by data_prep.py; random horizontal flips. Needs a GPU to train well.
Output (<out>, default tools/train/out/emoji): config.json, diffusion_pytorch_model.safetensors (EMA fp32),
diffusion_pytorch_model.fp16.safetensors (EMA fp16, diffusers' variant naming), scheduler_config.json,
train_info.json, samples_ddim.png, model.onnx (sample float32 [B,3,32,32], timestep float32 [B]), ckpt.pt.
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import st  # noqa: E402
from train_mnist import save_ckpt, save_pretrained  # noqa: E402
from unet2d import UNet2DModel, count_params  # noqa: E402

CONFIG = {
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [64, 128, 128, 160],
    "layers_per_block": 1,
    "mid_block_scale_factor": 1,
    "downsample_padding": 1,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "dropout": 0.0,
    "act_fn": "silu",
    "attention_head_dim": 32,
    "norm_num_groups": 32,
    "attn_norm_num_groups": None,
    "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default",
    "add_attention": True,
    "class_embed_type": None,
    "num_class_embeds": None,
    "num_train_timesteps": None,
}


class OnnxWrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample, timestep):
        return self.m(sample, timestep)


def main():
    p = common.base_parser("unconditional 32x32 emoji DDPM (diffusers UNet2DModel layout)", steps=50000,
                           batch=128, lr=2e-4)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--n-samples", type=int, default=64)
    p.add_argument("--ddim-steps", type=int, default=50)
    args = p.parse_args()
    args.out = args.out or os.path.join(common.DEFAULT_OUT, "emoji")
    dev = common.setup(args)
    log = common.Logger(args.out, "emoji")
    sched = common.DDPM(1000, 1e-4, 0.02, device=dev)
    model = UNet2DModel(CONFIG).to(dev)
    n_params = count_params(model)
    data = (common.load_emoji(args.data) * 2 - 1).to(dev)
    log("params %d (fp16 ~%.1f MB); images %d; device %s" % (n_params, n_params * 2 / 1e6, len(data), dev))
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
    loss_acc, n_acc, last_loss, t0 = 0.0, 0, float("nan"), time.time()
    while not common.should_stop(step, args, log):
        idx = torch.randint(0, len(data), (args.batch,), device=dev, generator=gen)
        x0 = data[idx]
        flip = torch.rand(args.batch, device=dev, generator=gen) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        t = torch.randint(0, sched.T, (args.batch,), device=dev, generator=gen)
        noise = torch.randn(x0.shape, device=dev, generator=gen)
        loss = F.mse_loss(model(sched.q_sample(x0, t, noise), t), noise)
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
            log("step %6d  loss %.4f  %.1f it/s" % (step, last_loss, step / max(time.time() - t0, 1e-9)))
        if args.ckpt_every and step % args.ckpt_every == 0:
            save_ckpt(ck, model, opt, ema, step)
    if n_acc:
        last_loss = float(loss_acc) / n_acc
    common.sync(dev)
    train_s = time.time() - t0
    save_ckpt(ck, model, opt, ema, step)
    ema_sd = ema.state_dict_for(model)
    save_pretrained(args.out, model.diffusers_config(), ema_sd, sched)
    st.save_file({k: v.detach().half().cpu() for k, v in ema_sd.items()},
                 os.path.join(args.out, "diffusion_pytorch_model.fp16.safetensors"), metadata={"format": "pt"})
    model.load_state_dict(ema_sd)
    model.eval()
    log("saved EMA weights after %d steps (%.1fs)" % (step, train_s))

    sanity = None
    if args.n_samples > 0:
        t1 = time.time()
        g = torch.Generator().manual_seed(args.seed)
        xs = sched.ddim_sample(lambda x, t: model(x, t), (args.n_samples, 3, 32, 32), steps=args.ddim_steps,
                               device=dev, generator=g).cpu()
        common.save_grid(os.path.join(args.out, "samples_ddim.png"), (xs + 1) / 2, nrow=8)
        sanity = {"n": args.n_samples, "ddim_steps": args.ddim_steps, "seconds": round(time.time() - t1, 1),
                  "mean": float(xs.mean()), "std": float(xs.std())}
        log("DDIM sanity: %d samples in %.1fs" % (args.n_samples, sanity["seconds"]))
    onnx_ok = None
    if not args.no_onnx:
        m = OnnxWrap(model).cpu().eval()
        onnx_ok = common.onnx_export(m, (torch.randn(2, 3, 32, 32), torch.tensor([10.0, 500.0])),
                                     os.path.join(args.out, "model.onnx"), ["sample", "timestep"], ["noise_pred"],
                                     {"sample": {0: "batch"}, "timestep": {0: "batch"}, "noise_pred": {0: "batch"}},
                                     log)
    common.write_json(os.path.join(args.out, "train_info.json"), common.train_info(args, dev, {
        "model": "UNet2DModel (diffusers layout), unconditional 32x32 Noto emoji", "params": n_params,
        "data": {"source": "npm package emoji-datasource-google@16.0.0 (package MIT; images: Noto Emoji, "
                           "Apache License 2.0)", "images": int(len(data)),
                 "preprocessing": "64px RGBA PNG composited on white, 2x2 box-downsampled to 32x32, [-1,1], "
                                  "random horizontal flip"},
        "diffusion": {"type": "DDPM", "num_train_timesteps": 1000, "beta_schedule": "linear",
                      "beta_start": 1e-4, "beta_end": 0.02, "prediction_type": "epsilon"},
        "optimizer": {"name": "AdamW", "lr": args.lr, "warmup_steps": args.warmup, "batch": args.batch,
                      "grad_clip": 1.0},
        "ema_decay": args.ema_decay, "weights": "EMA; fp32 and fp16 files",
        "steps": step, "train_seconds": round(train_s, 1), "final_loss": last_loss, "sanity": sanity,
        "onnx": onnx_ok, "onnx_inputs": {"sample": "float32 [B,3,32,32]", "timestep": "float32 [B]"},
    }))
    log("done")


if __name__ == "__main__":
    main()
