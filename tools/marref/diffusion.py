"""Gaussian diffusion used by the MAR diffusion head: schedules, respacing, DiSA step
counts, one sampler step, and the training loss.

Mirrors LTH14/mar and Qinyu-Allen-Zhao/DiSA (MAR_DiSA) diffusion/gaussian_diffusion.py,
diffusion/respace.py, diffusion/__init__.py (create_diffusion) and the step choice in
models/diffloss.py: DiffLoss.sample. DESIGN sections 6 and 7.

Tables are numpy float64, as the official code keeps them; the steps take float32 torch
tensors and read table entries through `_extract`, which rounds the float64 value to
float32 exactly like the official `_extract_into_tensor` (`.float()`). When the tensors
are float64 (golden generation) the float32-rounded table value is widened, so the only
difference to the official run is the arithmetic precision.
"""
import math

import numpy as np
import torch

T_TRAIN = 1000

# Per-sampler timestep clip (MAR_DiSA diffusion/__init__.py create_diffusion):
# DiffLoss builds "default" with clip_timesteps=1001 (a no-op), "DiSA" with the default
# 950 and "DDIM" with 980.
SAMPLER_CLIP = {"default": None, "disa": 950, "ddim": 980}

# Official --diff_annealing_strategy names.
STRATEGIES = ("linear", "cosine", "two-stage", "constant")


# ----------------------------------------------------------------------------
# schedules and respacing

def cosine_betas(T=T_TRAIN):
    """Improved-DDPM cosine schedule, betas clipped at 0.999 (betas_for_alpha_bar)."""
    def alpha_bar(u):
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = []
    for i in range(T):
        t1 = i / T
        t2 = (i + 1) / T
        betas.append(min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999))
    return np.array(betas, dtype=np.float64)


