"""Golden cases for FlowAR: the interpolation between scales, the transformer over all
scales, the flow head network, its Euler sampler and the whole DiSA sample_tokens
(tests/golden/flowar_*.safetensors).

Mirrors tools/flowarref/model.py, which follows FlowAR_DiSA models/flowar.py,
flowmodel.py, rope.py and sampler.py in float32.

Models are tiny with random weights of the official layout (deterministic numpy
streams); the RoPE frequency buffers keep their computed values. Expected outputs are
float64 runs from the float32 inputs and parameters (tests/golden/README.md) that keep
the float32 roundings the official code performs and the C code repeats:
  - the flow head's time: float32 t, t * 1000 in float32, truncated (.long());
  - its timestep embedding and the RoPE cos/sin: float32 arguments, functions evaluated
    in float64 and rounded once to float32 (the correctly rounded values);
  - the Euler state is float64 and enters the network through a float32 cast; each
    scale's tokens are rounded to float32 (.float()) before the next scale uses them.
The interpolation is compared exactly with the float32 torch ops: the C kernels repeat
their arithmetic (tests/golden/README.md, "FlowAR").
Tolerances are the measured distance between the official float32 run and the float64
answer, times a margin.

Run with Debian's PyTorch: /usr/bin/python3 tools/golden/flowar_goldens.py
"""
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import stio  # noqa: E402
from flowarref import model as M  # noqa: E402
from mar_goldens import timestep_embedding_exact  # noqa: E402

OUT_DIR = os.path.join(HERE, '..', '..', 'tests', 'golden')
GENERATOR = "tools/golden/flowar_goldens.py"
MAX_BYTES = 2 * 1024 * 1024
# The loop criterion: tokens after the whole loop within this normwise distance of the
# reference's float32 run.
F32_RUN_RTOL = 1e-4

_written = []


def save(name, op, tensors, config, description, rtol, atol, param_gen=None):
    meta = {"op": op, "config": json.dumps(config, sort_keys=True), "rtol": repr(float(rtol)),
            "atol": "%.1e" % atol, "generator": GENERATOR, "description": description}
    if param_gen:
        meta["param_gen"] = json.dumps(param_gen, sort_keys=True)
    path = os.path.join(OUT_DIR, name + ".safetensors")
    stio.save_file(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)
    size = os.path.getsize(path)
    assert size < MAX_BYTES, f"{path}: {size} bytes"
    _written.append((path, size))


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def tolerance(err32, scale, margin=20.0, floor=1e-6):
    rel = err32 / max(scale, 1e-30)
    return float("%.1e" % max(floor, margin * rel))


class exact_mode:
    """Context: float64 trigonometry of the timestep embedding and of RoPE."""

    def __enter__(self):
        self.saved = M.TimestepEmbedder.__dict__["timestep_embedding"]
        M.TimestepEmbedder.timestep_embedding = staticmethod(timestep_embedding_exact)
        self.trig = M.exact_trig()
        self.trig.__enter__()

    def __exit__(self, *exc):
        self.trig.__exit__(*exc)
        M.TimestepEmbedder.timestep_embedding = self.saved


# ----------------------------------------------------------------------------
# tiny random models

