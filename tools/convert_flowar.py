#!/usr/bin/python3
"""Convert an official FlowAR checkpoint (FlowAR-S/L/H .pth, huggingface OliverRen/FlowAR)
to the safetensors file disa reads (src/model/flowar.c).

    /usr/bin/python3 tools/convert_flowar.py CKPT.pth OUT.safetensors
                     [--preset flowar_small|flowar_large|flowar_huge] [--no-ema] [--dtype f32|f16|bf16]
    /usr/bin/python3 tools/convert_flowar.py --self-test [--keep DIR]

CKPT.pth is what FlowAR_DiSA's eval.py loads with model.load_state_dict(torch.load(...)):
the FlowAR state_dict itself. A training checkpoint (a dict with "model" / "model_ema")
is accepted too, the EMA weights by default (--no-ema takes "model"), and "module." /
"_orig_mod." prefixes are stripped (tools/ckpt.py reads the containers).

The architecture is read off the tensors: the width from class_emb.weight (1001 rows),
depths from the block indices, head dims from the RoPE frequency buffers
(attn.rope.freqs holds head_dim / 4 values), the SwiGLU ratio from mlp.fc1_g, the head's
width, depth and layout (Block_v2 when crossattn.* exists) from flownet.*, and the scales
from the `mask` buffer (the scale-causal mask's blocks), else --scale. class_num 1000
(--class-num), vae_stride 16 and the KL-16 tokenizer are the official values. With --preset every
inferred value is checked against the official model. The config is stored as JSON in
the "config" metadata entry (format "disa-flowar-1").

Every tensor the C loader binds is written under its official name, in the loader's
order, RoPE buffers included (checked equal across blocks: they are computed, not
learned); `mask` is checked against the scales and dropped (the C code applies it
through its key/value caches). A missing or mis-shaped tensor, or an unexpected one,
stops the conversion with the full list.

--self-test builds random-init checkpoints of the official layout with tools/flowarref
(both head layouts), converts them, checks every tensor bit for bit and the config,
checks the refusals, then writes a flowar_sample golden case whose config names a
converted file and runs build/bin/disa-parity on it: the C loader and sampler against
the reference in float64.
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
sys.path.insert(0, os.path.join(HERE, "golden"))
import torch  # noqa: E402

from ckpt import ST_DTYPE, CkptError, pick_state_dict, save, strip_prefixes, torch_load  # noqa: E402

FORMAT = "disa-flowar-1"
CLASS_ROWS = 1001
# models/flowar.py flowar_small / _large / _huge with the README's --diffloss_d / --diffloss_w:
# width, depth, heads, head depth, head width, cross-attention head.
PRESETS = {
    "flowar_small": (768, 6, 12, 2, 1024, False),
    "flowar_large": (1024, 8, 16, 12, 1024, True),
    "flowar_huge": (1536, 15, 16, 12, 1536, True),
}


def die(msg):
    raise SystemExit(f"convert_flowar: {msg}")


def swiglu_hidden(dim, ratio):
    return int(dim * ratio * 2 / 3.)


# ----------------------------------------------------------------------------
# the layout (mirrors flowar_tensor_table in src/model/flowar.c and flowhead_table in
# src/model/flowhead.c)

def expected_shapes(c):
    E, D, W = c["encoder_embed_dim"], c["decoder_embed_dim"], c["diffloss_w"]
    C = c["vae_embed_dim"] * c["patch_size"] ** 2
    L = sum(s * s for s in c["scale"])
    he, hd = swiglu_hidden(E, c["mlp_ratio"]), swiglu_hidden(D, c["mlp_ratio"])
    want = {}

    def block(pre, i, d, h, heads):
        p = f"{pre}.{i}."
        want.update({p + "attn.qkv.weight": (3 * d, d), p + "attn.qkv.bias": (3 * d,),
                     p + "attn.proj.weight": (d, d), p + "attn.proj.bias": (d,),
                     p + "attn.rope.freqs": (d // heads // 4,), p + "mlp.fc1_g.weight": (h, d),
                     p + "mlp.fc1_g.bias": (h,), p + "mlp.fc1_x.weight": (h, d), p + "mlp.fc1_x.bias": (h,),
                     p + "mlp.fc2.weight": (d, h), p + "mlp.fc2.bias": (d,), p + "ada_lin.1.weight": (6 * d, d),
                     p + "ada_lin.1.bias": (6 * d,)})

    want.update({"class_emb.weight": (CLASS_ROWS, E), "z_proj.weight": (E, C), "z_proj.bias": (E,),
                 "z_proj_ln.weight": (E,), "encoder_pos_embed_learned": (1, L, E)})
    for i in range(c["encoder_depth"]):
        block("encoder_blocks", i, E, he, c["encoder_num_heads"])
    want.update({"encoder_norm.weight": (E,), "decoder_embed.weight": (D, E), "decoder_embed.bias": (D,),
                 "decoder_pos_embed_learned": (1, L, D)})
    for i in range(c["decoder_depth"]):
        block("decoder_blocks", i, D, hd, c["decoder_num_heads"])
    want.update({"decoder_norm.weight": (D,), "diffusion_pos_embed_learned": (1, L, D)})
    n = "flownet."
    H, q = swiglu_hidden(W, 4.0), W // (W // 64) // 4
    want.update({n + "time_embed.mlp.0.weight": (W, 256), n + "time_embed.mlp.0.bias": (W,),
                 n + "time_embed.mlp.2.weight": (W, W), n + "time_embed.mlp.2.bias": (W,),
                 n + "cond_embed.weight": (W, D), n + "cond_embed.bias": (W,),
                 n + "input_proj.weight": (W, C), n + "input_proj.bias": (W,)})
    for i in range(c["diffloss_d"]):
        p = f"{n}res_blocks.{i}."
        want.update({p + "attn.qkv.weight": (3 * W, W), p + "attn.proj.weight": (W, W), p + "attn.proj.bias": (W,),
                     p + "attn.rope.freqs": (q,)})
        if c["cross"]:
            want.update({p + "crossattn.q.weight": (W, W), p + "crossattn.kv.weight": (2 * W, D),
                         p + "crossattn.proj.weight": (W, W), p + "crossattn.proj.bias": (W,),
                         p + "crossattn.rope.freqs": (q,), p + "norm2_1.weight": (W,), p + "norm2_2.weight": (D,)})
        want.update({p + "mlp.fc1_g.weight": (H, W), p + "mlp.fc1_g.bias": (H,), p + "mlp.fc1_x.weight": (H, W),
                     p + "mlp.fc1_x.bias": (H,), p + "mlp.fc2.weight": (W, H), p + "mlp.fc2.bias": (W,)})
        if c["cross"]:
            want.update({p + "ada_lin_attn.weight": (3 * W, W), p + "ada_lin_attn.bias": (3 * W,),
                         p + "ada_lin_mlp.weight": (3 * W, W), p + "ada_lin_mlp.bias": (3 * W,)})
        else:
            want.update({p + "ada_lin.weight": (6 * W, W), p + "ada_lin.bias": (6 * W,)})
    want.update({n + "final_layer.adaLN_modulation.1.weight": (2 * W, W),
                 n + "final_layer.adaLN_modulation.1.bias": (2 * W,),
                 n + "final_layer.linear.weight": (C, W), n + "final_layer.linear.bias": (C,)})
    return want


def scales_from_mask(mask, L):
    """The scale list of the scale-causal mask [1, 1, L, L]: row r sees the columns up to
    the end of its scale's block."""
    m = mask.reshape(L, L)
    ends = (m == 0).sum(dim=1).tolist()
    scales, start = [], 0
    while start < L:
        end = ends[start]
        side = math.isqrt(end - start)
        if end <= start or side * side != end - start or any(e != end for e in ends[start:end]):
            die(f"'mask' is not a scale-causal mask of square scales (rows {start}..)")
        scales.append(side)
        start = end
    return scales


