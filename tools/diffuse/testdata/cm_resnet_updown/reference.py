"""Reference output for TestResnetUpDownReference: the UNet2DModel of the
consistency checkpoints (ResnetDownsampleBlock2D, AttnDownBlock2D and
AttnUpBlock2D with resnet down/upsampling, ResnetUpsampleBlock2D) at toy
size, on the seeded random weights the Go test writes.

Every ResnetBlock2D, including the down=True / up=True ones this case is
about, is diffusers' own class, run from the unmodified resnet.py,
downsampling.py, upsampling.py and activations.py of a diffusers checkout
with the few package imports they make stubbed (as
core/sampler/testdata/diffusers_cases.py does), and loaded with
load_state_dict(strict=True), which also checks the parameter names.
The wiring around them follows unet_2d.py (UNet2DModel.forward) and
unet_2d_blocks.py (AttnDownBlock2D, ResnetDownsampleBlock2D,
UNetMidBlock2D, AttnUpBlock2D, ResnetUpsampleBlock2D) at commit
58eb52c0803ea9af3abec60841c2a093bdf1f951; the timestep embedding and the
attention (get_timestep_embedding; Attention with AttnProcessor2_0 as
those blocks configure it) are written out here.

    DIFFUSE_WRITE_CM_REF=/tmp/cmref go test ./tools/diffuse -run TestResnetUpDownReference
    /usr/bin/python3 tools/diffuse/testdata/cm_resnet_updown/reference.py SRC /tmp/cmref/unet tools/diffuse/testdata/cm_resnet_updown

SRC holds resnet.py, downsampling.py, upsampling.py and activations.py from
src/diffusers/models/ (git show HEAD:src/diffusers/models/resnet.py > SRC/resnet.py).
Torch 1.13, float32.
"""

import importlib.util
import json
import math
import os
import struct
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F


def stub():
    def mod(name, **attrs):
        m = types.ModuleType(name)
        m.__path__ = []
        for k, v in attrs.items():
            setattr(m, k, v)
        sys.modules[name] = m
        return m

    class Placeholder(torch.nn.Module):
        pass

    mod("diffusers")
    mod("diffusers.utils", deprecate=lambda *a, **k: None)
    mod("diffusers.utils.import_utils", is_torch_npu_available=lambda: False, is_torch_version=lambda op, v: False)
    mod("diffusers.models")
    mod("diffusers.models.attention_processor", SpatialNorm=Placeholder)
    mod("diffusers.models.normalization", AdaGroupNorm=Placeholder, RMSNorm=Placeholder)


def load(src, name):
    spec = importlib.util.spec_from_file_location("diffusers.models." + name, os.path.join(src, name + ".py"))
    m = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = m
    spec.loader.exec_module(m)
    return m


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy())
    return out


def sub(sd, prefix):
    return {k[len(prefix) + 1:]: v for k, v in sd.items() if k.startswith(prefix + ".")}


def linear(sd, p, x):
    return F.linear(x, sd[p + ".weight"], sd[p + ".bias"])


def timestep_embedding(t, dim):
    # get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / half
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    return torch.cat([emb[:, half:], emb[:, :half]], dim=-1)


def attention(sd, p, x, heads, groups, eps):
    # Attention(residual_connection=True, rescale_output_factor=1) with
    # AttnProcessor2_0 on a 4D input.
    b, c, h, w = x.shape
    r = x
    if groups:
        x = F.group_norm(x, groups, sd[p + ".group_norm.weight"], sd[p + ".group_norm.bias"], eps)
    x = x.view(b, c, h * w).transpose(1, 2)
    q, k, v = (linear(sd, p + "." + n, x) for n in ("to_q", "to_k", "to_v"))
    d = c // heads
    q, k, v = (y.view(b, -1, heads, d).transpose(1, 2) for y in (q, k, v))
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1) @ v
    a = a.transpose(1, 2).reshape(b, -1, c)
    a = linear(sd, p + ".to_out.0", a)
    return a.transpose(-1, -2).reshape(b, c, h, w) + r


