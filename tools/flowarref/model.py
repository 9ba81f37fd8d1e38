"""FlowAR: a scale-wise autoregressive transformer with a flow-matching head, for
reference sampling, golden generation and checkpoint conversion tests.

Mirrors Qinyu-Allen-Zhao/DiSA FlowAR_DiSA (the official FlowAR code with DiSA's
per-scale step schedule): models/flowar.py (RMSNorm, Attention, Block, FlowAR),
models/flowmodel.py (SimpleTransformerAdaLN with Block_v1 / Block_v2, CrossAttention,
TimestepEmbedder, FinalLayer), models/rope.py (VisionRotaryEmbeddingFast) and
models/sampler.py (euler_sampler), with timm's SwiGLU (timm/layers/mlp.py). Module
structure and state_dict names are the official ones, buffers included
(`*.rope.freqs`, `mask`), so official checkpoints load with load_state_dict.

Differences from the official code, none of which changes a float32 result:
  - runs on the CPU (`.cuda()` dropped) and with plain attention
    (softmax(q k^T / sqrt(hd)) v) where the official code calls
    F.scaled_dot_product_attention (torch 2; flash attention on GPUs);
  - dropout and drop-path are left out (zero at evaluation);
  - float64 runs stay float64 (the official RMSNorm casts to float32 first), except the
    flow head's timestep path, which is float32 in every run as it is in the official
    sampler (time_input.to(latents.dtype), latents being float32 randn): (t * 1000).long()
    must pick the same integer timestep.
  - every random draw goes through a `Randomness` object so a run can be recorded as a
    tape and replayed by another implementation.
"""
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "disa-flowar-1"
# The size both interpolations go through between scales, and the RoPE grid every
# scale is stretched to: the official code hard-codes 16 in both places.
INTERP_SIZE = 16
ROPE_PT_SEQ_LEN = 16
UNCOND_LABEL = 1000  # class_emb has 1000 + 1 rows; the last one is the null class


# ----------------------------------------------------------------------------
# randomness hook

class Randomness:
    """Draws as the official sampler makes them (torch.randn, float32). With record=True
    every draw is appended to `tape` as ("randn", float32 array) in consumption order."""

    def __init__(self, record=False):
        self.record = record
        self.tape = []

    def randn(self, shape):
        x = torch.randn(*shape)
        if self.record:
            self.tape.append(("randn", x.numpy().copy()))
        return x


class TapeRandomness(Randomness):
    """Replays a recorded tape; raises if the consumer asks for a different draw."""

    def __init__(self, tape):
        super().__init__(record=False)
        self.src = list(tape)
        self.pos = 0

    def randn(self, shape):
        if self.pos >= len(self.src):
            raise RuntimeError(f"tape exhausted at draw {self.pos} (randn {tuple(shape)})")
        k, a = self.src[self.pos]
        if k != "randn" or tuple(a.shape) != tuple(shape):
            raise RuntimeError(f"tape draw {self.pos}: want randn{tuple(shape)}, have {k}{a.shape}")
        self.pos += 1
        return torch.from_numpy(a.astype(np.float32))


# ----------------------------------------------------------------------------
# trigonometry of the float64 "exact" runs

_EXACT_TRIG = {"on": False}


class exact_trig:
    """Context: RoPE cos/sin are computed in float64 from the float32 argument and
    rounded once to float32 (the correctly rounded float32 values), so golden answers do
    not carry torch's own float32 cos/sin errors."""

    def __enter__(self):
        self.saved = _EXACT_TRIG["on"]
        _EXACT_TRIG["on"] = True

    def __exit__(self, *exc):
        _EXACT_TRIG["on"] = self.saved


def _cos_sin(args32):
    if _EXACT_TRIG["on"]:
        a = args32.double()
        return torch.cos(a).float(), torch.sin(a).float()
    return args32.cos(), args32.sin()


# ----------------------------------------------------------------------------
# building blocks (models/flowar.py, models/flowmodel.py, models/rope.py, timm)

