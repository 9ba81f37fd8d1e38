// test_bf16.c: the bf16 kernels (include/disa/bf16.h, the bf16 forms in nn.h) against
// references written here, and the precision switch.
//
// Each matmul kernel is checked against what it computes: the exact product of the
// bf16-rounded inputs, accumulated here in double. oneDNN accumulates in fp32, so those
// agree to fp32 rounding (normwise <= 1e-5 at these depths); a result written as bf16
// adds one rounding of 2^-9 relative. Element-wise kernels that write bf16 must be within
// one bf16 rounding of the double reference. Checks that load oneDNN run in a child
// process: its OpenMP threads stay alive until exit, where LeakSanitizer cannot stop
// them, so that process ends with _exit (status 0 ok, 1 failed, 3 bf16 not available).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/mar.h"
#include "disa/nn.h"
#include "disa/sampler.h"

// ----------------------------------------------------------------------------
// helpers

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static double urand(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (double)((g_rng * 0x2545F4914F6CDD1Dull) >> 40) / (double)(1 << 24);
}
static float *rand_buf(size_t n, double lo, double hi) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; p && i < n; i++) p[i] = (float)(lo + (hi - lo) * urand());
    return p;
}
static uint16_t *to_bf(const float *x, size_t n) {
    uint16_t *p = malloc((n ? n : 1) * sizeof *p);
    if (p) bf16_from_f32(p, x, n);
    return p;
}
static float bf(float x) { return bf16_round(x); }
static float from_bits(uint16_t h) {
    float f;
    bf16_to_f32(&f, &h, 1);
    return f;
}

static int g_bad;
#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            fprintf(stderr, "FAILED: " __VA_ARGS__);      \
            fprintf(stderr, "\n");                        \
            g_bad = 1;                                    \
        }                                                 \
    } while (0)

// max |got - want| / max |want| over n values; got is fp32 or bf16 (bits).
static double normwise(const void *got, int got_bf16, const double *want, size_t n) {
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got_bf16 ? from_bits(((const uint16_t *)got)[i]) : ((const float *)got)[i];
        double d = fabs(g - want[i]);
        if (!(d <= e)) e = d;
        if (fabs(want[i]) > m) m = fabs(want[i]);
    }
    return m > 0 ? e / m : e;
}

// Run fn in a child; 3 (bf16 cannot run here) counts as a pass with a note.
static void in_child(int (*fn)(void)) {
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (bf16_available() != 0) {
            printf("bf16 not available here: %s\n", disa_errmsg());
            fflush(stdout);
            _exit(strstr(disa_errmsg(), "--precision bf16") ? 3 : 1);
        }
        g_bad = 0;
        int rc = fn();
        fflush(stdout), fflush(stderr);
        _exit(rc || g_bad);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_true(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 3);
}

// ----------------------------------------------------------------------------
// conversion (no oneDNN)

static void test_round(void **state) {
    struct { uint32_t in; uint16_t out; } cases[] = {
        {0x3F800000u, 0x3F80},  // 1
        {0x3F808000u, 0x3F80},  // halfway, even below: stays
        {0x3F818000u, 0x3F82},  // halfway, odd below: up to even
        {0x3F808001u, 0x3F81},  // above halfway: up
        {0x3F807FFFu, 0x3F80},  // below halfway: down
        {0x7F7FFFFFu, 0x7F80},  // FLT_MAX rounds to +inf, as RNE does
        {0x7F800000u, 0x7F80},  // +inf
        {0xFF800000u, 0xFF80},  // -inf
        {0x7FC00000u, 0x7FC0},  // quiet NaN
        {0x7F800001u, 0x7FC0},  // signalling NaN with a low payload: stays a (quiet) NaN
        {0xFF810000u, 0xFFC1},  // negative NaN keeps sign and payload, gains the quiet bit
        {0x00000001u, 0x0000},  // smallest denormal rounds to +0
        {0x00018000u, 0x0002},  // a denormal halfway case: to even
        {0x80010000u, 0x8001},  // a negative denormal is kept
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        float f;
        memcpy(&f, &cases[i].in, sizeof f);
        uint16_t got;
        bf16_from_f32(&got, &f, 1);
        if (got != cases[i].out) printf("0x%08x -> 0x%04x, expected 0x%04x\n", cases[i].in, got, cases[i].out);
        assert_int_equal(got, cases[i].out);
        assert_int_equal(bf16_bits(f), cases[i].out);
    }
    // The vectorised loop equals the scalar rule on random bit patterns, and widening is exact.
    enum { N = 4099 };
    uint32_t *u = malloc(N * sizeof *u);
    uint16_t *h = malloc(N * sizeof *h);
    float *back = malloc(N * sizeof *back);
    assert_true(u && h && back);
    for (int i = 0; i < N; i++) u[i] = (uint32_t)(urand() * 4294967296.0);
    bf16_from_f32(h, (const float *)u, N);
    bf16_to_f32(back, h, N);
    for (int i = 0; i < N; i++) {
        float f;
        memcpy(&f, &u[i], sizeof f);
        assert_int_equal(h[i], bf16_bits(f));
        uint32_t b;
        memcpy(&b, &back[i], sizeof b);
        assert_int_equal(b, (uint32_t)h[i] << 16);
    }
    free(u), free(h), free(back);
}

