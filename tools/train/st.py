"""Tiny pure-Python safetensors reader/writer (no `safetensors` package needed).

File layout (from the safetensors format description):
  8 bytes   little-endian u64 N = length of the JSON header
  N bytes   UTF-8 JSON: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
                         "__metadata__": {str: str}}   (offsets relative to the byte buffer after the header)
  rest      the raw little-endian tensor bytes
The header is padded with spaces so the data starts 8-byte aligned, as the reference writer does.
"""
import json
import struct

import torch

_DT = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAME = {v: k for k, v in _DT.items()}


def load_file(path, device="cpu"):
    """Returns an ordered dict name -> tensor (copied, writable)."""
    tensors, _ = load_file_with_metadata(path, device)
    return tensors


def load_file_with_metadata(path, device="cpu"):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        dt = _DT[info["dtype"]]
        b, e = info["data_offsets"]
        shape = info["shape"]
        count = 1
        for s in shape:
            count *= s
        if count == 0:
            t = torch.empty(shape, dtype=dt)
        else:
            # bytearray makes the buffer writable (torch.frombuffer warns on read-only buffers)
            t = torch.frombuffer(bytearray(buf[base + b:base + e]), dtype=dt).reshape(shape)
        out[name] = t.to(device)
    return out, meta


def _tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save_file(tensors, path, metadata=None):
    """tensors: dict name -> tensor. metadata: optional dict str -> str."""
    header = {}
    chunks = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _NAME:
            raise ValueError("unsupported dtype %s for %s" % (t.dtype, name))
        data = _tensor_bytes(t)
        header[name] = {"dtype": _NAME[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)


if __name__ == "__main__":
    import sys

    for p in sys.argv[1:]:
        ts, meta = load_file_with_metadata(p)
        print(p, "metadata:", meta)
        n = 0
        for k, v in ts.items():
            print("  %-60s %-10s %s" % (k, str(v.dtype).replace("torch.", ""), list(v.shape)))
            n += v.numel()
        print("  total params:", n)
