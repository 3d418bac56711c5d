"""Makes the toy2d conformance case: a randomly initialised ToyMLP (from
tools/train/train_toy2d.py) saved as that script saves it, with inputs and
PyTorch's outputs.   /usr/bin/python3 core/toy2d/testdata/make.py"""
import json
import os
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "tools", "train"))
import st  # noqa: E402
from train_toy2d import ToyMLP  # noqa: E402

torch.manual_seed(0)
net = ToyMLP().eval()
sd = {k: v.contiguous() for k, v in net.state_dict().items()}
cfg = {"model_type": "toy2d_mlp", "in_dim": 2, "num_hidden_layers": 3, "time_embedding": {"dim": 32},
       "scheduler": {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4,
                     "beta_end": 0.02, "prediction_type": "epsilon", "clip_sample": False}}
st.save_file(sd, os.path.join(here, "toy.safetensors"), metadata={"format": "pt", "config": json.dumps(cfg)})
x = torch.randn(5, 2)
t = torch.tensor([0.0, 3.0, 250.0, 600.0, 999.0])
with torch.no_grad():
    y = net(x, t)
np.save(os.path.join(here, "x.npy"), x.numpy().reshape(5, 2, 1, 1))
np.save(os.path.join(here, "t.npy"), t.numpy())
np.save(os.path.join(here, "y.npy"), y.numpy().reshape(5, 2, 1, 1))
