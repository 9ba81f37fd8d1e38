// flowar_sample.c: FlowAR's sample_tokens with DiSA's per-scale flow step schedule.
// Mirrors Qinyu-Allen-Zhao/DiSA FlowAR_DiSA models/flowar.py: FlowAR.sample_tokens,
// models/sampler.py: euler_sampler, and eval.py's flags (--flow_upper_steps,
// --flow_lower_steps, --cfg, --guidance).
#include "disa/flowar_sample.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/flags.h"
#include "disa/flownn.h"
#include "disa/nn.h"
#include "disa/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// torch evaluates every float64 op of the sampler as its own kernel, rounding after each;
// a contracted multiply-add (GCC's default on FMA targets) would move the state by an
// ulp per step. Where torch itself fuses (the linspace kernel), fma() says so.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// ----------------------------------------------------------------------------
// parameters

void flowar_params_init(flowar_params *p) {
    p->upper = 50;
    p->lower = 15;
    p->cfg = 1.0;
    p->guidance = 0.9;
}

int flowar_params_check(const flowar_params *p) {
    // One step is an Euler grid of a single point (linspace(0.25, 0, 1)): the sampler
    // would return its noise.
    if (p->lower < 2 || p->lower > 1000)
        return disa_err(DISA_ERANGE, "--flow_lower_steps must be in 2..1000 (one step leaves the noise as it is), "
                        "got %d", p->lower);
    if (p->upper < p->lower || p->upper > 1000)
        return disa_err(DISA_ERANGE, "--flow_upper_steps must be in %d..1000 (>= --flow_lower_steps), got %d",
                        p->lower, p->upper);
    if (!(p->cfg >= 1.0 && p->cfg <= 100.0))
        return disa_err(DISA_ERANGE, "--cfg must be in [1, 100], got %g", p->cfg);
    if (!(p->guidance >= 0.0 && p->guidance <= 1.0))
        return disa_err(DISA_ERANGE, "--guidance must be in [0, 1] (the flow time runs from 1 to 0), got %g",
                        p->guidance);
    return 0;
}

int flowar_params_set(flowar_params *p, const char *flag, const char *v) {
    if (strcmp(flag, "flow_upper_steps") == 0) return sample_flag_int(flag, v, 2, 1000, &p->upper);
    if (strcmp(flag, "flow_lower_steps") == 0) return sample_flag_int(flag, v, 2, 1000, &p->lower);
    if (strcmp(flag, "cfg") == 0) return flag_num(flag, v, 1.0, 100.0, &p->cfg);
    if (strcmp(flag, "guidance") == 0) return flag_num(flag, v, 0.0, 1.0, &p->guidance);
    return DISA_ENOTFOUND;
}

const char *flowar_params_str(const flowar_params *p, char *buf, int n) {
    snprintf(buf, (size_t)n, "flow_upper_steps=%d flow_lower_steps=%d cfg=%g guidance=%g", p->upper, p->lower,
             p->cfg, p->guidance);
    return buf;
}

// ----------------------------------------------------------------------------
// schedules

int flowar_steps_at(const flowar_params *p, int s, int S) {
    if (S < 2) return p->upper;  // the official expression divides by S - 1
    // (upper - lower) * (total - step) is an exact int product, the division Python's
    // true division (correctly rounded double), + lower in double, int() truncates.
    int total = S - 1;
    double v = (double)((p->upper - p->lower) * (total - s)) / (double)total + (double)p->lower;
    return (int)v;
}

double flowar_cfg_at(const flowar_params *p, int s, int S) {
    if (S < 2) return p->cfg;
    return (p->cfg - 1) * s / (S - 1) + 1;
}

void flowar_linspace(double *out /*[steps]*/, double start, double end, int steps) {
    if (steps <= 0) return;
    if (steps == 1) {
        out[0] = start;
        return;
    }
    // torch's linspace kernel: value i = start + step * i below steps/2, else
    // end - step * (steps - i - 1), the multiply-add fused in its AVX2 build. Runs of 8
    // go as two 4-lane vectors whose lanes are base + k * step from the first lane's
    // value; the remainder goes element by element.
    const double step = (end - start) / (double)(steps - 1);
    const int half = steps / 2, nvec = steps / 8 * 8;
    for (int i = 0; i < steps; i++) {
        int lane = i < nvec ? i % 4 : 0, i0 = i - lane;
        double base = i0 < half ? fma(step, (double)i0, start) : fma(-step, (double)(steps - i0 - 1), end);
        out[i] = lane == 0 ? base : base + (double)lane * step;
    }
}

