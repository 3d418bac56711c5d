"""Evaluates generated 32x32 emoji with the category classifier of train_emoji_classifier.py.

  python3 tools/train/eval_emoji.py --samples S.npy [--classifier tools/train/out/emoji_classifier] [--json R.json]

S.npy: float images in [-1,1], shape [N,3,32,32] (also accepted: [N,32,32,3]; uint8 0..255 is rescaled).
Pixels are clipped to [-1,1] first, as any picture of them is (the share outside is reported).
Prints:
  * FD: Frechet distance in the classifier's 128-d features between the samples and ALL 3,786 real emoji. All,
    not the classifier's 763 held-out ones, because the emoji model was trained on all 3,786 (nothing held out):
    they are the distribution it should reproduce, and the larger set gives steadier means and covariances.
  * the real-vs-real floor at the same N: N real emoji drawn from the 3,786 against all of them (mean and
    standard deviation over 5 draws): what an ideal sampler of the training set would score at this N. The
    standard deviation says how far apart two cells must be to differ.
  * the category histogram of the samples (argmax of the classifier), next to the real emoji's shares.
No "recognisable" share: the classifier's confidence does not measure it (tools/train/README.md: a 10%-quantile
threshold on held-out real emoji passes 99.5% of uniform-noise images).
--json writes the numbers to a file.

  python3 tools/train/eval_emoji.py --sanity [--n 200]   checks the metric itself: FD of real emoji (random, and
  the classifier's held-out ones) must lie near the floor, FD of broken ones (uniform noise, smooth colour blobs,
  7x7-blurred real emoji, half real + half blobs) far above it; exit status 1 when not.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from emoji_classifier import fd_floor, load_classifier, predict  # noqa: E402
from mnist_classifier import frechet_distance  # noqa: E402


def load_samples(path):
    a = np.load(path)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 127.5 - 1
    a = a.astype(np.float32)
    if a.ndim == 4 and a.shape[1:] == (32, 32, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.ndim != 4 or a.shape[1:] != (3, 32, 32):
        sys.exit("samples must be [N,3,32,32], got %s" % (a.shape,))
    if not np.isfinite(a).all():
        sys.exit("samples contain NaN or Inf (%d values)" % (~np.isfinite(a)).sum())
    return torch.from_numpy(np.ascontiguousarray(a))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", default=None)
    p.add_argument("--sanity", action="store_true", help="check the metric on real and broken emoji, then exit")
    p.add_argument("--n", type=int, default=200, help="--sanity: images per set")
    p.add_argument("--classifier", default=os.path.join(common.DEFAULT_OUT, "emoji_classifier"))
    p.add_argument("--data", default=common.DEFAULT_DATA)
    p.add_argument("--device", default="cpu")
    p.add_argument("--floor-draws", type=int, default=5, help="real-vs-real draws for the floor's mean and sd")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.sanity:
        sys.exit(sanity(args))
    if not args.samples:
        p.error("--samples is required (or --sanity)")

    x = load_samples(args.samples)
    n = len(x)
    if n < 2:
        sys.exit("need at least 2 samples for a Frechet distance")
    outside = float((x.abs() > 1).float().mean())
    x = x.clamp(-1, 1)
    model, cfg = load_classifier(args.classifier, args.device)
    classes = cfg["classes"]
    real = common.load_emoji(args.data) * 2 - 1
    y, held, names = common.load_emoji_categories(args.data)
    if names != classes or len(y) != len(real):
        sys.exit("the classifier's categories do not match %s: retrain it" % args.data)

    logits, f_s = predict(model, x, args.device)
    r_logits, f_r = predict(model, real, args.device)
    pred = logits.argmax(1)
    res = {"n": n, "pixel_mean": float(x.mean()), "pixel_std": float(x.std()), "share_outside_range": outside}
    res["fd"] = frechet_distance(f_s.numpy(), f_r.numpy())
    res["fd_floor"], res["fd_floor_sd"] = fd_floor(f_r, n, seeds=args.floor_draws, frechet=frechet_distance)
    res["fd_reference"] = "all %d real emoji" % len(real)
    res["category_histogram"] = dict(zip(classes, torch.bincount(pred, minlength=len(classes)).tolist()))
    res["real_category_share"] = dict(zip(classes, (torch.bincount(y, minlength=len(classes)) / len(y)).tolist()))
    res["classifier_heldout_accuracy"] = float((r_logits[held].argmax(1) == y[held]).float().mean())

    print("samples: %d  (pixel mean %.3f std %.3f; %.2f%% of values outside [-1,1], clipped)" % (
        n, res["pixel_mean"], res["pixel_std"], 100 * outside))
    print("FD (classifier features) samples vs all %d real emoji: %.4f" % (len(real), res["fd"]))
    print("FD floor, %d real emoji vs the same %d (%d draws): %.4f +- %.4f" % (
        n, len(real), args.floor_draws, res["fd_floor"], res["fd_floor_sd"]))
    print("category          samples  real share")
    for c in classes:
        print("  %-18s %5d   %5.1f%%" % (c, res["category_histogram"][c], 100 * res["real_category_share"][c]))
    print("classifier accuracy on held-out real emoji: %.4f" % res["classifier_heldout_accuracy"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


def sanity(args):
    """FD of real and deliberately broken emoji sets of args.n images (generator seed 7) against all real ones."""
    import torch.nn.functional as F
    model, _ = load_classifier(args.classifier, args.device)
    real = common.load_emoji(args.data) * 2 - 1
    _, held, _ = common.load_emoji_categories(args.data)
    g, n = torch.Generator().manual_seed(7), args.n
    pick = real[torch.randperm(len(real), generator=g)[:n]]
    hx = real[held]
    blobs = F.interpolate(torch.randn(n, 3, 4, 4, generator=g), size=32, mode="bilinear", align_corners=False)
    sets = {
        "real (random)": pick,
        "real (classifier held-out)": hx[torch.randperm(len(hx), generator=g)[:n]],
        "uniform noise": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1,
        "colour blobs": blobs.clamp(-1, 1),
        "real, 7x7 box blur": F.avg_pool2d(F.pad(pick, (3, 3, 3, 3), mode="replicate"), 7, 1),
        "half real, half blobs": torch.cat([pick[:n // 2], blobs.clamp(-1, 1)[n // 2:]]),
    }
    _, f_r = predict(model, real, args.device)
    floor, sd = fd_floor(f_r, n, frechet=frechet_distance)
    print("FD floor at n=%d: %.3f +- %.3f" % (n, floor, sd))
    ok = True
    for name, x in sets.items():
        fd = frechet_distance(predict(model, x, args.device)[1].numpy(), f_r.numpy())
        good = fd < floor + 3 * sd if name.startswith("real (") else fd > 5 * floor
        ok &= good
        print("  %-28s FD %8.3f  %s" % (name, fd, "ok" if good else "FAIL (expected %s)" % (
            "within 3 sd of the floor" if name.startswith("real (") else "above 5x the floor")))
    return 0 if ok else 1


if __name__ == "__main__":
    main()
