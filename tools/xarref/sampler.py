"""The flow samplers of xAR (Qinyu-Allen-Zhao/DiSA xAR_DiSA/models/sampler.py).

Both integrate the learned velocity from t = 1 (noise) to t = 0 (data) on the linear
path x_t = (1 - t) x_0 + t eps, in float64, calling the network in the dtype of the
start latents:

  euler_sampler           num_steps Euler steps on linspace(1, 0, num_steps + 1)
  euler_maruyama_sampler  the SDE with diffusion 2t and the score derived from the
                          velocity: num_steps - 1 stochastic steps on
                          linspace(1, 0.04, num_steps), then one deterministic step from
                          0.04 to 0 (what xAR.sample_tokens uses)

Every network call evaluates the conditional and the unconditional batch (the official
guidance interval [0, 1] holds every t); guidance applies when cfg_scale > 1.

The first call of each AR step feeds the previous group's clean tokens in front of the
noisy ones (time 0 for them), with the block-causal mask, and stores the keys and values
of everything but the noisy group in the network's cache; later calls see only the
noisy group and read the cache. The official loop decides "first call" from the
variable of its for loop, which is unset (num_steps = 1: NameError) or still 0 at the
final step (num_steps = 2: the final call re-feeds the previous group and stores it in
the cache twice). Here the first call is always call 0 and the final step is never a
first call, which is what the official code does for num_steps >= 3.

Randomness goes through `rng` (tools/xarref/model.py: Randomness) so runs can be recorded
and replayed.

Deviation kept for the float64 reference: the time value reaches the network as float32
(`time_dtype`), as in the official float32 run, so the integer timestep
int(float32(t) * 1000) is the same in both runs.
"""
import numpy as np
import torch


def expand_t_like_x(t, x):
    return t.view(t.size(0), *([1] * (x.dim() - 1)))


def get_score_from_velocity(vt, xt, t, path_type="linear"):
    """Score of x_t from the velocity on the linear (or cosine) interpolation path."""
    t = expand_t_like_x(t, xt)
    if path_type == "linear":
        alpha_t, d_alpha_t = 1 - t, torch.ones_like(xt) * -1
        sigma_t, d_sigma_t = t, torch.ones_like(xt)
    elif path_type == "cosine":
        alpha_t = torch.cos(t * np.pi / 2)
        sigma_t = torch.sin(t * np.pi / 2)
        d_alpha_t = -np.pi / 2 * torch.sin(t * np.pi / 2)
        d_sigma_t = np.pi / 2 * torch.cos(t * np.pi / 2)
    else:
        raise NotImplementedError(path_type)
    reverse_alpha_ratio = alpha_t / d_alpha_t
    var = sigma_t ** 2 - reverse_alpha_ratio * d_sigma_t * sigma_t
    return (reverse_alpha_ratio * vt - xt) / var


def compute_diffusion(t_cur):
    return 2 * t_cur


def _guided(d, cfg_scale, guidance_low, guidance_high, t_cur):
    d_cond, d_uncond = d.chunk(2)
    if cfg_scale > 1. and guidance_low <= t_cur <= guidance_high:
        return d_uncond + cfg_scale * (d_cond - d_uncond)
    return d_cond


def _call(model, x_next, condition, first, y, uncond_label, t_cur, dtype, time_dtype, scale_index, mask):
    """One network evaluation of the doubled (conditional | unconditional) batch."""
    model_input = torch.cat([condition, x_next], dim=1) if (condition is not None and first) else x_next
    model_input = torch.cat([model_input, model_input], dim=0)
    y_cur = torch.cat([y, torch.full_like(y, uncond_label)], dim=0)
    time_input = torch.ones(model_input.size(0), dtype=torch.float64) * t_cur
    if first:
        # the clean previous group is at time 0 (no such group at AR step 0)
        zeros = torch.zeros(model_input.size(0) * (1 if scale_index else 0), dtype=torch.float64)
        out = model(model_input.to(dtype), y_cur, torch.cat([zeros, time_input.to(time_dtype)], dim=0),
                    True, scale_index, mask)
    else:
        out = model(model_input.to(dtype), y_cur, time_input.to(time_dtype), False, scale_index)
    return out.to(torch.float64), model_input, time_input


