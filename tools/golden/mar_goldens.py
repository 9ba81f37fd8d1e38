"""Golden cases for the MAR transformer, the DiffLoss network and the whole MAR + DiSA
sampling loop (tests/golden/mar_*.safetensors).

Mirrors tools/marref/model.py (which follows LTH14/mar models/mar.py, models/diffloss.py
and MAR_DiSA MAR.sample_tokens / DiffLoss.sample bit for bit in float32).

Models are tiny with random weights (deterministic numpy streams). Expected outputs are
computed in float64 from the float32 inputs and parameters (tests/golden/README.md),
with three float32 roundings kept because the official code performs them and the C
code must too:
  - diffusion table entries are float32 when applied (_extract_into_tensor);
  - the timestep embedding: frequency and argument rounded to float32 once from their
    exact values, cos/sin of that argument, rounded to float32 (as gd_timestep_embedding);
  - the per-step CFG scale is a float32 tensor in the official loop (out.cfg).
Tolerances are set from the measured distance between the official float32 run and the
float64 answer, times a margin.

ops (tensor and config names in the docstrings of gen_forward, gen_diffloss_net,
gen_sample):
  mar_forward   encoder + decoder for one mask state, with or without the CFG batch
  diffloss_net  SimpleMLPAdaLN.forward, or forward_with_cfg when config has cfg_scale
  mar_sample    sample_tokens replayed from a per-image tape of recorded draws

Run with Debian's PyTorch: /usr/bin/python3 tools/golden/mar_goldens.py
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import stio  # noqa: E402
from marref import diffusion as gd  # noqa: E402
from marref import dpm  # noqa: E402
from marref import model as M  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'golden')
GENERATOR = "tools/golden/mar_goldens.py"
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


def tolerance(err32, scale, margin=20.0, floor=1e-6):
    """rtol from the official float32 run's normwise error against float64."""
    rel = err32 / max(scale, 1e-30)
    return float("%.1e" % max(floor, margin * rel))


# ----------------------------------------------------------------------------
# float64 reference pieces

def timestep_embedding_exact(t, dim, max_period=10000):
    """float32 intermediates each rounded once from the exact value; cos/sin in float64
    of the float32 argument; result rounded to float32 (then widened)."""
    half = dim // 2
    c = np.float32(-math.log(max_period))
    k = np.arange(half, dtype=np.float32)
    a = (c * k).astype(np.float32)
    a = (a.astype(np.float64) / half).astype(np.float32)
    freqs = np.exp(a.astype(np.float64)).astype(np.float32)
    tt = t.detach().cpu().numpy().astype(np.float32)
    args = (tt[:, None].astype(np.float64) * freqs[None].astype(np.float64)).astype(np.float32)
    emb = np.concatenate([np.cos(args.astype(np.float64)), np.sin(args.astype(np.float64))], axis=-1)
    if dim % 2:
        emb = np.concatenate([emb, np.zeros_like(emb[:, :1])], axis=-1)
    return torch.from_numpy(emb.astype(np.float32).astype(np.float64))


class exact_mode:
    """Context: model in float64 with the exact timestep embedding."""

    def __enter__(self):
        self.saved = M.TimestepEmbedder.__dict__["timestep_embedding"]
        M.TimestepEmbedder.timestep_embedding = staticmethod(timestep_embedding_exact)

    def __exit__(self, *exc):
        M.TimestepEmbedder.timestep_embedding = self.saved


# ----------------------------------------------------------------------------
# tiny random models

def random_params(model, seed):
    """Deterministic float32 parameters with realistic scales: unit-ish activations,
    non-trivial norms and adaLN modulation, a variance head that stays in range."""
    rng = np.random.default_rng(seed)
    sd = {}
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        if name.endswith("weight") and len(shape) == 2 and "class_emb" not in name:
            fan_in = shape[1]
            gain = 1.0
            if "adaLN_modulation" in name:
                gain = 0.5
            if "final_layer.linear" in name:
                gain = 0.3
            a = rng.standard_normal(shape) * gain / math.sqrt(fan_in)
        elif name.endswith("weight") and len(shape) == 1:  # LayerNorm gains
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            a = 0.05 * rng.standard_normal(shape)
        else:  # class_emb, fake_latent, mask_token, position embeddings
            a = 0.3 * rng.standard_normal(shape)
        sd[name] = torch.from_numpy(a.astype(np.float32))
    model.load_state_dict(sd)
    return model.eval()


