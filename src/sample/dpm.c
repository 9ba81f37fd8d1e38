// dpm.c: DPM-Solver / DPM-Solver++ multistep for the diffusion head (include/disa/dpm.h).
//
// Mirrors MAR_DiSA (Qinyu-Allen-Zhao/DiSA) diffusion/dpm_solver.py:
//   NoiseScheduleVP.__init__ ('discrete') + numerical_clip_alpha   dpm_schedule_init
//   interpolate_fn, marginal_log_mean_coeff / _alpha / _std / _lambda   dpm_log_alpha, sched_*
//   DPM_Solver.sample (multistep), get_time_steps ('time_uniform')  dpm_plan_init, dpm_solve
//   dpm_solver_first_update, multistep_dpm_solver_{second,third}_update   coef_*, dpm_update
//   data_prediction_fn                                               dpm_model_value
// and models/diffloss.py DiffLoss.dpm_forward (network time t * 1000). Python reference:
// tools/marref/dpm.py.
//
// Every per-step scalar of the official code is a one-element float32 tensor, each torch
// op rounding to float32; the plan computes them with the same operations in the same
// order (glibc's expf/logf/expm1f/sqrtf are what torch's scalar kernels call), so the
// golden compares them exactly. The element-wise updates apply them in float32 in the
// order torch evaluates the official expressions.
#include "disa/dpm.h"

#include "disa/diffusion.h"
#include "disa/err.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Each torch op rounds on its own; a contracted multiply-add would not (see gd.c).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// numerical_clip_alpha's threshold on the half-logSNR.
#define DPM_CLIPPED_LAMBDA (-5.1)

// ----------------------------------------------------------------------------
// schedule

// n float32 values from a to b (both already float32): the exact value of
// a + (b - a) k / (n - 1), rounded once; the ends exact. torch.linspace's float32 lanes
// differ from this by an ulp or two depending on the build (tools/marref/dpm.py: grid).
static void grid(float *out, double a, double b, int n) {
    if (n == 1) {
        out[0] = (float)a;
        return;
    }
    for (int k = 0; k < n; k++) out[k] = (float)(a + (b - a) * (double)k / (double)(n - 1));
    out[n - 1] = (float)b;
}

int dpm_schedule_init(dpm_schedule *s) {
    memset(s, 0, sizeof *s);
    // DiffLoss.train_diffusion: create_diffusion("") keeps 0..999 and its default 950 clip
    // merges the rest, which is what the DiSA sampler's 1000-step tables are.
    gd_tables tb;
    int rc = gd_tables_init(&tb, GD_T_TRAIN, GD_SAMPLER_DISA);
    if (rc) return rc;
    int K = tb.n;
    double *la = malloc(sizeof(double) * (size_t)K);
    s->t_array = malloc(sizeof(float) * (size_t)K);
    s->log_alpha = malloc(sizeof(float) * (size_t)K);
    if (!la || !s->t_array || !s->log_alpha) {
        free(la);
        gd_tables_free(&tb);
        dpm_schedule_free(s);
        return disa_err(DISA_ENOMEM, "dpm_schedule_init: out of memory for %d keypoints", K);
    }
    // 0.5 * torch.log(1 - betas).cumsum(0) in float64: a sequential sum, then the halving.
    double acc = 0.0;
    for (int i = 0; i < K; i++) {
        acc += log(1.0 - tb.betas[i]);
        la[i] = 0.5 * acc;
    }
    gd_tables_free(&tb);
    // numerical_clip_alpha: drop the trailing keypoints whose lambda is below -5.1 (none
    // for the cosine schedule clipped at 950, where lambda ends at -2.57).
    int cut = 0;
    for (int i = 0; i < K; i++)
        if (la[i] - 0.5 * log(1.0 - exp(2.0 * la[i])) < DPM_CLIPPED_LAMBDA) cut++;
    K -= cut;
    for (int i = 0; i < K; i++) s->log_alpha[i] = (float)la[i];
    free(la);
    s->K = K;
    // torch.linspace(0, 0.95, K + 1)[1:]
    float *tmp = malloc(sizeof(float) * (size_t)(K + 1));
    if (!tmp) {
        dpm_schedule_free(s);
        return disa_err(DISA_ENOMEM, "dpm_schedule_init: out of memory");
    }
    grid(tmp, 0.0, (double)DPM_T_START, K + 1);
    memcpy(s->t_array, tmp + 1, sizeof(float) * (size_t)K);
    free(tmp);
    return 0;
}

