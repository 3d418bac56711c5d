"""Small MNIST CNN (input 1x28x28 in [-1,1]) with a 128-d feature layer, plus Frechet distance helpers.

Shared by train_classifier.py (training) and eval_mnist.py (accuracy + FD of generated digits)."""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


class MnistCNN(nn.Module):
    def __init__(self, feat_dim=128, dropout=0.3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, feat_dim)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(feat_dim, 10)

    def features(self, x):
        """Penultimate 128-d activations (after ReLU): the embedding used for the Frechet distance."""
        h = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)  # 14x14
        h = F.max_pool2d(F.relu(self.conv4(F.relu(self.conv3(h)))), 2)  # 7x7
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x):
        return self.fc2(self.drop(self.features(x)))


def load_classifier(folder, device="cpu"):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    m = MnistCNN(cfg.get("feat_dim", 128))
    m.load_state_dict(st.load_file(os.path.join(folder, "classifier.safetensors")), strict=True)
    return m.to(device).eval()


@torch.no_grad()
def predict(model, x, device="cpu", batch=1000):
    """x: float tensor [N,1,28,28] in [-1,1]. Returns (logits [N,10], features [N,128]) on CPU."""
    logits, feats = [], []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(device).float()
        f = model.features(xb)
        feats.append(f.cpu())
        logits.append(model.fc2(f).cpu())
    return torch.cat(logits), torch.cat(feats)


def frechet_distance(f1, f2):
    """||mu1-mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1^1/2 S2 S1^1/2)^1/2), in float64 via symmetric eigh
    (the trace term equals Tr((S1 S2)^1/2) of the usual formula)."""
    a = np.asarray(f1, dtype=np.float64)
    b = np.asarray(f2, dtype=np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1 = np.cov(a, rowvar=False)
    s2 = np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    s1h = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = s1h @ s2 @ s1h
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
