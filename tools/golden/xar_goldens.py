"""Golden cases for xAR: its nn kernels (RMSNorm, 2-D RoPE, SwiGLU), the transformer with
its key/value cache, the flow samplers' steps and time grids, and the whole
sample_tokens loop replayed from a tape (tests/golden/nn_{rmsnorm,rope,swiglu}_*,
xar_*.safetensors).

Mirrors tools/xarref (which follows Qinyu-Allen-Zhao/DiSA xAR_DiSA models/xar.py,
models/rope.py and models/sampler.py bit for bit in float32; tools/xarref/
check_official.py checks that against the official code).

Models are tiny with random weights. Expected outputs are computed in float64 from the
float32 inputs and parameters (tests/golden/README.md), keeping the float32 roundings
the official code performs and the C code must too: the time index int(float32(t) *
1000), the timestep embedding (as gd_timestep_embedding: each float32 intermediate
rounded once), the RoPE tables (float32 buffers) and the group tokens fed back as
context (float32 in the official loop; float64 here, within the tolerance). The flow
runs in float64 in the official code already. Tolerances come from the measured
distance between the official float32 run and the float64 answer, times a margin.

ops (tensor and config names in the docstrings of the gen_* functions):
  rmsnorm, rope, swiglu   nn kernels, as tools/golden/nn_kernels.py
  xar_forward             a sequence of network calls sharing one key/value cache
  xar_flow_step           one Euler-Maruyama / Euler update
  xar_time_grid           the samplers' time grids and time indices
  xar_sample              sample_tokens replayed from a per-image tape

Run with Debian's PyTorch: /usr/bin/python3 tools/golden/xar_goldens.py
"""
import copy
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
sys.path.insert(0, HERE)
import numpy as np  # noqa: E402
import torch  # noqa: E402

import stio  # noqa: E402
from mar_goldens import timestep_embedding_exact, tolerance  # noqa: E402
from xarref import model as X  # noqa: E402
from xarref import sampler as XS  # noqa: E402

OUT_DIR = os.path.join(HERE, '..', '..', 'tests', 'golden')
GENERATOR = "tools/golden/xar_goldens.py"
MAX_BYTES = 2 * 1024 * 1024

_written = []


def save(name, op, tensors, config, description, rtol, atol):
    meta = {"op": op, "config": json.dumps(config, sort_keys=True), "rtol": repr(float(rtol)),
            "atol": "%.1e" % atol, "generator": GENERATOR, "description": description}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    stio.save_file(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)
    size = os.path.getsize(path)
    assert size < MAX_BYTES, f"{path}: {size} bytes"
    _written.append((path, size))


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def f64(t):
    return t.detach().cpu().numpy().astype(np.float64)


def d64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32)).double()


class exact_mode:
    """Context: the timestep embedding with each float32 intermediate rounded once (the
    float64 runs; the C code computes it that way)."""

    def __enter__(self):
        self.saved = X.TimestepEmbedder.__dict__["timestep_embedding"]
        X.TimestepEmbedder.timestep_embedding = staticmethod(timestep_embedding_exact)

    def __exit__(self, *exc):
        X.TimestepEmbedder.timestep_embedding = self.saved


# ----------------------------------------------------------------------------
# nn kernels

_rng = np.random.default_rng(20250525)


def rnd(*shape, lo=-1.0, hi=1.0):
    return _rng.uniform(lo, hi, size=shape).astype(np.float32)


def gen_rmsnorm():
    """op rmsnorm: in.x [N, C], param.weight [C] (optional), config eps; out.y [N, C].
    xAR RMSNorm: x * rsqrt(mean(x^2) + eps) (* weight)."""
    cases = {"weight": (9, 40, True, 0.0), "noweight": (6, 64, False, 0.0),
             "offset": (5, 33, True, 30.0), "c1": (4, 1, False, 0.0)}
    for case, (n, c, w, off) in cases.items():
        x = rnd(n, c) * 3 + np.float32(off)
        t = {"in.x": x}
        norm = X.RMSNorm(c, eps=1e-6, weight=w).double()
        if w:
            wt = 1 + 0.3 * rnd(c)
            t["param.weight"] = wt
            norm.weight.data = d64(wt)
        t["out.y"] = f32(norm(d64(x)))
        save(f"nn_rmsnorm_{case}", "rmsnorm", t, {"eps": 1e-6},
             f"xAR RMSNorm C={c}{' with weight' if w else ''}{', rows offset by %g' % off if off else ''}",
             1e-5, 1e-7)


