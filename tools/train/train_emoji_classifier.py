"""Trains the small emoji CNN used to evaluate generated emoji (tools/train/eval_emoji.py): it predicts the emoji's
package category (emoji-datasource-google's 10 categories: Smileys & Emotion, People & Body, Component, Animals &
Nature, Food & Drink, Travel & Places, Activities, Objects, Symbols, Flags), and its 128-d penultimate features
define the Frechet distance of samples to the real emoji.

Data: the 3,786 32x32 emoji of emoji32.npz with the categories of emoji32_categories.json (fetch_data.sh).
Split (common.load_emoji_categories): by base emoji, every 5th base emoji of each category held out, so no
skin-tone variant of a held-out emoji is trained on -> 3,023 training and 763 held-out images. Accuracy is
reported on the held-out images (overall, per category, and balanced = mean of the per-category accuracies).
Inputs are pixels/255*2-1 in [-1,1] (the emoji model's scaling). Augmentation: random horizontal flips (as the
emoji diffusion model was trained) and random shifts of up to 2 px, padded with the white background.
Loss: cross-entropy with label smoothing 0.05 and class weights 1/sqrt(count) (60% of the images are People &
Body; unweighted, the small categories were mostly misread and their features less distinct).
Output (<out>, default tools/train/out/emoji_classifier): classifier.safetensors, config.json, train_info.json
(accuracies, the FD floor at 100/200/500), train.log, ckpt.pt. Defaults: about one CPU-minute on 1 thread.
"""
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import st  # noqa: E402
from emoji_classifier import EmojiCNN, fd_floor, predict  # noqa: E402

SHIFT = 2


def augment(x, gen):
    """Random horizontal flip and an integer shift of up to SHIFT px in x and y, padding with white (+1)."""
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    p = F.pad(x, (SHIFT, SHIFT, SHIFT, SHIFT), value=1.0)
    d = torch.randint(0, 2 * SHIFT + 1, (b, 2), generator=gen).tolist()
    return torch.stack([p[i, :, dy:dy + 32, dx:dx + 32] for i, (dy, dx) in enumerate(d)])


def main():
    p = common.base_parser("emoji category CNN for evaluating generated emoji", steps=1200, batch=64, lr=2e-3)
    args = p.parse_args()
    args.out = args.out or os.path.join(common.DEFAULT_OUT, "emoji_classifier")
    dev = common.setup(args)
    log = common.Logger(args.out, "emoji_classifier")
    x = common.load_emoji(args.data) * 2 - 1
    y, held, classes = common.load_emoji_categories(args.data)
    if len(y) != len(x):
        sys.exit("emoji32_categories.json has %d entries for %d images: re-run fetch_data.sh" % (len(y), len(x)))
    xtr, ytr, xte, yte = x[~held], y[~held], x[held], y[held]
    model = EmojiCNN(len(classes)).to(dev)
    n_params = sum(q.numel() for q in model.parameters())
    log("params %d; train %d, held-out %d; device %s" % (n_params, len(ytr), len(yte), dev))
    cw = torch.bincount(ytr, minlength=len(classes)).clamp(min=1).float() ** -0.5
    cw = cw / cw[ytr].mean()  # mean weight 1 over the training images
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    step, last_loss, t0 = 0, float("nan"), time.time()
    loss_acc, n_acc = 0.0, 0
    model.train()
    while not common.should_stop(step, args, log):
        idx = torch.randint(0, len(ytr), (args.batch,), generator=gen)
        xb = augment(xtr[idx], gen).to(dev)
        loss = F.cross_entropy(model(xb), ytr[idx].to(dev), label_smoothing=0.05, weight=cw.to(dev))
        for g in opt.param_groups:  # cosine LR over the planned steps
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * min(step / max(args.steps, 1), 1.0)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        loss_acc += float(loss)
        n_acc += 1
        if step % args.log_every == 0 or step == args.steps:
            last_loss = loss_acc / n_acc
            loss_acc, n_acc = 0.0, 0
            log("step %5d  loss %.4f  %.1f it/s" % (step, last_loss, step / max(time.time() - t0, 1e-9)))
        if args.ckpt_every and step % args.ckpt_every == 0:
            torch.save({"model": model.state_dict(), "step": step}, os.path.join(args.out, "ckpt.pt"))
    if n_acc:
        last_loss = loss_acc / n_acc
    common.sync(dev)
    train_s = time.time() - t0
    model.eval()
    logits, _ = predict(model, xte, dev)
    pred = logits.argmax(1)
    acc = float((pred == yte).float().mean())
    per_cat = {classes[c]: {"n": int((yte == c).sum()), "accuracy": float((pred[yte == c] == c).float().mean())}
               for c in range(len(classes)) if (yte == c).any()}
    balanced = sum(v["accuracy"] for v in per_cat.values()) / len(per_cat)
    tr_acc = float((predict(model, xtr, dev)[0].argmax(1) == ytr).float().mean())
    majority = float((yte == torch.bincount(ytr).argmax()).float().mean())
    log("held-out accuracy %.4f (%d images; always-the-largest-category %.4f), balanced %.4f; train %.4f" % (
        acc, len(yte), majority, balanced, tr_acc))
    for k, v in per_cat.items():
        log("  %-18s n %4d  accuracy %.3f" % (k, v["n"], v["accuracy"]))
    _, f_all = predict(model, x, dev)
    floors = {str(n): fd_floor(f_all, n) for n in (100, 200, 500)}
    for n, (m, s) in floors.items():
        log("FD floor, %s real emoji vs all %d (5 draws): %.3f +- %.3f" % (n, len(x), m, s))

    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    st.save_file(sd, os.path.join(args.out, "classifier.safetensors"), metadata={"format": "pt"})
    common.write_json(os.path.join(args.out, "config.json"), {
        "architecture": "EmojiCNN (tools/train/emoji_classifier.py)",
        "input": "float32 [B,3,32,32], pixels/255*2-1 in [-1,1], white background",
        "feat_dim": 128,
        "feature_layer": "relu(fc1(...)), 128-d, used for the Frechet distance",
        "classes": classes,
    })
    torch.save({"model": model.state_dict(), "step": step}, os.path.join(args.out, "ckpt.pt"))
    common.write_json(os.path.join(args.out, "train_info.json"), common.train_info(args, dev, {
        "model": "EmojiCNN category classifier", "params": n_params, "steps": step,
        "train_seconds": round(train_s, 1), "final_loss": last_loss, "held_out_accuracy": acc,
        "held_out_balanced_accuracy": balanced, "held_out_majority_baseline": majority, "train_accuracy": tr_acc,
        "held_out_per_category": per_cat,
        "fd_floor_vs_all_real_mean_sd_5_draws": floors,
        "data": {"source": "npm package emoji-datasource-google@16.0.0 (MIT; Noto images Apache-2.0), "
                           "category from its emoji.json",
                 "train": int(len(ytr)), "held_out": int(len(yte)),
                 "split": "by base emoji: every %dth base emoji of each category (file-name order) held out, "
                          "with all its skin-tone variants" % common.EMOJI_HELD_OUT_EVERY},
    }))
    log("done")


if __name__ == "__main__":
    main()
