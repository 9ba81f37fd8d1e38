"""MAR (masked autoregressive transformer) with the DiffLoss head, for training,
reference sampling and golden generation.

Mirrors LTH14/mar models/mar.py (MAR), models/diffloss.py (DiffLoss, SimpleMLPAdaLN),
timm's vision_transformer Block, and MAR_DiSA models/mar.py: MAR.sample_tokens /
models/diffloss.py: DiffLoss.sample for the per-AR-step sampler choice. DESIGN sections
4-7. state_dict names are the official ones, so official checkpoints load unchanged and
exports carry the names the C loader binds.

All randomness of sampling goes through a `Randomness` object (orders, randn) so a run
can be recorded as a tape of draws and replayed by another implementation.
"""
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import adaptive as ad
from . import diffusion as gd
from . import dpm


# ----------------------------------------------------------------------------
# randomness hook

class Randomness:
    """Draws as the official code makes them: orders with np.random.shuffle (one per
    image, MAR.sample_orders), gaussians with torch.randn. With record=True every draw
    is appended to `tape` in consumption order as ("orders", int64 array) or
    ("randn", float32 array)."""

    def __init__(self, record=False):
        self.record = record
        self.tape = []

    def orders(self, bsz, seq_len):
        out = []
        for _ in range(bsz):
            order = np.array(list(range(seq_len)))
            np.random.shuffle(order)
            out.append(order)
        out = np.array(out).astype(np.int64)
        if self.record:
            self.tape.append(("orders", out.copy()))
        return torch.from_numpy(out)

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

    def _next(self, kind, shape):
        if self.pos >= len(self.src):
            raise RuntimeError(f"tape exhausted at draw {self.pos} ({kind} {tuple(shape)})")
        k, a = self.src[self.pos]
        if k != kind or tuple(a.shape) != tuple(shape):
            raise RuntimeError(f"tape draw {self.pos}: want {kind}{tuple(shape)}, have {k}{a.shape}")
        self.pos += 1
        return a

    def orders(self, bsz, seq_len):
        return torch.from_numpy(self._next("orders", (bsz, seq_len)).astype(np.int64))

    def randn(self, shape):
        return torch.from_numpy(self._next("randn", tuple(shape)).astype(np.float32))


# ----------------------------------------------------------------------------
# timm Block (state_dict names norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2)

class Attention(nn.Module):
    def __init__(self, dim, num_heads, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = q * self.scale
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, eps=1e-6, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, attn_drop, proj_drop)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), proj_drop)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# ----------------------------------------------------------------------------
# SimpleMLPAdaLN (models/diffloss.py)

def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden, freq_dim=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.freq_dim = freq_dim

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        # frequencies are float32 as in the official code, also for float64 runs
        freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t):
        w = self.mlp[0].weight
        return self.mlp(self.timestep_embedding(t, self.freq_dim).to(w.dtype))


class ResBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.in_ln = nn.LayerNorm(ch, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(ch, ch), nn.SiLU(), nn.Linear(ch, ch))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(ch, 3 * ch))

    def forward(self, x, y):
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        h = self.mlp(modulate(self.in_ln(x), shift, scale))
        return x + gate * h