def space_timesteps(T, spec):
    """Kept original timesteps for a respacing spec "N" (or "N1,N2,..") or "ddimN".

    Follows the MAR_DiSA respace.space_timesteps: for "ddimN" it searches the smallest
    integer stride with exactly N values in range(0, T', stride) for T' = T, T-1, ...
    (the original MAR code only tries T' = T and raises when no stride fits)."""
    if isinstance(spec, str):
        if spec.startswith("ddim"):
            want = int(spec[len("ddim"):])
            n = T
            while n > 1:
                for i in range(1, n):
                    if len(range(0, n, i)) == want:
                        return sorted(range(0, n, i))
                n -= 1
            raise ValueError(f"cannot create exactly {want} steps with an integer stride")
        counts = [int(x) for x in spec.split(",")]
    else:
        counts = [int(x) for x in spec]
    size_per = T // len(counts)
    extra = T % len(counts)
    start = 0
    kept = []
    for k, count in enumerate(counts):
        size = size_per + (1 if k < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            # Python round() is half-to-even and cur accumulates in double: both matter
            # for which integers are kept.
            kept.append(start + round(cur))
            cur += stride
        start += size
    return sorted(set(kept))


def clip_timesteps(steps, clip):
    """min(v, clip) for every kept value; duplicates merge (SpacedDiffusion keeps a set)."""
    if clip is None:
        return sorted(set(int(v) for v in steps))
    return sorted(set(min(int(v), int(clip)) for v in steps))


class Tables:
    """Respaced diffusion tables (float64) plus the original timestep of each index."""

    def __init__(self, betas, timestep_map):
        betas = np.array(betas, dtype=np.float64)
        assert betas.ndim == 1 and (betas > 0).all() and (betas <= 1).all()
        self.num_timesteps = int(betas.shape[0])
        self.timestep_map = np.array(timestep_map, dtype=np.int64)
        self.betas = betas
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # pv[0] is 0; the official code repeats pv[1] there. With a single step the
        # official table is empty (and sampling would fail); pv[0] stands in so a one-step
        # table still has one entry.
        if self.num_timesteps > 1:
            self.posterior_log_variance_clipped = np.log(
                np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        else:
            self.posterior_log_variance_clipped = np.log(np.maximum(self.posterior_variance, 1e-20))
        self.log_betas = np.log(betas)
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)


def spaced_tables(use_timesteps, T=T_TRAIN):
    """SpacedDiffusion: walk the original alphas_cumprod, beta' = 1 - ac/last_ac."""
    base = Tables(cosine_betas(T), np.arange(T))
    keep = set(int(v) for v in use_timesteps)
    last = 1.0
    betas, tmap = [], []
    for i, ac in enumerate(base.alphas_cumprod):
        if i in keep:
            betas.append(1 - ac / last)
            last = ac
            tmap.append(i)
    return Tables(np.array(betas), tmap)


def sampler_timesteps(n_steps, sampler):
    """Kept original timesteps for `n_steps` under sampler default / disa / ddim."""
    if sampler not in SAMPLER_CLIP:
        raise ValueError(f"unknown sampler '{sampler}' (default, disa, ddim)")
    spec = ("ddim%d" % n_steps) if sampler == "ddim" else str(n_steps)
    return clip_timesteps(space_timesteps(T_TRAIN, spec), SAMPLER_CLIP[sampler])


def make_tables(n_steps, sampler):
    return spaced_tables(sampler_timesteps(n_steps, sampler))


def train_tables():
    """All 1000 steps, no clip: the original MAR training diffusion.

    (MAR_DiSA's create_diffusion applies its default 950 clip to the training diffusion
    too, which would train on t in 0..950 only; DiSA itself never trains, so the MAR
    behaviour is kept here.)"""
    return spaced_tables(range(T_TRAIN))


# ----------------------------------------------------------------------------
# DiSA: diffusion step count per AR step

def disa_index(s, K, L, strategy):
    """Index j into the list of step counts lower..upper (L entries) for AR step s of K.

    MAR_DiSA models/diffloss.py: DiffLoss.sample, with upper_step = K - 1. K = 1 would
    divide by zero there; it returns the top entry instead."""
    u = K - 1
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown annealing strategy '{strategy}' {STRATEGIES}")
    if u == 0:
        return L - 1
    if strategy == "linear":
        return int((u - s) / u * (L - 1))
    if strategy == "cosine":
        return int((math.cos(math.pi * s / u) + 1) / 2 * (L - 1))
    if strategy == "constant":
        return 0
    return L - 1 if s < u / 2 else 0


def disa_steps(K, upper, lower, strategy):
    """Diffusion step counts for AR steps 0..K-1 (entry j of lower..upper is lower+j)."""
    if not (1 <= lower <= upper):
        raise ValueError(f"need 1 <= lower <= upper, got lower={lower} upper={upper}")
    L = upper - lower + 1
    return [lower + disa_index(s, K, L, strategy) for s in range(K)]


def steps_for_sampler(K, sampler, upper, lower, strategy):
    """Step count per AR step as MAR_DiSA uses it: "default" always runs `upper` steps
    (the annealing strategy is ignored), "disa"/"ddim"/"dpm_solver"/"dpm_solver++" anneal."""
    if sampler == "default":
        return [upper] * K
    return disa_steps(K, upper, lower, strategy)


# ----------------------------------------------------------------------------
# one reverse step (torch)

def _extract(arr, i, like):
    """Table entry i as a scalar tensor: float64 -> float32 rounding as the official
    _extract_into_tensor does, then in the dtype of `like`."""
    v = torch.tensor(float(arr[i]), dtype=torch.float64).float()
    return v.to(dtype=like.dtype)


def predict_xstart(tab, i, x, eps):
    return _extract(tab.sqrt_recip_alphas_cumprod, i, x) * x - _extract(tab.sqrt_recipm1_alphas_cumprod, i, x) * eps


def learned_range_log_variance(tab, i, var_values):
    """LEARNED_RANGE: var_values in [-1, 1] interpolate log(beta) and the clipped
    posterior log variance."""
    min_log = _extract(tab.posterior_log_variance_clipped, i, var_values)
    max_log = _extract(tab.log_betas, i, var_values)
    frac = (var_values + 1) / 2
    return frac * max_log + (1 - frac) * min_log


def posterior_mean(tab, i, x0, x):
    return _extract(tab.posterior_mean_coef1, i, x) * x0 + _extract(tab.posterior_mean_coef2, i, x) * x


def ddpm_step(tab, i, x, eps, var_values, noise, temperature=1.0):
    """GaussianDiffusion.p_sample at spaced index i (clip_denoised=False): returns x_{i-1}.

    x, eps, var_values, noise: [N, C]. No noise is added at i == 0 (the draw is still
    consumed by the caller, as the official loop draws it)."""
    log_var = learned_range_log_variance(tab, i, var_values)
    x0 = predict_xstart(tab, i, x, eps)
    mean = posterior_mean(tab, i, x0, x)
    nonzero = 1.0 if i != 0 else 0.0
    return mean + nonzero * torch.exp(0.5 * log_var) * noise * temperature


def ddim_step(tab, i, x, eps):
    """GaussianDiffusion.ddim_sample with eta = 0 (clip_denoised=False): x_{i-1}."""
    x0 = predict_xstart(tab, i, x, eps)
    eps2 = (_extract(tab.sqrt_recip_alphas_cumprod, i, x) * x - x0) / _extract(tab.sqrt_recipm1_alphas_cumprod, i, x)
    abar_prev = _extract(tab.alphas_cumprod_prev, i, x)
    # sigma = eta * ... = 0, so the official noise term vanishes.
    return x0 * torch.sqrt(abar_prev) + torch.sqrt(1 - abar_prev) * eps2


# ----------------------------------------------------------------------------
# training loss (GaussianDiffusion.training_losses, LossType.MSE + LEARNED_RANGE)

def q_sample(tab, x_start, t, noise):
    a = torch.from_numpy(tab.sqrt_alphas_cumprod).to(x_start.device)[t].float().to(x_start.dtype)
    b = torch.from_numpy(tab.sqrt_one_minus_alphas_cumprod).to(x_start.device)[t].float().to(x_start.dtype)
    return a[:, None] * x_start + b[:, None] * noise


def _gather(arr, t, like):
    return torch.from_numpy(arr).to(like.device)[t].float().to(like.dtype)[:, None]


def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + ((mean1 - mean2) ** 2) * torch.exp(-logvar2))


