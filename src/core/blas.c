// blas.c: row-major sgemm wrapper over OpenBLAS's CBLAS, with FLOP counting.
#include "disa/blas.h"
#include "bf16.h"
#include "disa/vec.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local uint64_t g_flops;

void blas_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        // BLAS leaves C untouched for K = 0 only when beta = 1; make the empty sum explicit.
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    g_flops += 2ull * (uint64_t)M * (uint64_t)N * (uint64_t)K;
}

// Row counts up to which blas_linear computes y^T = W x^T instead (see below).
enum { SMALL_M = 128 };

// Scratch for y^T, grown on demand and kept for the thread's life: the diffusion head
// calls blas_linear with few rows thousands of times per image.
static _Thread_local float *g_yt;
static _Thread_local size_t g_yt_cap;

static _Thread_local int g_precision = BLAS_FP32;

// OpenBLAS threads while bf16 is on, to restore after (0: not pinned).
static int g_pinned;

int blas_set_precision(int precision) {
    int old = g_precision;
    g_precision = precision;
    // In bf16 the Linears run on oneDNN's OpenMP threads; OpenBLAS (attention only) stays
    // on one thread so its idle workers do not spin against them (MAR-B batch 8, 2
    // threads: transformer 236 GFLOPS with both pools active, 279 with OpenBLAS on one).
    if (precision == BLAS_BF16 && !g_pinned && openblas_get_num_threads() > 1) {
        g_pinned = openblas_get_num_threads();
        openblas_set_num_threads(1);
    } else if (precision != BLAS_BF16 && g_pinned) {
        openblas_set_num_threads(g_pinned);
        g_pinned = 0;
    }
    return old;
}

DISA_VEC
void blas_linear(float *y, const float *x, const float *W, const float *bias, int M, int K, int N) {
    if (g_precision == BLAS_BF16 && M > 0 && N > 0 && K > 0) {
        if (blas_bf16_linear(y, x, W, bias, M, K, N) == 0) {
            g_flops += 2ull * (uint64_t)M * (uint64_t)N * (uint64_t)K;
            return;
        }
        // Out of memory for a weight copy or a primitive: this product runs in fp32.
        static _Thread_local int warned;
        if (!warned++) fprintf(stderr, "disa: warning: a bf16 Linear could not run (%dx%dx%d); using fp32 for it\n", M, K, N);
    }
    if (M > 0 && M <= SMALL_M && N > 0 && K > 0) {
        // With few rows OpenBLAS repacks the whole weight matrix for a handful of output
        // rows (measured on MAR-B-sized 1024x1024 weights, 1 thread, weights not in cache:
        // 20 GFLOPS at 8 rows, 68 at 64). Swapping the operands makes the weights the side
        // it streams: 29 / 79 GFLOPS, including the transpose back; from ~256 rows the
        // direct call is as fast or faster.
        size_t need = (size_t)M * (size_t)N;
        if (need > g_yt_cap) {
            float *p = realloc(g_yt, need * sizeof *p);
            if (p) {
                g_yt = p;
                g_yt_cap = need;
            }
        }
        if (need <= g_yt_cap) {
            blas_sgemm(0, 1, N, M, K, 1.0f, W, K, x, K, 0.0f, g_yt, M);
            // Transpose in column blocks so the strided reads stay in a few cache lines.
            enum { JB = 64 };
            for (int j0 = 0; j0 < N; j0 += JB) {
                int j1 = j0 + JB < N ? j0 + JB : N;
                for (int i = 0; i < M; i++) {
                    float *row = y + (size_t)i * N;
                    const float *col = g_yt + i;
                    if (bias)
                        for (int j = j0; j < j1; j++) row[j] = col[(size_t)j * M] + bias[j];
                    else
                        for (int j = j0; j < j1; j++) row[j] = col[(size_t)j * M];
                }
            }
            return;
        }
        // Out of memory for the scratch: the direct call below is slower, not wrong.
    }
    if (bias) {
        // Seed C with the bias so the GEMM adds into it (beta = 1): no second pass over y.
        for (int i = 0; i < M; i++) {
            float *row = y + (size_t)i * N;
            for (int j = 0; j < N; j++) row[j] = bias[j];
        }
    }
    blas_sgemm(0, 1, M, N, K, 1.0f, x, K, W, K, bias ? 1.0f : 0.0f, y, N);
}

void blas_set_threads(int n) {
    if (g_pinned) g_pinned = n;  // applies when bf16 ends
    else openblas_set_num_threads(n);
    blas_bf16_set_threads(n);
}
int blas_get_threads(void) { return g_pinned ? g_pinned : openblas_get_num_threads(); }
const char *blas_corename(void) { return openblas_get_corename(); }

const char *blas_version(void) {
    // openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": the first two words.
    static char v[48];
    if (!v[0]) {
        const char *c = openblas_get_config();
        int words = 0, n = 0;
        for (; c && c[n] && n < (int)sizeof v - 1; n++)
            if (c[n] == ' ' && ++words == 2) break;
        snprintf(v, sizeof v, "%.*s", n, c ? c : "");
        if (!v[0]) snprintf(v, sizeof v, "unknown");
    }
    return v;
}

uint64_t blas_flops(void) { return g_flops; }
void blas_flops_reset(void) { g_flops = 0; }
void blas_flops_add(uint64_t n) { g_flops += n; }
