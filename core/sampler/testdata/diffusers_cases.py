"""Scheduler conformance cases beyond the shared fixtures, computed by
diffusers' own scheduler source.

diffusers itself is not installable here (no PyPI), so this runs the
unmodified scheduler modules (scheduling_euler_discrete.py,
scheduling_ddim.py, scheduling_unipc_multistep.py,
scheduling_deis_multistep.py) from a diffusers checkout with the few package imports
they make (ConfigMixin, register_to_config, BaseOutput, ...) stubbed: the
arithmetic, dtypes and numpy/torch calls are diffusers' own.

    /usr/bin/python3 core/sampler/testdata/diffusers_cases.py SRC core/sampler/testdata/diffusers

writes one folder per case (and prints the ends of the beta tables) in the format of the shared fixtures' schedulers/
(see their README), which TestSchedulerConformance also walks. SRC holds the
two files, e.g. from a mirror of huggingface/diffusers:
    git show HEAD:src/diffusers/schedulers/scheduling_ddim.py > SRC/scheduling_ddim.py
(the cases here came from commit 58eb52c0803ea9af3abec60841c2a093bdf1f951,
torch 1.13, numpy 1.24).
"""

import enum
import json
import os
import importlib.util
import inspect
import sys
import types
from dataclasses import dataclass

import numpy as np
import torch


def stub_package():
    pkg = types.ModuleType("diffusers")
    pkg.__path__ = []
    sched = types.ModuleType("diffusers.schedulers")
    sched.__path__ = []
    cfg = types.ModuleType("diffusers.configuration_utils")

    class ConfigMixin:
        pass

    def register_to_config(init):
        sig = inspect.signature(init)

        def wrapped(self, *args, **kwargs):
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            d = dict(bound.arguments)
            d.pop("self")
            self.config = types.SimpleNamespace(**d)
            init(self, *args, **kwargs)

        return wrapped

    cfg.ConfigMixin, cfg.register_to_config = ConfigMixin, register_to_config
    utils = types.ModuleType("diffusers.utils")
    utils.__path__ = []

    @dataclass
    class BaseOutput:
        pass

    utils.BaseOutput = BaseOutput
    utils.is_scipy_available = lambda: False
    utils.deprecate = lambda *a, **k: None

    class _Log:
        def get_logger(self, name):
            import logging

            return logging.getLogger(name)

    utils.logging = _Log()
    tu = types.ModuleType("diffusers.utils.torch_utils")
    tu.randn_tensor = lambda shape, generator=None, device=None, dtype=None: torch.randn(shape, dtype=dtype)
    su = types.ModuleType("diffusers.schedulers.scheduling_utils")

    class KarrasDiffusionSchedulers(enum.Enum):
        pass

    class SchedulerMixin:
        pass

    @dataclass
    class SchedulerOutput:
        prev_sample: torch.Tensor

    su.KarrasDiffusionSchedulers, su.SchedulerMixin = KarrasDiffusionSchedulers, SchedulerMixin
    su.SchedulerOutput = SchedulerOutput
    for m in (pkg, sched, cfg, utils, tu, su):
        sys.modules[m.__name__] = m


