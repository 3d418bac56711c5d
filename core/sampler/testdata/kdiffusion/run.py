"""Runs k-diffusion's own samplers (k_diffusion/sampling.py, given as the
first argument; github.com/crowsonkb/k-diffusion) on the grid, starting
points and noise of in.json with the exact denoiser of the Gaussian
mixture of core/sampler's mixNet, in float64, and writes out.json for
TestKDiffusionParity. Needs only torch and numpy: scipy's quad (for LMS)
is replaced by 64-point Gauss-Legendre, exact for its polynomials, and
the modules sampling.py imports but these samplers do not use are stubbed.

    /usr/bin/python3 run.py path/to/k_diffusion/sampling.py
"""
import json, math, os, sys, types

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))

# stubs for the imports of sampling.py
scipy = types.ModuleType("scipy")
integrate = types.ModuleType("scipy.integrate")
def quad(fn, a, b, epsrel=None):
    xs, ws = np.polynomial.legendre.leggauss(64)
    h, m = (b - a) / 2, (a + b) / 2
    return (h * sum(w * fn(m + h * x) for x, w in zip(xs, ws)), 0.0)
integrate.quad = quad
scipy.integrate = integrate
sys.modules["scipy"], sys.modules["scipy.integrate"] = scipy, integrate
for name in ["torchdiffeq", "torchsde", "tqdm", "tqdm.auto"]:
    sys.modules[name] = types.ModuleType(name)
sys.modules["torchdiffeq"].odeint = None
sys.modules["tqdm.auto"].trange = lambda n, **kw: range(n)
sys.modules["tqdm.auto"].tqdm = lambda x, **kw: x
pkg = types.ModuleType("kd")
pkg.__path__ = []
utils = types.ModuleType("kd.utils")
utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
sys.modules["kd"], sys.modules["kd.utils"] = pkg, utils
src = open(sys.argv[1]).read()
ks = types.ModuleType("kd.sampling")
ks.__package__ = "kd"
exec(compile(src, sys.argv[1], "exec"), ks.__dict__)

inp = json.load(open(os.path.join(here, "in.json")))
sigmas = torch.tensor(inp["sigmas"], dtype=torch.float64)
n = int(np.prod(inp["shape"]))
x0 = torch.tensor(inp["x"], dtype=torch.float64).reshape(-1, n)
noise = [[torch.tensor(d, dtype=torch.float64).reshape(-1, n) for d in step] for step in inp["noise"]]

def model(x, sigma):
    """E[x0 | x] for x0 ~ 2/3 N(0.6, 0.3²) + 1/3 N(-0.6, 0.3²) per value."""
    mu, s2 = 0.6, 0.09
    v = s2 + sigma[:, None] ** 2
    k = s2 / v
    w1 = 2 * torch.exp(-(x - mu) ** 2 / (2 * v))
    w2 = torch.exp(-(x + mu) ** 2 / (2 * v))
    r1 = w1 / (w1 + w2)
    return r1 * (mu + k * (x - mu)) + (1 - r1) * (-mu + k * (x + mu))

logs = [math.log(s) if s > 0 else -1e9 for s in inp["sigmas"]]
def noise_sampler(sigma, sigma_next):
    """The fixture's noise of step i (sigma = σ_i), draw 1 when the call
    goes to σ_{i+1} in dpmpp_sde's second stage, else draw 0."""
    i = min(range(len(logs)), key=lambda j: abs(logs[j] - math.log(float(sigma))))
    sub = 0
    if SUBS and abs(math.log(float(sigma_next)) - logs[i + 1]) < 1e-9:
        sub = 1
    return noise[i][sub]

def rm(name, fn, subs=False, **kw):
    global SUBS
    SUBS = subs
    out[name] = fn(model, x0.clone(), sigmas, **kw).reshape(-1).tolist()

out = {}
ns = dict(noise_sampler=noise_sampler)
rm("euler_ancestral", ks.sample_euler_ancestral, **ns)
rm("dpm_2", ks.sample_dpm_2)
rm("dpm_2_ancestral", ks.sample_dpm_2_ancestral, **ns)
rm("dpm_2_ancestral_eta0.5", ks.sample_dpm_2_ancestral, eta=0.5, **ns)
rm("dpm_2_ancestral_snoise", ks.sample_dpm_2_ancestral, s_noise=1.1, **ns)
rm("dpmpp_2s_ancestral", ks.sample_dpmpp_2s_ancestral, **ns)
rm("dpmpp_2s_ancestral_eta0", ks.sample_dpmpp_2s_ancestral, eta=0, **ns)
rm("dpmpp_sde", ks.sample_dpmpp_sde, subs=True, **ns)
rm("dpmpp_sde_eta0", ks.sample_dpmpp_sde, subs=True, eta=0, **ns)
rm("dpmpp_2m_sde", ks.sample_dpmpp_2m_sde, **ns)
rm("dpmpp_2m_sde_eta0", ks.sample_dpmpp_2m_sde, eta=0, **ns)
rm("dpmpp_3m_sde_halfD2", ks.sample_dpmpp_3m_sde, **ns)
rm("dpmpp_3m_sde_eta0_halfD2", ks.sample_dpmpp_3m_sde, eta=0, **ns)
rm("lms", ks.sample_lms)
rm("lms_order2", ks.sample_lms, order=2)
json.dump(out, open(os.path.join(here, "out.json"), "w"))
print("wrote", len(out), "runs")