class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) [* weight]; `weight` is a parameter only when asked for."""

    def __init__(self, dim, eps=1e-6, weight=False):
        super().__init__()
        self.eps = eps
        if weight:
            self.weight = nn.Parameter(torch.ones(dim))
        else:
            self.weight = None

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        xx = x if x.dtype == torch.float64 else x.float()
        output = self._norm(xx).type_as(x)
        return output if self.weight is None else output * self.weight


def rotate_half(x):
    """Pairs (x[2i], x[2i+1]) -> (-x[2i+1], x[2i])."""
    x = x.reshape(*x.shape[:-1], -1, 2)
    x1, x2 = x.unbind(dim=-1)
    return torch.stack((-x2, x1), dim=-1).reshape(*x.shape[:-2], -1)


class VisionRotaryEmbeddingFast(nn.Module):
    """2-D RoPE over a square grid of ft x ft tokens (ft = sqrt(tokens)), positions
    stretched to 0..16: t = arange(ft) / ft * 16. The first half of each head's channels
    rotates with the row, the second half with the column; channel pairs (2i, 2i+1)."""

    def __init__(self, dim, pt_seq_len=ROPE_PT_SEQ_LEN, theta=10000):
        super().__init__()
        freqs = 1. / (theta ** (torch.arange(0, dim, 2)[:(dim // 2)].float() / dim))
        self.pt_seq_len = pt_seq_len
        self.register_buffer("freqs", freqs)

    def tables(self, ft):
        """(cos, sin) [ft*ft, 2*dim] float32 for an ft x ft grid."""
        t = torch.arange(ft) / ft * self.pt_seq_len  # float32, as torch's true division
        f = torch.einsum('..., f -> ... f', t, self.freqs.float())
        f = f.repeat_interleave(2, dim=-1)
        n = f.shape[-1]
        f = torch.cat([f[:, None, :].expand(ft, ft, n), f[None, :, :].expand(ft, ft, n)], dim=-1)
        c, s = _cos_sin(f)
        return c.reshape(-1, 2 * n), s.reshape(-1, 2 * n)

    def forward(self, x):
        ft = int(np.sqrt(x.shape[2]))
        c, s = self.tables(ft)
        c, s = c.to(x.dtype), s.to(x.dtype)
        return x * c + rotate_half(x) * s


class SwiGLU(nn.Module):
    """timm.layers.SwiGLU with the Block's act_layer (nn.GELU, exact erf):
    fc2(act(fc1_g(x)) * fc1_x(x))."""

    def __init__(self, in_features, hidden_features, act_layer=nn.GELU):
        super().__init__()
        self.fc1_g = nn.Linear(in_features, hidden_features)
        self.fc1_x = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.norm(self.act(self.fc1_g(x)) * self.fc1_x(x)))


def swiglu_hidden(dim, mlp_ratio=4.0):
    """int(dim * mlp_ratio * 2 / 3.), evaluated as the official Python does."""
    return int(dim * mlp_ratio * 2 / 3.)


def attend(q, k, v, mask=None):
    """softmax(q k^T / sqrt(hd) + mask) v over [B, H, N, hd] tensors."""
    a = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if mask is not None:
        a = a + mask.to(a.dtype)
    return a.softmax(dim=-1) @ v


class Attention(nn.Module):
    """models/flowar.py Attention: qkv with bias, RoPE per scale, and at evaluation a
    key/value cache that grows scale by scale (the queries of a scale see every earlier
    scale and their own: the scale-causal mask of training, applied by construction)."""

    def __init__(self, dim, num_heads, scale):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rope = VisionRotaryEmbeddingFast(dim=dim // num_heads // 2)
        self.resolusion = list(scale)
        self.k, self.v = None, None

    def clear_cache(self):
        self.k, self.v = None, None

    def forward(self, x, mask):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.training:
            seq = np.cumsum([0] + [i ** 2 for i in self.resolusion])
            q = torch.cat([self.rope(q[:, :, seq[i]:seq[i + 1]]) for i in range(len(self.resolusion))], dim=2)
            k = torch.cat([self.rope(k[:, :, seq[i]:seq[i + 1]]) for i in range(len(self.resolusion))], dim=2)
            x = attend(q, k, v, mask)
        else:
            q = self.rope(q)
            k = self.rope(k)
            if self.k is None or self.v is None:
                self.k, self.v = k, v
            else:
                self.k = torch.cat([self.k, k], dim=2)
                self.v = torch.cat([self.v, v], dim=2)
            x = attend(q, self.k, self.v)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    """models/flowar.py Block: RMSNorm (no weight), adaLN from the class embedding
    (ada_lin = SiLU + Linear(dim, 6 dim): gamma1, gamma2, scale1, scale2, shift1, shift2),
    attention and a SwiGLU MLP, both gated."""

    def __init__(self, dim, num_heads, mlp_ratio, scale):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, num_heads, scale)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(dim, swiglu_hidden(dim, mlp_ratio))
        self.ada_lin = nn.Sequential(nn.SiLU(inplace=False), nn.Linear(dim, 6 * dim))
        self.dim = dim

    def forward(self, x, condition, mask):
        gamma1, gamma2, scale1, scale2, shift1, shift2 = self.ada_lin(condition).view(-1, 1, 6, self.dim).unbind(2)
        x = x + self.attn(self.norm1(x).mul(scale1.add(1)).add_(shift1), mask).mul_(gamma1)
        x = x + self.mlp(self.norm2(x).mul(scale2.add(1)).add_(shift2)).mul_(gamma2)
        return x


class HeadAttention(nn.Module):
    """models/flowmodel.py Attention: self-attention among the tokens of one scale of one
    image, no qkv bias, RoPE on the scale's grid."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.rope = VisionRotaryEmbeddingFast(dim=dim // num_heads // 2)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = self.rope(q)
        k = self.rope(k)
        return self.proj(attend(q, k, v).permute(0, 2, 1, 3).reshape(B, N, C))


