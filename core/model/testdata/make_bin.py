"""Makes a tiny diffusers folder whose weights are a pickled state dict
(diffusion_pytorch_model.bin, as older hub repositories ship them) instead
of safetensors, for FromDiffusersDir's fallback: a small random UNet2DModel
(tools/train/unet2d.py's re-implementation, which has diffusers' parameter
names and is checked against diffusers in tools/train/test_unet2d.py) saved
with torch.save(state_dict), its config.json, inputs and PyTorch's output.

    /usr/bin/python3 core/model/testdata/make_bin.py
"""
import json
import os
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "tools", "train"))
from unet2d import UNet2DModel  # noqa: E402

out = os.path.join(here, "diffusers_bin")
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
net = UNet2DModel(dict(
    sample_size=8, in_channels=3, out_channels=3, block_out_channels=[8, 16], layers_per_block=1,
    down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
    norm_num_groups=4, attention_head_dim=4)).eval()
with torch.no_grad():
    for p in net.parameters():  # make norm affines and biases non-trivial
        p.add_(torch.randn_like(p) * 0.05)
torch.save(net.state_dict(), os.path.join(out, "diffusion_pytorch_model.bin"))
json.dump(net.diffusers_config(), open(os.path.join(out, "config.json"), "w"), indent=1)
x = torch.randn(2, 3, 8, 8)
t = torch.tensor([3.0, 611.0])
with torch.no_grad():
    y = net(x, t)
for n, a in (("x", x), ("t", t), ("y", y)):
    np.save(os.path.join(out, n + ".npy"), a.numpy().astype(np.float32))
print("y", tuple(y.shape), "max|y| %.3g" % y.abs().max().item())
