// gd.c: respaced Gaussian diffusion tables and one reverse step (DESIGN §6).
//
// Mirrors MAR_DiSA (Qinyu-Allen-Zhao/DiSA) and LTH14/mar:
//   diffusion/__init__.py        create_diffusion (clip per sampler)
//   diffusion/respace.py         space_timesteps, SpacedDiffusion.__init__
//   diffusion/gaussian_diffusion.py  betas_for_alpha_bar, GaussianDiffusion.__init__,
//                                p_mean_variance + p_sample, ddim_sample, _extract_into_tensor
// The tables are computed in double with the same operations in the same order as
// numpy, so they are bit-identical to the official ones (tools/marref/diffusion.py is the
// Python reference, tests/golden/gd_*.safetensors the check).
#include "disa/diffusion.h"

#include "disa/err.h"
#include "disa/flags.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846 // Python's math.pi, the same double
#endif

// torch evaluates every element-wise op as its own kernel and rounds after each one;
// a fused multiply-add (which GCC emits by default on FMA targets, e.g. NATIVE=1 or
// aarch64) would round once and drift from the official result by an ulp per step.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// ----------------------------------------------------------------------------
// sampler enum

static const char *const k_sampler_names[GD_SAMPLER_COUNT] = {"default", "disa", "ddim", "dpm_solver",
                                                               "dpm_solver++"};

const char *gd_sampler_name(gd_sampler s) { return flag_enum_name(k_sampler_names, GD_SAMPLER_COUNT, (int)s); }

int gd_sampler_parse(const char *s, gd_sampler *out) {
    int k = 0, rc = flag_enum_parse(&k, s, k_sampler_names, GD_SAMPLER_COUNT, FLAG_ICASE, "diffusion sampler");
    if (!rc) *out = (gd_sampler)k;
    return rc;
}

int gd_sampler_is_dpm(gd_sampler s) {
    return s == GD_SAMPLER_DPM || s == GD_SAMPLER_DPM_PP;
}

int gd_sampler_clip(gd_sampler s) {
    // create_diffusion(clip_timesteps=...): DiffLoss passes 1001 for "default" (a no-op),
    // keeps the 950 default for "DiSA" and passes 980 for "DDIM".
    switch (s) {
    case GD_SAMPLER_DISA:
    case GD_SAMPLER_DPM:
    case GD_SAMPLER_DPM_PP: return 950;
    case GD_SAMPLER_DDIM: return 980;
    default: return GD_T_TRAIN - 1;
    }
}

// ----------------------------------------------------------------------------
// respacing

// Improved-DDPM cosine alpha_bar. Written as Python evaluates
// `math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2` (left to right; float ** 2 is libm
// pow) so the betas come out bit-identical.
static double alpha_bar(double u) {
    return pow(cos((u + 0.008) / 1.008 * M_PI / 2.0), 2.0);
}

// space_timesteps(1000, "n"): n values round(cur), cur accumulating a double stride.
// Both details decide which integers are kept: nearbyint() rounds half to even in the
// default rounding mode, like Python's round(), and the running sum (not k*stride)
// carries the same representation error as the Python loop (n = 31 keeps 500 where
// 15*stride would round to 499). keep[] marks the kept timesteps.
static void space_uniform(unsigned char *keep /*[GD_T_TRAIN]*/, int n) {
    double stride = n <= 1 ? 1.0 : (double)(GD_T_TRAIN - 1) / (double)(n - 1);
    double cur = 0.0;
    for (int k = 0; k < n; k++) {
        keep[(int)nearbyint(cur)] = 1;
        cur += stride;
    }
}

// space_timesteps(1000, "ddimN"): for T' = 1000, 999, ..., 2 the smallest stride i in
// 1..T'-1 with len(range(0, T', i)) == N, keeping range(0, T', i). Returns 0, or -1 when
// no T' admits one (N = 1 or N > 1000), which the official code raises as ValueError.
static int space_ddim(unsigned char *keep /*[GD_T_TRAIN]*/, int n) {
    for (int T = GD_T_TRAIN; T > 1; T--) {
        for (int i = 1; i < T; i++) {
            if ((T + i - 1) / i != n) continue; // len(range(0, T, i)) = ceil(T / i)
            for (int v = 0; v < T; v += i) keep[v] = 1;
            return 0;
        }
    }
    return -1;
}

// ----------------------------------------------------------------------------
// tables