def _approx_std_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min,
                                   torch.log(cdf_delta.clamp(min=1e-12))))


def training_losses(tab, net, x_start, t, c, noise=None):
    """Per-row loss [N] = mse(eps) + vb (bits), the variance learned through vb only.

    net(x_t, t, c) -> [N, 2C]; x_start [N, C]; t [N] int64 indices into tab (the training
    tables are unspaced, so index == original timestep)."""
    if noise is None:
        noise = torch.randn_like(x_start)
    x_t = q_sample(tab, x_start, t, noise)
    out = net(x_t, torch.from_numpy(tab.timestep_map).to(t.device)[t], c)
    C = x_start.shape[1]
    eps, var_values = out[:, :C], out[:, C:]
    # vb with the mean frozen: the variance head must not move the eps prediction.
    eps_f = eps.detach()
    min_log = _gather(tab.posterior_log_variance_clipped, t, x_t)
    max_log = _gather(tab.log_betas, t, x_t)
    frac = (var_values + 1) / 2
    model_log_var = frac * max_log + (1 - frac) * min_log
    x0 = _gather(tab.sqrt_recip_alphas_cumprod, t, x_t) * x_t - _gather(tab.sqrt_recipm1_alphas_cumprod, t, x_t) * eps_f
    model_mean = _gather(tab.posterior_mean_coef1, t, x_t) * x0 + _gather(tab.posterior_mean_coef2, t, x_t) * x_t
    true_mean = _gather(tab.posterior_mean_coef1, t, x_t) * x_start + _gather(tab.posterior_mean_coef2, t, x_t) * x_t
    true_log_var = min_log
    kl = normal_kl(true_mean, true_log_var, model_mean, model_log_var).mean(dim=1) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x_start, model_mean, 0.5 * model_log_var).mean(dim=1) / math.log(2.0)
    vb = torch.where(t == 0, nll, kl)
    mse = ((noise - eps) ** 2).mean(dim=1)
    return mse + vb
