"""Re-creates model.onnx for trained output folders (e.g. unpacked from gpu_train.sh's tars), on CPU.

  python3 tools/train/export_onnx.py [--mnist DIR] [--emoji DIR] [--scoresde DIR] [--toy2d DIR]

Inputs/outputs: mnist  sample f32 [B,1,28,28], timestep f32 [B], class_labels i64 [B] -> noise_pred
                emoji  sample f32 [B,3,32,32], timestep f32 [B] -> noise_pred
                scoresde x f32 [B,1,28,28], t f32 [B] -> score
                toy2d  x f32 [B,2], t f32 [B] -> eps
All with a dynamic batch axis. Writes DIR/model.onnx.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import st  # noqa: E402
from unet2d import UNet2DModel  # noqa: E402


def log(msg):
    print(msg, flush=True)


def load_unet(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    m = UNet2DModel(cfg)
    p = os.path.join(d, "diffusion_pytorch_model.safetensors")
    if not os.path.exists(p):
        p = os.path.join(d, "diffusion_pytorch_model.fp16.safetensors")
    m.load_state_dict({k: v.float() for k, v in st.load_file(p).items()}, strict=True)
    return m.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist")
    ap.add_argument("--emoji")
    ap.add_argument("--scoresde")
    ap.add_argument("--toy2d")
    a = ap.parse_args()
    ok = True
    if a.mnist:
        from train_mnist import NULL_CLASS, OnnxWrap
        m = OnnxWrap(load_unet(a.mnist))
        ok &= common.onnx_export(m, (torch.randn(2, 1, 28, 28), torch.tensor([10.0, 500.0]),
                                     torch.tensor([3, NULL_CLASS])), os.path.join(a.mnist, "model.onnx"),
                                 ["sample", "timestep", "class_labels"], ["noise_pred"],
                                 {n: {0: "batch"} for n in ["sample", "timestep", "class_labels", "noise_pred"]}, log)
    if a.emoji:
        from train_emoji import OnnxWrap as EW
        m = EW(load_unet(a.emoji))
        ok &= common.onnx_export(m, (torch.randn(2, 3, 32, 32), torch.tensor([10.0, 500.0])),
                                 os.path.join(a.emoji, "model.onnx"), ["sample", "timestep"], ["noise_pred"],
                                 {n: {0: "batch"} for n in ["sample", "timestep", "noise_pred"]}, log)
    if a.scoresde:
        from train_scoresde import ScoreNet
        m = ScoreNet().eval()
        sd = common.torch_load(os.path.join(a.scoresde, "ckpt.pth"))
        m.load_state_dict({k[len("module."):]: v for k, v in sd.items()}, strict=True)
        ok &= common.onnx_export(m, (torch.rand(2, 1, 28, 28), torch.tensor([0.5, 0.1])),
                                 os.path.join(a.scoresde, "model.onnx"), ["x", "t"], ["score"],
                                 {n: {0: "batch"} for n in ["x", "t", "score"]}, log)
    if a.toy2d:
        from train_toy2d import ToyMLP
        m = ToyMLP().eval()
        m.load_state_dict(st.load_file(os.path.join(a.toy2d, "toy2d.safetensors")), strict=True)
        ok &= common.onnx_export(m, (torch.randn(4, 2), torch.tensor([0.0, 10.0, 500.0, 999.0])),
                                 os.path.join(a.toy2d, "model.onnx"), ["x", "t"], ["eps"],
                                 {n: {0: "batch"} for n in ["x", "t", "eps"]}, log)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