static void test_precision_names(void **state) {
    precision_kind p;
    assert_int_equal(precision_parse("fp32", &p), 0);
    assert_int_equal(p, PRECISION_FP32);
    assert_int_equal(precision_parse("bf16", &p), 0);
    assert_int_equal(p, PRECISION_BF16);
    assert_int_equal(precision_parse("auto", &p), 0);
    assert_int_equal(p, PRECISION_AUTO);
    assert_int_equal(precision_parse("fp16", &p), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "fp32, bf16 or auto, got 'fp16'"));
    assert_string_equal(precision_name(PRECISION_AUTO), "auto");
    char why[256];
    assert_int_equal(precision_resolve(PRECISION_FP32, why, sizeof why), PRECISION_FP32);
    assert_int_equal(precision_resolve(PRECISION_BF16, why, sizeof why), PRECISION_BF16);
}

// auto without bf16 (DISA_TEST_NO_BF16, read when oneDNN would load): fp32 with the reason.
static void test_auto_without_bf16(void **state) {
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("DISA_TEST_NO_BF16", "1", 1);
        char why[256];
        precision_kind p = precision_resolve(PRECISION_AUTO, why, sizeof why);
        printf("auto without bf16: %s\n", why);
        int ok = p == PRECISION_FP32 && strstr(why, "fp32 (bf16 cannot run: this CPU has no AVX512_BF16") &&
                 bf16_available() == DISA_EINVAL && strstr(disa_errmsg(), "--precision bf16: ");
        fflush(stdout);
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

// auto where bf16 runs: bf16, naming oneDNN's ISA.
static int auto_with_bf16(void) {
    char why[256];
    precision_kind p = precision_resolve(PRECISION_AUTO, why, sizeof why);
    printf("auto: %s\n", why);
    CHECK(p == PRECISION_BF16, "auto resolved to %s where bf16 runs", precision_name(p));
    CHECK(strstr(why, bf16_isa()) != NULL, "'%s' does not name the ISA %s", why, bf16_isa());
    CHECK(strcmp(bf16_isa(), "avx512_core_bf16") == 0 || strcmp(bf16_isa(), "avx512_core_amx") == 0,
          "unexpected ISA %s", bf16_isa());
    return 0;
}
static void test_auto_with_bf16(void **state) { in_child(auto_with_bf16); }

// ----------------------------------------------------------------------------
// Linear: every epilogue, several row counts through one packed weight.

static double gelu_d(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }
static double silu_d(double x) { return x / (1.0 + exp(-x)); }

static int linear_epilogues(void) {
    const int K = 300, N = 70, Ms[] = {1, 37, 300};
    float *W = rand_buf((size_t)N * K, -0.1, 0.1), *b = rand_buf(N, -1, 1);
    bf16_linear l;
    CHECK(bf16_linear_init(&l, W, b, K, N) == 0, "init: %s", disa_errmsg());
    bf16_linear lnb;
    CHECK(bf16_linear_init(&lnb, W, NULL, K, N) == 0, "init without bias: %s", disa_errmsg());
    bf16_cache *c = bf16_cache_new(8);
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
        int M = Ms[mi];
        float *x = rand_buf((size_t)M * K, -1, 1), *res = rand_buf((size_t)M * N, -2, 2);
        float *gate = rand_buf((size_t)M * N, -1, 1), *y = malloc(sizeof(float) * M * N);
        uint16_t *xb = to_bf(x, (size_t)M * K), *yb = malloc(sizeof(uint16_t) * M * N);
        double *acc = malloc(sizeof(double) * M * N), *want = malloc(sizeof(double) * M * N);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)bf(x[(size_t)i * K + k]) * bf(W[(size_t)j * K + k]);
                acc[(size_t)i * N + j] = s;
            }
        for (int epi = 0; epi < BF16_EPI_COUNT; epi++)
            for (int out_bf = 0; out_bf < 2; out_bf++) {
                if (out_bf && (epi == BF16_EPI_RESIDUAL || epi == BF16_EPI_GATE_RESIDUAL)) continue;
                for (int nb = 0; nb < 2; nb++) {  // nb = 1: the Linear without bias
                    const bf16_linear *L = nb ? &lnb : &l;
                    for (size_t i = 0; i < (size_t)M * N; i++) {
                        double v = acc[i] + (nb ? 0.0 : b[i % N]);
                        switch (epi) {
                        case BF16_EPI_GELU: v = gelu_d(v); break;
                        case BF16_EPI_SILU: v = silu_d(v); break;
                        case BF16_EPI_RESIDUAL: v = res[i] + v; break;
                        case BF16_EPI_GATE_RESIDUAL: v = res[i] + gate[i] * v; break;
                        default: break;
                        }
                        want[i] = v;
                        y[i] = res[i];  // the residual epilogues add into y
                    }
                    int rc = bf16_linear_forward(c, L, out_bf ? (void *)yb : (void *)y, out_bf, xb, gate, M,
                                                 (bf16_epilogue)epi);
                    CHECK(rc == 0, "M %d epi %d: %s", M, epi, disa_errmsg());
                    double e = normwise(out_bf ? (void *)yb : (void *)y, out_bf, want, (size_t)M * N);
                    // fp32 out: fp32 accumulation and oneDNN's GELU/SiLU (~1e-6); bf16 out:
                    // one rounding, 2^-9 of each value, under 2^-8 of the largest.
                    double tol = out_bf ? 1.0 / 256 : 1e-5;
                    CHECK(e <= tol, "M %d epilogue %d %s%s: normwise %.3g > %.3g", M, epi, out_bf ? "bf16" : "fp32",
                          nb ? " no bias" : "", e, tol);
                }
            }
        free(x), free(res), free(gate), free(y), free(xb), free(yb), free(acc), free(want);
    }
    // A shape seen before makes no new primitive.
    float *x = rand_buf(300 * (size_t)K, -1, 1), *y = malloc(sizeof(float) * 300 * N);
    uint16_t *xb = to_bf(x, 300 * (size_t)K);
    CHECK(bf16_linear_forward(c, &l, y, 0, xb, NULL, 300, BF16_EPI_NONE) == 0, "again: %s", disa_errmsg());
    long made = bf16_cache_created(c);
    CHECK(bf16_linear_forward(c, &l, y, 0, xb, NULL, 300, BF16_EPI_NONE) == 0, "again: %s", disa_errmsg());
    CHECK(bf16_cache_created(c) == made, "a cached shape made a new primitive (%ld -> %ld)", made,
          bf16_cache_created(c));
    // And the FLOPs are counted like blas_linear's.
    uint64_t f0 = blas_flops();
    bf16_linear_forward(c, &l, y, 0, xb, NULL, 300, BF16_EPI_NONE);
    CHECK(blas_flops() - f0 == 2ull * 300 * K * N, "FLOP count %llu", (unsigned long long)(blas_flops() - f0));
    free(x), free(y), free(xb);
    bf16_cache_delete(c);
    bf16_linear_free(&l);
    bf16_linear_free(&lnb);
    free(W), free(b);
    return 0;
}
static void test_linear_epilogues(void **state) { in_child(linear_epilogues); }

