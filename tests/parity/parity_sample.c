// parity_sample.c: golden adapters for the diffusion tables, the DiSA schedules and the
// reverse steps (tools/golden/diffusion.py; ops listed in tests/golden/README.md under
// "diffusion and DiSA").
//
// Integer outputs (timestep map, step counts) must match exactly. The float64 tables
// are stored as F32: besides the normwise pc_check, each entry is compared on its own
// (rel 1e-6), because a normwise test would let the tiny early betas drift unseen
// next to the 0.999 at the top.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "disa/adaptive.h"
#include "disa/diffusion.h"
#include "disa/disa_sched.h"
#include "disa/dpm.h"
#include "disa/err.h"
#include "disa/nn.h"
#include "parity.h"

// ----------------------------------------------------------------------------
// helpers

// config[key] as a string; fails the case (returns NULL) when missing or not a string.
static const char *cfg_str(pcase *c, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(pc_config(c), key);
    if (!cJSON_IsString(j)) {
        pc_fail(c, "config key '%s' missing or not a string", key);
        return NULL;
    }
    return j->valuestring;
}

// Zeroed int64 scratch owned by the case. pc_alloc hands out malloc-aligned floats, so
// two floats per element give an aligned int64 array.
static int64_t *alloc_i64(pcase *c, size_t n) {
    return (int64_t *)pc_alloc(c, 2 * (n ? n : 1));
}

// Build the tables named by config n / sampler. Returns 0, or 1 after failing the case.
static int tables_from_config(pcase *c, gd_tables *t) {
    memset(t, 0, sizeof *t);
    const char *name = cfg_str(c, "sampler");
    if (!name) return 1;
    gd_sampler s;
    if (gd_sampler_parse(name, &s) != 0) return pc_fail(c, "%s", disa_errmsg());
    int n = pc_int(c, "n", 0, 0);
    if (gd_tables_init(t, n, s) != 0) return pc_fail(c, "%s", disa_errmsg());
    return 0;
}

// in.<name> as [N,C] with the N, C given (-1 = take from this tensor).
static const float *need_nc(pcase *c, const char *name, int *N, int *C) {
    int64_t sh[2] = {*N, *C};
    const float *p = pc_need(c, name, 2, sh);
    if (p && *N < 0) {
        int nd;
        int64_t got[8];
        pc_f32(c, name, &nd, got);
        *N = (int)got[0];
        *C = (int)got[1];
    }
    return p;
}

// A spaced index must exist in the tables; fails the case otherwise.
static int check_index(pcase *c, const gd_tables *t, int i) {
    if (i < 0 || i >= t->n)
        return pc_fail(c, "config i = %d out of range 0..%d (%s %d steps)", i, t->n - 1,
                       gd_sampler_name(t->sampler), t->n_steps);
    return 0;
}

// ----------------------------------------------------------------------------
// gd_tables

static int op_gd_tables(pcase *c) {
    gd_tables t;
    if (tables_from_config(c, &t)) return 1;
    int fails = 0;
    int64_t *map = alloc_i64(c, (size_t)t.n);
    float *f = pc_alloc(c, (size_t)t.n);
    if (!map || !f) {
        gd_tables_free(&t);
        return pc_fail(c, "out of memory");
    }
    for (int i = 0; i < t.n; i++) map[i] = t.timestep_map[i];
    fails += pc_check_i64(c, "timestep_map", map, (size_t)t.n);

    const struct { const char *name; const double *v; } tabs[] = {
        {"betas", t.betas},
        {"log_betas", t.log_betas},
        {"alphas_cumprod", t.alphas_cumprod},
        {"alphas_cumprod_prev", t.alphas_cumprod_prev},
        {"posterior_variance", t.posterior_variance},
        {"posterior_log_variance_clipped", t.posterior_log_variance_clipped},
        {"posterior_mean_coef1", t.posterior_mean_coef1},
        {"posterior_mean_coef2", t.posterior_mean_coef2},
        {"sqrt_recip_alphas_cumprod", t.sqrt_recip_alphas_cumprod},
        {"sqrt_recipm1_alphas_cumprod", t.sqrt_recipm1_alphas_cumprod},
    };
    for (size_t k = 0; k < sizeof tabs / sizeof tabs[0]; k++) {
        for (int i = 0; i < t.n; i++) f[i] = (float)tabs[k].v[i];
        int bad = pc_check(c, tabs[k].name, f, (size_t)t.n);
        fails += bad;
        if (bad) continue; // pc_check printed the reason (missing, size, values)
        char key[96];
        snprintf(key, sizeof key, "out.%s", tabs[k].name);
        const float *want = pc_f32(c, key, NULL, NULL);
        for (int i = 0; want && i < t.n; i++) {
            double w = want[i], g = f[i];
            if (fabs(g - w) > 1e-6 * fabs(w)) {
                fails += pc_fail(c, "%s[%d] (t=%d) = %.9g, golden %.9g: relative error %.3g > 1e-6",
                                 tabs[k].name, i, t.timestep_map[i], g, w, fabs(g - w) / fabs(w));
                break;
            }
        }
    }
    gd_tables_free(&t);
    return fails;
}

