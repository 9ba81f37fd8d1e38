// test_nn.c: every src/nn kernel against a naive reference loop written here.
//
// The references are the textbook definitions (the PyTorch formulas of each kernel's
// header) accumulated in double, on odd sizes so no kernel can lean on a multiple of
// 2, 4 or 8. Float results are compared normwise: max|got - want| <= tol * max|want|
// (+ a tiny absolute floor), the same measure as the golden parity runner.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disa/blas.h"
#include "disa/err.h"
#include "disa/nn.h"

// ----------------------------------------------------------------------------
// helpers

// Deterministic uniform values in [lo, hi) (xorshift64*), so failures reproduce.
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (double)((g_rng * 0x2545F4914F6CDD1Dull) >> 40) / (double)(1 << 24);
}
static float *rand_buf(size_t n, double lo, double hi) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * urand());
    return p;
}
static double *dbuf(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}
static float *fbuf(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

// Normwise check; prints the worst element on failure so the message is actionable.
static void check_close(const char *label, const float *got, const double *want, size_t n,
                        double rtol, double atol) {
    double maxw = 0.0, maxe = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > maxw) maxw = fabs(want[i]);
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= maxe)) {  // also catches NaN in got
            maxe = e;
            worst = i;
        }
    }
    if (!(maxe <= atol + rtol * maxw)) {
        print_error("%s: n=%zu max_abs=%.3g (rel %.3g) at [%zu]: got %.9g want %.9g\n", label,
                    n, maxe, maxw > 0 ? maxe / maxw : maxe, worst, (double)got[worst],
                    want[worst]);
        fail();
    }
}

static void check_exact(const char *label, const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            print_error("%s: [%zu] got %.9g want %.9g\n", label, i, (double)got[i],
                        (double)want[i]);
            fail();
        }
    }
}

// ----------------------------------------------------------------------------
// linear

static void ref_linear(double *y, const float *x, const float *w, const float *b, int N,
                       int Cin, int Cout) {
    for (int i = 0; i < N; i++)
        for (int o = 0; o < Cout; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < Cin; k++) s += (double)x[i * Cin + k] * w[o * Cin + k];
            y[i * Cout + o] = s;
        }
}

static void test_linear(void **state) {
    int N = 7, Cin = 13, Cout = 5;
    float *x = rand_buf((size_t)N * Cin, -1, 1), *w = rand_buf((size_t)Cout * Cin, -1, 1);
    float *b = rand_buf(Cout, -1, 1), *y = fbuf((size_t)N * Cout);
    double *want = dbuf((size_t)N * Cout);
    linear_forward(y, x, w, b, N, Cin, Cout);
    ref_linear(want, x, w, b, N, Cin, Cout);
    check_close("linear+bias", y, want, (size_t)N * Cout, 1e-6, 1e-7);
    // Without bias the output must not depend on what y held before.
    for (int i = 0; i < N * Cout; i++) y[i] = 1e30f;
    linear_forward(y, x, w, NULL, N, Cin, Cout);
    ref_linear(want, x, w, NULL, N, Cin, Cout);
    check_close("linear nobias", y, want, (size_t)N * Cout, 1e-6, 1e-7);
    free(x), free(w), free(b), free(y), free(want);
    // Both paths of blas_linear: y^T = W x^T up to 128 rows, the direct GEMM above.
    for (int t = 0; t < 2; t++) {
        int M = t ? 300 : 128, K = 33, Nn = 70;
        x = rand_buf((size_t)M * K, -1, 1), w = rand_buf((size_t)Nn * K, -1, 1), b = rand_buf(Nn, -1, 1);
        y = fbuf((size_t)M * Nn), want = dbuf((size_t)M * Nn);
        linear_forward(y, x, w, b, M, K, Nn);
        ref_linear(want, x, w, b, M, K, Nn);
        check_close(t ? "linear 300 rows" : "linear 128 rows", y, want, (size_t)M * Nn, 1e-6, 1e-7);
        free(x), free(w), free(b), free(y), free(want);
    }
}

// ----------------------------------------------------------------------------
// layernorm

