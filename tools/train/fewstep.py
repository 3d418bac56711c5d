"""The few-step model math shared by the trainers: flow matching (FlowMatchEulerDiscreteScheduler) and consistency
models (CMStochasticIterativeScheduler), each exactly as our Go side computes it (core/schedule/flow.go,
core/schedule/consistency.go, core/sampler/flow.go, core/sampler/consistency.go), so a model trained with these
functions samples unchanged with `diffuse sample --sampler flow_euler|flow_heun|consistency`.

Every function takes the network as `net(x_in, t_in)`: the raw network on its own inputs (for a class-conditional
UNet, wrap it, e.g. train_mnist.cfg_eps_fn(model, labels, w), which also applies classifier-free guidance to the raw
output as the Go samplers do). Used by train_toy2d_flow.py, train_mnist_flow.py and train_mnist_ect.py.
"""
import math

import numpy as np
import torch

# Flow matching: net time input t·N (diffusers' FlowMatchEulerDiscreteScheduler timestep σ·N, N = 1000).
N_FLOW = 1000
# CMStochasticIterativeScheduler defaults: N = 40 Karras levels in [σ_min, σ_max], ρ = 7.
CM_N, CM_SMIN, CM_SMAX, CM_RHO = 40, 0.002, 80.0, 7.0


def _col(v, x):
    """A per-sample [B] tensor shaped to broadcast over x ([B, ...])."""
    return v.reshape(-1, *([1] * (x.dim() - 1)))


# ----------------------------------------------------------------------------- flow matching

