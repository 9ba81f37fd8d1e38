// Parity adapters for xAR: its nn kernels, the transformer with its key/value cache, the
// flow samplers and the whole AR loop (goldens by tools/golden/xar_goldens.py; formats
// in tests/golden/README.md, "xAR").
#include "parity.h"
#include "disa/arena.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/nn.h"
#include "disa/xar.h"
#include "disa/xar_sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// nn kernels

// op rmsnorm: in.x [N, C], param.weight [C] (optional), config eps; out.y.
static int op_rmsnorm(pcase *c) {
    int nd;
    int64_t sh[8];
    const float *x = pc_f32(c, "in.x", &nd, sh);
    if (!x || nd != 2) return pc_fail(c, "need in.x [N, C]");
    int N = (int)sh[0], C = (int)sh[1];
    const float *w = pc_f32(c, "param.weight", &nd, sh);
    if (w && (nd != 1 || sh[0] != C)) return pc_fail(c, "param.weight must be [%d]", C);
    float *y = pc_alloc(c, (size_t)N * C);
    if (!y) return pc_fail(c, "out of memory");
    rmsnorm_forward(y, x, w, N, C, (float)pc_num(c, "eps", 1e-6, 1));
    return pc_check(c, "y", y, (size_t)N * C);
}

// op rope: in.x [R, heads*hd]; config grid, clusters, heads, head_dim, p0; out.cos,
// out.sin [grid^2, hd], out.y [R, heads*hd].
static int op_rope(pcase *c) {
    int grid = pc_int(c, "grid", 0, 0), cl = pc_int(c, "clusters", 0, 0), heads = pc_int(c, "heads", 0, 0);
    int hd = pc_int(c, "head_dim", 0, 0), p0 = pc_int(c, "p0", 0, 0), nd;
    int64_t sh[8];
    const float *x = pc_f32(c, "in.x", &nd, sh);
    if (!x || nd != 2 || sh[1] != (int64_t)heads * hd) return pc_fail(c, "need in.x [R, %d]", heads * hd);
    int R = (int)sh[0], S = grid * grid;
    if (grid < 1 || hd % 4 || p0 < 0 || p0 + R > S) return pc_fail(c, "config out of range");
    float *co = pc_alloc(c, (size_t)S * hd), *si = pc_alloc(c, (size_t)S * hd), *y = pc_alloc(c, (size_t)R * heads * hd);
    if (!co || !si || !y) return pc_fail(c, "out of memory");
    rope_tables(co, si, grid, cl, hd, 10000.0f);
    int fails = pc_check(c, "cos", co, (size_t)S * hd) + pc_check(c, "sin", si, (size_t)S * hd);
    memcpy(y, x, sizeof(float) * (size_t)R * heads * hd);
    rope_forward(y, heads * hd, co + (size_t)p0 * hd, si + (size_t)p0 * hd, R, heads, hd);
    return fails + pc_check(c, "y", y, (size_t)R * heads * hd);
}

// op swiglu: in.x [N, d], param.fc1_g.*, param.fc1_x.*, param.fc2.*; out.y [N, d].
static int op_swiglu(pcase *c) {
    int nd;
    int64_t sh[8];
    const float *x = pc_f32(c, "in.x", &nd, sh);
    if (!x || nd != 2) return pc_fail(c, "need in.x [N, d]");
    int N = (int)sh[0], d = (int)sh[1];
    const float *wg = pc_f32(c, "param.fc1_g.weight", &nd, sh);
    if (!wg || nd != 2 || sh[1] != d) return pc_fail(c, "need param.fc1_g.weight [h, %d]", d);
    int h = (int)sh[0];
    const int64_t s_hd[2] = {h, d}, s_dh[2] = {d, h}, s_h[1] = {h}, s_d[1] = {d};
    const float *bg = pc_need(c, "param.fc1_g.bias", 1, s_h), *wx = pc_need(c, "param.fc1_x.weight", 2, s_hd);
    const float *bx = pc_need(c, "param.fc1_x.bias", 1, s_h), *w2 = pc_need(c, "param.fc2.weight", 2, s_dh);
    const float *b2 = pc_need(c, "param.fc2.bias", 1, s_d);
    if (!bg || !wx || !bx || !w2 || !b2) return 1;
    float *g = pc_alloc(c, (size_t)N * h), *u = pc_alloc(c, (size_t)N * h), *y = pc_alloc(c, (size_t)N * d);
    if (!g || !u || !y) return pc_fail(c, "out of memory");
    linear_forward(g, x, wg, bg, N, d, h);
    linear_forward(u, x, wx, bx, N, d, h);
    gelu_mul_forward(g, g, u, (size_t)N * h);
    linear_forward(y, g, w2, b2, N, h, d);
    return pc_check(c, "y", y, (size_t)N * d);
}

