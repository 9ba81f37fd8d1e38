// Parity adapters for the MAR transformer, the diffusion head and the whole AR loop
// (goldens by tools/golden/mar_goldens.py; formats in tests/golden/README.md, "MAR").
#include "parity.h"
#include "disa/arena.h"
#include "disa/dpm.h"
#include "disa/err.h"
#include "disa/mar.h"
#include "disa/sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Bind the model's tensors from "param.<name>" entries of the case. only_head = 1: just
// the head, read without its "diffloss.net." prefix; -1: everything but the head (the
// transformer goldens carry no head); 0: all.
static int bind_model(pcase *c, mar_model *m, int only_head) {
    st_bind_entry *tab;
    char *names;
    int n, bad = 0;
    if (mar_tensor_table(m, &tab, &names, &n) != 0) return pc_fail(c, "%s", disa_errmsg());
    for (int i = 0; i < n; i++) {
        const char *nm = tab[i].name;
        int in_head = strncmp(nm, "diffloss.net.", 13) == 0;
        if (only_head == 1) {
            if (!in_head) continue;
            nm += 13;
        } else if (only_head == -1 && in_head) {
            continue;
        }
        char key[256];
        snprintf(key, sizeof key, "param.%s", nm);
        const float *p = pc_need(c, key, tab[i].ndim, tab[i].shape);
        if (!p) bad++;
        *tab[i].dst = p;
    }
    free(tab);
    free(names);
    return bad;
}

// The case config holds the model config plus the case's own settings (cfg, ...): keep
// the model's keys only, since the model config parser refuses keys it does not know.
static int parse_cfg(pcase *c, mar_config *mc) {
    cJSON *model = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, pc_config(c)) {
        for (int k = 0; mar_config_keys[k]; k++)
            if (strcmp(it->string, mar_config_keys[k]) == 0) cJSON_AddItemToObject(model, it->string, cJSON_Duplicate(it, 1));
    }
    char *json = cJSON_PrintUnformatted(model);
    cJSON_Delete(model);
    int rc = json ? mar_config_parse(mc, json, "golden config") : DISA_ENOMEM;
    free(json);
    return rc ? pc_fail(c, "%s", disa_errmsg()) : 0;
}

static void free_model(mar_model *m) {
    mar_prepare(m, PRECISION_FP32);  // drops a bf16 form
    free(m->enc);
    free(m->dec);
    free(m->head.blocks);
}

// op mar_forward: in.tokens [B,L,C], in.mask [B,L] (1 = unknown), in.labels [B];
// config cfg (0/1) + the model config; out.z [B2, L, D] for every position.
static int op_mar_forward(pcase *c) {
    mar_model m;
    memset(&m, 0, sizeof m);
    if (parse_cfg(c, &m.cfg) || bind_model(c, &m, -1)) {
        free_model(&m);
        return 1;
    }
    if (pc_bf16(c) && mar_prepare(&m, PRECISION_BF16) != 0) {
        free_model(&m);
        return pc_fail(c, "%s", disa_errmsg());
    }
    const mar_config *mc = &m.cfg;
    int L = mc->seq_len, C = mc->token_dim, D = mc->dec_dim, cfg = pc_int(c, "cfg", 0, 1), nd;
    int64_t sh[8];
    const float *tokens = pc_f32(c, "in.tokens", &nd, sh);
    const int64_t *mask = pc_i64(c, "in.mask", NULL, NULL), *lab = pc_i64(c, "in.labels", NULL, NULL);
    if (!tokens || !mask || !lab || nd != 3 || sh[1] != L || sh[2] != C) {
        free_model(&m);
        return pc_fail(c, "need in.tokens [B,%d,%d], in.mask, in.labels", L, C);
    }
    int B = (int)sh[0], B2 = cfg ? 2 * B : B, n_known = -1, fails = 0;
    unsigned char *known = malloc((size_t)B * L);
    int *labels = malloc(sizeof(int) * B), *pred = malloc(sizeof(int) * (size_t)B * L);
    for (int b = 0; b < B; b++) {
        int k = 0;
        labels[b] = (int)lab[b];
        for (int p = 0; p < L; p++) {
            known[b * L + p] = mask[b * L + p] == 0;
            k += known[b * L + p];
            pred[b * L + p] = p;
        }
        if (n_known >= 0 && k != n_known) fails += pc_fail(c, "images have different known counts");
        n_known = k;
    }
    arena a;
    float *z = pc_alloc(c, (size_t)B2 * L * D);
    if (!fails && arena_init(&a, mar_forward_scratch_bytes(mc, B2), "parity") == 0) {
        if (mar_forward(&m, &a, z, tokens, known, n_known, labels, cfg, pred, L, B, NULL, NULL) != 0)
            fails += pc_fail(c, "mar_forward: %s", disa_errmsg());
        else
            fails += pc_check(c, "z", z, (size_t)B2 * L * D);
        arena_free(&a);
    }
    free(known);
    free(labels);
    free(pred);
    free_model(&m);
    return fails;
}

