"""DPM-Solver and DPM-Solver++ (multistep) for the MAR diffusion head, as MAR_DiSA runs them.

Follows Qinyu-Allen-Zhao/DiSA MAR_DiSA models/diffloss.py (DiffLoss.__init__ and
DiffLoss.sample for --diff_sampler DPM_Solver / DPM_Solver++) and its
diffusion/dpm_solver.py (NoiseScheduleVP 'discrete', DPM_Solver.sample with
method='multistep'), with the settings DiffLoss.sample passes: t_start 0.95, t_end None
(= 1 / total_N), skip_type 'time_uniform', lower_order_final, no denoise_to_zero,
solver_type 'dpmsolver'. DiffLoss passes order=1; `order` 2 and 3 are the same solver's
higher orders.

What the official code does, step by step, and this module reproduces:
  - the noise schedule is built from DiffLoss.train_diffusion.betas. MAR_DiSA's
    create_diffusion applies its default clip_timesteps=950 to that diffusion too, so these
    are the 951 respaced betas 1 - ac[i]/ac[i-1] of timesteps 0..950 (not the 1000 cosine
    betas): log_alpha = 0.5 * cumsum(log(1 - betas)) in float64, the lambda < -5.1 clip
    (which removes nothing here), then float32; keypoint i sits at t = 0.95 (i+1) / 951;
  - log(alpha_t) between keypoints is the piecewise-linear interpolation of interpolate_fn
    (a value equal to a keypoint takes the segment that ends there, as torch's stable sort
    puts it first), everything in float32 one-element tensors;
  - the network is DiffLoss.dpm_forward: net(x, t * 1000, z), the eps half only. t * 1000
    is the continuous time scaled, not the discrete index: 950 at t = 0.95, and about
    i + (950 - i) / 951 for keypoint i;
  - multistep: the model at t_0, then `steps` updates, the first order-1 ones of order
    1, 2, ..., and with lower_order_final (steps < 10) min(order, steps + 1 - k) at the end;
    the model is evaluated `steps` times (NFE = steps); the start x is standard normal and
    no noise is drawn after it (the temperature is not used).

One deliberate difference: torch.linspace's float32 values depend on the build and the
device (the CPU kernel here adds its vector lanes without and its scalar tail with a fused
multiply-add; CUDA does something else), by an ulp or two. The time grid and the keypoints
here are the exact values rounded once to float32 (`grid`); `sample(..., linspace=
torch.linspace)` uses torch's own, and then agrees bit for bit with the official code (see
tools/golden/dpm.py --official).

All per-step scalars are float32 one-element tensors computed with the official operations
in the official order (`Plan`); the updates apply them in the dtype of x, so a float64 x
gives the float32-scalar answer to float64 accuracy (the goldens) and a float32 x the
official float32 run.

With CFG, DiffLoss.sample's DPM path calls the plain network on the doubled batch (no
guidance). disa feeds the solver the guided eps of forward_with_cfg instead
(`guided_eps`): our extension, documented in README.md.
"""
import numpy as np
import torch

from . import diffusion as gd

T_START = 0.95       # DiffLoss.sample: t_start=0.95; also NoiseScheduleVP.T
TRAIN_CLIP = 950     # create_diffusion's default clip_timesteps, applied to train_diffusion
CLIPPED_LAMBDA = -5.1
ALGORITHMS = ("dpmsolver", "dpmsolver++")
SAMPLER_ALGO = {"dpm_solver": "dpmsolver", "dpm_solver++": "dpmsolver++"}


def grid(start, end, n):
    """n float32 values from start to end: each the exact (float64) value of
    start + (end - start) * k / (n - 1), rounded once; the ends exact."""
    a, b = float(np.float32(start)), float(np.float32(end))
    if n == 1:
        return torch.tensor([a], dtype=torch.float32)
    v = [a + (b - a) * k / (n - 1) for k in range(n)]
    v[-1] = b
    return torch.tensor(np.array(v, dtype=np.float64).astype(np.float32))


def f32(v):
    return torch.as_tensor(v, dtype=torch.float32).reshape(1)


