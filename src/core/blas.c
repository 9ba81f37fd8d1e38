// blas.c: row-major sgemm wrapper over OpenBLAS's CBLAS, with FLOP counting.
#include "disa/blas.h"
#include "disa/bf16.h"
#include "disa/par.h"
#include "disa/vec.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

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

// The copies around the GEMM over the threads (par.h): y = yt^T (+ bias) by column blocks
// of JB, or y's rows seeded with the bias. Pure copies and one add per value, so any split
// gives the same values.
enum { JB = 64 };
typedef struct lin_ctx {
    float *y;
    const float *yt, *bias;
    int M, N;
} lin_ctx;

DISA_VEC
static void transpose_part(void *ctx, size_t lo, size_t hi) {
    const lin_ctx *l = ctx;
    const int M = l->M, N = l->N;
    const float *bias = l->bias;
    // Transpose in column blocks so the strided reads stay in a few cache lines.
    for (int j0 = (int)lo * JB; j0 < (int)hi * JB && j0 < N; j0 += JB) {
        int j1 = j0 + JB < N ? j0 + JB : N;
        for (int i = 0; i < M; i++) {
            float *row = l->y + (size_t)i * N;
            const float *col = l->yt + i;
            if (bias)
                for (int j = j0; j < j1; j++) row[j] = col[(size_t)j * M] + bias[j];
            else
                for (int j = j0; j < j1; j++) row[j] = col[(size_t)j * M];
        }
    }
}

static void seed_part(void *ctx, size_t lo, size_t hi) {
    const lin_ctx *l = ctx;
    for (size_t i = lo; i < hi; i++) memcpy(l->y + i * l->N, l->bias, sizeof(float) * (size_t)l->N);
}

void blas_linear(float *y, const float *x, const float *W, const float *bias, int M, int K, int N) {
    lin_ctx l = {y, g_yt, bias, M, N};
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
            l.yt = g_yt;
            par_for((size_t)(N + JB - 1) / JB, par_row_grain((size_t)M * JB), transpose_part, &l);
            return;
        }
        // Out of memory for the scratch: the direct call below is slower, not wrong.
    }
    // Seed C with the bias so the GEMM adds into it (beta = 1): no second pass over y.
    if (bias) par_for((size_t)M, par_row_grain((size_t)N), seed_part, &l);
    blas_sgemm(0, 1, M, N, K, 1.0f, x, K, W, K, bias ? 1.0f : 0.0f, y, N);
}

void blas_set_threads(int n) {
    openblas_set_num_threads(n);
    bf16_set_threads(n);
    par_set_threads(n);
}
void blas_set_gemm_threads(int n) { openblas_set_num_threads(n); }
int blas_get_threads(void) { return openblas_get_num_threads(); }
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