def mar_model(cfg, seed):
    m = M.model_from_config(cfg, attn_dropout=0.0, proj_dropout=0.0)
    return random_params(m, seed)


def params_of(model, prefix_filter=None, strip=""):
    out = {}
    for k, v in model.state_dict().items():
        if prefix_filter is not None and not prefix_filter(k):
            continue
        out["param." + k[len(strip):]] = f32(v)
    return out


def export_cfg(model, tokenizer="patch"):
    return M.export_config(model, tokenizer)


SEQ16 = dict(img_size=16, vae_stride=1, patch_size=4, vae_embed_dim=1,
             encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=4,
             decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4,
             mlp_ratio=4.0, buffer_size=4, class_num=10, diffloss_d=2, diffloss_w=64, norm_eps=1e-6)
SEQ16W64 = dict(SEQ16, encoder_embed_dim=64, decoder_embed_dim=64)
# 64 tokens of 4 values; encoder and decoder differ in width and head count so a swapped
# dimension or head split shows up.
SEQ64 = dict(img_size=16, vae_stride=1, patch_size=2, vae_embed_dim=1,
             encoder_embed_dim=48, encoder_depth=2, encoder_num_heads=4,
             decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=2,
             mlp_ratio=4.0, buffer_size=8, class_num=10, diffloss_d=2, diffloss_w=48, norm_eps=1e-6)


# ----------------------------------------------------------------------------
# mar_forward

def gen_forward():
    """op mar_forward: one transformer pass (forward_mae_encoder + forward_mae_decoder).

    in.tokens [B, L, D] F32   token values (also at unknown positions: they must be ignored)
    in.mask   [B, L] I64      1 = unknown, 0 = known; every image has the same count
    in.labels [B] I64         class labels
    param.*                   MAR state_dict names (no diffloss.*)
    config                    the disa-mar-1 model config + "cfg": 0/1
    out.encoder [R, buffer+known, d_enc]   encoder output after encoder_norm
    out.z       [R, L, d_dec]              decoder output + diffusion_pos_embed_learned
    R = 2B with cfg: rows B..2B-1 repeat tokens and mask and use fake_latent instead of
    class_emb[label] (MAR.sample_tokens' CFG batch); R = B without.
    """
    cases = [("s16_allunknown", SEQ16, "all", True, 3),
             ("s16_partial", SEQ16, "partial", True, 3),
             ("s16_oneunknown", SEQ16, "one", True, 3),
             ("s16_partial_nocfg", SEQ16, "partial", False, 2),
             ("s16w64_partial", SEQ16W64, "partial", True, 2),
             ("s64_partial", SEQ64, "partial", True, 2)]
    for k, (case, arch, state, cfg, B) in enumerate(cases):
        model = mar_model(arch, seed=100 + k)
        rng = np.random.default_rng(200 + k)
        L, D = model.seq_len, model.token_embed_dim
        tokens = rng.standard_normal((B, L, D)).astype(np.float32)
        labels = rng.integers(0, arch["class_num"], B).astype(np.int64)
        if state == "all":
            known = 0
        elif state == "one":
            known = L - 1
        else:
            known = L // 3
        mask = np.ones((B, L), dtype=np.int64)
        for b in range(B):
            mask[b, rng.permutation(L)[:known]] = 0

        def run(m, dtype):
            tok = torch.from_numpy(tokens).to(dtype)
            msk = torch.from_numpy(mask).float()
            ce = m.class_emb(torch.from_numpy(labels))
            if cfg:
                tok = torch.cat([tok, tok], 0)
                msk = torch.cat([msk, msk], 0)
                ce = torch.cat([ce, m.fake_latent.repeat(B, 1)], 0)
            with torch.no_grad():
                enc = m.forward_mae_encoder(tok, msk, ce)
                z = m.forward_mae_decoder(enc, msk)
            return enc, z

        enc32, z32 = run(model, torch.float32)
        m64 = mar_model(arch, seed=100 + k).double()
        enc64, z64 = run(m64, torch.float64)
        err = max((z32.double() - z64).abs().max().item(), (enc32.double() - enc64).abs().max().item())
        scale = max(z64.abs().max().item(), enc64.abs().max().item())
        rtol = tolerance(err, scale)
        t = {"in.tokens": tokens, "in.mask": mask, "in.labels": labels}
        t.update(params_of(model, lambda n: not n.startswith("diffloss.")))
        t["out.encoder"] = f32(enc64)
        t["out.z"] = f32(z64)
        conf = dict(export_cfg(model))
        conf["cfg"] = 1 if cfg else 0
        save(f"mar_forward_{case}", "mar_forward", t, conf,
             f"MAR encoder+decoder, {L} tokens of {D}, {known} known of {L}, B={B}"
             f"{', CFG batch 2B' if cfg else ''}", rtol=rtol, atol=rtol * 1e-2)