static void ref_layernorm(double *y, const float *x, const float *w, const float *b, int N,
                          int C, double eps) {
    for (int i = 0; i < N; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += x[i * C + j];
        m /= C;
        for (int j = 0; j < C; j++) v += (x[i * C + j] - m) * (x[i * C + j] - m);
        v /= C;
        for (int j = 0; j < C; j++) {
            double t = (x[i * C + j] - m) / sqrt(v + eps);
            if (w) t *= w[j];
            if (b) t += b[j];
            y[i * C + j] = t;
        }
    }
}

static void test_layernorm(void **state) {
    int N = 5, C = 37;
    size_t n = (size_t)N * C;
    float *x = rand_buf(n, -3, 3), *w = rand_buf(C, 0.5, 1.5), *b = rand_buf(C, -1, 1);
    float *y = fbuf(n);
    double *want = dbuf(n);

    layernorm_forward(y, x, w, b, N, C, 1e-6f);
    ref_layernorm(want, x, w, b, N, C, 1e-6);
    check_close("layernorm affine", y, want, n, 2e-7, 0);

    layernorm_forward(y, x, NULL, NULL, N, C, 1e-5f);
    ref_layernorm(want, x, NULL, NULL, N, C, 1e-5);
    check_close("layernorm plain", y, want, n, 2e-7, 0);

    layernorm_forward(y, x, w, NULL, N, C, 1e-6f);
    ref_layernorm(want, x, w, NULL, N, C, 1e-6);
    check_close("layernorm weight only", y, want, n, 2e-7, 0);

    // In place.
    float *xc = fbuf(n);
    memcpy(xc, x, n * sizeof(float));
    layernorm_forward(xc, xc, w, b, N, C, 1e-6f);
    ref_layernorm(want, x, w, b, N, C, 1e-6);
    check_close("layernorm in-place", xc, want, n, 2e-7, 0);

    // Rows with a large common offset: a float E[x^2]-E[x]^2 would lose the variance.
    for (size_t i = 0; i < n; i++) xc[i] = 1000.0f + x[i] * 1e-2f;
    layernorm_forward(y, xc, w, b, N, C, 1e-6f);
    ref_layernorm(want, xc, w, b, N, C, 1e-6);
    check_close("layernorm offset 1000", y, want, n, 1e-6, 0);

    // C = 1: x - mean is 0, so the output is exactly the bias (or 0).
    float one[3] = {5.0f, -2.0f, 1e6f}, o1[3], w1 = 3.0f, b1 = 0.25f;
    layernorm_forward(o1, one, &w1, &b1, 3, 1, 1e-6f);
    for (int i = 0; i < 3; i++) assert_true(o1[i] == 0.25f);
    layernorm_forward(o1, one, NULL, NULL, 3, 1, 1e-6f);
    for (int i = 0; i < 3; i++) assert_true(o1[i] == 0.0f);

    free(x), free(w), free(b), free(y), free(want), free(xc);
}

// add_layernorm_forward is x += r then layernorm_forward, bit for bit, with out == r (as
// MAR's blocks call it) and out apart; row lengths with and without a vector remainder.
static void test_add_layernorm(void **state) {
    (void)state;
    const int Cs[] = {37, 64, 768};
    for (int k = 0; k < 3; k++) {
        int N = 9, C = Cs[k];
        size_t n = (size_t)N * C;
        float *x = rand_buf(n, -3, 3), *r = rand_buf(n, -2, 2), *w = rand_buf(C, 0.5, 1.5), *b = rand_buf(C, -1, 1);
        float *xa = fbuf(n), *xb = fbuf(n), *ya = fbuf(n), *rb = fbuf(n), *yc = fbuf(n);
        memcpy(xa, x, n * sizeof(float));
        for (size_t i = 0; i < n; i++) xa[i] += r[i];
        layernorm_forward(ya, xa, w, b, N, C, 1e-6f);
        memcpy(xb, x, n * sizeof(float));
        memcpy(rb, r, n * sizeof(float));
        add_layernorm_forward(rb, xb, rb, w, b, N, C, 1e-6f);  // out == r
        assert_memory_equal(xb, xa, n * sizeof(float));
        assert_memory_equal(rb, ya, n * sizeof(float));
        memcpy(xb, x, n * sizeof(float));
        add_layernorm_forward(yc, xb, r, NULL, NULL, N, C, 1e-6f);
        layernorm_forward(ya, xa, NULL, NULL, N, C, 1e-6f);
        assert_memory_equal(xb, xa, n * sizeof(float));
        assert_memory_equal(yc, ya, n * sizeof(float));
        free(x), free(r), free(w), free(b), free(xa), free(xb), free(ya), free(rb), free(yc);
    }
}

