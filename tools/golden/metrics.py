"""Golden cases for src/metrics: tests/golden/metrics_<op>_<case>.safetensors.

The references are written here from the published formulas of the community tools
(numpy / scipy, float64), not imported from them:
  fid  - statistics as torch-fidelity fid_features_to_statistics (np.cov, ddof 1; the
         mean in float64), FID in torch-fidelity's eigenvalue form (LTH14 fork
         0.4.0-beta: sqrt of eigvals cast to complex128, real part) and in the
         pytorch-fid / ADM evaluator sqrtm form (scipy.linalg.sqrtm, eps 1e-6 retry);
  isc  - torch-fidelity isc_features_to_metric (RandomState(seed).permutation, float64
         softmax, splits, mean / population std) and the ADM evaluator's
         compute_inception_score (contiguous splits, no shuffle);
  prc  - improved precision/recall with k-NN radii (kthvalue(k + 1) within a set),
         precision over the generated set against reference balls, recall the reverse;
  mt19937_permutation - numpy.random.RandomState(seed).permutation(n) and raw draws.
Large feature sets are not stored: they are listed in `param_gen` (tensor name ->
seed, scale, offset, shape) and both sides regenerate them with stio.dgen.

Run with Debian's Python: /usr/bin/python3 tools/golden/metrics.py  (or make goldens)
"""
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import stio  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'golden')
_rng = np.random.default_rng(20250523)


def save(op, case, tensors, config, description, rtol, atol, param_gen=None):
    meta = {"op": op, "config": json.dumps(config, sort_keys=True), "rtol": repr(rtol), "atol": repr(atol),
            "generator": "tools/golden/metrics.py", "description": description}
    if param_gen:
        meta["param_gen"] = json.dumps(param_gen, sort_keys=True)
    path = os.path.join(OUT_DIR, f"metrics_{op}_{case}.safetensors")
    stio.save_file(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)
    print(path)


def gen(pg, name, seed, shape, scale, offset=None):
    """Register a generated tensor in param_gen and return its values."""
    e = {"seed": seed, "scale": scale, "shape": list(shape)}
    if offset is not None:
        e["offset"] = offset
    pg[name] = e
    return stio.dgen(seed, shape, scale, offset)


# ----------------------------------------------------------------------------
# FID

def stats(x):
    x = x.astype(np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def fid_eig(mu1, s1, mu2, s2):
    diff = mu1 - mu2
    tr = np.sum(np.sqrt(np.linalg.eigvals(s1.dot(s2)).astype("complex128")).real)
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * tr)


def fid_sqrtm(mu1, s1, mu2, s2, eps=1e-6):
    diff = mu1 - mu2
    used = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
        if not np.isfinite(covmean).all():
            used = 1
            off = np.eye(s1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3), "imaginary component"
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)), used


def fid_case(case, x1, x2, desc, pg=None, stored=True, given=None):
    if given is None:
        mu1, s1 = stats(x1)
        mu2, s2 = stats(x2)
    else:
        # Stored as F32 (the runner reads float32): the reference uses the rounded values.
        given = tuple(a.astype(np.float32) for a in given)
        mu1, s1, mu2, s2 = (a.astype(np.float64) for a in given)
    fe = fid_eig(mu1, s1, mu2, s2)
    fs, used = fid_sqrtm(mu1, s1, mu2, s2)
    t = {}
    if given is not None:
        t["in.mu1"], t["in.sigma1"], t["in.mu2"], t["in.sigma2"] = given
    elif stored:
        t["in.x1"], t["in.x2"] = x1, x2
    t["out.mu1"] = mu1.astype(np.float32)
    t["out.mu2"] = mu2.astype(np.float32)
    t["out.sigma1_diag"] = np.diag(s1).astype(np.float32)
    t["out.sigma2_row0"] = s2[0].astype(np.float32)
    t["out.fid_eig"] = np.array([fe], np.float32)
    t["out.fid_sqrtm"] = np.array([fs], np.float32)
    t["out.offset_used"] = np.array([used], np.int64)
    print(f"  fid {case}: eig {fe:.9g} sqrtm {fs:.9g} offset_used {used}")
    save("fid", case, t, {"eps": 1e-6}, desc, rtol=1e-4, atol=1e-6, param_gen=pg)


