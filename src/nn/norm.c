// norm.c: torch.nn.functional.layer_norm (last axis), group_norm (NCHW) and the RMSNorms
// of xAR and FlowAR.
//
// LayerNorm and GroupNorm use the biased variance, as torch does. Mean and variance are accumulated in
// double over two passes: a single float pass loses ~1e-5 relative accuracy when the
// rows carry a large common offset (the MAR z_proj_ln input, VAE feature maps), and the
// parity tolerance is 1e-5.
#include "disa/nn.h"
#include "disa/bf16.h"
#include "disa/flownn.h"
#include "disa/par.h"
#include "disa/vec.h"

#include <math.h>

// ----------------------------------------------------------------------------
// Mean and biased variance of x[0..n-1]; the second pass around the mean avoids the
// cancellation of E[x^2] - E[x]^2. Eight double partial sums per pass, so the loops
// vectorise (DISA_VEC) without reassociating a single running sum.
enum { LANES = 8 };

static inline void moments(const float *x /*[n]*/, size_t n, double *mean, double *var) {
    double s8[LANES] = {0}, v8[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) s8[k] += x[i + k];
    double s = 0.0;
    for (; i < n; i++) s += x[i];
    for (int k = 0; k < LANES; k++) s += s8[k];
    double m = s / (double)n;
    for (i = 0; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            double d = (double)x[i + k] - m;
            v8[k] += d * d;
        }
    double v = 0.0;
    for (; i < n; i++) {
        double d = (double)x[i] - m;
        v += d * d;
    }
    for (int k = 0; k < LANES; k++) v += v8[k];
    *mean = m;
    *var = v / (double)n;
}

// ----------------------------------------------------------------------------

// One row; the statistics are complete before the first write, so y == x is safe.
static inline __attribute__((always_inline)) void ln_row(float *y, const float *x, const float *w, const float *b,
                                                         int C, float eps) {
    double mean, var;
    moments(x, (size_t)C, &mean, &var);
    double rstd = 1.0 / sqrt(var + (double)eps);
    for (int j = 0; j < C; j++) y[j] = (float)(((double)x[j] - mean) * rstd);
    if (w)
        for (int j = 0; j < C; j++) y[j] *= w[j];
    if (b)
        for (int j = 0; j < C; j++) y[j] += b[j];
}

DISA_VEC
static void layernorm_rows(float *out, const float *inp, const float *w, const float *b, int N, int C, float eps) {
    for (int i = 0; i < N; i++) ln_row(out + (size_t)i * C, inp + (size_t)i * C, w, b, C, eps);
}

// x += r, then out = LayerNorm(x), a row at a time while the row is in cache. out may be r.
DISA_VEC
static void add_layernorm_rows(float *out, float *x, const float *r, const float *w, const float *b, int N, int C,
                               float eps) {
    for (int i = 0; i < N; i++) {
        float *xi = x + (size_t)i * C;
        const float *ri = r + (size_t)i * C;
        for (int j = 0; j < C; j++) xi[j] += ri[j];
        ln_row(out + (size_t)i * C, xi, w, b, C, eps);
    }
}

// The bf16 form: the same double statistics, the normalisation and the affine and
// modulation in float (the result is rounded to bf16 anyway), written as the bf16 input
// of the matmul that follows. One row; the flags are constants at each call, so every
// case gets its own loop with no masked loads from an absent operand.
static inline __attribute__((always_inline)) void ln_row_bf16(uint16_t *y, const float *x, const float *w,
                                                              const float *b, const float *sh, const float *sc,
                                                              int C, float eps, int affine, int mod) {
    double mean, var;
    moments(x, (size_t)C, &mean, &var);
    float m = (float)mean, r = (float)(1.0 / sqrt(var + (double)eps));
    for (int j = 0; j < C; j++) {
        float v = (x[j] - m) * r;
        if (affine) v = v * w[j] + b[j];
        if (mod) v = v * (1.0f + sc[j]) + sh[j];
        y[j] = bf16_bits(v);
    }
}

DISA_VEC
static void layernorm_bf16_rows(uint16_t *out, const float *inp, const float *w, const float *b, const float *shift,
                                const float *scale, int N, int C, float eps) {
    // The model's LayerNorms have both affine parts or neither (final_layer's norm).
    int affine = w && b, mod = shift && scale;
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        uint16_t *y = out + (size_t)i * C;
        const float *sh = mod ? shift + (size_t)i * C : NULL, *sc = mod ? scale + (size_t)i * C : NULL;
        if (affine && mod) ln_row_bf16(y, x, w, b, sh, sc, C, eps, 1, 1);
        else if (affine) ln_row_bf16(y, x, w, b, sh, sc, C, eps, 1, 0);
        else if (mod) ln_row_bf16(y, x, w, b, sh, sc, C, eps, 0, 1);
        else ln_row_bf16(y, x, w, b, sh, sc, C, eps, 0, 0);
    }
}

