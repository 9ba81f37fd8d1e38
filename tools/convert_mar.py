#!/usr/bin/python3
"""Convert an official MAR checkpoint (LTH14/mar checkpoint-last.pth) to the safetensors
file disa reads (src/model/mar.c, DESIGN sections 3-4).

    /usr/bin/python3 tools/convert_mar.py CKPT.pth OUT.safetensors [--preset mar_base|mar_large|mar_huge]
                     [--heads N] [--no-ema] [--dtype f32|f16|bf16]

CKPT.pth is the torch pickle util/misc.py: save_model writes: a dict with "model" (the
MAR state_dict), "model_ema" (the same state_dict with the EMA parameters substituted,
or None when training ran without EMA), "optimizer", "epoch", "scaler" and "args"
(the argparse Namespace of main_mar.py). The official evaluation (main_mar.py
--evaluate, engine_mar.py: evaluate) samples with the EMA weights, so they are the
default; --no-ema takes "model". A "model_ema" given as a list of tensors (the
in-memory ema_params of engine_mar.py, in model.parameters() order) is mapped onto the
names of "model" in order. A bare state_dict is accepted too. "module." (DDP) and
"_orig_mod." (torch.compile) prefixes are stripped.

The architecture is read off the tensor shapes: class_num and the encoder width from
class_emb.weight, the token width from z_proj.weight, seq_len from
diffusion_pos_embed_learned, buffer_size from encoder_pos_embed_learned, depths from
the block indices, mlp_ratio from mlp.fc1, the head from diffloss.net.*. What shapes
cannot tell comes from --preset (or args.model in the checkpoint), else --heads and the
defaults: head counts, vae_stride 16, vae_embed_dim 16 (so patch_size = sqrt(token
width / 16)), tokenizer "kl16", LayerNorm eps 1e-6. With a preset every inferred value
is checked against it. The result is stored as JSON in the "config" metadata entry
(format "disa-mar-1", keys as mar_config_parse reads them).

Every tensor the C loader binds is written under its official name, in the loader's
order, as F32 (default), F16 or BF16; any missing tensor or wrong shape stops the
conversion with the full list. Nothing in the official state_dict is training-only
(MAR keeps no buffers; the VAE is a separate file), so an unexpected tensor means an
unknown layout and also stops it.
"""
import argparse
import json
import math
import os
import re
import struct

import torch

FORMAT = "disa-mar-1"
# DESIGN section 4 / main_mar.py model names: (width, depth, heads, diffloss depth, diffloss width).
PRESETS = {
    "mar_base": (768, 12, 12, 6, 1024),
    "mar_large": (1024, 16, 16, 8, 1280),
    "mar_huge": (1280, 20, 16, 12, 1536),
}
DEFAULTS = {"vae_stride": 16, "vae_embed_dim": 16, "norm_eps": 1e-6, "tokenizer": "kl16"}


def die(msg):
    raise SystemExit(f"convert_mar: {msg}")


# ----------------------------------------------------------------------------
# reading the checkpoint

