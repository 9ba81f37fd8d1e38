"""Goldens for the KL-16 decoder and the image conversion: tests/golden/vae_*.safetensors,
plus the small third-party files the image unit tests read (tests/data/).

The reference decoder below is written from LTH14/mar models/vae.py (AutoencoderKL.decode
= Decoder(post_quant_conv(z)), ResnetBlock without temb, AttnBlock, nearest x2 + 3x3
Upsample, GroupNorm(32, eps 1e-6), swish) with the same module names, so its state_dict
is the official checkpoint's (`post_quant_conv.*`, `decoder.*`). Expected images are
computed in float64 from the float32 parameters and inputs, then rounded once.

Cases (tests/golden/README.md, section VAE):
  vae_decode_small       ch 32, ch_mult (1, 2), 1 res block, z 4, two 8x8 latents -> 16x16,
                         weights stored (F16)
  vae_decode_tiny_rect   ch 8, ch_mult (1, 2, 4), 2 res blocks, 8 groups, embed 3 -> z 5,
                         one 3x5 latent -> 12x20, weights stored (F16)
  vae_decode_kl16_256    the real KL-16 shape (16x16x16 -> 3x256x256), weights from param_gen
  vae_image_to_u8        engine_mar.py's float -> uint8 chain on values at rounding edges

Run with Debian's PyTorch: /usr/bin/python3 tools/golden/vae.py  (or make goldens)
"""
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import stio  # noqa: E402

ROOT = os.path.join(HERE, '..', '..')
OUT_DIR = os.path.join(ROOT, 'tests', 'golden')
DATA_DIR = os.path.join(ROOT, 'tests', 'data')
GENERATOR = 'tools/golden/vae.py'

KL16 = {"format": "disa-vae-1", "embed_dim": 16, "z_channels": 16, "ch": 128, "ch_mult": [1, 1, 2, 2, 4],
        "num_res_blocks": 2, "out_ch": 3, "resolution": 256, "num_groups": 32, "eps": 1e-6,
        "latent_scale": 0.2325}


# ----------------------------------------------------------------------------
# reference decoder (module names = official state_dict names)

def group_norm(c, cfg):
    return nn.GroupNorm(cfg["num_groups"], c, eps=cfg["eps"], affine=True)


def swish(x):
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, cfg):
        super().__init__()
        self.norm1 = group_norm(cin, cfg)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = group_norm(cout, cfg)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        # A 1x1 projection carries the skip path across a width change.
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    def __init__(self, c, cfg):
        super().__init__()
        self.norm = group_norm(c, cfg)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, hh, ww = x.shape
        t = self.norm(x)
        q = self.q(t).flatten(2).transpose(1, 2)           # [b, hw, c]
        k = self.k(t).flatten(2)                           # [b, c, hw]
        v = self.v(t).flatten(2)                           # [b, c, hw]
        att = torch.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)  # [b, query, key]
        o = torch.bmm(v, att.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(o)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, mult, nrb = cfg["ch"], cfg["ch_mult"], cfg["num_res_blocks"]
        top = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg["z_channels"], top, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(top, top, cfg)
        self.mid.attn_1 = AttnBlock(top, cfg)
        self.mid.block_2 = ResnetBlock(top, top, cfg)
        self.up = nn.ModuleList()
        for i in range(len(mult)):  # up[0] is the finest level, as in the official list
            cin = ch * mult[min(i + 1, len(mult) - 1)]
            cout = ch * mult[i]
            level = nn.Module()
            level.block = nn.ModuleList(
                [ResnetBlock(cin if j == 0 else cout, cout, cfg) for j in range(nrb + 1)])
            if i > 0:
                level.upsample = Upsample(cout)
            self.up.append(level)
        self.norm_out = group_norm(ch * mult[0], cfg)
        self.conv_out = nn.Conv2d(ch * mult[0], cfg["out_ch"], 3, padding=1)

    def features(self, z):
        """Everything before conv_out (used to pick the conv_out scale)."""
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for i in reversed(range(len(self.up))):
            for blk in self.up[i].block:
                h = blk(h)
            if i > 0:
                h = self.up[i].upsample(h)
        return swish(self.norm_out(h))

    def forward(self, z):
        return self.conv_out(self.features(z))


class KLDecode(nn.Module):
    """AutoencoderKL.decode(tokens / latent_scale) with only the decoding half."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.post_quant_conv = nn.Conv2d(cfg["embed_dim"], cfg["z_channels"], 1)
        self.decoder = Decoder(cfg)

    def forward(self, tokens):
        return self.decoder(self.post_quant_conv(tokens / self.cfg["latent_scale"]))


def full_cfg(**kw):
    c = dict(KL16)
    c.update(kw)
    if "z_channels" not in kw:
        c["z_channels"] = c["embed_dim"]
    return c


def weight_scale(name, shape):
    """Uniform half-width keeping activations O(1): fan-in preserving for convs, small
    biases, GroupNorm gains in (-1, 1)."""
    if name.endswith(".bias"):
        return 0.05
    if len(shape) == 1:   # GroupNorm weight
        return 1.0
    fan_in = shape[1] * shape[2] * shape[3]
    return math.sqrt(3.0 / fan_in)


def load_f32(model, params):
    """Set the module's parameters to the given float32 arrays, widened to float64."""
    sd = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)).double() for k, v in params.items()}
    model.double()
    model.load_state_dict(sd, strict=True)