// ----------------------------------------------------------------------------
// groupnorm

static void ref_groupnorm(double *y, const float *x, const float *w, const float *b, int N,
                          int C, int HW, int G, double eps) {
    int cpg = C / G;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const float *xs = x + ((size_t)n * C + (size_t)g * cpg) * HW;
            size_t m_ = (size_t)cpg * HW;
            double m = 0, v = 0;
            for (size_t i = 0; i < m_; i++) m += xs[i];
            m /= m_;
            for (size_t i = 0; i < m_; i++) v += (xs[i] - m) * (xs[i] - m);
            v /= m_;
            for (int cc = 0; cc < cpg; cc++) {
                int ch = g * cpg + cc;
                for (int k = 0; k < HW; k++) {
                    size_t idx = ((size_t)n * C + ch) * HW + k;
                    double t = (x[idx] - m) / sqrt(v + eps);
                    y[idx] = t * (w ? w[ch] : 1.0) + (b ? b[ch] : 0.0);
                }
            }
        }
}

static void test_groupnorm(void **state) {
    int N = 2, C = 6, HW = 15;
    size_t n = (size_t)N * C * HW;
    float *x = rand_buf(n, -2, 4), *w = rand_buf(C, 0.5, 1.5), *b = rand_buf(C, -1, 1);
    float *y = fbuf(n);
    double *want = dbuf(n);
    int groups[3] = {3, 1, 6};
    for (int t = 0; t < 3; t++) {
        groupnorm_forward(y, x, w, b, N, C, HW, groups[t], 1e-6f);
        ref_groupnorm(want, x, w, b, N, C, HW, groups[t], 1e-6);
        check_close("groupnorm", y, want, n, 2e-7, 0);
    }
    groupnorm_forward(y, x, NULL, NULL, N, C, HW, 2, 1e-5f);
    ref_groupnorm(want, x, NULL, NULL, N, C, HW, 2, 1e-5);
    check_close("groupnorm no affine", y, want, n, 2e-7, 0);
    // In place, with an offset that punishes single-pass float statistics.
    float *xc = fbuf(n);
    for (size_t i = 0; i < n; i++) xc[i] = 300.0f + x[i];
    ref_groupnorm(want, xc, w, b, N, C, HW, 3, 1e-6);
    groupnorm_forward(xc, xc, w, b, N, C, HW, 3, 1e-6f);
    check_close("groupnorm in-place offset", xc, want, n, 1e-6, 0);
    free(x), free(w), free(b), free(y), free(want), free(xc);
}

// ----------------------------------------------------------------------------
// activations

static void test_activations(void **state) {
    enum { n = 1001 };
    float *x = rand_buf(n, -10, 10), *y = fbuf(n);
    double *want = dbuf(n);
    // Extremes: saturation of erf and exp, and exact zeros.
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 100.0f, x[3] = -100.0f, x[4] = 1e-30f, x[5] = -6.0f;

    gelu_forward(y, x, n);
    // erfc form of 0.5 x (1 + erf(x/sqrt2)): exact in double also where 1 + erf cancels.
    for (int i = 0; i < n; i++) want[i] = 0.5 * x[i] * erfc(-x[i] / sqrt(2.0));
    check_close("gelu", y, want, n, 1e-6, 0);
    // Elementwise too: tiny outputs for x << 0 keep their relative accuracy (1 + erff
    // would cancel to 0 or one ulp of 1 there). The bound is the float rounding of the
    // argument x/sqrt2 amplified by erfc's slope, ~2 z^2 * 6e-8 at z = 7; 1e-40 covers
    // denormal results.
    for (int i = 0; i < n; i++) assert_true(fabs(y[i] - want[i]) <= 2e-5 * fabs(want[i]) + 1e-40);

    silu_forward(y, x, n);
    for (int i = 0; i < n; i++) want[i] = x[i] / (1.0 + exp(-(double)x[i]));
    check_close("silu", y, want, n, 1e-6, 0);
    assert_true(y[3] == 0.0f);  // -100 * sigmoid(-100) underflows to -0

    relu_forward(y, x, n);
    for (int i = 0; i < n; i++) assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));

    // In place, and NaN passes through relu as in torch.
    float z[4] = {-1.0f, 2.0f, NAN, -0.5f};
    relu_forward(z, z, 4);
    assert_true(z[0] == 0.0f && z[1] == 2.0f && isnan(z[2]) && z[3] == 0.0f);
    float g[2] = {1.0f, -1.0f};
    gelu_forward(g, g, 2);
    assert_true(fabs(g[0] - 0.8413447460685429) < 1e-7 && fabs(g[1] + 0.15865525393145707) < 1e-7);
    free(x), free(y), free(want);
}