int flowar_time_grid(double *t, int num_steps) {
    if (num_steps == 50) {
        flowar_linspace(t, 1.0, 0.0, 51);
        return 51;
    }
    int a = num_steps / 2, b = num_steps / 2 + 1;
    flowar_linspace(t, 1.0, 0.3, a);
    flowar_linspace(t + a, 0.25, 0.0, b);
    return a + b;
}

int flowar_guided_steps(const double *t, int points, double cfg_scale, double guidance) {
    int n = 0;
    for (int i = 0; i + 1 < points; i++) n += cfg_scale > 1.0 && t[i] <= guidance && t[i] >= 0.0;
    return n;
}

// ----------------------------------------------------------------------------
// Euler sampler

size_t flowar_euler_scratch_bytes(const flowhead *h, int B, int N) {
    size_t M = (size_t)B * N * h->C;
    return (4 * M + 1002 * 2) * sizeof(float) + flowhead_scratch_bytes(h, 2 * B, N) + 4 * 64;
}

int flowar_euler(const flowhead *h, arena *a, double *x, const float *c, const float *kv, size_t kv_block, int B,
                 int N, int num_steps, double cfg_scale, double guidance, int *nfe, int *n_guided,
                 flowar_poll_fn poll, void *poll_ctx) {
    const size_t M = (size_t)B * N * h->C;
    size_t mark = arena_mark(a);
    double *t = arena_alloc(a, sizeof(double) * ((size_t)num_steps + 2));
    float *xin = arena_floats(a, 2 * M), *v = arena_floats(a, 2 * M);
    if (!t || !xin || !v) return DISA_ENOMEM;
    int pts = flowar_time_grid(t, num_steps), guided_n = 0;
    for (int i = 0; i + 1 < pts; i++) {
        int guided = cfg_scale > 1.0 && t[i] <= guidance && t[i] >= 0.0;
        guided_n += guided;
        // model_input.to(float32): the float64 state enters the network rounded.
        for (size_t k = 0; k < M; k++) xin[k] = (float)x[k];
        if (guided) memcpy(xin + M, xin, sizeof(float) * M);
        int rc = flowhead_forward(h, a, v, xin, flowhead_time_index(t[i]), c, kv, kv_block, guided ? 2 * B : B, N);
        if (rc) return rc;
        // d = uncond + cfg * (cond - uncond) and x + (t_next - t_cur) * d, all float64.
        const double dt = t[i + 1] - t[i];
        for (size_t k = 0; k < M; k++) {
            double d = v[k];
            if (guided) {
                double du = v[M + k];
                d = du + cfg_scale * (d - du);
            }
            x[k] = x[k] + dt * d;
        }
        if (poll && poll(poll_ctx)) return DISA_ECANCELED;
    }
    if (nfe) *nfe = pts - 1;
    if (n_guided) *n_guided = guided_n;
    arena_reset(a, mark);
    return 0;
}

// ----------------------------------------------------------------------------
// between scales

void flowar_interp_tokens(float *out, const float *in, float *work, int B, int C, int s, int t) {
    // [B, s*s, C] -> [B, C, s, s] (x_.permute(0, 2, 1).reshape(B, C, s, s)), bicubic to
    // 16 x 16, area to t x t, back to [B, t*t, C].
    const int G = FLOWAR_INTERP_SIZE, n = s * s, m = t * t;
    float *planes = work, *up = work + (size_t)B * C * G * G;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < n; p++)
            for (int ch = 0; ch < C; ch++) planes[((size_t)b * C + ch) * n + p] = in[((size_t)b * n + p) * C + ch];
    resize_bicubic_forward(up, planes, B, C, s, s, G, G);
    adaptive_avgpool2d_forward(planes, up, B, C, G, G, t, t);
    for (int b = 0; b < B; b++)
        for (int p = 0; p < m; p++)
            for (int ch = 0; ch < C; ch++) out[((size_t)b * m + p) * C + ch] = planes[((size_t)b * C + ch) * m + p];
}

// ----------------------------------------------------------------------------
// sampler

static size_t max_rows(const flowar_config *c) {
    return (size_t)c->scale[c->n_scales - 1] * c->scale[c->n_scales - 1];
}

