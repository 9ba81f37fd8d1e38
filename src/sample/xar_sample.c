// xar_sample.c: xAR's AR loop with its flow samplers, DiSA's linear step schedule and
// the FLOP model of the loop.
// Mirrors Qinyu-Allen-Zhao/DiSA xAR_DiSA/models/xar.py: xAR.sample_tokens and
// models/sampler.py: euler_maruyama_sampler, euler_sampler, get_score_from_velocity
// (tools/xarref/ is the Python reference, tests/golden/xar_*.safetensors the check).
#include "disa/xar_sample.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/flags.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// torch evaluates each element-wise op on its own and rounds after it; a fused
// multiply-add would round once and drift from the official float64 flow by an ulp.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// ----------------------------------------------------------------------------
// params

static const char *const k_sampler_names[XAR_SAMPLER_COUNT] = {"euler_maruyama", "euler"};

const char *xar_flow_sampler_name(xar_flow_sampler s) {
    return (int)s >= 0 && s < XAR_SAMPLER_COUNT ? k_sampler_names[s] : "?";
}

int xar_flow_sampler_parse(const char *s, xar_flow_sampler *out) {
    for (int k = 0; s && k < XAR_SAMPLER_COUNT; k++)
        if (strcmp(s, k_sampler_names[k]) == 0) {
            *out = (xar_flow_sampler)k;
            return 0;
        }
    return disa_err(DISA_EINVAL, "--flow_sampler must be euler_maruyama or euler, got '%s'", s ? s : "(null)");
}

void xar_params_init(xar_params *p) {
    p->upper = 50;
    p->lower = 15;
    p->cfg = 1.0;
    p->sampler = XAR_SAMPLER_EULER_MARUYAMA;
}

int xar_params_check(const xar_params *p) {
    if (p->lower < 1 || p->lower > 1000)
        return disa_err(DISA_ERANGE, "--flow_lower_steps must be in 1..1000, got %d", p->lower);
    if (p->upper < p->lower || p->upper > 1000)
        return disa_err(DISA_ERANGE, "--flow_upper_steps must be in %d..1000 (>= --flow_lower_steps), got %d",
                        p->lower, p->upper);
    if (!(p->cfg >= 1.0 && p->cfg <= 100.0))
        return disa_err(DISA_ERANGE, "--cfg must be in [1, 100], got %g", p->cfg);
    if ((int)p->sampler < 0 || p->sampler >= XAR_SAMPLER_COUNT)
        return disa_err(DISA_EINVAL, "--flow_sampler must be euler_maruyama or euler");
    return 0;
}

int xar_params_set(xar_params *p, const char *flag, const char *v) {
    if (strcmp(flag, "flow_upper_steps") == 0) return sample_flag_int(flag, v, 1, 1000, &p->upper);
    if (strcmp(flag, "flow_lower_steps") == 0) return sample_flag_int(flag, v, 1, 1000, &p->lower);
    if (strcmp(flag, "num_steps") == 0) {
        int rc = sample_flag_int(flag, v, 1, 1000, &p->upper);
        if (!rc) p->lower = p->upper;
        return rc;
    }
    if (strcmp(flag, "cfg") == 0) return flag_num(flag, v, 1.0, 100.0, &p->cfg);
    if (strcmp(flag, "cfg_schedule") == 0) {
        if (strcmp(v, "linear") == 0) return 0;
        return disa_err(DISA_EINVAL, "--cfg_schedule must be linear for xAR (sample_tokens raises the scale "
                        "linearly from 1 at the first group to --cfg at the last), got '%s'", v);
    }
    if (strcmp(flag, "flow_sampler") == 0) return xar_flow_sampler_parse(v, &p->sampler);
    return DISA_ENOTFOUND;
}

const char *xar_params_str(const xar_params *p, char *buf, int n) {
    snprintf(buf, (size_t)n, "flow_upper_steps=%d flow_lower_steps=%d cfg=%g cfg_schedule=linear flow_sampler=%s",
             p->upper, p->lower, p->cfg, xar_flow_sampler_name(p->sampler));
    return buf;
}