def gen_fid():
    # 64-d correlated features (a random linear map of skewed noise), two distributions.
    d = 64
    L1 = _rng.normal(size=(d, d)) / np.sqrt(d)
    L2 = L1 + 0.3 * _rng.normal(size=(d, d)) / np.sqrt(d)
    x1 = np.maximum(_rng.normal(size=(300, d)) @ L1 + 0.3, 0).astype(np.float32)
    x2 = np.maximum(_rng.normal(size=(250, d)) @ L2 + 0.2, 0).astype(np.float32)
    fid_case("d64", x1, x2, "64-d ReLU'd correlated features, 300 vs 250 samples")
    # Fewer samples than dimensions: both covariances are singular (rank 39 / 47), the
    # product has ~25 zero eigenvalues, scipy's sqrtm overflows and retries with eps.
    x1 = np.maximum(_rng.normal(size=(40, d)) @ L1 + 0.3, 0).astype(np.float32)
    x2 = np.maximum(_rng.normal(size=(48, d)) @ L2 + 0.2, 0).astype(np.float32)
    fid_case("d64_singular", x1, x2, "64-d, 40 vs 48 samples: singular covariances (sqrtm eps retry)")
    # Same set against itself: FID ~ 0 (relative tolerance on ~0 is meaningless: atol).
    x1 = np.maximum(_rng.normal(size=(200, d)) @ L1 + 0.3, 0).astype(np.float32)
    fid_case("d64_self", x1, x1, "64-d set against itself (FID ~ 0)")
    # Statistics given directly (float64): s1 s2 has the nilpotent block [[0, t], [0, 0]],
    # so the upper-triangular recurrence meets 0 / 0 with t != 0, scipy's sqrtm returns
    # NaN and the eps = 1e-6 retry gives the answer.
    t = 1e-7
    B = _rng.normal(size=(5, 5))
    C = _rng.normal(size=(5, 5))
    s1 = np.zeros((7, 7))
    s2 = np.zeros((7, 7))
    s1[:2, :2] = [[0, t], [t, 0]]
    s1[2:, 2:] = B @ B.T
    s2[:2, :2] = [[0, 0], [0, 1]]
    s2[2:, 2:] = C @ C.T
    mu1, mu2 = _rng.normal(size=7), _rng.normal(size=7)
    fid_case("d7_retry", None, None, "7-d statistics whose sqrtm fails: the eps retry path", given=(mu1, s1, mu2, s2))
    # 2048-d, generated features (not stored): iid uniform with different scale and
    # offset; 2100 samples for 2048 dimensions make the covariances ill-conditioned
    # (smallest eigenvalue ~1e-4 of the largest, Marchenko-Pastur).
    pg = {}
    x1 = gen(pg, "in.x1", 11, (2100, 2048), 1.0, 0.5)
    x2 = gen(pg, "in.x2", 12, (2100, 2048), 1.1, 0.45)
    fid_case("d2048", x1, x2, "2048-d generated features, 2100 samples each (ill-conditioned)", pg, stored=False)


# ----------------------------------------------------------------------------
# Inception Score