// ----------------------------------------------------------------------------
// model

// The model of a case: opened from config "model" (a converted file) or bound from the
// case's param.* tensors with the config itself as the model config. Returns 0 or the
// failure count (reported).
static int load_model(pcase *c, xar_model *m, int *opened) {
    memset(m, 0, sizeof *m);
    *opened = 0;
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(pc_config(c), "model");
    if (cJSON_IsString(path)) {
        if (xar_open(m, path->valuestring) != 0) return pc_fail(c, "%s", disa_errmsg());
        *opened = 1;
        return 0;
    }
    // The model config is the case config's model keys (the others are the case's own).
    cJSON *model = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, pc_config(c)) {
        for (int k = 0; xar_config_keys[k]; k++)
            if (strcmp(it->string, xar_config_keys[k]) == 0) cJSON_AddItemToObject(model, it->string, cJSON_Duplicate(it, 1));
    }
    char *json = cJSON_PrintUnformatted(model);
    cJSON_Delete(model);
    int rc = json ? xar_config_parse(&m->cfg, json, "golden config") : DISA_ENOMEM;
    free(json);
    if (rc) return pc_fail(c, "%s", disa_errmsg());
    st_bind_entry *tab;
    char *names;
    int n, bad = 0;
    if (xar_tensor_table(m, &tab, &names, &n) != 0) return pc_fail(c, "%s", disa_errmsg());
    for (int i = 0; i < n; i++) {
        char key[256];
        snprintf(key, sizeof key, "param.%s", tab[i].name);
        const float *p = pc_need(c, key, tab[i].ndim, tab[i].shape);
        if (!p) bad++;
        *tab[i].dst = p;
    }
    free(tab);
    free(names);
    if (!bad && xar_rope_init(m) != 0) bad += pc_fail(c, "%s", disa_errmsg());
    return bad;
}

static void free_model(xar_model *m, int opened) {
    if (opened) xar_close(m);
    else xar_model_free_tables(m);
}

// op xar_forward: in.labels [N], in.x<k> [N, R_k, C]; config calls [[step, first, t]...];
// out.tidx<k>, out.v<k> [N, G, C].
static int op_xar_forward(pcase *c) {
    xar_model m;
    int opened, fails = load_model(c, &m, &opened);
    if (fails) {
        free_model(&m, opened);
        return fails;
    }
    const xar_config *xc = &m.cfg;
    const int G = xc->group, C = xc->token_dim;
    int nd;
    int64_t sh[8];
    const int64_t *lab = pc_i64(c, "in.labels", &nd, sh);
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(pc_config(c), "calls");
    if (!lab || nd != 1 || !cJSON_IsArray(calls)) {
        free_model(&m, opened);
        return pc_fail(c, "need in.labels [N] and config 'calls'");
    }
    int N = (int)sh[0];
    int *labels = malloc(sizeof(int) * N);
    float *v = pc_alloc(c, (size_t)N * G * C);
    xar_kv kv;
    arena a;
    memset(&a, 0, sizeof a);
    if (!labels || !v || xar_kv_init(&kv, xc, N) != 0 ||
        arena_init(&a, xar_forward_scratch_bytes(xc, N, 2 * G), "parity") != 0) {
        free(labels);
        free_model(&m, opened);
        return pc_fail(c, "%s", disa_errmsg());
    }
    for (int n = 0; n < N; n++) labels[n] = (int)lab[n];
    for (int k = 0; k < cJSON_GetArraySize(calls) && !fails; k++) {
        const cJSON *call = cJSON_GetArrayItem(calls, k);
        int step = cJSON_GetArrayItem(call, 0)->valueint, first = cJSON_GetArrayItem(call, 1)->valueint;
        double t = cJSON_GetArrayItem(call, 2)->valuedouble;
        char name[32];
        snprintf(name, sizeof name, "in.x%d", k);
        const float *x = pc_f32(c, name, &nd, sh);
        if (!x || nd != 3 || sh[0] != N || sh[2] != C) {
            fails += pc_fail(c, "need %s [%d, R, %d]", name, N, C);
            break;
        }
        int R = (int)sh[1], tidx[2] = {0, 0};
        tidx[R / G - 1] = xar_time_index(t);
        int64_t ti[2] = {tidx[0], tidx[1]};
        snprintf(name, sizeof name, "tidx%d", k);
        fails += pc_check_i64(c, name, ti, (size_t)(R / G));
        if (xar_forward(&m, &kv, &a, v, x, R, labels, tidx, step, first, N, NULL, NULL) != 0) {
            fails += pc_fail(c, "call %d: xar_forward: %s", k, disa_errmsg());
            break;
        }
        snprintf(name, sizeof name, "v%d", k);
        fails += pc_check(c, name, v, (size_t)N * G * C);
    }
    arena_free(&a);
    xar_kv_free(&kv);
    free(labels);
    free_model(&m, opened);
    return fails;
}

