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
    n = len(x)
    labels = None
    if args.labels:
        labels = torch.from_numpy(np.load(args.labels).astype(np.int64)).reshape(-1)
        if len(labels) != n:
            sys.exit("labels (%d) and samples (%d) differ in length" % (len(labels), n))
    model = load_classifier(args.classifier, args.device)
    xtr, ytr, xte, yte = common.load_mnist(args.data)
    xtr, xte = xtr * 2 - 1, xte * 2 - 1

    logits, f_s = predict(model, x, args.device)
    pred = logits.argmax(1)
    te_logits, f_te = predict(model, xte, args.device)
    res = {"n": n, "classifier_heldout_accuracy": float((te_logits.argmax(1) == yte).float().mean())}
    if labels is not None:
        cond = labels < 10
        res["n_conditional"] = int(cond.sum())
        if cond.any():
            res["accuracy"] = float((pred[cond] == labels[cond]).float().mean())
    res["pred_histogram"] = torch.bincount(pred, minlength=10).tolist()
    res["pixel_mean"] = float(x.mean())
    res["pixel_std"] = float(x.std())
    if n < 2:
        sys.exit("need at least 2 samples for a Frechet distance")
    res["fd"] = frechet_distance(f_s.numpy(), f_te.numpy())

    # floor: N real training digits (same label histogram if given) vs the held-out set
    g = torch.Generator().manual_seed(args.seed)
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
    _, f_real = predict(model, xtr[idx], args.device)
    res["fd_floor_real_vs_heldout"] = frechet_distance(f_real.numpy(), f_te.numpy())

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
