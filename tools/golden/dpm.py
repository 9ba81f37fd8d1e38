"""Golden cases for the DPM-Solver / DPM-Solver++ head sampler: tests/golden/dpm_*.safetensors.

The numbers come from the Python reference tools/marref/dpm.py, which follows MAR_DiSA
diffusion/dpm_solver.py as DiffLoss.sample calls it (see its docstring). C side:
src/sample/dpm.c, adapters in tests/parity/parity_sample.c (dpm_schedule, dpm_plan) and
tests/parity/parity_model.c (dpm_solve).

- dpm_schedule: the float32 keypoints and log(alpha) of the noise schedule; exact.
- dpm_plan: the time grid, the network times, the data-prediction scalars and every
  update's order and scalars, all float32 one-element tensor results of the official
  operations. The time grid, the network times and the orders must match exactly; the
  scalars within PLAN_RTOL normwise: the C code performs the same float32 operations, but
  torch's CPU kernels evaluate exp / log / expm1 with SLEEF's 1-ulp vector routines even
  for one element, glibc rounds differently in the last bit (and the phi_2, phi_3 terms of
  order 3 cancel, which magnifies that bit).
- dpm_solve: the whole solver on a tiny random SimpleMLPAdaLN, without CFG (the official
  dpm_forward) and with the guided eps of forward_with_cfg (disa's extension). Expected
  x after every update computed with the network and the updates in float64 and the plan's
  float32 scalars (as the official code has them); the tolerance is 20x the measured
  normwise error of the float32 run.

--official DIR (DIR = a MAR_DiSA checkout, the folder holding diffusion/): before writing,
check that the reference with torch.linspace is bit-identical to the official DPM_Solver
in float32 (schedule, and sample() for both algorithms, orders 1-3, several step counts).

Run with Debian's PyTorch: /usr/bin/python3 tools/golden/dpm.py [--official DIR]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import stio  # noqa: E402
from marref import dpm  # noqa: E402
from marref import model as M  # noqa: E402
import mar_goldens as mg  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'golden')
GENERATOR = "tools/golden/dpm.py"
COEFS = ("a", "b", "c", "d", "inv_r0", "inv_r1", "q", "inv_r01")
# Last-bit differences of expf/logf/expm1f between SLEEF (torch) and glibc (C): measured
# up to 6.7e-7 normwise over the 48-step order-3 scalars.
PLAN_RTOL = 2e-6

_written = []


def save(name, op, tensors, config, description, rtol=0.0, atol=0.0):
    meta = {"op": op, "config": json.dumps(config, sort_keys=True), "rtol": repr(float(rtol)),
            "atol": repr(float(atol)), "generator": GENERATOR, "description": description}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    stio.save_file(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)
    _written.append(path)


def f32(t):
    return np.asarray(torch.as_tensor(t).detach().reshape(-1).numpy(), dtype=np.float32)


# ----------------------------------------------------------------------------
# schedule and plans

def gen_schedule(sched):
    save("dpm_schedule", "dpm_schedule",
         {"out.t_array": f32(sched.t_array), "out.log_alpha": f32(sched.log_alpha)}, {},
         f"NoiseScheduleVP('discrete') of the {sched.total_N} betas of MAR_DiSA's train_diffusion "
         f"(950 clip): keypoints t = 0.95 (i+1)/{sched.total_N} and log(alpha)")


PLANS = [  # steps, order, algorithm, why
    (1, 1, "dpmsolver", "one step"),
    (5, 1, "dpmsolver", "lower bound of DiSA 50->5, official order 1"),
    (50, 1, "dpmsolver++", "upper bound of DiSA 50->5, official order 1"),
    (2, 2, "dpmsolver++", "order 2 at its minimum step count"),
    (7, 2, "dpmsolver", "order 2, lower_order_final below 10 steps"),
    (25, 2, "dpmsolver++", "order 2, 25 steps"),
    (3, 3, "dpmsolver", "order 3 at its minimum step count"),
    (9, 3, "dpmsolver++", "order 3 with lower_order_final (9 < 10)"),
    (10, 3, "dpmsolver", "order 3, no lower_order_final (10 steps)"),
    (48, 3, "dpmsolver++", "order 3, 48 steps"),
]


def gen_plans(sched):
    for steps, order, algo, why in PLANS:
        p = dpm.Plan(sched, steps, order, algo)
        coef = np.array([[float(u[k]) for k in COEFS] for u in p.updates], dtype=np.float32)
        t = {"out.t": f32(p.t), "out.t_input": f32(torch.cat(p.t_input)),
             "out.alpha": f32(torch.cat(p.alpha)), "out.sigma": f32(torch.cat(p.sigma)),
             "out.order": np.array([u["order"] for u in p.updates], dtype=np.int64),
             "out.coef": coef.reshape(steps, len(COEFS))}
        tag = "pp" if algo == "dpmsolver++" else ""
        save(f"dpm_plan_{steps}_o{order}{tag}", "dpm_plan", t,
             {"steps": steps, "order": order, "algorithm": algo},
             f"{algo} multistep, {steps} steps, order {order}: {why}; orders "
             f"{[u['order'] for u in p.updates]}", rtol=PLAN_RTOL)


# ----------------------------------------------------------------------------
# whole solver

SOLVES = [  # name, C, w, zc, depth, N, steps, order, algorithm, cfg
    ("c16_s6_o1", 16, 32, 24, 2, 6, 6, 1, "dpmsolver", None),
    ("c16_s6_o1pp", 16, 32, 24, 2, 6, 6, 1, "dpmsolver++", None),
    ("c16_s8_o2", 16, 32, 24, 2, 5, 8, 2, "dpmsolver", None),
    ("c16_s12_o2pp", 16, 32, 24, 2, 5, 12, 2, "dpmsolver++", None),
    ("c16_s9_o3", 16, 32, 24, 2, 5, 9, 3, "dpmsolver", None),
    ("c16_s11_o3pp", 16, 32, 24, 2, 5, 11, 3, "dpmsolver++", None),
    ("c16_s5_o1_cfg", 16, 32, 24, 2, 4, 5, 1, "dpmsolver", 3.0),
    ("c16_s5_o1pp_cfg", 16, 32, 24, 2, 4, 5, 1, "dpmsolver++", 2.5),
    ("c4_s10_o2_cfg", 4, 32, 16, 2, 6, 10, 2, "dpmsolver", 4.0),
    ("c16_s7_o2pp_cfg", 16, 32, 24, 2, 4, 7, 2, "dpmsolver++", 3.0),
    ("c16_s4_o3_cfg", 16, 32, 24, 2, 4, 4, 3, "dpmsolver", 2.0),
    ("c49_s13_o3pp_cfg", 49, 48, 32, 3, 3, 13, 3, "dpmsolver++", 3.0),
]


def run_solver(sched, net, x0, c, steps, order, algo, cfg, dtype):
    p = dpm.Plan(sched, steps, order, algo)
    guided = cfg is not None
    trace = []
    x = torch.from_numpy(x0).to(dtype)
    cc = torch.from_numpy(c).to(dtype)
    with torch.no_grad():
        dpm.sample(p, x, lambda x_, ti: dpm.guided_eps(net, x_, ti, cc, cfg if guided else 1.0, guided), trace)
    return torch.stack(trace, 0)


def gen_solves(sched):
    for k, (case, C, w, zc, depth, N, steps, order, algo, cfg) in enumerate(SOLVES):
        torch.manual_seed(k)
        net = M.SimpleMLPAdaLN(C, w, 2 * C, zc, depth)
        mg.random_params(net, seed=900 + k)
        rng = np.random.default_rng(950 + k)
        x0 = rng.standard_normal((N, C)).astype(np.float32)
        c = rng.standard_normal((2 * N if cfg else N, zc)).astype(np.float32)
        xs32 = run_solver(sched, net, x0, c, steps, order, algo, cfg, torch.float32)
        with mg.exact_mode():
            xs64 = run_solver(sched, net.double(), x0, c, steps, order, algo, cfg, torch.float64)
        net.float()
        err = (xs32.double() - xs64).abs().max().item()
        scale = xs64.abs().max().item()
        rtol = mg.tolerance(err, scale)
        t = {"in.x": x0, "in.c": c}
        t.update({"param." + n: v.detach().numpy().astype(np.float32) for n, v in net.state_dict().items()})
        t["out.xs"] = xs64.numpy().astype(np.float32)
        t["out.x"] = xs64[-1].numpy().astype(np.float32)
        conf = {"in_channels": C, "model_channels": w, "z_channels": zc, "num_res_blocks": depth,
                "steps": steps, "order": order, "algorithm": algo}
        if cfg is not None:
            conf["cfg_scale"] = cfg
        save(f"dpm_solve_{case}", "dpm_solve", t, conf,
             f"{algo} order {order}, {steps} steps, SimpleMLPAdaLN C={C} w={w} N={N}"
             f"{', guided eps (cfg %g)' % cfg if cfg else ', plain network (official)'}; "
             f"float32 run vs float64: {err / max(scale, 1e-30):.1e} normwise",
             rtol=rtol, atol=rtol * 1e-2)


# ----------------------------------------------------------------------------
# the official code, when given

def check_official(root):
    sys.path.insert(0, root)
    from diffusion import create_diffusion  # noqa: E402
    from diffusion.dpm_solver import DPM_Solver, NoiseScheduleVP  # noqa: E402
    td = create_diffusion(timestep_respacing="", noise_schedule="cosine")
    ns = NoiseScheduleVP(betas=torch.from_numpy(td.betas), schedule='discrete')
    mine = dpm.Schedule(linspace=torch.linspace)
    assert torch.equal(ns.log_alpha_array[0], mine.log_alpha) and torch.equal(ns.t_array[0], mine.t_array)
    torch.manual_seed(0)
    net = M.SimpleMLPAdaLN(16, 64, 32, 40, 2)
    mg.random_params(net, seed=1)
    z = torch.randn(7, 40)
    n = 0
    for algo in dpm.ALGORITHMS:
        for order in (1, 2, 3):
            for steps in (order, 5, 9, 10, 13, 50):
                if steps < order:
                    continue
                x0 = torch.randn(7, 16)
                # DiffLoss.dpm_forward and DiffLoss.sample's call
                sol = DPM_Solver(model_fn=lambda x, t: net(x, t * 1000, z)[..., :16], noise_schedule=ns,
                                 algorithm_type=algo)
                want = sol.sample(x0.clone(), steps=steps, t_start=0.95, t_end=None, order=order,
                                  skip_type='time_uniform', method='multistep', lower_order_final=True,
                                  denoise_to_zero=False, solver_type='dpmsolver', atol=0.0078, rtol=0.05,
                                  return_intermediate=False)
                got = dpm.sample(dpm.Plan(mine, steps, order, algo), x0.clone(),
                                 lambda x, ti: dpm.guided_eps(net, x, ti, z, 1.0, False))
                assert torch.equal(want, got), (algo, order, steps, (want - got).abs().max().item())
                n += 1
    g = max((dpm.grid(0.95, 1 / mine.total_N, k) - torch.linspace(0.95, 1 / mine.total_N, k)).abs().max().item()
            for k in range(2, 1002))
    print(f"dpm.py: reference == official DPM_Solver bit for bit in {n} runs; exact grid vs torch.linspace: "
          f"max |diff| {g:.1e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", help="a MAR_DiSA folder (holding diffusion/dpm_solver.py) to check against")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    if args.official:
        check_official(args.official)
    sched = dpm.Schedule()
    gen_schedule(sched)
    gen_plans(sched)
    gen_solves(sched)
    total = sum(os.path.getsize(p) for p in _written)
    print(f"dpm.py: wrote {len(_written)} files, {total / 1e6:.2f} MB, in {os.path.normpath(OUT_DIR)}")


if __name__ == "__main__":
    main()
