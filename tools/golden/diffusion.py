"""Golden cases for the diffusion tables, the DiSA schedules and the reverse steps:
tests/golden/gd_*.safetensors and tests/golden/disa_*.safetensors.

The numbers come from the Python reference tools/marref/diffusion.py (which follows
MAR_DiSA diffusion/respace.py, gaussian_diffusion.py and models/diffloss.py
DiffLoss.sample); this script only picks the cases and writes them. C side:
src/sample/gd.c, src/sample/disa_sched.c, adapters in tests/parity/parity_sample.c.

- gd_tables: the respaced float64 tables rounded to F32 (the loader has no F64) and the
  timestep map as I64 (exact).
- disa_steps: the per-AR-step step counts as I64 (exact).
- gd_ddpm_step / gd_ddim_step: one step on float32 inputs, computed by the reference in
  float64 (table values rounded to float32 first, as the official _extract_into_tensor
  does) and rounded to float32 once, so the reported error is the C code's own.
- timestep_embedding: the float32 intermediates of TimestepEmbedder.timestep_embedding
  (the -ln(max_period) scalar, the exponent, the frequency, the argument) each rounded
  once from the exact value, and cos/sin in float64 of that float32 argument.

Run with Debian's PyTorch: /usr/bin/python3 tools/golden/diffusion.py  (or make goldens)
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import stio  # noqa: E402
from marref import diffusion as ref  # noqa: E402
from marref import model as refmodel  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'golden')

# The C tables are the same float64 values (only log() may differ by one double ulp, from
# numpy's SIMD log), so their float32 roundings agree; 1e-6 leaves room for that ulp.
TABLE_RTOL = 1e-6
# One float32 step: a few roundings, amplified by the x0 cancellation at high noise
# (sqrt(1/ac) ~ 13 at t = 950, ~ 160 at t = 999 unclipped). Measured below 1e-7 normwise.
STEP_RTOL, STEP_ATOL = 1e-6, 1e-7
# cos/sin of the float32 argument: one float32 rounding each.
EMB_RTOL, EMB_ATOL = 1e-6, 1e-7

# Table arrays checked besides timestep_map, in the order of DESIGN §6.
TABLES = ("betas", "log_betas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance",
          "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
          "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod")

_rng = np.random.default_rng(20250601)
_written = []


def save(name, op, tensors, config, description, rtol=0.0, atol=0.0):
    meta = {"op": op, "config": json.dumps(config, sort_keys=True), "rtol": repr(rtol),
            "atol": repr(atol), "generator": "tools/golden/diffusion.py",
            "description": description}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    stio.save_file(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)
    _written.append(path)


def d64(a):
    """float32 numpy -> float64 torch tensor (exact widening)."""
    return torch.from_numpy(np.asarray(a, dtype=np.float32)).double()


def f32(t):
    return t.detach().numpy().astype(np.float32)


# ----------------------------------------------------------------------------
# gd_tables: respacing + clip + tables

def gen_tables():
    for sampler in ("default", "disa", "ddim"):
        for n in (5, 25, 48, 50, 100):
            tab = ref.make_tables(n, sampler)
            t = {"out.timestep_map": tab.timestep_map.astype(np.int64)}
            for name in TABLES:
                t["out." + name] = getattr(tab, name).astype(np.float32)
            m = tab.timestep_map
            save(f"gd_tables_{sampler}_{n}", "gd_tables", t, {"n": n, "sampler": sampler},
                 f"{sampler} sampler, {n} steps -> {len(m)} distinct "
                 f"({m[0]}, {m[1]}, ..., {m[-2]}, {m[-1]})", rtol=TABLE_RTOL)


# ----------------------------------------------------------------------------
# disa_steps: step count per AR step

def gen_disa_steps():
    cases = [(s, K, 50, 5) for s in ref.STRATEGIES for K in (1, 2, 16, 64, 256)]
    # the official main_mar.py default range, and the degenerate ranges
    cases += [("linear", 64, 25, 5), ("cosine", 64, 100, 1), ("linear", 64, 7, 7)]
    for strategy, K, upper, lower in cases:
        steps = np.array(ref.disa_steps(K, upper, lower, strategy), dtype=np.int64)
        tag = "" if (upper, lower) == (50, 5) else f"_{upper}to{lower}"
        save(f"disa_steps_{strategy.replace('-', '')}_K{K}{tag}", "disa_steps",
             {"out.steps": steps},
             {"K": K, "upper": upper, "lower": lower, "strategy": strategy},
             f"DiSA {strategy}, K={K} AR steps, {upper}->{lower} diffusion steps "
             f"(sum {int(steps.sum())})")


# ----------------------------------------------------------------------------
# one reverse step

def step_inputs(N, C):
    x = _rng.standard_normal((N, C)).astype(np.float32)
    eps = _rng.standard_normal((N, C)).astype(np.float32)
    # DiffLoss var_values are meant to lie in [-1, 1]; a few rows go past it, as an
    # untrained head's do, since nothing clamps them.
    var = _rng.uniform(-1.0, 1.0, (N, C)).astype(np.float32)
    var[0, :4] = np.array([-1.5, 1.25, -1.0, 1.0], dtype=np.float32)
    noise = _rng.standard_normal((N, C)).astype(np.float32)
    return x, eps, var, noise


def gen_steps():
    N, C = 24, 16
    ddpm = [  # (case, sampler, n, i, temperature, why)
        ("disa50_top", "disa", 50, None, 1.0, "first step, t=950 (largest sqrt(1/ac) after the clip)"),
        ("default100_mid", "default", 100, 50, 0.95, "middle step, temperature 0.95"),
        ("default50_top", "default", 50, None, 1.0, "unclipped first step, t=999"),
        ("disa5_last", "disa", 5, 0, 1.0, "last step i=0: no noise added"),
    ]
    for case, sampler, n, i, temp, why in ddpm:
        tab = ref.make_tables(n, sampler)
        i = tab.num_timesteps - 1 if i is None else i
        x, eps, var, noise = step_inputs(N, C)
        temp32 = float(np.float32(temp))  # torch applies the Python scalar in float32
        y = ref.ddpm_step(tab, i, d64(x), d64(eps), d64(var), d64(noise), temp32)
        save(f"gd_ddpm_step_{case}", "gd_ddpm_step",
             {"in.x": x, "in.eps": eps, "in.var_values": var, "in.noise": noise, "out.x": f32(y)},
             {"n": n, "sampler": sampler, "i": i, "temperature": temp32},
             f"DDPM step {sampler} {n} steps, i={i} (t={tab.timestep_map[i]}): {why}",
             rtol=STEP_RTOL, atol=STEP_ATOL)
    ddim = [
        ("ddim50_top", 50, None, "first step, t=980"),
        ("ddim25_mid", 25, 12, "middle step"),
        ("ddim5_last", 5, 0, "last step i=0: x becomes x0"),
    ]
    for case, n, i, why in ddim:
        tab = ref.make_tables(n, "ddim")
        i = tab.num_timesteps - 1 if i is None else i
        x, eps, _, _ = step_inputs(N, C)
        y = ref.ddim_step(tab, i, d64(x), d64(eps))
        save(f"gd_ddim_step_{case}", "gd_ddim_step",
             {"in.x": x, "in.eps": eps, "out.x": f32(y)},
             {"n": n, "sampler": "ddim", "i": i},
             f"DDIM (eta 0) step, ddim{n}, i={i} (t={tab.timestep_map[i]}): {why}",
             rtol=STEP_RTOL, atol=STEP_ATOL)


# ----------------------------------------------------------------------------
# timestep embedding

def timestep_embedding_exact(t32, dim, max_period=10000):
    """TimestepEmbedder.timestep_embedding with each float32 intermediate rounded once
    from its exact value (the official code's torch.exp / cos / sin are float32 library
    calls whose last bits vary by CPU and library)."""
    half = dim // 2
    c = np.float32(-math.log(max_period))
    k = np.arange(half, dtype=np.float32)
    a = (c * k).astype(np.float32)                      # float32 product
    a = (a.astype(np.float64) / half).astype(np.float32)  # float32 division
    freqs = np.exp(a.astype(np.float64)).astype(np.float32)
    args = (t32.astype(np.float32)[:, None] * freqs[None]).astype(np.float32)
    emb = np.concatenate([np.cos(args.astype(np.float64)), np.sin(args.astype(np.float64))], axis=-1)
    if dim % 2:
        emb = np.concatenate([emb, np.zeros_like(emb[:, :1])], axis=-1)
    return emb.astype(np.float32)


def gen_timestep_embedding():
    t = np.array([0, 1, 17, 250, 500, 749, 949, 950, 980, 999, 0.5, 123.25], dtype=np.float32)
    for case, dim in (("256", 256), ("odd7", 7)):
        emb = timestep_embedding_exact(t, dim)
        # The official float32 computation must agree up to its library roundings
        # (one float32 ulp of a frequency moves cos(999 * f) by up to ~6e-5).
        off = refmodel.TimestepEmbedder.timestep_embedding(torch.from_numpy(t), dim).numpy()
        assert np.max(np.abs(off - emb)) < 2e-4, np.max(np.abs(off - emb))
        save(f"gd_timestep_embedding_{case}", "timestep_embedding",
             {"in.t": t, "out.emb": emb}, {"dim": dim, "max_period": 10000},
             f"sinusoidal timestep embedding, dim {dim}, {len(t)} timesteps incl. fractional",
             rtol=EMB_RTOL, atol=EMB_ATOL)


def main():
    torch.set_grad_enabled(False)
    gen_tables()
    gen_disa_steps()
    gen_steps()
    gen_timestep_embedding()
    total = sum(os.path.getsize(p) for p in _written)
    print(f"diffusion.py: wrote {len(_written)} files, {total / 1e6:.2f} MB, in {os.path.normpath(OUT_DIR)}")


if __name__ == "__main__":
    main()
