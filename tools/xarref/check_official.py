#!/usr/bin/python3
"""Check tools/xarref against the official xAR code, bit for bit in float32 on the CPU.

    /usr/bin/python3 tools/xarref/check_official.py /path/to/DiSA/xAR_DiSA

The official code is imported from the given folder (its models/xar.py, rope.py,
sampler.py, flow.py); nothing of it is copied. What it needs and Debian's PyTorch 1.13
lacks is supplied at import: timm's SwiGLU (xarref's, same names), stand-ins for timm's
LayerScale / DropPath and for flash_attn (imported, unused), the two einops patterns
rope.py uses, F.scaled_dot_product_attention (xarref.model.sdpa) and Tensor.cuda (a
no-op). Then a small xAR with the official geometry (16 x 16 tokens of 16, 4 groups,
1000 classes) and random weights is built both ways and compared:

  - state_dict names, order and buffers (mask, RoPE tables) equal;
  - sample_tokens with the same torch seed (DiSA schedules, guidance on and off): equal
    tokens, so the cache, the mask, RoPE, the conditions and the Euler-Maruyama
    sampler agree;
  - euler_sampler driven over three AR steps: equal;
  - the training loss (forward) with the same seeds: equal.

Exit status 0 when everything is equal.
"""
import math
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from xarref import model as R  # noqa: E402
from xarref import sampler as RS  # noqa: E402


def install_stubs():
    timm = types.ModuleType("timm")
    layers = types.ModuleType("timm.layers")
    models = types.ModuleType("timm.models")
    vit = types.ModuleType("timm.models.vision_transformer")
    layers.SwiGLU = R.SwiGLU
    vit.LayerScale = type("LayerScale", (nn.Module,), {})
    vit.DropPath = type("DropPath", (nn.Module,), {})
    sys.modules.update({"timm": timm, "timm.layers": layers, "timm.models": models,
                        "timm.models.vision_transformer": vit})
    fa = types.ModuleType("flash_attn")
    fa.flash_attn_func = None
    sys.modules["flash_attn"] = fa

    ein = types.ModuleType("einops")

    def rearrange(x, pattern, r=None):
        if pattern == "... (d r) -> ... d r":
            return x.reshape(*x.shape[:-1], -1, r)
        if pattern == "... d r -> ... (d r)":
            return x.flatten(-2)
        raise NotImplementedError(pattern)

    def repeat(x, pattern, r=None):
        if pattern == "... n -> ... (n r)":
            return x.repeat_interleave(r, dim=-1)
        raise NotImplementedError(pattern)

    ein.rearrange, ein.repeat = rearrange, repeat
    sys.modules["einops"] = ein
    torch.Tensor.cuda = lambda self, *a, **k: self
    F.scaled_dot_product_attention = lambda q, k, v, attn_mask=None, dropout_p=0.0: R.sdpa(q, k, v, attn_mask,
                                                                                            dropout_p)


def main():
    if len(sys.argv) != 2 or not os.path.isfile(os.path.join(sys.argv[1], "models", "xar.py")):
        sys.exit(f"usage: {sys.argv[0]} PATH/TO/xAR_DiSA   (the folder holding models/xar.py)")
    install_stubs()
    sys.path.insert(0, sys.argv[1])
    import models.sampler as OS
    import models.xar as OX
    torch.set_num_threads(1)
    torch.manual_seed(0)
    kw = dict(img_size=256, vae_stride=16, patch_size=1, encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2,
              decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=2, mlp_ratio=4, vae_embed_dim=16,
              class_num=1000, attn_dropout=0.0, proj_dropout=0.0)
    off, ref = OX.xAR(**kw), R.xAR(**kw)
    ok = True

    def report(what, equal, extra=""):
        nonlocal ok
        ok &= bool(equal)
        print(f"{'OK ' if equal else 'DIFF'} {what}{extra}")

    sd = off.state_dict()
    report("state_dict names and order", list(sd) == list(ref.state_dict()), f" ({len(sd)} entries)")
    report("buffers (mask, RoPE tables)",
           all(torch.equal(v, sd[k]) for k, v in ref.state_dict().items() if R.is_buffer(k)))
    g = torch.Generator().manual_seed(5)
    weights = {}
    for k, v in sd.items():
        weights[k] = v if R.is_buffer(k) else \
            torch.randn(v.shape, generator=g) * (0.5 / math.sqrt(v.shape[-1]) if v.dim() == 2 else 0.2)
    off.load_state_dict(weights)
    ref.load_state_dict(weights)
    off.eval()
    ref.eval()
    labels = torch.tensor([3, 7, 999])
    for up, lo, cfg in ((6, 3, 2.7), (4, 4, 1.0), (5, 3, 1.5)):
        torch.manual_seed(11)
        with torch.no_grad():
            a = off.sample_tokens(cfg=cfg, label=labels, flow_upper_steps=up, flow_lower_steps=lo)
        torch.manual_seed(11)
        b = ref.sample_tokens(3, cfg=cfg, labels=labels, flow_upper_steps=up, flow_lower_steps=lo)
        report(f"sample_tokens {up}->{lo} cfg {cfg}", torch.equal(a, b), f" (max |diff| {(a - b).abs().max().item():.3g})")

    runs = []
    for m, fn in ((off, OS.euler_sampler), (ref, RS.euler_sampler)):
        torch.manual_seed(4)
        for blk in list(m.encoder_blocks) + list(m.decoder_blocks):
            blk.attn.k = blk.attn.v = None
        prev, outs = None, []
        for s in range(3):
            lat = torch.randn(3, 64, 16)
            with torch.no_grad():
                z = fn(m.sample_inference, lat, labels, s, condition=prev, num_steps=4 + s, cfg_scale=1 + 0.7 * s,
                       mask=m.mask[:, :, :64 * (s + 1), :64 * (s + 1)]).float()
            prev = z
            outs.append(z)
        runs.append(outs)
    report("euler_sampler over 3 AR steps", all(torch.equal(a, b) for a, b in zip(*runs)))

    off.train()
    ref.train()
    imgs, lab = torch.randn(2, 16, 16, 16), torch.tensor([1, 2])
    losses = []
    for m in (off, ref):
        torch.manual_seed(3)
        np.random.seed(3)
        losses.append(m(imgs, lab))
    report("training loss", torch.equal(*losses), f" ({losses[0].item():.6f})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
