#!/usr/bin/python3
"""Test fixtures for tools/convert_mar.py (run by tests/e2e/converters.sh).

    /usr/bin/python3 tests/tools/mar_ckpt.py make DIR
    /usr/bin/python3 tests/tools/mar_ckpt.py check DIR

`make` builds a small random-init MAR (tools/marref/model.py, official state_dict names:
64x64 images, 16 tokens of 16, width 32, 4 heads, depth 2/1, head 2 x 48, 10 classes)
and writes checkpoints laid out as LTH14/mar util/misc.py: save_model writes them:

    ckpt.pth          model, model_ema (state_dict, EMA values != raw values), optimizer,
                      epoch, scaler, args (an argparse.Namespace, so weights_only loading
                      fails and the converter must fall back)
    ckpt_list.pth     model_ema as a list of tensors in model.parameters() order
    ckpt_noema.pth    model_ema None (training without EMA)
    ckpt_missing.pth  model_ema lacks decoder_blocks.0.attn.proj.weight
    ckpt_shape.pth    model_ema has diffloss.net.cond_embed.weight transposed
    ckpt_extra.pth    model_ema has an extra tensor 'vae.encoder.conv_in.weight'
    ref_ema.safetensors, ref_raw.safetensors
                      the same weights exported by marref.export_safetensors (F32) with the
                      true config: the C sampler must give identical tokens for them and
                      for the converted files.
    ref_bad.safetensors
                      lacks encoder_blocks.1.mlp.fc2.bias and has decoder_norm.weight [31]:
                      the C loader must name both.

`check` compares converted files (conv_*.safetensors, written by the e2e script) with
the checkpoint tensors: F32 bit for bit, F16/BF16 within their rounding, the config
equal to the model's.
"""
import argparse
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import stio  # noqa: E402
from marref import model as marref  # noqa: E402

CFG = dict(img_size=64, vae_stride=16, patch_size=1, vae_embed_dim=16, encoder_embed_dim=32, encoder_depth=2,
           encoder_num_heads=4, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4, mlp_ratio=4.0,
           buffer_size=8, class_num=10, diffloss_d=2, diffloss_w=48)


def build():
    torch.manual_seed(1234)
    m = marref.MAR(**CFG, attn_dropout=0.0, proj_dropout=0.0)
    raw = {k: v.clone() for k, v in m.state_dict().items()}
    ema = {}
    for k, v in raw.items():  # EMA values differ from the raw ones everywhere
        ema[k] = v + 0.01 * torch.randn_like(v)
    return m, raw, ema


def make(d):
    os.makedirs(d, exist_ok=True)
    m, raw, ema = build()
    args = argparse.Namespace(model="mar_tiny", vae_stride=16, patch_size=1, vae_embed_dim=16, buffer_size=8,
                              diffloss_d=2, diffloss_w=48, ema_rate=0.9999)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

    def ckpt(model_ema, name):
        torch.save({"model": raw, "model_ema": model_ema, "optimizer": opt.state_dict(), "epoch": 3,
                    "scaler": {"scale": 65536.0}, "args": args}, os.path.join(d, name))

    ckpt(ema, "ckpt.pth")
    names = [n for n, _ in m.named_parameters()]
    ckpt([ema[n] for n in names], "ckpt_list.pth")
    ckpt(None, "ckpt_noema.pth")
    bad = copy.copy(ema)
    del bad["decoder_blocks.0.attn.proj.weight"]
    ckpt(bad, "ckpt_missing.pth")
    bad = copy.copy(ema)
    bad["diffloss.net.cond_embed.weight"] = bad["diffloss.net.cond_embed.weight"].t().contiguous()
    ckpt(bad, "ckpt_shape.pth")
    bad = copy.copy(ema)
    bad["vae.encoder.conv_in.weight"] = torch.zeros(4, 3, 3, 3)
    ckpt(bad, "ckpt_extra.pth")
    cfg = marref.export_config(m, "kl16")
    marref.export_safetensors(os.path.join(d, "ref_ema.safetensors"), ema, cfg, dtype="f32")
    marref.export_safetensors(os.path.join(d, "ref_raw.safetensors"), raw, cfg, dtype="f32")
    bad = copy.copy(ema)
    del bad["encoder_blocks.1.mlp.fc2.bias"]
    bad["decoder_norm.weight"] = torch.ones(31)
    marref.export_safetensors(os.path.join(d, "ref_bad.safetensors"), bad, cfg, dtype="f32")
    print(f"{d}: checkpoints and references written ({sum(v.numel() for v in raw.values())} parameters)")


def check(d):
    _, raw, ema = build()
    want_cfg = dict(CFG, format="disa-mar-1", tokenizer="kl16", norm_eps=1e-6)
    cases = [("conv_ema.safetensors", ema, 0.0), ("conv_list.safetensors", ema, 0.0),
             ("conv_raw.safetensors", raw, 0.0), ("conv_f16.safetensors", ema, 1e-3),
             ("conv_bf16.safetensors", ema, 8e-3)]
    for name, sd, rtol in cases:
        load = load_bf16 if name == "conv_bf16.safetensors" else stio.load_file
        tensors, meta = load(os.path.join(d, name))
        cfg = json.loads(meta["config"])
        if cfg != want_cfg:
            sys.exit(f"{name}: config {cfg}\n  expected {want_cfg}")
        if set(tensors) != set(sd):
            sys.exit(f"{name}: tensor names differ: {sorted(set(tensors) ^ set(sd))}")
        for k, v in sd.items():
            a, b = tensors[k].astype(np.float32), v.numpy()
            if a.shape != b.shape:
                sys.exit(f"{name}: '{k}' shape {a.shape}, expected {b.shape}")
            if rtol == 0.0 and not np.array_equal(a.view(np.uint32), b.view(np.uint32)):
                sys.exit(f"{name}: '{k}' differs from the checkpoint")
            if rtol and not np.allclose(a, b, rtol=rtol, atol=1e-6):
                sys.exit(f"{name}: '{k}' max error {np.abs(a - b).max()}")
        print(f"check {name}: {len(tensors)} tensors ok ({'bit-identical' if rtol == 0 else f'rtol {rtol}'}), config ok")


def load_bf16(path):
    """stio has no BF16: read the raw header and widen bfloat16 to float32."""
    import struct
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__")
    out = {}
    for k, e in hdr.items():
        if e["dtype"] != "BF16":
            sys.exit(f"{path}: '{k}' is {e['dtype']}, expected BF16")
        b, t = e["data_offsets"]
        u16 = np.frombuffer(raw[8 + n + b:8 + n + t], dtype="<u2")
        out[k] = (u16.astype(np.uint32) << 16).view(np.float32).reshape(e["shape"])
    return out, meta


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["make", "check"])
    ap.add_argument("dir")
    a = ap.parse_args()
    make(a.dir) if a.what == "make" else check(a.dir)
