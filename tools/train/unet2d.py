"""A from-scratch PyTorch re-implementation of the subset of diffusers' `UNet2DModel` we use.

Goal: state_dict keys, tensor shapes and forward semantics identical to diffusers, so a checkpoint
trained here goes through exactly the same converter path as a real diffusers checkpoint. It is
verified against outputs of real diffusers in tools/train/test_unet2d.py.

Facts taken from the diffusers sources (src/diffusers/models/unets/unet_2d.py, unet_2d_blocks.py,
resnet.py, embeddings.py, attention_processor.py) and re-expressed here:
  * time_embed_dim = block_out_channels[0] * 4 (or config time_embedding_dim when given);
    time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift) (no weights);
    time_embedding = TimestepEmbedding: linear_1 -> act -> linear_2.
  * class_embedding = nn.Embedding(num_class_embeds, time_embed_dim) when class_embed_type is None and
    num_class_embeds is set; its output is added to the time embedding.
  * conv_in 3x3 pad 1; down blocks get num_layers=layers_per_block, attention_head_dim defaulting to the
    block's channel count (so 1 head) when the config value is null; every down block but the last has a
    downsampler (conv 3x3 stride 2, padding=downsample_padding; padding 0 pads (0,1,0,1) first).
  * mid block: resnets.0, attentions.0, resnets.1; its attention only has a group_norm when
    attn_norm_num_groups is set, or resnet_time_scale_shift == "default" (then norm_num_groups groups).
  * up blocks: layers_per_block+1 resnets, each fed cat([h, skip]) with skips popped from the end of the
    list collected in the down path (conv_in output, every resnet/attention output, every downsampler
    output); all but the last up block end in nearest 2x upsampling then a 3x3 conv ("upsamplers.0.conv").
  * ResnetBlock2D: norm1 -> act -> conv1 -> (+ time_emb_proj(act(temb)) for "default") -> norm2
    (-> h*(1+scale)+shift for "scale_shift", time_emb_proj giving 2C) -> act -> dropout -> conv2;
    out = (shortcut(x) + h) / output_scale_factor, conv_shortcut 1x1 when in != out.
  * Attention (the converted "deprecated attn block"): optional group_norm over the 4-D map, tokens = h*w,
    to_q/to_k/to_v/to_out.0 linear layers with bias, heads = C // attention_head_dim, softmax scale
    head_dim**-0.5, residual added, then divided by rescale_output_factor.
  * output: conv_norm_out (GroupNorm) -> SiLU -> conv_out 3x3.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Use F.scaled_dot_product_attention when the running torch has it (2.x); the explicit matmul/softmax
# path (fp32 scores, like diffusers' upcast_softmax) is used otherwise and during ONNX export.
USE_SDPA = hasattr(F, "scaled_dot_product_attention")


def get_act(name):
    if name in ("silu", "swish"):
        return nn.SiLU()
    if name == "mish":
        return nn.Mish()
    if name == "gelu":
        return nn.GELU()
    if name == "relu":
        return nn.ReLU()
    raise ValueError("unsupported act_fn %r" % name)


def timestep_embedding(timesteps, dim, flip_sin_to_cos=False, downscale_freq_shift=1.0, max_period=10000):
    """Sinusoidal embedding as in diffusers' get_timestep_embedding (scale 1):
    freq_i = exp(-ln(max_period) * i / (half - downscale_freq_shift)), i in [0, half);
    emb = [sin(t*freq), cos(t*freq)], swapped to [cos, sin] when flip_sin_to_cos; zero-padded if dim odd."""
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(-math.log(max_period) * i / (half - downscale_freq_shift))
    args = timesteps.float()[:, None] * freqs[None, :]
    sin, cos = torch.sin(args), torch.cos(args)
    emb = torch.cat([cos, sin], dim=-1) if flip_sin_to_cos else torch.cat([sin, cos], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class Timesteps(nn.Module):
    def __init__(self, dim, flip_sin_to_cos, freq_shift):
        super().__init__()
        self.dim, self.flip, self.shift = dim, flip_sin_to_cos, freq_shift

    def forward(self, t):
        return timestep_embedding(t, self.dim, self.flip, self.shift)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim, dim, act_fn="silu"):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.act = get_act(act_fn)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb_ch, groups, eps, act_fn="silu", dropout=0.0,
                 time_scale_shift="default", output_scale_factor=1.0):
        super().__init__()
        if time_scale_shift not in ("default", "scale_shift"):
            raise ValueError("unsupported resnet_time_scale_shift %r" % time_scale_shift)
        self.time_scale_shift = time_scale_shift
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=1, padding=1)
        self.time_emb_proj = nn.Linear(temb_ch, cout * 2 if time_scale_shift == "scale_shift" else cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps, affine=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1)
        self.nonlinearity = get_act(act_fn)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1, stride=1, padding=0) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        t = self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        if self.time_scale_shift == "default":
            h = self.norm2(h + t)
        else:
            scale, shift = t.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(self.nonlinearity(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.output_scale_factor


class Attention(nn.Module):
    """Single-map self attention with diffusers' parameter names."""

    def __init__(self, ch, head_dim, norm_groups, eps, rescale_output_factor=1.0):
        super().__init__()
        self.heads = max(ch // head_dim, 1)
        self.head_dim = head_dim
        inner = self.heads * head_dim
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = nn.GroupNorm(norm_groups, ch, eps=eps, affine=True) if norm_groups else None
        self.to_q = nn.Linear(ch, inner, bias=True)
        self.to_k = nn.Linear(ch, inner, bias=True)
        self.to_v = nn.Linear(ch, inner, bias=True)
        self.to_out = nn.ModuleList([nn.Linear(inner, ch, bias=True), nn.Dropout(0.0)])

    def forward(self, x):
        b, c, hh, ww = x.shape
        res = x
        if self.group_norm is not None:
            x = self.group_norm(x)
        seq = x.reshape(b, c, hh * ww).transpose(1, 2)  # [B, N, C]

        def split(z):
            return z.reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)  # [B, H, N, D]

        q, k, v = split(self.to_q(seq)), split(self.to_k(seq)), split(self.to_v(seq))
        use_sdpa = USE_SDPA and not torch.onnx.is_in_onnx_export()
        if use_sdpa:
            o = F.scaled_dot_product_attention(q, k, v)  # default scale = head_dim ** -0.5
        else:
            w = torch.matmul(q.float(), k.float().transpose(-1, -2)) * (self.head_dim ** -0.5)
            o = torch.matmul(w.softmax(dim=-1).to(v.dtype), v)
        o = o.transpose(1, 2).reshape(b, hh * ww, self.heads * self.head_dim)
        o = self.to_out[1](self.to_out[0](o))
        o = o.transpose(1, 2).reshape(b, c, hh, ww)
        return (o + res) / self.rescale_output_factor