// GaussianDiffusion.__init__ from betas[0..n-1] (already stored in t->betas). Every
// expression keeps numpy's operation order; cumprod is a sequential product.
static void fill_tables(gd_tables *t) {
    int n = t->n;
    double acc = 1.0;
    for (int i = 0; i < n; i++) {
        double b = t->betas[i];
        double a = 1.0 - b;
        acc *= a;
        t->alphas_cumprod[i] = acc;
        t->alphas_cumprod_prev[i] = i == 0 ? 1.0 : t->alphas_cumprod[i - 1];
        double ac = t->alphas_cumprod[i], acp = t->alphas_cumprod_prev[i];
        t->log_betas[i] = log(b);
        t->sqrt_recip_alphas_cumprod[i] = sqrt(1.0 / ac);
        t->sqrt_recipm1_alphas_cumprod[i] = sqrt(1.0 / ac - 1.0);
        t->posterior_variance[i] = b * (1.0 - acp) / (1.0 - ac);
        t->posterior_mean_coef1[i] = b * sqrt(acp) / (1.0 - ac);
        t->posterior_mean_coef2[i] = (1.0 - acp) * sqrt(a) / (1.0 - ac);
    }
    // posterior_variance[0] is 0 (ac_prev = 1), so the official table repeats pv[1]
    // there. With one step the official table is empty and p_sample would fail; the
    // reference (tools/marref) uses log(max(pv[0], 1e-20)) instead. Its value never
    // matters: step 0 adds no noise.
    for (int i = 0; i < n; i++) {
        double pv = t->posterior_variance[n > 1 && i == 0 ? 1 : i];
        t->posterior_log_variance_clipped[i] = n > 1 ? log(pv) : log(fmax(pv, 1e-20));
    }
}

int gd_tables_init(gd_tables *t, int n_steps, gd_sampler s) {
    memset(t, 0, sizeof *t);
    if ((int)s < 0 || s >= GD_SAMPLER_COUNT)
        return disa_err(DISA_EINVAL, "gd_tables_init: unknown sampler %d (expected 0..%d)",
                        (int)s, GD_SAMPLER_COUNT - 1);
    if (gd_sampler_is_dpm(s))
        return disa_err(DISA_EINVAL, "gd_tables_init: the %s sampler has no respaced tables (see dpm.h)",
                        gd_sampler_name(s));
    if (n_steps < 1 || n_steps > GD_T_TRAIN)
        return disa_err(DISA_EINVAL,
                        "gd_tables_init: %s sampler: step count must be in 1..%d, got %d",
                        gd_sampler_name(s), GD_T_TRAIN, n_steps);

    unsigned char keep[GD_T_TRAIN] = {0};
    if (s == GD_SAMPLER_DDIM) {
        if (space_ddim(keep, n_steps) != 0)
            return disa_err(DISA_EINVAL,
                            "gd_tables_init: ddim sampler: no integer stride gives exactly %d "
                            "steps (\"ddim%d\"); use 2..%d",
                            n_steps, n_steps, GD_T_TRAIN);
    } else {
        space_uniform(keep, n_steps);
    }
    // The clip: every kept v becomes min(v, clip); SpacedDiffusion keeps a set, so the
    // values at or above the clip merge into one step at the clip.
    int clip = gd_sampler_clip(s);
    for (int v = clip + 1; v < GD_T_TRAIN; v++)
        if (keep[v]) {
            keep[v] = 0;
            keep[clip] = 1;
        }
    int n = 0;
    for (int v = 0; v < GD_T_TRAIN; v++) n += keep[v];

    // One block: the double arrays, then the int map (doubles first keeps alignment).
    enum { N_DOUBLE_ARRAYS = 10 };
    size_t bytes = (size_t)n * (N_DOUBLE_ARRAYS * sizeof(double) + sizeof(int));
    double *d = malloc(bytes);
    if (!d)
        return disa_err(DISA_ENOMEM, "gd_tables_init: out of memory for %zu bytes (%d steps)",
                        bytes, n);
    t->block_ = d;
    t->n = n;
    t->n_steps = n_steps;
    t->sampler = s;
    double **arrays[N_DOUBLE_ARRAYS] = {
        &t->betas, &t->log_betas, &t->alphas_cumprod, &t->alphas_cumprod_prev,
        &t->posterior_variance, &t->posterior_log_variance_clipped, &t->posterior_mean_coef1,
        &t->posterior_mean_coef2, &t->sqrt_recip_alphas_cumprod, &t->sqrt_recipm1_alphas_cumprod};
    for (int k = 0; k < N_DOUBLE_ARRAYS; k++) *arrays[k] = d + (size_t)k * n;
    t->timestep_map = (int *)(d + (size_t)N_DOUBLE_ARRAYS * n);

    // SpacedDiffusion: walk the 1000-step alphas_cumprod (cumprod of 1 - cosine betas) and
    // at each kept index take beta' = 1 - ac / last_ac.
    double ac = 1.0, last = 1.0;
    int j = 0;
    for (int v = 0; v < GD_T_TRAIN; v++) {
        double t1 = (double)v / GD_T_TRAIN, t2 = (double)(v + 1) / GD_T_TRAIN;
        double beta = 1.0 - alpha_bar(t2) / alpha_bar(t1);
        if (!(beta < 0.999)) beta = 0.999; // min(beta, max_beta)
        ac *= 1.0 - beta;
        if (!keep[v]) continue;
        t->betas[j] = 1.0 - ac / last;
        t->timestep_map[j] = v;
        last = ac;
        j++;
    }
    fill_tables(t);
    return 0;
}

