"""Conformance cases for the flow-matching and consistency samplers,
computed by diffusers' own scheduler source (FlowMatchEulerDiscreteScheduler,
FlowMatchHeunDiscreteScheduler, CMStochasticIterativeScheduler) with the
package imports stubbed as in diffusers_cases.py, whose stubs, loader and
case format this reuses (TestSchedulerConformance walks the folders).

    /usr/bin/python3 core/sampler/testdata/flow_cm_cases.py SRC core/sampler/testdata/diffusers

SRC holds the three scheduler files, e.g. from a mirror of huggingface/diffusers:
    git show HEAD:src/diffusers/schedulers/scheduling_consistency_models.py > SRC/scheduling_consistency_models.py
(the cases here came from commit 58eb52c0803ea9af3abec60841c2a093bdf1f951,
torch 1.13, numpy 1.24). The consistency cases also write noise.npy, the
draws the scheduler's step() made (one per step, batch of one), which the
Go test feeds to our sampler.
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diffusers_cases as dc  # noqa: E402


def main():
    dc.stub_package()
    src, out = sys.argv[1], sys.argv[2]
    euler = dc.load(src, "scheduling_flow_match_euler_discrete")
    heun = dc.load(src, "scheduling_flow_match_heun_discrete")
    cm = dc.load(src, "scheduling_consistency_models")
    tol = 2e-6
    for name, kw, steps in [
        ("flow_euler_shift1_5", {}, 5),
        ("flow_euler_shift3_8", {"shift": 3.0}, 8),
        ("flow_euler_shift3_1", {"shift": 3.0}, 1),
        ("flow_euler_shift3_karras_6", {"shift": 3.0, "use_karras_sigmas": True}, 6),
    ]:
        s = euler.FlowMatchEulerDiscreteScheduler(**kw)
        s.init_noise_sigma = 1.0
        s.scale_model_input = lambda x, t: x
        s.alphas_cumprod = torch.zeros(0)
        dc.write_case(out, name, "FlowMatchEulerDiscreteScheduler", s, steps, "diffusers FlowMatchEuler, " + str(kw), tol)
    for name, kw, steps in [("flow_heun_shift3_6", {"shift": 3.0}, 6), ("flow_heun_shift1_1", {}, 1)]:
        s = heun.FlowMatchHeunDiscreteScheduler(**kw)
        s.init_noise_sigma = 1.0
        s.scale_model_input = lambda x, t: x
        s.alphas_cumprod = torch.zeros(0)
        dc.write_case(out, name, "FlowMatchHeunDiscreteScheduler", s, steps, "diffusers FlowMatchHeun, " + str(kw), tol)
    for name, kw, steps in [("cm_default_1", {}, 1), ("cm_default_2", {}, 2), ("cm_default_4", {}, 4),
                            ("cm_n151_3", {"num_train_timesteps": 151}, 3)]:
        drawn = []

        def randn(shape, generator=None, device=None, dtype=None):
            z = torch.randn(shape, dtype=dtype)
            drawn.append(z.clone())
            return z

        cm.randn_tensor = randn
        s = cm.CMStochasticIterativeScheduler(**kw)
        s.alphas_cumprod = torch.zeros(0)
        dc.write_case(out, name, "CMStochasticIterativeScheduler", s, steps, "diffusers CMStochasticIterative, " + str(kw), 1e-5)
        d = os.path.join(out, name)
        if drawn:
            np.save(os.path.join(d, "noise.npy"), torch.stack(drawn).numpy().astype(np.float64))
        os.remove(os.path.join(d, "alphas_cumprod.npy"))
    for name in os.listdir(out):
        if not name.startswith(("flow_", "cm_")):
            continue
        p = os.path.join(out, name, "alphas_cumprod.npy")
        if os.path.exists(p):
            os.remove(p)
        # a diffusers-saved config names its class, which selects the
        # schedule family here as in a real checkpoint's scheduler_config.json
        with open(os.path.join(out, name, "case.json")) as f:
            cls = json.load(f)["cls"]
        p = os.path.join(out, name, "scheduler_config.json")
        with open(p) as f:
            cfg = json.load(f)
        with open(p, "w") as f:
            json.dump({"_class_name": cls, **cfg}, f, indent=1)


if __name__ == "__main__":
    main()