// The LayerNorms over the threads (par.h), a chunk of rows each.
typedef struct ln_ctx {
    void *out;
    const float *inp, *w, *b, *shift, *scale;
    int C;
    float eps;
    float *resid;  // add_layernorm_forward's x
} ln_ctx;

static void ln_part(void *ctx, size_t lo, size_t hi) {
    const ln_ctx *l = ctx;
    size_t o = lo * (size_t)l->C;
    if (l->resid)
        add_layernorm_rows((float *)l->out + o, l->resid + o, l->inp + o, l->w, l->b, (int)(hi - lo), l->C, l->eps);
    else
        layernorm_rows((float *)l->out + o, l->inp + o, l->w, l->b, (int)(hi - lo), l->C, l->eps);
}

static void ln_bf16_part(void *ctx, size_t lo, size_t hi) {
    const ln_ctx *l = ctx;
    size_t o = lo * (size_t)l->C;
    layernorm_bf16_rows((uint16_t *)l->out + o, l->inp + o, l->w, l->b, l->shift ? l->shift + o : NULL,
                        l->scale ? l->scale + o : NULL, (int)(hi - lo), l->C, l->eps);
}

void layernorm_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/,
                       const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                       int N, int C, float eps) {
    ln_ctx l = {out, inp, w, b, NULL, NULL, C, eps, NULL};
    par_for((size_t)N, par_row_grain((size_t)C), ln_part, &l);
}

void add_layernorm_forward(float *out /*[N,C]*/, float *x /*[N,C]*/, const float *r /*[N,C]*/,
                           const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/, int N, int C, float eps) {
    ln_ctx l = {out, r, w, b, NULL, NULL, C, eps, x};
    par_for((size_t)N, par_row_grain((size_t)C), ln_part, &l);
}

void layernorm_bf16_forward(uint16_t *out /*[N,C]*/, const float *inp /*[N,C]*/,
                            const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                            const float *shift /*[N,C] or NULL*/, const float *scale /*[N,C] or NULL*/,
                            int N, int C, float eps) {
    ln_ctx l = {out, inp, w, b, shift, scale, C, eps, NULL};
    par_for((size_t)N, par_row_grain((size_t)C), ln_bf16_part, &l);
}

// Groups [lo, hi) of the N * groups (image, group) pairs.
DISA_VEC
static void groupnorm_groups(float *out, const float *inp, const float *w, const float *b, int C, int HW, int groups,
                             float eps, size_t lo, size_t hi) {
    int cpg = C / groups;  // channels per group; contiguous in NCHW
    size_t gsize = (size_t)cpg * HW;
    for (size_t ng = lo; ng < hi; ng++) {
        int n = (int)(ng / (size_t)groups), g = (int)(ng % (size_t)groups);
        size_t off = ((size_t)n * C + (size_t)g * cpg) * HW;
        double mean, var;
        moments(inp + off, gsize, &mean, &var);
        double rstd = 1.0 / sqrt(var + (double)eps);
        for (int cc = 0; cc < cpg; cc++) {
            int ch = g * cpg + cc;
            // Fold normalisation and affine into one scale/shift per channel.
            double scale = rstd * (w ? (double)w[ch] : 1.0);
            double shift = (b ? (double)b[ch] : 0.0) - mean * scale;
            const float *x = inp + off + (size_t)cc * HW;
            float *y = out + off + (size_t)cc * HW;
            for (int k = 0; k < HW; k++) y[k] = (float)((double)x[k] * scale + shift);
        }
    }
}

typedef struct gn_ctx {
    float *out;
    const float *inp, *w, *b;
    int C, HW, groups;
    float eps;
    // channels-last form: per-channel sums, per-channel group mean, scale and shift
    double *acc, *gmean;
    float *mean, *scale, *shift;
    int phase;
} gn_ctx;

static void gn_part(void *ctx, size_t lo, size_t hi) {
    const gn_ctx *g = ctx;
    groupnorm_groups(g->out, g->inp, g->w, g->b, g->C, g->HW, g->groups, g->eps, lo, hi);
}

void groupnorm_forward(float *out /*[N,C,HW]*/, const float *inp /*[N,C,HW]*/,
                       const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                       int N, int C, int HW, int groups, float eps) {
    gn_ctx g = {.out = out, .inp = inp, .w = w, .b = b, .C = C, .HW = HW, .groups = groups, .eps = eps};
    par_for((size_t)N * groups, par_row_grain((size_t)(C / groups) * HW), gn_part, &g);
}

// group_norm on channels-last rows x[p, c] (the bf16 decoder's layout): per-channel
// double sums over the HW positions (each thread a range of channels, so the sums do not
// depend on the thread count), combined per group, two passes as moments() does; then
// (x - mean) * scale + shift in float per channel (a range of positions per thread), the
// mean subtracted first so a large common offset cancels exactly.
DISA_VEC
static void nhwc_sums(double *acc, const float *inp, const double *mean, int HW, int C, int c0, int c1) {
    for (int c = c0; c < c1; c++) acc[c] = 0.0;
    for (int p = 0; p < HW; p++) {
        const float *x = inp + (size_t)p * C;
        if (mean)
            for (int c = c0; c < c1; c++) {
                double d = (double)x[c] - mean[c];
                acc[c] += d * d;
            }
        else
            for (int c = c0; c < c1; c++) acc[c] += x[c];
    }
}