// ----------------------------------------------------------------------------
// softmax

static void ref_softmax(double *y, const float *x, int N, int C) {
    for (int i = 0; i < N; i++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < C; j++) m = fmax(m, x[i * C + j]);
        for (int j = 0; j < C; j++) s += exp(x[i * C + j] - m);
        for (int j = 0; j < C; j++) y[i * C + j] = exp(x[i * C + j] - m) / s;
    }
}

static void test_softmax(void **state) {
    int N = 3, C = 11;
    size_t n = (size_t)N * C;
    float *x = rand_buf(n, -5, 5), *y = fbuf(n);
    double *want = dbuf(n);
    softmax_forward(y, x, N, C);
    ref_softmax(want, x, N, C);
    check_close("softmax", y, want, n, 1e-6, 0);
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int j = 0; j < C; j++) s += y[i * C + j];
        assert_true(fabs(s - 1.0) < 1e-6);
    }

    // Logits of magnitude 1e4: a naive exp overflows to inf and gives NaN.
    float big[2 * 5] = {1e4f, 1e4f - 1.0f, -1e4f, 9990.0f, 1e4f, -1e4f, -1e4f + 2.0f, -1e4f, -1e4f, -1e4f};
    double wb[10];
    ref_softmax(wb, big, 2, 5);
    softmax_forward(big, big, 2, 5);  // in place
    for (int i = 0; i < 10; i++) assert_true(isfinite(big[i]));
    check_close("softmax 1e4", big, wb, 10, 1e-6, 0);

    // One row sweeping the whole exp range, 0 down to -91: every element, even those
    // of 1e-38, keeps its relative accuracy; below FLT_MIN only an absolute 1e-38 is owed.
    // The float x - max rounds by up to |x - max| * 2^-24, which exp turns into that much
    // relative error (as in torch's float softmax), hence the growing bound.
    enum { R = 203 };
    float ramp[R], ro[R];
    double rw[R];
    for (int j = 0; j < R; j++) ramp[j] = 5.0f - 0.45f * (float)j;
    ref_softmax(rw, ramp, 1, R);
    softmax_forward(ro, ramp, 1, R);
    for (int j = 0; j < R; j++) {
        double tol = (4e-7 + 6e-8 * (ramp[0] - ramp[j])) * rw[j] + 1e-38;
        assert_true(fabs(ro[j] - rw[j]) <= tol);
    }

    // C = 1 is always exactly 1.
    float one[2] = {-3e4f, 7.0f};
    softmax_forward(one, one, 2, 1);
    assert_true(one[0] == 1.0f && one[1] == 1.0f);
    free(x), free(y), free(want);
}

// ----------------------------------------------------------------------------
// attention

// Heads side by side on two threads: the same bits as one thread, the exact FLOP count
// on the caller's counter, and OpenBLAS's thread count restored.
static void test_attention_threads(void **state) {
    int B = 3, T = 40, d = 64, H = 4, hd = d / H;
    size_t nq = (size_t)B * T * 3 * d, no = (size_t)B * T * d;
    float *qkv = rand_buf(nq, -2, 2), *y1 = fbuf(no), *y2 = fbuf(no);
    float *scratch = fbuf(attention_scratch_floats(T, d, H));
    int threads = blas_get_threads();
    blas_set_threads(1);
    attention_forward(y1, qkv, scratch, B, T, d, H);
    blas_set_threads(2);
    uint64_t f0 = blas_flops();
    attention_forward(y2, qkv, scratch, B, T, d, H);
    assert_int_equal(blas_flops() - f0, (uint64_t)B * H * 4 * T * T * hd);
    assert_int_equal(blas_get_threads(), 2);
    assert_memory_equal(y1, y2, sizeof(float) * no);
    blas_set_threads(threads);
    free(qkv), free(y1), free(y2), free(scratch);
}

