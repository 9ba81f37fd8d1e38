// act.c: element-wise activations and row softmax.
//
// Mirrors torch.nn.functional.gelu(approximate='none'), silu, relu,
// torch.softmax(dim=-1) and the GELU gate of timm's SwiGLU as xAR uses it. All are in-place safe: each output element depends only on
// inputs already read (softmax reads the whole row before writing it).
#include "disa/nn.h"
#include "disa/bf16.h"
#include "disa/par.h"
#include "disa/vec.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

// ----------------------------------------------------------------------------
// One exp for softmax, GELU and SiLU. Attention spends heads*T^2 exponentials per image and block (1.2M for MAR-B),
// costing as much time as a good part of the block's GEMMs, so the row loops are written
// 8 lanes wide around a branch-free exp the compiler can vectorize (DISA_VEC builds
// AVX-512 and AVX2 copies). GELU and SiLU use the same exp. One exp in every build
// keeps the tested path the one that runs.

// exp(x) for x <= 0 (max-subtracted logits): within 1.02 ulp of exp on every float in
// [log FLT_MIN, 0] (checked exhaustively, with and without FMA contraction), and 0 below (where expf is denormal: < 1.2e-38 next to a
// largest term of 1, so the softmax is unchanged). NaN stays NaN.
static inline float exp_nonpos(float x) {
    const float lo = -87.33654f;  // log(FLT_MIN)
    float xc = x < lo ? lo : x;
    // n = round(x / ln 2) with the 1.5 * 2^23 shifter: the integer lands in the low
    // mantissa bits of t, with no float->int conversion to block vectorization.
    const float shifter = 12582912.0f;
    float t = xc * 1.44269504088896341f + shifter;
    float n = t - shifter;
    int32_t ti;
    memcpy(&ti, &t, sizeof ti);
    // r = x - n ln2 in two parts (Cody-Waite), |r| <= ln2/2, then Cephes' expf polynomial.
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // 2^n from the exponent bits; n in [-126, 0] after the clamp, so s is normal.
    uint32_t e = (uint32_t)(ti - 0x4B400000 + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return x < lo ? 0.0f : p * s;
}

// erfc(z) for z >= 0 with a relative error of about 1.2e-7 in exact arithmetic
// (Numerical Recipes' Chebyshev fit, `erfcc`), a few float ulps as evaluated here. It
// keeps relative accuracy where erfc is tiny, and it is one exp and one division with
// no branch, so the GELU loop vectorises (libm's erfcf does not).
static inline float erfc_nonneg(float z) {
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    // The exponent is <= ~3e-8 for every z >= 0, inside exp_nonpos's range.
    float a = p - z * z;
    return t * exp_nonpos(a < 0.0f ? a : 0.0f);
}

DISA_VEC
static void gelu_run(float *out, const float *inp, size_t n) {
    // 0.5 x (1 + erf(x/sqrt2)) written as 0.5 x erfc(-x/sqrt2), and erfc(-z) = 2 - erfc(z):
    // the same function, without the cancellation of 1 + erf near -1 for x << 0.
    const float r = (float)M_SQRT1_2;
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float e = erfc_nonneg(fabsf(x) * r);
        out[i] = 0.5f * x * (x < 0.0f ? e : 2.0f - e);
    }
}

DISA_VEC
static void silu_run(float *out, const float *inp, size_t n) {
    // x sigmoid(x) with e = exp(-|x|) <= 1: x / (1 + e) for x >= 0 and x e / (1 + e) for
    // x < 0, so exp never overflows; for x << 0, e flushes to 0 and the result is -0.
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float e = exp_nonpos(-fabsf(x));
        out[i] = (x < 0.0f ? x * e : x) / (1.0f + e);
    }
}

DISA_VEC
static void silu_bf16_run(uint16_t *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float e = exp_nonpos(-fabsf(x));
        out[i] = bf16_bits((x < 0.0f ? x * e : x) / (1.0f + e));
    }
}

// The element-wise loops over the threads (par.h): blocks of the flat array.
typedef struct flat {
    void *out;
    const float *inp;
    size_t n;
    int kind;  // 0 GELU, 1 SiLU, 2 SiLU to bf16
} flat;

static void flat_part(void *ctx, size_t lo, size_t hi) {
    const flat *f = ctx;
    size_t a, b;
    par_block_range(f->n, lo, hi, &a, &b);
    if (f->kind == 0) gelu_run((float *)f->out + a, f->inp + a, b - a);
    else if (f->kind == 1) silu_run((float *)f->out + a, f->inp + a, b - a);
    else silu_bf16_run((uint16_t *)f->out + a, f->inp + a, b - a);
}

