// Parity adapters for FlowAR: the interpolation between scales, the transformer over all
// scales, the flow head, its Euler sampler and the whole sample_tokens (goldens by
// tools/golden/flowar_goldens.py; formats in tests/golden/README.md, "FlowAR").
#include "parity.h"
#include "disa/arena.h"
#include "disa/err.h"
#include "disa/flowar.h"
#include "disa/flowar_sample.h"
#include "disa/flownn.h"
#include "disa/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// helpers

// Bind "param.<name>" entries of the case to a table's pointers; names starting with
// `skip` (may be NULL) are left unbound. Returns the number of missing tensors.
static int bind_table(pcase *c, st_bind_entry *tab, int n, const char *skip) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (skip && strncmp(tab[i].name, skip, strlen(skip)) == 0) continue;
        char key[256];
        snprintf(key, sizeof key, "param.%s", tab[i].name);
        const float *p = pc_need(c, key, tab[i].ndim, tab[i].shape);
        if (!p) bad++;
        *tab[i].dst = p;
    }
    return bad;
}

// A model from the case: the file named by config "model" (flowar_open), else the
// config itself with "param.*" tensors (without the head when skip_head).
static int load_model(pcase *c, flowar_model *m, int skip_head, int *opened) {
    memset(m, 0, sizeof *m);
    *opened = 0;
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(pc_config(c), "model");
    if (cJSON_IsString(path)) {
        if (flowar_open(m, path->valuestring) != 0) return pc_fail(c, "%s", disa_errmsg());
        *opened = 1;
        return 0;
    }
    // The case config holds the model config plus the case's own settings (cfg, ...):
    // keep the model's keys only, since the config parser refuses keys it does not know.
    cJSON *mj = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, pc_config(c)) {
        for (int k = 0; flowar_config_keys[k]; k++)
            if (strcmp(it->string, flowar_config_keys[k]) == 0)
                cJSON_AddItemToObject(mj, it->string, cJSON_Duplicate(it, 1));
    }
    char *json = cJSON_PrintUnformatted(mj);
    cJSON_Delete(mj);
    int rc = json ? flowar_config_parse(&m->cfg, json, "golden config") : DISA_ENOMEM;
    free(json);
    if (rc) return pc_fail(c, "%s", disa_errmsg());
    st_bind_entry *tab;
    char *names;
    int n;
    if (flowar_tensor_table(m, &tab, &names, &n) != 0) return pc_fail(c, "%s", disa_errmsg());
    int bad = bind_table(c, tab, n, skip_head ? "flownet." : NULL);
    free(tab);
    free(names);
    if (!bad && flowar_prepare(m, "golden") != 0) bad = pc_fail(c, "%s", disa_errmsg());
    return bad;
}

static void unload_model(flowar_model *m, int opened) {
    if (opened) flowar_close(m);
    else flowar_release(m);
}

// The head of op flowar_head / flowar_euler from its config and "param.*" tensors named
// without "flownet.", with RoPE tables for an ft x ft grid.
static int load_head(pcase *c, flowhead *h, int ft) {
    int C = pc_int(c, "in_channels", 0, 0), W = pc_int(c, "model_channels", 0, 0);
    int Z = pc_int(c, "z_channels", 0, 0), depth = pc_int(c, "num_res_blocks", 0, 0);
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(pc_config(c), "cross");
    if (flowhead_init(h, C, W, Z, depth, cJSON_IsTrue(cr)) != 0) return pc_fail(c, "%s", disa_errmsg());
    st_table t;
    if (st_table_init(&t, flowhead_table_count(h)) != 0) return pc_fail(c, "out of memory");
    flowhead_table(&t, h, "");
    int bad = t.overflow ? pc_fail(c, "flowhead_table_count is short") : bind_table(c, t.e, t.n, NULL);
    st_table_free(&t);
    if (!bad && flowhead_prepare(h, &ft, 1, "golden") != 0) bad = pc_fail(c, "%s", disa_errmsg());
    return bad;
}