// ----------------------------------------------------------------------------
// disa_steps

static int op_disa_steps(pcase *c) {
    const char *name = cfg_str(c, "strategy");
    if (!name) return 1;
    disa_strategy s;
    if (disa_strategy_parse(name, &s) != 0) return pc_fail(c, "%s", disa_errmsg());
    int K = pc_int(c, "K", 0, 0);
    int upper = pc_int(c, "upper", 0, 0), lower = pc_int(c, "lower", 0, 0);
    if (K < 1 || K > 1 << 20) return pc_fail(c, "config K = %d out of range 1..%d", K, 1 << 20);
    int *steps = (int *)pc_alloc(c, (size_t)K); // sizeof(int) == sizeof(float)
    int64_t *out = alloc_i64(c, (size_t)K);
    if (!steps || !out) return pc_fail(c, "out of memory");
    if (disa_steps_for(steps, K, upper, lower, s) != 0) return pc_fail(c, "%s", disa_errmsg());
    for (int k = 0; k < K; k++) out[k] = steps[k];
    return pc_check_i64(c, "steps", out, (size_t)K);
}

// ----------------------------------------------------------------------------
// reverse steps

static int op_gd_ddpm_step(pcase *c) {
    int N = -1, C = -1;
    const float *x = need_nc(c, "in.x", &N, &C);
    if (!x) return 1;
    const float *eps = need_nc(c, "in.eps", &N, &C);
    const float *var = need_nc(c, "in.var_values", &N, &C);
    const float *noise = need_nc(c, "in.noise", &N, &C);
    if (!eps || !var || !noise) return 1;
    gd_tables t;
    if (tables_from_config(c, &t)) return 1;
    int i = pc_int(c, "i", 0, 0);
    float temperature = (float)pc_num(c, "temperature", 1.0, 1);
    size_t n = (size_t)N * (size_t)C;
    float *y = pc_alloc(c, n);
    int fails;
    if (check_index(c, &t, i)) {
        fails = 1;
    } else if (!y) {
        fails = pc_fail(c, "out of memory");
    } else {
        memcpy(y, x, n * sizeof *y);
        gd_ddpm_step(y, eps, var, noise, &t, i, temperature, N, C);
        fails = pc_check(c, "x", y, n);
    }
    gd_tables_free(&t);
    return fails;
}

static int op_gd_ddim_step(pcase *c) {
    int N = -1, C = -1;
    const float *x = need_nc(c, "in.x", &N, &C);
    if (!x) return 1;
    const float *eps = need_nc(c, "in.eps", &N, &C);
    if (!eps) return 1;
    gd_tables t;
    if (tables_from_config(c, &t)) return 1;
    int i = pc_int(c, "i", 0, 0);
    size_t n = (size_t)N * (size_t)C;
    float *y = pc_alloc(c, n);
    int fails;
    if (check_index(c, &t, i)) {
        fails = 1;
    } else if (!y) {
        fails = pc_fail(c, "out of memory");
    } else {
        memcpy(y, x, n * sizeof *y);
        gd_ddim_step(y, eps, &t, i, N, C);
        fails = pc_check(c, "x", y, n);
    }
    gd_tables_free(&t);
    return fails;
}

// ----------------------------------------------------------------------------
// timestep embedding

static int op_timestep_embedding(pcase *c) {
    const int64_t any1[1] = {-1};
    const float *ts = pc_need(c, "in.t", 1, any1);
    if (!ts) return 1;
    int nd;
    int64_t sh[8];
    pc_f32(c, "in.t", &nd, sh);
    int N = (int)sh[0];
    int dim = pc_int(c, "dim", 0, 0);
    float max_period = (float)pc_num(c, "max_period", 10000.0, 1);
    if (dim < 1) return pc_fail(c, "config dim must be >= 1, got %d", dim);
    float *emb = pc_alloc(c, (size_t)N * (size_t)dim);
    if (!emb) return pc_fail(c, "out of memory");
    for (int r = 0; r < N; r++) gd_timestep_embedding(emb + (size_t)r * dim, ts[r], dim, max_period);
    return pc_check(c, "emb", emb, (size_t)N * (size_t)dim);
}

// ----------------------------------------------------------------------------
// DPM-Solver schedule and plans (exact: the same float32 operations as the official ones)

static int op_dpm_schedule(pcase *c) {
    dpm_schedule s;
    if (dpm_schedule_init(&s) != 0) return pc_fail(c, "%s", disa_errmsg());
    int fails = pc_check(c, "t_array", s.t_array, (size_t)s.K);
    fails += pc_check(c, "log_alpha", s.log_alpha, (size_t)s.K);
    dpm_schedule_free(&s);
    return fails;
}

