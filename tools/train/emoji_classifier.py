"""Small CNN over 32x32 RGB emoji (input 3x32x32 in [-1,1], white background = +1) that predicts the emoji's
package category (the 10 of emoji-datasource-google's categories.json), with a 128-d feature layer for the
Frechet distance of generated emoji to the real ones.

Shared by train_emoji_classifier.py (training) and eval_emoji.py (evaluation). The Frechet distance itself is
mnist_classifier.frechet_distance (one implementation for both image kinds)."""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


class EmojiCNN(nn.Module):
    def __init__(self, n_classes=10, feat_dim=128, dropout=0.1):
        super().__init__()
        # small on purpose (about 11 MFLOP per image): it trains in about a CPU-minute on 1 thread
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(16), nn.BatchNorm2d(32)
        self.bn3, self.bn4 = nn.BatchNorm2d(64), nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 4 * 4, feat_dim)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(feat_dim, n_classes)

    def features(self, x):
        """Penultimate 128-d activations (after ReLU): the embedding used for the Frechet distance."""
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # 16x16
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2)  # 8x8
        h = F.max_pool2d(F.relu(self.bn4(self.conv4(F.relu(self.bn3(self.conv3(h)))))), 2)  # 4x4
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x):
        return self.fc2(self.drop(self.features(x)))


def load_classifier(folder, device="cpu"):
    """Returns (model in eval mode, config dict) from a folder written by train_emoji_classifier.py."""
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        sys.exit("no emoji classifier in %s: run tools/train/train_emoji_classifier.py first" % folder)
    with open(path) as f:
        cfg = json.load(f)
    m = EmojiCNN(len(cfg["classes"]), cfg.get("feat_dim", 128))
    m.load_state_dict(st.load_file(os.path.join(folder, "classifier.safetensors")), strict=True)
    return m.to(device).eval(), cfg


@torch.no_grad()
def predict(model, x, device="cpu", batch=500):
    """x: float tensor [N,3,32,32] in [-1,1]. Returns (logits [N,C], features [N,128]) on CPU."""
    logits, feats = [], []
    for i in range(0, len(x), batch):
        f = model.features(x[i:i + batch].to(device).float())
        feats.append(f.cpu())
        logits.append(model.fc2(f).cpu())
    return torch.cat(logits), torch.cat(feats)


def fd_floor(f_real, n, seeds=5, frechet=None):
    """Real-vs-real Frechet floor at sample size n: n real emoji drawn without replacement (with replacement when
    n exceeds the set) from the reference features f_real [M,D], against all M; repeated over `seeds` draws
    (generator seeds 0..seeds-1). Returns (mean, standard deviation over the draws). It is the FD an ideal sampler
    of the training distribution would score at this n: the finite-n bias every sample's FD carries."""
    if frechet is None:
        from mnist_classifier import frechet_distance as frechet
    vals = []
    for s in range(seeds):
        g = torch.Generator().manual_seed(s)
        m = len(f_real)
        idx = torch.randint(0, m, (n,), generator=g) if n > m else torch.randperm(m, generator=g)[:n]
        vals.append(frechet(f_real[idx].numpy(), f_real.numpy()))
    t = torch.tensor(vals, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if seeds > 1 else 0.0
