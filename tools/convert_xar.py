#!/usr/bin/python3
"""Convert an official xAR checkpoint to the safetensors file disa reads
(src/model/xar.c, include/disa/xar.h).

    /usr/bin/python3 tools/convert_xar.py CKPT.pth OUT.safetensors [--preset xar_base|xar_large|xar_huge]
                     [--heads N] [--no-ema] [--dtype f32|f16|bf16]
    /usr/bin/python3 tools/convert_xar.py --self-test [--keep DIR]

CKPT.pth is either the released weights (huggingface.co/OliverRen/xAR: xAR-B.pth,
xAR-L.pth, xAR-H.pth, a bare state_dict that eval.py loads with load_state_dict), or a
training checkpoint of xAR_DiSA main_mar.py (util/misc.py: save_model: "model",
"model_ema", "optimizer", "epoch", "scaler", "args"), whose EMA weights are taken unless
--no-ema; a "model_ema" list of tensors is mapped onto the names of "model".
"module." and "_orig_mod." prefixes are stripped.

The official state_dict also holds buffers the C code rebuilds from the config: `mask`
(the block-causal mask over groups) and every attention's `attn.rope.freqs`,
`freqs_cos`, `freqs_sin` (2-D RoPE tables). They are not written; instead they are
compared with what the inferred config gives (tools/xarref), so a checkpoint of another
geometry is refused rather than sampled wrongly. They also give what the tensor shapes
cannot: the head width (freqs_cos is [S, head_dim]) and the number of groups (the mask).

The architecture is read off the shapes: the width and class count from
class_emb.weight (class_num + 1 rows, the last one unconditional), the token width from
z_proj.weight, seq_len from encoder_pos_embed_learned, depths from the block indices,
mlp_ratio from mlp.fc1_g (int(dim * mlp_ratio * 2/3)). Head counts come from the RoPE
buffers, --preset (or args.model) or --heads; vae_stride 16 and vae_embed_dim 16 are the
defaults (patch_size = sqrt(token width / 16)), tokenizer "kl16", RMSNorm eps 1e-6. With
a preset every inferred value is checked against it. The config is stored as JSON in
the "config" metadata entry (format "disa-xar-1", keys as xar_config_parse reads them).

Every tensor the C loader binds is written under its official name, in the loader's
order, as F32 (default), F16 or BF16; any missing tensor, wrong shape or unexpected
tensor stops the conversion with the full list, and nothing is written.

--self-test builds random-init checkpoints with the official layout from tools/xarref
(a training checkpoint with distinct raw and EMA weights, a bare state_dict), converts
them, checks every tensor bit for bit and the config, checks the refusals (missing and
mis-shaped tensors, a MAR checkpoint, RoPE and mask buffers that disagree), then writes
an xar_sample golden case whose config names the converted file and runs
build/bin/disa-parity on it: the C loader and sampler against the reference in float64.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402

from ckpt import ST_DTYPE, CkptError, ckpt_args, pick_state_dict, save, torch_load  # noqa: E402

FORMAT = "disa-xar-1"
# xAR_DiSA/models/xar.py: xar_base, xar_large, xar_huge (width, depth, heads; encoder = decoder).
PRESETS = {"xar_base": (768, 8, 12), "xar_large": (1024, 16, 16), "xar_huge": (1280, 20, 16)}
DEFAULTS = {"vae_stride": 16, "vae_embed_dim": 16, "norm_eps": 1e-6, "tokenizer": "kl16"}
ROPE_SUFFIXES = ("attn.rope.freqs", "attn.rope.freqs_cos", "attn.rope.freqs_sin")


def die(msg):
    raise SystemExit(f"convert_xar: {msg}")


def is_buffer(name):
    return name == "mask" or name.endswith(ROPE_SUFFIXES)


def mlp_hidden(dim, ratio):
    return int(dim * ratio * 2 / 3.)


# ----------------------------------------------------------------------------
# the layout (mirrors xar_tensor_table in src/model/xar.c)

def expected_shapes(c):
    E, D = c["encoder_embed_dim"], c["decoder_embed_dim"]
    C = c["vae_embed_dim"] * c["patch_size"] ** 2
    S = (c["img_size"] // c["vae_stride"] // c["patch_size"]) ** 2
    he, hd = mlp_hidden(E, c["mlp_ratio"]), mlp_hidden(D, c["mlp_ratio"])
    want = {}

    def block(pre, i, d, h):
        p = f"{pre}.{i}."
        want.update({p + "attn.qkv.weight": (3 * d, d), p + "attn.qkv.bias": (3 * d,), p + "attn.proj.weight": (d, d),
                     p + "attn.proj.bias": (d,), p + "mlp.fc1_g.weight": (h, d), p + "mlp.fc1_g.bias": (h,),
                     p + "mlp.fc1_x.weight": (h, d), p + "mlp.fc1_x.bias": (h,), p + "mlp.fc2.weight": (d, h),
                     p + "mlp.fc2.bias": (d,), p + "ada_lin.1.weight": (6 * d, d), p + "ada_lin.1.bias": (6 * d,)})

    want.update({"class_emb.weight": (c["class_num"] + 1, E), "time_embed.mlp.0.weight": (E, 256),
                 "time_embed.mlp.0.bias": (E,), "time_embed.mlp.2.weight": (E, E), "time_embed.mlp.2.bias": (E,),
                 "z_proj.weight": (E, C), "z_proj.bias": (E,), "z_proj_ln.weight": (E,),
                 "encoder_pos_embed_learned": (1, S, E)})
    for i in range(c["encoder_depth"]):
        block("encoder_blocks", i, E, he)
    want.update({"encoder_norm.weight": (E,), "decoder_embed.weight": (D, E), "decoder_embed.bias": (D,),
                 "decoder_pos_embed_learned": (1, S, D)})
    for i in range(c["decoder_depth"]):
        block("decoder_blocks", i, D, hd)
    want.update({"decoder_norm.weight": (D,), "pred.weight": (C, D), "pred.bias": (C,)})
    return want


def infer_config(sd, preset, heads, vae_stride, vae_embed_dim):
    def shape(name):
        if name not in sd:
            die(f"checkpoint lacks '{name}': not an official xAR state_dict "
                f"(first keys: {', '.join(list(sd)[:6])})")
        return tuple(sd[name].shape)

    def depth(pre):
        idx = sorted({int(m.group(1)) for k in sd for m in [re.match(pre + r"\.(\d+)\.", k)] if m})
        if idx != list(range(len(idx))):
            die(f"{pre} indices {idx} are not 0..n-1")
        return len(idx)

    if "fake_latent" in sd or "diffloss.net.input_proj.weight" in sd:
        die("this is a MAR checkpoint (fake_latent / diffloss.*): convert it with tools/convert_mar.py")
    rows, E = shape("class_emb.weight")
    C = shape("z_proj.weight")[1]
    D = shape("decoder_embed.weight")[0]
    S = shape("encoder_pos_embed_learned")[1]
    enc_depth, dec_depth = depth("encoder_blocks"), depth("decoder_blocks")
    if enc_depth < 1:
        die("no encoder_blocks.0.*: not an official xAR state_dict")
    hidden = shape("encoder_blocks.0.mlp.fc1_g.weight")[0]
    ratio = 4.0 if mlp_hidden(E, 4.0) == hidden else hidden * 1.5 / E
    if mlp_hidden(E, ratio) != hidden:
        die(f"mlp.fc1_g width {hidden} is not int({E} * mlp_ratio * 2/3) for any mlp_ratio")
    seq_h = math.isqrt(S)
    if seq_h * seq_h != S:
        die(f"encoder_pos_embed_learned has {S} positions, not a square token grid")
    if C % vae_embed_dim or math.isqrt(C // vae_embed_dim) ** 2 != C // vae_embed_dim:
        die(f"token width {C} (z_proj.weight) is not vae_embed_dim {vae_embed_dim} x patch_size^2")
    patch = math.isqrt(C // vae_embed_dim)
    # Groups from the mask: row 0 (group 0) sees the columns of group 0 only.
    clusters = 4
    if "mask" in sd:
        m = sd["mask"].reshape(-1, S) if sd["mask"].numel() == S * S else None
        if m is None:
            die(f"buffer 'mask' has shape {list(sd['mask'].shape)}, expected [1, 1, {S}, {S}]")
        G = int((m[0] == 0).sum().item())
        if G < 1 or S % G:
            die(f"buffer 'mask': row 0 sees {G} positions, not a group of the {S} tokens")
        clusters = S // G
    # Head widths from the RoPE tables ([S, head_dim]).
    rope_heads = {}
    for pre, dim in (("encoder_blocks", E), ("decoder_blocks", D)):
        k = f"{pre}.0.attn.rope.freqs_cos"
        if k in sd:
            hd = sd[k].shape[-1]
            if dim % hd:
                die(f"buffer '{k}' is {list(sd[k].shape)}: head width {hd} does not divide {dim}")
            rope_heads[pre] = dim // hd
    cfg = {"format": FORMAT, "img_size": seq_h * vae_stride * patch, "vae_stride": vae_stride, "patch_size": patch,
           "vae_embed_dim": vae_embed_dim, "encoder_embed_dim": E, "encoder_depth": enc_depth,
           "encoder_num_heads": None, "decoder_embed_dim": D, "decoder_depth": dec_depth, "decoder_num_heads": None,
           "mlp_ratio": ratio, "class_num": rows - 1, "clusters": clusters, "tokenizer": DEFAULTS["tokenizer"],
           "norm_eps": DEFAULTS["norm_eps"]}
    if preset:
        w, d, h = PRESETS[preset]
        want = {"encoder_embed_dim": w, "decoder_embed_dim": w, "encoder_depth": d, "decoder_depth": d,
                "mlp_ratio": 4.0, "class_num": 1000, "img_size": 256, "patch_size": 1, "clusters": 4}
        bad = [f"{k} {cfg[k]} (preset {v})" for k, v in want.items() if cfg[k] != v]
        if bad:
            die(f"checkpoint does not match --preset {preset}: " + ", ".join(bad))
        if heads and heads != h:
            die(f"--heads {heads} contradicts --preset {preset} ({h} heads)")
        heads = h
    for key, pre, dim in (("encoder_num_heads", "encoder_blocks", E), ("decoder_num_heads", "decoder_blocks", D)):
        n = rope_heads.get(pre, heads)
        if heads and n != heads:
            die(f"{pre} RoPE tables give {n} heads, but {heads} were asked for")
        if not n:
            die("head counts cannot be read off the shapes and the checkpoint has no RoPE buffers: give --preset "
                "xar_base|xar_large|xar_huge or --heads N")
        if dim % n or (dim // n) % 4:
            die(f"width {dim} over {n} heads is not a whole multiple of 4 per head")
        cfg[key] = n
    return cfg


def check_buffers(sd, cfg):
    """The official buffers in the checkpoint must be the ones the config gives."""
    from xarref import model as X
    ref = X.model_from_config(cfg, attn_dropout=0.0, proj_dropout=0.0)
    have = {k: v for k, v in ref.state_dict().items() if is_buffer(k)}
    problems = []
    for k, v in sd.items():
        if not is_buffer(k):
            continue
        if k not in have:
            problems.append(f"buffer '{k}' does not exist in this architecture")
        elif tuple(v.shape) != tuple(have[k].shape):
            problems.append(f"buffer '{k}': got {list(v.shape)}, expected {list(have[k].shape)}")
        else:
            a, b = v.double(), have[k].double()
            finite = torch.isfinite(b)
            diff = (a[finite] - b[finite]).abs()
            if not torch.equal(torch.isfinite(a), finite) or (diff.numel() and diff.max().item() > 1e-5):
                problems.append(f"buffer '{k}' differs from the one the config gives (another geometry?)")
    return problems


# ----------------------------------------------------------------------------
# converting

def convert(ckpt, out, preset=None, heads=None, ema=True, dtype="f32", vae_stride=16, vae_embed_dim=16):
    try:
        return _convert(ckpt, out, preset, heads, ema, dtype, vae_stride, vae_embed_dim)
    except CkptError as e:
        die(str(e))


def _convert(ckpt, out, preset, heads, ema, dtype, vae_stride, vae_embed_dim):
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
    problems += [f"unexpected tensor '{k}' {list(sd[k].shape)} (unknown layout)" for k in sd
                 if k not in want and not is_buffer(k)]
    if not problems:
        problems = check_buffers(sd, cfg)
    if problems:
        die(f"{ckpt} ({which}): {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    for k in want:
        if not torch.is_floating_point(sd[k]):
            die(f"tensor '{k}' has dtype {sd[k].dtype}, expected floating point")
    meta = {"config": json.dumps(cfg, separators=(",", ":")), "source": os.path.basename(ckpt), "weights": which,
            "converter": "tools/convert_xar.py"}
    save(out, {k: sd[k] for k in want}, meta, dtype)
    n = sum(sd[k].numel() for k in want)
    dropped = sum(1 for k in sd if is_buffer(k))
    print(f"{out}: {len(want)} tensors, {n} parameters ({which}, {dtype.upper()}), {dropped} buffers checked and "
          f"dropped, config {meta['config']}")
    return cfg


# ----------------------------------------------------------------------------
# self-test

def self_test(keep_dir):
    import numpy as np
    sys.path.insert(0, os.path.join(HERE, "golden"))
    import stio
    import xar_goldens as XG
    from xarref import model as X
    torch.set_num_threads(1)
    work = keep_dir or tempfile.mkdtemp(prefix="convert_xar_")
    os.makedirs(work, exist_ok=True)
    # The official geometry (16 x 16 tokens of 16, 4 groups, 1000 classes) at width 32,
    # encoder and decoder with different depths.
    arch = dict(XG.K16, encoder_depth=2, decoder_depth=1)
    model = XG.xar_model(arch, seed=31)
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(32)
    ema = {k: v if X.is_buffer(k) else v + 0.01 * torch.randn(v.shape, generator=g) for k, v in raw.items()}
    train = {"model": raw, "model_ema": ema, "optimizer": {}, "epoch": 3, "scaler": {},
             "args": argparse.Namespace(model="xar_tiny")}
    paths = {n: os.path.join(work, n) for n in ("train.pth", "bare.pth", "missing.pth", "shape.pth", "mar.pth",
                                                "rope.pth", "mask.pth")}
    torch.save(train, paths["train.pth"])
    torch.save(ema, paths["bare.pth"])
    torch.save({k: v for k, v in ema.items() if k != "decoder_blocks.0.mlp.fc2.bias"}, paths["missing.pth"])
    torch.save(dict(ema, **{"pred.weight": ema["pred.weight"].t().contiguous()}), paths["shape.pth"])
    torch.save({"class_emb.weight": ema["class_emb.weight"], "fake_latent": torch.zeros(1, 32)}, paths["mar.pth"])
    rope = X.VisionRotaryEmbeddingFast(dim=4, pt_seq_len=16, clusters=4)   # head width 8, not 16
    torch.save(dict(ema, **{"encoder_blocks.0.attn.rope.freqs_cos": rope.freqs_cos}), paths["rope.pth"])
    # The mask of 16 groups with RoPE tables of 4: inconsistent buffers.
    mask16 = X.xAR(**dict(arch, clusters=16)).mask
    torch.save(dict(ema, mask=mask16), paths["mask.pth"])

    failures = []

    def expect(cond, what):
        print(f"self-test: {'ok  ' if cond else 'FAIL'} {what}")
        if not cond:
            failures.append(what)

    outs = {}
    for name, src, kw in (("ema", "train.pth", {}), ("raw", "train.pth", {"ema": False}),
                          ("bare", "bare.pth", {}), ("bf16", "bare.pth", {"dtype": "bf16"})):
        outs[name] = os.path.join(work, f"conv_{name}.safetensors")
        convert(paths[src], outs[name], heads=None, **kw)
    for name, sd in (("ema", ema), ("raw", raw), ("bare", ema)):
        tensors, meta = stio.load_file(outs[name])
        cfg = json.loads(meta["config"])
        want = {k: v for k, v in sd.items() if not X.is_buffer(k)}
        same = list(tensors) == list(expected_shapes(cfg)) and set(tensors) == set(want) and all(
            np.array_equal(tensors[k], want[k].numpy()) for k in want)
        expect(same, f"{name}: every parameter written bit for bit, buffers dropped")
        expect(cfg == dict(X.export_config(model), mlp_ratio=4.0), f"{name}: config {cfg}")
    tensors, _ = stio.load_file(outs["bf16"])
    expect(all(np.abs(tensors[k] - ema[k].numpy()).max() <= 2 ** -8 * np.abs(ema[k].numpy()).max() for k in tensors),
           "bf16: within bf16 rounding")

    for src, frag, kw in (("missing.pth", "missing tensor 'decoder_blocks.0.mlp.fc2.bias'", {}),
                          ("shape.pth", "tensor 'pred.weight': got [32, 16], expected [16, 32]", {}),
                          ("mar.pth", "this is a MAR checkpoint", {}),
                          ("rope.pth", "buffer 'encoder_blocks.1.attn.rope.freqs_cos': got [256, 16], "
                                       "expected [256, 8]", {}),
                          ("mask.pth", "buffer 'encoder_blocks.0.attn.rope.freqs_cos' differs from the one the "
                                       "config gives", {}),
                          ("train.pth", "does not match --preset xar_base: encoder_embed_dim 32 (preset 768)",
                           {"preset": "xar_base"}),
                          ("train.pth", "encoder_blocks RoPE tables give 2 heads, but 4 were asked for",
                           {"heads": 4}),
                          ("nonexistent.pth", "no such file", {})):
        out = os.path.join(work, "refused.safetensors")
        try:
            convert(paths.get(src, os.path.join(work, src)), out, **kw)
            msg = None
        except SystemExit as e:
            msg = str(e)
        expect(msg is not None and frag in msg and not os.path.exists(out) and not os.path.exists(out + ".tmp"),
               f"{src} refused: {msg.splitlines()[0] if msg else 'accepted'}")

    # C: the converted EMA file loads and samples as the reference does with those weights.
    model.load_state_dict(ema)
    labels = np.array([207, -1], dtype=np.int64)
    t, conf, desc, rtol = XG.sample_case(model, arch, "euler_maruyama", 4, 2, 2.7, labels, 33,
                                         model_file=os.path.abspath(outs["ema"]))
    golden = os.path.join(work, "xar_convert_selftest.safetensors")
    meta = {"op": "xar_sample", "config": json.dumps(conf, sort_keys=True), "rtol": repr(rtol),
            "atol": "%.1e" % (rtol * 1e-2), "generator": "tools/convert_xar.py --self-test",
            "description": "converted checkpoint -> xar_open -> xar_sampler_run; " + desc}
    stio.save_file(golden, t, meta)
    exe = os.path.join(HERE, "..", os.environ.get("BUILD", "build"), "bin", "disa-parity")
    r = subprocess.run([exe, golden])
    expect(r.returncode == 0, f"disa-parity on {golden}")
    print(f"self-test: {'all checks passed' if not failures else f'{len(failures)} failed'}; files in {work}")
    return 0 if not failures else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", nargs="?", help="official checkpoint (xAR-B.pth or a checkpoint-last.pth)")
    ap.add_argument("out", nargs="?", help="output .safetensors")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="official model name: checks shapes, gives heads")
    ap.add_argument("--heads", type=int, help="attention heads (encoder and decoder) when no preset or RoPE buffer says")
    ap.add_argument("--no-ema", action="store_true", help="convert 'model' (raw weights) instead of 'model_ema'")
    ap.add_argument("--dtype", choices=sorted(ST_DTYPE), default="f32", help="stored dtype (default f32)")
    ap.add_argument("--vae-stride", type=int, default=DEFAULTS["vae_stride"], help="tokenizer stride (16)")
    ap.add_argument("--vae-embed-dim", type=int, default=DEFAULTS["vae_embed_dim"], help="latent channels (16)")
    ap.add_argument("--self-test", action="store_true", help="convert random-init official-layout checkpoints")
    ap.add_argument("--keep", metavar="DIR", help="self-test: work in DIR and keep the files")
    a = ap.parse_args()
    if a.self_test:
        sys.exit(self_test(a.keep))
    if not a.ckpt or not a.out:
        ap.error("give CKPT.pth and OUT.safetensors (or --self-test)")
    if a.heads is not None and a.heads < 1:
        ap.error("--heads must be >= 1")
    convert(a.ckpt, a.out, a.preset, a.heads, not a.no_ema, a.dtype, a.vae_stride, a.vae_embed_dim)


if __name__ == "__main__":
    main()