// op diffloss_net: in.x [N,C], in.t [N], in.c [N,zc]; config in_channels, model_channels,
// num_res_blocks, z_channels, cfg_scale (optional: forward_with_cfg); out.out [N, 2C].
// A minimal MAR whose head has the sizes of config in_channels, model_channels,
// num_res_blocks, z_channels; only the head is bound. Returns 0, or 1 after failing the case.
static int head_from_config(pcase *c, mar_model *m) {
    int C = pc_int(c, "in_channels", 0, 0), W = pc_int(c, "model_channels", 0, 0);
    int depth = pc_int(c, "num_res_blocks", 0, 0), zc = pc_int(c, "z_channels", 0, 0);
    memset(m, 0, sizeof *m);
    char json[512];
    snprintf(json, sizeof json,
             "{\"format\":\"disa-mar-1\",\"img_size\":1,\"vae_stride\":1,\"patch_size\":1,\"vae_embed_dim\":%d,"
             "\"encoder_embed_dim\":%d,\"encoder_depth\":0,\"encoder_num_heads\":1,\"decoder_embed_dim\":%d,"
             "\"decoder_depth\":0,\"decoder_num_heads\":1,\"buffer_size\":1,\"class_num\":1,\"diffloss_d\":%d,"
             "\"diffloss_w\":%d,\"tokenizer\":\"patch\"}", C, zc, zc, depth, W);
    if (mar_config_parse(&m->cfg, json, "diffloss config") != 0) return pc_fail(c, "%s", disa_errmsg());
    if (bind_model(c, m, 1)) {
        free_model(m);
        return 1;
    }
    return 0;
}

static int op_diffloss_net(pcase *c) {
    int C = pc_int(c, "in_channels", 0, 0), W = pc_int(c, "model_channels", 0, 0);
    int zc = pc_int(c, "z_channels", 0, 0);
    double scale = pc_num(c, "cfg_scale", 0, 1);
    int has_cfg = cJSON_GetObjectItemCaseSensitive(pc_config(c), "cfg_scale") != NULL;
    mar_model m;
    if (head_from_config(c, &m)) return 1;
    if (pc_bf16(c) && diffloss_prepare(&m.head, PRECISION_BF16) != 0) {
        free_model(&m);
        return pc_fail(c, "%s", disa_errmsg());
    }
    int nd;
    int64_t sh[8];
    const float *x = pc_f32(c, "in.x", &nd, sh), *cond = pc_f32(c, "in.c", NULL, NULL);
    const int64_t *t = pc_i64(c, "in.t", NULL, NULL);
    if (!x || !cond || !t) {
        free_model(&m);
        return pc_fail(c, "need in.x, in.t, in.c");
    }
    int N = (int)sh[0], fails = 0;
    float *raw = pc_alloc(c, (size_t)N * 2 * C), *out = pc_alloc(c, (size_t)N * 2 * C);
    float *ce = pc_alloc(c, (size_t)W), *te = pc_alloc(c, (size_t)W);
    arena a;
    arena_init(&a, diffloss_scratch_bytes(&m.head, 1), "parity");
    // forward_with_cfg evaluates [half; half] with both conditions.
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)(has_cfg ? r % (N / 2) : r) * C;
        if (diffloss_cond(&m.head, &a, ce, cond + (size_t)r * zc, 1) != 0 ||
            diffloss_time(&m.head, te, (float)t[r]) != 0 ||
            diffloss_forward(&m.head, &a, raw + (size_t)r * 2 * C, xr, te, ce, 1) != 0)
            fails += pc_fail(c, "diffloss: %s", disa_errmsg());
    }
    memcpy(out, raw, sizeof(float) * (size_t)N * 2 * C);
    if (has_cfg) {
        int h = N / 2;
        for (int r = 0; r < h; r++)
            for (int k = 0; k < C; k++) {
                float ec = raw[(size_t)r * 2 * C + k], eu = raw[(size_t)(r + h) * 2 * C + k];
                float g = eu + (float)scale * (ec - eu);
                out[(size_t)r * 2 * C + k] = out[(size_t)(r + h) * 2 * C + k] = g;
            }
    }
    if (!fails) fails += pc_check(c, "out", out, (size_t)N * 2 * C);
    arena_free(&a);
    free_model(&m);
    return fails;
}