// A cache of 2 primitives cycled through 5 row counts: evicted shapes are made again
// and stay right.
static int cache_eviction(void) {
    const int K = 64, N = 48;
    float *W = rand_buf((size_t)N * K, -0.2, 0.2);
    bf16_linear l;
    CHECK(bf16_linear_init(&l, W, NULL, K, N) == 0, "init: %s", disa_errmsg());
    bf16_cache *c = bf16_cache_new(2);
    for (int rep = 0; rep < 3; rep++)
        for (int M = 1; M <= 5; M++) {
            float *x = rand_buf((size_t)M * K, -1, 1), y[5 * 48];
            uint16_t *xb = to_bf(x, (size_t)M * K);
            double want[5 * 48];
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) s += (double)bf(x[i * K + k]) * bf(W[j * K + k]);
                    want[i * N + j] = s;
                }
            CHECK(bf16_linear_forward(c, &l, y, 0, xb, NULL, M, BF16_EPI_NONE) == 0, "M %d: %s", M, disa_errmsg());
            double e = normwise(y, 0, want, (size_t)M * N);
            CHECK(e <= 1e-5, "rep %d M %d: normwise %.3g", rep, M, e);
            free(x), free(xb);
        }
    CHECK(bf16_cache_created(c) == 15, "expected 15 primitives made through a cache of 2, got %ld",
          bf16_cache_created(c));
    bf16_cache_delete(c);
    bf16_linear_free(&l);
    free(W);
    return 0;
}
static void test_cache_eviction(void **state) { in_child(cache_eviction); }