DISA_VEC
static void nhwc_apply(float *out, const float *inp, const float *mean, const float *scale, const float *shift, int C,
                       size_t p0, size_t p1) {
    for (size_t p = p0; p < p1; p++)
        for (int c = 0; c < C; c++) out[p * C + c] = (inp[p * C + c] - mean[c]) * scale[c] + shift[c];
}

static void nhwc_part(void *ctx, size_t lo, size_t hi) {
    const gn_ctx *g = ctx;
    if (g->phase == 2) nhwc_apply(g->out, g->inp, g->mean, g->scale, g->shift, g->C, lo, hi);
    else nhwc_sums(g->acc, g->inp, g->phase ? g->gmean : NULL, g->HW, g->C, (int)lo, (int)hi);
}

void groupnorm_nhwc_forward(float *out /*[HW,C]*/, const float *inp /*[HW,C]*/,
                            const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                            int HW, int C, int groups, float eps) {
    // Per-channel state on the stack: at most 256 KB (C <= 8192, nn.h).
    double acc[C], gmean[C];
    float mean[C], scale[C], shift[C];
    gn_ctx g = {out, inp, w, b, C, HW, groups, eps, acc, gmean, mean, scale, shift, 0};
    int cpg = C / groups;
    double n = (double)HW * cpg;
    size_t cgrain = (size_t)(C / 2 > 16 ? 16 : 1);  // channel ranges of whole cache lines when there are enough
    par_for((size_t)C, cgrain, nhwc_part, &g);
    for (int k = 0; k < groups; k++) {
        double s = 0.0;
        for (int c = k * cpg; c < (k + 1) * cpg; c++) s += acc[c];
        for (int c = k * cpg; c < (k + 1) * cpg; c++) gmean[c] = s / n;
    }
    g.phase = 1;
    par_for((size_t)C, cgrain, nhwc_part, &g);
    for (int k = 0; k < groups; k++) {
        double v = 0.0;
        for (int c = k * cpg; c < (k + 1) * cpg; c++) v += acc[c];
        double rstd = 1.0 / sqrt(v / n + (double)eps);
        for (int c = k * cpg; c < (k + 1) * cpg; c++) {
            mean[c] = (float)gmean[c];
            scale[c] = (float)(rstd * (w ? (double)w[c] : 1.0));
            shift[c] = b ? b[c] : 0.0f;
        }
    }
    g.phase = 2;
    par_for((size_t)HW, par_row_grain((size_t)C), nhwc_part, &g);
}

// RMSNorm rows: the official codes form mean(x^2) in float32; in double the result is
// what the float64 reference computes, and a row of large common offset keeps its
// accuracy. Then each family's rounding: xAR scales in double and rounds each product
// (then times w); FlowAR rounds the scale to float32 once and multiplies in float32, then
// by w, as torch's x * rsqrt(...) * weight. Always inlined, so each DISA_VEC copy of
// the two entry points below builds its own, with the constant rounding folded in.
static inline __attribute__((always_inline)) void rms_rows(float *out, const float *inp, const float *w, int N,
                                                           int C, float eps, int float_scale) {
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        double s8[LANES] = {0};
        int j = 0;
        for (; j + LANES <= C; j += LANES)
            for (int k = 0; k < LANES; k++) s8[k] += (double)x[j + k] * (double)x[j + k];
        double s = 0.0;
        for (; j < C; j++) s += (double)x[j] * (double)x[j];
        for (int k = 0; k < LANES; k++) s += s8[k];
        // The sum is complete before the first write, so out == inp is safe.
        double r = 1.0 / sqrt(s / (double)C + (double)eps);
        if (float_scale) {
            float rf = (float)r;
            for (j = 0; j < C; j++) y[j] = x[j] * rf;
            if (w)
                for (j = 0; j < C; j++) y[j] *= w[j];
        } else if (w) {
            for (j = 0; j < C; j++) y[j] = (float)((double)x[j] * r) * w[j];
        } else {
            for (j = 0; j < C; j++) y[j] = (float)((double)x[j] * r);
        }
    }
}

DISA_VEC
void rmsnorm_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/, const float *w /*[C] or NULL*/,
                     int N, int C, float eps) {
    rms_rows(out, inp, w, N, C, eps, 0);
}

// FlowAR's (flownn.h).
DISA_VEC
void flow_rmsnorm_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/, const float *w /*[C] or NULL*/,
                          int N, int C, float eps) {
    rms_rows(out, inp, w, N, C, eps, 1);
}