static int cfg_sampler(pcase *c, xar_flow_sampler *s) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(pc_config(c), "sampler");
    if (!cJSON_IsString(v) || xar_flow_sampler_parse(v->valuestring, s) != 0)
        return pc_fail(c, "config 'sampler' must be euler_maruyama or euler");
    return 0;
}

// op xar_flow_step: in.x [N, C] F64, in.v [2N, C], in.eps [N, C] F64 (optional); config
// sampler, t_cur, t_next, cfg; out.x [N, C] F64.
static int op_xar_flow_step(pcase *c) {
    xar_flow_sampler s;
    if (cfg_sampler(c, &s)) return 1;
    int nd;
    int64_t sh[8];
    const double *x0 = pc_f64(c, "in.x", &nd, sh);
    if (!x0 || nd != 2) return pc_fail(c, "need in.x [N, C] F64");
    int N = (int)sh[0], C = (int)sh[1];
    const int64_t s_v[2] = {2 * (int64_t)N, C};
    const float *v = pc_need(c, "in.v", 2, s_v);
    const double *eps = pc_f64(c, "in.eps", NULL, NULL);
    double cfg = pc_num(c, "cfg", 1.0, 0), *x = malloc(sizeof(double) * (size_t)N * C);
    if (!v || !x) {
        free(x);
        return pc_fail(c, "need in.v [%d, %d]", 2 * N, C);
    }
    memcpy(x, x0, sizeof(double) * (size_t)N * C);
    xar_flow_update(x, v, cfg > 1.0 ? v + (size_t)N * C : NULL, eps, cfg, pc_num(c, "t_cur", 0, 0),
                    pc_num(c, "t_next", 0, 0), s, N, C);
    int fails = pc_check_f64(c, "x", x, (size_t)N * C);
    free(x);
    return fails;
}

// op xar_time_grid: config sampler, ns; out.t (the grids concatenated) F64,
// out.time_index I64.
static int op_xar_time_grid(pcase *c) {
    xar_flow_sampler s;
    if (cfg_sampler(c, &s)) return 1;
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(pc_config(c), "ns");
    if (!cJSON_IsArray(ns)) return pc_fail(c, "config needs 'ns'");
    size_t nt = 0, ni = 0;
    for (int k = 0; k < cJSON_GetArraySize(ns); k++) nt += (size_t)cJSON_GetArrayItem(ns, k)->valueint + 1;
    double *t = malloc(sizeof(double) * (nt ? nt : 1));
    int64_t *idx = malloc(sizeof(int64_t) * (nt ? nt : 1));
    if (!t || !idx) {
        free(t);
        free(idx);
        return pc_fail(c, "out of memory");
    }
    nt = 0;
    for (int k = 0; k < cJSON_GetArraySize(ns); k++) {
        int n = cJSON_GetArrayItem(ns, k)->valueint;
        xar_time_grid(t + nt, s, n);
        for (int i = 0; i < n; i++) idx[ni++] = xar_time_index(t[nt + i]);
        nt += (size_t)n + 1;
    }
    int fails = pc_check_f64(c, "t", t, nt) + pc_check_i64(c, "time_index", idx, ni);
    free(t);
    free(idx);
    return fails;
}

// op xar_sample: the whole AR loop replayed from a per-image tape.
typedef struct trace_rec {
    int64_t *n_steps;
    float *cfg, *z;
    size_t per;  // floats of z per step
    int K;
} trace_rec;

static void record_step(void *ctx, int step, int n_steps, double cfg, const float *z) {
    trace_rec *t = ctx;
    if (step >= t->K) return;
    t->n_steps[step] = n_steps;
    t->cfg[step] = (float)cfg;
    memcpy(t->z + (size_t)step * t->per, z, sizeof(float) * t->per);
}

