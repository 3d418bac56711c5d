"""Checks tools/train/unet2d.py against real diffusers outputs.

Fixtures (made with real diffusers): /work/shared/fixtures/diffusers/{cifar_like,mnist_cond}/ hold
config.json, diffusion_pytorch_model.safetensors, x.npy, t.npy, y.npy (= UNet2DModel(x, t[, class_labels]).sample)
and class_labels.npy for the conditional one. The weights must load with strict=True and the output must
match with max abs error < 1e-4 * max|y|.

Run: /usr/bin/python3 tools/train/test_unet2d.py [fixture_root]
Also round-trips st.py (safetensors writer -> reader) for several dtypes.
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from unet2d import UNet2DModel, count_params  # noqa: E402

ROOT_CANDIDATES = [
    os.environ.get("DIFFUSERS_FIXTURES", ""),
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "fixtures"),  # copied by fetch_data.sh
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "fixtures", "diffusers"),
    "/work/shared/fixtures/diffusers",
]


def find_root():
    if len(sys.argv) > 1:
        return sys.argv[1]
    for r in ROOT_CANDIDATES:
        if r and os.path.isdir(r):
            return r
    return None


def check_fixture(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    model = UNet2DModel(cfg).eval()
    sd = st.load_file(os.path.join(d, "diffusion_pytorch_model.safetensors"))
    model.load_state_dict(sd, strict=True)  # proves the key names and shapes
    # our own state_dict must have exactly the same keys too (no extra buffers)
    assert set(model.state_dict().keys()) == set(sd.keys())
    x = torch.from_numpy(np.load(os.path.join(d, "x.npy")))
    t = torch.from_numpy(np.load(os.path.join(d, "t.npy")))
    y = torch.from_numpy(np.load(os.path.join(d, "y.npy")))
    cl = None
    if os.path.exists(os.path.join(d, "class_labels.npy")):
        cl = torch.from_numpy(np.load(os.path.join(d, "class_labels.npy"))).long()
    with torch.no_grad():
        out = model(x, t, cl)
    err = (out - y).abs().max().item()
    rel = err / y.abs().max().item()
    ok = rel < 1e-4
    print("%-12s params=%d  max|err|=%.3e  max|y|=%.3f  rel=%.3e  %s" % (
        os.path.basename(d), count_params(model), err, y.abs().max().item(), rel, "OK" if ok else "FAIL"))
    # also the explicit (non-SDPA) attention path, which is what ONNX export traces
    import unet2d
    if unet2d.USE_SDPA:
        unet2d.USE_SDPA = False
        try:
            with torch.no_grad():
                out2 = model(x, t, cl)
        finally:
            unet2d.USE_SDPA = True
        rel2 = (out2 - y).abs().max().item() / y.abs().max().item()
        print("%-12s explicit-attention path rel=%.3e" % ("", rel2))
        ok = ok and rel2 < 1e-4
    return ok


def check_st_roundtrip():
    g = torch.Generator().manual_seed(0)
    ts = {
        "a.f32": torch.randn(3, 4, generator=g),
        "b.f16": torch.randn(5, generator=g).half(),
        "c.bf16": torch.randn(2, 2, generator=g).bfloat16(),
        "d.i64": torch.arange(7),
        "e.u8": torch.arange(9, dtype=torch.uint8).reshape(3, 3),
        "f.scalar": torch.tensor(1.5),
    }
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "x.safetensors")
        st.save_file(ts, p, metadata={"hello": "world"})
        back, meta = st.load_file_with_metadata(p)
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
        assert (8 + n) % 8 == 0, "data not 8-byte aligned"
    assert meta == {"hello": "world"}, meta
    for k, v in ts.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v), k
    print("st.py round trip OK")
    return True


def main():
    torch.manual_seed(0)
    ok = check_st_roundtrip()
    root = find_root()
    if root is None:
        print("fixtures not found; skipped the diffusers comparison")
        sys.exit(0 if ok else 1)
    names = sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, "config.json")))
    for n in names:
        ok = check_fixture(os.path.join(root, n)) and ok
    print("ALL OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