void dpm_schedule_free(dpm_schedule *s) {
    if (!s) return;
    free(s->t_array);
    free(s->log_alpha);
    memset(s, 0, sizeof *s);
}

float dpm_log_alpha(const dpm_schedule *s, float t) {
    // interpolate_fn sorts t among the keypoints with a stable sort, so a t equal to a
    // keypoint comes first: its position is the number of keypoints strictly below it.
    int lo = 0, hi = s->K;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (s->t_array[mid] < t) lo = mid + 1;
        else hi = mid;
    }
    int j = lo - 1;
    if (j < 0) j = 0;
    if (j > s->K - 2) j = s->K - 2;
    float sx = s->t_array[j], ex = s->t_array[j + 1], sy = s->log_alpha[j], ey = s->log_alpha[j + 1];
    // start_y + (x - start_x) * (end_y - start_y) / (end_x - start_x), left to right
    float num = (t - sx) * (ey - sy);
    return sy + num / (ex - sx);
}

// marginal_std: sqrt(1 - exp(2 log_alpha)).
static float sched_sigma(const dpm_schedule *s, float t) {
    return sqrtf(1.0f - expf(2.0f * dpm_log_alpha(s, t)));
}

// marginal_lambda: log_alpha - 0.5 log(1 - exp(2 log_alpha)).
static float sched_lambda(const dpm_schedule *s, float t) {
    float la = dpm_log_alpha(s, t);
    return la - 0.5f * logf(1.0f - expf(2.0f * la));
}

// ----------------------------------------------------------------------------
// plan

// Scalars of update k from the grid t, with order o (the official update functions).
static dpm_update_coef coef(const dpm_schedule *s, const float *t, int k, int o, dpm_algorithm algo) {
    dpm_update_coef u;
    memset(&u, 0, sizeof u);
    u.order = o;
    const int pp = algo == DPM_SOLVER_PP;
    float tt = t[k], t0 = t[k - 1];
    float lam_t = sched_lambda(s, tt), lam_0 = sched_lambda(s, t0);
    float la_t = dpm_log_alpha(s, tt), la_0 = dpm_log_alpha(s, t0);
    float sig_t = sched_sigma(s, tt), sig_0 = sched_sigma(s, t0);
    float alpha_t = expf(la_t);
    float h = lam_t - lam_0;
    float phi_1;
    if (pp) {
        phi_1 = expm1f(-h);
        u.a = sig_t / sig_0;
        u.b = alpha_t * phi_1;
    } else {
        phi_1 = expm1f(h);
        u.a = expf(la_t - la_0);
        u.b = sig_t * phi_1;
    }
    const float scale = pp ? alpha_t : sig_t;
    if (o == 2) {
        float lam_1 = sched_lambda(s, t[k - 2]);
        float h_0 = lam_0 - lam_1;
        float r0 = h_0 / h;
        u.inv_r0 = (1.0f / r0) * 1.0f;  // Python's 1. / r0: reciprocal(r0) * 1.0
        u.c = 0.5f * (scale * phi_1);
    } else if (o == 3) {
        float lam_1 = sched_lambda(s, t[k - 2]), lam_2 = sched_lambda(s, t[k - 3]);
        float h_1 = lam_1 - lam_2, h_0 = lam_0 - lam_1;
        float r0 = h_0 / h, r1 = h_1 / h;
        u.inv_r0 = (1.0f / r0) * 1.0f;
        u.inv_r1 = (1.0f / r1) * 1.0f;
        u.q = r0 / (r0 + r1);
        u.inv_r01 = (1.0f / (r0 + r1)) * 1.0f;
        float phi_2 = pp ? phi_1 / h + 1.0f : phi_1 / h - 1.0f;
        float phi_3 = phi_2 / h - 0.5f;
        u.c = scale * phi_2;
        u.d = scale * phi_3;
    }
    return u;
}