class Schedule:
    """NoiseScheduleVP('discrete') of DiffLoss.train_diffusion, float32."""

    def __init__(self, linspace=grid):
        betas = torch.from_numpy(gd.spaced_tables(range(TRAIN_CLIP + 1)).betas)
        log_alphas = 0.5 * torch.log(1 - betas).cumsum(dim=0)
        lam = log_alphas - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_alphas))
        # numerical_clip_alpha: drop the trailing steps whose lambda is below -5.1
        cut = int((lam < CLIPPED_LAMBDA).sum())
        if cut:
            log_alphas = log_alphas[:-cut]
        self.log_alpha = log_alphas.to(torch.float32)
        self.total_N = int(self.log_alpha.shape[0])
        self.t_array = linspace(0.0, T_START, self.total_N + 1)[1:].to(torch.float32)
        self.linspace = linspace

    def log_mean_coeff(self, t):
        """interpolate_fn(t, t_array, log_alpha) for one float32 time t ([1] tensor)."""
        xp, yp = self.t_array, self.log_alpha
        K = xp.shape[0]
        pos = int(torch.searchsorted(xp, t.reshape(1)).item())  # keypoints strictly below t
        j = min(max(pos - 1, 0), K - 2)
        sx, ex, sy, ey = xp[j:j + 1], xp[j + 1:j + 2], yp[j:j + 1], yp[j + 1:j + 2]
        return sy + (t - sx) * (ey - sy) / (ex - sx)

    def alpha(self, t):
        return torch.exp(self.log_mean_coeff(t))

    def sigma(self, t):
        return torch.sqrt(1.0 - torch.exp(2.0 * self.log_mean_coeff(t)))

    def lam(self, t):
        lmc = self.log_mean_coeff(t)
        return lmc - 0.5 * torch.log(1.0 - torch.exp(2.0 * lmc))


class Plan:
    """Time grid, network times and per-update scalars of one solver run.

    t [steps+1], t_input [steps] (the network time t_k * 1000 of evaluation k at t_k),
    alpha/sigma [steps] (x0 prediction scalars at t_k, DPM-Solver++), updates[k-1] for the
    update from t_{k-1} to t_k: dict(order, a, b, c, d, inv_r0, inv_r1, q, inv_r01), all
    float32 [1] tensors, such that with the newest model values m0, m1, m2:
      D1_0 = inv_r0 (m0 - m1), D1_1 = inv_r1 (m1 - m2),
      D1 = D1_0 + q (D1_0 - D1_1), D2 = inv_r01 (D1_0 - D1_1)
      order 1: x = a x - b m0
      order 2: x = a x - b m0 - c D1_0
      order 3: x = a x - b m0 -/+ c D1 - d D2     (+ for DPM-Solver++, - for DPM-Solver)
    """

    def __init__(self, sched, steps, order, algorithm):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm} {ALGORITHMS}")
        if order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3, got {order}")
        if steps < order:
            raise ValueError(f"{steps} steps cannot run order {order} (multistep needs steps >= order)")
        ns = sched
        self.steps, self.order, self.algorithm = steps, order, algorithm
        t_end = 1.0 / ns.total_N
        self.t = sched.linspace(T_START, t_end, steps + 1).to(torch.float32)
        self.t_input = [self.t[k:k + 1] * 1000 for k in range(steps)]
        self.alpha = [ns.alpha(self.t[k:k + 1]) for k in range(steps)]
        self.sigma = [ns.sigma(self.t[k:k + 1]) for k in range(steps)]
        self.updates = []
        for k in range(1, steps + 1):
            if k < order:
                o = k
            elif steps < 10:  # lower_order_final
                o = min(order, steps + 1 - k)
            else:
                o = order
            self.updates.append(self._update(ns, k, o))

    def _update(self, ns, k, o):
        pp = self.algorithm == "dpmsolver++"
        t = self.t[k:k + 1]
        tp = [self.t[k - 1 - i:k - i] for i in range(o)]  # tp[0] newest previous time
        lam_t, lam_p = ns.lam(t), [ns.lam(x) for x in tp]
        la_t, la_p0 = ns.log_mean_coeff(t), ns.log_mean_coeff(tp[0])
        sig_t, sig_p0 = ns.sigma(t), ns.sigma(tp[0])
        alpha_t = torch.exp(la_t)
        h = lam_t - lam_p[0]
        u = dict(order=o, c=f32(0), d=f32(0), inv_r0=f32(0), inv_r1=f32(0), q=f32(0), inv_r01=f32(0))
        # dpm_solver_first_update / multistep_dpm_solver_{second,third}_update
        if pp:
            phi_1 = torch.expm1(-h)
            u["a"] = sig_t / sig_p0
            u["b"] = alpha_t * phi_1
        else:
            phi_1 = torch.expm1(h)
            u["a"] = torch.exp(la_t - la_p0)
            u["b"] = sig_t * phi_1
        scale = alpha_t if pp else sig_t
        if o == 2:
            h_0 = lam_p[0] - lam_p[1]
            r0 = h_0 / h
            u["inv_r0"] = torch.reciprocal(r0) * 1.0  # Python's 1.0 / tensor
            u["c"] = 0.5 * (scale * phi_1)
        elif o == 3:
            h_1 = lam_p[1] - lam_p[2]
            h_0 = lam_p[0] - lam_p[1]
            r0, r1 = h_0 / h, h_1 / h
            u["inv_r0"] = torch.reciprocal(r0) * 1.0
            u["inv_r1"] = torch.reciprocal(r1) * 1.0
            u["q"] = r0 / (r0 + r1)
            u["inv_r01"] = torch.reciprocal(r0 + r1) * 1.0
            phi_2 = phi_1 / h + 1.0 if pp else phi_1 / h - 1.0
            phi_3 = phi_2 / h - 0.5
            u["c"] = scale * phi_2
            u["d"] = scale * phi_3
        return u