// op dpm_solve: the DPM solver on the head alone. in.x [N,C] start noise, in.c [N or 2N,
// zc]; config: the head sizes, steps, order, algorithm, cfg_scale (optional: guided eps of
// forward_with_cfg, c = [c_cond; c_uncond]); out.xs [steps, N, C] after every update.
typedef struct solve_ctx {
    const diffloss_net *h;
    arena *a;
    const float *ce;
    float *te, *xin, *out;
    int cfg, C;
    float scale;
} solve_ctx;

static int solve_eps(void *vctx, float *eps, const float *x, float t_input, int N) {
    solve_ctx *k = vctx;
    const int C = k->C, N2 = k->cfg ? 2 * N : N;
    memcpy(k->xin, x, sizeof(float) * (size_t)N * C);
    if (k->cfg) memcpy(k->xin + (size_t)N * C, x, sizeof(float) * (size_t)N * C);
    int rc = diffloss_time(k->h, k->te, t_input);
    if (!rc) rc = diffloss_forward(k->h, k->a, k->out, k->xin, k->te, k->ce, N2);
    if (rc) return rc;
    for (int r = 0; r < N; r++)
        for (int j = 0; j < C; j++) {
            float ec = k->out[(size_t)r * 2 * C + j], eu = k->cfg ? k->out[(size_t)(N + r) * 2 * C + j] : ec;
            eps[(size_t)r * C + j] = k->cfg ? eu + k->scale * (ec - eu) : ec;
        }
    return 0;
}