int flowar_sampler_init(flowar_sampler *s, const flowar_model *m, const flowar_params *p, int max_batch) {
    memset(s, 0, sizeof *s);
    int rc = flowar_params_check(p);
    if (rc) return rc;
    if (max_batch < 1) return disa_err(DISA_ERANGE, "batch size must be >= 1, got %d", max_batch);
    s->m = m;
    s->p = *p;
    s->max_batch = max_batch;
    const flowar_config *c = &m->cfg;
    const flowhead *h = &m->head;
    int B2 = p->cfg != 1.0 ? 2 * max_batch : max_batch;
    if ((rc = flowar_cache_init(&s->kv, c, B2)) != 0) return rc;
    size_t N = max_rows(c), G2 = (size_t)FLOWAR_INTERP_SIZE * FLOWAR_INTERP_SIZE;
    size_t R2 = (size_t)B2 * N, Rb = (size_t)max_batch * N, C = (size_t)c->token_dim;
    // Kept over a sample: class rows, a scale's input rows and output, the tokens, the
    // interpolation work, the head's condition (c, cross kv), the noise, the float64 state.
    size_t kept = (size_t)B2 * c->enc_dim + R2 * c->enc_dim + R2 * c->dec_dim + Rb * C + 2 * max_batch * C * G2 +
                  R2 * h->w + (h->cross ? (size_t)h->depth * R2 * 2 * h->w : 0) + Rb * C + 2 * Rb * C;
    // Per scale, besides the largest phase: the time grid and the next scale's tokens.
    kept += 2 * 1002 + Rb * C;
    size_t phase = flowar_forward_scratch_bytes(c, B2);
    size_t hc = flowhead_condition_scratch_bytes(h, (int)R2), eu = flowar_euler_scratch_bytes(h, max_batch, (int)N);
    if (hc > phase) phase = hc;
    if (eu > phase) phase = eu;
    if ((rc = arena_init(&s->scratch, kept * sizeof(float) + phase + 32 * 64, "FlowAR sampler scratch")) != 0) {
        flowar_sampler_free(s);
        return rc;
    }
    return 0;
}

void flowar_sampler_free(flowar_sampler *s) {
    flowar_cache_free(&s->kv);
    arena_free(&s->scratch);
    memset(s, 0, sizeof *s);
}

static int run(flowar_sampler *s, ar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st);

int flowar_sampler_run(flowar_sampler *s, ar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st) {
    return run(s, rng, labels, B, tokens, st);
}

// A NaN or Inf in the transformer's output or the flow head's sample comes from a model
// whose activations overflow (non-finite weights are refused at load): stop the run
// naming the scale and the tensor rather than decode garbage; the caller adds the unit.
static int check_finite(const float *x, size_t n, int row_len, int sc, int ft, const char *what) {
    size_t at = tensor_first_nonfinite(x, n);
    if (at == n) return 0;
    return disa_err(DISA_ERANGE, "scale %d (%dx%d): %s holds %s (row %zu, value %zu): the model's activations overflowed",
                    sc, ft, ft, what, x[at] != x[at] ? "NaN" : "Inf", at / (size_t)row_len, at % (size_t)row_len);
}

