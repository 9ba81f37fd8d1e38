"""Golden cases for the FID Inception-v3 (src/model/inception.c) and the sequential CNN
feature net (src/model/seqcnn.c): tests/golden/inception_*.safetensors.

The reference network is written here in plain PyTorch from the published architecture
(torch-fidelity's FeatureExtractorInceptionV3 / pytorch-fid's FIDInceptionV3: the TF
2015-12-05 graph with FID-specific A/C/E blocks) under the same state_dict names, so
tools/convert_inception.py output and these goldens name tensors alike. Its ~24M
parameters are not stored: each is listed in `param_gen` (seed, scale, optional offset)
and both sides regenerate it with stio.dgen / dgen_fill. Only the images and the
outputs are stored.

Numerics: the TF1 bilinear resize runs in float32 exactly as torch-fidelity's
interpolate_bilinear_2d_like_tensorflow1x (method 'slow') does on its default float32
path (it decides which pixels are blended, so it must not be done in float64); the rest
of the network runs in float64 from the float32 parameters and the result is rounded to
float32 once.

Run with Debian's PyTorch: /usr/bin/python3 tools/golden/inception.py  (or make goldens)
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import stio  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'golden')
_rng = np.random.default_rng(20151205)


def save(name, op, tensors, config, description, rtol, atol, param_gen=None):
    meta = {"op": op, "config": json.dumps(config, sort_keys=True), "rtol": repr(rtol), "atol": repr(atol),
            "generator": "tools/golden/inception.py", "description": description}
    if param_gen:
        meta["param_gen"] = json.dumps(param_gen, sort_keys=True, separators=(",", ":"))
    path = os.path.join(OUT_DIR, f"{name}.safetensors")
    stio.save_file(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)
    print(path)


# ----------------------------------------------------------------------------
# TF1 bilinear resize (align_corners=False), float32 step by step

def resize_tf1(x, oh, ow):
    """x: float32 tensor [N, C, H, W] -> [N, C, oh, ow]."""
    def taps(n_in, n_out):
        g = torch.arange(0, n_out, 1, dtype=torch.float32) * torch.tensor(n_in / n_out, dtype=torch.float32)
        lo = g.long()
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, g - lo.float()
    ylo, yhi, dy = taps(x.shape[2], oh)
    xlo, xhi, dx = taps(x.shape[3], ow)
    a00 = x[:, :, ylo, :][:, :, :, xlo]
    a01 = x[:, :, ylo, :][:, :, :, xhi]
    a10 = x[:, :, yhi, :][:, :, :, xlo]
    a11 = x[:, :, yhi, :][:, :, :, xhi]
    top = a00 + (a01 - a00) * dx.view(1, 1, 1, ow)
    bot = a10 + (a11 - a10) * dx.view(1, 1, 1, ow)
    return top + (bot - top) * dy.view(1, 1, oh, 1)


# ----------------------------------------------------------------------------
# the network

class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def avg3(x):  # TF average pool: padding not counted
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class BlockA(nn.Module):
    def __init__(self, cin, pf):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pf, kernel_size=1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(avg3(x))], 1)


class BlockB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, 2)], 1)


class BlockC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                  self.branch7x7dbl_5):
            d = m(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(avg3(x))], 1)


class BlockD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b7 = x
        for m in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = m(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, 2)], 1)


class BlockE(nn.Module):
    def __init__(self, cin, max_pool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        p = F.max_pool2d(x, 3, 1, 1) if self.max_pool else avg3(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(p)], 1)


class FIDInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, False)
        self.Mixed_7c = BlockE(2048, True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, img_u8):
        """uint8 [N, 3, H, W] -> (pool [N, 2048], logits_unbiased [N, 1008]) in the module's dtype."""
        x = resize_tf1(img_u8.float(), 299, 299).to(self.fc.weight.dtype)
        x = (x - 128) / 128
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, 2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, 2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        pool = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return pool, pool.mm(self.fc.weight.T)


def generated_params(model):
    """param_gen entries for every parameter / buffer of the state_dict, and the values.

    Convolutions get He-uniform scale sqrt(6 / fan_in) (activations keep their size
    through the ReLUs); BatchNorm gamma ~ 1 +- 0.25, beta, mean ~ +-0.1, var ~ 1 +- 0.5
    (the "offset" key keeps it positive); fc ~ sqrt(3 / 2048)."""
    pg, vals = {}, {}
    seed = 5000
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        shape = list(t.shape)
        off = None
        if name.endswith("conv.weight"):
            scale = math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
        elif name.endswith("bn.weight"):
            scale, off = 0.25, 1.0
        elif name.endswith("bn.running_var"):
            scale, off = 0.5, 1.0
        elif name.endswith(("bn.bias", "bn.running_mean")):
            scale = 0.1
        elif name == "fc.weight":
            scale = math.sqrt(3.0 / 2048)
        else:
            scale = 0.5
        e = {"seed": seed, "scale": scale, "shape": shape}
        if off is not None:
            e["offset"] = off
        pg["param." + name] = e
        vals[name] = torch.from_numpy(stio.dgen(seed, shape, scale, off))
        seed += 1
    return pg, vals