def random_params(model, seed):
    """Deterministic parameters with realistic scales from the generator both sides share
    (stio.dgen, tests/golden/README.md "Generated parameters"), so the files store only
    (seed, scale, shape) for them. Buffers (RoPE frequencies, the mask) keep their
    computed values and are stored. Returns the param_gen entries (names with the
    "param." prefix and without `strip`)."""
    sd = model.state_dict()
    out, gen = {}, {}
    for i, (name, p) in enumerate(sd.items()):
        shape = list(p.shape)
        if name.endswith("rope.freqs") or name == "mask":
            out[name] = p
            continue
        offset = None
        if name.endswith("weight") and len(shape) == 2 and "class_emb" not in name:
            gain = 0.5 if ("ada_lin" in name or "adaLN_modulation" in name or "final_layer.linear" in name) else 1.0
            scale = gain * math.sqrt(3.0 / shape[1])  # uniform: std gain / sqrt(fan_in)
        elif name.endswith("weight") and len(shape) == 1:  # RMSNorm gains
            scale, offset = 0.17, 1.0
        elif name.endswith("bias"):
            scale = 0.087
        else:  # class_emb, position embeddings
            scale = 0.52
        entry = {"seed": seed * 1000 + i, "scale": scale, "shape": shape}
        if offset is not None:
            entry["offset"] = offset
        out[name] = torch.from_numpy(stio.dgen(entry["seed"], tuple(shape), scale, offset))
        gen[name] = entry
    model.load_state_dict(out)
    model.param_gen = gen
    return model.eval()


def param_gen_of(model, prefix=None):
    out = {}
    for k, e in model.param_gen.items():
        if prefix is not None:
            if not k.startswith(prefix):
                continue
            k = k[len(prefix):]
        out["param." + k] = e
    return out


def tiny(**kw):
    """flowar_small's layout at tiny widths (official scales 1, 2, 4, 8, 16)."""
    cfg = M.preset_config("flowar_small")
    cfg.update(encoder_embed_dim=32, decoder_embed_dim=32, encoder_depth=2, decoder_depth=2, encoder_num_heads=2,
               decoder_num_heads=2, diffloss_d=2, diffloss_w=64, class_num=10)
    cfg.update(kw)
    return cfg


S_TINY = tiny()
# The cross-attention head of FlowAR-L/H, two heads of 64 in the head, 4 in the transformer.
L_TINY = tiny(cross=True, diffloss_w=128, encoder_num_heads=4, decoder_num_heads=4)
# Another scale list: 4 x 4 tokens at the end, an area step 16 -> 3 with uneven windows.
S_SCALES = tiny(img_size=64, scale=[1, 2, 3, 4])


def flowar_model(cfg, seed):
    return random_params(M.model_from_config(cfg), seed)


def buffers_of(model, prefix=None):
    """The stored tensors among the parameters: the RoPE frequency buffers (the C loader
    binds them under their official names). The scale-causal mask is left out: the C
    code applies it through its caches."""
    out = {}
    for k, v in model.state_dict().items():
        if not k.endswith("rope.freqs"):
            continue
        if prefix is not None:
            if not k.startswith(prefix):
                continue
            k = k[len(prefix):]
        out["param." + k] = f32(v)
    return out


def export_cfg(model):
    return M.export_config(model)


# ----------------------------------------------------------------------------
# flowar_interp

def gen_interp():
    """op flowar_interp: in.x [B, C, H, W]; config up_h, up_w, out_h, out_w;
    out.up = F.interpolate(x, (up_h, up_w), mode='bicubic') and
    out.y = F.interpolate(out.up, (out_h, out_w), mode='area'), float32. Exact on
    FlowAR's path (up to 16 x 16: source coordinates exact in float); the odd case
    (output sides 7 and 11, inexact coordinates) within 1e-6: there torch's source
    coordinates round differently from the formula of UpSample.h."""
    cases = [("1to2", 1, 1, 16, 16, 2, 2), ("2to4", 2, 2, 16, 16, 4, 4), ("4to8", 4, 4, 16, 16, 8, 8),
             ("8to16", 8, 8, 16, 16, 16, 16), ("3to4", 3, 3, 16, 16, 4, 4),
             ("odd3x5", 3, 5, 7, 11, 4, 3)]
    for k, (case, H, W, uh, uw, oh, ow) in enumerate(cases):
        rng = np.random.default_rng(800 + k)
        x = rng.standard_normal((2, 16 if case != "odd3x5" else 3, H, W)).astype(np.float32)
        xt = torch.from_numpy(x)
        up = torch.nn.functional.interpolate(xt, (uh, uw), mode='bicubic')
        y = torch.nn.functional.interpolate(up, (oh, ow), mode='area')
        if (uh, uw) == (16, 16) and (oh, ow) == (16, 16):
            assert torch.equal(y, up)
        exact = (uh, uw) == (16, 16)
        save(f"flowar_interp_{case}", "flowar_interp", {"in.x": x, "out.up": f32(up), "out.y": f32(y)},
             {"up_h": uh, "up_w": uw, "out_h": oh, "out_w": ow},
             f"bicubic {H}x{W} -> {uh}x{uw}, area -> {oh}x{ow}, torch float32"
             f"{', exact (FlowAR between scales)' if exact else ', inexact source coordinates'}",
             rtol=0.0 if exact else 1e-6, atol=0.0)