static void test_attention(void **state) {
    int B = 2, T = 7, d = 12, H = 3, hd = d / H;
    size_t nq = (size_t)B * T * 3 * d, no = (size_t)B * T * d;
    float *qkv = rand_buf(nq, -2, 2), *y = fbuf(no);
    double *want = dbuf(no);
    size_t ns = attention_scratch_floats(T, d, H);
    assert_true(ns >= (size_t)T * T);
    float *scratch = fbuf(ns);
    attention_forward(y, qkv, scratch, B, T, d, H);

    double s[7 * 7];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *base = qkv + (size_t)b * T * 3 * d;
            for (int i = 0; i < T; i++) {
                double m = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    double dot = 0;
                    for (int k = 0; k < hd; k++)
                        dot += (double)base[i * 3 * d + h * hd + k] * base[j * 3 * d + d + h * hd + k];
                    s[i * T + j] = dot / sqrt((double)hd);
                    m = fmax(m, s[i * T + j]);
                }
                for (int j = 0; j < T; j++) sum += (s[i * T + j] = exp(s[i * T + j] - m));
                for (int k = 0; k < hd; k++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += s[i * T + j] / sum * base[j * 3 * d + 2 * d + h * hd + k];
                    want[((size_t)b * T + i) * d + h * hd + k] = o;
                }
            }
        }
    check_close("attention", y, want, no, 1e-6, 0);

    // One head over the full width: the same kernel, different slicing.
    attention_forward(y, qkv, scratch, B, T, d, 1);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            const float *base = qkv + (size_t)b * T * 3 * d;
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < T; j++) {
                double dot = 0;
                for (int k = 0; k < d; k++) dot += (double)base[i * 3 * d + k] * base[j * 3 * d + d + k];
                s[j] = dot / sqrt((double)d);
                m = fmax(m, s[j]);
            }
            for (int j = 0; j < T; j++) sum += (s[j] = exp(s[j] - m));
            for (int k = 0; k < d; k++) {
                double o = 0;
                for (int j = 0; j < T; j++) o += s[j] / sum * base[j * 3 * d + 2 * d + k];
                want[((size_t)b * T + i) * d + k] = o;
            }
        }
    check_close("attention 1 head", y, want, no, 1e-6, 0);
    free(qkv), free(y), free(want), free(scratch);
}

// ----------------------------------------------------------------------------
// conv2d

static void ref_conv2d(double *y, const float *x, const float *w, const float *b, int N,
                       int Cin, int H, int W, int Cout, int kh, int kw, int sh, int sw,
                       int ph, int pw) {
    int OH = (H + 2 * ph - kh) / sh + 1, OW = (W + 2 * pw - kw) / sw + 1;
    for (int n = 0; n < N; n++)
        for (int co = 0; co < Cout; co++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double s = b ? b[co] : 0.0;
                    for (int ci = 0; ci < Cin; ci++)
                        for (int i = 0; i < kh; i++)
                            for (int j = 0; j < kw; j++) {
                                int iy = oy * sh - ph + i, ix = ox * sw - pw + j;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += (double)x[(((size_t)n * Cin + ci) * H + iy) * W + ix] *
                                     w[(((size_t)co * Cin + ci) * kh + i) * kw + j];
                            }
                    y[(((size_t)n * Cout + co) * OH + oy) * OW + ox] = s;
                }
}