// Grid side of N tokens (the official int(sqrt(N))); -1 when N is not a square.
static int grid_side(int64_t N) {
    int ft = (int)lround(sqrt((double)N));
    return (int64_t)ft * ft == N ? ft : -1;
}

// ----------------------------------------------------------------------------
// flowar_interp

static int op_flowar_interp(pcase *c) {
    const int64_t any4[4] = {-1, -1, -1, -1};
    int nd;
    int64_t sh[8];
    if (!pc_need(c, "in.x", 4, any4)) return 1;
    const float *x = pc_f32(c, "in.x", &nd, sh);
    int N = (int)sh[0], C = (int)sh[1], H = (int)sh[2], W = (int)sh[3];
    int uh = pc_int(c, "up_h", 0, 0), uw = pc_int(c, "up_w", 0, 0);
    int oh = pc_int(c, "out_h", 0, 0), ow = pc_int(c, "out_w", 0, 0);
    if (uh < 1 || uw < 1 || oh < 1 || ow < 1) return pc_fail(c, "config sizes must be >= 1");
    float *up = pc_alloc(c, (size_t)N * C * uh * uw), *y = pc_alloc(c, (size_t)N * C * oh * ow);
    if (!up || !y) return pc_fail(c, "out of memory");
    resize_bicubic_forward(up, x, N, C, H, W, uh, uw);
    adaptive_avgpool2d_forward(y, up, N, C, uh, uw, oh, ow);
    int fails = pc_check(c, "up", up, (size_t)N * C * uh * uw);
    fails += pc_check(c, "y", y, (size_t)N * C * oh * ow);
    // The sampler's token-layout wrapper on the official path (16 x 16 between scales).
    if (uh == FLOWAR_INTERP_SIZE && uw == FLOWAR_INTERP_SIZE && H == W && oh == ow) {
        float *tin = pc_alloc(c, (size_t)N * C * H * W), *tout = pc_alloc(c, (size_t)N * C * oh * ow);
        float *work = pc_alloc(c, 2 * (size_t)N * C * uh * uw);
        for (int b = 0; b < N; b++)
            for (int ch = 0; ch < C; ch++)
                for (int p = 0; p < H * W; p++)
                    tin[((size_t)b * H * W + p) * C + ch] = x[((size_t)b * C + ch) * H * W + p];
        flowar_interp_tokens(tout, tin, work, N, C, H, oh);
        for (int b = 0; b < N; b++)
            for (int ch = 0; ch < C; ch++)
                for (int p = 0; p < oh * ow; p++)
                    y[((size_t)b * C + ch) * oh * ow + p] = tout[((size_t)b * oh * ow + p) * C + ch];
        fails += pc_check(c, "y", y, (size_t)N * C * oh * ow);
    }
    return fails;
}

// ----------------------------------------------------------------------------
// rmsnorm, rope2d

static int op_rmsnorm(pcase *c) {
    const int64_t any2[2] = {-1, -1};
    int nd;
    int64_t sh[8];
    if (!pc_need(c, "in.x", 2, any2)) return 1;
    const float *x = pc_f32(c, "in.x", &nd, sh);
    const int N = (int)sh[0], C = (int)sh[1];
    const float *w = pc_f32(c, "param.weight", &nd, sh);
    if (w && (nd != 1 || sh[0] != C)) return pc_fail(c, "param.weight must have shape [%d]", C);
    float *y = pc_alloc(c, (size_t)N * C);
    if (!y) return pc_fail(c, "out of memory");
    flow_rmsnorm_forward(y, x, w, N, C, (float)pc_num(c, "eps", 1e-6, 1));
    return pc_check(c, "y", y, (size_t)N * C);
}