class CrossAttention(nn.Module):
    """models/flowmodel.py CrossAttention: queries from the head's stream, keys and
    values from the transformer's condition at the same tokens; no biases but proj."""

    def __init__(self, dim, semantic_dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(semantic_dim, dim * 2, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.rope = VisionRotaryEmbeddingFast(dim=dim // num_heads // 2)

    def forward(self, q, kv):
        B, N, C = q.shape
        q = self.q(q).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        kv = self.kv(kv).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        q = self.rope(q)
        k = self.rope(k)
        return self.proj(attend(q, k, v).permute(0, 2, 1, 3).reshape(B, N, C))


class Block_v1(nn.Module):
    """Attn-MLP head block (FlowAR-S): ada_lin(SiLU(t + c)) per token."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = HeadAttention(dim, num_heads)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(dim, swiglu_hidden(dim, mlp_ratio))
        self.ada_lin = nn.Linear(dim, 6 * dim)
        self.dim = dim

    def forward(self, x, t, c, condition):
        B, N, _ = condition.shape
        gamma1, gamma2, scale1, scale2, shift1, shift2 = \
            self.ada_lin(nn.SiLU()(t + c)).view(B, N, 6, self.dim).unbind(2)
        x = x + self.attn(self.norm1(x).mul(scale1.add(1)).add_(shift1)).mul_(gamma1)
        x = x + self.mlp(self.norm2(x).mul(scale2.add(1)).add_(shift2)).mul_(gamma2)
        return x


class Block_v2(nn.Module):
    """Attn-CrossAttn-MLP head block (FlowAR-L/H): attention modulated by the timestep
    alone (ada_lin_attn), an ungated cross-attention to the condition, the MLP modulated
    per token (ada_lin_mlp(SiLU(c + t)))."""

    def __init__(self, dim, num_heads, semantic_dim, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = HeadAttention(dim, num_heads)
        self.crossattn = CrossAttention(dim, semantic_dim, num_heads)
        self.norm2_1 = RMSNorm(dim, weight=True)
        self.norm2_2 = RMSNorm(semantic_dim, weight=True)
        self.norm3 = RMSNorm(dim)
        self.mlp = SwiGLU(dim, swiglu_hidden(dim, mlp_ratio))
        self.ada_lin_attn = nn.Linear(dim, 3 * dim)
        self.ada_lin_mlp = nn.Linear(dim, 3 * dim)
        self.dim = dim

    def forward(self, x, t, c, condition):
        B, N, _ = condition.shape
        gamma1, scale1, shift1 = self.ada_lin_attn(nn.SiLU()(t)).view(B, 1, 3, self.dim).unbind(2)
        gamma2, scale2, shift2 = self.ada_lin_mlp(nn.SiLU()(c + t)).view(B, N, 3, self.dim).unbind(2)
        x = x + self.attn(self.norm1(x).mul(scale1.add(1)).add_(shift1)).mul_(gamma1)
        x = x + self.crossattn(self.norm2_1(x), self.norm2_2(condition))
        x = x + self.mlp(self.norm3(x).mul(scale2.add(1)).add_(shift2)).mul_(gamma2)
        return x


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size, bias=True), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size, bias=True))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        return embedding

    def forward(self, t):
        w = self.mlp[0].weight
        return self.mlp(self.timestep_embedding(t, self.frequency_embedding_size).to(w.dtype))


class FinalLayer(nn.Module):
    def __init__(self, model_channels, out_channels):
        super().__init__()
        self.norm_final = RMSNorm(model_channels)
        self.linear = nn.Linear(model_channels, out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(model_channels, 2 * model_channels, bias=True))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class SimpleTransformerAdaLN(nn.Module):
    """The flow head: velocity of the tokens of one scale given the time and the
    transformer's output at those tokens. model_channels // 64 heads."""

    def __init__(self, in_channels, model_channels, out_channels, z_channels, num_res_blocks, cross=False):
        super().__init__()
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.num_res_blocks = num_res_blocks
        self.time_embed = TimestepEmbedder(model_channels)
        self.cond_embed = nn.Linear(z_channels, model_channels)
        self.input_proj = nn.Linear(in_channels, model_channels)
        if cross:
            blocks = [Block_v2(model_channels, model_channels // 64, semantic_dim=z_channels)
                      for _ in range(num_res_blocks)]
        else:
            blocks = [Block_v1(model_channels, model_channels // 64) for _ in range(num_res_blocks)]
        self.res_blocks = nn.ModuleList(blocks)
        self.final_layer = FinalLayer(model_channels, out_channels)
        self.initialize_weights()

    def initialize_weights(self):
        def _basic_init(module):
            if isinstance(module, nn.Linear):
                torch.nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)
        self.apply(_basic_init)
        nn.init.normal_(self.time_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.time_embed.mlp[2].weight, std=0.02)
        nn.init.constant_(self.final_layer.linear.weight, 0)
        nn.init.constant_(self.final_layer.linear.bias, 0)

    def forward(self, x, t, condition):
        # t is float32 (see the module docstring); the product rounds in float32 and
        # .long() truncates: t = 0.7 -> 700 here, 699 in float64.
        t = (t.float() * 1000).long()
        x = self.input_proj(x)
        t = self.time_embed(t).unsqueeze(1)
        c = self.cond_embed(condition)
        for block in self.res_blocks:
            x = block(x, t, c, condition)
        return self.final_layer(x, c + t)


# ----------------------------------------------------------------------------
# between scales and the flow sampler

def interp_next(x, size):
    """The next scale's input from this scale's tokens [B, C, s, s]: bicubic up to 16 x 16
    (align_corners False, A = -0.75, no antialias), then area (adaptive average) down to
    size x size; FlowAR.sample_tokens."""
    up = F.interpolate(x, (INTERP_SIZE, INTERP_SIZE), mode='bicubic')
    return F.interpolate(up, (size, size), mode='area')


def euler_t_steps(num_steps):
    """sampler.py euler_sampler's time grid (float64): num_steps//2 points from 1 to 0.3,
    then num_steps//2 + 1 from 0.25 to 0, so an odd count loses one step; 50 is the
    exception, a uniform grid of 51 points."""
    t = torch.cat([torch.linspace(1, 0.3, num_steps // 2, dtype=torch.float64),
                   torch.linspace(0.25, 0, num_steps // 2 + 1, dtype=torch.float64)])
    if num_steps == 50:
        t = torch.linspace(1, 0, num_steps + 1, dtype=torch.float64)
    return t


@torch.no_grad()
def euler_sampler(model, latents, condition, num_steps=20, cfg_scale=1.0, guidance_low=0.0, guidance_high=1.0,
                  model_dtype=None, trace=None):
    """sampler.py euler_sampler. The state is float64; the network sees it in
    model_dtype (the latents' dtype, float32, officially) and the time in float32.
    With CFG (cfg_scale > 1 inside [guidance_low, guidance_high]) the batch is
    [cond; uncond] and the first half's state feeds both; outside the interval each half
    runs unguided on its own state."""
    _dtype = model_dtype or latents.dtype
    t_steps = euler_t_steps(num_steps)
    x_next = latents.to(torch.float64)
    n_guided = 0
    for t_cur, t_next in zip(t_steps[:-1], t_steps[1:]):
        x_cur = x_next
        guided = cfg_scale > 1.0 and t_cur <= guidance_high and t_cur >= guidance_low
        if guided:
            model_input = torch.cat([x_cur[:x_cur.shape[0] // 2]] * 2, dim=0)
            n_guided += 1
        else:
            model_input = x_cur
        time_input = torch.ones(model_input.size(0), dtype=torch.float64) * t_cur
        # The official cast of the state to the latents' dtype (float32), kept in float64
        # runs as a rounding step.
        mi = model_input.to(latents.dtype).to(_dtype)
        d_cur = model(mi, time_input.to(torch.float32), condition.to(_dtype)).to(torch.float64)
        if guided:
            d_cur_cond, d_cur_uncond = d_cur.chunk(2)
            d_cur = d_cur_uncond + cfg_scale * (d_cur_cond - d_cur_uncond)
            d_cur = torch.cat([d_cur, d_cur], dim=0)
        x_next = x_cur + (t_next - t_cur) * d_cur
    if trace is not None:
        trace.setdefault("nfe", []).append(len(t_steps) - 1)
        trace.setdefault("n_guided", []).append(n_guided)
    return x_next


def flow_steps_at(step, n_scales, upper, lower):
    """DiSA's flow step count at scale `step`: int((upper - lower) * (S-1 - step) / (S-1) +
    lower), the official float expression (upper at the first scale, lower at the last)."""
    total = n_scales - 1
    return int((upper - lower) * (total - step) / total + lower)


# ----------------------------------------------------------------------------
# FlowAR

class FlowAR(nn.Module):
    def __init__(self, img_size=256, vae_stride=16, patch_size=1,
                 encoder_embed_dim=1024, encoder_depth=16, encoder_num_heads=16,
                 decoder_embed_dim=1024, decoder_depth=16, decoder_num_heads=16,
                 mlp_ratio=4., vae_embed_dim=16, label_drop_prob=0.1, class_num=1000,
                 buffer_size=0, diffloss_d=3, diffloss_w=1024, scale=(1, 2, 4, 8, 16), cross=False):
        super().__init__()
        self.vae_embed_dim = vae_embed_dim
        self.img_size = img_size
        self.vae_stride = vae_stride
        self.patch_size = patch_size
        self.seq_h = self.seq_w = img_size // vae_stride // patch_size
        self.scale = list(scale)
        self.seq_len = sum([pz * pz for pz in self.scale])
        self.token_embed_dim = vae_embed_dim * patch_size ** 2
        self.num_classes = class_num
        self.label_drop_prob = label_drop_prob
        self.buffer_size = buffer_size
        self.cfg = dict(img_size=img_size, vae_stride=vae_stride, patch_size=patch_size, vae_embed_dim=vae_embed_dim,
                        encoder_embed_dim=encoder_embed_dim, encoder_depth=encoder_depth,
                        encoder_num_heads=encoder_num_heads, decoder_embed_dim=decoder_embed_dim,
                        decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads, mlp_ratio=float(mlp_ratio),
                        buffer_size=buffer_size, class_num=class_num, diffloss_d=diffloss_d, diffloss_w=diffloss_w,
                        scale=list(scale), cross=bool(cross), norm_eps=1e-6)

        self.class_emb = nn.Embedding(1000 + 1, encoder_embed_dim)
        self.z_proj = nn.Linear(self.token_embed_dim, encoder_embed_dim, bias=True)
        self.z_proj_ln = RMSNorm(encoder_embed_dim, weight=True)
        self.encoder_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len + buffer_size, encoder_embed_dim))
        self.encoder_blocks = nn.ModuleList([Block(encoder_embed_dim, encoder_num_heads, mlp_ratio, scale)
                                             for _ in range(encoder_depth)])
        self.encoder_norm = RMSNorm(encoder_embed_dim, weight=True)
        self.decoder_embed = nn.Linear(encoder_embed_dim, decoder_embed_dim, bias=True)
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len + buffer_size, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, scale)
                                             for _ in range(decoder_depth)])
        self.decoder_norm = RMSNorm(decoder_embed_dim, weight=True)
        self.diffusion_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len, decoder_embed_dim))
        self.flownet = SimpleTransformerAdaLN(in_channels=self.token_embed_dim, model_channels=diffloss_w,
                                              out_channels=self.token_embed_dim, z_channels=decoder_embed_dim,
                                              num_res_blocks=diffloss_d, cross=cross)
        self.initialize_weights()

        # Scale-causal mask of training: the rows of scale i see scales 0..i.
        attention_mask = []
        start = 0
        total_length = self.seq_len + buffer_size
        for idx, pz in enumerate(self.scale):
            pz = pz ** 2
            if idx == 0:
                pz += buffer_size
            start += pz
            attention_mask.append(torch.cat([torch.ones((pz, start)), torch.zeros((pz, total_length - start))], dim=-1))
        attention_mask = torch.cat(attention_mask, dim=0)
        attention_mask = torch.where(attention_mask == 0, -torch.inf, attention_mask)
        attention_mask = torch.where(attention_mask == 1, 0, attention_mask)
        self.register_buffer('mask', attention_mask.unsqueeze(0).unsqueeze(0).contiguous())

    def initialize_weights(self):
        torch.nn.init.normal_(self.class_emb.weight, std=.02)
        torch.nn.init.normal_(self.encoder_pos_embed_learned, std=.02)
        torch.nn.init.normal_(self.decoder_pos_embed_learned, std=.02)
        torch.nn.init.normal_(self.diffusion_pos_embed_learned, std=.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    # -- tokens <-> latent --------------------------------------------------

    def patchify(self, x):
        bsz, c, h, w = x.shape
        p = self.patch_size
        h_, w_ = h // p, w // p
        x = x.reshape(bsz, c, h_, p, w_, p)
        x = torch.einsum('nchpwq->nhwcpq', x)
        return x.reshape(bsz, h_ * w_, c * p ** 2)

    def unpatchify(self, x):
        bsz = x.shape[0]
        p = self.patch_size
        c = self.vae_embed_dim
        x = x.reshape(bsz, self.seq_h, self.seq_w, c, p, p)
        x = torch.einsum('nhwcpq->nchpwq', x)
        return x.reshape(bsz, c, self.seq_h * p, self.seq_w * p)

    # -- transformer -------------------------------------------------------

    def forward_mae_encoder(self, x, condition, mask, start=None, end=None):
        pos = self.encoder_pos_embed_learned if self.training else self.encoder_pos_embed_learned[:, start:end]
        x = self.z_proj_ln(x + pos)
        for blk in self.encoder_blocks:
            x = blk(x, condition, mask)
        return self.encoder_norm(x)

    def forward_mae_decoder(self, x, condition, mask, start=None, end=None):
        x = self.decoder_embed(x)
        pos = self.decoder_pos_embed_learned if self.training else self.decoder_pos_embed_learned[:, start:end]
        x = x + pos
        for blk in self.decoder_blocks:
            x = blk(x, condition, mask)
        x = self.decoder_norm(x)[:, self.buffer_size:]
        dpos = self.diffusion_pos_embed_learned if self.training else self.diffusion_pos_embed_learned[:, start:end]
        return x + dpos

    def clear_caches(self):
        for blk in list(self.encoder_blocks) + list(self.decoder_blocks):
            blk.attn.clear_cache()

    def scale_rows(self):
        """(start, end) of every scale's rows in the sequence (buffer_size 0)."""
        seq = np.cumsum([s * s for s in self.scale])
        return [(int(a), int(b)) for a, b in zip(np.concatenate([[0], seq[:-1]]), seq)]

    def transformer_full(self, tokens, class_embedding):
        """Training-mode pass (FlowAR.forward without the loss): every scale at once under
        the scale-causal mask. tokens [B, seq_len - 1, C]: the inputs of scales 1.. (the
        first scale's input is the class embedding). Call in train() mode."""
        x = torch.cat([class_embedding.unsqueeze(1), self.z_proj(tokens)], dim=1)
        z = self.forward_mae_encoder(x, class_embedding, self.mask)
        return self.forward_mae_decoder(z, class_embedding, self.mask)

    def transformer_cached(self, tokens, class_embedding):
        """Evaluation pass scale by scale with the key/value caches (sample_tokens), on the
        same inputs as transformer_full; returns z [B, seq_len, D]. Call in eval() mode."""
        self.clear_caches()
        out = []
        for i, (a, b) in enumerate(self.scale_rows()):
            x = class_embedding.unsqueeze(1) if i == 0 else self.z_proj(tokens[:, a - 1:b - 1])
            z = self.forward_mae_encoder(x, class_embedding, None, a, b)
            out.append(self.forward_mae_decoder(z, class_embedding, None, a, b))
        self.clear_caches()
        return torch.cat(out, dim=1)

    # -- sampling (FlowAR_DiSA FlowAR.sample_tokens) ---------------------------

    @torch.no_grad()
    def sample_tokens(self, flow_upper_steps=50, flow_lower_steps=15, guidance=0.9, cfg=1.0, labels=None,
                      rng=None, trace=None):
        """Sample token latents [B, C, seq_h, seq_h]. rng: Randomness (default fresh).
        trace: optional dict receiving per scale n_steps, nfe, n_guided, cfg, z (the
        transformer output), tokens (the sampled tokens after .float())."""
        rng = rng or Randomness()
        dt = self.class_emb.weight.dtype
        class_embedding = self.class_emb(labels)
        guided = not cfg == 1.0
        if guided:
            class_embedding = torch.cat([class_embedding, self.class_emb(torch.full_like(labels, UNCOND_LABEL))], 0)
        x = class_embedding.unsqueeze(1)
        rows = self.scale_rows()
        S = len(self.scale)
        self.clear_caches()
        z_sample = None
        for step in range(S):
            start, end = rows[step]
            z = self.forward_mae_encoder(x, class_embedding, None, start, end)
            z = self.forward_mae_decoder(z, class_embedding, None, start, end)
            scaled_cfg = (cfg - 1) * step / (S - 1) + 1
            n = flow_steps_at(step, S, flow_upper_steps, flow_lower_steps)
            noise = rng.randn((z.shape[0], z.shape[1], 16))
            sampled = euler_sampler(self.flownet, noise, z, num_steps=n, cfg_scale=scaled_cfg,
                                    guidance_high=guidance, model_dtype=dt, trace=trace).float()
            z_sample = sampled.chunk(2, dim=0)[0] if guided else sampled
            if trace is not None:
                trace.setdefault("n_steps", []).append(n)
                trace.setdefault("cfg", []).append(scaled_cfg)
                trace.setdefault("z", []).append(z.clone())
                trace.setdefault("tokens", []).append(z_sample.clone())
            if step == S - 1:
                break
            if guided:
                z_sample = z_sample.repeat(2, 1, 1)
            B, N, C = z_sample.shape
            x_ = z_sample.permute(0, 2, 1).reshape(B, C, self.scale[step], self.scale[step]).to(dt)
            x_ = interp_next(x_, self.scale[step + 1]).reshape(B, C, -1).permute(0, 2, 1)
            x = self.z_proj(x_)
        self.clear_caches()
        return self.unpatchify(z_sample.to(dt))


# ----------------------------------------------------------------------------
# presets, export, load

# models/flowar.py flowar_small / flowar_large / flowar_huge with the README's head sizes
# (--diffloss_d, --diffloss_w): width, depth, heads, head depth, head width, cross.
PRESETS = {
    "flowar_small": (768, 6, 12, 2, 1024, False),
    "flowar_large": (1024, 8, 16, 12, 1024, True),
    "flowar_huge": (1536, 15, 16, 12, 1536, True),
}


def preset_config(name):
    d, depth, heads, hd, hw, cross = PRESETS[name]
    return dict(img_size=256, vae_stride=16, patch_size=1, vae_embed_dim=16, encoder_embed_dim=d,
                encoder_depth=depth, encoder_num_heads=heads, decoder_embed_dim=d, decoder_depth=depth,
                decoder_num_heads=heads, mlp_ratio=4.0, buffer_size=0, class_num=1000, diffloss_d=hd,
                diffloss_w=hw, scale=[1, 2, 4, 8, 16], cross=cross, norm_eps=1e-6)


_KEYS = ("img_size", "vae_stride", "patch_size", "vae_embed_dim", "encoder_embed_dim", "encoder_depth",
         "encoder_num_heads", "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio",
         "buffer_size", "class_num", "diffloss_d", "diffloss_w", "scale", "cross")


def model_from_config(cfg, **kw):
    args = {k: cfg[k] for k in _KEYS if k in cfg}
    args.update(kw)
    return FlowAR(**args)


def export_config(model, extra=None):
    cfg = {"format": FORMAT}
    cfg.update(model.cfg)
    cfg["tokenizer"] = "kl16"
    if extra:
        cfg.update(extra)
    return cfg


def load_safetensors(path):
    """Model (float32, eval mode) from a converted file, buffers recomputed."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import stio
    tensors, meta = stio.load_file(path)
    cfg = json.loads(meta["config"])
    m = model_from_config(cfg)
    sd = m.state_dict()
    for k, v in tensors.items():
        sd[k] = torch.from_numpy(v.astype(np.float32))
    m.load_state_dict(sd)
    return m.eval(), cfg
