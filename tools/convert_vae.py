"""Convert the official MAR KL-16 checkpoint (kl16.ckpt) to the decoder-only safetensors
file disa reads (include/disa/vae.h, DESIGN section 8).

    /usr/bin/python3 tools/convert_vae.py pretrained_models/vae/kl16.ckpt models/kl16.safetensors
    /usr/bin/python3 tools/convert_vae.py --self-test [--full] [--keep DIR]

kl16.ckpt is a torch pickle whose key "model" holds the AutoencoderKL state_dict
(LTH14/mar models/vae.py). Only `post_quant_conv.*` and `decoder.*` are kept, as float32,
under their official names; the encoder, quant_conv and any loss tensors are dropped.
The architecture is read off the tensor shapes (embed_dim, z_channels, levels, res
blocks, widths, out_ch) and stored as JSON in the "config" metadata entry:

    {"format": "disa-vae-1", "embed_dim": 16, "z_channels": 16, "ch": 128,
     "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "out_ch": 3, "resolution": 256,
     "num_groups": 32, "eps": 1e-06, "latent_scale": 0.2325}

The decoder only sees the products ch * ch_mult[i], so `--ch` (default 128, the official
value) fixes how they are split. GroupNorm groups, eps and the 0.2325 latent scale are
not in the checkpoint; the defaults are the official ones.

--self-test builds a checkpoint with the official layout from the PyTorch reference in
tools/golden/vae.py (random init, plus encoder/quant_conv/loss tensors that must be
dropped), converts it, checks every tensor bit for bit and the config, then writes a
golden case whose config names the converted file and runs build/bin/disa-parity on it:
the C loader (vae_open) and decoder against the reference in float64. Reduced widths by
default; --full uses the real KL-16 shape (about 150 MB, a minute).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "golden"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import stio  # noqa: E402

DEFAULTS = {"resolution": 256, "num_groups": 32, "eps": 1e-6, "latent_scale": 0.2325}


def load_state_dict(path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch without weights_only
        obj = torch.load(path, map_location="cpu")
    except Exception:  # a pickle weights_only refuses (extra objects): trust the file
        obj = torch.load(path, map_location="cpu")
    sd = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or "post_quant_conv.weight" not in sd:
        raise SystemExit(f"{path}: no AutoencoderKL state_dict (expected key 'model' with "
                         "'post_quant_conv.weight' and 'decoder.*')")
    return sd


def infer_config(sd, ch, resolution, num_groups, eps, latent_scale):
    def shape(name):
        if name not in sd:
            raise SystemExit(f"checkpoint lacks '{name}'")
        return tuple(sd[name].shape)

    z, e = shape("post_quant_conv.weight")[:2]
    levels = sorted({int(m.group(1)) for k in sd for m in [re.match(r"decoder\.up\.(\d+)\.", k)] if m})
    if not levels or levels != list(range(len(levels))):
        raise SystemExit(f"decoder.up levels {levels} are not 0..n-1")
    blocks = sorted({int(m.group(1)) for k in sd for m in [re.match(r"decoder\.up\.0\.block\.(\d+)\.", k)] if m})
    if [k for k in sd if re.match(r"decoder\.up\.\d+\.attn\.", k)]:
        raise SystemExit("decoder has attention outside the middle block; disa supports the KL-16 layout only")
    mult = []
    for i in levels:
        width = shape(f"decoder.up.{i}.block.0.conv2.weight")[0]
        if width % ch:
            raise SystemExit(f"decoder.up.{i} width {width} is not a multiple of --ch {ch}")
        mult.append(width // ch)
    if shape("decoder.conv_in.weight")[:2] != (ch * mult[-1], z):
        raise SystemExit(f"decoder.conv_in.weight {shape('decoder.conv_in.weight')} does not match "
                         f"the widths {[ch * m for m in mult]} and z {z}")
    return {"format": "disa-vae-1", "embed_dim": e, "z_channels": z, "ch": ch, "ch_mult": mult,
            "num_res_blocks": len(blocks) - 1, "out_ch": shape("decoder.conv_out.weight")[0],
            "resolution": resolution, "num_groups": num_groups, "eps": eps, "latent_scale": latent_scale}


def convert(ckpt, out, ch=128, resolution=256, num_groups=32, eps=1e-6, latent_scale=0.2325):
    sd = load_state_dict(ckpt)
    cfg = infer_config(sd, ch, resolution, num_groups, eps, latent_scale)
    keep = {k: v.detach().to(torch.float32).contiguous().numpy() for k, v in sd.items()
            if k.startswith("post_quant_conv.") or k.startswith("decoder.")}
    dropped = sorted({k.split(".")[0] for k in sd if k not in keep})
    meta = {"config": json.dumps(cfg), "source": os.path.basename(ckpt), "converter": "tools/convert_vae.py"}
    stio.save_file(out, keep, meta)
    n = sum(v.size for v in keep.values())
    print(f"{out}: {len(keep)} tensors, {n} parameters, config {json.dumps(cfg)}; "
          f"dropped: {', '.join(dropped) or 'nothing'}")
    return cfg, keep


# ----------------------------------------------------------------------------
# self-test

def self_test(full, keep_dir):
    import vae as ref  # tools/golden/vae.py: the PyTorch reference decoder

    work = keep_dir or tempfile.mkdtemp(prefix="disa-convert-vae-")
    os.makedirs(work, exist_ok=True)
    if full:
        cfg = ref.full_cfg()
        ch, B, h = 128, 1, 16
    else:
        cfg = ref.full_cfg(ch=32, ch_mult=[1, 2, 2], num_res_blocks=1)
        ch, B, h = 32, 2, 4
    torch.manual_seed(20240611)
    model = ref.KLDecode(cfg)  # PyTorch's default init: GroupNorm gains 1, kaiming convs
    sd = dict(model.state_dict())
    # The other halves of a real checkpoint, which the converter must drop.
    sd["encoder.conv_in.weight"] = torch.randn(ch, 3, 3, 3)
    sd["quant_conv.weight"] = torch.randn(2 * cfg["embed_dim"], 2 * cfg["embed_dim"], 1, 1)
    sd["loss.logvar"] = torch.zeros(())
    ckpt = os.path.join(work, "kl16_selftest.ckpt")
    torch.save({"model": sd}, ckpt)

    out = os.path.join(work, "vae.safetensors")
    got_cfg, _ = convert(ckpt, out, ch=ch)
    want_cfg = {k: cfg[k] for k in got_cfg}
    assert got_cfg == want_cfg, f"config {got_cfg} != {want_cfg}"
    tensors, meta = stio.load_file(out)
    assert json.loads(meta["config"]) == want_cfg
    ref_sd = model.state_dict()
    assert set(tensors) == set(ref_sd), sorted(set(tensors) ^ set(ref_sd))
    for k, v in ref_sd.items():
        assert tensors[k].dtype == np.float32 and np.array_equal(tensors[k], v.numpy()), k
    print(f"self-test: {len(tensors)} tensors bit-identical, config ok, encoder/quant_conv/loss dropped")

    # The C side: a golden case that loads the converted file with vae_open.
    rng = np.random.default_rng(5)
    tokens = rng.standard_normal((B, cfg["embed_dim"], h, h)).astype(np.float32)
    model.double()
    with torch.no_grad():
        img = model(torch.from_numpy(tokens).double()).numpy().astype(np.float32)
    golden = os.path.join(work, "vae_convert_selftest.safetensors")
    stio.save_file(golden, {"in.tokens": tokens, "out.img": img, "out.u8": ref.to_u8(img).astype(np.int64)}, {
        "op": "vae_decode", "config": json.dumps({"model": out, "u8_min_equal": 0.999}), "rtol": "0.0001",
        "atol": "0.0", "generator": "tools/convert_vae.py --self-test",
        "description": "kl16.ckpt -> tools/convert_vae.py -> vae_open -> vae_decode"})
    exe = os.path.join(HERE, "..", "build", "bin", "disa-parity")
    if not os.path.exists(exe):
        print(f"self-test: {exe} not built; golden left at {golden}")
        return 0
    r = subprocess.run([exe, golden])
    print(f"self-test: disa-parity exit status {r.returncode}; files in {work}")
    return r.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", nargs="?", help="official kl16.ckpt (torch pickle, key 'model')")
    ap.add_argument("out", nargs="?", help="output .safetensors")
    ap.add_argument("--ch", type=int, default=128, help="base width (official 128)")
    ap.add_argument("--resolution", type=int, default=DEFAULTS["resolution"])
    ap.add_argument("--num-groups", type=int, default=DEFAULTS["num_groups"])
    ap.add_argument("--eps", type=float, default=DEFAULTS["eps"])
    ap.add_argument("--latent-scale", type=float, default=DEFAULTS["latent_scale"])
    ap.add_argument("--self-test", action="store_true", help="convert a random-init checkpoint and check it")
    ap.add_argument("--full", action="store_true", help="self-test at the real KL-16 size")
    ap.add_argument("--keep", help="self-test work folder (default: a new temporary one)")
    a = ap.parse_args()
    if a.self_test:
        sys.exit(self_test(a.full, a.keep))
    if not a.ckpt or not a.out:
        ap.error("need CKPT and OUT (or --self-test)")
    convert(a.ckpt, a.out, a.ch, a.resolution, a.num_groups, a.eps, a.latent_scale)


if __name__ == "__main__":
    main()