static int op_rope2d(pcase *c) {
    const int64_t any2[2] = {-1, -1}, any1[1] = {-1};
    int nd;
    int64_t sh[8];
    if (!pc_need(c, "in.x", 2, any2) || !pc_need(c, "param.freqs", 1, any1)) return 1;
    const float *x = pc_f32(c, "in.x", &nd, sh);
    const int N = (int)sh[0], D = (int)sh[1], heads = pc_int(c, "heads", 1, 0), ft = grid_side(N);
    const float *freqs = pc_f32(c, "param.freqs", &nd, sh);
    const int hd = heads > 0 ? D / heads : 0;
    if (ft < 1 || heads < 1 || D % heads || sh[0] != hd / 4)
        return pc_fail(c, "in.x [%d, %d] with %d heads and %lld frequencies do not fit", N, D, heads, (long long)sh[0]);
    rope2d r;
    if (rope2d_init(&r, freqs, hd, &ft, 1) != 0) return pc_fail(c, "%s", disa_errmsg());
    float *y = pc_alloc(c, (size_t)N * D);
    int fails = 1;
    if (y) {
        memcpy(y, x, sizeof(float) * (size_t)N * D);
        rope2d_apply(y, (size_t)D, r.cos_t[ft], r.sin_t[ft], N, heads, hd);
        fails = pc_check(c, "y", y, (size_t)N * D);
    }
    rope2d_free(&r);
    return fails;
}

// ----------------------------------------------------------------------------
// flowar_forward

static int op_flowar_forward(pcase *c) {
    flowar_model m;
    int opened, fails = 0;
    if (load_model(c, &m, 1, &opened)) {
        unload_model(&m, opened);
        return 1;
    }
    const flowar_config *mc = &m.cfg;
    const int L = mc->seq_len, C = mc->token_dim, E = mc->enc_dim, D = mc->dec_dim, cfg = pc_int(c, "cfg", 0, 1);
    int nd;
    int64_t sh[8];
    const float *tokens = pc_f32(c, "in.tokens", &nd, sh);
    const int64_t *lab = pc_i64(c, "in.labels", NULL, NULL);
    if (!tokens || !lab || nd != 3 || sh[1] != L - 1 || sh[2] != C) {
        unload_model(&m, opened);
        return pc_fail(c, "need in.tokens [B,%d,%d] and in.labels", L - 1, C);
    }
    const int B = (int)sh[0], B2 = cfg ? 2 * B : B;
    int *labels = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) labels[b] = (int)lab[b];
    float *cls = pc_alloc(c, (size_t)B2 * E), *x = pc_alloc(c, (size_t)B2 * L * E);
    float *zs = pc_alloc(c, (size_t)B2 * L * D), *z = pc_alloc(c, (size_t)B2 * L * D);
    flowar_cache kv;
    arena a;
    if (flowar_cache_init(&kv, mc, B2) != 0 || arena_init(&a, flowar_forward_scratch_bytes(mc, B2), "parity") != 0) {
        free(labels);
        unload_model(&m, opened);
        return pc_fail(c, "%s", disa_errmsg());
    }
    flowar_class_rows(&m, cls, labels, B, cfg);
    flowar_cache_begin(&m, &kv, cls, B2);
    for (int s = 0; s < mc->n_scales && !fails; s++) {
        int N = mc->scale[s] * mc->scale[s], start = mc->start[s];
        for (int b = 0; b < B2; b++)
            for (int r = 0; r < N; r++) {
                float *xr = x + ((size_t)b * N + r) * E;
                if (s == 0) memcpy(xr, cls + (size_t)b * E, sizeof(float) * E);
                else linear_forward(xr, tokens + ((size_t)(b % B) * (L - 1) + start - 1 + r) * C, m.z_proj_w,
                                    m.z_proj_b, 1, C, E);
            }
        if (flowar_forward_scale(&m, &a, &kv, zs, x, s, NULL, NULL) != 0) {
            fails += pc_fail(c, "flowar_forward_scale(%d): %s", s, disa_errmsg());
            break;
        }
        for (int b = 0; b < B2; b++)
            memcpy(z + ((size_t)b * L + start) * D, zs + (size_t)b * N * D, sizeof(float) * (size_t)N * D);
    }
    if (!fails) fails += pc_check(c, "z", z, (size_t)B2 * L * D);
    arena_free(&a);
    flowar_cache_free(&kv);
    free(labels);
    unload_model(&m, opened);
    return fails;
}