def _s(v, like):
    """A float32 scalar tensor in the dtype of `like` (exact widening for float64)."""
    return v.to(dtype=like.dtype)


def model_value(plan, k, x, eps):
    """What the solver keeps of evaluation k: eps (DPM-Solver) or the data prediction
    x0 = (x - sigma_t eps) / alpha_t (DPM-Solver++, data_prediction_fn)."""
    if plan.algorithm == "dpmsolver++":
        return (x - _s(plan.sigma[k], x) * eps) / _s(plan.alpha[k], x)
    return eps


def apply_update(plan, k, x, ms):
    """Update k (1..steps) of x with the newest model values ms = [m0, m1, m2][:order]."""
    u = plan.updates[k - 1]
    o = u["order"]
    S = lambda name: _s(u[name], x)  # noqa: E731
    if o == 1:
        return S("a") * x - S("b") * ms[0]
    d10 = S("inv_r0") * (ms[0] - ms[1])
    if o == 2:
        return S("a") * x - S("b") * ms[0] - S("c") * d10
    d11 = S("inv_r1") * (ms[1] - ms[2])
    d1 = d10 + S("q") * (d10 - d11)
    d2 = S("inv_r01") * (d10 - d11)
    if plan.algorithm == "dpmsolver++":
        return S("a") * x - S("b") * ms[0] + S("c") * d1 - S("d") * d2
    return S("a") * x - S("b") * ms[0] - S("c") * d1 - S("d") * d2


def sample(plan, x, eps_fn, trace=None):
    """Run the multistep solver from x (the start noise at t = 0.95).

    eps_fn(x, t_input) -> eps [N, C] (t_input a [1] float32 tensor: t * 1000). trace, when
    a list, receives x after every update."""
    ms = []  # newest first
    for k in range(plan.steps):
        if k > 0:
            x = apply_update(plan, k, x, ms)
            if trace is not None:
                trace.append(x.clone())
        ms.insert(0, model_value(plan, k, x, eps_fn(x, plan.t_input[k])))
        del ms[plan.order:]
    x = apply_update(plan, plan.steps, x, ms)
    if trace is not None:
        trace.append(x.clone())
    return x


def guided_eps(net, x, t_input, c, cfg, guided):
    """forward_with_cfg's guided eps for rows x: the network on [x; x] with c = [c_cond;
    c_uncond], eps_u + cfg (eps_c - eps_u) on the first C channels. Not guided: the plain
    network on x (c then has the rows of x only), DiffLoss.dpm_forward."""
    C = x.shape[1]
    t = t_input.to(torch.float32).expand(c.shape[0])
    if not guided:
        return net(x, t, c)[:, :C]
    out = net(torch.cat([x, x], 0), t, c)
    e_c, e_u = out[:x.shape[0], :C], out[x.shape[0]:, :C]
    return e_u + cfg * (e_c - e_u)