def gen_inception():
    torch.set_num_threads(1)
    model = FIDInception().eval()
    pg, vals = generated_params(model)
    model.load_state_dict(vals, strict=False)
    model = model.double()
    cases = [
        ("inception_v3_gray28", "28x28 grayscale (HWC, 1 channel) replicated to RGB, upsampled to 299", 1, 28, 28, 1),
        ("inception_v3_rgb64", "two 64x64 RGB images", 2, 64, 64, 3),
        ("inception_v3_rgb256", "one 256x256 RGB image (the ImageNet 256 case)", 1, 256, 256, 3),
    ]
    for name, desc, n, h, w, c in cases:
        img = _rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)
        # Smooth structure on top of noise so the resize blends real gradients.
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        img = ((img.astype(np.int32) // 2 + ((xx * 7 + yy * 3) % 128)[None, :, :, None]) % 256).astype(np.uint8)
        chw = np.repeat(img, 3, axis=3) if c == 1 else img
        chw = torch.from_numpy(np.ascontiguousarray(chw.transpose(0, 3, 1, 2)))
        with torch.no_grad():
            pool, logits = model(chw)
        t = {"in.image_hwc": img.astype(np.float16), "out.pool": pool.float().numpy(),
             "out.logits": logits.float().numpy()}
        print(f"  {name}: pool mean {pool.mean():.4f} max {pool.max():.4f}, logits std {logits.std():.4f}")
        save(name, "inception_v3", t, {"layout": "hwc"}, desc, rtol=1e-4, atol=1e-6, param_gen=pg)


def gen_resize():
    for name, (c, h, w, oh, ow) in {"inception_resize_28to299": (1, 28, 28, 299, 299),
                                    "inception_resize_256x8to299x5": (3, 256, 8, 299, 5),
                                    "inception_resize_odd": (3, 37, 53, 41, 29)}.items():
        img = _rng.integers(0, 256, size=(1, c, h, w), dtype=np.uint8)
        y = resize_tf1(torch.from_numpy(img).float(), oh, ow)
        save(name, "inception_resize", {"in.image": img[0].astype(np.float16), "out.y": y[0].numpy()},
             {"out_h": oh, "out_w": ow}, f"TF1 bilinear resize {h}x{w} -> {oh}x{ow} ({c} ch), float32 step by step",
             rtol=0.0, atol=0.0)


# ----------------------------------------------------------------------------
# sequential CNN (disa-classifier-1 layer list), small random instance

SEQ_LAYERS = [
    {"type": "conv2d", "name": "features.0", "cin": 1, "cout": 8, "k": 3, "stride": 1, "pad": 1},
    {"type": "relu"},
    {"type": "maxpool2d", "k": 2, "stride": 2},
    {"type": "conv2d", "name": "features.3", "cin": 8, "cout": 12, "k": 3, "stride": 2, "pad": 1},
    {"type": "relu"},
    {"type": "avgpool2d", "k": 3, "stride": 1, "pad": 1, "count_include_pad": 0},
    {"type": "flatten"},
    {"type": "linear", "name": "classifier.0", "in": 12 * 4 * 4, "out": 16},
    {"type": "relu"},
    {"type": "linear", "name": "classifier.3", "in": 16, "out": 10},
]


def run_seq(params, x):
    feat = None
    for i, L in enumerate(SEQ_LAYERS):
        t = L["type"]
        if t == "conv2d":
            x = F.conv2d(x, params[L["name"] + ".weight"], params[L["name"] + ".bias"], L["stride"], L["pad"])
        elif t == "relu":
            x = F.relu(x)
        elif t == "maxpool2d":
            x = F.max_pool2d(x, L["k"], L["stride"], L.get("pad", 0))
        elif t == "avgpool2d":
            x = F.avg_pool2d(x, L["k"], L["stride"], L.get("pad", 0),
                             count_include_pad=bool(L.get("count_include_pad", 1)))
        elif t == "flatten":
            x = x.flatten(1)
        elif t == "linear":
            x = F.linear(x, params[L["name"] + ".weight"], params[L["name"] + ".bias"])
        if i == 8:
            feat = x
    return feat, x


def gen_seqcnn():
    cfg = {"format": "disa-classifier-1", "input": {"channels": 1, "height": 14, "width": 14,
                                                    "from_uint8": "x / 255 * 2 - 1"},
           "layers": SEQ_LAYERS, "feature_layer": 8, "feature_dim": 16, "num_classes": 10}
    params, t = {}, {}
    for L in SEQ_LAYERS:
        if L["type"] == "conv2d":
            shapes = {"weight": (L["cout"], L["cin"], L["k"], L["k"]), "bias": (L["cout"],)}
            fan = L["cin"] * L["k"] * L["k"]
        elif L["type"] == "linear":
            shapes = {"weight": (L["out"], L["in"]), "bias": (L["out"],)}
            fan = L["in"]
        else:
            continue
        for k, sh in shapes.items():
            v = _rng.uniform(-1, 1, size=sh).astype(np.float32) * np.float32(math.sqrt(3.0 / fan))
            params[L["name"] + "." + k] = torch.from_numpy(v).double()
            t["param." + L["name"] + "." + k] = v
    img = _rng.integers(0, 256, size=(3, 1, 14, 14), dtype=np.uint8)
    # The input conversion in float32 as PyTorch does it (x / 255 * 2 - 1), then float64.
    x = (torch.from_numpy(img).float() / 255 * 2 - 1).double()
    feat, logits = run_seq(params, x)
    t["in.image"] = img.astype(np.float16)
    t["out.feat"] = feat.float().numpy()
    t["out.logits"] = logits.float().numpy()
    save("metrics_seqcnn_small", "seqcnn", t, cfg,
         "random 2-conv/2-linear sequential CNN from a disa-classifier-1 layer list (maxpool, avgpool, flatten)",
         rtol=1e-5, atol=1e-7)


if __name__ == "__main__":
    which = sys.argv[1:] or ["resize", "seqcnn", "inception"]
    for w in which:
        globals()["gen_" + w]()
