"""2-D toy few-step models: the swiss roll of train_toy2d.py as a rectified flow, its 2-rectified (reflow)
version, and a consistency-distilled version, all on the same MLP (train_toy2d.ToyMLP) so
`diffuse convert --from toy2d` reads them unchanged. Each mode writes the scheduler config that the Go side
(core/schedule) computes with, and the training here uses exactly that parameterisation:

  --mode flow    rectified flow / flow matching (Liu et al. 2023, "Flow Straight and Fast", eq. 1; Lipman
                 et al. 2023): x_t = (1-t)·x0 + t·ε, t ~ U(0,1), the net predicts v = ε - x0 (MSE).
                 Net time input t·1000 (diffusers' FlowMatchEulerDiscreteScheduler timestep σ·N, N = 1000).
  --mode reflow  2-rectified flow (Liu et al. 2023, sec. 2.3, "reflow"): pairs (ε, x0 = ODE_teacher(ε)) from
                 the flow model's ODE (Heun, --pair-steps steps), then the same objective on those couplings,
                 starting from the teacher's weights. Its paths are straighter, so few Euler steps suffice.
  --mode cm      consistency distillation (Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models",
                 Algorithm 2) from a flow teacher (--teacher): VE form x_σ = x0 + σ·ε, the teacher's
                 denoiser D(x_σ, σ) = x_t - t·v(x_t, t) at t = σ/(1+σ), x_t = x_σ/(1+σ); one Heun step of
                 dx/dσ = (x - D)/σ between neighbours of the N = 40 Karras grid (σ in [0.002, 80], ρ = 7);
                 f_θ(x, σ) = c_skip·x + c_out·F(c_in·x, 250·ln σ) with σ_data = --sigma-data (appendix C;
                 what diffusers' CMStochasticIterativeScheduler and core/schedule/consistency.go compute);
                 loss |f_θ(x_{n+1}, σ_{n+1}) - f_θ⁻(x̂_n, σ_n)|² against an EMA target θ⁻ (μ = --target-ema).

Output (<out>): toy2d.safetensors (EMA weights, fp32, config JSON in __metadata__["config"] with its
"scheduler"), config.json, train_info.json, samples.npz (for the parity test: the starting noise and
PyTorch's own few-step samples of the saved weights), train.log.
"""
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import fewstep  # noqa: E402
from fewstep import CM_N, cm_f, flow_euler, flow_heun, flow_v, karras_sigmas  # noqa: E402
import st  # noqa: E402
from train_toy2d import HIDDEN, TEMB_DIM, ToyMLP, nn_dist, scatter_png, swiss_roll  # noqa: E402


def cm_sample(model, z, steps, sd, gen):
    """fewstep.cm_sample with the fresh noise from gen."""
    return fewstep.cm_sample(model, z, steps, sd, noise_fn=lambda i, shape: torch.randn(shape, generator=gen))[0]


