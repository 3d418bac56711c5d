"""Makes the ScoreNet conformance case: a small randomly initialised ScoreNet
(the tutorial's architecture from tools/train/train_scoresde.py, channels
shrunk), saved exactly as the tutorial saves checkpoints (a DataParallel state
dict, keys prefixed "module."), with inputs and PyTorch's outputs.

    /usr/bin/python3 core/scoresde/testdata/make.py
"""
import os
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "tools", "train"))
from train_scoresde import ScoreNet  # noqa: E402

torch.manual_seed(0)
net = ScoreNet(channels=(32, 32, 32, 32), embed_dim=32, sigma=25.0).eval()
with torch.no_grad():
    for p in net.parameters():  # make GroupNorm affines and biases non-trivial
        p.add_(torch.randn_like(p) * 0.05)
sd = {"module." + k: v for k, v in net.state_dict().items()}
torch.save(sd, os.path.join(here, "tiny_scorenet.pth"))
x = torch.randn(3, 1, 28, 28)
t = torch.tensor([1e-3, 0.37, 1.0])
with torch.no_grad():
    y = net(x, t)
np.save(os.path.join(here, "x.npy"), x.numpy())
np.save(os.path.join(here, "t.npy"), t.numpy())
np.save(os.path.join(here, "y.npy"), y.numpy())
print("y range", float(y.min()), float(y.max()))


class Pwn:
    """An object whose unpickling would run a shell command: what a hostile
    checkpoint looks like. Our reader must refuse it without running it."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/diffuse-pwned",))


torch.save({"module.conv1.weight": torch.zeros(1), "payload": Pwn()}, os.path.join(here, "hostile.pth"))