int xar_steps_at(const xar_params *p, int clusters, int s) {
    // int((upper_step - step) / upper_step * (upper - lower) + lower): the division, the
    // product and the sum in this order, in double; the value is >= 1, so the cast
    // truncates as int() does.
    double u = (double)(clusters - 1);
    return (int)((u - (double)s) / u * (double)(p->upper - p->lower) + (double)p->lower);
}

double xar_cfg_at(const xar_params *p, int clusters, int s) {
    return (p->cfg - 1.0) * (double)s / ((double)clusters - 1.0) + 1.0;
}

// ----------------------------------------------------------------------------
// the flow

// torch.linspace(start, end, steps) in double: the first half from start, the second
// from end, so both ends are exact.
static void linspace(double *t, double start, double end, int steps) {
    if (steps == 1) {
        t[0] = start;
        return;
    }
    double step = (end - start) / (double)(steps - 1);
    int half = steps / 2;
    for (int i = 0; i < steps; i++) t[i] = i < half ? start + step * (double)i : end - step * (double)(steps - 1 - i);
}

void xar_time_grid(double *t /*[n+1]*/, xar_flow_sampler s, int n) {
    if (s == XAR_SAMPLER_EULER) {
        linspace(t, 1.0, 0.0, n + 1);
    } else {
        linspace(t, 1.0, 0.04, n);
        t[n] = 0.0;
    }
}

// Euler-Maruyama drift v - 0.5 * diffusion * score on the linear path, score from the
// velocity (get_score_from_velocity): alpha 1 - t with derivative -1, sigma t with 1.
static inline double em_drift(double v, double x, double t) {
    double rar = (1.0 - t) / -1.0;              // alpha_t / d_alpha_t
    double var = t * t - rar * 1.0 * t;         // sigma^2 - rar * d_sigma * sigma
    double score = (rar * v - x) / var;
    return v - 0.5 * (2.0 * t) * score;         // diffusion = 2t
}

void xar_flow_update(double *x /*[N,C]*/, const float *v_c, const float *v_u, const double *eps, double scale,
                     double t_cur, double t_next, xar_flow_sampler s, int N, int C) {
    size_t n = (size_t)N * C;
    double dt = t_next - t_cur;
    if (s == XAR_SAMPLER_EULER) {
        for (size_t i = 0; i < n; i++) {
            double d = v_c[i];
            if (v_u) d = (double)v_u[i] + scale * (d - (double)v_u[i]);
            x[i] = x[i] + dt * d;
        }
        return;
    }
    double sq_diff = sqrt(2.0 * t_cur), sq_dt = sqrt(fabs(dt));
    for (size_t i = 0; i < n; i++) {
        double d = em_drift(v_c[i], x[i], t_cur);
        if (v_u) {
            double du = em_drift(v_u[i], x[i], t_cur);
            d = du + scale * (d - du);
        }
        // the stochastic steps: x + d dt + sqrt(diffusion) * (eps sqrt|dt|); the last
        // step (0.04 -> 0) returns the mean x + dt d.
        x[i] = eps ? x[i] + d * dt + sq_diff * (eps[i] * sq_dt) : x[i] + dt * d;
    }
}

// ----------------------------------------------------------------------------
// randomness

static int philox_normals(xar_rng *base, double *out, int B, int n) {
    xar_rng_philox *r = (xar_rng_philox *)base;
    if (B > r->B) return disa_err(DISA_EINTERNAL, "rng: %d images, streams for %d", B, r->B);
    if ((size_t)n > r->cap) {
        float *nb = realloc(r->buf, sizeof(float) * (size_t)n);
        if (!nb) return disa_err(DISA_ENOMEM, "rng: out of memory for %d values", n);
        r->buf = nb;
        r->cap = (size_t)n;
    }
    for (int b = 0; b < B; b++) {
        rng_normals(&r->noise[b], r->buf, (size_t)n);
        for (int i = 0; i < n; i++) out[(size_t)b * n + i] = r->buf[i];
    }
    return 0;
}