// ----------------------------------------------------------------------------
// Attention: batched strided matmuls + fp32 softmax, against the same computation in
// double from the rounded q, k, v with the probabilities rounded to bf16 as the kernel
// does; the output is bf16.

static void ref_attention(double *out, const float *q, int ldq, const float *k, const float *v, int ldkv, int B,
                          int P, int T, int d, int heads) {
    int hd = d / heads;
    double scale = 1.0 / sqrt((double)(float)hd), *s = malloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < P; i++) {
                const float *qi = q + ((size_t)b * P + i) * ldq + h * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    const float *kj = k + ((size_t)b * T + j) * ldkv + h * hd;
                    double acc = 0;
                    for (int t = 0; t < hd; t++) acc += (double)bf(qi[t]) * bf(kj[t]);
                    s[j] = (double)(float)(acc * (float)scale);
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < T; j++) sum += exp(s[j] - mx);
                for (int t = 0; t < hd; t++) {
                    double o = 0;
                    for (int j = 0; j < T; j++)
                        o += (double)bf((float)(exp(s[j] - mx) / sum)) * bf(v[((size_t)b * T + j) * ldkv + h * hd + t]);
                    out[((size_t)b * P + i) * d + h * hd + t] = o;
                }
            }
    free(s);
}

static int attention(void) {
    // Full self-attention from one qkv block (P = T), then P query rows against T.
    const int B = 2, T = 37, d = 24, heads = 3;
    bf16_cache *c = bf16_cache_new(8);
    float *qkv = rand_buf((size_t)B * T * 3 * d, -2, 2);
    uint16_t *qkvb = to_bf(qkv, (size_t)B * T * 3 * d), *out = malloc(sizeof(uint16_t) * B * T * d);
    double *want = malloc(sizeof(double) * B * T * d);
    void *scr = malloc(attention_bf16_scratch_bytes(T, T, heads));
    int rc = attention_bf16_forward(c, out, qkvb, 3 * d, qkvb + d, qkvb + 2 * d, 3 * d, scr, B, T, T, d, heads);
    CHECK(rc == 0, "attention: %s", disa_errmsg());
    ref_attention(want, qkv, 3 * d, qkv + d, qkv + 2 * d, 3 * d, B, T, T, d, heads);
    double e = normwise(out, 1, want, (size_t)B * T * d);
    printf("bf16 attention, B %d T %d d %d heads %d: normwise %.3g\n", B, T, d, heads, e);
    // bf16 output rounding (2^-9) and the fp32 softmax next to the double one.
    CHECK(e <= 1.0 / 256, "attention normwise %.3g", e);
    const int P = 5;
    float *q = rand_buf((size_t)B * P * d, -2, 2), *kv = rand_buf((size_t)B * T * 2 * d, -2, 2);
    uint16_t *qb = to_bf(q, (size_t)B * P * d), *kvb = to_bf(kv, (size_t)B * T * 2 * d);
    rc = attention_bf16_forward(c, out, qb, d, kvb, kvb + d, 2 * d, scr, B, P, T, d, heads);
    CHECK(rc == 0, "attention rows: %s", disa_errmsg());
    ref_attention(want, q, d, kv, kv + d, 2 * d, B, P, T, d, heads);
    e = normwise(out, 1, want, (size_t)B * P * d);
    CHECK(e <= 1.0 / 256, "attention rows normwise %.3g", e);
    free(qkv), free(qkvb), free(out), free(want), free(scr), free(q), free(kv), free(qb), free(kvb);
    bf16_cache_delete(c);
    return 0;
}
static void test_attention(void **state) { in_child(attention); }