// ----------------------------------------------------------------------------
// flowar_head

static int op_flowar_head(pcase *c) {
    int nd;
    int64_t sh[8];
    const float *x = pc_f32(c, "in.x", &nd, sh), *cond = pc_f32(c, "in.cond", NULL, NULL);
    const float *t = pc_f32(c, "in.t", NULL, NULL);
    if (!x || !cond || !t || nd != 3) return pc_fail(c, "need in.x [B,N,C], in.t [B], in.cond [B,N,z]");
    const int B = (int)sh[0], N = (int)sh[1], ft = grid_side(sh[1]);
    if (ft < 1) return pc_fail(c, "in.x has %d tokens per image, not a square grid", N);
    flowhead h;
    int fails = load_head(c, &h, ft);
    if (fails) {
        flowhead_free(&h);
        return fails;
    }
    const int W = h.w, C = h.C, Z = h.z_dim;
    float *ce = pc_alloc(c, (size_t)N * W), *kv = pc_alloc(c, (size_t)h.depth * N * 2 * W + 1);
    float *v = pc_alloc(c, (size_t)B * N * C);
    arena a;
    arena_init(&a, flowhead_scratch_bytes(&h, 1, N) + flowhead_condition_scratch_bytes(&h, N), "parity");
    // One image at a time: the official network takes one time per batch row.
    for (int b = 0; b < B && !fails; b++) {
        if (flowhead_condition(&h, &a, ce, kv, cond + (size_t)b * N * Z, 1, N) != 0 ||
            flowhead_forward(&h, &a, v + (size_t)b * N * C, x + (size_t)b * N * C, flowhead_time_index(t[b]), ce, kv,
                             (size_t)N * 2 * W, 1, N) != 0)
            fails += pc_fail(c, "flow head: %s", disa_errmsg());
    }
    if (!fails) fails += pc_check(c, "v", v, (size_t)B * N * C);
    arena_free(&a);
    flowhead_free(&h);
    return fails;
}

// ----------------------------------------------------------------------------
// flowar_euler

// Bit patterns of the float64 time grid of n steps (out.t_steps_bits).
static int check_grid(pcase *c, int n) {
    double *t = malloc(sizeof(double) * ((size_t)n + 2));
    int64_t *bits = malloc(sizeof(int64_t) * ((size_t)n + 2));
    int pts = flowar_time_grid(t, n);
    memcpy(bits, t, sizeof(double) * (size_t)pts);
    int fails = pc_check_i64(c, "t_steps_bits", bits, (size_t)pts);
    free(t);
    free(bits);
    return fails;
}