static int op_xar_sample(pcase *c) {
    xar_model m;
    int opened, fails = load_model(c, &m, &opened);
    if (fails) {
        free_model(&m, opened);
        return fails;
    }
    xar_params p;
    xar_params_init(&p);
    const char *keys[] = {"flow_upper_steps", "flow_lower_steps", "cfg", "flow_sampler"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(pc_config(c), keys[k]);
        if (!v) continue;
        char buf[64];
        if (cJSON_IsString(v)) snprintf(buf, sizeof buf, "%s", v->valuestring);
        else snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        if (xar_params_set(&p, keys[k], buf) != 0) fails += pc_fail(c, "config %s: %s", keys[k], disa_errmsg());
    }
    const xar_config *xc = &m.cfg;
    const int L = xc->seq_len, C = xc->token_dim, G = xc->group, K = xc->clusters;
    int nd;
    int64_t sh[8];
    const int64_t *lab = pc_i64(c, "in.labels", &nd, sh);
    int B = lab ? (int)sh[0] : 0;
    const double *tape = pc_f64(c, "in.tape", &nd, sh);
    if (!lab || !tape || nd != 2 || sh[0] != B || fails) {
        free_model(&m, opened);
        return fails + pc_fail(c, "need in.labels [B] and in.tape [B, T] F64");
    }
    int *labels = malloc(sizeof(int) * B);
    trace_rec tr = {.K = K, .per = (size_t)B * G * C};
    tr.n_steps = malloc(sizeof(int64_t) * K);
    tr.cfg = pc_alloc(c, K);
    tr.z = pc_alloc(c, tr.per * K);
    float *tokens = pc_alloc(c, (size_t)B * L * C), *latent = pc_alloc(c, (size_t)B * L * C);
    for (int b = 0; b < B; b++) labels[b] = (int)lab[b];
    xar_sampler s;
    xar_rng_tape rng;
    memset(&s, 0, sizeof s);
    memset(&rng, 0, sizeof rng);
    sample_stats st = {0};
    if (xar_sampler_init(&s, &m, &p, B) != 0 || xar_rng_tape_init(&rng, tape, B, sh[1]) != 0) {
        fails += pc_fail(c, "%s", disa_errmsg());
    } else {
        s.trace = record_step;
        s.trace_ctx = &tr;
        blas_flops_reset();
        if (xar_sampler_run(&s, &rng.base, labels, B, tokens, &st) != 0) {
            fails += pc_fail(c, "xar_sampler_run: %s", disa_errmsg());
        } else {
            if (rng.pos[0] != sh[1])
                fails += pc_fail(c, "the loop used %lld of %lld tape values", (long long)rng.pos[0], (long long)sh[1]);
            fails += pc_check_i64(c, "n_steps", tr.n_steps, K);
            fails += pc_check(c, "cfg", tr.cfg, K);
            fails += pc_check(c, "z_steps", tr.z, tr.per * K);
            fails += pc_check(c, "tokens", tokens, (size_t)B * L * C);
            // Within f32_rtol (normwise) of the reference's float32 run as well.
            const float *w32 = pc_f32(c, "out.tokens_f32", NULL, NULL);
            double lim = pc_num(c, "f32_rtol", 1e-4, 1), mx = 0, mw = 0;
            for (size_t i = 0; w32 && i < (size_t)B * L * C; i++) {
                mx = fmax(mx, fabs((double)tokens[i] - w32[i]));
                mw = fmax(mw, fabs((double)w32[i]));
            }
            printf("  %-32s normwise %.3e (limit %.1e)  %s\n", "out.tokens_f32", mw > 0 ? mx / mw : mx, lim,
                   w32 && mx <= lim * mw ? "OK" : "NOT OK");
            if (!w32 || mx > lim * mw) fails += pc_fail(c, "tokens differ from the float32 reference run");
            for (int b = 0; b < B; b++)
                for (int q = 0; q < L; q++)
                    for (int k = 0; k < C; k++)
                        latent[((size_t)b * C + k) * L + q] = tokens[((size_t)b * L + q) * C + k];
            fails += pc_check(c, "latent", latent, (size_t)B * L * C);
            // The FLOP model equals what the run counted.
            xar_flops f;
            if (xar_flops_run(&f, xc, &p, B) != 0 || f.transformer != st.flops_transformer ||
                f.row_steps != st.head_row_steps || f.tokens != st.tokens)
                fails += pc_fail(c, "FLOP model %llu, run counted %llu (row steps %llu / %llu)",
                                 (unsigned long long)f.transformer, (unsigned long long)st.flops_transformer,
                                 (unsigned long long)f.row_steps, (unsigned long long)st.head_row_steps);
            else
                printf("  %-32s %llu FLOPs, equal to the run's count  OK\n", "xar_flops_run",
                       (unsigned long long)f.transformer);
        }
    }
    xar_sampler_free(&s);
    xar_rng_tape_free(&rng);
    free(labels);
    free(tr.n_steps);
    free_model(&m, opened);
    return fails;
}

const parity_op parity_ops_xar[] = {
    {"rmsnorm", op_rmsnorm},
    {"rope", op_rope},
    {"swiglu", op_swiglu},
    {"xar_forward", op_xar_forward},
    {"xar_flow_step", op_xar_flow_step},
    {"xar_time_grid", op_xar_time_grid},
    {"xar_sample", op_xar_sample},
    {NULL, NULL},
};
