"""Evaluates generated MNIST digits with the classifier from train_classifier.py.

  python3 tools/train/eval_mnist.py --samples S.npy [--labels L.npy] [--classifier tools/train/out/classifier]

S.npy: float images in [-1,1], shape [N,1,28,28] (also accepted: [N,28,28] or [N,784]; uint8 0..255 is
rescaled). L.npy: the requested class of each sample (int, [N]); values 10 (null class) are treated as
unconditional and left out of the accuracy.
Prints: accuracy vs requested labels; Frechet distance (classifier's 128-d features) between the samples
and the 1,000 held-out real digits; the real-vs-real floor = FD between N real *training* digits (drawn
with the same label histogram when labels are given) and the same held-out set, at the same N; and the
classifier's accuracy on the held-out digits for reference. --json writes the numbers to a file.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from mnist_classifier import frechet_distance, load_classifier, predict  # noqa: E402


def load_samples(path):
    a = np.load(path)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 127.5 - 1
    a = a.astype(np.float32)
    if a.ndim == 2 and a.shape[1] == 784:
        a = a.reshape(-1, 1, 28, 28)
    elif a.ndim == 3:
        a = a[:, None]
    if a.shape[1:] != (1, 28, 28):
        sys.exit("samples must be [N,1,28,28], got %s" % (a.shape,))
    return torch.from_numpy(a)


def evaluate(x, labels, classifier, data, device, seed=0):
    """The numbers of this tool for samples x ([N,1,28,28] in [-1,1], N >= 2) and their requested labels ([N]
    int64 or None) with the classifier folder `classifier`: a dict with n, accuracy (when labels are given),
    fd, fd_floor_real_vs_heldout, pred_histogram, pixel_mean/std, classifier_heldout_accuracy."""
    x = x.detach().float().cpu()
    n = len(x)
    model = load_classifier(classifier, device)
    xtr, ytr, xte, yte = common.load_mnist(data)
    xtr, xte = xtr * 2 - 1, xte * 2 - 1

    logits, f_s = predict(model, x, device)
    pred = logits.argmax(1)
    te_logits, f_te = predict(model, xte, device)
    res = {"n": n, "classifier_heldout_accuracy": float((te_logits.argmax(1) == yte).float().mean())}
    if labels is not None:
        cond = labels < 10
        res["n_conditional"] = int(cond.sum())
        if cond.any():
            res["accuracy"] = float((pred[cond] == labels[cond]).float().mean())
    res["pred_histogram"] = torch.bincount(pred, minlength=10).tolist()
    res["pixel_mean"] = float(x.mean())
    res["pixel_std"] = float(x.std())
    res["fd"] = frechet_distance(f_s.numpy(), f_te.numpy())

    # floor: N real training digits (same label histogram if given) vs the held-out set
    g = torch.Generator().manual_seed(seed)
    if labels is not None and (labels < 10).all():
        idx = []
        for c in range(10):
            k = int((labels == c).sum())
            pool = torch.nonzero(ytr == c).reshape(-1)
            if k:
                pick = torch.randint(0, len(pool), (k,), generator=g) if k > len(pool) else \
                    torch.randperm(len(pool), generator=g)[:k]
                idx.append(pool[pick])
        idx = torch.cat(idx)
    else:
        idx = torch.randint(0, len(ytr), (n,), generator=g) if n > len(ytr) else torch.randperm(len(ytr), generator=g)[:n]
    _, f_real = predict(model, xtr[idx], device)
    res["fd_floor_real_vs_heldout"] = frechet_distance(f_real.numpy(), f_te.numpy())
    return res


def sample_and_evaluate(name, sample_fn, n, out_dir, classifier, data, device, log, seed=0, batch=500):
    """For the trainers: draws n digits with labels 0..9 round robin by sample_fn(labels, z) (z: the starting
    N(0, 1) noise [B,1,28,28] from seed; returns images in [-1,1]), saves them as <out_dir>/<name>_x.npy / _y.npy
    and a PNG grid, and scores them with evaluate() when the classifier folder exists (else only the pixel
    statistics). Returns the numbers as a dict."""
    import time
    os.makedirs(out_dir, exist_ok=True)
    labels = torch.arange(n) % 10
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    xs = []
    for i in range(0, n, batch):
        lab = labels[i:i + batch]
        z = torch.randn((len(lab), 1, 28, 28), generator=g)
        xs.append(sample_fn(lab, z).float().cpu())
    x = torch.cat(xs)
    el = time.time() - t0
    np.save(os.path.join(out_dir, name + "_x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out_dir, name + "_y.npy"), labels.numpy().astype(np.int64))
    common.save_grid(os.path.join(out_dir, name + ".png"), (x[:100].clamp(-1, 1) + 1) / 2, nrow=10)
    res = {"n": n, "seconds": round(el, 2), "finite": bool(torch.isfinite(x).all()),
           "pixel_mean": float(x.mean()), "pixel_std": float(x.std())}
    if n >= 2 and classifier and os.path.exists(os.path.join(classifier, "classifier.safetensors")):
        res.update(evaluate(x, labels, classifier, data, device, seed))
        log("%s: %d samples in %.1fs: accuracy %.4f, FD %.3f (real floor %.3f)" % (
            name, n, el, res["accuracy"], res["fd"], res["fd_floor_real_vs_heldout"]))
    else:
        log("%s: %d samples in %.1fs (no classifier at %s: not scored)" % (name, n, el, classifier))
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", required=True)
    p.add_argument("--labels", default=None)
    p.add_argument("--classifier", default=os.path.join(common.DEFAULT_OUT, "classifier"))
    p.add_argument("--data", default=common.DEFAULT_DATA)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    x = load_samples(args.samples)
    labels = None
    if args.labels:
        labels = torch.from_numpy(np.load(args.labels).astype(np.int64)).reshape(-1)
        if len(labels) != len(x):
            sys.exit("labels (%d) and samples (%d) differ in length" % (len(labels), len(x)))
    if len(x) < 2:
        sys.exit("need at least 2 samples for a Frechet distance")
    res = evaluate(x, labels, args.classifier, args.data, args.device, args.seed)
    n = res["n"]

    print("samples: %d  (pixel mean %.3f std %.3f)" % (n, res["pixel_mean"], res["pixel_std"]))
    if "accuracy" in res:
        print("accuracy vs requested labels: %.4f  (%d conditional samples)" % (res["accuracy"], res["n_conditional"]))
    print("predicted class histogram: %s" % res["pred_histogram"])
    print("FD (classifier features) samples vs 1000 held-out digits: %.4f" % res["fd"])
    print("FD floor, %d real training digits vs the same held-out set: %.4f" % (n, res["fd_floor_real_vs_heldout"]))
    print("classifier accuracy on held-out real digits: %.4f" % res["classifier_heldout_accuracy"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
