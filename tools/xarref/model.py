"""xAR: a MAR-shaped encoder/decoder transformer that predicts a whole group of tokens per
AR step by flow matching, the transformer itself being the velocity network.

Follows Qinyu-Allen-Zhao/DiSA xAR_DiSA/models/xar.py (TimestepEmbedder, RMSNorm,
Attention with its key/value cache, Block, xAR) and models/rope.py
(VisionRotaryEmbeddingFast), with timm's SwiGLU written out under its state_dict names
(fc1_g, fc1_x, fc2; xAR passes nn.GELU as its activation). state_dict names and buffers
are the official ones, so official checkpoints load unchanged.

Generalised where the official code hard-codes the ImageNet geometry, with the official
values as the defaults: the token grid (16 x 16), the number of groups (`clusters`, 4:
2 x 2 quadrants of 8 x 8 tokens), the group length (64), the token width of `pred` and
of the noise (16), the unconditional label (1000 = class_num, `class_emb` has
class_num + 1 rows). flash_attn is replaced by plain scaled-dot-product attention
(`sdpa`). Everything runs on the CPU in float32 or float64.

Randomness of sampling goes through a `Randomness` object so a run can be recorded as a
tape of draws and replayed by another implementation.
"""
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import sampler as flow

FORMAT = "disa-xar-1"


# ----------------------------------------------------------------------------
# randomness hook

class Randomness:
    """Gaussian draws as the official sampler makes them (torch.randn with the global
    generator: the start latents in float32, the Euler-Maruyama noise in float64). With
    record=True every draw is appended to `tape` as ("randn", numpy array)."""

    def __init__(self, record=False):
        self.record = record
        self.tape = []

    def randn(self, shape, dtype=torch.float32):
        x = torch.randn(*shape, dtype=dtype)
        if self.record:
            self.tape.append(("randn", x.numpy().copy()))
        return x


class TapeRandomness(Randomness):
    """Replays a recorded tape; raises if the consumer asks for a different draw."""

    def __init__(self, tape):
        super().__init__(record=False)
        self.src = list(tape)
        self.pos = 0

    def randn(self, shape, dtype=torch.float32):
        if self.pos >= len(self.src):
            raise RuntimeError(f"tape exhausted at draw {self.pos} (randn {tuple(shape)})")
        k, a = self.src[self.pos]
        if k != "randn" or tuple(a.shape) != tuple(shape):
            raise RuntimeError(f"tape draw {self.pos}: want randn{tuple(shape)}, have {k}{a.shape}")
        self.pos += 1
        return torch.from_numpy(a.copy()).to(dtype)


# ----------------------------------------------------------------------------
# layers

def sdpa(q, k, v, attn_mask=None, dropout_p=0.0):
    """softmax(q k^T / sqrt(head_dim) + attn_mask) v: what F.scaled_dot_product_attention
    and flash_attn compute, written out (PyTorch 1.13 has neither)."""
    s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if attn_mask is not None:
        s = s + attn_mask
    p = s.softmax(dim=-1)
    if dropout_p > 0:
        p = F.dropout(p, dropout_p)
    return p @ v


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size, bias=True), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size, bias=True))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        # float32 frequencies as in the official code, also for float64 runs
        freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t):
        t_freq = self.timestep_embedding(t, self.frequency_embedding_size)
        return self.mlp(t_freq.to(self.mlp[0].weight.dtype))


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6, weight=False):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if weight else None

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        # the official code upcasts to float32; a float64 run stays in float64
        out = self._norm(x if x.dtype == torch.float64 else x.float()).type_as(x)
        return out if self.weight is None else out * self.weight