static int op_dpm_plan(pcase *c) {
    int steps = pc_int(c, "steps", 0, 0), order = pc_int(c, "order", 0, 0);
    const char *name = cfg_str(c, "algorithm");
    if (!name) return 1;
    dpm_algorithm algo = strcmp(name, "dpmsolver++") == 0 ? DPM_SOLVER_PP : DPM_SOLVER;
    if (steps < 1 || steps > 1000) return pc_fail(c, "config steps = %d out of range 1..1000", steps);
    dpm_schedule s;
    dpm_plan p;
    if (dpm_schedule_init(&s) != 0) return pc_fail(c, "%s", disa_errmsg());
    if (dpm_plan_init(&p, &s, steps, order, algo) != 0) {
        dpm_schedule_free(&s);
        return pc_fail(c, "%s", disa_errmsg());
    }
    int fails = pc_check(c, "t", p.t, (size_t)steps + 1);
    fails += pc_check(c, "t_input", p.t_input, (size_t)steps);
    // The time grid and the network times are exact; the tolerance is for the library
    // roundings of the scalars (tools/golden/dpm.py: PLAN_RTOL).
    const float *wt = pc_f32(c, "out.t", NULL, NULL), *wi = pc_f32(c, "out.t_input", NULL, NULL);
    for (int k = 0; wt && wi && k <= steps; k++)
        if (p.t[k] != wt[k] || (k < steps && p.t_input[k] != wi[k])) {
            fails += pc_fail(c, "time %d: t %.9g / %.9g, t_input %.9g / %.9g (C / golden) must be equal", k, p.t[k],
                             wt[k], k < steps ? p.t_input[k] : 0.0, k < steps ? wi[k] : 0.0);
            break;
        }
    fails += pc_check(c, "alpha", p.alpha, (size_t)steps);
    fails += pc_check(c, "sigma", p.sigma, (size_t)steps);
    int64_t *ord = alloc_i64(c, (size_t)steps);
    float *coef = pc_alloc(c, (size_t)steps * 8);
    if (!ord || !coef) {
        fails += pc_fail(c, "out of memory");
    } else {
        for (int k = 0; k < steps; k++) {
            const dpm_update_coef *u = &p.up[k];
            const float v[8] = {u->a, u->b, u->c, u->d, u->inv_r0, u->inv_r1, u->q, u->inv_r01};
            ord[k] = u->order;
            memcpy(coef + (size_t)k * 8, v, sizeof v);
        }
        fails += pc_check_i64(c, "order", ord, (size_t)steps);
        fails += pc_check(c, "coef", coef, (size_t)steps * 8);
    }
    dpm_plan_free(&p);
    dpm_schedule_free(&s);
    return fails;
}

// ----------------------------------------------------------------------------
// adaptive step choices from recorded signals (exact)

static int op_adapt_steps(pcase *c) {
    int nd, nk;
    int64_t sh[8], shk[8];
    const float *g = pc_f32(c, "in.g", &nd, sh);
    const int64_t *tokens = pc_i64(c, "in.tokens", &nk, shk);
    int L = pc_int(c, "L", 0, 0), lower = pc_int(c, "lower", 0, 0), upper = pc_int(c, "upper", 0, 0);
    double budget = pc_num(c, "budget", 0, 0);
    if (!g || !tokens || nd != 2 || sh[1] != L || nk != 1) return pc_fail(c, "need in.g [B, L = %d] and in.tokens [K]", L);
    int B = (int)sh[0], K = (int)shk[0], sum = 0;
    for (int s = 0; s < K; s++) sum += (int)tokens[s];
    if (sum != L) return pc_fail(c, "in.tokens sums to %d, not L = %d", sum, L);
    int64_t *out = alloc_i64(c, (size_t)B * L);
    int *n = (int *)pc_alloc(c, (size_t)L);  // sizeof(int) == sizeof(float)
    if (!out || !n) return pc_fail(c, "out of memory");
    for (int b = 0; b < B; b++) {
        adapt_state st;
        adapt_state_reset(&st);
        for (int s = 0, pos = 0; s < K; pos += (int)tokens[s], s++)
            adapt_choose(n + pos, g + (size_t)b * L + pos, (int)tokens[s], L, lower, upper, budget, &st);
        for (int i = 0; i < L; i++) out[(size_t)b * L + i] = n[i];
    }
    return pc_check_i64(c, "n", out, (size_t)B * L);
}

// ----------------------------------------------------------------------------

const parity_op parity_ops_sample[] = {
    {"gd_tables", op_gd_tables},
    {"disa_steps", op_disa_steps},
    {"gd_ddpm_step", op_gd_ddpm_step},
    {"gd_ddim_step", op_gd_ddim_step},
    {"timestep_embedding", op_timestep_embedding},
    {"dpm_schedule", op_dpm_schedule},
    {"dpm_plan", op_dpm_plan},
    {"adapt_steps", op_adapt_steps},
    {NULL, NULL},
};