# ----------------------------------------------------------------------------
# diffloss_net

def gen_diffloss_net():
    """op diffloss_net: SimpleMLPAdaLN.

    in.x [N, C] F32, in.t [N] I64 (original timestep values), in.c [N, z_channels] F32
    param.*  SimpleMLPAdaLN names without the "diffloss.net." prefix
             (param.time_embed.mlp.0.weight, param.res_blocks.0.adaLN_modulation.1.bias, ...)
    config   in_channels, model_channels, z_channels, num_res_blocks, [cfg_scale]
    out.out [N, 2C]  eps | var_values
    With cfg_scale (N even, c = [c_cond; c_uncond]): forward_with_cfg: rows N/2.. of in.x
    are ignored (the first half is used twice); out eps rows are the guided eps for both
    halves, the var_values rows are the network's own per half.
    """
    cases = [("c16w64d3", 16, 64, 40, 3, 14, None),
             ("c4w48d2", 4, 48, 32, 2, 9, None),
             ("c16w64d3_cfg", 16, 64, 40, 3, 12, 2.5),
             ("c49w64d3_cfg", 49, 64, 64, 3, 8, 3.0)]
    for k, (case, C, w, dz, depth, N, cfg_scale) in enumerate(cases):
        torch.manual_seed(k)
        net = M.SimpleMLPAdaLN(C, w, 2 * C, dz, depth)
        random_params(net, seed=300 + k)
        rng = np.random.default_rng(400 + k)
        x = rng.standard_normal((N, C)).astype(np.float32)
        tl = [0, 1, 999, 950, 980, 500, 17, 250, 749, 949]
        t = np.array([tl[i % len(tl)] if i < len(tl) else int(rng.integers(0, 1000)) for i in range(N)],
                     dtype=np.int64)
        if cfg_scale is not None:
            t[N // 2:] = t[:N // 2]  # the sampler calls both halves with the same t
        c = rng.standard_normal((N, dz)).astype(np.float32)

        def run(n, dtype):
            xx = torch.from_numpy(x).to(dtype)
            cc = torch.from_numpy(c).to(dtype)
            tt = torch.from_numpy(t)
            with torch.no_grad():
                if cfg_scale is None:
                    return n(xx, tt, cc)
                return n.forward_with_cfg(xx, tt, cc, cfg_scale)

        o32 = run(net, torch.float32)
        with exact_mode():
            o64 = run(net.double(), torch.float64)
        err = (o32.double() - o64).abs().max().item()
        rtol = tolerance(err, o64.abs().max().item())
        tens = {"in.x": x, "in.t": t, "in.c": c}
        tens.update({"param." + n: f32(v) for n, v in net.float().state_dict().items()})
        tens["out.out"] = f32(o64)
        conf = {"in_channels": C, "model_channels": w, "z_channels": dz, "num_res_blocks": depth}
        if cfg_scale is not None:
            conf["cfg_scale"] = cfg_scale
        save(f"mar_diffloss_net_{case}", "diffloss_net", tens, conf,
             f"SimpleMLPAdaLN C={C} w={w} depth={depth} N={N}"
             f"{' forward_with_cfg %g' % cfg_scale if cfg_scale else ''}", rtol=rtol, atol=rtol * 1e-2)


# ----------------------------------------------------------------------------
# mar_sample

def step_draws(model, n_steps, sampler, guided, adaptive=None):
    """The draws of one AR step, each as "is it doubled for the CFG halves": the start noise
    (never), then one block per distinct timestep (DDPM, DDIM; doubled with CFG, as the
    official randn_like(x)), none for the DPM solvers. Adaptive (lower, upper): the start
    noise and n_blocks blocks of the conditional rows only (DiffLoss.sample_adaptive)."""
    if adaptive is not None:
        return [False] * (1 + model.diffloss.n_blocks(sampler, *adaptive))
    if sampler in dpm.SAMPLER_ALGO:
        return [False]
    return [False] + [guided] * gd.make_tables(n_steps, sampler).num_timesteps


def split_tape(tape, K, B, n_pred, draws):
    """Recorded draws -> (orders [B, L] I64, per-image tape [B, T] F32).

    Per image, per AR step s: the start noise of its n_pred[s] rows (positions
    ascending, row-major [n, C]), then for each of the nt_s reverse steps (spaced index
    nt_s-1 down to 0) the noise of its rows (draws[s]: step_draws). nt_s is the number of
    distinct timesteps of steps[s] after the sampler's clip. Rows of the unconditional
    half that the official loop draws with CFG, and nothing else, are left out: they cannot
    change the result. DDIM steps draw noise too (official ddim_sample); it is in the tape
    and unused."""
    kinds = [k for k, _ in tape]
    assert kinds[0] == "orders" and kinds.count("orders") == 1
    orders = tape[0][1].astype(np.int64)
    per = [[] for _ in range(B)]
    pos = 1
    for s in range(K):
        n = n_pred[s]
        for doubled in draws[s]:
            k, a = tape[pos]
            pos += 1
            assert k == "randn"
            want = B * n * (2 if doubled else 1)
            assert a.shape[0] == want, (s, a.shape, want)
            for b in range(B):
                per[b].append(a[b * n:(b + 1) * n].reshape(-1))
    assert pos == len(tape)
    return orders, np.stack([np.concatenate(p) for p in per]).astype(np.float32)


class ImageTapeRandomness(M.Randomness):
    """Serves draws from per-image tapes in the layout of split_tape (checks that layout:
    a replay from it must reproduce the recorded run). plan: per draw, the rows per image
    and whether the official draw also has the unconditional half."""

    def __init__(self, orders, tape, plan):
        super().__init__()
        self.o = orders
        self.t = tape
        self.plan = list(plan)
        self.pos = np.zeros(tape.shape[0], dtype=np.int64)

    def orders(self, bsz, seq_len):
        return torch.from_numpy(self.o.copy())

    def randn(self, shape):
        n, doubled = self.plan.pop(0)
        C = shape[1]
        out = []
        for b in range(self.t.shape[0]):
            out.append(self.t[b, self.pos[b]:self.pos[b] + n * C].reshape(n, C))
            self.pos[b] += n * C
        a = np.concatenate(out, 0)
        if doubled:
            a = np.concatenate([a, np.zeros_like(a)], 0)  # unconditional half: unused
        assert a.shape == tuple(shape), (a.shape, shape)
        return torch.from_numpy(a)


def draw_plan(K, n_pred, draws):
    return [(n_pred[s], doubled) for s in range(K) for doubled in draws[s]]


def gen_sample():
    """op mar_sample: MAR_DiSA MAR.sample_tokens with every random draw replayed.

    in.labels [B] I64
    in.orders [B, L] I64     generation order per image (first mask_len entries stay unknown)
    in.tape   [B, T] F32     per-image gaussian draws, see split_tape for the layout
    param.*                  full MAR state_dict incl. diffloss.net.*
    config                   disa-mar-1 model config + num_iter, cfg, cfg_schedule
                             ("linear"/"constant"), temperature, sampler
                             ("default"/"disa"/"ddim"/"dpm_solver"/"dpm_solver++"), upper,
                             lower, strategy (also "adaptive"), dpm_order, budget, signal
    out.mask_len [K] I64     next-mask length per AR step (after the clamps)
    out.n_steps  [K] I64     diffusion steps the head runs per AR step: the requested count
                             after the sampler's clip merged duplicate timesteps (DiSA 50 -> 48)
    out.n_pred   [K] I64     tokens predicted per image per AR step
    out.cfg      [K] F32     guidance scale per AR step as the official float32 tensor
    out.tokens_steps [K, B, L, D] F32   tokens after each AR step
    out.tokens   [B, L, D] F32           final tokens
    out.image    [B, C, H, W] F32        unpatchify(out.tokens)
    out.row_steps [1] I64    adaptive: network evaluations summed over all tokens
    """
    cases = [
        # name, arch, sampler, K, cfg, sched, temp, upper, lower, strategy, B[, options]
        ("s16_default_nocfg", SEQ16, "default", 4, 1.0, "linear", 1.0, 8, 8, "linear", 2),
        ("s16_default_cfg", SEQ16, "default", 4, 3.0, "linear", 1.0, 8, 8, "linear", 2),
        ("s16_disa_nocfg_t09", SEQ16, "disa", 6, 1.0, "linear", 0.9, 12, 3, "linear", 2),
        ("s16_disa_cfg", SEQ16, "disa", 6, 2.5, "linear", 1.0, 12, 3, "linear", 3),
        ("s16_disa_cfg_cosine_const", SEQ16, "disa", 5, 4.0, "constant", 0.95, 10, 4, "cosine", 2),
        ("s16_disa_cfg_twostage_K1", SEQ16, "disa", 1, 2.0, "linear", 1.0, 6, 2, "two-stage", 2),
        ("s16_ddim_nocfg", SEQ16, "ddim", 5, 1.0, "linear", 1.0, 10, 4, "linear", 2),
        ("s16_ddim_cfg", SEQ16, "ddim", 5, 3.0, "linear", 1.0, 10, 4, "linear", 2),
        ("s64_disa_cfg", SEQ64, "disa", 8, 3.0, "linear", 1.0, 10, 3, "linear", 2),
        # The DPM solvers: the official call (order 1, no CFG), then disa's guided eps and
        # higher orders; the temperature is not used by them.
        ("s16_dpm_nocfg_o1", SEQ16, "dpm_solver", 5, 1.0, "linear", 1.0, 10, 4, "linear", 2, {"dpm_order": 1}),
        ("s16_dpmpp_nocfg_o1", SEQ16, "dpm_solver++", 5, 1.0, "linear", 0.9, 10, 4, "cosine", 2, {"dpm_order": 1}),
        ("s16_dpm_cfg_o2", SEQ16, "dpm_solver", 6, 3.0, "linear", 1.0, 12, 3, "linear", 2, {"dpm_order": 2}),
        ("s16_dpmpp_cfg_o3", SEQ16, "dpm_solver++", 5, 2.5, "constant", 1.0, 11, 3, "two-stage", 3, {"dpm_order": 3}),
        ("s64_dpmpp_cfg_o2", SEQ64, "dpm_solver++", 8, 3.0, "linear", 1.0, 10, 3, "linear", 2, {"dpm_order": 2}),
        # Adaptive (tools/marref/adaptive.py): counts per token, rows leaving early, the
        # noise blocks of the upper count; several tokens per AR step in the s64 case; no
        # CFG gives the cfg signal 0 and every token its even share.
        ("s16_adaptive_disa_cfg", SEQ16, "disa", 6, 3.0, "linear", 1.0, 12, 3, "adaptive", 2,
         {"budget": 6.3, "signal": "cfg"}),
        ("s64_adaptive_disa_var", SEQ64, "disa", 5, 2.0, "linear", 0.95, 10, 2, "adaptive", 2,
         {"budget": 5.2, "signal": "var"}),
        ("s16_adaptive_dpmpp_cfg_o2", SEQ16, "dpm_solver++", 5, 3.0, "linear", 1.0, 9, 2, "adaptive", 2,
         {"dpm_order": 2, "budget": 4.4, "signal": "cfg"}),
        ("s16_adaptive_disa_nocfg", SEQ16, "disa", 4, 1.0, "linear", 1.0, 8, 2, "adaptive", 2,
         {"budget": 5.3, "signal": "cfg"}),
        # 50 requested steps run 48 after the 950 clip: out.n_steps is the count run;
        # generated as the tenth case, its seeds stay
        ("s16_disa50_cfg", SEQ16, "disa", 3, 2.0, "linear", 1.0, 50, 5, "linear", 2, {"seed": 9}),
    ]
    for k, (case, arch, sampler, K, cfg, sched, temp, upper, lower, strategy, B, *opt) in enumerate(cases):
        opt = opt[0] if opt else {}
        k = opt.get("seed", k)
        dpm_order = opt.get("dpm_order", 1)
        model = mar_model(arch, seed=500 + k)
        labels = torch.from_numpy(np.random.default_rng(600 + k).integers(0, arch["class_num"], B).astype(np.int64))
        kw = dict(num_iter=K, cfg=cfg, cfg_schedule=sched, labels=labels, temperature=temp,
                  diff_sampler=sampler, upper_steps=upper, lower_steps=lower, annealing=strategy,
                  dpm_order=dpm_order, budget=opt.get("budget"), signal=opt.get("signal", "cfg"))
        np.random.seed(700 + k)
        torch.manual_seed(700 + k)
        rec = M.Randomness(record=True)
        trace32 = {}
        out32 = model.sample_tokens(B, rng=rec, trace=trace32, **kw)
        guided = cfg != 1.0
        adaptive = (lower, upper) if strategy == "adaptive" else None
        steps = [upper] * K if adaptive else gd.steps_for_sampler(K, sampler, upper, lower, strategy)
        draws = [step_draws(model, steps[s], sampler, guided, adaptive) for s in range(K)]
        orders, tape = split_tape(rec.tape, K, B, trace32["n_pred"], draws)

        # the per-image tape must reproduce the recorded float32 run exactly
        plan = draw_plan(K, trace32["n_pred"], draws)
        again = model.sample_tokens(B, rng=ImageTapeRandomness(orders, tape, plan), **kw)
        assert torch.equal(again, out32), f"{case}: per-image tape replay differs"

        m64 = mar_model(arch, seed=500 + k).double()
        trace64 = {}
        with exact_mode():
            out64 = m64.sample_tokens(B, rng=ImageTapeRandomness(orders, tape, plan), trace=trace64,
                                      dtype=torch.float64, **kw)
        assert trace64["mask_len"] == trace32["mask_len"] and trace64["n_pred"] == trace32["n_pred"]
        margin = None
        if adaptive:
            # The counts of the float32 and float64 runs must agree, and no value may sit
            # near a rounding edge, or the C run could round the other way.
            assert trace64["n"] == trace32["n"], f"{case}: adaptive counts differ between float32 and float64"
            margin = min(abs(abs(v - np.floor(v)) - 0.5) for r in trace64["raw"] for v in r)
            assert margin > 1e-3, f"{case}: a value {margin:.1e} from a rounding edge; pick another seed"
        err = (out32.double() - out64).abs().max().item()
        scale = out64.abs().max().item()
        # the loop feeds tokens back and divides by sqrt(alpha_bar) at high noise:
        # a wider margin than for one pass
        rtol = tolerance(err, scale, margin=50.0, floor=1e-5)
        steps_t = torch.stack([t for t in trace64["tokens"]], 0)
        tokens = steps_t[-1]
        t = {"in.labels": labels.numpy().astype(np.int64), "in.orders": orders, "in.tape": tape}
        t.update(params_of(model))
        t["out.mask_len"] = np.array(trace64["mask_len"], dtype=np.int64)
        # the count the head runs: distinct timesteps after the clip, a DPM solver's steps;
        # adaptive's trace already holds the most evaluations of a row
        run = (lambda n: n) if adaptive or sampler in dpm.SAMPLER_ALGO else \
            (lambda n: gd.make_tables(n, sampler).num_timesteps)
        t["out.n_steps"] = np.array([run(n) for n in trace64["n_steps"]], dtype=np.int64)
        t["out.n_pred"] = np.array(trace64["n_pred"], dtype=np.int64)
        t["out.cfg"] = np.array(trace64["cfg"], dtype=np.float32)
        t["out.tokens_steps"] = f32(steps_t)
        t["out.tokens"] = f32(tokens)
        t["out.image"] = f32(out64)
        if adaptive:
            evals = (lambda n: n) if sampler in dpm.SAMPLER_ALGO else \
                (lambda n: model.diffloss.tables(n, sampler).num_timesteps)
            t["out.row_steps"] = np.array([sum(evals(n) for r in trace64["n"] for n in r)], dtype=np.int64)
        conf = dict(export_cfg(model))
        conf.update(num_iter=K, cfg=cfg, cfg_schedule=sched, temperature=temp, sampler=sampler,
                    upper=upper, lower=lower, strategy=strategy, batch=B)
        if sampler in dpm.SAMPLER_ALGO:
            conf["dpm_order"] = dpm_order
        if adaptive:
            conf.update(budget=opt["budget"], signal=opt["signal"])
        steps_txt = (f"adaptive budget {opt['budget']} ({opt['signal']}) counts {trace64['n']}, "
                     f"{margin:.3f} from a rounding edge" if adaptive else f"steps {steps}")
        save(f"mar_sample_{case}", "mar_sample", t, conf,
             f"sample_tokens {sampler}{' order %d' % dpm_order if sampler in dpm.SAMPLER_ALGO else ''} "
             f"K={K} cfg={cfg} {sched} T={temp} {steps_txt} "
             f"({model.seq_len} tokens of {model.token_embed_dim}, B={B}); "
             f"float32 run vs float64: {err / max(scale, 1e-30):.1e} normwise",
             rtol=rtol, atol=rtol * 1e-2)


def main():
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    gen_forward()
    gen_diffloss_net()
    gen_sample()
    for p, s in _written:
        print(f"{os.path.relpath(p)}  {s} bytes")


if __name__ == "__main__":
    main()