// ----------------------------------------------------------------------------
// Convolution on channels-last maps: a 3x3 padded and a strided, rectangular one, with
// and without the residual sum, against the direct sum over the rounded operands.

static void ref_conv(double *y, const float *x, const float *w, const float *b, int H, int W, int Cin, int Cout,
                     int kh, int kw, int sh, int sw, int ph, int pw, int OH, int OW) {
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++)
            for (int o = 0; o < Cout; o++) {
                double s = b ? b[o] : 0.0;
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++) {
                        int iy = oy * sh - ph + i, ix = ox * sw - pw + j;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        for (int c = 0; c < Cin; c++)
                            s += (double)bf(x[((size_t)iy * W + ix) * Cin + c]) *
                                 bf(w[(((size_t)o * Cin + c) * kh + i) * kw + j]);
                    }
                y[((size_t)oy * OW + ox) * Cout + o] = s;
            }
}

static int conv(void) {
    struct { int H, W, Cin, Cout, kh, kw, sh, sw, ph, pw; } cases[] = {
        {9, 7, 13, 16, 3, 3, 1, 1, 1, 1},
        {10, 6, 8, 5, 3, 2, 2, 1, 1, 0},
        {5, 5, 16, 32, 1, 1, 1, 1, 0, 0},
    };
    bf16_cache *c = bf16_cache_new(8);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int H = cases[k].H, W = cases[k].W, Ci = cases[k].Cin, Co = cases[k].Cout;
        int kh = cases[k].kh, kw = cases[k].kw, sh = cases[k].sh, sw = cases[k].sw, ph = cases[k].ph, pw = cases[k].pw;
        int OH = (H + 2 * ph - kh) / sh + 1, OW = (W + 2 * pw - kw) / sw + 1;
        size_t nx = (size_t)H * W * Ci, ny = (size_t)OH * OW * Co;
        float *x = rand_buf(nx, -1, 1), *w = rand_buf((size_t)Co * Ci * kh * kw, -0.3, 0.3), *b = rand_buf(Co, -1, 1);
        float *res = rand_buf(ny, -2, 2), *y = malloc(sizeof(float) * ny);
        double *want = malloc(sizeof(double) * ny);
        uint16_t *xb = to_bf(x, nx);
        bf16_conv cv;
        CHECK(bf16_conv_init(&cv, w, b, Ci, Co, kh, kw, sh, sw, ph, pw, H, W) == 0, "conv init: %s", disa_errmsg());
        CHECK(cv.OH == OH && cv.OW == OW, "conv %zu: output %dx%d, expected %dx%d", k, cv.OH, cv.OW, OH, OW);
        ref_conv(want, x, w, b, H, W, Ci, Co, kh, kw, sh, sw, ph, pw, OH, OW);
        for (int residual = 0; residual < 2; residual++) {
            memcpy(y, res, sizeof(float) * ny);
            CHECK(bf16_conv_forward(c, &cv, y, xb, 1, residual) == 0, "conv %zu: %s", k, disa_errmsg());
            double *wr = malloc(sizeof(double) * ny);
            for (size_t i = 0; i < ny; i++) wr[i] = want[i] + (residual ? res[i] : 0.0);
            double e = normwise(y, 0, wr, ny);
            CHECK(e <= 1e-5, "conv %zu residual %d: normwise %.3g", k, residual, e);
            free(wr);
        }
        bf16_conv_free(&cv);
        free(x), free(w), free(b), free(res), free(y), free(want), free(xb);
    }
    bf16_cache_delete(c);
    return 0;
}
static void test_conv(void **state) { in_child(conv); }

// ----------------------------------------------------------------------------
// Element-wise kernels writing bf16 (no oneDNN): within one bf16 rounding (2^-8 of the
// value, plus the fp32 normalisation of a few ulps) of the double reference.