def torch_load(path):
    if not os.path.isfile(path):
        die(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch without weights_only
        pass
    except Exception:  # noqa: BLE001 - weights_only refuses "args" (a Namespace): trust the file
        pass
    try:
        return torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001
        die(f"{path}: not a torch checkpoint ({type(e).__name__}: {e})")


def strip_prefixes(sd):
    out = {}
    for k, v in sd.items():
        for p in ("module.", "_orig_mod."):
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def pick_state_dict(obj, path, ema):
    """The state_dict to convert and a note saying which one it is."""
    if not isinstance(obj, dict):
        die(f"{path}: expected a dict with 'model' / 'model_ema', got {type(obj).__name__}")
    if "model" not in obj and "model_ema" not in obj:
        if any(torch.is_tensor(v) for v in obj.values()):
            return strip_prefixes(obj), "bare state_dict"
        die(f"{path}: no 'model' or 'model_ema' key (keys: {', '.join(map(str, obj))})")
    if not ema:
        if not isinstance(obj.get("model"), dict):
            die(f"{path}: 'model' is missing or not a state_dict")
        return strip_prefixes(obj["model"]), "model (raw weights, --no-ema)"
    e = obj.get("model_ema")
    if e is None:
        die(f"{path}: 'model_ema' is missing or None (trained without EMA?); use --no-ema for 'model'")
    if isinstance(e, dict):
        return strip_prefixes(e), "model_ema"
    if isinstance(e, (list, tuple)):
        raw = obj.get("model")
        if not isinstance(raw, dict):
            die(f"{path}: 'model_ema' is a list of {len(e)} tensors but there is no 'model' state_dict "
                "to take the names from")
        raw = strip_prefixes(raw)
        names = list(raw)
        if len(names) != len(e):
            die(f"{path}: 'model_ema' lists {len(e)} tensors but 'model' has {len(names)} entries")
        sd = {}
        for n, t in zip(names, e):
            if tuple(t.shape) != tuple(raw[n].shape):
                die(f"{path}: model_ema[{len(sd)}] has shape {list(t.shape)} but '{n}' is "
                    f"{list(raw[n].shape)}: the list is not in model.parameters() order")
            sd[n] = t
        return sd, "model_ema (parameter list, mapped in model.parameters() order)"
    die(f"{path}: 'model_ema' is a {type(e).__name__}, expected a state_dict or a list of tensors")


def ckpt_args(obj):
    a = obj.get("args") if isinstance(obj, dict) else None
    return vars(a) if hasattr(a, "__dict__") else (a if isinstance(a, dict) else {})


# ----------------------------------------------------------------------------
# the layout (mirrors mar_tensor_table in src/model/mar.c)

def expected_shapes(c):
    E, D, W = c["encoder_embed_dim"], c["decoder_embed_dim"], c["diffloss_w"]
    C = c["vae_embed_dim"] * c["patch_size"] ** 2
    S = (c["img_size"] // c["vae_stride"] // c["patch_size"]) ** 2
    Bf = c["buffer_size"]
    he, hd = int(E * c["mlp_ratio"]), int(D * c["mlp_ratio"])
    want = {}

    def block(pre, i, d, h):
        p = f"{pre}.{i}."
        want.update({p + "norm1.weight": (d,), p + "norm1.bias": (d,), p + "attn.qkv.weight": (3 * d, d),
                     p + "attn.qkv.bias": (3 * d,), p + "attn.proj.weight": (d, d), p + "attn.proj.bias": (d,),
                     p + "norm2.weight": (d,), p + "norm2.bias": (d,), p + "mlp.fc1.weight": (h, d),
                     p + "mlp.fc1.bias": (h,), p + "mlp.fc2.weight": (d, h), p + "mlp.fc2.bias": (d,)})

    want.update({"class_emb.weight": (c["class_num"], E), "fake_latent": (1, E), "z_proj.weight": (E, C),
                 "z_proj.bias": (E,), "z_proj_ln.weight": (E,), "z_proj_ln.bias": (E,),
                 "encoder_pos_embed_learned": (1, S + Bf, E)})
    for i in range(c["encoder_depth"]):
        block("encoder_blocks", i, E, he)
    want.update({"encoder_norm.weight": (E,), "encoder_norm.bias": (E,), "decoder_embed.weight": (D, E),
                 "decoder_embed.bias": (D,), "mask_token": (1, 1, D), "decoder_pos_embed_learned": (1, S + Bf, D)})
    for i in range(c["decoder_depth"]):
        block("decoder_blocks", i, D, hd)
    want.update({"decoder_norm.weight": (D,), "decoder_norm.bias": (D,), "diffusion_pos_embed_learned": (1, S, D)})
    n = "diffloss.net."
    want.update({n + "time_embed.mlp.0.weight": (W, 256), n + "time_embed.mlp.0.bias": (W,),
                 n + "time_embed.mlp.2.weight": (W, W), n + "time_embed.mlp.2.bias": (W,),
                 n + "cond_embed.weight": (W, D), n + "cond_embed.bias": (W,),
                 n + "input_proj.weight": (W, C), n + "input_proj.bias": (W,)})
    for i in range(c["diffloss_d"]):
        p = f"{n}res_blocks.{i}."
        want.update({p + "in_ln.weight": (W,), p + "in_ln.bias": (W,), p + "mlp.0.weight": (W, W),
                     p + "mlp.0.bias": (W,), p + "mlp.2.weight": (W, W), p + "mlp.2.bias": (W,),
                     p + "adaLN_modulation.1.weight": (3 * W, W), p + "adaLN_modulation.1.bias": (3 * W,)})
    want.update({n + "final_layer.adaLN_modulation.1.weight": (2 * W, W),
                 n + "final_layer.adaLN_modulation.1.bias": (2 * W,),
                 n + "final_layer.linear.weight": (2 * C, W), n + "final_layer.linear.bias": (2 * C,)})
    return want


def infer_config(sd, preset, heads, vae_stride, vae_embed_dim):
    def shape(name):
        if name not in sd:
            die(f"checkpoint lacks '{name}': not an official MAR state_dict "
                f"(first keys: {', '.join(list(sd)[:6])})")
        return tuple(sd[name].shape)

    def depth(pre):
        idx = sorted({int(m.group(1)) for k in sd for m in [re.match(pre + r"\.(\d+)\.", k)] if m})
        if idx != list(range(len(idx))):
            die(f"{pre} indices {idx} are not 0..n-1")
        return len(idx)

    class_num, E = shape("class_emb.weight")
    C = shape("z_proj.weight")[1]
    D = shape("decoder_embed.weight")[0]
    S = shape("diffusion_pos_embed_learned")[1]
    Bf = shape("encoder_pos_embed_learned")[1] - S
    W = shape("diffloss.net.input_proj.weight")[0]
    enc_depth, dec_depth = depth("encoder_blocks"), depth("decoder_blocks")
    if enc_depth < 1:
        die("no encoder_blocks.0.*: not an official MAR state_dict")
    hidden = shape("encoder_blocks.0.mlp.fc1.weight")[0]
    seq_h = math.isqrt(S)
    if seq_h * seq_h != S:
        die(f"diffusion_pos_embed_learned has {S} positions, not a square token grid")
    if C % vae_embed_dim or math.isqrt(C // vae_embed_dim) ** 2 != C // vae_embed_dim:
        die(f"token width {C} (z_proj.weight) is not vae_embed_dim {vae_embed_dim} x patch_size^2")
    patch = math.isqrt(C // vae_embed_dim)
    cfg = {"format": FORMAT, "img_size": seq_h * vae_stride * patch, "vae_stride": vae_stride,
           "patch_size": patch, "vae_embed_dim": vae_embed_dim, "encoder_embed_dim": E,
           "encoder_depth": enc_depth, "encoder_num_heads": None, "decoder_embed_dim": D,
           "decoder_depth": dec_depth, "decoder_num_heads": None, "mlp_ratio": hidden / E,
           "buffer_size": Bf, "class_num": class_num, "diffloss_d": depth("diffloss.net.res_blocks"),
           "diffloss_w": W, "tokenizer": DEFAULTS["tokenizer"], "norm_eps": DEFAULTS["norm_eps"]}
    if preset:
        w, d, h, dd, dw = PRESETS[preset]
        want = {"encoder_embed_dim": w, "decoder_embed_dim": w, "encoder_depth": d, "decoder_depth": d,
                "diffloss_d": dd, "diffloss_w": dw, "mlp_ratio": 4.0, "buffer_size": 64, "class_num": 1000,
                "img_size": 256, "patch_size": 1}
        bad = [f"{k} {cfg[k]} (preset {v})" for k, v in want.items() if cfg[k] != v]
        if bad:
            die(f"checkpoint does not match --preset {preset}: " + ", ".join(bad))
        if heads and heads != h:
            die(f"--heads {heads} contradicts --preset {preset} ({h} heads)")
        heads = h
    if not heads:
        die("head counts cannot be read off the shapes: give --preset mar_base|mar_large|mar_huge or --heads N")
    for k, dim in (("encoder_num_heads", E), ("decoder_num_heads", D)):
        if dim % heads:
            die(f"width {dim} is not a multiple of {heads} heads")
        cfg[k] = heads
    return cfg


# ----------------------------------------------------------------------------
# writing

ST_DTYPE = {"f32": ("F32", torch.float32), "f16": ("F16", torch.float16), "bf16": ("BF16", torch.bfloat16)}


def save(path, tensors, meta, dtype, keep_f32=None):
    """safetensors with every tensor in `dtype` (those for which keep_f32(name) is true in
    float32); written to path.tmp, then renamed."""
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        label, tdt = ST_DTYPE["f32" if keep_f32 and keep_f32(name) else dtype]
        t = t.detach().to(torch.float32)
        if label == "F16" and t.abs().max().item() > 65504:
            die(f"'{name}' exceeds the float16 range; use --dtype f32 or bf16")
        t = t.to(tdt).contiguous()
        raw = (t.view(torch.int16) if t.element_size() == 2 else t).numpy().astype(
            "<i2" if t.element_size() == 2 else "<f4", copy=False).tobytes()
        header[name] = {"dtype": label, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # data starts 8-aligned, so F32 is used in place
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def convert(ckpt, out, preset=None, heads=None, ema=True, dtype="f32", vae_stride=16, vae_embed_dim=16):
    obj = torch_load(ckpt)
    sd, which = pick_state_dict(obj, ckpt, ema)
    args = ckpt_args(obj)
    if not preset and not heads and args.get("model") in PRESETS:
        preset = args["model"]
        print(f"{ckpt}: preset {preset} from the checkpoint's args.model")
    cfg = infer_config(sd, preset, heads, vae_stride, vae_embed_dim)
    want = expected_shapes(cfg)
    problems = []
    for k, s in want.items():
        if k not in sd:
            problems.append(f"missing tensor '{k}' (expected {list(s)})")
        elif tuple(sd[k].shape) != s:
            problems.append(f"tensor '{k}': got {list(sd[k].shape)}, expected {list(s)}")
    extra = [k for k in sd if k not in want]
    problems += [f"unexpected tensor '{k}' {list(sd[k].shape)} (unknown layout)" for k in extra]
    if problems:
        die(f"{ckpt} ({which}): {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    for k in want:
        if not torch.is_floating_point(sd[k]):
            die(f"tensor '{k}' has dtype {sd[k].dtype}, expected floating point")
    meta = {"config": json.dumps(cfg, separators=(",", ":")), "source": os.path.basename(ckpt),
            "weights": which, "converter": "tools/convert_mar.py"}
    save(out, {k: sd[k] for k in want}, meta, dtype)
    n = sum(sd[k].numel() for k in want)
    print(f"{out}: {len(want)} tensors, {n} parameters ({which}, {dtype.upper()}), config {meta['config']}")
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", help="official checkpoint-last.pth (torch pickle)")
    ap.add_argument("out", help="output .safetensors")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="official model name: checks shapes, gives heads")
    ap.add_argument("--heads", type=int, help="attention heads (encoder and decoder) when no preset applies")
    ap.add_argument("--no-ema", action="store_true", help="convert 'model' (raw weights) instead of 'model_ema'")
    ap.add_argument("--dtype", choices=sorted(ST_DTYPE), default="f32", help="stored dtype (default f32)")
    ap.add_argument("--vae-stride", type=int, default=DEFAULTS["vae_stride"], help="tokenizer stride (16)")
    ap.add_argument("--vae-embed-dim", type=int, default=DEFAULTS["vae_embed_dim"], help="latent channels (16)")
    a = ap.parse_args()
    if a.heads is not None and a.heads < 1:
        ap.error("--heads must be >= 1")
    convert(a.ckpt, a.out, a.preset, a.heads, not a.no_ema, a.dtype, a.vae_stride, a.vae_embed_dim)


if __name__ == "__main__":
    main()