def main():
    src, unet_dir, out = sys.argv[1:4]
    stub()
    load(src, "activations")
    load(src, "upsampling")
    load(src, "downsampling")
    resnet_mod = load(src, "resnet")
    cfg = json.load(open(os.path.join(unet_dir, "config.json")))
    sd = read_safetensors(os.path.join(unet_dir, "diffusion_pytorch_model.safetensors"))
    chs, L, G, eps = cfg["block_out_channels"], cfg["layers_per_block"], cfg["norm_num_groups"], cfg["norm_eps"]
    hd, temb_ch = cfg["attention_head_dim"], 4 * chs[0]

    def resnet(p, x, temb, inc, outc, up=False, down=False):
        m = resnet_mod.ResnetBlock2D(in_channels=inc, out_channels=outc, temb_channels=temb_ch, eps=eps, groups=G,
                                     time_embedding_norm=cfg["resnet_time_scale_shift"], non_linearity="silu",
                                     up=up, down=down)
        m.load_state_dict(sub(sd, p), strict=True)
        return m(x, temb)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, cfg["in_channels"], 8, 8, generator=g)
    t = torch.tensor([1095.5, -203.7, 449.0])  # 250·ln σ at σ = 80, 0.443, 6.03
    cls = torch.tensor([3, 0, 9])
    used = set()
    with torch.no_grad():
        emb = linear(sd, "time_embedding.linear_2", F.silu(linear(sd, "time_embedding.linear_1", timestep_embedding(t, chs[0]))))
        emb = emb + F.embedding(cls, sd["class_embedding.weight"])
        h = F.conv2d(x, sd["conv_in.weight"], sd["conv_in.bias"], padding=1)
        skips = [h]
        outc = chs[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            inc, outc = outc, chs[i]
            for j in range(L):
                h = resnet(f"down_blocks.{i}.resnets.{j}", h, emb, inc if j == 0 else outc, outc)
                if kind == "AttnDownBlock2D":
                    h = attention(sd, f"down_blocks.{i}.attentions.{j}", h, outc // hd, G, eps)
                skips.append(h)
            if i != len(chs) - 1:
                # ResnetDownsampleBlock2D always, AttnDownBlock2D with downsample_type "resnet"
                assert kind == "ResnetDownsampleBlock2D" or cfg["downsample_type"] == "resnet"
                h = resnet(f"down_blocks.{i}.downsamplers.0", h, emb, outc, outc, down=True)
                skips.append(h)
        c = chs[-1]
        h = resnet("mid_block.resnets.0", h, emb, c, c)
        h = attention(sd, "mid_block.attentions.0", h, c // hd, cfg["attn_norm_num_groups"], eps)
        h = resnet("mid_block.resnets.1", h, emb, c, c)
        rev = chs[::-1]
        outc = rev[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, outc = outc, rev[i]
            for j in range(L + 1):
                s = skips.pop()
                h = resnet(f"up_blocks.{i}.resnets.{j}", torch.cat([h, s], dim=1), emb, h.shape[1] + s.shape[1], outc)
                if kind == "AttnUpBlock2D":
                    h = attention(sd, f"up_blocks.{i}.attentions.{j}", h, outc // hd, G, eps)
            if i != len(chs) - 1:
                assert kind == "ResnetUpsampleBlock2D" or cfg["upsample_type"] == "resnet"
                h = resnet(f"up_blocks.{i}.upsamplers.0", h, emb, outc, outc, up=True)
        h = F.silu(F.group_norm(h, G, sd["conv_norm_out.weight"], sd["conv_norm_out.bias"], eps))
        y = F.conv2d(h, sd["conv_out.weight"], sd["conv_out.bias"], padding=1)
    np.save(os.path.join(out, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, "t.npy"), t.numpy().astype(np.float32))
    np.save(os.path.join(out, "class_labels.npy"), cls.numpy().astype(np.int64))
    np.save(os.path.join(out, "y.npy"), y.numpy().astype(np.float32))
    print("y", y.shape, float(y.abs().max()))


if __name__ == "__main__":
    main()