def flow_scheduler_config(shift=1.0):
    """What a flow model's file declares (schedule.Config: sde "flow", prediction "flow_prediction")."""
    return {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": N_FLOW, "shift": shift}


def flow_interp(x0, eps, t):
    """x_t = (1-t)·x0 + t·ε and the velocity target v = ε - x0 (Liu et al. 2023, "Flow Straight and Fast", eq. 1;
    Lipman et al. 2023, "Flow Matching for Generative Modeling", eq. 20 with σ_min = 0)."""
    tt = _col(t, x0)
    return (1 - tt) * x0 + tt * eps, eps - x0


def flow_v(net, x, t):
    """The flow velocity at flow time t (a [B] tensor in [0, 1]): the net on (x_t, t·N)."""
    return net(x, t * N_FLOW)


def flow_grid(steps):
    """diffusers' FlowMatchEulerDiscreteScheduler.set_timesteps grid with shift 1 (schedule.FlowGrid)."""
    ts = np.linspace(N_FLOW, 1, steps) / N_FLOW
    return [float(np.float32(t)) for t in ts] + [0.0]


@torch.no_grad()
def flow_euler(net, z, steps):
    """Euler in t from t = 1 (x = z) to 0 on the flow grid (sampler.FlowEuler)."""
    x = z.clone()
    g = flow_grid(steps)
    for a, b in zip(g[:-1], g[1:]):
        x = x + (b - a) * flow_v(net, x, torch.full((x.shape[0],), a, device=x.device))
    return x


@torch.no_grad()
def flow_heun(net, z, steps):
    """Heun on the flow ODE (FlowMatchHeunDiscreteScheduler without churn; last step Euler; sampler.FlowHeun)."""
    x = z.clone()
    g = flow_grid(steps)
    for a, b in zip(g[:-1], g[1:]):
        v = flow_v(net, x, torch.full((x.shape[0],), a, device=x.device))
        if b == 0:
            x = x + (b - a) * v
            continue
        v2 = flow_v(net, x + (b - a) * v, torch.full((x.shape[0],), b, device=x.device))
        x = x + (b - a) * (v + v2) / 2
    return x


# ----------------------------------------------------------------------------- consistency models

def cm_scheduler_config(sigma_data, clip_denoised):
    """What a consistency model's file declares (schedule.Config: sde "ve", prediction "consistency", time input
    "edm"); the σ range and N are CMStochasticIterativeScheduler's defaults."""
    return {"_class_name": "CMStochasticIterativeScheduler", "num_train_timesteps": CM_N, "sigma_min": CM_SMIN,
            "sigma_max": CM_SMAX, "sigma_data": sigma_data, "rho": CM_RHO, "s_noise": 1.0,
            "clip_denoised": bool(clip_denoised)}


def karras_sigmas(n=CM_N, lo=CM_SMIN, hi=CM_SMAX, rho=CM_RHO):
    """σ_i for i = 0..n-1, increasing (Karras et al. 2022, eq. 5, as the consistency-model code's grid)."""
    r = np.arange(n) / (n - 1)
    return (lo ** (1 / rho) + r * (hi ** (1 / rho) - lo ** (1 / rho))) ** rho


def cm_scalings(sigma, sd):
    """c_skip, c_out, c_in of Song et al. 2023, appendix C (ε = σ_min); schedule.ConsistencyScalings."""
    d = sigma - CM_SMIN
    c_skip = sd ** 2 / (d ** 2 + sd ** 2)
    c_out = d * sd / torch.sqrt(sigma ** 2 + sd ** 2)
    c_in = 1 / torch.sqrt(sigma ** 2 + sd ** 2)
    return c_skip, c_out, c_in


def edm_noise_input(sigma):
    """The net's noise input 1000·¼·ln(σ + 1e-44) (schedule.EDMNoiseInput; Karras et al. 2022, table 1)."""
    return 1000 * 0.25 * torch.log(sigma + 1e-44)


def cm_f(net, x, sigma, sd):
    """The consistency function f_θ(x, σ) = c_skip·x + c_out·F(c_in·x, 250·ln σ); σ a [B] tensor."""
    c_skip, c_out, c_in = cm_scalings(sigma, sd)
    out = net(_col(c_in, x) * x, edm_noise_input(sigma))
    return _col(c_skip, x) * x + _col(c_out, x) * out


def cm_grid(steps):
    """CMStochasticIterativeScheduler's σs for a `steps`-step run (schedule.ConsistencyGrid): the N-point Karras
    ramp at timesteps (0..steps-1)·⌊N/steps⌋, then σ_min; float32 values."""
    if not 1 <= steps <= CM_N:
        raise ValueError("consistency sampling takes 1..%d steps, not %d" % (CM_N, steps))
    ratio = CM_N // steps
    ramp = np.array([i * ratio for i in range(steps)]) / (CM_N - 1)
    a, b = CM_SMAX ** (1 / CM_RHO), CM_SMIN ** (1 / CM_RHO)
    return [float(np.float32((a + r * (b - a)) ** CM_RHO)) for r in ramp] + [float(np.float32(CM_SMIN))]


@torch.no_grad()
def cm_sample(net, z, steps, sd, noise_fn=None, clip=False):
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1) as sampler.Consistency: x = σ_max·z, then
    per step x̂0 = f(x, σ_i) (clipped to [-1, 1] with clip), re-noised to the next σ with std
    sqrt(σ_{i+1}² - σ_min²) (none after a one-step run). noise_fn(i, shape) gives step i's fresh N(0, 1) noise
    (default torch.randn); returns (x, [the noise drawn at each step])."""
    sig = cm_grid(steps)
    x = z * sig[0]
    drawn = []
    for i in range(steps):
        x0 = cm_f(net, x, torch.full((x.shape[0],), sig[i], device=x.device), sd)
        if clip:
            x0 = x0.clamp(-1, 1)
        lo = sig[-1]  # σ_min in float32, as the Go sampler: no noise (and no draw) on the way to σ_min
        sdv = math.sqrt(max(sig[i + 1] ** 2 - lo ** 2, 0))
        if sdv > 0 and steps > 1:
            e = noise_fn(i, x.shape) if noise_fn is not None else torch.randn(x.shape)
            e = e.to(x.device)
            drawn.append(e.cpu())
            x = x0 + sdv * e
        else:
            x = x0
    return x, drawn


# ----------------------------------------------------------------------------- Go parity

def write_parity(out_dir, model_dir, null_class, cases):
    """Writes <out_dir>/manifest.json and the .npy files of `cases` for the Go parity test
    (tools/diffuse/trained_fewstep_test.go): each case a dict with name, sampler (Go name), steps, guidance,
    labels ([B] ints), noise (the starting N(0,1) tensor [B,...]), want (PyTorch's samples) and step_noise
    (the fresh noise of each step, consistency only). model_dir is the diffusers folder, relative to out_dir."""
    import json
    import os
    os.makedirs(out_dir, exist_ok=True)
    man = {"model_dir": model_dir, "null_class": null_class, "cases": []}
    for c in cases:
        n = c["name"]
        np.save(os.path.join(out_dir, n + "_noise.npy"), c["noise"].float().cpu().numpy())
        np.save(os.path.join(out_dir, n + "_want.npy"), c["want"].float().cpu().numpy())
        sn = []
        for i, e in enumerate(c.get("step_noise") or []):
            sn.append("%s_step%d.npy" % (n, i))
            np.save(os.path.join(out_dir, sn[-1]), e.float().cpu().numpy())
        man["cases"].append({"name": n, "sampler": c["sampler"], "steps": c["steps"], "guidance": c["guidance"],
                             "labels": [int(v) for v in c["labels"]], "noise": n + "_noise.npy",
                             "want": n + "_want.npy", "step_noise": sn})
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