def save(name, tensors, config, description, rtol, atol, param_gen=None, op="vae_decode"):
    meta = {"op": op, "config": json.dumps(config, sort_keys=True), "rtol": repr(rtol), "atol": repr(atol),
            "generator": GENERATOR, "description": description}
    if param_gen:
        meta["param_gen"] = json.dumps(param_gen, sort_keys=True)
    path = os.path.join(OUT_DIR, f"vae_{name}.safetensors")
    stio.save_file(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def to_u8(img32):
    """engine_mar.py: (x + 1) / 2 in torch float32, * 255, clip, np.round, uint8, HWC."""
    t = (torch.from_numpy(img32) + 1) / 2
    a = np.round(np.clip(t.numpy() * 255, 0, 255)).astype(np.uint8)
    return a.transpose(0, 2, 3, 1)


# ----------------------------------------------------------------------------
# cases

def case_stored(name, cfg, B, h, w, seed, description):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = KLDecode(cfg)
    params = {}
    for k, v in model.state_dict().items():
        a = weight_scale(k, tuple(v.shape))
        # F16 halves the file; the reference uses the same rounded values (widened), and
        # the runner widens them too, so the comparison stays exact to float32.
        params[k] = rng.uniform(-a, a, size=tuple(v.shape)).astype(np.float16)
    load_f32(model, params)
    tokens = rng.standard_normal((B, cfg["embed_dim"], h, w)).astype(np.float32)
    with torch.no_grad():
        img = model(torch.from_numpy(tokens).double()).numpy().astype(np.float32)
    t = {"in.tokens": tokens}
    t.update({"param." + k: v for k, v in params.items()})
    t["out.img"] = img
    t["out.u8"] = to_u8(img).astype(np.int64)
    save(name, t, {"vae": cfg, "u8_min_equal": 0.999}, description, rtol=1e-4, atol=0.0)
    print(f"  image range [{img.min():.3f}, {img.max():.3f}], std {img.std():.3f}")


def case_kl16():
    cfg = full_cfg()
    model = KLDecode(cfg)
    gen, params = {}, {}
    for i, (k, v) in enumerate(model.state_dict().items()):
        shape = list(v.shape)
        a = weight_scale(k, tuple(shape))
        gen["param." + k] = {"seed": 1000 + i, "scale": a, "shape": shape}
        params[k] = stio.dgen(1000 + i, shape, a)
    load_f32(model, params)
    rng = np.random.default_rng(2406)
    tokens = rng.standard_normal((1, 16, 16, 16)).astype(np.float32)
    with torch.no_grad():
        z = model.post_quant_conv(torch.from_numpy(tokens).double() / cfg["latent_scale"])
        feat = model.decoder.features(z)
        # Pick conv_out's scale so the image spans about [-1.5, 1.5] (std 0.6): pixels
        # then cover the whole uint8 range and some clip, as real decodes do.
        w0 = model.decoder.conv_out.weight.clone()
        std = F.conv2d(feat, w0, None, padding=1).std().item()
        key = "param.decoder.conv_out.weight"
        a = float(f"{gen[key]['scale'] * 0.6 / std:.6g}")
        gen[key]["scale"] = a
        w = torch.from_numpy(stio.dgen(gen[key]["seed"], gen[key]["shape"], a)).double()
        model.decoder.conv_out.weight.copy_(w)
        img = model.decoder.conv_out(feat).numpy().astype(np.float32)
    n = sum(int(np.prod(g["shape"])) for g in gen.values())
    save("kl16_256", {"in.tokens": tokens, "out.img": img},
         {"vae": cfg, "u8_min_equal": 0.999},
         f"KL-16 decoder at full size ({n} generated parameters), 16x16x16 latent -> 3x256x256",
         rtol=1e-4, atol=0.0, param_gen=gen)
    print(f"  image range [{img.min():.3f}, {img.max():.3f}], std {img.std():.3f}")


def case_image_to_u8():
    rng = np.random.default_rng(7)
    # Values whose (x+1)/2*255 lands exactly on or next to k + 0.5 in float32, the ends
    # of the range, signed zeros, values far outside [-1, 1], and plain random ones.
    edges = []
    for k in range(-2, 257):
        x0 = np.float32((k + 0.5) / 255.0 * 2.0 - 1.0)
        for d in range(-3, 4):
            y = x0
            for _ in range(abs(d)):
                y = np.nextafter(y, np.float32(np.inf if d > 0 else -np.inf), dtype=np.float32)
            edges.append(y)
    edges += [-1.0, 1.0, 0.0, -0.0, -1e-8, 1e-8, -3.0, 3.0, 1e30, -1e30, np.inf, -np.inf]
    x = np.array(edges, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        v = ((torch.from_numpy(x) + 1) / 2).numpy() * 255
        exact = int(np.sum(np.isfinite(v) & (v % 1 == 0.5)))
    n = 3 * 64 * 64
    total = -(-len(x) // n) * n
    x = np.concatenate([x, rng.uniform(-1.3, 1.3, size=total - len(x)).astype(np.float32)])
    x = x.reshape(-1, 3, 64, 64)
    u8 = to_u8(x)
    save("image_to_u8", {"in.x": x, "out.u8": u8.astype(np.int64)}, {},
         f"engine_mar.py float -> uint8 on {x.size} values incl. {exact} exact half-way points",
         rtol=0.0, atol=0.0, op="image_to_u8")


# ----------------------------------------------------------------------------
# third-party files for tests/unit/test_image.c and tests/e2e/image_tools.sh

def data_files():
    from PIL import Image, PngImagePlugin
    os.makedirs(os.path.join(DATA_DIR, "png"), exist_ok=True)
    # A results folder as numpy + PIL would leave it: RGB 8x6 images with a "class" text.
    # Pixel (y, x, ch) of image i = (i * 37 + y * 11 + x * 5 + ch * 3) % 256.
    for i, cls in [(0, 3), (1, 1), (2, 3), (3, 0), (7, 1)]:
        y, x, c = np.meshgrid(np.arange(6), np.arange(8), np.arange(3), indexing="ij")
        a = ((i * 37 + y * 11 + x * 5 + c * 3) % 256).astype(np.uint8)
        info = PngImagePlugin.PngInfo()
        info.add_text("class", str(cls))
        info.add_text("index", str(i))
        Image.fromarray(a, "RGB").save(os.path.join(DATA_DIR, "png", f"{i:05d}.png"), pnginfo=info)
    # Files the reader must convert: 16-bit gray, palette, RGBA; value formulas in the test.
    misc = os.path.join(DATA_DIR, "png_misc")
    os.makedirs(misc, exist_ok=True)
    g16 = (np.arange(5 * 4).reshape(4, 5) * 3000).astype(np.uint16)
    Image.fromarray(g16, "I;16").save(os.path.join(misc, "gray16.png"))
    pal = Image.fromarray((np.arange(12).reshape(3, 4) % 4).astype(np.uint8), "P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    pal.save(os.path.join(misc, "palette.png"))
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 128
    Image.fromarray(rgba, "RGBA").save(os.path.join(misc, "rgba.png"))
    # .npz written by numpy, stored and deflated: mu[i] = i / 4 - 1 (8), sigma = mu mu^T + I,
    # arr_0[n, y, x, c] = (idx * 7) % 256 over the flat index (2, 4, 4, 3).
    mu = np.arange(8, dtype=np.float64) / 4 - 1
    sigma = np.outer(mu, mu) + np.eye(8)
    arr = ((np.arange(2 * 4 * 4 * 3) * 7) % 256).astype(np.uint8).reshape(2, 4, 4, 3)
    os.makedirs(os.path.join(DATA_DIR, "npz"), exist_ok=True)
    np.savez(os.path.join(DATA_DIR, "npz", "numpy_stored.npz"), mu=mu, sigma=sigma, arr_0=arr)
    np.savez_compressed(os.path.join(DATA_DIR, "npz", "numpy_deflated.npz"), mu=mu, sigma=sigma, arr_0=arr)
    print(f"wrote test data under {DATA_DIR}")


def main():
    torch.set_num_threads(1)
    case_image_to_u8()
    case_stored("decode_small", full_cfg(embed_dim=4, ch=32, ch_mult=[1, 2], num_res_blocks=1, resolution=16),
                2, 8, 8, 11, "reduced KL decoder ch 32 x (1,2), 1 res block, z 4: two 8x8 latents -> 3x16x16")
    case_stored("decode_tiny_rect",
                full_cfg(embed_dim=3, z_channels=5, ch=8, ch_mult=[1, 2, 4], num_res_blocks=2, num_groups=8,
                         resolution=12),
                1, 3, 5, 12, "ch 8 x (1,2,4), 2 res blocks, 8 groups, embed 3 -> z 5: 3x5 latent -> 3x12x20")
    case_kl16()
    data_files()


if __name__ == "__main__":
    main()