class FinalLayer(nn.Module):
    def __init__(self, ch, out_ch):
        super().__init__()
        self.norm_final = nn.LayerNorm(ch, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(ch, out_ch)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(ch, 2 * ch))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class SimpleMLPAdaLN(nn.Module):
    def __init__(self, in_channels, model_channels, out_channels, z_channels, num_res_blocks):
        super().__init__()
        self.in_channels = in_channels
        self.time_embed = TimestepEmbedder(model_channels)
        self.cond_embed = nn.Linear(z_channels, model_channels)
        self.input_proj = nn.Linear(in_channels, model_channels)
        self.res_blocks = nn.ModuleList([ResBlock(model_channels) for _ in range(num_res_blocks)])
        self.final_layer = FinalLayer(model_channels, out_channels)
        self.initialize_weights()

    def initialize_weights(self):
        def _basic(m):
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
        self.apply(_basic)
        nn.init.normal_(self.time_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.time_embed.mlp[2].weight, std=0.02)
        for b in self.res_blocks:
            nn.init.constant_(b.adaLN_modulation[-1].weight, 0)
            nn.init.constant_(b.adaLN_modulation[-1].bias, 0)
        nn.init.constant_(self.final_layer.adaLN_modulation[-1].weight, 0)
        nn.init.constant_(self.final_layer.adaLN_modulation[-1].bias, 0)
        nn.init.constant_(self.final_layer.linear.weight, 0)
        nn.init.constant_(self.final_layer.linear.bias, 0)

    def forward(self, x, t, c):
        x = self.input_proj(x)
        y = self.time_embed(t) + self.cond_embed(c)
        for b in self.res_blocks:
            x = b(x, y)
        return self.final_layer(x, y)

    def forward_with_cfg(self, x, t, c, cfg_scale):
        """Rows [x; x'] with c = [c_cond; c_uncond]: only the first half of x is used;
        eps of both halves becomes the guided eps, the variance channels stay per half."""
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half], dim=0), t, c)
        eps, rest = out[:, :self.in_channels], out[:, self.in_channels:]
        cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
        half_eps = uncond_eps + cfg_scale * (cond_eps - uncond_eps)
        return torch.cat([torch.cat([half_eps, half_eps], dim=0), rest], dim=1)


