// blas.c: row-major sgemm wrapper over OpenBLAS's CBLAS, with FLOP counting.
#include "disa/blas.h"

#include <cblas.h>

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

void blas_linear(float *y, const float *x, const float *W, const float *bias, int M, int K, int N) {
    if (bias) {
        // Seed C with the bias so the GEMM adds into it (beta = 1): no second pass over y.
        for (int i = 0; i < M; i++) {
            float *row = y + (size_t)i * N;
            for (int j = 0; j < N; j++) row[j] = bias[j];
        }
    }
    blas_sgemm(0, 1, M, N, K, 1.0f, x, K, W, K, bias ? 1.0f : 0.0f, y, N);
}

void blas_set_threads(int n) { openblas_set_num_threads(n); }
int blas_get_threads(void) { return openblas_get_num_threads(); }
const char *blas_corename(void) { return openblas_get_corename(); }

uint64_t blas_flops(void) { return g_flops; }
void blas_flops_reset(void) { g_flops = 0; }
void blas_flops_add(uint64_t n) { g_flops += n; }