// Runs one configuration; the scratch carries a guard tail that must stay untouched.
static void run_conv(const char *label, int N, int Cin, int H, int W, int Cout, int kh,
                     int kw, int sh, int sw, int ph, int pw, int with_bias) {
    int OH = conv2d_out_size(H, kh, sh, ph), OW = conv2d_out_size(W, kw, sw, pw);
    assert_int_equal(OH, (H + 2 * ph - kh) / sh + 1);
    size_t nx = (size_t)N * Cin * H * W, nw = (size_t)Cout * Cin * kh * kw;
    size_t ny = (size_t)N * Cout * OH * OW;
    float *x = rand_buf(nx, -1, 1), *w = rand_buf(nw, -1, 1), *b = rand_buf(Cout, -1, 1);
    float *y = fbuf(ny);
    for (size_t i = 0; i < ny; i++) y[i] = NAN;  // output must be fully written
    double *want = dbuf(ny);
    size_t ns = conv2d_scratch_floats(Cin, H, W, kh, kw, sh, sw, ph, pw);
    enum { GUARD = 64 };
    float *scratch = fbuf(ns + GUARD);
    for (int i = 0; i < GUARD; i++) scratch[ns + i] = 12345.0f;
    conv2d_forward(y, x, w, with_bias ? b : NULL, scratch, N, Cin, H, W, Cout, kh, kw, sh,
                   sw, ph, pw);
    for (int i = 0; i < GUARD; i++) assert_true(scratch[ns + i] == 12345.0f);
    ref_conv2d(want, x, w, with_bias ? b : NULL, N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw);
    check_close(label, y, want, ny, 1e-6, 0);
    free(x), free(w), free(b), free(y), free(want), free(scratch);
}

static void test_conv2d(void **state) {
    run_conv("conv 3x3 s1 p1", 2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1);
    run_conv("conv 3x3 s2 p1", 2, 3, 7, 9, 5, 3, 3, 2, 2, 1, 1, 1);
    run_conv("conv 3x2 s(2,1) p(1,0)", 1, 4, 9, 8, 3, 3, 2, 2, 1, 1, 0, 1);
    run_conv("conv 1x5 s(1,3) p(0,2) nobias", 2, 2, 5, 11, 3, 1, 5, 1, 3, 0, 2, 0);
    run_conv("conv 3x3 s2 p0 (inception stem)", 1, 3, 13, 11, 4, 3, 3, 2, 2, 0, 0, 1);
    run_conv("conv 5x5 p2", 1, 3, 6, 7, 2, 5, 5, 1, 1, 2, 2, 1);
    run_conv("conv pad > kernel/2", 1, 2, 4, 5, 3, 2, 2, 1, 1, 2, 2, 1);
    // Kernel as large as the padded input: a single output pixel.
    run_conv("conv full window", 1, 2, 3, 4, 3, 5, 6, 1, 1, 1, 1, 1);
    // 1x1: the GEMM-only path (no scratch), with and without bias; 1x1 with stride or
    // padding must still take im2col.
    assert_int_equal(conv2d_scratch_floats(5, 7, 9, 1, 1, 1, 1, 0, 0), 0);
    run_conv("conv 1x1", 3, 5, 7, 9, 6, 1, 1, 1, 1, 0, 0, 1);
    run_conv("conv 1x1 nobias", 1, 5, 3, 1, 7, 1, 1, 1, 1, 0, 0, 0);
    assert_true(conv2d_scratch_floats(5, 7, 9, 1, 1, 2, 2, 0, 0) > 0);
    run_conv("conv 1x1 s2", 2, 5, 7, 9, 3, 1, 1, 2, 2, 0, 0, 1);
    run_conv("conv 1x1 p1", 1, 3, 4, 5, 2, 1, 1, 1, 1, 1, 1, 1);
    // Large enough that the col matrix is built in several bands of output rows
    // (64*9*129 floats per row, 16 MB cap): band edges must not drop or repeat rows.
    size_t ns = conv2d_scratch_floats(64, 131, 129, 3, 3, 1, 1, 1, 1);
    assert_true(ns < (size_t)64 * 9 * 131 * 129);
    run_conv("conv banded", 1, 64, 131, 129, 3, 3, 3, 1, 1, 1, 1, 1);
}

// ----------------------------------------------------------------------------
// upsample, pooling

static void test_upsample(void **state) {
    int N = 2, C = 3, H = 3, W = 5;
    size_t n = (size_t)N * C * H * W;
    float *x = rand_buf(n, -1, 1), *y = fbuf(4 * n), *want = fbuf(4 * n);
    for (int p = 0; p < N * C; p++)
        for (int oy = 0; oy < 2 * H; oy++)
            for (int ox = 0; ox < 2 * W; ox++)
                want[((size_t)p * 2 * H + oy) * 2 * W + ox] = x[((size_t)p * H + oy / 2) * W + ox / 2];
    upsample_nearest2x_forward(y, x, N, C, H, W);
    check_exact("upsample", y, want, 4 * n);
    free(x), free(y), free(want);
}