class DiffLoss(nn.Module):
    def __init__(self, target_channels, z_channels, depth, width):
        super().__init__()
        self.in_channels = target_channels
        self.net = SimpleMLPAdaLN(target_channels, width, target_channels * 2, z_channels, depth)
        self.train_tables = gd.train_tables()
        self._tables = {}
        self._dpm = None

    def tables(self, n, sampler):
        key = (n, sampler)
        if key not in self._tables:
            self._tables[key] = gd.make_tables(n, sampler)
        return self._tables[key]

    def dpm_plan(self, n, sampler, order):
        """The DPM-Solver plan for n steps (tools/marref/dpm.py)."""
        if self._dpm is None:
            self._dpm = dpm.Schedule()
        key = (n, sampler, order)
        if key not in self._tables:
            self._tables[key] = dpm.Plan(self._dpm, n, order, dpm.SAMPLER_ALGO[sampler])
        return self._tables[key]

    def forward(self, target, z, mask=None):
        t = torch.randint(0, self.train_tables.num_timesteps, (target.shape[0],), device=target.device)
        loss = gd.training_losses(self.train_tables, self.net, target, t, z)
        if mask is not None:
            loss = (loss * mask).sum() / mask.sum()
        return loss.mean()

    def sample(self, z, temperature, cfg, n_steps, sampler, rng, dpm_order=1):
        """Run one reverse diffusion for the rows of z (DiffLoss.sample).

        With CFG z is [c_cond; c_uncond] (2n rows); the start noise is n draws repeated
        for both halves, every step draws 2n rows (the official randn_like(x)), and only
        the first half of the result is meaningful. DDIM also draws (and ignores) its
        per-step noise, as the official ddim_sample does, so tapes line up.

        dpm_solver / dpm_solver++: the multistep solver of tools/marref/dpm.py from n start
        draws, no other draws, temperature unused. With CFG it is fed the guided eps of
        forward_with_cfg (the official DPM path runs the plain network on both halves:
        disa's extension), and the result is returned for both halves."""
        C = self.in_channels
        guided = not bool(cfg == 1.0)
        if sampler in dpm.SAMPLER_ALGO:
            x = rng.randn((z.shape[0] // 2 if guided else z.shape[0], C)).to(z.dtype)
            plan = self.dpm_plan(n_steps, sampler, dpm_order)
            x = dpm.sample(plan, x, lambda x_, ti: dpm.guided_eps(self.net, x_, ti, z, cfg, guided))
            return torch.cat([x, x], dim=0) if guided else x
        if guided:
            noise = rng.randn((z.shape[0] // 2, C)).to(z.dtype)
            x = torch.cat([noise, noise], dim=0)
            fn = lambda x_, t_: self.net.forward_with_cfg(x_, t_, z, cfg)
        else:
            x = rng.randn((z.shape[0], C)).to(z.dtype)
            fn = lambda x_, t_: self.net.forward(x_, t_, z)
        tab = self.tables(n_steps, sampler)
        for i in reversed(range(tab.num_timesteps)):
            t = torch.full((x.shape[0],), int(tab.timestep_map[i]), dtype=torch.int64)
            out = fn(x, t)
            eps, var_values = out[:, :C], out[:, C:]
            step_noise = rng.randn(tuple(x.shape)).to(z.dtype)
            if sampler == "ddim":
                x = gd.ddim_step(tab, i, x, eps)
            else:
                x = gd.ddpm_step(tab, i, x, eps, var_values, step_noise, temperature)
        return x


    def n_blocks(self, sampler, lower, upper):
        """Noise blocks an adaptive DDPM step draws after the start noise: the most distinct
        steps of any count in lower..upper (none for the DPM solvers)."""
        if sampler in dpm.SAMPLER_ALGO:
            return 0
        return max(self.tables(n, sampler).num_timesteps for n in range(lower, upper + 1))

    def sample_adaptive(self, z, temperature, cfg, sampler, rng, B, P, lower, upper, budget, signal, states,
                        dpm_order=1, trace=None):
        """One AR step's head under --diff_annealing_strategy adaptive (adaptive.py), for
        B images of P rows (z as in sample(); with CFG [c_cond; c_uncond]).

        Draws: the start noise of the B * P rows, then (DDPM) n_blocks blocks of B * P
        normals, block j serving every row's j-th reverse step, whatever the counts. The
        first evaluation is at the time every count in lower..upper shares (950); its
        output gives the signals, per image adaptive.choose the counts, and then each row
        runs its own count's schedule from there, reusing that first output. trace, when a
        dict, receives the counts (list "n"), the values before rounding ("raw") and the
        signals ("g") of every row."""
        C = self.in_channels
        guided = not bool(cfg == 1.0)
        is_dpm = sampler in dpm.SAMPLER_ALGO
        R = B * P
        x = rng.randn((R, C)).to(z.dtype)
        blocks = [rng.randn((R, C)).to(z.dtype) for _ in range(self.n_blocks(sampler, lower, upper))]

        def net(xr, t, rows):
            """(eps, var, out_c, out_u) of the rows `rows` at network time t."""
            zr = torch.cat([z[rows], z[R + rows]], 0) if guided else z[rows]
            xin = torch.cat([xr, xr], 0) if guided else xr
            tt = t.reshape(1).expand(xin.shape[0]) if torch.is_tensor(t) else torch.full((xin.shape[0],), t)
            out = self.net(xin, tt, zr)
            n = xr.shape[0]
            oc, ou = out[:n], (out[n:] if guided else None)
            eps = ou[:, :C] + cfg * (oc[:, :C] - ou[:, :C]) if guided else oc[:, :C]
            return eps, oc[:, C:], oc, ou

        def first_time(n):
            if is_dpm:
                return self.dpm_plan(n, sampler, dpm_order).t_input[0]
            tab = self.tables(n, sampler)
            return int(tab.timestep_map[tab.num_timesteps - 1])

        t0 = first_time(upper)
        assert all(first_time(n) == t0 for n in range(lower, upper + 1))
        allr = torch.arange(R)
        eps0, var0, oc0, ou0 = net(x, t0, allr)
        g = ad.signals(oc0, ou0, eps0, signal)
        counts, raws = [], []
        for b in range(B):
            c, r = ad.choose(g[b * P:(b + 1) * P], states[b].L, lower, upper, budget, states[b])
            counts += c
            raws += r
        if trace is not None:
            trace.setdefault("n", []).append(list(counts))
            trace.setdefault("raw", []).append(list(raws))
            trace.setdefault("g", []).append([float(v) for v in g])
        out = x.clone()
        for m in sorted(set(counts)):
            rows = torch.tensor([r for r in range(R) if counts[r] == m], dtype=torch.int64)
            xr = x[rows]
            if is_dpm:
                plan = self.dpm_plan(m, sampler, dpm_order)
                k = [0]

                def eps_fn(x_, t_):
                    k[0] += 1
                    return eps0[rows] if k[0] == 1 else net(x_, t_, rows)[0]
                xr = dpm.sample(plan, xr, eps_fn)
            else:
                tab = self.tables(m, sampler)
                for j, i in enumerate(reversed(range(tab.num_timesteps))):
                    if j == 0:
                        e, v = eps0[rows], var0[rows]
                    else:
                        e, v, _, _ = net(xr, int(tab.timestep_map[i]), rows)
                    xr = gd.ddpm_step(tab, i, xr, e, v, blocks[j][rows], temperature)
            out[rows] = xr
        return torch.cat([out, out], dim=0) if guided else out


# ----------------------------------------------------------------------------
# MAR

def mask_by_order(mask_len, order, bsz, seq_len):
    masking = torch.zeros(bsz, seq_len)
    return torch.scatter(masking, dim=-1, index=order[:, :int(mask_len)], src=torch.ones(bsz, seq_len)).bool()


class MAR(nn.Module):
    def __init__(self, img_size=256, vae_stride=16, patch_size=1,
                 encoder_embed_dim=1024, encoder_depth=16, encoder_num_heads=16,
                 decoder_embed_dim=1024, decoder_depth=16, decoder_num_heads=16,
                 mlp_ratio=4.0, norm_eps=1e-6, vae_embed_dim=16, mask_ratio_min=0.7,
                 label_drop_prob=0.1, class_num=1000, attn_dropout=0.1, proj_dropout=0.1,
                 buffer_size=64, diffloss_d=3, diffloss_w=1024, diffusion_batch_mul=4):
        super().__init__()
        self.vae_embed_dim = vae_embed_dim
        self.img_size = img_size
        self.vae_stride = vae_stride
        self.patch_size = patch_size
        self.seq_h = self.seq_w = img_size // vae_stride // patch_size
        self.seq_len = self.seq_h * self.seq_w
        self.token_embed_dim = vae_embed_dim * patch_size ** 2
        self.num_classes = class_num
        self.label_drop_prob = label_drop_prob
        self.mask_ratio_min = mask_ratio_min
        self.buffer_size = buffer_size
        self.diffusion_batch_mul = diffusion_batch_mul
        self.cfg = dict(img_size=img_size, vae_stride=vae_stride, patch_size=patch_size,
                        vae_embed_dim=vae_embed_dim, encoder_embed_dim=encoder_embed_dim,
                        encoder_depth=encoder_depth, encoder_num_heads=encoder_num_heads,
                        decoder_embed_dim=decoder_embed_dim, decoder_depth=decoder_depth,
                        decoder_num_heads=decoder_num_heads, mlp_ratio=float(mlp_ratio),
                        buffer_size=buffer_size, class_num=class_num, diffloss_d=diffloss_d,
                        diffloss_w=diffloss_w, norm_eps=norm_eps)

        self.class_emb = nn.Embedding(class_num, encoder_embed_dim)
        self.fake_latent = nn.Parameter(torch.zeros(1, encoder_embed_dim))

        self.z_proj = nn.Linear(self.token_embed_dim, encoder_embed_dim, bias=True)
        self.z_proj_ln = nn.LayerNorm(encoder_embed_dim, eps=1e-6)
        self.encoder_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len + buffer_size, encoder_embed_dim))
        self.encoder_blocks = nn.ModuleList([
            Block(encoder_embed_dim, encoder_num_heads, mlp_ratio, norm_eps, attn_dropout, proj_dropout)
            for _ in range(encoder_depth)])
        self.encoder_norm = nn.LayerNorm(encoder_embed_dim, eps=norm_eps)

        self.decoder_embed = nn.Linear(encoder_embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len + buffer_size, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, norm_eps, attn_dropout, proj_dropout)
            for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=norm_eps)
        self.diffusion_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len, decoder_embed_dim))

        self.initialize_weights()
        self.diffloss = DiffLoss(self.token_embed_dim, decoder_embed_dim, diffloss_d, diffloss_w)

    def initialize_weights(self):
        for p in (self.class_emb.weight, self.fake_latent, self.mask_token, self.encoder_pos_embed_learned,
                  self.decoder_pos_embed_learned, self.diffusion_pos_embed_learned):
            nn.init.normal_(p, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
            if m.weight is not None:
                nn.init.constant_(m.weight, 1.0)

    # -- tokens <-> image --------------------------------------------------

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

    # -- transformer -----------------------------------------------------

    def forward_mae_encoder(self, x, mask, class_embedding, drop_latent_mask=None):
        """x [B, L, D] tokens, mask [B, L] (1 = unknown), class_embedding [B, d]."""
        x = self.z_proj(x)
        bsz, seq_len, embed_dim = x.shape
        x = torch.cat([torch.zeros(bsz, self.buffer_size, embed_dim, dtype=x.dtype), x], dim=1)
        mask_with_buffer = torch.cat([torch.zeros(bsz, self.buffer_size), mask.float()], dim=1)
        if drop_latent_mask is not None:
            d = drop_latent_mask.unsqueeze(-1).to(x.dtype)
            class_embedding = d * self.fake_latent + (1 - d) * class_embedding
        x[:, :self.buffer_size] = class_embedding.unsqueeze(1)
        x = x + self.encoder_pos_embed_learned
        x = self.z_proj_ln(x)
        x = x[(1 - mask_with_buffer).nonzero(as_tuple=True)].reshape(bsz, -1, embed_dim)
        for b in self.encoder_blocks:
            x = b(x)
        return self.encoder_norm(x)

    def forward_mae_decoder(self, x, mask):
        x = self.decoder_embed(x)
        mask_with_buffer = torch.cat([torch.zeros(x.size(0), self.buffer_size), mask.float()], dim=1)
        pad = self.mask_token.repeat(mask_with_buffer.shape[0], mask_with_buffer.shape[1], 1).to(x.dtype).clone()
        pad[(1 - mask_with_buffer).nonzero(as_tuple=True)] = x.reshape(x.shape[0] * x.shape[1], x.shape[2])
        x = pad + self.decoder_pos_embed_learned
        for b in self.decoder_blocks:
            x = b(x)
        x = self.decoder_norm(x)
        x = x[:, self.buffer_size:]
        return x + self.diffusion_pos_embed_learned

    def transformer(self, tokens, mask, class_embedding):
        """Encoder + decoder: z [B, L, d_dec]."""
        return self.forward_mae_decoder(self.forward_mae_encoder(tokens, mask, class_embedding), mask)

    # -- training (MAR.forward) ---------------------------------------------

    def mask_ratio(self):
        """Left-half truncated normal at 1.0, std 0.25, cut at mask_ratio_min."""
        import scipy.stats as stats
        if not hasattr(self, "_mask_gen"):
            self._mask_gen = stats.truncnorm((self.mask_ratio_min - 1.0) / 0.25, 0, loc=1.0, scale=0.25)
        return self._mask_gen.rvs(1)[0]

    def random_masking(self, bsz, orders):
        n = int(np.ceil(self.seq_len * self.mask_ratio()))
        mask = torch.zeros(bsz, self.seq_len)
        return torch.scatter(mask, dim=-1, index=orders[:, :n], src=torch.ones(bsz, self.seq_len))

    def forward(self, imgs, labels):
        """Training loss for a batch of images in the tokenizer space ([-1, 1] pixels for
        the patch tokenizer). Uses numpy (orders, mask ratio) and torch (label drop,
        timesteps, noise) global RNGs as the official training does."""
        class_embedding = self.class_emb(labels)
        x = self.patchify(imgs)
        gt = x.clone().detach()
        orders = Randomness().orders(x.size(0), self.seq_len)
        mask = self.random_masking(x.size(0), orders)
        drop = (torch.rand(x.size(0)) < self.label_drop_prob) if self.training else None
        z = self.forward_mae_decoder(self.forward_mae_encoder(x, mask, class_embedding, drop), mask)
        bsz, seq_len, _ = gt.shape
        m = self.diffusion_batch_mul
        target = gt.reshape(bsz * seq_len, -1).repeat(m, 1)
        z = z.reshape(bsz * seq_len, -1).repeat(m, 1)
        mask = mask.reshape(bsz * seq_len).repeat(m)
        return self.diffloss(target=target, z=z, mask=mask)

    # -- sampling (MAR_DiSA MAR.sample_tokens) ------------------------------

    @torch.no_grad()
    def sample_tokens(self, bsz, num_iter=64, cfg=1.0, cfg_schedule="linear", labels=None,
                      temperature=1.0, diff_sampler="default", upper_steps=50, lower_steps=5,
                      annealing="linear", rng=None, dtype=torch.float32, trace=None, dpm_order=1,
                      budget=None, signal="cfg"):
        """Sample token latents and return them unpatchified [B, C, H, W].

        diff_sampler: "default" (upper_steps every AR step, no clip), "disa" (annealed
        count, 950 clip), "ddim" (annealed count, ddimN spacing, 980 clip, with CFG as
        MAR_DiSA does), "dpm_solver" / "dpm_solver++" (annealed count, multistep of
        dpm_order, guided with CFG). annealing "adaptive" (not with "default"): the counts
        per token from `signal` under `budget` (DiffLoss.sample_adaptive). rng: Randomness
        (default: fresh, not recording). trace: optional dict; receives per-step lists
        mask_len, n_steps (adaptive: the most evaluations of a row), cfg, n_pred and
        tokens, and for adaptive the counts "n" and "raw"."""
        rng = rng or Randomness()
        adaptive = annealing == "adaptive" and diff_sampler != "default"
        if adaptive:
            steps = [upper_steps] * num_iter
            states = [ad.State() for _ in range(bsz)]
            for st in states:
                st.L = self.seq_len
        else:
            steps = gd.steps_for_sampler(num_iter, diff_sampler, upper_steps, lower_steps,
                                         "linear" if annealing == "adaptive" else annealing)
        mask = torch.ones(bsz, self.seq_len)
        tokens = torch.zeros(bsz, self.seq_len, self.token_embed_dim, dtype=dtype)
        orders = rng.orders(bsz, self.seq_len)
        guided = not cfg == 1.0
        for step in range(num_iter):
            cur_tokens = tokens.clone()
            if labels is not None:
                class_embedding = self.class_emb(labels)
            else:
                class_embedding = self.fake_latent.repeat(bsz, 1)
            if guided:
                tokens = torch.cat([tokens, tokens], dim=0)
                class_embedding = torch.cat([class_embedding, self.fake_latent.repeat(bsz, 1)], dim=0)
                mask = torch.cat([mask, mask], dim=0)
            z = self.transformer(tokens, mask, class_embedding)

            # next mask ratio as MaskGIT; float64 cos, floor, then float32 tensors as official
            mask_ratio = np.cos(math.pi / 2.0 * (step + 1) / num_iter)
            mask_len = torch.Tensor([np.floor(self.seq_len * mask_ratio)])
            mask_len = torch.maximum(torch.Tensor([1]),
                                     torch.minimum(torch.sum(mask, dim=-1, keepdim=True) - 1, mask_len))
            mask_next = mask_by_order(mask_len[0], orders, bsz, self.seq_len)
            if step >= num_iter - 1:
                mask_to_pred = mask[:bsz].bool()
            else:
                mask_to_pred = torch.logical_xor(mask[:bsz].bool(), mask_next.bool())
            mask = mask_next
            if guided:
                mask_to_pred = torch.cat([mask_to_pred, mask_to_pred], dim=0)

            z = z[mask_to_pred.nonzero(as_tuple=True)]
            if cfg_schedule == "linear":
                cfg_iter = 1 + (cfg - 1) * (self.seq_len - mask_len[0]) / self.seq_len
            elif cfg_schedule == "constant":
                cfg_iter = cfg
            else:
                raise NotImplementedError(cfg_schedule)
            if adaptive:
                P = int(mask_to_pred[0].sum().item())
                sampled = self.diffloss.sample_adaptive(z, temperature, cfg_iter, diff_sampler, rng, bsz, P,
                                                        lower_steps, upper_steps, budget, signal, states,
                                                        dpm_order, trace)
                evals = max(self.diffloss.dpm_plan(n, diff_sampler, dpm_order).steps if diff_sampler in dpm.SAMPLER_ALGO
                            else self.diffloss.tables(n, diff_sampler).num_timesteps for n in trace["n"][-1]) \
                    if trace is not None else 0
            else:
                sampled = self.diffloss.sample(z, temperature, cfg_iter, steps[step], diff_sampler, rng, dpm_order)
                evals = steps[step]
            if guided:
                sampled, _ = sampled.chunk(2, dim=0)
                mask_to_pred, _ = mask_to_pred.chunk(2, dim=0)
            cur_tokens[mask_to_pred.nonzero(as_tuple=True)] = sampled
            tokens = cur_tokens.clone()
            if trace is not None:
                trace.setdefault("mask_len", []).append(int(mask_len[0].item()))
                trace.setdefault("n_steps", []).append(int(evals))
                trace.setdefault("cfg", []).append(float(torch.as_tensor(cfg_iter, dtype=torch.float32).reshape(-1)[0]))
                trace.setdefault("n_pred", []).append(int(mask_to_pred[0].sum().item()))
                trace.setdefault("tokens", []).append(tokens.clone())
        return self.unpatchify(tokens)


# ----------------------------------------------------------------------------
# export

FORMAT = "disa-mar-1"


def export_config(model, tokenizer, extra=None):
    cfg = {"format": FORMAT}
    cfg.update(model.cfg)
    cfg["tokenizer"] = tokenizer
    if extra:
        cfg.update(extra)
    return cfg


def export_safetensors(path, state_dict, config, dtype="f16", extra_metadata=None):
    """Write `state_dict` (official names) to `path` as F16 or F32, with
    __metadata__["config"] = JSON config. Parameters are stored in float32/float16
    exactly as named; nothing is renamed or fused."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import stio
    np_dt = {"f16": np.float16, "f32": np.float32}[dtype]
    tensors = {}
    for k, v in state_dict.items():
        a = v.detach().cpu().float().numpy()
        if np_dt is np.float16 and np.abs(a).max(initial=0) > 65504:
            raise ValueError(f"{k}: value exceeds float16 range; export with dtype f32")
        tensors[k] = a.astype(np_dt)
    meta = {"config": json.dumps(config, separators=(",", ":"))}
    if extra_metadata:
        meta.update(extra_metadata)
    stio.save_file(path, tensors, meta)


def model_from_config(cfg, **kw):
    keys = ("img_size", "vae_stride", "patch_size", "vae_embed_dim", "encoder_embed_dim", "encoder_depth",
            "encoder_num_heads", "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio",
            "buffer_size", "class_num", "diffloss_d", "diffloss_w", "norm_eps")
    args = {k: cfg[k] for k in keys if k in cfg}
    args.update(kw)
    return MAR(**args)


def load_safetensors(path, **kw):
    """Model (float32, eval mode) from an exported file."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import stio
    tensors, meta = stio.load_file(path)
    cfg = json.loads(meta["config"])
    m = model_from_config(cfg, attn_dropout=0.0, proj_dropout=0.0, **kw)
    m.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()})
    return m.eval(), cfg