def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def isc_tf(logits, splits=10, shuffle=True, seed=2020):
    n = logits.shape[0]
    if shuffle:
        logits = logits[np.random.RandomState(seed).permutation(n), :]
    lp = log_softmax(logits)
    p = np.exp(lp)
    scores = []
    for i in range(splits):
        a, b = i * n // splits, (i + 1) * n // splits
        q = p[a:b].mean(axis=0, keepdims=True)
        kl = (p[a:b] * (lp[a:b] - np.log(q))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def isc_adm(logits, split_size=5000):
    p = np.exp(log_softmax(logits))
    scores = []
    for i in range(0, len(p), split_size):
        part = p[i:i + split_size]
        kl = part * (np.log(part) - np.log(np.mean(part, 0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores))


def gen_isc():
    pg = {}
    x = gen(pg, "in.logits", 21, (1003, 1008), 6.0)
    m, s = isc_tf(x)
    a = isc_adm(x, 300)
    cfg = {"splits": 10, "shuffle": 1, "seed": 2020, "adm_split": 300}
    print(f"  isc n1003: {m:.9g} +- {s:.9g}, adm {a:.9g}")
    save("isc", "n1003_c1008", {"out.is_mean": np.array([m], np.float32), "out.is_std": np.array([s], np.float32),
                                "out.is_adm": np.array([a], np.float32)}, cfg,
         "1003 generated 1008-class logits: torch-fidelity IS (RandomState(2020) shuffle, 10 splits) and "
         "ADM IS with splits of 300", rtol=1e-6, atol=0.0, param_gen=pg)
    # Peaked logits of a few classes, no shuffle, uneven splits.
    x = (_rng.normal(size=(57, 10)) * 3).astype(np.float32)
    x[np.arange(57), _rng.integers(0, 10, 57)] += 8
    m, s = isc_tf(x, splits=4, shuffle=False)
    a = isc_adm(x, 20)
    cfg = {"splits": 4, "shuffle": 0, "seed": 2020, "adm_split": 20}
    save("isc", "n57_c10_noshuffle", {"in.logits": x, "out.is_mean": np.array([m], np.float32),
                                      "out.is_std": np.array([s], np.float32), "out.is_adm": np.array([a], np.float32)},
         cfg, "57 peaked 10-class logits, 4 splits without shuffle, ADM splits of 20", rtol=1e-6, atol=0.0)


# ----------------------------------------------------------------------------
# precision / recall

def sqdist(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0)


def prc(ref, gen_, k=3):
    r_ref = np.sort(sqdist(ref, ref), axis=1)[:, k]
    r_gen = np.sort(sqdist(gen_, gen_), axis=1)[:, k]
    d = sqdist(gen_, ref)  # [Ng, Nr]
    precision = (d <= r_ref[None, :]).any(axis=1).mean()
    recall = (d.T <= r_gen[None, :]).any(axis=1).mean()
    # Margin: how close the nearest decision is to its ball boundary (must not be a tie).
    margin = min(np.min(np.abs(d - r_ref[None, :]) / r_ref[None, :]), np.min(np.abs(d.T - r_gen[None, :]) / r_gen))
    return float(precision), float(recall), margin


def gen_prc():
    # Points near an 8-d linear manifold, so k-NN balls mean something in 2048-d too.
    for case, (nr, ng, d, shift) in {"d32": (400, 300, 32, 0.35), "d512": (150, 120, 512, 0.3)}.items():
        # Redrawn until no point sits within 1e-5 (relative) of a ball boundary, so float32
        # rounding cannot flip a decision.
        margin = 0
        while margin <= 1e-5:
            A = _rng.normal(size=(8, d)) / np.sqrt(8)
            # F16-exact values: the file stores them as F16 to stay small.
            ref = (_rng.normal(size=(nr, 8)) @ A + 0.05 * _rng.normal(size=(nr, d))).astype(np.float16)
            g = ((_rng.normal(size=(ng, 8)) * 1.2 + shift) @ A + 0.05 * _rng.normal(size=(ng, d))).astype(np.float16)
            ref, g = ref.astype(np.float32), g.astype(np.float32)
            p, r, margin = prc(ref, g)
        print(f"  prc {case}: precision {p:.6f} recall {r:.6f} (closest boundary rel {margin:.2e})")
        save("prc", case, {"in.ref": ref.astype(np.float16), "in.gen": g.astype(np.float16), "out.precision": np.array([p], np.float32),
                           "out.recall": np.array([r], np.float32)}, {"k": 3},
             f"{nr} reference vs {ng} generated {d}-d points, k = 3", rtol=1e-7, atol=0.0)


# ----------------------------------------------------------------------------
# numpy legacy RandomState

def gen_mt():
    for seed, n in ((2020, 1003), (0, 10), (4294967295, 77)):
        perm = np.random.RandomState(seed).permutation(n).astype(np.int64)
        draws = np.random.RandomState(seed).randint(0, 2 ** 32, size=700, dtype=np.uint32).astype(np.int64)
        save("mt19937_permutation", f"seed{seed}_n{n}", {"out.perm": perm, "out.u32": draws},
             {"seed": seed, "n": n},
             f"numpy RandomState({seed}).permutation({n}) and its first 700 raw 32-bit draws", rtol=0.0, atol=0.0)


if __name__ == "__main__":
    which = sys.argv[1:] or ["fid", "isc", "prc", "mt"]
    for w in which:
        globals()["gen_" + w]()