static void ref_pool(double *y, const float *x, int P, int H, int W, int kh, int kw, int sh,
                     int sw, int ph, int pw, int mode /*0 avg excl, 1 avg incl, 2 max*/) {
    int OH = (H + 2 * ph - kh) / sh + 1, OW = (W + 2 * pw - kw) / sw + 1;
    for (int p = 0; p < P; p++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double s = 0, m = -INFINITY;
                int cnt = 0, cnt_pad = 0;
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++) {
                        int iy = oy * sh - ph + i, ix = ox * sw - pw + j;
                        // torch counts padded positions, but not past the padded border.
                        if (iy < H + ph && ix < W + pw) cnt_pad++;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        double v = x[((size_t)p * H + iy) * W + ix];
                        s += v, cnt++, m = fmax(m, v);
                    }
                double r = mode == 2 ? m : s / (mode == 1 ? cnt_pad : cnt);
                y[((size_t)p * OH + oy) * OW + ox] = r;
            }
}

static void run_pool(const char *label, int mode, int N, int C, int H, int W, int kh,
                     int kw, int sh, int sw, int ph, int pw, double lo, double hi) {
    int OH = conv2d_out_size(H, kh, sh, ph), OW = conv2d_out_size(W, kw, sw, pw);
    size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * OH * OW;
    float *x = rand_buf(nx, lo, hi), *y = fbuf(ny);
    double *want = dbuf(ny);
    if (mode == 2)
        maxpool2d_forward(y, x, N, C, H, W, kh, kw, sh, sw, ph, pw);
    else
        avgpool2d_forward(y, x, N, C, H, W, kh, kw, sh, sw, ph, pw, mode);
    ref_pool(want, x, N * C, H, W, kh, kw, sh, sw, ph, pw, mode);
    check_close(label, y, want, ny, mode == 2 ? 0 : 1e-6, 0);
    free(x), free(y), free(want);
}

static void test_avgpool(void **state) {
    // Inception's FID blocks: 3x3 s1 p1 without padding counts.
    run_pool("avgpool 3x3 p1 excl", 0, 2, 3, 7, 9, 3, 3, 1, 1, 1, 1, -1, 1);
    run_pool("avgpool 3x3 p1 incl", 1, 2, 3, 7, 9, 3, 3, 1, 1, 1, 1, -1, 1);
    run_pool("avgpool 2x3 s(2,1) p(1,1) excl", 0, 1, 2, 7, 6, 2, 3, 2, 1, 1, 1, -1, 1);
    run_pool("avgpool 2x3 s(2,1) p(1,1) incl", 1, 1, 2, 7, 6, 2, 3, 2, 1, 1, 1, -1, 1);
    run_pool("avgpool 3x3 s2 p0", 0, 1, 3, 9, 7, 3, 3, 2, 2, 0, 0, -1, 1);
    // Stride 2 leaving the last window short of the padded border (clipped divisor).
    run_pool("avgpool 3x3 s2 p1 incl", 1, 1, 1, 6, 6, 3, 3, 2, 2, 1, 1, -1, 1);

    // Hand-checked corner: 2x2 of ones, 3x3 p1 -> every window holds 4 ones of 9.
    float ones[4] = {1, 1, 1, 1}, o[4];
    avgpool2d_forward(o, ones, 1, 1, 2, 2, 3, 3, 1, 1, 1, 1, 0);
    for (int i = 0; i < 4; i++) assert_true(o[i] == 1.0f);
    avgpool2d_forward(o, ones, 1, 1, 2, 2, 3, 3, 1, 1, 1, 1, 1);
    for (int i = 0; i < 4; i++) assert_true(fabsf(o[i] - 4.0f / 9.0f) < 1e-7f);
}