static void test_layernorm_bf16(void **state) {
    const int N = 7, C = 301;
    float *x = rand_buf((size_t)N * C, -3, 5), *w = rand_buf(C, 0.5, 1.5), *b = rand_buf(C, -1, 1);
    float *sh = rand_buf((size_t)N * C, -1, 1), *sc = rand_buf((size_t)N * C, -0.5, 0.5);
    for (int i = 0; i < C; i++) x[C + i] += 1000.0f;  // a row with a large common offset
    uint16_t *y = malloc(sizeof(uint16_t) * N * C);
    for (int mode = 0; mode < 3; mode++) {  // plain, affine, affine + modulate
        layernorm_bf16_forward(y, x, mode ? w : NULL, mode ? b : NULL, mode == 2 ? sh : NULL, mode == 2 ? sc : NULL,
                               N, C, 1e-6f);
        for (int n = 0; n < N; n++) {
            double m = 0, v = 0;
            for (int j = 0; j < C; j++) m += x[n * C + j];
            m /= C;
            for (int j = 0; j < C; j++) v += (x[n * C + j] - m) * (x[n * C + j] - m);
            double r = 1.0 / sqrt(v / C + 1e-6);
            for (int j = 0; j < C; j++) {
                double want = (x[n * C + j] - m) * r;
                if (mode) want = want * w[j] + b[j];
                if (mode == 2) want = want * (1.0 + sc[n * C + j]) + sh[n * C + j];
                double got = from_bits(y[n * C + j]);
                double tol = fabs(want) / 256 + 1e-5;
                if (!(fabs(got - want) <= tol))
                    printf("mode %d row %d col %d: got %.7g want %.7g\n", mode, n, j, got, want);
                assert_true(fabs(got - want) <= tol);
            }
        }
    }
    free(x), free(w), free(b), free(sh), free(sc), free(y);
}

static void test_softmax_bf16(void **state) {
    const int N = 5, C = 77;
    float *x = rand_buf((size_t)N * C, -20, 20), *x32 = malloc(sizeof(float) * N * C);
    uint16_t *y = malloc(sizeof(uint16_t) * N * C);
    float *xs = malloc(sizeof(float) * N * C);
    memcpy(xs, x, sizeof(float) * N * C);
    softmax_forward(x32, x, N, C);
    softmax_bf16_forward(y, xs, N, C);
    // The fp32 kernel's values, rounded once.
    for (int i = 0; i < N * C; i++) assert_int_equal(y[i], bf16_bits(x32[i]));
    free(x), free(x32), free(y), free(xs);
}

// Channels-last GroupNorm equals the NCHW kernel on the transposed map (both fp32 with
// double statistics; they differ in the final affine's precision only).
static void test_groupnorm_nhwc(void **state) {
    const int HW = 37, C = 24, G = 6;
    float *x = rand_buf((size_t)HW * C, -2, 3), *w = rand_buf(C, 0.5, 1.5), *b = rand_buf(C, -1, 1);
    float *xt = malloc(sizeof(float) * HW * C), *yt = malloc(sizeof(float) * HW * C), *y = malloc(sizeof(float) * HW * C);
    for (int p = 0; p < HW; p++)
        for (int c = 0; c < C; c++) xt[(size_t)c * HW + p] = x[(size_t)p * C + c] + (c < 4 ? 500.0f : 0.0f);
    for (int p = 0; p < HW; p++)
        for (int c = 0; c < 4; c++) x[(size_t)p * C + c] += 500.0f;  // a group with a large offset
    groupnorm_forward(yt, xt, w, b, 1, C, HW, G, 1e-6f);
    groupnorm_nhwc_forward(y, x, w, b, HW, C, G, 1e-6f);
    for (int p = 0; p < HW; p++)
        for (int c = 0; c < C; c++) {
            float got = y[(size_t)p * C + c], want = yt[(size_t)c * HW + p];
            if (!(fabsf(got - want) <= 1e-5f * (1.0f + fabsf(want)))) printf("p %d c %d: %g vs %g\n", p, c, got, want);
            assert_true(fabsf(got - want) <= 1e-5f * (1.0f + fabsf(want)));
        }
    // In place gives the same values.
    groupnorm_nhwc_forward(x, x, w, b, HW, C, G, 1e-6f);
    assert_memory_equal(x, y, sizeof(float) * HW * C);
    free(x), free(w), free(b), free(xt), free(yt), free(y);
}