def gen_rope():
    """op rope: in.x [R, heads * hd] rows at positions p0..p0+R-1 (group order);
    config grid, clusters, heads, head_dim, p0; out.cos, out.sin [grid^2, hd] (the
    official float32 freqs_cos / freqs_sin buffers), out.y [R, heads * hd] =
    VisionRotaryEmbeddingFast.forward (x * cos + rotate_half(x) * sin) in float64."""
    cases = {"g16c4h64": (16, 4, 2, 64, 64, 128), "g4c4h16": (4, 4, 3, 16, 4, 8),
             "g6c9h8": (6, 9, 2, 8, 0, 36), "g16c4h80": (16, 4, 1, 80, 192, 64)}
    for case, (grid, cl, heads, hd, p0, R) in cases.items():
        rope = X.VisionRotaryEmbeddingFast(dim=hd // 2, pt_seq_len=grid, clusters=cl)
        x = rnd(R, heads * hd) * 2
        xb = d64(x).reshape(R, heads, hd).permute(1, 0, 2)[None]          # [1, heads, R, hd]
        cos, sin = rope.freqs_cos.double(), rope.freqs_sin.double()
        y = xb * cos[p0:p0 + R] + X.rotate_half(xb) * sin[p0:p0 + R]
        y = y[0].permute(1, 0, 2).reshape(R, heads * hd)
        t = {"in.x": x, "out.cos": f32(rope.freqs_cos), "out.sin": f32(rope.freqs_sin), "out.y": f32(y)}
        save(f"nn_rope_{case}", "rope", t, {"grid": grid, "clusters": cl, "heads": heads, "head_dim": hd, "p0": p0},
             f"2-D RoPE grid {grid}x{grid}, {cl} groups, {heads} heads of {hd}, rows {p0}..{p0 + R - 1}",
             1e-6, 1e-7)


def gen_swiglu():
    """op swiglu: in.x [N, d]; param.fc1_g.weight [h, d], param.fc1_g.bias [h],
    param.fc1_x.*, param.fc2.weight [d, h], param.fc2.bias [d]; out.y [N, d] =
    timm SwiGLU with GELU (xAR Block.mlp): fc2(gelu(fc1_g(x)) * fc1_x(x))."""
    cases = {"d32h42": (7, 32, 42), "d48h128": (5, 48, 128)}
    for case, (n, d, h) in cases.items():
        m = X.SwiGLU(d, h, act_layer=torch.nn.GELU)
        t = {"in.x": rnd(n, d) * 2}
        for name, p in m.state_dict().items():
            fan = p.shape[-1] if p.dim() == 2 else 1
            t["param." + name] = rnd(*p.shape) * np.float32(1.0 / math.sqrt(fan) if p.dim() == 2 else 0.1)
        m.load_state_dict({k[6:]: torch.from_numpy(v) for k, v in t.items() if k.startswith("param.")})
        t["out.y"] = f32(m.double()(d64(t["in.x"])))
        save(f"nn_swiglu_{case}", "swiglu", t, {}, f"SwiGLU (GELU gate) d={d} hidden={h} on {n} rows", 1e-5, 1e-7)


# ----------------------------------------------------------------------------
# tiny random models

# 4 x 4 tokens of 4 values, 4 groups of 2 x 2; encoder and decoder differ in head count
# (so in RoPE tables) and depth.
TINY4 = dict(img_size=8, vae_stride=1, patch_size=2, vae_embed_dim=1, encoder_embed_dim=32, encoder_depth=2,
             encoder_num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4, mlp_ratio=4.0,
             class_num=10, clusters=4, norm_eps=1e-6)
# 6 x 6 tokens, 9 groups of 2 x 2 (3 x 3 quadrants).
TINY9 = dict(img_size=12, vae_stride=1, patch_size=2, vae_embed_dim=1, encoder_embed_dim=32, encoder_depth=1,
             encoder_num_heads=2, decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=2, mlp_ratio=4.0,
             class_num=10, clusters=9, norm_eps=1e-6)
# The official geometry (KL-16 latents of 256 x 256 images: 16 x 16 tokens of 16, 4
# groups of 8 x 8, 1000 classes) at width 32.
K16 = dict(img_size=256, vae_stride=16, patch_size=1, vae_embed_dim=16, encoder_embed_dim=32, encoder_depth=1,
           encoder_num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0,
           class_num=1000, clusters=4, norm_eps=1e-6)


def random_params(model, seed):
    """Deterministic float32 parameters with realistic scales: unit-ish activations,
    non-trivial RMSNorm gains and adaLN modulations; the official buffers unchanged."""
    rng = np.random.default_rng(seed)
    sd = {}
    for name, p in model.state_dict().items():
        if X.is_buffer(name):
            sd[name] = p
            continue
        shape = tuple(p.shape)
        if name.endswith("weight") and len(shape) == 2 and "class_emb" not in name:
            gain = 0.5 if "ada_lin" in name else 1.0
            a = rng.standard_normal(shape) * gain / math.sqrt(shape[1])
        elif name.endswith("weight") and len(shape) == 1:  # RMSNorm gains
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            a = 0.05 * rng.standard_normal(shape)
        else:  # class_emb, position embeddings
            a = 0.3 * rng.standard_normal(shape)
        sd[name] = torch.from_numpy(a.astype(np.float32))
    model.load_state_dict(sd)
    return model.eval()


def xar_model(cfg, seed):
    return random_params(X.model_from_config(cfg, attn_dropout=0.0, proj_dropout=0.0), seed)


def params_of(model):
    return {"param." + k: f32(v) for k, v in model.state_dict().items() if not X.is_buffer(k)}


def export_cfg(model):
    return X.export_config(model, tokenizer="kl16" if model.cfg["vae_embed_dim"] == 16 else "patch")


# ----------------------------------------------------------------------------
# xar_forward

def run_calls(model, calls, xs, labels, dtype):
    """The network calls of gen_forward on one fresh cache; returns the outputs and the
    time indices the network used."""
    model.reset_cache()
    outs, tidx = [], []
    G = model.group
    for (step, first, t), x in zip(calls, xs):
        N = x.shape[0]
        R = x.shape[1]
        times = [0.0] * (R // G - 1) + [t]
        time_input = torch.tensor([tt for tt in times for _ in range(N)], dtype=torch.float32)
        tidx.append((time_input * 1000).long()[::N].numpy().astype(np.int64))
        hi = (step + 1) * G
        mask = model.mask[:, :, :hi, :hi] if first else None
        with torch.no_grad():
            v = model.sample_inference(torch.from_numpy(x).to(dtype), torch.from_numpy(labels), time_input, bool(first),
                                       step, mask)
        outs.append(v)
    return outs, tidx


def gen_forward():
    """op xar_forward: network calls (xAR.sample_inference) sharing one key/value cache.

    in.labels [N] I64        class per sequence (class_num = unconditional)
    in.x<k> [N, R_k, C] F32  input rows of call k: R = G (the noisy group) or 2G (the
                             clean previous group, then the noisy one: a first call)
    param.*                  xAR state_dict names (no buffers)
    config                   the disa-xar-1 model config + "calls": [[step, first, t], ...]
                             (first: the official update_cache; t: the noisy group's time)
    out.tidx<k> [R_k / G] I64  time index per group of rows (0 for the clean one)
    out.v<k> [N, G, C] F32     velocity of the noisy group
    """
    seq4 = [(0, 1, 1.0), (0, 0, 0.8), (1, 1, 1.0), (1, 0, 0.57), (2, 1, 1.0), (3, 1, 1.0), (3, 0, 0.3)]
    seq9 = [(0, 1, 1.0)] + [(s, 1, 1.0) for s in range(1, 9)] + [(8, 0, 0.41)]
    seq9.insert(5, (4, 0, 0.75))
    cases = [("t4_nocache", TINY4, [(0, 1, 1.0)], 3),
             ("t4_cache", TINY4, seq4, 2),
             ("t9_cache", TINY9, seq9, 2),
             ("k16_cache", K16, [(0, 1, 1.0), (1, 1, 1.0), (1, 0, 0.9183673469387755), (2, 1, 1.0), (3, 1, 1.0),
                                 (3, 0, 0.04)], 2)]
    for k, (case, arch, calls, N) in enumerate(cases):
        model = xar_model(arch, seed=100 + k)
        rng = np.random.default_rng(200 + k)
        G, C = model.group, model.token_embed_dim
        labels = rng.integers(0, arch["class_num"], N).astype(np.int64)
        labels[-1] = arch["class_num"]  # the last sequence is unconditional
        xs = [rng.standard_normal((N, (2 if first and step > 0 else 1) * G, C)).astype(np.float32)
              for step, first, _ in calls]
        o32, tidx = run_calls(model, calls, xs, labels, torch.float32)
        m64 = xar_model(arch, seed=100 + k).double()
        with exact_mode():
            o64, tidx64 = run_calls(m64, calls, xs, labels, torch.float64)
        assert all((a == b).all() for a, b in zip(tidx, tidx64))
        err = max((a.double() - b).abs().max().item() for a, b in zip(o32, o64))
        scale = max(b.abs().max().item() for b in o64)
        rtol = tolerance(err, scale)
        t = {"in.labels": labels}
        for i, x in enumerate(xs):
            t[f"in.x{i}"] = x
        t.update(params_of(model))
        for i, (ti, v) in enumerate(zip(tidx, o64)):
            t[f"out.tidx{i}"] = ti
            t[f"out.v{i}"] = f32(v)
        conf = dict(export_cfg(model))
        conf["calls"] = [list(c) for c in calls]
        save(f"xar_forward_{case}", "xar_forward", t, conf,
             f"xAR network, {model.seq_len} tokens of {C} in {model.clusters} groups, N={N}, {len(calls)} calls on "
             f"one cache; float32 run vs float64: {err / scale:.1e} normwise", rtol=rtol, atol=rtol * 1e-2)


# ----------------------------------------------------------------------------
# xar_flow_step

def gen_flow_step():
    """op xar_flow_step: one update of models/sampler.py in float64.

    in.x [N, C] F64        state x_t
    in.v [N2, C] F32       network output of the doubled batch, conditional rows first
                           (N2 = 2N); with config cfg <= 1 the unconditional half is unused
    in.eps [N, C] F64      Euler-Maruyama noise (absent for the final step and for Euler)
    config                 sampler (euler_maruyama / euler), t_cur, t_next, cfg
    out.x [N, C] F64       the next state
    """
    rng = np.random.default_rng(300)
    cases = [("em_cfg", "euler_maruyama", 1.0, 0.9804081632653061, 2.5, True),
             ("em_mid_nocfg", "euler_maruyama", 0.5102040816326531, 0.49061224489795924, 1.0, True),
             ("em_last_cfg", "euler_maruyama", 0.04, 0.0, 2.7, False),
             ("em_late_cfg", "euler_maruyama", 0.06, 0.04, 1.9, True),
             ("euler_cfg", "euler", 0.75, 0.5, 3.0, False),
             ("euler_nocfg", "euler", 1.0, 0.9, 1.0, False)]
    N, C = 12, 5
    for case, sampler, t_cur, t_next, cfg, noisy in cases:
        x = rng.standard_normal((N, C))
        v = (rng.standard_normal((2 * N, C)) * 1.5).astype(np.float32)
        eps = rng.standard_normal((N, C)) if noisy else None
        tc, tn = torch.tensor(t_cur, dtype=torch.float64), torch.tensor(t_next, dtype=torch.float64)
        xt, vt = torch.from_numpy(x), torch.from_numpy(v).double()
        if sampler == "euler":
            y = XS.euler_update(xt, vt, tc, tn, cfg)
        else:
            y = XS.em_update(xt, vt, torch.cat([xt, xt], 0), tc, tn, None if eps is None else torch.from_numpy(eps),
                             cfg)
        t = {"in.x": x, "in.v": v}
        if eps is not None:
            t["in.eps"] = eps
        t["out.x"] = f64(y)
        save(f"xar_flow_step_{case}", "xar_flow_step", t,
             {"sampler": sampler, "t_cur": t_cur, "t_next": t_next, "cfg": cfg},
             f"{sampler} step t {t_cur:.4g} -> {t_next:.4g}, cfg {cfg}{', final' if not noisy and sampler != 'euler' else ''}",
             rtol=1e-13, atol=1e-15)


# ----------------------------------------------------------------------------
# xar_time_grid

def symmetric_linspace(start, end, steps):
    """torch.linspace as documented (the scalar path of its CPU kernel): the first half
    from start, the second from end. torch's vectorised kernel may differ by an ulp."""
    if steps == 1:
        return np.array([start])
    step = (end - start) / (steps - 1)
    h = steps // 2
    return np.array([start + step * i if i < h else end - step * (steps - 1 - i) for i in range(steps)])


def gen_time_grid():
    """op xar_time_grid: the samplers' time grids, several step counts per file.

    config   sampler, ns (list of step counts)
    out.t [sum(n + 1)] F64          the grids concatenated (torch.linspace of the samplers)
    out.time_index [sum(n)] I64     int(float32(t) * 1000) of every call (float32 as the
                                    network receives it); the last time of a grid has no call
    The C grid is the symmetric linspace formula: equal to torch's up to an ulp, and with
    the same time indices (asserted here for every n).
    """
    for sampler, ns in (("euler_maruyama", [1, 2, 3, 15, 26, 38, 40, 49, 50, 100]), ("euler", [1, 2, 3, 10, 49, 50])):
        ts, idx = [], []
        for n in ns:
            if sampler == "euler":
                t = torch.linspace(1, 0, n + 1, dtype=torch.float64)
                sym = symmetric_linspace(1.0, 0.0, n + 1)
            else:
                t = torch.cat([torch.linspace(1., 0.04, n, dtype=torch.float64), torch.tensor([0.], dtype=torch.float64)])
                sym = np.concatenate([symmetric_linspace(1.0, 0.04, n), [0.0]])
            ti = (t[:n].to(torch.float32) * 1000).long().numpy()
            si = (torch.from_numpy(sym[:n]).to(torch.float32) * 1000).long().numpy()
            assert (ti == si).all(), (sampler, n)
            assert np.abs(t.numpy() - sym).max() <= 4e-16, (sampler, n)
            ts.append(t.numpy())
            idx.append(ti)
        save(f"xar_time_grid_{sampler}", "xar_time_grid",
             {"out.t": np.concatenate(ts), "out.time_index": np.concatenate(idx).astype(np.int64)},
             {"sampler": sampler, "ns": ns}, f"{sampler} time grids for n in {ns}", rtol=0.0, atol=4e-16)


# ----------------------------------------------------------------------------
# xar_sample

class ImageTapeRandomness(X.Randomness):
    """Serves the draws from per-image tapes [B, T] (each draw is [B, G, C]: image b's
    G * C next values)."""

    def __init__(self, tape):
        super().__init__()
        self.t = tape
        self.pos = np.zeros(tape.shape[0], dtype=np.int64)

    def randn(self, shape, dtype=torch.float32):
        n = int(np.prod(shape[1:]))
        out = []
        for b in range(self.t.shape[0]):
            out.append(self.t[b, self.pos[b]:self.pos[b] + n].reshape(shape[1:]))
            self.pos[b] += n
        return torch.from_numpy(np.stack(out)).to(dtype)


def split_tape(tape, B):
    """Recorded draws (each [B, G, C], in consumption order) -> per-image tape [B, T] F64:
    per AR step image b's start latents, then its noise of each Euler-Maruyama step but
    the last."""
    per = [[] for _ in range(B)]
    for kind, a in tape:
        assert kind == "randn" and a.shape[0] == B
        for b in range(B):
            per[b].append(a[b].astype(np.float64).reshape(-1))
    return np.stack([np.concatenate(p) for p in per])


def sample_case(model, arch, sampler, upper, lower, cfg, labels, seed, model_file=None):
    """One xar_sample case of `model` (float32, random or loaded weights; `arch` its
    config): (tensors, config, description, rtol). With model_file the parameters are
    not stored; the config names the file instead (tools/convert_xar.py --self-test)."""
    B = len(labels)
    lab_t = torch.from_numpy(np.where(labels < 0, arch["class_num"], labels))
    kw = dict(cfg=cfg, labels=lab_t, flow_upper_steps=upper, flow_lower_steps=lower, sampler=sampler)
    torch.manual_seed(seed)
    rec = X.Randomness(record=True)
    tr32 = {}
    out32 = model.sample_tokens(B, rng=rec, trace=tr32, **kw)
    tape = split_tape(rec.tape, B)
    again = model.sample_tokens(B, rng=ImageTapeRandomness(tape), **kw)
    assert torch.equal(again, out32), "per-image tape replay differs"

    m64 = copy.deepcopy(model).double()
    tr64 = {}
    with exact_mode():
        out64 = m64.sample_tokens(B, rng=ImageTapeRandomness(tape), trace=tr64, dtype=torch.float64, **kw)
    assert tr64["n_steps"] == tr32["n_steps"]
    err = (out32.double() - out64).abs().max().item()
    scale = out64.abs().max().item()
    # the loop feeds each group back as context: a wider margin than for one pass
    rtol = tolerance(err, scale, margin=50.0, floor=1e-5)
    tokens = m64.group_to_raster(torch.cat(tr64["z"], dim=1))
    tokens32 = model.group_to_raster(torch.cat(tr32["z"], dim=1))
    t = {"in.labels": labels.astype(np.int64), "in.tape": tape}
    if model_file is None:
        t.update(params_of(model))
    t["out.n_steps"] = np.array(tr64["n_steps"], dtype=np.int64)
    t["out.cfg"] = np.array(tr64["cfg"], dtype=np.float32)
    t["out.z_steps"] = f32(torch.stack(tr64["z"], 0))
    t["out.tokens"] = f32(tokens)
    t["out.tokens_f32"] = f32(tokens32)
    t["out.latent"] = f32(out64)
    conf = dict(export_cfg(model)) if model_file is None else {"model": model_file}
    conf.update(flow_upper_steps=upper, flow_lower_steps=lower, cfg=cfg, flow_sampler=sampler, batch=B,
                f32_rtol=1e-4)
    desc = (f"sample_tokens {sampler} {upper}->{lower} steps {tr32['n_steps']} cfg={cfg} "
            f"({model.seq_len} tokens of {model.token_embed_dim}, {model.clusters} groups, B={B}); "
            f"float32 run vs float64: {err / max(scale, 1e-30):.1e} normwise")
    return t, conf, desc, rtol


def gen_sample():
    """op xar_sample: xAR_DiSA xAR.sample_tokens with every random draw replayed.

    in.labels [B] I64        class labels (-1 = unconditional)
    in.tape [B, T] F64       per-image Gaussian draws, see split_tape
    param.*                  xAR state_dict names (no buffers)
    config                   disa-xar-1 model config (or "model": a converted file) +
                             flow_upper_steps, flow_lower_steps, cfg, flow_sampler
                             (euler_maruyama / euler), batch, f32_rtol
    out.n_steps [K] I64      flow steps per AR step (K = clusters)
    out.cfg [K] F32          guidance scale per AR step
    out.z_steps [K, B, G, C] F32    each group's tokens (float64 run)
    out.tokens [B, L, C] F32        all tokens in raster order (float64 run)
    out.tokens_f32 [B, L, C] F32    the same from the reference's float32 run: the C
                                    tokens must be within f32_rtol of it (normwise)
    out.latent [B, C, h, w] F32     unclusterify of the tokens (sample_tokens' output)
    """
    cases = [
        # name, arch, sampler, upper, lower, cfg, B
        ("t4_em_disa_cfg", TINY4, "euler_maruyama", 6, 3, 2.5, 2),
        ("t4_em_const_nocfg", TINY4, "euler_maruyama", 4, 4, 1.0, 2),
        ("t4_em_steps2to1_cfg", TINY4, "euler_maruyama", 2, 1, 2.0, 2),
        ("t4_euler_cfg", TINY4, "euler", 5, 2, 3.0, 3),
        ("t9_em_disa_cfg", TINY9, "euler_maruyama", 7, 2, 2.0, 2),
        ("k16_em_disa_cfg", K16, "euler_maruyama", 5, 3, 2.7, 2),
    ]
    for k, (case, arch, sampler, upper, lower, cfg, B) in enumerate(cases):
        model = xar_model(arch, seed=500 + k)
        labels = np.random.default_rng(600 + k).integers(0, arch["class_num"], B).astype(np.int64)
        if case == "t4_em_const_nocfg":
            labels[1] = -1
        t, conf, desc, rtol = sample_case(model, arch, sampler, upper, lower, cfg, labels, 700 + k)
        save(f"xar_sample_{case}", "xar_sample", t, conf, desc, rtol=rtol, atol=rtol * 1e-2)


def main():
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    gen_rmsnorm()
    gen_rope()
    gen_swiglu()
    gen_forward()
    gen_flow_step()
    gen_time_grid()
    gen_sample()
    for p, s in _written:
        print(f"{os.path.relpath(p)}  {s} bytes")


if __name__ == "__main__":
    main()