def load(dir, name):
    spec = importlib.util.spec_from_file_location("diffusers.schedulers." + name, f"{dir}/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def toy(x, t):
    """The fixtures' stand-in model (shared/fixtures/README.md)."""
    return torch.tanh(0.7 * x + 0.3) * 0.9 + 0.05 * torch.cos(torch.as_tensor(float(t)) / 97)


def write_case(out, name, cls, sched, steps, note, tolerance):
    """Runs sched for steps as the shared fixtures do (README there) and
    writes the same files: case.json, scheduler_config.json, x_init.npy
    (already times init_noise_sigma), timesteps.npy, traj.npy; and
    alphas_cumprod.npy, the scheduler's float32 table. case.json's
    "tolerance" is the relative trajectory error the Go test allows."""
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((1, 2, 2, 4), generator=g, dtype=torch.float32) * sched.init_noise_sigma
    x = x.to(torch.float32)
    x_init = x.clone()
    traj = []
    for t in sched.timesteps:
        t = t.item() if sched.timesteps.dtype.is_floating_point else int(t)
        y = toy(sched.scale_model_input(x, t), t).to(torch.float32)
        x = sched.step(y, t, x).prev_sample
        traj.append(x.clone())
    cfg = {k: v for k, v in vars(sched.config).items() if isinstance(v, (int, float, str, bool, type(None)))}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump({"cls": cls, "steps": steps, "step_kwargs": {}, "note": note, "tolerance": tolerance,
                   "model": "tanh(0.7*x+0.3)*0.9 + 0.05*cos(t/97), applied to scale_model_input(x,t)"}, f, indent=1)
    with open(os.path.join(d, "scheduler_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    np.save(os.path.join(d, "x_init.npy"), x_init.numpy())
    np.save(os.path.join(d, "timesteps.npy"), sched.timesteps.numpy().astype(np.float32))
    np.save(os.path.join(d, "traj.npy"), torch.stack(traj).numpy())
    np.save(os.path.join(d, "alphas_cumprod.npy"), sched.alphas_cumprod.numpy())
    print(name, "timesteps", [float(v) for v in sched.timesteps])
    if hasattr(sched, "sigmas"):
        print(name, "sigmas", [float(v) for v in sched.sigmas])


def main():
    stub_package()
    src, out = sys.argv[1], sys.argv[2]
    euler = load(src, "scheduling_euler_discrete")
    ddim = load(src, "scheduling_ddim")
    write_case(out, "euler_karras_scaled_linear", "EulerDiscreteScheduler",
               euler.EulerDiscreteScheduler(beta_schedule="scaled_linear", use_karras_sigmas=True), 25,
               "issue #19: timesteps 8.74435 and 2.40118 at calls 22 and 23 (the float32 sigma table of _sigma_to_t)", 1e-6)
    write_case(out, "ddim_linspace_sample_clip_cosine", "DDIMScheduler",
               ddim.DDIMScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="linspace",
                                  prediction_type="sample", clip_sample=True), 25,
               "issue #19: x0 prediction near t = 0, where 1 - alphas_cumprod is float32 in diffusers"
               " (1.7e-5 at call 23 with a float64 table)", 1e-6)
    # UniPC (bh2 order 2, bh1 order 3) and DEIS (orders 2 and 3), with few
    # steps (lower_order_final at work) and with more
    unipc = load(src, "scheduling_unipc_multistep")
    deis = load(src, "scheduling_deis_multistep")
    write_case(out, "unipc_bh2_order2", "UniPCMultistepScheduler",
               unipc.UniPCMultistepScheduler(solver_order=2, solver_type="bh2"), 10,
               "sampler unipc: predictor-corrector, lower_order_final", 1e-5)
    write_case(out, "unipc_bh1_order3_scaled_linear", "UniPCMultistepScheduler",
               unipc.UniPCMultistepScheduler(solver_order=3, solver_type="bh1", beta_schedule="scaled_linear"), 20,
               "sampler unipc_bh1, order 3", 1e-5)
    write_case(out, "deis_order2", "DEISMultistepScheduler",
               deis.DEISMultistepScheduler(solver_order=2), 10,
               "sampler deis: logrho, lower_order_final under 15 steps, last level that of timestep 0", 1e-5)
    write_case(out, "deis_order3_scaled_linear", "DEISMultistepScheduler",
               deis.DEISMultistepScheduler(solver_order=3, beta_schedule="scaled_linear"), 20,
               "sampler deis, order 3 to the end (20 steps)", 1e-5)
    # Table ends for core/schedule's TestBetaSchedules.
    for beta, start, end in (("linear", 0.0001, 0.02), ("scaled_linear", 0.00085, 0.012),
                             ("squaredcos_cap_v2", 0.0001, 0.02)):
        s = ddim.DDIMScheduler(beta_schedule=beta, beta_start=start, beta_end=end)
        print(f"DDIMScheduler {beta} {start} {end}: alphas_cumprod[0] {s.alphas_cumprod[0].item()!r}"
              f" alphas_cumprod[999] {s.alphas_cumprod[999].item()!r}"
              f" betas[0] {s.betas[0].item()!r} betas[999] {s.betas[999].item()!r}")


if __name__ == "__main__":
    main()
