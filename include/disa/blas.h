// blas.h: row-major sgemm over CBLAS (OpenBLAS), thread control, core name, FLOP count.
#ifndef DISA_BLAS_H
#define DISA_BLAS_H
#include <stdint.h>

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is A[M,K] (lda >= K) or, with transA, A stored [K,M] (lda >= M); same for B.
// Counts 2*M*N*K into the FLOP counter of the calling thread.
void blas_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta,
                float *C, int ldc);

// y[M,N] = x[M,K] * W[N,K]^T (+ bias[N]): the PyTorch Linear layout.
void blas_linear(float *y, const float *x, const float *W, const float *bias,
                 int M, int K, int N);

void blas_set_threads(int n);  // OpenBLAS and, once loaded, oneDNN (bf16.h)
// OpenBLAS's thread count alone, for a region whose GEMMs run side by side on par.h's
// threads (restore it after).
void blas_set_gemm_threads(int n);
int blas_get_threads(void);
// OpenBLAS's name for the kernel set in use ("SkylakeX", "Haswell", "Prescott", ...).
const char *blas_corename(void);
// The BLAS library and its version ("OpenBLAS 0.3.21"): kernels change between versions.
const char *blas_version(void);

// FLOPs (2 per multiply-add) performed through this module by the calling thread.
uint64_t blas_flops(void);
void blas_flops_reset(void);
// Count FLOPs of hand-written kernels (attention loops, convolutions done elsewhere).
void blas_flops_add(uint64_t n);

#endif
