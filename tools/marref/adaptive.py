"""--diff_annealing_strategy adaptive: the diffusion steps of each token chosen from a signal
measured at the token's first network evaluation, under a budget of mean requested steps
per token. disa's own rule (not in the official code), stated in include/disa/adaptive.h;
the C implementation is src/sample/adaptive.c and computes the same doubles in the same
order, so the integer choices agree exactly (tests/golden/adaptive_*.safetensors).

Per image, at each AR step, for its rows with signals g_r:
  gbar = mean signal of the image's tokens so far, these rows included
  base = (budget * L - steps given so far) / (tokens without a count yet)
  n_r  = round(base * g_r / gbar)  (base when gbar = 0), at most what leaves `lower` for
         every later token, then clamped to [lower, upper].
"""
import math

SIGNALS = ("cfg", "var", "eps")


def tokens_per_step(K, L):
    """Tokens each image predicts at AR step s (MAR's mask schedule, DESIGN §5)."""
    out, n_unknown = [], L
    for s in range(K):
        ml = int(math.floor(L * math.cos(math.pi / 2.0 * (s + 1) / K)))
        ml = max(1, min(n_unknown - 1, ml))
        lo = 0 if s >= K - 1 else ml
        n = n_unknown - lo
        out.append(max(n, 0))
        n_unknown = lo if n > 0 else ml
    return out


class State:
    """One image's running totals."""

    def __init__(self):
        self.used = 0.0
        self.gsum = 0.0
        self.assigned = 0


def choose(g, L, lower, upper, budget, st):
    """Counts for the rows of one image at an AR step from their float32 signals g, and
    each row's value before rounding (for the golden generator's margin check)."""
    P = len(g)
    if P == 0:
        return [], []
    for v in g:
        st.gsum += float(v)
    gbar = st.gsum / float(st.assigned + P)
    total = float(budget) * float(L)
    left = L - st.assigned
    base = (total - st.used) / float(left) if left > 0 else 0.0
    out, raw = [], []
    for v in g:
        x = base * (float(v) / gbar) if gbar > 0 else base
        k = float(round(x)) if math.isfinite(x) else x
        cap = math.floor(total - st.used - float(lower) * float(left - 1))
        if k > cap:
            k = cap
        c = lower if not (k >= lower) else upper if k > upper else int(k)
        out.append(c)
        raw.append(x)
        st.used += c
        st.assigned += 1
        left -= 1
    return out, raw


def signals(out_c, out_u, eps, which):
    """Per-row signal (float32 values) from the first evaluation: out_c / out_u [R, 2C] the
    conditional / unconditional network outputs (out_u None without CFG), eps [R, C] the
    eps the sampler uses. Sums in float64 of the values as given."""
    import numpy as np
    C = eps.shape[1]
    oc = out_c.detach().double().numpy()
    if which == "cfg":
        if out_u is None:
            return np.zeros(oc.shape[0], dtype=np.float32)
        d = oc[:, :C] - out_u.detach().double().numpy()[:, :C]
        return np.sqrt((d * d).sum(1) / C).astype(np.float32)
    if which == "var":
        return (((oc[:, C:] + 1.0) / 2.0).sum(1) / C).astype(np.float32)
    e = eps.detach().double().numpy()
    return np.sqrt((e * e).sum(1) / C).astype(np.float32)