static int op_dpm_solve(pcase *c) {
    int C = pc_int(c, "in_channels", 0, 0), W = pc_int(c, "model_channels", 0, 0);
    int steps = pc_int(c, "steps", 0, 0), order = pc_int(c, "order", 0, 0);
    int cfg = cJSON_GetObjectItemCaseSensitive(pc_config(c), "cfg_scale") != NULL;
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(pc_config(c), "algorithm");
    dpm_algorithm algo = cJSON_IsString(al) && strcmp(al->valuestring, "dpmsolver++") == 0 ? DPM_SOLVER_PP : DPM_SOLVER;
    mar_model m;
    if (head_from_config(c, &m)) return 1;
    int nd;
    int64_t sh[8];
    const float *x0 = pc_f32(c, "in.x", &nd, sh), *cond = pc_f32(c, "in.c", NULL, NULL);
    if (!x0 || !cond || nd != 2 || sh[1] != C || steps < 1 || steps > 1000) {
        free_model(&m);
        return pc_fail(c, "need in.x [N,%d], in.c and config steps in 1..1000", C);
    }
    int N = (int)sh[0], N2 = cfg ? 2 * N : N, fails = 0;
    size_t NC = (size_t)N * C;
    solve_ctx k = {.h = &m.head, .cfg = cfg, .C = C, .scale = (float)pc_num(c, "cfg_scale", 1.0, 1)};
    float *ce = pc_alloc(c, (size_t)N2 * W), *x = pc_alloc(c, NC), *xs = pc_alloc(c, NC * steps);
    float *hist = pc_alloc(c, 3 * NC);
    k.te = pc_alloc(c, (size_t)W);
    k.xin = pc_alloc(c, (size_t)N2 * C);
    k.out = pc_alloc(c, (size_t)N2 * 2 * C);
    k.ce = ce;
    dpm_schedule sc;
    dpm_plan p;
    arena a;
    memset(&p, 0, sizeof p);
    if (arena_init(&a, diffloss_scratch_bytes(&m.head, N2), "parity") != 0 || dpm_schedule_init(&sc) != 0) {
        free_model(&m);
        return pc_fail(c, "%s", disa_errmsg());
    }
    k.a = &a;
    if (diffloss_cond(&m.head, &a, ce, cond, N2) != 0) {
        fails += pc_fail(c, "%s", disa_errmsg());
    } else if (dpm_plan_init(&p, &sc, steps, order, algo) != 0) {
        fails += pc_fail(c, "%s", disa_errmsg());
    } else {
        // Step by step through dpm_model_value / dpm_update, keeping x after each update...
        memcpy(x, x0, sizeof(float) * NC);
        for (int j = 0; j < steps && !fails; j++) {
            float *mk = hist + (size_t)(j % 3) * NC;
            if (solve_eps(&k, mk, x, p.t_input[j], N) != 0) fails += pc_fail(c, "%s", disa_errmsg());
            dpm_model_value(mk, x, &p, j, N, C);
            dpm_update(x, mk, j >= 1 ? hist + (size_t)((j - 1) % 3) * NC : NULL,
                       j >= 2 ? hist + (size_t)((j - 2) % 3) * NC : NULL, &p, j + 1, N, C);
            memcpy(xs + (size_t)j * NC, x, sizeof(float) * NC);
        }
        if (!fails) fails += pc_check(c, "xs", xs, NC * steps);
        // ...and dpm_solve, which must give the same bits.
        memcpy(x, x0, sizeof(float) * NC);
        if (!fails && dpm_solve(&p, x, hist, solve_eps, &k, N, C) != 0) fails += pc_fail(c, "%s", disa_errmsg());
        if (!fails) fails += pc_check(c, "x", x, NC);
        if (!fails && memcmp(x, xs + (size_t)(steps - 1) * NC, sizeof(float) * NC) != 0)
            fails += pc_fail(c, "dpm_solve differs from the step-by-step loop");
    }
    dpm_plan_free(&p);
    dpm_schedule_free(&sc);
    arena_free(&a);
    free_model(&m);
    return fails;
}

// op mar_sample: the whole AR loop replayed from a per-image tape.
typedef struct trace_rec {
    int64_t *mask_len, *n_steps, *n_pred;
    float *cfg, *tokens;
    size_t per;  // floats of tokens per step
    int K;
} trace_rec;

static void record_step(void *ctx, int step, int mask_len, int n_steps, int n_pred, float cfg, const float *tokens) {
    trace_rec *t = ctx;
    if (step >= t->K) return;
    t->mask_len[step] = mask_len;
    t->n_steps[step] = n_steps;
    t->n_pred[step] = n_pred;
    t->cfg[step] = cfg;
    memcpy(t->tokens + (size_t)step * t->per, tokens, sizeof(float) * t->per);
}