static void flat_for(void *out, const float *inp, size_t n, int kind) {
    flat f = {out, inp, n, kind};
    par_for(par_blocks(n), 16, flat_part, &f);
}

void gelu_forward(float *out /*[n]*/, const float *inp /*[n]*/, size_t n) { flat_for(out, inp, n, 0); }
void silu_forward(float *out /*[n]*/, const float *inp /*[n]*/, size_t n) { flat_for(out, inp, n, 1); }
void silu_bf16_forward(uint16_t *out /*[n]*/, const float *inp /*[n]*/, size_t n) { flat_for(out, inp, n, 2); }

void relu_forward(float *out /*[n]*/, const float *inp /*[n]*/, size_t n) {
    // Written so NaN fails the comparison and passes through, like torch.relu.
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x < 0.0f ? 0.0f : x;
    }
}

enum { LANES = 8 };

// y[j] = exp(x[j] - max x) for one row of C; returns 1 / sum y. In-place allowed.
// Inlined into each clone of the callers, so it is compiled (and vectorised) for theirs.
static inline __attribute__((always_inline)) float softmax_exp_row(float *y, const float *x, int C) {
    // Subtracting the row max keeps every exponent <= 0, so logits of 1e4 or more
    // cannot overflow; the largest term is exactly 1, so the sum is >= 1.
    float m8[LANES], s8[LANES];
    for (int k = 0; k < LANES; k++) m8[k] = -INFINITY, s8[k] = 0.0f;
    int j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int k = 0; k < LANES; k++) m8[k] = x[j + k] > m8[k] ? x[j + k] : m8[k];
    float mx = -INFINITY;
    for (int k = 0; k < LANES; k++) mx = m8[k] > mx ? m8[k] : mx;
    for (; j < C; j++) mx = x[j] > mx ? x[j] : mx;
    // The exponentials in a loop of their own, as wide as the vectors go, then the sum:
    // each of the 8 float partial sums holds <= C/8 terms; they meet in double.
    for (j = 0; j < C; j++) y[j] = exp_nonpos(x[j] - mx);
    for (j = 0; j + LANES <= C; j += LANES)
        for (int k = 0; k < LANES; k++) s8[k] += y[j + k];
    double sum = 0.0;
    for (; j < C; j++) sum += y[j];
    for (int k = 0; k < LANES; k++) sum += s8[k];
    return (float)(1.0 / sum);
}

DISA_VEC
static void softmax_rows(float *out, const float *inp, int N, int C) {
    for (int i = 0; i < N; i++) {
        float *y = out + (size_t)i * C;
        float inv = softmax_exp_row(y, inp + (size_t)i * C, C);
        for (int j = 0; j < C; j++) y[j] *= inv;
    }
}

DISA_VEC
static void softmax_bf16_rows(uint16_t *out, float *x, int N, int C) {
    for (int i = 0; i < N; i++) {
        float *xr = x + (size_t)i * C;
        uint16_t *y = out + (size_t)i * C;
        float inv = softmax_exp_row(xr, xr, C);
        for (int j = 0; j < C; j++) y[j] = bf16_bits(xr[j] * inv);
    }
}

typedef struct sm_ctx {
    void *out;
    float *inp;
    int C, bf16;
} sm_ctx;

static void softmax_part(void *ctx, size_t lo, size_t hi) {
    const sm_ctx *s = ctx;
    size_t o = lo * (size_t)s->C;
    if (s->bf16) softmax_bf16_rows((uint16_t *)s->out + o, s->inp + o, (int)(hi - lo), s->C);
    else softmax_rows((float *)s->out + o, s->inp + o, (int)(hi - lo), s->C);
}

void softmax_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/, int N, int C) {
    sm_ctx s = {out, (float *)inp, C, 0};  // the fp32 rows only read inp
    par_for((size_t)N, par_row_grain((size_t)C), softmax_part, &s);
}

void softmax_bf16_forward(uint16_t *out /*[N,C]*/, float *x /*[N,C]*/, int N, int C) {
    sm_ctx s = {out, x, C, 1};
    par_for((size_t)N, par_row_grain((size_t)C), softmax_part, &s);
}

DISA_VEC
void gelu_mul_forward(float *out /*[n]*/, const float *g /*[n]*/, const float *x /*[n]*/, size_t n) {
    // gelu_forward's formula on g, times x: one pass instead of two over the hidden rows.
    const float r = (float)M_SQRT1_2;
    for (size_t i = 0; i < n; i++) {
        float a = g[i], b = x[i];
        float e = erfc_nonneg(fabsf(a) * r);
        out[i] = (0.5f * a * (a < 0.0f ? e : 2.0f - e)) * b;
    }
}