class Downsample2D(nn.Module):
    def __init__(self, ch, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0)
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """DownBlock2D (attn=False) / AttnDownBlock2D (attn=True)."""

    def __init__(self, cin, cout, temb_ch, num_layers, add_downsample, attn, head_dim, groups, eps, act_fn,
                 dropout, tss, downsample_padding):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(cin if i == 0 else cout, cout, temb_ch, groups, eps, act_fn, dropout, tss)
            for i in range(num_layers)])
        if attn:
            self.attentions = nn.ModuleList([Attention(cout, head_dim, groups, eps) for _ in range(num_layers)])
        else:
            self.attentions = None
        self.downsamplers = nn.ModuleList([Downsample2D(cout, downsample_padding)]) if add_downsample else None

    def forward(self, h, temb):
        outs = []
        for i, r in enumerate(self.resnets):
            h = r(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
            outs.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            outs.append(h)
        return h, outs


class UpBlock(nn.Module):
    """UpBlock2D (attn=False) / AttnUpBlock2D (attn=True)."""

    def __init__(self, cin, cout, prev_out, temb_ch, num_layers, add_upsample, attn, head_dim, groups, eps, act_fn,
                 dropout, tss):
        super().__init__()
        rs = []
        for i in range(num_layers):
            skip_ch = cin if i == num_layers - 1 else cout
            res_in = prev_out if i == 0 else cout
            rs.append(ResnetBlock2D(res_in + skip_ch, cout, temb_ch, groups, eps, act_fn, dropout, tss))
        self.resnets = nn.ModuleList(rs)
        if attn:
            self.attentions = nn.ModuleList([Attention(cout, head_dim, groups, eps) for _ in range(num_layers)])
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_upsample else None

    def forward(self, h, skips, temb):
        for i, r in enumerate(self.resnets):
            h = r(torch.cat([h, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h


class MidBlock(nn.Module):
    """UNetMidBlock2D with one attention layer."""

    def __init__(self, ch, temb_ch, groups, attn_groups, eps, act_fn, dropout, tss, head_dim, add_attention,
                 output_scale_factor):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(ch, ch, temb_ch, groups, eps, act_fn, dropout, tss, output_scale_factor)
            for _ in range(2)])
        if attn_groups is None:
            attn_groups = groups if tss == "default" else None
        if add_attention:
            self.attentions = nn.ModuleList([Attention(ch, head_dim, attn_groups, eps, output_scale_factor)])
        else:
            self.attentions = None

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        if self.attentions is not None:
            h = self.attentions[0](h)
        return self.resnets[1](h, temb)


# Defaults of diffusers' UNet2DModel.__init__ (used for keys missing from a config dict).
DEFAULTS = dict(
    sample_size=None, in_channels=3, out_channels=3, center_input_sample=False,
    time_embedding_type="positional", time_embedding_dim=None, freq_shift=0, flip_sin_to_cos=True,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(224, 448, 672, 896), layers_per_block=2, mid_block_scale_factor=1,
    downsample_padding=1, downsample_type="conv", upsample_type="conv", dropout=0.0, act_fn="silu",
    attention_head_dim=8, norm_num_groups=32, attn_norm_num_groups=None, norm_eps=1e-5,
    resnet_time_scale_shift="default", add_attention=True, class_embed_type=None, num_class_embeds=None,
    num_train_timesteps=None, mid_block_type="UNetMidBlock2D",
)


class UNet2DModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = dict(DEFAULTS)
        cfg.update({k: v for k, v in config.items() if not k.startswith("_")})
        self.config = cfg
        if cfg["time_embedding_type"] != "positional":
            raise ValueError("only time_embedding_type 'positional' is supported")
        if cfg["class_embed_type"] is not None:
            raise ValueError("only class_embed_type null (nn.Embedding) is supported")
        if cfg["downsample_type"] != "conv" or cfg["upsample_type"] != "conv":
            raise ValueError("only conv down/upsampling is supported")
        if cfg.get("mid_block_type", "UNetMidBlock2D") not in ("UNetMidBlock2D",):
            raise ValueError("only UNetMidBlock2D is supported")
        boc = list(cfg["block_out_channels"])
        nb = len(boc)
        if len(cfg["down_block_types"]) != nb or len(cfg["up_block_types"]) != nb:
            raise ValueError("block type lists must match block_out_channels")
        temb = cfg["time_embedding_dim"] or boc[0] * 4
        groups = cfg["norm_num_groups"]
        eps = cfg["norm_eps"]
        act = cfg["act_fn"]
        tss = cfg["resnet_time_scale_shift"]
        drop = cfg["dropout"]
        hd = cfg["attention_head_dim"]
        L = cfg["layers_per_block"]

        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.time_proj = Timesteps(boc[0], cfg["flip_sin_to_cos"], cfg["freq_shift"])
        self.time_embedding = TimestepEmbedding(boc[0], temb)
        n_cls = cfg["num_class_embeds"]
        self.class_embedding = nn.Embedding(n_cls, temb) if n_cls is not None else None

        def is_attn(t, kind):
            if t == "%sBlock2D" % kind:
                return False
            if t == "Attn%sBlock2D" % kind:
                return True
            raise ValueError("unsupported block type %r" % t)

        self.down_blocks = nn.ModuleList()
        out_ch = boc[0]
        for i, t in enumerate(cfg["down_block_types"]):
            in_ch, out_ch = out_ch, boc[i]
            self.down_blocks.append(DownBlock(
                in_ch, out_ch, temb, L, i != nb - 1, is_attn(t, "Down"), hd if hd is not None else out_ch,
                groups, eps, act, drop, tss, cfg["downsample_padding"]))

        self.mid_block = MidBlock(boc[-1], temb, groups, cfg["attn_norm_num_groups"], eps, act, drop, tss,
                                  hd if hd is not None else boc[-1], cfg["add_attention"],
                                  cfg["mid_block_scale_factor"])

        self.up_blocks = nn.ModuleList()
        rev = boc[::-1]
        out_ch = rev[0]
        for i, t in enumerate(cfg["up_block_types"]):
            prev, out_ch = out_ch, rev[i]
            in_ch = rev[min(i + 1, nb - 1)]
            self.up_blocks.append(UpBlock(
                in_ch, out_ch, prev, temb, L + 1, i != nb - 1, is_attn(t, "Up"), hd if hd is not None else out_ch,
                groups, eps, act, drop, tss))

        g_out = groups if groups is not None else min(boc[0] // 4, 32)
        self.conv_norm_out = nn.GroupNorm(g_out, boc[0], eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, sample, timestep, class_labels=None):
        if self.config["center_input_sample"]:
            sample = 2 * sample - 1.0
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], dtype=torch.long, device=sample.device)
        elif timestep.dim() == 0:
            timestep = timestep[None]
        # broadcast to batch (diffusers multiplies by ones(batch))
        timestep = timestep.to(sample.device) * torch.ones(sample.shape[0], dtype=timestep.dtype,
                                                           device=sample.device)
        emb = self.time_embedding(self.time_proj(timestep).to(sample.dtype))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("class_labels required for a class-conditional model")
            emb = emb + self.class_embedding(class_labels.long()).to(emb.dtype)
        elif class_labels is not None:
            raise ValueError("model has no class embedding")

        h = self.conv_in(sample)
        skips = [h]
        for blk in self.down_blocks:
            h, outs = blk(h, emb)
            skips.extend(outs)
        h = self.mid_block(h, emb)
        for blk in self.up_blocks:
            h = blk(h, skips, emb)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))

    def diffusers_config(self):
        """The config.json content (as diffusers' save_pretrained writes it)."""
        c = {"_class_name": "UNet2DModel", "_diffusers_version": "0.30.0"}
        for k in sorted(self.config):
            v = self.config[k]
            c[k] = list(v) if isinstance(v, tuple) else v
        return c


def count_params(m):
    return sum(p.numel() for p in m.parameters())