static int op_flowar_euler(pcase *c) {
    int nd;
    int64_t sh[8];
    const float *noise = pc_f32(c, "in.noise", &nd, sh), *cond = pc_f32(c, "in.cond", NULL, NULL);
    if (!noise || !cond || nd != 3) return pc_fail(c, "need in.noise [B,N,C] and in.cond [R,N,z]");
    const int B = (int)sh[0], N = (int)sh[1], ft = grid_side(sh[1]);
    const int steps = pc_int(c, "num_steps", 0, 0);
    const double cfg = pc_num(c, "cfg_scale", 1.0, 0), guidance = pc_num(c, "guidance", 1.0, 0);
    if (ft < 1 || steps < 1 || steps > 1000) return pc_fail(c, "bad token count %d or num_steps %d", N, steps);
    flowhead h;
    int fails = load_head(c, &h, ft);
    if (fails) {
        flowhead_free(&h);
        return fails;
    }
    fails += check_grid(c, steps);
    double *t = malloc(sizeof(double) * ((size_t)steps + 2));
    int guided = flowar_guided_steps(t, flowar_time_grid(t, steps), cfg, guidance) > 0;
    free(t);
    const int images = cfg != 1.0 && guided ? 2 * B : B, W = h.w, C = h.C;
    const size_t M = (size_t)B * N * C;
    float *ce = pc_alloc(c, (size_t)images * N * W), *kv = pc_alloc(c, (size_t)h.depth * images * N * 2 * W + 1);
    float *out = pc_alloc(c, M);
    double *x = malloc(sizeof(double) * M);
    for (size_t k = 0; k < M; k++) x[k] = noise[k];
    arena a;
    arena_init(&a, flowar_euler_scratch_bytes(&h, B, N) + flowhead_condition_scratch_bytes(&h, images * N),
               "parity");
    int nfe = 0, n_guided = 0;
    if (flowhead_condition(&h, &a, ce, kv, cond, images, N) != 0 ||
        flowar_euler(&h, &a, x, ce, kv, (size_t)images * N * 2 * W, B, N, steps, cfg, guidance, &nfe, &n_guided, NULL,
                     NULL) != 0) {
        fails += pc_fail(c, "flowar_euler: %s", disa_errmsg());
    } else {
        for (size_t k = 0; k < M; k++) out[k] = (float)x[k];
        int64_t nf = nfe, ng = n_guided;
        fails += pc_check_i64(c, "nfe", &nf, 1);
        fails += pc_check_i64(c, "n_guided", &ng, 1);
        fails += pc_check(c, "x", out, M);
    }
    free(x);
    arena_free(&a);
    flowhead_free(&h);
    return fails;
}

// ----------------------------------------------------------------------------
// flowar_sample

typedef struct trace_rec {
    int64_t *n_steps, *nfe, *n_guided;
    float *tokens;  // [B, L, C]
    const flowar_config *mc;
    int B;
} trace_rec;

static void record_scale(void *ctx, int s, int n_steps, int nfe, int n_guided, double cfg, const float *tok) {
    trace_rec *t = ctx;
    const flowar_config *mc = t->mc;
    const int N = mc->scale[s] * mc->scale[s], C = mc->token_dim;
    t->n_steps[s] = n_steps;
    t->nfe[s] = nfe;
    t->n_guided[s] = n_guided;
    for (int b = 0; b < t->B; b++)
        memcpy(t->tokens + ((size_t)b * mc->seq_len + mc->start[s]) * C, tok + (size_t)b * N * C,
               sizeof(float) * (size_t)N * C);
}

// The loop criterion: tokens within `rtol` normwise of the reference's own float32 run.
static int check_f32_run(pcase *c, const float *got, size_t n, double rtol) {
    const float *want = pc_f32(c, "out.tokens_f32", NULL, NULL);
    if (!want) return pc_fail(c, "golden has no out.tokens_f32");
    double max_abs = 0, max_want = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= max_abs)) max_abs = isnan(d) ? INFINITY : d;
        if (fabs(want[i]) > max_want) max_want = fabs(want[i]);
    }
    double rel = max_want > 0 ? max_abs / max_want : max_abs;
    int ok = rel <= rtol;
    printf("  %-32s n=%-8zu max_abs=%.3e max_rel=%.3e  %s (vs the float32 reference run, rtol %.0e)\n",
           "out.tokens_f32", n, max_abs, rel, ok ? "OK" : "NOT OK", rtol);
    return ok ? 0 : pc_fail(c, "tokens are %.3e normwise from the reference's float32 run (> %.0e)", rel, rtol);
}

