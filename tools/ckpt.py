"""Reading official training checkpoints and writing safetensors, shared by the
converters (tools/convert_mar.py, tools/convert_xar.py, tools/convert_flowar.py).

The checkpoints are the torch pickles the MAR-style training scripts write
(util/misc.py: save_model): a dict with "model" (the state_dict), "model_ema" (the
same with the EMA parameters substituted, or None without EMA), "optimizer", "epoch",
"scaler" and "args" (an argparse Namespace); released weights may also be a bare
state_dict. Problems raise CkptError with a message naming the file and what is wrong;
the converters turn it into their exit message.
"""
import json
import os
import struct

import torch


class CkptError(Exception):
    pass


def die(msg):
    raise CkptError(msg)


# ----------------------------------------------------------------------------
# reading

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