void gd_tables_free(gd_tables *t) {
    if (!t) return;
    free(t->block_);
    memset(t, 0, sizeof *t);
}

// ----------------------------------------------------------------------------
// reverse steps

void gd_ddpm_step(float *x /*[N,C] in/out*/, const float *eps /*[N,C]*/,
                  const float *var_values /*[N,C]*/, const float *noise /*[N,C] or NULL*/,
                  const gd_tables *t, int i, float temperature, int N, int C) {
    // _extract_into_tensor: float64 table value -> float32 before any arithmetic.
    const float min_log = (float)t->posterior_log_variance_clipped[i];
    const float max_log = (float)t->log_betas[i];
    const float rac = (float)t->sqrt_recip_alphas_cumprod[i];
    const float racm1 = (float)t->sqrt_recipm1_alphas_cumprod[i];
    const float c1 = (float)t->posterior_mean_coef1[i];
    const float c2 = (float)t->posterior_mean_coef2[i];
    size_t n = (size_t)N * (size_t)C;
    for (size_t k = 0; k < n; k++) {
        float xk = x[k];
        // p_mean_variance, LEARNED_RANGE: var_values in [-1, 1] pick a log variance
        // between the clipped posterior one and log(beta). `/ 2` is exact as `* 0.5`.
        float frac = (var_values[k] + 1.0f) / 2.0f;
        float log_var = frac * max_log + (1.0f - frac) * min_log;
        // _predict_xstart_from_eps, not clamped (clip_denoised=False in DiffLoss).
        float x0 = rac * xk - racm1 * eps[k];
        // q_posterior_mean_variance
        float mean = c1 * x0 + c2 * xk;
        if (i > 0) {
            // p_sample: mean + nonzero_mask * exp(0.5 * log_var) * noise * temperature,
            // multiplied left to right; at i == 0 the mask zeroes the term.
            float sd = expf(0.5f * log_var);
            mean = mean + sd * noise[k] * temperature;
        }
        x[k] = mean;
    }
}

void gd_ddim_step(float *x /*[N,C] in/out*/, const float *eps /*[N,C]*/,
                  const gd_tables *t, int i, int N, int C) {
    const float rac = (float)t->sqrt_recip_alphas_cumprod[i];
    const float racm1 = (float)t->sqrt_recipm1_alphas_cumprod[i];
    const float abp = (float)t->alphas_cumprod_prev[i];
    // ddim_sample takes sqrt of the float32 alpha_bar_prev, not a float64 sqrt table, and
    // with eta = 0 sigma is exactly 0, so 1 - abp - sigma^2 == 1 - abp and the noise term
    // adds 0.
    const float sq_abp = sqrtf(abp);
    const float sq_1m_abp = sqrtf(1.0f - abp);
    size_t n = (size_t)N * (size_t)C;
    for (size_t k = 0; k < n; k++) {
        float xk = x[k];
        float x0 = rac * xk - racm1 * eps[k];
        // _predict_eps_from_xstart: eps is re-derived from x0, as the official code does
        // (not the network eps: the two differ in the last bits).
        float e = (rac * xk - x0) / racm1;
        x[k] = x0 * sq_abp + sq_1m_abp * e;
    }
}
