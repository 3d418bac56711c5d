"""Writes the ONNX graphs the benchmark runs under onnxruntime-web, from the
shipped weights files themselves, so ORT and our backends run the same
network with the same weights.

  /usr/bin/python3 tools/bench/export_onnx.py [--weights weights] [--out tools/bench/onnx] [MODEL ...]

MODEL is a file stem in --weights (default: mnist emoji scoresde-mnist toy2d).
The bench runs the slim graphs made from these exports, which are shipped in
tools/bench/onnx: tools/bench/make-onnx.sh runs this script and
onnxweights.mjs to regenerate them.
Needs PyTorch (any version with torch.onnx; 1.13 was used) and reads the
network definitions from tools/train (unet2d.py, train_scoresde.py,
train_toy2d.py). The weights are read from our fp16 .safetensors and upcast to
fp32: the ONNX initializers are exactly our fp16 values, in fp32 (ORT computes
in fp32, as our backends do). When the trained folders
tools/train/out/gpu_run/<name> exist, the script also checks that their fp32
weights, rounded to fp16, equal ours (a sanity check, not needed).

Inputs/outputs, batch axis dynamic (tools/train/export_onnx.py's names):
  mnist           sample f32 [B,1,28,28], timestep f32 [B], class_labels i64 [B] -> noise_pred
  emoji           sample f32 [B,3,32,32], timestep f32 [B] -> noise_pred
  scoresde-mnist  x f32 [B,1,28,28], t f32 [B] -> score
  toy2d           x f32 [B,2], t f32 [B] -> eps
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import common  # noqa: E402
import st  # noqa: E402

FOLDERS = {"mnist": "mnist", "emoji": "emoji", "scoresde-mnist": "scoresde", "toy2d": "toy2d"}


def log(msg):
    print(msg, flush=True)


class Wrap(torch.nn.Module):
    def __init__(self, m, conditional):
        super().__init__()
        self.m, self.conditional = m, conditional

    def forward(self, sample, timestep, class_labels=None):
        if self.conditional:
            return self.m(sample, timestep, class_labels)
        return self.m(sample, timestep)


def build(name, path):
    tensors, meta = st.load_file_with_metadata(path)
    sd = {k: v.float() for k, v in tensors.items()}
    arch = meta["diffuse.arch"]
    cfg = json.loads(meta["diffuse.config"])
    if arch == "diffusers.UNet2DModel":
        from unet2d import UNet2DModel
        m = UNet2DModel(cfg)
        m.load_state_dict(sd, strict=True)
        cond = cfg.get("num_class_embeds") is not None
        size = cfg["sample_size"]
        h, w = (size, size) if isinstance(size, int) else size
        c = cfg["in_channels"]
        ex = (torch.randn(2, c, h, w), torch.tensor([10.0, 500.0]))
        names = ["sample", "timestep"]
        if cond:
            ex += (torch.tensor([3, int(meta.get("diffuse.null_class", 0))]),)
            names.append("class_labels")
        return Wrap(m.eval(), cond), ex, names, ["noise_pred"]
    if arch == "scoresde.ScoreNet":
        from train_scoresde import ScoreNet
        m = ScoreNet(channels=tuple(cfg["channels"]), embed_dim=cfg["embed_dim"], sigma=cfg["sigma"])
        m.load_state_dict(sd, strict=True)
        return m.eval(), (torch.rand(2, 1, cfg["height"], cfg["width"]), torch.tensor([0.5, 0.1])), ["x", "t"], ["score"]
    if arch == "toy2d.MLP":
        from train_toy2d import ToyMLP
        m = ToyMLP(hidden=sd["fc2.weight"].shape[0], temb=cfg["temb_dim"])
        m.load_state_dict(sd, strict=True)
        return m.eval(), (torch.randn(4, 2), torch.tensor([0.0, 10.0, 500.0, 999.0])), ["x", "t"], ["eps"]
    raise SystemExit("%s: unknown network family %s" % (path, arch))


def check_folder(name, path):
    """Compares our weights with the trained folder's, rounded to fp16."""
    d = os.path.join(ROOT, "tools", "train", "out", "gpu_run", FOLDERS.get(name, name))
    ours = st.load_file(path)
    cands = [os.path.join(d, f) for f in ("diffusion_pytorch_model.safetensors", "toy2d.safetensors")]
    src = next((p for p in cands if os.path.exists(p)), None)
    if src is None:
        pth = os.path.join(d, "ckpt.pth")
        if not os.path.exists(pth):
            return "no trained folder at %s (skipped the cross-check)" % d
        sd = common.torch_load(pth)
        theirs = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    else:
        theirs = st.load_file(src)
    worst, missing = 0.0, 0
    for k, v in ours.items():
        if k not in theirs:
            missing += 1
            continue
        worst = max(worst, (theirs[k].float().half().float() - v.float()).abs().max().item())
    return "trained folder %s: %d tensors, max |fp16(theirs) - ours| = %g%s" % (
        os.path.relpath(d, ROOT), len(ours), worst, ", %d names not found" % missing if missing else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.path.join(ROOT, "weights"))
    ap.add_argument("--out", default=os.path.join(HERE, "onnx"))
    ap.add_argument("models", nargs="*", default=["mnist", "emoji", "scoresde-mnist", "toy2d"])
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ok = True
    for name in a.models:
        path = os.path.join(a.weights, name + ".safetensors")
        if not os.path.exists(path):
            log("%s: missing, skipped" % path)
            ok = False
            continue
        m, ex, ins, outs = build(name, path)
        ok &= common.onnx_export(m, ex, os.path.join(a.out, name + ".onnx"), ins, outs,
                                 {n: {0: "batch"} for n in ins + outs}, log)
        log("  " + check_folder(name, path))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