def rotate_half(x):
    """Pairs (x0, x1) of the last axis -> (-x1, x0)."""
    x = x.reshape(*x.shape[:-1], -1, 2)
    x1, x2 = x.unbind(dim=-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


class VisionRotaryEmbeddingFast(nn.Module):
    """2-D RoPE over a grid x grid token map: the first half of each head's channels
    rotates with the row, the second half with the column, frequencies
    theta^(-2j/dim) for the `dim` = head_dim / 2 channels of one axis, pairs
    interleaved. The tables are reordered into group order (group-major over the
    sqrt(clusters)^2 quadrants, raster order inside one), the order xAR feeds tokens in."""

    def __init__(self, dim, pt_seq_len=16, clusters=4, theta=10000):
        super().__init__()
        freqs = 1. / (theta ** (torch.arange(0, dim, 2)[:(dim // 2)].float() / dim))
        self.pt_seq_len = pt_seq_len
        self.register_buffer("freqs", freqs)
        t = torch.arange(pt_seq_len) / pt_seq_len * pt_seq_len
        f = (t[:, None] * freqs[None, :]).repeat_interleave(2, dim=-1)           # [grid, dim]
        g = pt_seq_len
        f = torch.cat([f[:, None, :].expand(g, g, dim), f[None, :, :].expand(g, g, dim)], dim=-1)
        cos, sin = f.cos().reshape(g * g, 2 * dim), f.sin().reshape(g * g, 2 * dim)
        ch = math.isqrt(clusters)
        p = g // ch
        cos = cos.reshape(ch, p, ch, p, 2 * dim).permute(0, 2, 1, 3, 4).reshape(g * g, 2 * dim)
        sin = sin.reshape(ch, p, ch, p, 2 * dim).permute(0, 2, 1, 3, 4).reshape(g * g, 2 * dim)
        self.register_buffer("freqs_cos", cos.contiguous())
        self.register_buffer("freqs_sin", sin.contiguous())
        self.clusters = clusters
        self.seq_len = g * g

    def forward(self, x, scale_index=None):
        if scale_index is None:
            return x * self.freqs_cos + rotate_half(x) * self.freqs_sin
        # the rows end at the end of group `scale_index`
        end = (scale_index + 1) * self.seq_len // self.clusters
        lo = end - x.shape[2]
        return x * self.freqs_cos[lo:end] + rotate_half(x) * self.freqs_sin[lo:end]


class Attention(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, attn_drop=0., proj_drop=0., grid=16, clusters=4):
        super().__init__()
        assert dim % num_heads == 0, 'dim should be divisible by num_heads'
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.rope = VisionRotaryEmbeddingFast(dim=dim // num_heads // 2, pt_seq_len=grid, clusters=clusters)
        self.group = grid * grid // clusters
        self.k = None
        self.v = None

    def forward(self, x, mask, update_cache=True, scale_index=None):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.training:
            q, k = self.rope(q), self.rope(k)
            x = sdpa(q, k, v, mask, dropout_p=self.attn_drop)
            x = x.transpose(1, 2).reshape(B, N, C)
        else:
            q, k = self.rope(q, scale_index), self.rope(k, scale_index)
            if self.k is not None:
                k, v = torch.cat([self.k[:k.shape[0]], k], dim=2), torch.cat([self.v[:k.shape[0]], v], dim=2)
            if update_cache:
                # everything but the noisy group being sampled
                self.k, self.v = k[:, :, :-self.group], v[:, :, :-self.group]
                x = sdpa(q, k, v, mask)
            else:
                x = sdpa(q, k, v)
            x = x.permute(0, 2, 1, 3).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class SwiGLU(nn.Module):
    """timm.layers.SwiGLU: fc2(act(fc1_g(x)) * fc1_x(x)), norm Identity."""

    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.SiLU, bias=True,
                 drop=0.):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1_g = nn.Linear(in_features, hidden_features, bias=bias)
        self.fc1_x = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        x_gate = self.fc1_g(x)
        x = self.fc1_x(x)
        x = self.act(x_gate) * x
        return self.drop2(self.fc2(self.norm(self.drop1(x))))


def mlp_hidden(dim, mlp_ratio):
    """Block's SwiGLU width: int(dim * mlp_ratio * 2 / 3.) (2048 for 768, 2730 for 1024)."""
    return int(dim * mlp_ratio * 2 / 3.)


class Block(nn.Module):
    """x += gamma1 * attn(norm1(x) * (1 + scale1) + shift1);
    x += gamma2 * mlp(norm2(x) * (1 + scale2) + shift2), the six modulations from
    ada_lin(condition) in the order gamma1, gamma2, scale1, scale2, shift1, shift2; a
    condition row per image and per group of the input rows."""

    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=False, proj_drop=0., attn_drop=0., grid=16,
                 clusters=4):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                              proj_drop=proj_drop, grid=grid, clusters=clusters)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(in_features=dim, hidden_features=mlp_hidden(dim, mlp_ratio), act_layer=nn.GELU,
                          drop=proj_drop)
        self.ada_lin = nn.Sequential(nn.SiLU(inplace=False), nn.Linear(dim, 6 * dim))
        self.dim = dim
        self.group = grid * grid // clusters

    def forward(self, x, condition, mask, update_cache=True, scale_index=None):
        num_scales = condition.shape[0] // x.shape[0]
        condition = self.ada_lin(condition).view(-1, 1, 6, self.dim).chunk(num_scales, dim=0)
        condition = torch.cat([c.repeat(1, self.group, 1, 1) for c in condition], dim=1)
        gamma1, gamma2, scale1, scale2, shift1, shift2 = condition.unbind(2)
        x = x + self.attn(self.norm1(x).mul(scale1.add(1)).add_(shift1), mask, update_cache=update_cache,
                          scale_index=scale_index).mul_(gamma1)
        x = x + self.mlp(self.norm2(x).mul(scale2.add(1)).add_(shift2)).mul_(gamma2)
        return x


# ----------------------------------------------------------------------------
# xAR

class xAR(nn.Module):
    def __init__(self, img_size=256, vae_stride=16, patch_size=1, encoder_embed_dim=1024, encoder_depth=16,
                 encoder_num_heads=16, decoder_embed_dim=1024, decoder_depth=16, decoder_num_heads=16,
                 mlp_ratio=4., vae_embed_dim=16, label_drop_prob=0.1, class_num=1000, attn_dropout=0.,
                 proj_dropout=0., clusters=4, norm_eps=1e-6):
        super().__init__()
        assert encoder_embed_dim == decoder_embed_dim, "the decoder blocks read the encoder-width condition"
        self.vae_embed_dim = vae_embed_dim
        self.img_size = img_size
        self.vae_stride = vae_stride
        self.patch_size = patch_size
        self.seq_h = self.seq_w = img_size // vae_stride // patch_size
        self.seq_len = self.seq_h * self.seq_w
        self.cluster_h = self.cluster_w = math.isqrt(clusters)
        assert self.cluster_h ** 2 == clusters and self.seq_h % self.cluster_h == 0
        self.clusters = clusters
        self.group = self.seq_len // clusters
        self.token_embed_dim = vae_embed_dim * patch_size ** 2
        self.num_classes = class_num
        self.label_drop_prob = label_drop_prob
        self.cfg = dict(img_size=img_size, vae_stride=vae_stride, patch_size=patch_size,
                        vae_embed_dim=vae_embed_dim, encoder_embed_dim=encoder_embed_dim,
                        encoder_depth=encoder_depth, encoder_num_heads=encoder_num_heads,
                        decoder_embed_dim=decoder_embed_dim, decoder_depth=decoder_depth,
                        decoder_num_heads=decoder_num_heads, mlp_ratio=float(mlp_ratio), class_num=class_num,
                        clusters=clusters, norm_eps=norm_eps)
        g = self.seq_h

        self.class_emb = nn.Embedding(class_num + 1, encoder_embed_dim)   # row class_num: unconditional
        self.time_embed = TimestepEmbedder(encoder_embed_dim)
        self.z_proj = nn.Linear(self.token_embed_dim, encoder_embed_dim, bias=True)
        self.z_proj_ln = RMSNorm(encoder_embed_dim, eps=norm_eps, weight=True)
        self.encoder_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len, encoder_embed_dim))
        self.encoder_blocks = nn.ModuleList([
            Block(encoder_embed_dim, encoder_num_heads, mlp_ratio, qkv_bias=True, proj_drop=proj_dropout,
                  attn_drop=attn_dropout, grid=g, clusters=clusters) for _ in range(encoder_depth)])
        self.encoder_norm = RMSNorm(encoder_embed_dim, eps=norm_eps, weight=True)

        self.decoder_embed = nn.Linear(encoder_embed_dim, decoder_embed_dim, bias=True)
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, proj_drop=proj_dropout,
                  attn_drop=attn_dropout, grid=g, clusters=clusters) for _ in range(decoder_depth)])
        self.decoder_norm = RMSNorm(decoder_embed_dim, eps=norm_eps, weight=True)
        self.pred = nn.Linear(decoder_embed_dim, self.token_embed_dim)
        self.initialize_weights()

        # block-causal mask over groups: a row of group c sees the columns of groups 0..c
        m = torch.zeros(self.seq_len, self.seq_len)
        for c in range(clusters):
            m[c * self.group:(c + 1) * self.group, (c + 1) * self.group:] = -torch.inf
        self.register_buffer('mask', m[None, None].contiguous())

    def initialize_weights(self):
        torch.nn.init.normal_(self.class_emb.weight, std=.02)
        torch.nn.init.normal_(self.encoder_pos_embed_learned, std=.02)
        torch.nn.init.normal_(self.decoder_pos_embed_learned, std=.02)

        def init(m):
            if isinstance(m, nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
        self.apply(init)

    # -- token layouts ----------------------------------------------------

    def clusterify(self, x):
        """[B, C, H, W] latents -> per group [B, group, C] (group-major quadrants, raster
        order inside)."""
        bsz, c, h, w = x.shape
        p = h // self.cluster_h
        x = x.reshape(bsz, c, self.cluster_h, p, self.cluster_w, p)
        x = torch.einsum('nchpwq->nhwpqc', x).reshape(bsz, self.clusters, p * p, c)
        return list(x.unbind(1))

    def unclusterify(self, x):
        """[B, seq_len, C] in group order -> [B, C, seq_h, seq_w]."""
        b, n, c = x.shape
        p = self.seq_h // self.cluster_h
        x = x.reshape(b, self.cluster_h, self.cluster_w, p, p, c)
        x = torch.einsum('nhwpqc->nchpwq', x)
        return x.reshape(b, c, self.seq_h, self.seq_w)

    def group_to_raster(self, x):
        """[B, seq_len, C] in group order -> [B, seq_len, C] in raster order (the token
        layout MAR's unpatchify reads)."""
        return self.unclusterify(x).permute(0, 2, 3, 1).reshape(x.shape[0], self.seq_len, -1)

    # -- transformer -----------------------------------------------------

    def _rows(self, scale_index, n):
        end = (scale_index + 1) * self.seq_len // self.clusters
        return end - n, end

    def forward_mae_encoder(self, x, condition, mask, update_cache=True, scale_index=0):
        if self.training:
            pos = self.encoder_pos_embed_learned
        else:
            lo, hi = self._rows(scale_index, x.shape[1])
            pos = self.encoder_pos_embed_learned[:, lo:hi]
            if mask is not None:
                mask = mask[:, :, lo:hi, :]
        x = self.z_proj_ln(x + pos)
        for blk in self.encoder_blocks:
            x = blk(x, condition, mask, update_cache=update_cache, scale_index=scale_index)
        return self.encoder_norm(x)

    def forward_mae_decoder(self, x, condition, mask, update_cache=True, scale_index=0):
        x = self.decoder_embed(x)
        if self.training:
            pos = self.decoder_pos_embed_learned
        else:
            lo, hi = self._rows(scale_index, x.shape[1])
            pos = self.decoder_pos_embed_learned[:, lo:hi]
            if mask is not None:
                mask = mask[:, :, lo:hi, :hi]
        x = x + pos
        for blk in self.decoder_blocks:
            x = blk(x, condition, mask, update_cache=update_cache, scale_index=scale_index)
        return self.pred(self.decoder_norm(x))

    def condition(self, label, time_input, n_images):
        """class_emb(label) repeated per time chunk + time_embed(int(t * 1000))."""
        class_embedding = self.class_emb(label.long())
        t = self.time_embed((time_input * 1000).long())
        step = t.shape[0] // n_images
        return class_embedding.repeat(step, 1) + t

    def sample_inference(self, x, label, time_input, update_cache, scale_index, mask=None):
        """The velocity network of one flow step: x [N, R, C] (R = group, or 2 groups on
        the first call of an AR step), label [N], time_input [N] or [2N] (one per group of
        rows, chunk-major). Returns [N, group, C]: the velocity of the noisy group."""
        condition = self.condition(label, time_input, x.shape[0])
        x = self.z_proj(x)
        x = self.forward_mae_encoder(x, condition, mask, update_cache=update_cache, scale_index=scale_index)
        out = self.forward_mae_decoder(x, condition, mask, update_cache=update_cache, scale_index=scale_index)
        if update_cache:
            out = out[:, -self.group:]
        return out

    def reset_cache(self):
        for blk in list(self.encoder_blocks) + list(self.decoder_blocks):
            blk.attn.k = None
            blk.attn.v = None

    # -- training (xAR.forward) -------------------------------------------

    def forward(self, imgs, labels):
        """Flow-matching loss of a batch of [B, C, H, W] latents (official training:
        label drop to class_num, one logit-normal time per image and group, targets
        noise - x)."""
        from scipy.stats import norm
        B, C = imgs.shape[:2]
        label_drop = torch.rand(B) < self.label_drop_prob
        labels = torch.where(label_drop, torch.full_like(labels, self.num_classes), labels)
        patches = self.clusterify(imgs)
        n = patches[0].shape[0] * self.clusters
        time_input = torch.tensor(1 / (1 + np.exp(-norm.rvs(loc=0, scale=1, size=n))), dtype=torch.float32)
        time_input = time_input.unsqueeze(-1).unsqueeze(-1).to(dtype=patches[0].dtype)
        noises = [torch.randn_like(patches[0]) for _ in range(self.clusters)]
        alpha_t, sigma_t = (1 - time_input).chunk(self.clusters, dim=0), time_input.chunk(self.clusters, dim=0)
        model_input = [alpha_t[i] * patches[i] + sigma_t[i] * noises[i] for i in range(self.clusters)]
        target = [-1 * patches[i] + 1 * noises[i] for i in range(self.clusters)]
        t = self.time_embed((time_input * 1000).long().flatten())
        class_embedding = self.class_emb(labels.long())
        cond = class_embedding.repeat(self.clusters, 1) + t
        x = self.z_proj(torch.stack(model_input, dim=1).reshape(B, -1, C))
        x = self.forward_mae_encoder(x, cond, self.mask)
        out = self.forward_mae_decoder(x, cond, self.mask)
        target = torch.stack(target, dim=1).reshape(B, -1, C)
        return ((out - target) ** 2).mean(dim=list(range(1, out.dim()))).mean()

    # -- sampling (xAR_DiSA xAR.sample_tokens) ----------------------------

    def flow_steps(self, step, flow_upper_steps, flow_lower_steps):
        """DiSA's linear schedule over the AR steps: upper at step 0, lower at the last."""
        u = self.clusters - 1
        return int((u - step) / u * (flow_upper_steps - flow_lower_steps) + flow_lower_steps)

    def cfg_at(self, step, cfg):
        """Guidance scale at AR step `step`: linear from 1 to cfg."""
        return (cfg - 1) * step / (self.clusters - 1.) + 1

    @torch.no_grad()
    def sample_tokens(self, bsz, cfg=1.0, labels=None, flow_upper_steps=50, flow_lower_steps=10,
                      sampler="euler_maruyama", rng=None, dtype=torch.float32, trace=None):
        """Sample [B, C, seq_h, seq_w] token latents. labels [B] (None: unconditional).
        sampler: "euler_maruyama" (official) or "euler". Noise drawn by rng; the network runs
        in `dtype` (start latents cast to it), the flow in float64. trace: optional dict of
        per-step lists (n_steps, cfg, z, and with calls=True in it the state after every
        flow step)."""
        rng = rng or Randomness()
        if labels is None:
            labels = torch.full((bsz,), self.num_classes, dtype=torch.int64)
        self.reset_cache()
        generated = None
        prev = None
        for step in range(self.clusters):
            scaled_cfg = self.cfg_at(step, cfg)
            latents = rng.randn((bsz, self.group, self.token_embed_dim), torch.float32).to(dtype)
            num_steps = self.flow_steps(step, flow_upper_steps, flow_lower_steps)
            hi = (step + 1) * self.group
            mask = self.mask[:, :, :hi, :hi]
            calls = [] if trace is not None and trace.get("calls") is not None else None
            kw = dict(condition=prev, num_steps=num_steps, cfg_scale=scaled_cfg, mask=mask,
                      uncond_label=self.num_classes, time_dtype=torch.float32, trace=calls)
            if sampler == "euler_maruyama":
                z = flow.euler_maruyama_sampler(self.sample_inference, latents, labels, step, rng=rng, **kw)
            elif sampler == "euler":
                z = flow.euler_sampler(self.sample_inference, latents, labels, step, **kw)
            else:
                raise ValueError(sampler)
            z = z.to(dtype) if dtype == torch.float64 else z.float()
            prev = z
            generated = z if generated is None else torch.cat([generated, z], dim=1)
            if trace is not None:
                trace.setdefault("n_steps", []).append(num_steps)
                trace.setdefault("cfg", []).append(scaled_cfg)
                trace.setdefault("z", []).append(z.clone())
                if calls is not None:
                    trace["calls"].append(calls)
        return self.unclusterify(generated)


# ----------------------------------------------------------------------------
# presets (xAR_DiSA/models/xar.py: xar_base, xar_large, xar_huge) and export

PRESETS = {
    "xar_base": dict(encoder_embed_dim=768, encoder_depth=8, encoder_num_heads=12, decoder_embed_dim=768,
                     decoder_depth=8, decoder_num_heads=12),
    "xar_large": dict(encoder_embed_dim=1024, encoder_depth=16, encoder_num_heads=16, decoder_embed_dim=1024,
                      decoder_depth=16, decoder_num_heads=16),
    "xar_huge": dict(encoder_embed_dim=1280, encoder_depth=20, encoder_num_heads=16, decoder_embed_dim=1280,
                     decoder_depth=20, decoder_num_heads=16),
}

# Buffers of the official state_dict that the C engine recomputes from the config.
BUFFER_SUFFIXES = ("attn.rope.freqs", "attn.rope.freqs_cos", "attn.rope.freqs_sin")


def is_buffer(name):
    return name == "mask" or name.endswith(BUFFER_SUFFIXES)


def export_config(model, tokenizer="kl16", extra=None):
    cfg = {"format": FORMAT}
    cfg.update(model.cfg)
    cfg["tokenizer"] = tokenizer
    if extra:
        cfg.update(extra)
    return cfg


def export_safetensors(path, state_dict, config, dtype="f32", extra_metadata=None):
    """Write the parameters of `state_dict` (official names; buffers dropped) to `path`
    with __metadata__["config"] = JSON config."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import stio
    np_dt = {"f16": np.float16, "f32": np.float32}[dtype]
    tensors = {k: v.detach().cpu().float().numpy().astype(np_dt) for k, v in state_dict.items() if not is_buffer(k)}
    meta = {"config": json.dumps(config, separators=(",", ":"))}
    if extra_metadata:
        meta.update(extra_metadata)
    stio.save_file(path, tensors, meta)


def model_from_config(cfg, **kw):
    keys = ("img_size", "vae_stride", "patch_size", "vae_embed_dim", "encoder_embed_dim", "encoder_depth",
            "encoder_num_heads", "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio",
            "class_num", "clusters", "norm_eps")
    args = {k: cfg[k] for k in keys if k in cfg}
    args.update(kw)
    return xAR(**args)


def load_safetensors(path, **kw):
    """Model (float32, eval mode) from an exported file; the buffers are rebuilt."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import stio
    tensors, meta = stio.load_file(path)
    cfg = json.loads(meta["config"])
    m = model_from_config(cfg, attn_dropout=0.0, proj_dropout=0.0, **kw)
    missing, unexpected = m.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()},
                                            strict=False)
    bad = [k for k in missing if not is_buffer(k)] + list(unexpected)
    if bad:
        raise ValueError(f"{path}: tensors do not match the config: {bad[:8]}")
    return m.eval(), cfg