static int run(flowar_sampler *s, ar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st) {
    const flowar_model *m = s->m;
    const flowar_config *c = &m->cfg;
    const flowhead *h = &m->head;
    const flowar_params *p = &s->p;
    const int S = c->n_scales, E = c->enc_dim, D = c->dec_dim, C = c->token_dim, W = h->w;
    const int cfg = p->cfg != 1.0, B2 = cfg ? 2 * B : B;
    if (B < 1 || B > s->max_batch)
        return disa_err(DISA_ERANGE, "batch of %d images, sampler prepared for 1..%d", B, s->max_batch);
    for (int b = 0; b < B; b++)
        if (labels[b] >= c->class_num)
            return disa_err(DISA_ERANGE, "class label %d out of range 0..%d", labels[b], c->class_num - 1);
    arena *a = &s->scratch;
    arena_reset(a, 0);
    double t0 = clock_now();
    const size_t Nmax = max_rows(c), G2 = (size_t)FLOWAR_INTERP_SIZE * FLOWAR_INTERP_SIZE;
    float *cls = arena_floats(a, (size_t)B2 * E);
    float *xin = arena_floats(a, (size_t)B2 * Nmax * E), *z = arena_floats(a, (size_t)B2 * Nmax * D);
    float *tok = arena_floats(a, (size_t)B * Nmax * C), *work = arena_floats(a, 2 * (size_t)B * C * G2);
    float *hc = arena_floats(a, (size_t)B2 * Nmax * W);
    float *hkv = h->cross ? arena_floats(a, (size_t)h->depth * B2 * Nmax * 2 * W) : NULL;
    float *noise = arena_floats(a, (size_t)B * Nmax * C);
    double *x64 = arena_alloc(a, sizeof(double) * (size_t)B * Nmax * C);
    if (!cls || !xin || !z || !tok || !work || !hc || (h->cross && !hkv) || !noise || !x64) return DISA_ENOMEM;
    size_t base = arena_mark(a);

    // The class embeddings condition every block at every scale; with CFG the second half
    // is the null class. Scale 0's input is the class embedding itself (broadcast over
    // its rows when the first grid is larger than 1 x 1).
    uint64_t f0 = blas_flops();
    flowar_class_rows(m, cls, labels, B, cfg);
    flowar_cache_begin(m, &s->kv, cls, B2);
    int N0 = c->scale[0] * c->scale[0];
    for (int b = 0; b < B2; b++)
        for (int r = 0; r < N0; r++) memcpy(xin + ((size_t)b * N0 + r) * E, cls + (size_t)b * E, sizeof(float) * E);
    uint64_t f_pre = blas_flops() - f0;
    st->t_other += clock_now() - t0;

    for (int sc = 0; sc < S; sc++) {
        arena_reset(a, base);
        const int ft = c->scale[sc], N = ft * ft;
        double t1 = clock_now();
        f0 = blas_flops();
        int rc = flowar_forward_scale(m, a, &s->kv, z, xin, sc, s->poll, s->poll_ctx);
        if (rc) return rc;
        if ((rc = check_finite(z, (size_t)B2 * N * D, D, sc, ft, "the transformer's output z")) != 0) return rc;
        double t2 = clock_now();
        st->t_transformer += t2 - t1;
        st->flops_transformer += blas_flops() - f0 + f_pre;
        f_pre = 0;

        // The flow head: DiSA's step count for this scale, the CFG scale ramped over the
        // scales; the unconditional condition is needed only if a step is guided.
        f0 = blas_flops();
        int n_steps = flowar_steps_at(p, sc, S), nfe = 0, n_guided = 0;
        double cfg_s = flowar_cfg_at(p, sc, S);
        double *grid = arena_alloc(a, sizeof(double) * ((size_t)n_steps + 2));
        if (!grid) return DISA_ENOMEM;
        int any_guided = flowar_guided_steps(grid, flowar_time_grid(grid, n_steps), cfg_s, p->guidance) > 0;
        int images = cfg && any_guided ? B2 : B;
        if ((rc = flowhead_condition(h, a, hc, hkv, z, images, N)) != 0) return rc;
        if ((rc = rng->normals(rng, noise, B, N, C)) != 0) return rc;
        for (size_t k = 0; k < (size_t)B * N * C; k++) x64[k] = noise[k];
        rc = flowar_euler(h, a, x64, hc, hkv, (size_t)images * N * 2 * W, B, N, n_steps, cfg_s, p->guidance, &nfe,
                          &n_guided, s->poll, s->poll_ctx);
        if (rc) return rc;
        for (size_t k = 0; k < (size_t)B * N * C; k++) tok[k] = (float)x64[k];  // .float()
        if ((rc = check_finite(tok, (size_t)B * N * C, C, sc, ft, "the flow head's sample")) != 0) return rc;
        double t3 = clock_now();
        st->t_head += t3 - t2;
        st->flops_head += blas_flops() - f0;
        sample_stats_step(st, (uint64_t)B * N, nfe);
        if (s->trace) s->trace(s->trace_ctx, sc, n_steps, nfe, n_guided, cfg_s, tok);

        if (sc + 1 < S) {
            // The next scale's input: z_proj of the interpolated tokens, the same rows for
            // both CFG halves (official: z_sample.repeat(2, 1, 1) before z_proj).
            const int Nn = c->scale[sc + 1] * c->scale[sc + 1];
            float *nt = arena_floats(a, (size_t)B * Nn * C);
            if (!nt) return DISA_ENOMEM;
            flowar_interp_tokens(nt, tok, work, B, C, ft, c->scale[sc + 1]);
            f0 = blas_flops();
            linear_forward(xin, nt, m->z_proj_w, m->z_proj_b, B * Nn, C, E);
            if (cfg) memcpy(xin + (size_t)B * Nn * E, xin, sizeof(float) * (size_t)B * Nn * E);
            f_pre = blas_flops() - f0;
        }
        st->t_other += clock_now() - t3;
    }
    memcpy(tokens, tok, sizeof(float) * (size_t)B * Nmax * C);
    arena_reset(a, 0);
    return 0;
}