static int op_mar_sample(pcase *c) {
    mar_model m;
    memset(&m, 0, sizeof m);
    if (parse_cfg(c, &m.cfg) || bind_model(c, &m, 0)) {
        free_model(&m);
        return 1;
    }
    const cJSON *cfgj = pc_config(c);
    sample_params p;
    sample_params_init(&p);
    const char *keys[][2] = {{"num_iter", "num_iter"}, {"cfg", "cfg"}, {"cfg_schedule", "cfg_schedule"},
                             {"temperature", "temperature"}, {"sampler", "diff_sampler"},
                             {"upper", "diff_upper_steps"}, {"lower", "diff_lower_steps"},
                             {"strategy", "diff_annealing_strategy"}, {"dpm_order", "dpm_order"},
                             {"budget", "diff_budget"}, {"signal", "diff_adaptive_signal"}};
    int fails = 0;
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfgj, keys[k][0]);
        if (!v) continue;
        char buf[64];
        if (cJSON_IsString(v)) snprintf(buf, sizeof buf, "%s", v->valuestring);
        else snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        if (sample_params_set(&p, keys[k][1], buf) != 0) fails += pc_fail(c, "config %s: %s", keys[k][0], disa_errmsg());
    }
    const mar_config *mc = &m.cfg;
    int L = mc->seq_len, C = mc->token_dim, K = p.num_iter, nd;
    int64_t sh[8];
    const int64_t *lab = pc_i64(c, "in.labels", &nd, sh);
    int B = lab ? (int)sh[0] : 0;
    const int64_t *orders = pc_i64(c, "in.orders", NULL, NULL);
    const float *tape = pc_f32(c, "in.tape", &nd, sh);
    if (!lab || !orders || !tape || fails) {
        free_model(&m);
        return fails + pc_fail(c, "need in.labels, in.orders, in.tape");
    }
    int *labels = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) labels[b] = (int)lab[b];
    trace_rec tr = {.K = K, .per = (size_t)B * L * C};
    tr.mask_len = malloc(sizeof(int64_t) * K);
    tr.n_steps = malloc(sizeof(int64_t) * K);
    tr.n_pred = malloc(sizeof(int64_t) * K);
    tr.cfg = pc_alloc(c, K);
    tr.tokens = pc_alloc(c, tr.per * K);
    sampler s;
    ar_rng_tape rng;
    float *tokens = pc_alloc(c, tr.per), *image = pc_alloc(c, tr.per);
    sample_stats st = {0};
    if (sampler_init(&s, &m, &p, B) != 0 || ar_rng_tape_init(&rng, orders, tape, B, L, sh[1]) != 0) {
        fails += pc_fail(c, "%s", disa_errmsg());
    } else {
        s.trace = record_step;
        s.trace_ctx = &tr;
        if (sampler_run(&s, &rng.base, labels, B, tokens, &st) != 0) {
            fails += pc_fail(c, "sampler_run: %s", disa_errmsg());
        } else {
            if (rng.pos[0] != sh[1]) fails += pc_fail(c, "the loop used %lld of %lld tape values", (long long)rng.pos[0], (long long)sh[1]);
            fails += pc_check_i64(c, "mask_len", tr.mask_len, K);
            fails += pc_check_i64(c, "n_steps", tr.n_steps, K);
            fails += pc_check_i64(c, "n_pred", tr.n_pred, K);
            fails += pc_check(c, "cfg", tr.cfg, K);
            fails += pc_check(c, "tokens_steps", tr.tokens, tr.per * K);
            fails += pc_check(c, "tokens", tokens, tr.per);
            // adaptive: the evaluations of every token, summed (the counts are per token)
            if (pc_i64(c, "out.row_steps", NULL, NULL)) {
                int64_t rs = (int64_t)st.head_row_steps;
                fails += pc_check_i64(c, "row_steps", &rs, 1);
            }
            mar_unpatchify(image, tokens, B, mc->seq_h, mc->vae_embed_dim, mc->patch_size);
            fails += pc_check(c, "image", image, tr.per);
        }
        sampler_free(&s);
        ar_rng_tape_free(&rng);
    }
    free(labels);
    free(tr.mask_len);
    free(tr.n_steps);
    free(tr.n_pred);
    free_model(&m);
    return fails;
}

const parity_op parity_ops_model[] = {
    {"mar_forward", op_mar_forward},
    {"diffloss_net", op_diffloss_net},
    {"mar_sample", op_mar_sample},
    {"dpm_solve", op_dpm_solve},
    {NULL, NULL},
};