def infer_config(sd, preset, scale_arg, class_num):
    def shape(name):
        if name not in sd:
            die(f"checkpoint lacks '{name}': not an official FlowAR state_dict "
                f"(first keys: {', '.join(list(sd)[:6])})")
        return tuple(sd[name].shape)

    def depth(pre):
        idx = sorted({int(m.group(1)) for k in sd for m in [re.match(re.escape(pre) + r"\.(\d+)\.", k)] if m})
        if idx != list(range(len(idx))):
            die(f"{pre} indices {idx} are not 0..n-1")
        return len(idx)

    rows, E = shape("class_emb.weight")
    if rows != CLASS_ROWS:
        die(f"class_emb.weight has {rows} rows; FlowAR's has {CLASS_ROWS} (1000 classes + the null class)")
    C = shape("z_proj.weight")[1]
    D = shape("decoder_embed.weight")[0]
    L = shape("diffusion_pos_embed_learned")[1]
    if shape("encoder_pos_embed_learned")[1] != L:
        die("encoder_pos_embed_learned and diffusion_pos_embed_learned differ in length: buffer_size != 0, "
            "which FlowAR's sampler does not support")
    W = shape("flownet.input_proj.weight")[0]
    enc_depth, dec_depth = depth("encoder_blocks"), depth("decoder_blocks")
    if enc_depth < 1 or dec_depth < 1:
        die("no encoder_blocks.0.* / decoder_blocks.0.*: not an official FlowAR state_dict")
    hidden = shape("encoder_blocks.0.mlp.fc1_g.weight")[0]
    ratio = 4.0 if swiglu_hidden(E, 4.0) == hidden else hidden * 1.5 / E
    if swiglu_hidden(E, ratio) != hidden:
        die(f"mlp.fc1_g width {hidden} is int(E * r * 2 / 3) for no mlp_ratio r")
    heads = []
    for pre, dim in (("encoder_blocks", E), ("decoder_blocks", D)):
        q = shape(f"{pre}.0.attn.rope.freqs")[0]
        if q < 1 or dim % (4 * q):
            die(f"{pre}.0.attn.rope.freqs has {q} values: head dim 4 x {q} does not divide the width {dim}")
        heads.append(dim // (4 * q))
    if "mask" in sd:
        scale = scales_from_mask(sd["mask"], L)
        if scale_arg and scale_arg != scale:
            die(f"--scale {scale_arg} contradicts the checkpoint's mask ({scale})")
    else:
        scale = scale_arg or [1, 2, 4, 8, 16]
    if sum(s * s for s in scale) != L:
        die(f"scales {scale} give {sum(s * s for s in scale)} tokens, the position embeddings {L}: give --scale")
    vae_embed_dim, vae_stride = 16, 16
    if C != vae_embed_dim:
        die(f"token width {C} (z_proj.weight): FlowAR samples 16-channel KL-16 tokens")
    cfg = {"format": FORMAT, "img_size": scale[-1] * vae_stride, "vae_stride": vae_stride, "patch_size": 1,
           "vae_embed_dim": vae_embed_dim, "encoder_embed_dim": E, "encoder_depth": enc_depth,
           "encoder_num_heads": heads[0], "decoder_embed_dim": D, "decoder_depth": dec_depth,
           "decoder_num_heads": heads[1], "mlp_ratio": ratio, "buffer_size": 0, "class_num": class_num,
           "diffloss_d": depth("flownet.res_blocks"), "diffloss_w": W, "scale": scale,
           "cross": any(k.startswith("flownet.res_blocks.0.crossattn.") for k in sd), "tokenizer": "kl16",
           "norm_eps": 1e-6}
    if preset:
        w, d, h, dd, dw, cross = PRESETS[preset]
        want = {"encoder_embed_dim": w, "decoder_embed_dim": w, "encoder_depth": d, "decoder_depth": d,
                "encoder_num_heads": h, "decoder_num_heads": h, "diffloss_d": dd, "diffloss_w": dw, "cross": cross,
                "mlp_ratio": 4.0, "scale": [1, 2, 4, 8, 16], "class_num": 1000}
        bad = [f"{k} {cfg[k]} (preset {v})" for k, v in want.items() if cfg[k] != v]
        if bad:
            die(f"checkpoint does not match --preset {preset}: " + ", ".join(bad))
    return cfg


def check_buffers(sd, want, cfg):
    """Every block's RoPE frequencies equal (per kind), the mask the scale-causal one."""
    groups = {}
    for k in want:
        if k.endswith("rope.freqs"):
            groups.setdefault("flownet" if k.startswith("flownet.") else k.split(".")[0], []).append(k)
    for names in groups.values():
        for k in names[1:]:
            if not torch.equal(sd[k].float(), sd[names[0]].float()):
                die(f"tensor '{k}' differs from '{names[0]}': the RoPE frequencies are computed, every block "
                    "holds the same")


def convert(ckpt, out, preset=None, ema=True, dtype="f32", scale=None, class_num=1000):
    try:
        return _convert(ckpt, out, preset, ema, dtype, scale, class_num)
    except CkptError as e:
        die(str(e))


def _convert(ckpt, out, preset, ema, dtype, scale, class_num):
    obj = torch_load(ckpt)
    if isinstance(obj, dict) and ("model" in obj or "model_ema" in obj):
        sd, which = pick_state_dict(obj, ckpt, ema)
    elif isinstance(obj, dict) and any(torch.is_tensor(v) for v in obj.values()):
        sd, which = strip_prefixes(obj), "state_dict (as eval.py loads it)"
    else:
        die(f"{ckpt}: expected a FlowAR state_dict, got {type(obj).__name__}")
    if any(k.startswith("diffloss.") or k == "fake_latent" for k in sd):
        die(f"{ckpt}: a MAR state_dict (diffloss.*, fake_latent), not FlowAR: use tools/convert_mar.py")
    cfg = infer_config(sd, preset, scale, class_num)
    want = expected_shapes(cfg)
    problems = []
    for k, s in want.items():
        if k not in sd:
            problems.append(f"missing tensor '{k}' (expected {list(s)})")
        elif tuple(sd[k].shape) != s:
            problems.append(f"tensor '{k}': got {list(sd[k].shape)}, expected {list(s)}")
    dropped = {"mask"}
    problems += [f"unexpected tensor '{k}' {list(sd[k].shape)} (unknown layout)" for k in sd
                 if k not in want and k not in dropped]
    if problems:
        die(f"{ckpt} ({which}): {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    for k in want:
        if not torch.is_floating_point(sd[k]):
            die(f"tensor '{k}' has dtype {sd[k].dtype}, expected floating point")
    check_buffers(sd, want, cfg)
    meta = {"config": json.dumps(cfg, separators=(",", ":")), "source": os.path.basename(ckpt),
            "weights": which, "converter": "tools/convert_flowar.py"}
    # RoPE buffers stay F32 whatever --dtype: they are exact float32 frequencies.
    tensors = {k: sd[k] for k in want}
    save(out, tensors, meta, dtype, keep_f32=lambda k: k.endswith("rope.freqs"))
    n = sum(sd[k].numel() for k in want if not k.endswith("rope.freqs"))
    print(f"{out}: {len(want)} tensors, {n} parameters ({which}, {dtype.upper()}), config {meta['config']}")
    return cfg


# ----------------------------------------------------------------------------
# self-test

def self_test(keep_dir):
    from flowarref import model as M
    import flowar_goldens as G
    import numpy as np
    import stio

    work = keep_dir or tempfile.mkdtemp(prefix="disa-convert-flowar-")
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(20250601)
    outs = {}
    for name, arch in (("v1", G.S_TINY), ("v2", G.L_TINY)):
        model = M.model_from_config(arch)  # the official random init (xavier, normal position embeddings)
        for p in model.parameters():  # non-zero biases and final layer, so every tensor matters
            with torch.no_grad():
                p.add_(0.02 * torch.randn_like(p))
        sd = model.state_dict()
        ck = os.path.join(work, f"flowar_{name}.pth")
        torch.save(dict(sd), ck)
        out = os.path.join(work, f"flowar_{name}.safetensors")
        cfg = convert(ck, out, class_num=arch["class_num"])
        want_cfg = M.export_config(model)
        assert cfg == want_cfg, f"config {cfg} != {want_cfg}"
        tensors, meta = stio.load_file(out)
        assert json.loads(meta["config"]) == want_cfg
        ref = {k: v for k, v in sd.items() if k != "mask"}
        assert list(tensors) == list(expected_shapes(cfg)), "tensor order differs from the loader's"
        assert set(tensors) == set(ref), sorted(set(tensors) ^ set(ref))
        for k, v in ref.items():
            assert tensors[k].dtype == np.float32 and np.array_equal(tensors[k], v.numpy()), k
        outs[name] = (model, out)
        print(f"self-test {name}: {len(tensors)} tensors bit-identical, config ok, mask dropped")

        # A training checkpoint (EMA by default) and a DDP prefix give the same file.
        ck2 = os.path.join(work, f"flowar_{name}_train.pth")
        torch.save({"model": {k: v * 2 for k, v in sd.items()}, "model_ema": {"module." + k: v for k, v in sd.items()}},
                   ck2)
        out2 = os.path.join(work, f"flowar_{name}_train.safetensors")
        convert(ck2, out2, class_num=arch["class_num"])
        t2, _ = stio.load_file(out2)
        assert all(np.array_equal(t2[k], tensors[k]) for k in tensors), "model_ema differs from the state_dict"

    # Reduced precision keeps the RoPE buffers in float32.
    _, out = outs["v2"]
    out16 = os.path.join(work, "flowar_v2_bf16.safetensors")
    convert(os.path.join(work, "flowar_v2.pth"), out16, dtype="bf16", class_num=G.L_TINY["class_num"])
    with open(out16, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    kinds = {("F32" if k.endswith("rope.freqs") else "BF16") == v["dtype"] for k, v in header.items()
             if k != "__metadata__"}
    assert kinds == {True}, "bf16 file: RoPE buffers must be F32, the rest BF16"
    print("self-test: --dtype bf16 stores BF16 parameters and F32 RoPE buffers")

    # Refusals: a message naming the problem and no output file.
    model, _ = outs["v1"]
    sd = dict(model.state_dict())

    def refused(sdict, fragment, **kw):
        ck = os.path.join(work, "bad.pth")
        out = os.path.join(work, "bad.safetensors")
        torch.save(sdict, ck)
        try:
            convert(ck, out, class_num=10, **kw)
        except SystemExit as e:
            msg = str(e)
            assert fragment in msg, f"message lacks '{fragment}': {msg}"
            assert not os.path.exists(out) and not os.path.exists(out + ".tmp"), "output written"
            print(f"self-test: refused: {msg.splitlines()[0]} ... {fragment}")
            return
        raise AssertionError(f"not refused ({fragment})")

    bad = dict(sd)
    del bad["decoder_blocks.1.mlp.fc2.bias"]
    refused(bad, "missing tensor 'decoder_blocks.1.mlp.fc2.bias'")
    bad = dict(sd)
    bad["flownet.cond_embed.weight"] = bad["flownet.cond_embed.weight"].t().contiguous()
    refused(bad, "tensor 'flownet.cond_embed.weight': got [32, 64], expected [64, 32]")
    bad = dict(sd)
    bad["vae.decoder.conv_in.weight"] = torch.zeros(3)
    refused(bad, "unexpected tensor 'vae.decoder.conv_in.weight'")
    bad = dict(sd)
    bad["encoder_blocks.1.attn.rope.freqs"] = bad["encoder_blocks.1.attn.rope.freqs"] * 2
    refused(bad, "tensor 'encoder_blocks.1.attn.rope.freqs' differs from 'encoder_blocks.0.attn.rope.freqs'")
    refused(sd, "does not match --preset flowar_small: encoder_embed_dim 32 (preset 768)", preset="flowar_small")
    mar_like = {"class_emb.weight": torch.zeros(1000, 8), "fake_latent": torch.zeros(1, 8)}
    refused(mar_like, "a MAR state_dict")

    # The C side: the converted Block_v2 file sampled by flowar_open + flowar_sampler_run
    # against the reference in float64, through disa-parity.
    model, out = outs["v2"]
    model = model.eval()
    B, labels = 2, torch.tensor([3, 7])
    kw = dict(flow_upper_steps=6, flow_lower_steps=3, guidance=0.9, cfg=2.5, labels=labels)
    rec = M.Randomness(record=True)
    tr32 = {}
    model.sample_tokens(rng=rec, trace=tr32, **kw)
    tape = G.split_tape(rec.tape, B, model.scale)
    m64 = M.model_from_config(G.L_TINY)
    m64.load_state_dict(model.state_dict())
    m64 = m64.double().eval()
    tr64 = {}
    with G.exact_mode():
        img = m64.sample_tokens(rng=G.ImageTapeRandomness(tape, True), trace=tr64, **kw)
    tensors = {"in.labels": labels.numpy().astype(np.int64), "in.tape": tape,
               "out.n_steps": np.array(tr64["n_steps"], dtype=np.int64),
               "out.nfe": np.array(tr64["nfe"], dtype=np.int64),
               "out.n_guided": np.array(tr64["n_guided"], dtype=np.int64),
               "out.tokens_scales": G.f32(torch.cat(tr64["tokens"], dim=1)), "out.tokens": G.f32(tr64["tokens"][-1]),
               "out.image": G.f32(img), "out.tokens_f32": G.f32(tr32["tokens"][-1])}
    conf = {"model": out, "flow_upper_steps": 6, "flow_lower_steps": 3, "cfg": 2.5, "guidance": 0.9, "batch": B,
            "f32_rtol": G.F32_RUN_RTOL}
    golden = os.path.join(work, "flowar_convert_selftest.safetensors")
    stio.save_file(golden, tensors, {"op": "flowar_sample", "config": json.dumps(conf), "rtol": "1e-4",
                                     "atol": "1e-6", "generator": "tools/convert_flowar.py --self-test",
                                     "description": "FlowAR .pth -> tools/convert_flowar.py -> flowar_open -> "
                                                    "flowar_sampler_run"})
    exe = os.path.join(HERE, "..", "build", "bin", "disa-parity")
    if not os.path.exists(exe):
        print(f"self-test: {exe} not built; golden left at {golden}")
        return 0
    r = subprocess.run([exe, golden])
    print(f"self-test: disa-parity exit status {r.returncode}; files in {work}")
    return r.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", nargs="?", help="official FlowAR checkpoint (torch pickle of the state_dict)")
    ap.add_argument("out", nargs="?", help="output .safetensors")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="official model name: checks every inferred value")
    ap.add_argument("--no-ema", action="store_true", help="take 'model' instead of 'model_ema' from a training dict")
    ap.add_argument("--dtype", choices=sorted(ST_DTYPE), default="f32", help="stored dtype (default f32)")
    ap.add_argument("--scale", help="scale sides when the checkpoint has no mask buffer, e.g. 1,2,4,8,16")
    ap.add_argument("--class-num", type=int, default=1000, help="classes the model was trained on (1000)")
    ap.add_argument("--self-test", action="store_true", help="convert random-init checkpoints and check them")
    ap.add_argument("--keep", help="with --self-test: work in this folder and keep it")
    a = ap.parse_args()
    if a.self_test:
        torch.set_num_threads(1)
        sys.exit(self_test(a.keep))
    if not a.ckpt or not a.out:
        ap.error("CKPT and OUT are required (or --self-test)")
    scale = None
    if a.scale:
        try:
            scale = [int(s) for s in a.scale.split(",")]
        except ValueError:
            ap.error(f"--scale must be comma-separated integers, got '{a.scale}'")
    if not 1 <= a.class_num <= 1000:
        ap.error("--class-num must be in 1..1000 (class_emb holds 1000 classes + the null class)")
    convert(a.ckpt, a.out, a.preset, not a.no_ema, a.dtype, scale, a.class_num)


if __name__ == "__main__":
    main()