// Nearest x2 on channels-last, rounded: every output pixel is its source pixel's bits.
static void test_upsample_silu_bf16(void **state) {
    const int H = 3, W = 5, C = 7;
    float *x = rand_buf((size_t)H * W * C, -4, 4), *s = malloc(sizeof(float) * H * W * C);
    uint16_t *y = malloc(sizeof(uint16_t) * 4 * H * W * C), *sb = malloc(sizeof(uint16_t) * H * W * C);
    upsample_nearest2x_nhwc_bf16(y, x, H, W, C);
    for (int oy = 0; oy < 2 * H; oy++)
        for (int ox = 0; ox < 2 * W; ox++)
            for (int c = 0; c < C; c++)
                assert_int_equal(y[((size_t)oy * 2 * W + ox) * C + c], bf16_bits(x[((size_t)(oy / 2) * W + ox / 2) * C + c]));
    silu_forward(s, x, (size_t)H * W * C);
    silu_bf16_forward(sb, x, (size_t)H * W * C);
    for (int i = 0; i < H * W * C; i++) assert_int_equal(sb[i], bf16_bits(s[i]));
    free(x), free(s), free(y), free(sb);
}

// ----------------------------------------------------------------------------
// Settings by precision: bf16 refuses the DPM solvers and the adaptive strategy (one
// message naming the setting, and "auto" when that is where bf16 came from); fp32 runs
// them; "default" ignores the strategy, so adaptive with it runs in bf16.

static void expect_refused(const sample_params *p, int from_auto, const char *got) {
    assert_int_equal(sample_params_check_precision(p, PRECISION_BF16, from_auto), DISA_EINVAL);
    const char *msg = disa_errmsg();
    assert_non_null(strstr(msg, from_auto ? "--precision auto resolves to bf16 here" : "--precision bf16 runs the "
                                                                                      "default, DiSA and DDIM samplers"));
    assert_non_null(strstr(msg, "DPM_Solver, DPM_Solver++ and the adaptive strategy run in fp32 for now"));
    assert_non_null(strstr(msg, got));
    assert_int_equal(sample_params_check_precision(p, PRECISION_FP32, from_auto), 0);
}

static void test_settings_by_precision(void **state) {
    (void)state;
    sample_params p;
    sample_params_init(&p);
    const gd_sampler ok[] = {GD_SAMPLER_DEFAULT, GD_SAMPLER_DISA, GD_SAMPLER_DDIM};
    for (int k = 0; k < 3; k++) {
        p.sampler = ok[k];
        assert_int_equal(sample_params_check_precision(&p, PRECISION_BF16, 0), 0);
    }
    p.sampler = GD_SAMPLER_DPM;
    expect_refused(&p, 0, "(got --diff_sampler DPM_Solver)");
    p.sampler = GD_SAMPLER_DPM_PP;
    expect_refused(&p, 1, "(got --diff_sampler DPM_Solver++)");
    assert_int_equal(sample_params_set(&p, "diff_annealing_strategy", "adaptive"), 0);
    expect_refused(&p, 0, "(got --diff_sampler DPM_Solver++ with --diff_annealing_strategy adaptive)");
    p.sampler = GD_SAMPLER_DISA;
    expect_refused(&p, 0, "(got --diff_annealing_strategy adaptive with --diff_sampler DiSA)");
    p.sampler = GD_SAMPLER_DEFAULT;
    assert_int_equal(sample_params_check_precision(&p, PRECISION_BF16, 0), 0);
    // Through the family seam: the same check on MAR's blob.
    const family *f = family_for_preset("mar_base");
    assert_non_null(f);
    family_params fp;
    f->params_init(&fp);
    assert_int_equal(f->params_set(&fp, "diff_sampler", "DPM_Solver"), 0);
    assert_int_equal(family_precision_check(f, &fp, PRECISION_FP32, 0), 0);
    assert_int_equal(family_precision_check(f, &fp, PRECISION_BF16, 1), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "--precision auto resolves to bf16 here"));
}

// ----------------------------------------------------------------------------
// A prepared model: preparing is idempotent, FP32 drops the bf16 form, a sampler needs
// its model prepared for its precision and refuses to run once the model was prepared
// for another, and the bf16 and fp32 samplers draw the same images up to bf16 rounding.

