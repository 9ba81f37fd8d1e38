"""Golden cases for the src/nn kernels: tests/golden/nn_<op>_<case>.safetensors.

Each case stores float32 inputs/parameters and the expected outputs computed by PyTorch
in float64 from those float32 values (rounded to float32 once), so the error the parity
runner reports is the C code's own. The PyTorch calls mirrored are named per op below;
tests/golden/README.md describes the file layout and the comparison.

Run with Debian's PyTorch: /usr/bin/python3 tools/golden/nn_kernels.py  (or make goldens)
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import stio  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'golden')
RTOL, ATOL = 1e-5, 1e-7

_rng = np.random.default_rng(20240611)
_written = []


def rnd(*shape, lo=-1.0, hi=1.0):
    return _rng.uniform(lo, hi, size=shape).astype(np.float32)


def d64(a):
    """float32 numpy -> float64 torch tensor (exact widening)."""
    return torch.from_numpy(np.asarray(a, dtype=np.float32)).double()


def f32(t):
    return t.detach().numpy().astype(np.float32)


def save(op, case, tensors, config, description, rtol=RTOL, atol=ATOL, param_gen=None):
    meta = {"op": op, "config": json.dumps(config, sort_keys=True), "rtol": repr(rtol),
            "atol": repr(atol), "generator": "tools/golden/nn_kernels.py",
            "description": description}
    if param_gen:
        meta["param_gen"] = json.dumps(param_gen, sort_keys=True)
    path = os.path.join(OUT_DIR, f"nn_{op}_{case}.safetensors")
    stio.save_file(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)
    _written.append(path)


# ----------------------------------------------------------------------------
# linear: torch.nn.functional.linear

def gen_linear():
    for case, (n, cin, cout, bias) in {
        "small": (7, 13, 5, True),
        "nobias": (3, 33, 17, False),
        "wide": (17, 96, 131, True),
    }.items():
        x = rnd(n, cin)
        w = rnd(cout, cin) / np.float32(math.sqrt(cin))
        t = {"in.x": x, "param.weight": w}
        b = None
        if bias:
            b = rnd(cout)
            t["param.bias"] = b
        y = F.linear(d64(x), d64(w), d64(b) if bias else None)
        t["out.y"] = f32(y)
        save("linear", case, t, {}, f"Linear({cin},{cout}, bias={bias}) on {n} rows")


# ----------------------------------------------------------------------------
# layernorm: torch.nn.functional.layer_norm over the last axis

def gen_layernorm():
    cases = {
        "affine": (9, 37, 1e-6, True, True, 0.0, "affine, eps 1e-6 (MAR blocks)"),
        "noaffine": (5, 64, 1e-6, False, False, 0.0, "no affine (DiffLoss FinalLayer)"),
        "weightonly": (4, 23, 1e-5, True, False, 0.0, "weight without bias, eps 1e-5"),
        "offset": (6, 45, 1e-6, True, True, 100.0, "rows offset by 100: variance cancellation"),
        "c1": (5, 1, 1e-6, True, True, 0.0, "C = 1: output is the bias"),
    }
    for case, (n, c, eps, hw, hb, off, desc) in cases.items():
        x = rnd(n, c, lo=-2, hi=2) + np.float32(off)
        t = {"in.x": x}
        w = b = None
        if hw:
            w = rnd(c, lo=0.5, hi=1.5)
            t["param.weight"] = w
        if hb:
            b = rnd(c)
            t["param.bias"] = b
        y = F.layer_norm(d64(x), (c,), d64(w) if hw else None, d64(b) if hb else None, eps)
        t["out.y"] = f32(y)
        save("layernorm", case, t, {"eps": eps}, f"LayerNorm({c}) on {n} rows, {desc}")


# ----------------------------------------------------------------------------
# gelu / silu / relu: F.gelu (approximate='none'), F.silu, F.relu

def gen_activations():
    x = rnd(7, 33, lo=-8, hi=8)
    # Saturation, zeros and tiny values in the first row.
    x[0, :6] = [0.0, -0.0, 30.0, -30.0, 1e-30, -6.0]
    for op, fn in (("gelu", F.gelu), ("silu", F.silu), ("relu", F.relu)):
        save(op, "mixed", {"in.x": x, "out.y": f32(fn(d64(x)))}, {},
             f"{op} on [7,33] values in [-8,8] plus 0, -0, +-30, 1e-30")
    x2 = rnd(3, 5, 11, lo=-3, hi=3)
    save("gelu", "small", {"in.x": x2, "out.y": f32(F.gelu(d64(x2)))}, {},
         "gelu on a 3-d tensor [3,5,11] in [-3,3]")
    save("silu", "small", {"in.x": x2, "out.y": f32(F.silu(d64(x2)))}, {},
         "silu on a 3-d tensor [3,5,11] in [-3,3]")


# ----------------------------------------------------------------------------
# softmax: torch.softmax(dim=-1)

def gen_softmax():
    cases = {
        "small": (rnd(5, 17, lo=-4, hi=4), "random logits [5,17]"),
        "rows65": (rnd(13, 65, lo=-10, hi=10), "13 rows of 65 (attention-like)"),
        "large": (rnd(3, 9, lo=-1e4, hi=1e4), "logits of magnitude 1e4 (overflow without max-subtract)"),
        "c1": (rnd(4, 1, lo=-100, hi=100), "C = 1: all ones"),
    }
    for case, (x, desc) in cases.items():
        save("softmax", case, {"in.x": x, "out.y": f32(torch.softmax(d64(x), dim=-1))}, {}, desc)


# ----------------------------------------------------------------------------
# attention: timm Attention.forward (qkv Linear, per-head softmax(q k^T * hd^-0.5) v, proj)

def timm_attention(x, wqkv, bqkv, wproj, bproj, heads):
    B, T, d = x.shape
    hd = d // heads
    qkv = F.linear(x, wqkv, bqkv).reshape(B, T, 3, heads, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = (q @ k.transpose(-2, -1)) * hd ** -0.5
    attn = attn.softmax(dim=-1)
    y = (attn @ v).transpose(1, 2).reshape(B, T, d)
    return F.linear(y, wproj, bproj)


def gen_attention():
    for case, (B, T, d, heads) in {
        "b2t9d24h3": (2, 9, 24, 3),
        "b1t17d20h5": (1, 17, 20, 5),
        "b3t5d16h1": (3, 5, 16, 1),
    }.items():
        x = rnd(B, T, d, lo=-2, hi=2)
        s = np.float32(1 / math.sqrt(d))
        wqkv, bqkv = rnd(3 * d, d) * s, rnd(3 * d) * np.float32(0.1)
        wproj, bproj = rnd(d, d) * s, rnd(d) * np.float32(0.1)
        y = timm_attention(d64(x), d64(wqkv), d64(bqkv), d64(wproj), d64(bproj), heads)
        save("attention", case,
             {"in.x": x, "param.qkv.weight": wqkv, "param.qkv.bias": bqkv,
              "param.proj.weight": wproj, "param.proj.bias": bproj, "out.y": f32(y)},
             {"num_heads": heads},
             f"timm Attention(dim={d}, num_heads={heads}, qkv_bias) on [{B},{T},{d}]")


# ----------------------------------------------------------------------------
# groupnorm: torch.nn.functional.group_norm

def gen_groupnorm():
    for case, (n, c, h, w, g, eps, off, desc) in {
        "g4": (2, 12, 5, 7, 4, 1e-6, 0.0, "4 groups of 3 channels, eps 1e-6 (KL-16)"),
        "g1": (1, 6, 3, 9, 1, 1e-5, 0.0, "1 group (layer norm over C,H,W), eps 1e-5"),
        "instance": (2, 5, 4, 3, 5, 1e-6, 0.0, "groups = C (instance norm)"),
        "offset": (1, 8, 7, 5, 2, 1e-6, 50.0, "inputs offset by 50: variance cancellation"),
    }.items():
        x = rnd(n, c, h, w, lo=-2, hi=3) + np.float32(off)
        wt, b = rnd(c, lo=0.5, hi=1.5), rnd(c)
        y = F.group_norm(d64(x), g, d64(wt), d64(b), eps)
        save("groupnorm", case, {"in.x": x, "param.weight": wt, "param.bias": b, "out.y": f32(y)},
             {"num_groups": g, "eps": eps}, f"GroupNorm({g},{c}) on [{n},{c},{h},{w}], {desc}")


# ----------------------------------------------------------------------------
# conv2d: torch.nn.functional.conv2d (zero padding, groups 1)

def gen_conv2d():
    cases = {
        # name: (N, Cin, H, W, Cout, kh, kw, stride, padding, bias, description)
        "k3s1p1": (2, 3, 7, 9, 5, 3, 3, (1, 1), (1, 1), True, "3x3 stride 1 pad 1 (KL-16 conv)"),
        "k3s2p1": (2, 4, 9, 8, 6, 3, 3, (2, 2), (1, 1), True, "3x3 stride 2 pad 1"),
        "k3s2p0": (1, 3, 13, 11, 8, 3, 3, (2, 2), (0, 0), False, "3x3 stride 2 unpadded (Inception stem)"),
        "k1x3p01": (1, 5, 6, 7, 4, 1, 3, (1, 1), (0, 1), True, "1x3 pad (0,1) (Inception E)"),
        "k3x1p10": (1, 5, 7, 6, 4, 3, 1, (1, 1), (1, 0), True, "3x1 pad (1,0) (Inception E)"),
        "k7x1p30": (1, 3, 9, 5, 2, 7, 1, (1, 1), (3, 0), True, "7x1 pad (3,0) (Inception C)"),
        "k5p2": (1, 3, 6, 7, 4, 5, 5, (1, 1), (2, 2), True, "5x5 pad 2 (Inception B)"),
        "k3x2s21": (2, 3, 9, 8, 3, 3, 2, (2, 1), (1, 0), True, "non-square 3x2, stride (2,1), pad (1,0)"),
        "k1": (2, 7, 5, 9, 6, 1, 1, (1, 1), (0, 0), True, "1x1 stride 1: plain GEMM path"),
        "k1nobias": (1, 16, 3, 5, 9, 1, 1, (1, 1), (0, 0), False, "1x1 without bias"),
        "k1s2": (1, 5, 7, 9, 3, 1, 1, (2, 2), (0, 0), True, "1x1 stride 2: im2col path"),
    }
    for case, (n, cin, h, w, cout, kh, kw, st, pad, bias, desc) in cases.items():
        x = rnd(n, cin, h, w)
        wt = rnd(cout, cin, kh, kw) / np.float32(math.sqrt(cin * kh * kw))
        t = {"in.x": x, "param.weight": wt}
        b = None
        if bias:
            b = rnd(cout)
            t["param.bias"] = b
        y = F.conv2d(d64(x), d64(wt), d64(b) if bias else None, stride=st, padding=pad)
        t["out.y"] = f32(y)
        save("conv2d", case, t, {"stride": list(st), "padding": list(pad)},
             f"Conv2d({cin},{cout},({kh},{kw})) on [{n},{cin},{h},{w}]: {desc}")

    # Generated weights (README "param_gen"): only the recipe is stored.
    n, cin, h, w, cout = 1, 32, 9, 11, 64
    wshape = [cout, cin, 3, 3]
    wscale = 1.0 / math.sqrt(cin * 9)
    wt = stio.dgen(7001, wshape, wscale)
    b = rnd(cout, lo=-0.1, hi=0.1)
    x = rnd(n, cin, h, w)
    y = F.conv2d(d64(x), d64(wt), d64(b), stride=1, padding=1)
    save("conv2d", "gen64x32", {"in.x": x, "param.bias": b, "out.y": f32(y)},
         {"stride": [1, 1], "padding": [1, 1]},
         f"Conv2d({cin},{cout},3,pad 1) on [{n},{cin},{h},{w}] with param_gen weights",
         param_gen={"param.weight": {"seed": 7001, "scale": wscale, "shape": wshape}})


# ----------------------------------------------------------------------------
# upsample / pooling / resize

def gen_resample():
    for case, shape in {"n2c3h5w7": (2, 3, 5, 7), "n1c4h1w3": (1, 4, 1, 3)}.items():
        x = rnd(*shape)
        y = F.interpolate(d64(x), scale_factor=2.0, mode="nearest")
        save("upsample_nearest2x", case, {"in.x": x, "out.y": f32(y)}, {},
             f"nearest x2 upsample of {list(shape)} (KL-16 Upsample)", rtol=0.0, atol=0.0)

    for case, (shape, k, s, p, cip, desc) in {
        "k3s1p1excl": ((2, 3, 7, 9), (3, 3), (1, 1), (1, 1), False, "3x3 s1 p1 without pad counts (Inception FID blocks)"),
        "k3s1p1incl": ((2, 3, 7, 9), (3, 3), (1, 1), (1, 1), True, "3x3 s1 p1 counting pads"),
        "k2x3s21p11": ((1, 2, 7, 6), (2, 3), (2, 1), (1, 1), False, "2x3 stride (2,1) pad 1 without pad counts"),
        "k3s2p1incl": ((1, 2, 6, 8), (3, 3), (2, 2), (1, 1), True, "3x3 s2 p1 counting pads, clipped last window"),
        "k3s2p0": ((1, 3, 9, 7), (3, 3), (2, 2), (0, 0), True, "3x3 stride 2 unpadded"),
    }.items():
        x = rnd(*shape)
        y = F.avg_pool2d(d64(x), k, s, p, ceil_mode=False, count_include_pad=cip)
        save("avgpool2d", case, {"in.x": x, "out.y": f32(y)},
             {"kernel": list(k), "stride": list(s), "padding": list(p),
              "count_include_pad": int(cip)}, f"avg_pool2d on {list(shape)}: {desc}")

    for case, (shape, k, s, p, lo, hi, desc) in {
        "k3s2": ((2, 3, 9, 11), (3, 3), (2, 2), (0, 0), -1, 1, "3x3 stride 2 (Inception stem, B, D)"),
        "k3s2p1neg": ((1, 2, 7, 8), (3, 3), (2, 2), (1, 1), -5, -1, "3x3 s2 p1 on negative inputs: pads are -inf"),
        "k2x3s12p1": ((1, 2, 5, 7), (2, 3), (1, 2), (1, 1), -3, 3, "2x3 stride (1,2) pad 1"),
    }.items():
        x = rnd(*shape, lo=lo, hi=hi)
        y = F.max_pool2d(d64(x), k, s, p)
        save("maxpool2d", case, {"in.x": x, "out.y": f32(y)},
             {"kernel": list(k), "stride": list(s), "padding": list(p)},
             f"max_pool2d on {list(shape)}: {desc}", rtol=0.0, atol=0.0)

    for case, shape in {"n2c5h7w9": (2, 5, 7, 9), "n1c3h8w8": (1, 3, 8, 8)}.items():
        x = rnd(*shape, lo=-1, hi=3)
        y = F.adaptive_avg_pool2d(d64(x), 1).reshape(shape[0], shape[1])
        save("adaptive_avgpool_1x1", case, {"in.x": x, "out.y": f32(y)}, {},
             f"adaptive_avg_pool2d(x, 1) of {list(shape)} (Inception pool3), out.y [N,C]")

    for case, (shape, oh, ow, desc) in {
        "up5x7to11x13": ((2, 3, 5, 7), 11, 13, "odd upscale"),
        "down13x11to5x4": ((1, 2, 13, 11), 5, 4, "odd downscale"),
        "mixed6x9to10x4": ((1, 3, 6, 9), 10, 4, "up in H, down in W"),
        "same5x7": ((1, 2, 5, 7), 5, 7, "same size (identity)"),
        "up1x1to3x5": ((1, 2, 1, 1), 3, 5, "1-pixel source"),
        "up31to299": ((1, 1, 31, 31), 299, 299, "to Inception's 299x299"),
    }.items():
        x = rnd(*shape)
        y = F.interpolate(d64(x), size=(oh, ow), mode="bilinear", align_corners=False)
        save("resize_bilinear", case, {"in.x": x, "out.y": f32(y)},
             {"out_h": oh, "out_w": ow},
             f"bilinear (align_corners=False) {list(shape)} -> {oh}x{ow}: {desc}")


def main():
    torch.set_grad_enabled(False)
    gen_linear()
    gen_layernorm()
    gen_activations()
    gen_softmax()
    gen_attention()
    gen_groupnorm()
    gen_conv2d()
    gen_resample()
    total = sum(os.path.getsize(p) for p in _written)
    print(f"nn_kernels.py: wrote {len(_written)} files, {total / 1e6:.2f} MB, in {os.path.normpath(OUT_DIR)}")


if __name__ == "__main__":
    main()