def euler_update(x_cur, d_cur, t_cur, t_next, cfg_scale, guidance_low=0.0, guidance_high=1.0):
    """One Euler step from the velocity d_cur of the doubled batch."""
    d_cur = _guided(d_cur, cfg_scale, guidance_low, guidance_high, t_cur)
    return x_cur + (t_next - t_cur) * d_cur


def em_update(x_cur, v_cur, model_input, t_cur, t_next, eps_i, cfg_scale, guidance_low=0.0, guidance_high=1.0,
              path_type="linear"):
    """One Euler-Maruyama step from the velocity v_cur of the doubled batch whose noisy
    rows are model_input (x_cur twice); eps_i None: the final, noise-free step."""
    dt = t_next - t_cur
    diffusion = compute_diffusion(t_cur)
    time_input = torch.ones(model_input.size(0), dtype=torch.float64) * t_cur
    s_cur = get_score_from_velocity(v_cur, model_input, time_input, path_type=path_type)
    d_cur = v_cur - 0.5 * diffusion * s_cur
    d_cur = _guided(d_cur, cfg_scale, guidance_low, guidance_high, t_cur)
    if eps_i is None:
        return x_cur + dt * d_cur
    deps = eps_i * torch.sqrt(torch.abs(dt))
    return x_cur + d_cur * dt + torch.sqrt(diffusion) * deps


@torch.no_grad()
def euler_sampler(model, latents, y, scale_index, condition=None, num_steps=50, cfg_scale=1.0,
                  guidance_low=0.0, guidance_high=1.0, mask=None, uncond_label=1000, time_dtype=None,
                  trace=None):
    dtype = latents.dtype
    time_dtype = time_dtype or dtype
    t_steps = torch.linspace(1, 0, num_steps + 1, dtype=torch.float64)
    x_next = latents.to(torch.float64)
    for i in range(num_steps):
        t_cur, t_next = t_steps[i], t_steps[i + 1]
        x_cur = x_next
        d_cur, _, _ = _call(model, x_next, condition, i == 0, y, uncond_label, t_cur, dtype, time_dtype,
                            scale_index, mask)
        x_next = euler_update(x_cur, d_cur, t_cur, t_next, cfg_scale, guidance_low, guidance_high)
        if trace is not None:
            trace.append(x_next.clone())
    return x_next


@torch.no_grad()
def euler_maruyama_sampler(model, latents, y, scale_index, condition=None, num_steps=50, cfg_scale=1.0,
                           guidance_low=0.0, guidance_high=1.0, path_type="linear", mask=None, rng=None,
                           uncond_label=1000, time_dtype=None, trace=None):
    dtype = latents.dtype
    time_dtype = time_dtype or dtype
    G = latents.shape[1]
    t_steps = torch.linspace(1., 0.04, num_steps, dtype=torch.float64)
    t_steps = torch.cat([t_steps, torch.tensor([0.], dtype=torch.float64)])
    x_next = latents.to(torch.float64)
    for i in range(num_steps):
        last = i == num_steps - 1
        t_cur, t_next = t_steps[i], t_steps[i + 1]
        x_cur = x_next
        eps_i = None if last else rng.randn(tuple(x_cur.shape), torch.float64)
        v_cur, model_input, _ = _call(model, x_next, condition, i == 0, y, uncond_label, t_cur, dtype, time_dtype,
                                      scale_index, mask)
        x_next = em_update(x_cur, v_cur, model_input[:, -G:], t_cur, t_next, eps_i, cfg_scale, guidance_low,
                           guidance_high, path_type)
        if trace is not None:
            trace.append(x_next.clone())
    return x_next