static int op_flowar_sample(pcase *c) {
    flowar_model m;
    int opened, fails = 0;
    if (load_model(c, &m, 0, &opened)) {
        unload_model(&m, opened);
        return 1;
    }
    const cJSON *cj = pc_config(c);
    flowar_params p;
    flowar_params_init(&p);
    const char *keys[] = {"flow_upper_steps", "flow_lower_steps", "cfg", "guidance"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cj, keys[k]);
        char buf[64];
        if (!cJSON_IsNumber(v)) {
            fails += pc_fail(c, "config needs '%s'", keys[k]);
            continue;
        }
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        if (flowar_params_set(&p, keys[k], buf) != 0) fails += pc_fail(c, "config %s: %s", keys[k], disa_errmsg());
    }
    const flowar_config *mc = &m.cfg;
    const int L = mc->seq_len, C = mc->token_dim, S = mc->n_scales, Nl = mc->seq_h * mc->seq_h;
    int nd;
    int64_t sh[8];
    const int64_t *lab = pc_i64(c, "in.labels", &nd, sh);
    const int B = lab ? (int)sh[0] : 0;
    const float *tape = pc_f32(c, "in.tape", &nd, sh);
    if (!lab || !tape || fails) {
        unload_model(&m, opened);
        return fails + pc_fail(c, "need in.labels and in.tape");
    }
    int *labels = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) labels[b] = (int)lab[b];
    trace_rec tr = {.mc = mc, .B = B};
    tr.n_steps = malloc(sizeof(int64_t) * S);
    tr.nfe = malloc(sizeof(int64_t) * S);
    tr.n_guided = malloc(sizeof(int64_t) * S);
    tr.tokens = pc_alloc(c, (size_t)B * L * C);
    float *tokens = pc_alloc(c, (size_t)B * Nl * C), *image = pc_alloc(c, (size_t)B * Nl * C);
    flowar_sampler s;
    ar_rng_tape rng;
    sample_stats st = {0};
    if (flowar_sampler_init(&s, &m, &p, B) != 0 || ar_rng_tape_init(&rng, NULL, tape, B, L, sh[1]) != 0) {
        fails += pc_fail(c, "%s", disa_errmsg());
    } else {
        s.trace = record_scale;
        s.trace_ctx = &tr;
        if (flowar_sampler_run(&s, &rng.base, labels, B, tokens, &st) != 0) {
            fails += pc_fail(c, "flowar_sampler_run: %s", disa_errmsg());
        } else {
            if (rng.pos[0] != sh[1])
                fails += pc_fail(c, "the loop used %lld of %lld tape values", (long long)rng.pos[0], (long long)sh[1]);
            fails += pc_check_i64(c, "n_steps", tr.n_steps, S);
            fails += pc_check_i64(c, "nfe", tr.nfe, S);
            fails += pc_check_i64(c, "n_guided", tr.n_guided, S);
            fails += pc_check(c, "tokens_scales", tr.tokens, (size_t)B * L * C);
            fails += pc_check(c, "tokens", tokens, (size_t)B * Nl * C);
            mar_unpatchify(image, tokens, B, mc->seq_h, mc->vae_embed_dim, mc->patch_size);
            fails += pc_check(c, "image", image, (size_t)B * Nl * C);
            fails += check_f32_run(c, tokens, (size_t)B * Nl * C, pc_num(c, "f32_rtol", 1e-4, 1));
        }
        flowar_sampler_free(&s);
        ar_rng_tape_free(&rng);
    }
    free(labels);
    free(tr.n_steps);
    free(tr.nfe);
    free(tr.n_guided);
    unload_model(&m, opened);
    return fails;
}

const parity_op parity_ops_flowar[] = {
    {"flowar_interp", op_flowar_interp},
    {"flowar_rmsnorm", op_rmsnorm},
    {"flowar_rope2d", op_rope2d},
    {"flowar_forward", op_flowar_forward},
    {"flowar_head", op_flowar_head},
    {"flowar_euler", op_flowar_euler},
    {"flowar_sample", op_flowar_sample},
    {NULL, NULL},
};