static void test_maxpool(void **state) {
    run_pool("maxpool 3x3 s2", 2, 2, 3, 9, 11, 3, 3, 2, 2, 0, 0, -1, 1);
    // All-negative input: padding must act as -inf, not 0.
    run_pool("maxpool 3x3 s2 p1 negative", 2, 1, 2, 7, 8, 3, 3, 2, 2, 1, 1, -5, -1);
    run_pool("maxpool 2x3 s(1,2) p(1,1)", 2, 1, 2, 5, 7, 2, 3, 1, 2, 1, 1, -3, -1);
    float x[4] = {1.0f, NAN, 3.0f, 2.0f}, y[1];
    maxpool2d_forward(y, x, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0);
    assert_true(isnan(y[0]));
}

static void test_adaptive_avgpool(void **state) {
    int N = 2, C = 3, HW = 17;
    float *x = rand_buf((size_t)N * C * HW, -1, 3), y[6];
    double want[6];
    for (int p = 0; p < N * C; p++) {
        double s = 0;
        for (int i = 0; i < HW; i++) s += x[p * HW + i];
        want[p] = s / HW;
    }
    adaptive_avgpool_1x1(y, x, N, C, HW);
    check_close("adaptive_avgpool_1x1", y, want, 6, 1e-7, 0);
    free(x);
}

// ----------------------------------------------------------------------------
// resize_bilinear

// Direct transcription of torch's half-pixel rule in double.
static void ref_resize(double *y, const float *x, int P, int H, int W, int OH, int OW) {
    for (int p = 0; p < P; p++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double fy = fmax(0.0, (oy + 0.5) * H / OH - 0.5);
                double fx = fmax(0.0, (ox + 0.5) * W / OW - 0.5);
                int y0 = (int)floor(fy), x0 = (int)floor(fx);
                int y1 = y0 + 1 < H ? y0 + 1 : H - 1, x1 = x0 + 1 < W ? x0 + 1 : W - 1;
                double ly = fy - y0, lx = fx - x0;
                const float *s = x + (size_t)p * H * W;
                y[((size_t)p * OH + oy) * OW + ox] =
                    (1 - ly) * ((1 - lx) * s[y0 * W + x0] + lx * s[y0 * W + x1]) +
                    ly * ((1 - lx) * s[y1 * W + x0] + lx * s[y1 * W + x1]);
            }
}

static void run_resize(const char *label, int N, int C, int H, int W, int OH, int OW) {
    size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * OH * OW;
    float *x = rand_buf(nx, -1, 1), *y = fbuf(ny);
    double *want = dbuf(ny);
    resize_bilinear_forward(y, x, N, C, H, W, OH, OW);
    ref_resize(want, x, N * C, H, W, OH, OW);
    check_close(label, y, want, ny, 1e-6, 0);
    free(x), free(y), free(want);
}

static void test_resize_bilinear(void **state) {
    run_resize("resize up 5x7->11x13", 2, 3, 5, 7, 11, 13);
    run_resize("resize down 13x11->5x4", 1, 2, 13, 11, 5, 4);
    run_resize("resize mixed 6x9->10x4", 1, 3, 6, 9, 10, 4);
    run_resize("resize 1-pixel source", 1, 2, 1, 1, 3, 5);
    run_resize("resize 32->299", 1, 3, 32, 32, 299, 299);
    // Same size is the identity, bit for bit (every weight is 0 or 1).
    int n = 2 * 3 * 5 * 7;
    float *x = rand_buf(n, -1, 1), *y = fbuf(n);
    resize_bilinear_forward(y, x, 2, 3, 5, 7, 5, 7);
    check_exact("resize identity", y, x, n);
    // Exact 2x up: interior values are 3/4, 1/4 blends of neighbours.
    float r[2] = {0.0f, 4.0f}, o[4];
    resize_bilinear_forward(o, r, 1, 1, 1, 2, 1, 4);
    assert_true(o[0] == 0.0f && o[1] == 1.0f && o[2] == 3.0f && o[3] == 4.0f);
    free(x), free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_layernorm),       cmocka_unit_test(test_add_layernorm),
        cmocka_unit_test(test_groupnorm),       cmocka_unit_test(test_activations),
        cmocka_unit_test(test_softmax),         cmocka_unit_test(test_attention), cmocka_unit_test(test_attention_threads),
        cmocka_unit_test(test_conv2d),          cmocka_unit_test(test_upsample),
        cmocka_unit_test(test_avgpool),         cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_adaptive_avgpool), cmocka_unit_test(test_resize_bilinear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
