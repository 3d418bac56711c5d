#!/usr/bin/env python3
"""Write the small torch.save() fixtures used by core/torchpt tests.

Run from the repository root with a Python that has torch:

    python3 tools/train/make_pt_fixtures.py

It writes core/torchpt/testdata/*.pt plus expected.json, which records what
torch itself reports for every tensor (dtype, shape, stride, storage offset,
values in logical row-major order) so the Go reader can be checked against it.
Everything is deterministic (no random numbers), so rerunning gives the same
tensors; the zip bytes may differ between torch versions.
"""
import collections
import json
import math
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "core", "torchpt", "testdata")


def enc(x):
    """JSON-safe float: non-finite values become strings."""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
    return x


def describe(t):
    if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
        vals = t.float().reshape(-1).tolist()
    else:
        vals = t.reshape(-1).tolist()
    return {
        "dtype": str(t.dtype).replace("torch.", ""),
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "offset": t.storage_offset(),
        "contiguous": t.is_contiguous(),
        "parameter": isinstance(t, torch.nn.Parameter),
        "values": [enc(v) for v in vals],
    }


def flatten(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        out[prefix[:-1]] = describe(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, prefix + str(k) + ".", out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, prefix + str(i) + ".", out)


def mixed():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.25 - 1.0
    shared = torch.arange(10, dtype=torch.float32) + 100.0
    sd = collections.OrderedDict()
    sd["f32"] = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.5 - 3.0
    sd["f16"] = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 6.0e-8, 1.0e-5, float("inf"), float("-inf"), 0.333], dtype=torch.float16)
    sd["bf16"] = torch.tensor([[1.0, -3.140625], [1.0e30, 1.0e-30], [float("inf"), 7.5]], dtype=torch.bfloat16)
    sd["f64"] = torch.tensor([1.0 / 3.0, -2.0, 1e-300], dtype=torch.float64)
    sd["i64"] = torch.tensor([0, -1, 2**40, -(2**62), 7], dtype=torch.int64)
    sd["i32"] = torch.tensor([[1, -2], [2**31 - 1, -(2**31)]], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127, 0], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(3.5)
    sd["base"] = base
    sd["transposed"] = base.t()                     # non-contiguous view of base's storage
    sd["shared"] = shared
    sd["shared_slice"] = shared[3:7]                # storage offset 3
    sd["shared_strided"] = shared[2:9:3]            # offset 2, stride 3
    sd["expanded"] = torch.arange(3, dtype=torch.float32).expand(4, 3)  # stride 0
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.tensor([[0.5, -0.5]]))
    ckpt = {
        "state_dict": sd,
        "step": 1234,
        "big": 2**40,
        "neg": -7,
        "huge_neg": -(2**63),
        "lr": 1e-4,
        "name": "tiny \u00e9\u4e2d",
        "flag": True,
        "off": False,
        "nothing": None,
        "list": [1, 2.5, "x", [3, 4]],
        "tuple": (0.9, 0.999),
        "raw": b"\x00\x01bytes\xff",
        "nested": {"a": {"b": torch.tensor([1.0, 2.0])}, 3: "int key"},
    }
    return ckpt


def module_prefixed():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.GroupNorm(1, 2), torch.nn.Linear(4, 3))
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) * 0.01 * (i + 1))
    wrapped = torch.nn.DataParallel(net)  # state_dict keys get the "module." prefix
    return wrapped.state_dict()           # an OrderedDict with a _metadata attribute (pickled via BUILD)


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}

    ck = mixed()
    torch.save(ck, os.path.join(OUT, "mixed.pt"))
    e = {}
    flatten(ck, "", e)
    expected["mixed.pt"] = e

    torch.save(ck, os.path.join(OUT, "mixed_proto4.pt"), pickle_protocol=4)
    expected["mixed_proto4.pt"] = e

    sd = module_prefixed()
    torch.save(sd, os.path.join(OUT, "module_prefixed.pt"))
    e = {}
    flatten(sd, "", e)
    expected["module_prefixed.pt"] = e

    # A file in the pre-1.6 (non-zip) format, which the reader must refuse.
    torch.save({"w": torch.ones(2)}, os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"torch_version": torch.__version__, "files": expected}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