int dpm_plan_init(dpm_plan *p, const dpm_schedule *s, int steps, int order, dpm_algorithm algo) {
    memset(p, 0, sizeof *p);
    if ((int)algo < 0 || algo >= DPM_ALGO_COUNT)
        return disa_err(DISA_EINVAL, "dpm_plan_init: unknown algorithm %d", (int)algo);
    if (order < 1 || order > 3)
        return disa_err(DISA_EINVAL, "dpm_plan_init: order must be 1, 2 or 3, got %d", order);
    if (steps < order || steps > GD_T_TRAIN)
        return disa_err(DISA_EINVAL, "dpm_plan_init: %d steps cannot run order %d (multistep needs %d..%d steps)",
                        steps, order, order, GD_T_TRAIN);
    if (!s || s->K < 2) return disa_err(DISA_EINVAL, "dpm_plan_init: no noise schedule");
    size_t n = (size_t)steps;
    size_t bytes = sizeof(dpm_update_coef) * n + sizeof(float) * (4 * n + 1);
    char *blk = malloc(bytes);
    if (!blk) return disa_err(DISA_ENOMEM, "dpm_plan_init: out of memory for %zu bytes", bytes);
    p->block_ = blk;
    p->up = (dpm_update_coef *)blk;  // first: the struct array keeps its alignment
    p->t = (float *)(blk + sizeof(dpm_update_coef) * n);
    p->t_input = p->t + n + 1;
    p->alpha = p->t_input + n;
    p->sigma = p->alpha + n;
    p->steps = steps;
    p->order = order;
    p->algo = algo;
    // get_time_steps('time_uniform', t_T = 0.95, t_0 = 1 / total_N, N = steps)
    grid(p->t, (double)DPM_T_START, (double)(float)(1.0 / s->K), steps + 1);
    for (int k = 0; k < steps; k++) {
        p->t_input[k] = p->t[k] * 1000.0f;  // dpm_forward: t_continuous * 1000
        p->alpha[k] = expf(dpm_log_alpha(s, p->t[k]));
        p->sigma[k] = sched_sigma(s, p->t[k]);
    }
    for (int k = 1; k <= steps; k++) {
        // warm-up orders 1..order-1, then lower_order_final below 10 steps
        int o = k < order ? k : steps < 10 ? (order < steps + 1 - k ? order : steps + 1 - k) : order;
        p->up[k - 1] = coef(s, p->t, k, o, algo);
    }
    return 0;
}

void dpm_plan_free(dpm_plan *p) {
    if (!p) return;
    free(p->block_);
    memset(p, 0, sizeof *p);
}

// ----------------------------------------------------------------------------
// element-wise steps

void dpm_model_value(float *m, const float *x, const dpm_plan *p, int k, int N, int C) {
    if (p->algo != DPM_SOLVER_PP) return;
    const float a = p->alpha[k], sg = p->sigma[k];
    size_t n = (size_t)N * (size_t)C;
    for (size_t i = 0; i < n; i++) m[i] = (x[i] - sg * m[i]) / a;
}

void dpm_update(float *x, const float *m0, const float *m1, const float *m2, const dpm_plan *p, int k, int N,
                int C) {
    const dpm_update_coef *u = &p->up[k - 1];
    size_t n = (size_t)N * (size_t)C;
    if (u->order == 1) {
        for (size_t i = 0; i < n; i++) x[i] = u->a * x[i] - u->b * m0[i];
    } else if (u->order == 2) {
        for (size_t i = 0; i < n; i++) {
            float d10 = u->inv_r0 * (m0[i] - m1[i]);
            x[i] = u->a * x[i] - u->b * m0[i] - u->c * d10;
        }
    } else {
        const int pp = p->algo == DPM_SOLVER_PP;
        for (size_t i = 0; i < n; i++) {
            float d10 = u->inv_r0 * (m0[i] - m1[i]);
            float d11 = u->inv_r1 * (m1[i] - m2[i]);
            float diff = d10 - d11;
            float d1 = d10 + u->q * diff;
            float d2 = u->inv_r01 * diff;
            float y = u->a * x[i] - u->b * m0[i];
            y = pp ? y + u->c * d1 : y - u->c * d1;
            x[i] = y - u->d * d2;
        }
    }
}

int dpm_solve(const dpm_plan *p, float *x, float *work, dpm_eps_fn fn, void *ctx, int N, int C) {
    size_t n = (size_t)N * (size_t)C;
    // Model history in a ring of three: evaluation k lives in slot k % 3.
    float *slot[3] = {work, work + n, work + 2 * n};
    for (int k = 0; k <= p->steps; k++) {
        if (k > 0) {
            const float *m0 = slot[(k - 1) % 3];
            const float *m1 = k >= 2 ? slot[(k - 2) % 3] : NULL;
            const float *m2 = k >= 3 ? slot[(k - 3) % 3] : NULL;
            dpm_update(x, m0, m1, m2, p, k, N, C);
        }
        if (k == p->steps) break;
        float *m = slot[k % 3];
        int rc = fn(ctx, m, x, p->t_input[k], N);
        if (rc) return rc;
        dpm_model_value(m, x, p, k, N, C);
    }
    return 0;
}