def main():
    p = common.base_parser("2-D swiss-roll rectified flow / reflow / consistency distillation", steps=6000,
                           batch=1024, lr=2e-3)
    p.add_argument("--mode", choices=["flow", "reflow", "cm"], required=True)
    p.add_argument("--teacher", default=None, help="the flow model's toy2d.safetensors (reflow, cm)")
    p.add_argument("--pairs", type=int, default=50000, help="reflow: number of (noise, sample) couplings")
    p.add_argument("--pair-steps", type=int, default=64, help="reflow: Heun steps of the teacher ODE")
    p.add_argument("--sigma-data", type=float, default=1.0, help="cm: σ_data of the scalings")
    p.add_argument("--target-ema", type=float, default=0.95, help="cm: EMA rate μ of the target network")
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--n-samples", type=int, default=2000)
    args = p.parse_args()
    args.out = args.out or os.path.join(common.DEFAULT_OUT, "toy2d-" + args.mode)
    dev = common.setup(args)
    log = common.Logger(args.out, "toy2d-" + args.mode)
    gen = torch.Generator().manual_seed(args.seed)

    teacher = None
    if args.mode in ("reflow", "cm"):
        teacher = ToyMLP()
        teacher.load_state_dict({k: v.float() for k, v in st.load_file(args.teacher).items()})
        teacher.eval()
        for q in teacher.parameters():
            q.requires_grad_(False)
    model = ToyMLP()
    if args.mode == "reflow":
        model.load_state_dict(teacher.state_dict())
    pairs = None
    if args.mode == "reflow":
        t1 = time.time()
        z = torch.randn(args.pairs, 2, generator=gen)
        pairs = (z, flow_heun(teacher, z, args.pair_steps))
        log("reflow: %d couplings by %d Heun steps of the teacher in %.1fs" % (args.pairs, args.pair_steps,
                                                                               time.time() - t1))
    target = None
    sigmas = torch.tensor(karras_sigmas(), dtype=torch.float32)
    if args.mode == "cm":
        target = ToyMLP()
        target.load_state_dict(model.state_dict())
        for q in target.parameters():
            q.requires_grad_(False)

    n_params = sum(q.numel() for q in model.parameters())
    log("mode %s; params %d; device %s; threads %d" % (args.mode, n_params, dev, torch.get_num_threads()))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    ema = common.EMA(model, args.ema_decay)
    step, t0, losses, first_loss = 0, time.time(), [], None
    while not common.should_stop(step, args, log):
        B = args.batch
        if args.mode == "flow":
            x0 = swiss_roll(B, gen, "cpu")
            eps = torch.randn(B, 2, generator=gen)
            t = torch.rand(B, generator=gen)
            xt = (1 - t[:, None]) * x0 + t[:, None] * eps
            loss = F.mse_loss(flow_v(model, xt, t), eps - x0)
        elif args.mode == "reflow":
            idx = torch.randint(0, args.pairs, (B,), generator=gen)
            eps, x0 = pairs[0][idx], pairs[1][idx]
            t = torch.rand(B, generator=gen)
            xt = (1 - t[:, None]) * x0 + t[:, None] * eps
            loss = F.mse_loss(flow_v(model, xt, t), eps - x0)
        else:
            x0 = swiss_roll(B, gen, "cpu")
            n = torch.randint(0, CM_N - 1, (B,), generator=gen)
            s_hi, s_lo = sigmas[n + 1], sigmas[n]
            x_hi = x0 + s_hi[:, None] * torch.randn(B, 2, generator=gen)
            with torch.no_grad():
                def den(x, s):  # the flow teacher as a VE denoiser
                    tt = s / (1 + s)
                    xf = x / (1 + s)[:, None]
                    return xf - tt[:, None] * flow_v(teacher, xf, tt)
                d1 = (x_hi - den(x_hi, s_hi)) / s_hi[:, None]
                x_e = x_hi + (s_lo - s_hi)[:, None] * d1
                d2 = (x_e - den(x_e, s_lo)) / s_lo[:, None]
                x_lo = x_hi + (s_lo - s_hi)[:, None] * (d1 + d2) / 2
                y = cm_f(target, x_lo, s_lo, args.sigma_data)
            loss = F.mse_loss(cm_f(model, x_hi, s_hi, args.sigma_data), y)
        for g in opt.param_groups:  # cosine decay to 5% over the planned steps
            g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step / max(args.steps, 1), 1.0))))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model)
        if target is not None:
            with torch.no_grad():
                for pt, pm in zip(target.parameters(), model.parameters()):
                    pt.mul_(args.target_ema).add_(pm.detach(), alpha=1 - args.target_ema)
        step += 1
        losses.append(float(loss))
        if step % args.log_every == 0 or step == args.steps:
            m = sum(losses[-args.log_every:]) / len(losses[-args.log_every:])
            if first_loss is None:
                first_loss = m
            log("step %6d  loss %.5f  %.1f it/s" % (step, m, step / max(time.time() - t0, 1e-9)))
    train_s = time.time() - t0
    last_loss = sum(losses[-args.log_every:]) / max(len(losses[-args.log_every:]), 1)
    sd = {k: v.detach().float().cpu().contiguous() for k, v in ema.state_dict_for(model).items()}
    model.load_state_dict(sd)
    model.eval()

    if args.mode == "cm":
        sched = fewstep.cm_scheduler_config(args.sigma_data, clip_denoised=False)
        tin = "EDM c_noise times 1000: 250*ln(sigma) of the VE noise level, net input c_in*x"
        fwd = "x0 = c_skip(sigma)*x + c_out(sigma)*out(...) with the MLP below on (c_in*x, 250 ln sigma)"
    else:
        sched = fewstep.flow_scheduler_config()
        tin = "flow time t in [0,1] times 1000 (diffusers' flow-matching timestep)"
        fwd = "h=silu(fc1(cat[x, temb])); h=silu(fc2(h)); h=silu(fc3(h)); v=out(h), v = eps - x0"
    cfg = {
        "model_type": "toy2d_mlp",
        "data": "swiss roll: theta=1.5*pi*(1+2u), (theta cos theta, theta sin theta)/7 + N(0,0.03^2)",
        "objective": {"flow": "rectified flow (velocity)", "reflow": "2-rectified flow (reflow)",
                      "cm": "consistency distillation"}[args.mode],
        "in_dim": 2, "hidden": HIDDEN, "num_hidden_layers": 3, "activation": "silu",
        "time_embedding": {"type": "sinusoidal", "dim": TEMB_DIM, "order": "sin_then_cos", "max_period": 10000,
                           "input": tin},
        "forward": fwd,
        "tensors": {k: list(v.shape) for k, v in sd.items()},
        "scheduler": sched,
    }
    st.save_file(sd, os.path.join(args.out, "toy2d.safetensors"),
                 metadata={"format": "pt", "config": json.dumps(cfg, sort_keys=True)})
    common.write_json(os.path.join(args.out, "config.json"), cfg)
    log("saved toy2d.safetensors after %d steps (%.1fs), loss %.5f -> %.5f" % (step, train_s, first_loss or
                                                                                float("nan"), last_loss))

    # PyTorch's own samples of the saved weights, for Go parity and the card.
    zg = torch.Generator().manual_seed(1234)
    z = torch.randn(args.n_samples, 2, generator=zg)
    ref = swiss_roll(10000, torch.Generator().manual_seed(999), "cpu")
    evals, out = {}, {"noise": z.numpy()}
    for k in (1, 2, 4, 25):
        if args.mode == "cm":
            xs = cm_sample(model, z, k, args.sigma_data, torch.Generator().manual_seed(5)) if k <= CM_N else None
        else:
            xs = flow_euler(model, z, k)
        if xs is None:
            continue
        out["euler%d" % k if args.mode != "cm" else "cm%d" % k] = xs.numpy()
        evals[k] = nn_dist(xs, ref)
        log("PyTorch %d-step samples -> data mean NN distance %.4f" % (k, evals[k]))
    np.savez(os.path.join(args.out, "samples.npz"), **out)
    key = "cm1" if args.mode == "cm" else "euler1"
    scatter_png(os.path.join(args.out, "samples1.png"), out[key], ref.numpy())
    common.write_json(os.path.join(args.out, "train_info.json"), common.train_info(args, dev, {
        "model": "toy2d MLP (swiss roll, %s)" % cfg["objective"], "params": n_params, "config": cfg,
        "optimizer": {"name": "Adam", "lr": args.lr, "schedule": "cosine to 5%", "batch": args.batch},
        "ema_decay": args.ema_decay, "weights": "EMA, fp32", "steps": step, "train_seconds": round(train_s, 1),
        "first_loss": first_loss, "final_loss": last_loss, "pytorch_nn_dist": evals,
    }))
    log("done")


if __name__ == "__main__":
    main()