int xar_rng_philox_init(xar_rng_philox *r, uint64_t seed, const uint32_t *index, int B) {
    memset(r, 0, sizeof *r);
    r->base.normals = philox_normals;
    r->B = B;
    r->noise = calloc((size_t)(B > 0 ? B : 1), sizeof(rng_stream));
    if (!r->noise) return disa_err(DISA_ENOMEM, "rng: out of memory for %d streams", B);
    for (int b = 0; b < B; b++) rng_init(&r->noise[b], seed, index[b], RNG_PURPOSE_NOISE);
    return 0;
}

void xar_rng_philox_free(xar_rng_philox *r) {
    free(r->noise);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static int tape_normals(xar_rng *base, double *out, int B, int n) {
    xar_rng_tape *r = (xar_rng_tape *)base;
    if (B != r->B) return disa_err(DISA_EINVAL, "tape: recorded for %d images, the loop has %d", r->B, B);
    return ar_tape_read(out, r->tape, sizeof *r->tape, r->pos, B, r->T, n);
}

int xar_rng_tape_init(xar_rng_tape *r, const double *tape, int B, int64_t T) {
    *r = (xar_rng_tape){.base = {tape_normals}, .tape = tape, .B = B, .T = T};
    return ar_tape_start(&r->pos, B);
}

void xar_rng_tape_free(xar_rng_tape *r) {
    free(r->pos);
    r->pos = NULL;
}

// ----------------------------------------------------------------------------
// sampler

static int max_steps(const xar_params *p) {
    return p->upper > p->lower ? p->upper : p->lower;
}

// Scratch of one run: the forward's, the flow state (x, eps in double), the network
// input and output, the previous group, the tokens in group order, labels, the grid.
static size_t run_scratch_bytes(const xar_config *c, const xar_params *p, int B) {
    size_t GC = (size_t)c->group * c->token_dim, N = 2 * (size_t)B;
    return xar_forward_scratch_bytes(c, (int)N, 2 * c->group) + sizeof(double) * 2 * B * GC +
           sizeof(float) * (N * 2 * GC + N * GC + B * GC + (size_t)B * c->seq_len * c->token_dim) +
           sizeof(int) * N + sizeof(double) * ((size_t)max_steps(p) + 1) + 16 * 64;
}

size_t xar_sampler_bytes(const xar_config *c, const xar_params *p, int max_batch) {
    return xar_kv_bytes(c, 2 * max_batch) + run_scratch_bytes(c, p, max_batch);
}

int xar_sampler_init(xar_sampler *s, const xar_model *m, const xar_params *p, int max_batch) {
    memset(s, 0, sizeof *s);
    int rc = xar_params_check(p);
    if (rc) return rc;
    if (max_batch < 1 || max_batch > 1 << 16)
        return disa_err(DISA_ERANGE, "batch size must be in 1..65536, got %d", max_batch);
    const xar_config *c = &m->cfg;
    s->m = m;
    s->p = *p;
    s->max_batch = max_batch;
    s->steps = calloc((size_t)c->clusters, sizeof(int));
    if (!s->steps) return disa_err(DISA_ENOMEM, "xAR sampler: out of memory");
    for (int k = 0; k < c->clusters; k++) s->steps[k] = xar_steps_at(p, c->clusters, k);
    // Sequences: the conditional batch and, when guided, the unconditional one.
    int seqs = p->cfg > 1.0 ? 2 * max_batch : max_batch;
    if ((rc = xar_kv_init(&s->kv, c, seqs)) != 0) goto fail;
    if ((rc = arena_init(&s->scratch, run_scratch_bytes(c, p, max_batch), "xAR sampler scratch")) != 0) goto fail;
    return 0;
fail:
    xar_sampler_free(s);
    return rc;
}

void xar_sampler_free(xar_sampler *s) {
    free(s->steps);
    xar_kv_free(&s->kv);
    arena_free(&s->scratch);
    memset(s, 0, sizeof *s);
}

int xar_sampler_run(xar_sampler *s, xar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st) {
    const xar_model *m = s->m;
    const xar_config *c = &m->cfg;
    const xar_params *p = &s->p;
    const int G = c->group, C = c->token_dim, K = c->clusters, GC = G * C;
    if (B < 1 || B > s->max_batch)
        return disa_err(DISA_ERANGE, "batch of %d images, sampler prepared for 1..%d", B, s->max_batch);
    for (int b = 0; b < B; b++)
        if (labels[b] < -1 || labels[b] >= c->class_num)
            return disa_err(DISA_ERANGE, "class label %d out of range 0..%d (-1 = unconditional)", labels[b],
                            c->class_num - 1);
    double t0 = clock_now();
    arena *a = &s->scratch;
    arena_reset(a, 0);
    double *x = arena_alloc(a, sizeof(double) * (size_t)B * GC);
    double *eps = arena_alloc(a, sizeof(double) * (size_t)B * GC);
    double *grid = arena_alloc(a, sizeof(double) * ((size_t)max_steps(p) + 1));
    float *in = arena_floats(a, (size_t)2 * B * 2 * GC);
    float *v = arena_floats(a, (size_t)2 * B * GC);
    float *prev = arena_floats(a, (size_t)B * GC);
    float *grp = arena_floats(a, (size_t)B * c->seq_len * C);
    int *lab = arena_alloc(a, sizeof(int) * 2 * (size_t)B);
    if (!x || !eps || !grid || !in || !v || !prev || !grp || !lab) return DISA_ENOMEM;
    // Conditional sequences 0..B-1, unconditional B..2B-1 (the official [y; 1000] batch).
    for (int b = 0; b < B; b++) {
        lab[b] = labels[b] < 0 ? c->class_num : labels[b];
        lab[B + b] = c->class_num;
    }
    s->kv.rows = 0;
    size_t base = arena_mark(a);
    st->t_other += clock_now() - t0;

    for (int step = 0; step < K; step++) {
        double ts = clock_now();
        int n = s->steps[step];
        double scale = xar_cfg_at(p, K, step);
        // The official loop always evaluates the unconditional half, but uses it only
        // where the scale exceeds 1; at the first group (scale 1) its cache stays empty,
        // so leaving it out there changes nothing.
        int guided = scale > 1.0, N = guided ? 2 * B : B;
        int rc = rng->normals(rng, x, B, GC);  // the group's start latents
        if (rc) return rc;
        xar_time_grid(grid, p->sampler, n);
        uint64_t f0 = blas_flops();
        for (int i = 0; i < n; i++) {
            arena_reset(a, base);
            int first = i == 0, R = first && step > 0 ? 2 * G : G;
            // Network input: the clean previous group (first call only), then the state
            // rounded to float32; the unconditional sequences see the same rows.
            for (int b = 0; b < B; b++) {
                float *row = in + (size_t)b * R * C;
                if (R == 2 * G) {
                    memcpy(row, prev + (size_t)b * GC, sizeof(float) * GC);
                    row += GC;
                }
                for (int j = 0; j < GC; j++) row[j] = (float)x[(size_t)b * GC + j];
            }
            if (guided) memcpy(in + (size_t)B * R * C, in, sizeof(float) * (size_t)B * R * C);
            int tidx[2] = {0, 0};
            tidx[R / G - 1] = xar_time_index(grid[i]);
            rc = xar_forward(m, &s->kv, a, v, in, R, lab, tidx, step, first, N, s->poll, s->poll_ctx);
            if (rc) return rc;
            int noisy = p->sampler == XAR_SAMPLER_EULER_MARUYAMA && i < n - 1;
            if (noisy && (rc = rng->normals(rng, eps, B, GC)) != 0) return rc;
            xar_flow_update(x, v, guided ? v + (size_t)B * GC : NULL, noisy ? eps : NULL, scale, grid[i], grid[i + 1],
                            p->sampler, B * G, C);
            if (s->poll && s->poll(s->poll_ctx)) return DISA_ECANCELED;
        }
        double t1 = clock_now();
        st->t_transformer += t1 - ts;
        st->flops_transformer += blas_flops() - f0;
        sample_stats_step(st, (uint64_t)B * G, n);
        for (int b = 0; b < B; b++)
            for (int j = 0; j < GC; j++) {
                float z = (float)x[(size_t)b * GC + j];
                prev[(size_t)b * GC + j] = z;
                grp[((size_t)b * c->seq_len + (size_t)step * G) * C + j] = z;
            }
        if (s->trace) s->trace(s->trace_ctx, step, n, scale, prev);
        st->t_other += clock_now() - t1;
    }
    xar_group_to_raster(tokens, grp, c, B);
    arena_reset(a, 0);
    return 0;
}

// ----------------------------------------------------------------------------
// FLOP model

static uint64_t gemm(uint64_t M, uint64_t N, uint64_t K) {
    return 2ull * M * N * K;
}

// One block: ada_lin, qkv, attention per (sequence, head, group of queries), proj, MLP.
static uint64_t block_flops(int N, int R, int G, int p0, int d, int h, int heads) {
    uint64_t NR = (uint64_t)N * R, nch = (uint64_t)(R / G), hd = (uint64_t)(d / heads);
    uint64_t f = gemm(nch * N, 6 * (uint64_t)d, d) + gemm(NR, 3 * (uint64_t)d, d) + gemm(NR, d, d) +
                 2 * gemm(NR, h, d) + gemm(NR, d, h);
    for (uint64_t k = 0; k < nch; k++) {
        uint64_t T = ((p0 + k * G) / G + 1) * G;
        f += (uint64_t)N * heads * (gemm(G, T, hd) + gemm(G, hd, T));
    }
    return f;
}

uint64_t xar_flops_call(const xar_config *c, int N, int R, int step) {
    const int G = c->group, E = c->enc_dim, D = c->dec_dim, p0 = (step + 1) * G - R;
    uint64_t NR = (uint64_t)N * R, nch = (uint64_t)(R / G);
    uint64_t f = gemm(nch, E, 256) + gemm(nch, E, E);                          // time_embed
    f += gemm(NR, E, c->token_dim) + gemm(NR, D, E) + gemm((uint64_t)N * G, c->token_dim, D);  // z_proj, decoder_embed, pred
    f += (uint64_t)c->enc_depth * block_flops(N, R, G, p0, E, c->enc_hidden, c->enc_heads);
    f += (uint64_t)c->dec_depth * block_flops(N, R, G, p0, D, c->dec_hidden, c->dec_heads);
    return f;
}

int xar_flops_run(xar_flops *out, const xar_config *c, const xar_params *p, int B) {
    memset(out, 0, sizeof *out);
    int rc = xar_params_check(p);
    if (rc) return rc;
    if (B < 1) return disa_err(DISA_EINVAL, "flops: batch must be >= 1, got %d", B);
    const int G = c->group;
    for (int s = 0; s < c->clusters; s++) {
        int n = xar_steps_at(p, c->clusters, s);
        int N = xar_cfg_at(p, c->clusters, s) > 1.0 ? 2 * B : B;
        out->transformer += xar_flops_call(c, N, s > 0 ? 2 * G : G, s);
        out->transformer += (uint64_t)(n - 1) * xar_flops_call(c, N, G, s);
        out->row_steps += (uint64_t)B * G * n;
        out->tokens += (uint64_t)B * G;
        out->calls += (uint64_t)n;
        out->ar_steps++;
    }
    return 0;
}