# ----------------------------------------------------------------------------
# rmsnorm, rope2d (the kernels the model builds on)

def gen_kernels():
    """op flowar_rmsnorm: in.x [N, C], param.weight [C] (optional); config eps; out.y: RMSNorm
    (models/flowar.py) in float64 of the float32 inputs.
    op flowar_rope2d: in.x [N, heads * hd] (N = ft^2 tokens of one image), param.freqs [hd/4]
    (the module's buffer); config heads; out.y = VisionRotaryEmbeddingFast applied per
    head, cos/sin of the float32 angles rounded once to float32."""
    for k, (case, N, C, weight, offset) in enumerate([("w", 7, 96, True, 0.0), ("noweight", 5, 33, False, 0.0),
                                                      ("offset", 4, 64, True, 30.0)]):
        rng = np.random.default_rng(1000 + k)
        x = (offset + rng.standard_normal((N, C))).astype(np.float32)
        w = (1 + 0.1 * rng.standard_normal(C)).astype(np.float32)
        norm = M.RMSNorm(C, weight=weight)
        if weight:
            norm.weight.data = torch.from_numpy(w)
        y32 = norm(torch.from_numpy(x))
        y64 = norm.double()(torch.from_numpy(x).double())
        rtol = tolerance((y32.double() - y64).abs().max().item(), y64.abs().max().item())
        t = {"in.x": x, "out.y": f32(y64)}
        if weight:
            t["param.weight"] = w
        save(f"flowar_rmsnorm_{case}", "flowar_rmsnorm", t, {"eps": 1e-6},
             f"RMSNorm {N}x{C}{' with weight' if weight else ''}{', rows offset by %g' % offset if offset else ''}",
             rtol=rtol, atol=rtol * 1e-2)
    for k, (case, ft, heads, hd) in enumerate([("ft1", 1, 2, 8), ("ft2", 2, 3, 16), ("ft4", 4, 2, 64),
                                               ("ft16", 16, 1, 64), ("ft3", 3, 2, 12)]):
        rng = np.random.default_rng(1100 + k)
        rope = M.VisionRotaryEmbeddingFast(dim=hd // 2)
        x = rng.standard_normal((ft * ft, heads * hd)).astype(np.float32)

        def run(dtype):
            xx = torch.from_numpy(x).to(dtype).reshape(1, ft * ft, heads, hd).permute(0, 2, 1, 3)
            return rope(xx).permute(0, 2, 1, 3).reshape(ft * ft, heads * hd)

        y32 = run(torch.float32)
        with exact_mode():
            y64 = run(torch.float64)
        rtol = tolerance((y32.double() - y64).abs().max().item(), y64.abs().max().item())
        save(f"flowar_rope2d_{case}", "flowar_rope2d", {"in.x": x, "param.freqs": f32(rope.freqs), "out.y": f32(y64)},
             {"heads": heads}, f"2-D RoPE on a {ft}x{ft} grid, {heads} heads of {hd}", rtol=rtol, atol=rtol * 1e-2)


# ----------------------------------------------------------------------------
# flowar_forward

def gen_forward():
    """op flowar_forward: the transformer over every scale, scale by scale with the
    key/value caches (sample_tokens' evaluation pass).

    in.labels [B] I64, in.tokens [B, L-1, C] F32: the token inputs of scales 1.. (before
    z_proj; scale 0's input is the class embedding); config: the disa-flowar-1 model
    config + "cfg" 0/1; out.z [R, L, D] the decoder output + diffusion_pos_embed_learned
    of every scale. R = 2B with cfg: rows B..2B-1 repeat the tokens with the null class
    (label 1000). The float64 answer also equals the training-mode pass under the
    scale-causal mask (checked here)."""
    cases = [("s_cfg", S_TINY, True, 2), ("s_nocfg", S_TINY, False, 3), ("l_cfg", L_TINY, True, 2),
             ("scales1234", S_SCALES, True, 2)]
    for k, (case, arch, cfg, B) in enumerate(cases):
        model = flowar_model(arch, seed=100 + k)
        rng = np.random.default_rng(200 + k)
        L, C = model.seq_len, model.token_embed_dim
        tokens = rng.standard_normal((B, L - 1, C)).astype(np.float32)
        labels = rng.integers(0, arch["class_num"], B).astype(np.int64)

        def run(m, dtype, full=False):
            tok = torch.from_numpy(tokens).to(dtype)
            lab = torch.from_numpy(labels)
            if cfg:
                tok = torch.cat([tok, tok], 0)
                lab = torch.cat([lab, torch.full_like(lab, M.UNCOND_LABEL)], 0)
            ce = m.class_emb(lab)
            with torch.no_grad():
                if full:
                    m.train()
                    z = m.transformer_full(tok, ce)
                    m.eval()
                    return z
                return m.transformer_cached(tok, ce)

        z32 = run(model, torch.float32)
        m64 = flowar_model(arch, seed=100 + k).double()
        with exact_mode():
            z64 = run(m64, torch.float64)
            z64_full = run(m64, torch.float64, full=True)
        scale = z64.abs().max().item()
        assert (z64 - z64_full).abs().max().item() <= 1e-12 * scale, "cache and scale-causal mask disagree"
        err = (z32.double() - z64).abs().max().item()
        rtol = tolerance(err, scale)
        t = {"in.tokens": tokens, "in.labels": labels}
        t.update({k2: v for k2, v in buffers_of(model).items() if not k2.startswith("param.flownet.")})
        gen = {k2: v for k2, v in param_gen_of(model).items() if not k2.startswith("param.flownet.")}
        t["out.z"] = f32(z64)
        conf = dict(export_cfg(model))
        conf["cfg"] = 1 if cfg else 0
        save(f"flowar_forward_{case}", "flowar_forward", t, conf,
             f"FlowAR transformer over scales {model.scale} with KV caches, B={B}"
             f"{', CFG batch 2B' if cfg else ''}{', cross head layout' if arch['cross'] else ''}",
             rtol=rtol, atol=rtol * 1e-2, param_gen=gen)


# ----------------------------------------------------------------------------
# flowar_head

def head_of(arch, seed):
    torch.manual_seed(seed)
    net = M.SimpleTransformerAdaLN(16, arch["diffloss_w"], 16, arch["decoder_embed_dim"], arch["diffloss_d"],
                                   cross=arch["cross"])
    random_params(net, seed)
    return net.eval()


def head_config(arch):
    return {"in_channels": 16, "model_channels": arch["diffloss_w"], "z_channels": arch["decoder_embed_dim"],
            "num_res_blocks": arch["diffloss_d"], "cross": bool(arch["cross"])}


def gen_head():
    """op flowar_head: SimpleTransformerAdaLN.forward.

    in.x [B, N, C], in.t [B] F32 (time in [0, 1], as the sampler passes it), in.cond
    [B, N, z_channels]; param.* the flownet names without "flownet."; config
    in_channels, model_channels, z_channels, num_res_blocks, cross; out.v [B, N, C].
    t = 0.7 checks the float32 truncation ((0.7f * 1000) -> 700, not 699)."""
    cases = [("v1_n16", S_TINY, 16, [1.0, 0.7, 0.3]), ("v1_n1", S_TINY, 1, [0.25, 0.0]),
             ("v2_n16", L_TINY, 16, [0.9, 0.7]), ("v2_n4", L_TINY, 4, [0.5, 0.001, 0.999])]
    for k, (case, arch, N, ts) in enumerate(cases):
        net = head_of(arch, 300 + k)
        rng = np.random.default_rng(400 + k)
        B = len(ts)
        x = rng.standard_normal((B, N, 16)).astype(np.float32)
        cond = rng.standard_normal((B, N, arch["decoder_embed_dim"])).astype(np.float32)
        t = np.array(ts, dtype=np.float32)

        def run(n, dtype):
            with torch.no_grad():
                return n(torch.from_numpy(x).to(dtype), torch.from_numpy(t), torch.from_numpy(cond).to(dtype))

        o32 = run(net, torch.float32)
        with exact_mode():
            o64 = run(net.double(), torch.float64)
        err = (o32.double() - o64).abs().max().item()
        rtol = tolerance(err, o64.abs().max().item())
        tens = {"in.x": x, "in.t": t, "in.cond": cond}
        tens.update(buffers_of(net))
        tens["out.v"] = f32(o64)
        save(f"flowar_head_{case}", "flowar_head", tens, head_config(arch),
             f"flow head ({'Block_v2' if arch['cross'] else 'Block_v1'}) w={arch['diffloss_w']} "
             f"depth={arch['diffloss_d']} N={N} t={ts}", rtol=rtol, atol=rtol * 1e-2, param_gen=param_gen_of(net))


# ----------------------------------------------------------------------------
# flowar_euler

def t_bits(num_steps):
    return M.euler_t_steps(num_steps).numpy().view(np.int64).copy()


def gen_euler():
    """op flowar_euler: sampler.py euler_sampler with the flow head, one scale.

    in.noise [B, N, C]: the start latents of the conditional half; in.cond [R, N, z]: the
    condition, R = 2B ([cond; uncond]) when cfg_scale != 1, else B; config: the head
    config + num_steps, cfg_scale, guidance (guidance_high; guidance_low is 0).
    out.x [B, N, C]: the conditional half of the result (float32 of the float64 state);
    out.t_steps_bits [nfe+1] I64: the float64 time grid's bit patterns (exact);
    out.nfe, out.n_guided [1] I64: network evaluations and how many were guided.
    With CFG the official sampler also draws noise for the unconditional half; it never
    reaches the conditional result (the replay with zeros there is asserted equal)."""
    cases = [("v1_n25_cfg3", S_TINY, 16, 25, 3.0, 0.9, 2), ("v1_n50_nocfg", S_TINY, 4, 50, 1.0, 0.9, 2),
             ("v1_n7_cfg2_g07", S_TINY, 4, 7, 2.0, 0.7, 2), ("v2_n16_cfg24", L_TINY, 16, 16, 2.4, 0.7, 2),
             ("v2_n2_cfg15", L_TINY, 1, 2, 1.5, 1.0, 1)]
    for k, (case, arch, N, nsteps, cfg, guid, B) in enumerate(cases):
        net = head_of(arch, 500 + k)
        rng = np.random.default_rng(600 + k)
        R = 2 * B if cfg != 1.0 else B
        noise_full = rng.standard_normal((R, N, 16)).astype(np.float32)
        cond = rng.standard_normal((R, N, arch["decoder_embed_dim"])).astype(np.float32)

        def run(n, dtype, noise):
            tr = {}
            with torch.no_grad():
                x = M.euler_sampler(n, torch.from_numpy(noise), torch.from_numpy(cond).to(dtype), num_steps=nsteps,
                                    cfg_scale=cfg, guidance_high=guid, model_dtype=dtype, trace=tr)
            return x, tr

        x32, tr32 = run(net, torch.float32, noise_full)
        zeroed = noise_full.copy()
        zeroed[B:] = 0.0
        again, _ = run(net, torch.float32, zeroed)
        if cfg != 1.0:
            assert torch.equal(again[:B], x32[:B]), f"{case}: the unconditional start noise changed the result"
        with exact_mode():
            x64, tr64 = run(net.double(), torch.float64, zeroed)
        err = (x32[:B] - x64[:B]).abs().max().item()
        rtol = tolerance(err, x64[:B].abs().max().item(), margin=50.0, floor=1e-5)
        tens = {"in.noise": noise_full[:B], "in.cond": cond}
        tens.update(buffers_of(net))
        tens["out.x"] = x64[:B].numpy().astype(np.float32)
        tens["out.t_steps_bits"] = t_bits(nsteps)
        tens["out.nfe"] = np.array([tr64["nfe"][0]], dtype=np.int64)
        tens["out.n_guided"] = np.array([tr64["n_guided"][0]], dtype=np.int64)
        conf = head_config(arch)
        conf.update(num_steps=nsteps, cfg_scale=cfg, guidance=guid)
        save(f"flowar_euler_{case}", "flowar_euler", tens, conf,
             f"euler_sampler {nsteps} steps ({tr64['nfe'][0]} evaluations, {tr64['n_guided'][0]} guided), "
             f"cfg {cfg}, guidance {guid}, N={N}, B={B}", rtol=rtol, atol=rtol * 1e-2,
             param_gen=param_gen_of(net))


# ----------------------------------------------------------------------------
# flowar_sample

def split_tape(tape, B, scale):
    """Recorded draws -> per-image tape [B, T]: for each scale, the start noise of the
    image's tokens ([N, C] row-major). Rows of the unconditional half, which the official
    loop draws with CFG, are left out: they cannot change the result."""
    per = [[] for _ in range(B)]
    assert len(tape) == len(scale)
    for (kind, a), s in zip(tape, scale):
        assert kind == "randn" and a.shape[1] == s * s
        for b in range(B):
            per[b].append(a[b].reshape(-1))
    return np.stack([np.concatenate(p) for p in per]).astype(np.float32)


class ImageTapeRandomness(M.Randomness):
    """Serves draws from the per-image tape, zeros for the unconditional half."""

    def __init__(self, tape, doubled):
        super().__init__()
        self.t = tape
        self.doubled = doubled
        self.pos = 0

    def randn(self, shape):
        R, N, C = shape
        B = self.t.shape[0]
        a = self.t[:, self.pos:self.pos + N * C].reshape(B, N, C)
        self.pos += N * C
        if self.doubled:
            a = np.concatenate([a, np.zeros_like(a)], 0)
        assert a.shape == tuple(shape), (a.shape, shape)
        return torch.from_numpy(a.copy())


def gen_sample():
    """op flowar_sample: FlowAR_DiSA FlowAR.sample_tokens with every draw replayed.

    in.labels [B] I64; in.tape [B, T] F32 (split_tape); param.* the whole model (no mask);
    config: the disa-flowar-1 model config + flow_upper_steps, flow_lower_steps, cfg,
    guidance, batch.
    out.n_steps [S] I64   the step count asked of euler_sampler at each scale
    out.nfe [S] I64       network evaluations per scale (2 * (n // 2), or 50 for n = 50)
    out.n_guided [S] I64  of which guided (cfg_s > 1 and t <= guidance)
    out.tokens_scales [B, L, C] F32   each scale's sampled tokens, concatenated
    out.tokens [B, seq, C] F32        the last scale's (the result)
    out.image [B, C, h, w] F32        unpatchify(out.tokens)
    out.tokens_f32 [B, seq, C] F32    the reference's own float32 run; the C tokens must
                                      be within 1e-4 normwise of it (config f32_rtol)"""
    cases = [
        # name, arch, upper, lower, cfg, guidance, B
        ("s_base5_nocfg", S_TINY, 5, 5, 1.0, 0.9, 2),
        ("s_disa9to4_cfg3", S_TINY, 9, 4, 3.0, 0.9, 2),
        ("s_disa50to15_cfg2", S_TINY, 50, 15, 2.0, 0.9, 1),
        ("l_disa8to3_cfg24_g07", L_TINY, 8, 3, 2.4, 0.7, 2),
        ("l_base6_cfg4", L_TINY, 6, 6, 4.0, 1.0, 1),
        ("scales1234_disa6to2_cfg2", S_SCALES, 6, 2, 2.0, 0.9, 2),
    ]
    for k, (case, arch, upper, lower, cfg, guid, B) in enumerate(cases):
        model = flowar_model(arch, seed=700 + k)
        labels = torch.from_numpy(np.random.default_rng(800 + k).integers(0, arch["class_num"], B).astype(np.int64))
        kw = dict(flow_upper_steps=upper, flow_lower_steps=lower, guidance=guid, cfg=cfg, labels=labels)
        torch.manual_seed(900 + k)
        rec = M.Randomness(record=True)
        tr32 = {}
        out32 = model.sample_tokens(rng=rec, trace=tr32, **kw)
        guided = cfg != 1.0
        tape = split_tape(rec.tape, B, model.scale)
        again = model.sample_tokens(rng=ImageTapeRandomness(tape, guided), **kw)
        assert torch.equal(again, out32), f"{case}: per-image tape replay differs"

        m64 = flowar_model(arch, seed=700 + k).double()
        tr64 = {}
        with exact_mode():
            out64 = m64.sample_tokens(rng=ImageTapeRandomness(tape, guided), trace=tr64, **kw)
        for key in ("n_steps", "nfe", "n_guided"):
            assert tr64[key] == tr32[key], key
        tok32 = tr32["tokens"][-1]
        tok64 = tr64["tokens"][-1]
        err = (tok32.double() - tok64.double()).abs().max().item()
        scale = tok64.abs().max().item()
        assert err <= 0.1 * F32_RUN_RTOL * scale, f"{case}: float32 run {err / scale:.1e} from float64"
        rtol = tolerance(err, scale, margin=50.0, floor=1e-5)
        t = {"in.labels": labels.numpy().astype(np.int64), "in.tape": tape}
        t.update(buffers_of(model))
        t["out.n_steps"] = np.array(tr64["n_steps"], dtype=np.int64)
        t["out.nfe"] = np.array(tr64["nfe"], dtype=np.int64)
        t["out.n_guided"] = np.array(tr64["n_guided"], dtype=np.int64)
        t["out.tokens_scales"] = f32(torch.cat(tr64["tokens"], dim=1))
        t["out.tokens"] = f32(tok64)
        t["out.image"] = f32(out64)
        t["out.tokens_f32"] = f32(tok32)
        conf = dict(export_cfg(model))
        conf.update(flow_upper_steps=upper, flow_lower_steps=lower, cfg=cfg, guidance=guid, batch=B,
                    f32_rtol=F32_RUN_RTOL)
        save(f"flowar_sample_{case}", "flowar_sample", t, conf,
             f"sample_tokens scales {model.scale} steps {tr64['n_steps']} (evaluations {tr64['nfe']}, guided "
             f"{tr64['n_guided']}) cfg {cfg} guidance {guid}, B={B}{', cross head' if arch['cross'] else ''}; "
             f"float32 run vs float64: {err / max(scale, 1e-30):.1e} normwise", rtol=rtol, atol=rtol * 1e-2,
             param_gen=param_gen_of(model))


def main():
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    gen_interp()
    gen_kernels()
    gen_forward()
    gen_head()
    gen_euler()
    gen_sample()
    for p, s in _written:
        print(f"{os.path.relpath(p)}  {s} bytes")


if __name__ == "__main__":
    main()