static int prepared_model(void) {
    mar_model m;
    CHECK(mar_open(&m, "models/tiny-test.safetensors") == 0, "open: %s", disa_errmsg());
    CHECK(m.precision == PRECISION_FP32 && !m.bf16 && !m.head.bf16, "a model opens as fp32");
    sample_params p;
    sample_params_init(&p);
    p.num_iter = 4, p.cfg = 2.0, p.sampler = GD_SAMPLER_DISA, p.upper = 10, p.lower = 3;
    p.precision = PRECISION_BF16;
    sampler s16, s32;
    CHECK(sampler_init(&s16, &m, &p, 2) == DISA_EINVAL &&
              strstr(disa_errmsg(), "asks for bf16 but the model is prepared for fp32"),
          "a bf16 sampler on an fp32 model: %s", disa_errmsg());
    CHECK(mar_prepare(&m, PRECISION_BF16) == 0, "prepare: %s", disa_errmsg());
    mar_bf16 *form = m.bf16;
    CHECK(m.precision == PRECISION_BF16 && form && m.head.bf16, "prepared for bf16");
    CHECK(mar_prepare(&m, PRECISION_AUTO) == 0 && m.bf16 == form, "auto where bf16 runs keeps the bf16 form");
    p.precision = PRECISION_AUTO;  // the sampler resolves it to what the model is prepared for
    CHECK(sampler_init(&s16, &m, &p, 2) == 0 && s16.p.precision == PRECISION_BF16, "bf16 sampler: %s", disa_errmsg());
    sample_params q = p;  // the DPM solvers run in fp32 only, also when auto made them bf16
    q.sampler = GD_SAMPLER_DPM_PP;
    sampler sd;
    CHECK(sampler_init(&sd, &m, &q, 2) == DISA_EINVAL &&
              strstr(disa_errmsg(), "--precision auto resolves to bf16 here") &&
              strstr(disa_errmsg(), "(got --diff_sampler DPM_Solver++)"),
          "a DPM sampler on a bf16 model: %s", disa_errmsg());
    const int B = 2, L = m.cfg.seq_len, C = m.cfg.token_dim;
    int labels[2] = {3, 5};
    uint32_t index[2] = {0, 1};
    float *tok[2] = {malloc(sizeof(float) * B * L * C), malloc(sizeof(float) * B * L * C)};
    for (int k = 0; k < 2; k++) {  // 0: bf16, 1: fp32
        if (k) {
            p.precision = PRECISION_FP32;
            CHECK(mar_prepare(&m, PRECISION_FP32) == 0 && !m.bf16 && !m.head.bf16, "fp32 drops the bf16 form");
            CHECK(sampler_init(&s32, &m, &p, B) == 0, "fp32 sampler: %s", disa_errmsg());
        }
        ar_rng_philox rng;
        sample_stats st = {0};
        CHECK(ar_rng_philox_init(&rng, 7, index, B) == 0, "rng");
        CHECK(sampler_run(k ? &s32 : &s16, &rng.base, labels, B, tok[k], &st) == 0, "run %d: %s", k, disa_errmsg());
        ar_rng_philox_free(&rng);
    }
    ar_rng_philox rng;
    sample_stats st = {0};
    ar_rng_philox_init(&rng, 7, index, B);
    CHECK(sampler_run(&s16, &rng.base, labels, B, tok[0], &st) == DISA_EINVAL &&
              strstr(disa_errmsg(), "made for bf16, but its model is now prepared for fp32"),
          "a bf16 sampler ran on a model prepared for fp32: %s", disa_errmsg());
    ar_rng_philox_free(&rng);
    double e = 0, mx = 0;
    for (int i = 0; i < B * L * C; i++) {
        double d = fabs((double)tok[0][i] - tok[1][i]);
        if (d > e) e = d;
        if (fabs(tok[1][i]) > mx) mx = fabs(tok[1][i]);
    }
    printf("tiny model, whole loop: bf16 vs fp32 tokens normwise %.3g\n", e / mx);
    CHECK(e / mx > 1e-6 && e / mx < 0.2, "tokens bf16 vs fp32 normwise %.3g outside (1e-6, 0.2)", e / mx);
    sampler_free(&s16);
    sampler_free(&s32);
    mar_close(&m);
    free(tok[0]), free(tok[1]);
    return 0;
}
static void test_prepared_model(void **state) { in_child(prepared_model); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round),           cmocka_unit_test(test_precision_names),
        cmocka_unit_test(test_auto_without_bf16), cmocka_unit_test(test_auto_with_bf16),
        cmocka_unit_test(test_linear_epilogues), cmocka_unit_test(test_cache_eviction),
        cmocka_unit_test(test_attention),       cmocka_unit_test(test_layernorm_bf16),
        cmocka_unit_test(test_softmax_bf16),    cmocka_unit_test(test_conv),
        cmocka_unit_test(test_groupnorm_nhwc),  cmocka_unit_test(test_upsample_silu_bf16),
        cmocka_unit_test(test_prepared_model),  cmocka_unit_test(test_settings_by_precision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
