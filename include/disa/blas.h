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

// Precision of blas_linear on the calling thread: BLAS_FP32 (the default, OpenBLAS) or
// BLAS_BF16 (oneDNN matmul on bf16-rounded inputs and weights, fp32 accumulation and
// output; src/core/bf16.c). Other GEMMs (attention, convolutions) stay fp32. Returns the
// previous setting. Check blas_bf16_available() before asking for BLAS_BF16. While bf16
// is on, OpenBLAS runs on one thread (see blas.c).
enum { BLAS_FP32 = 0, BLAS_BF16 = 1 };
int blas_set_precision(int precision);
// 0 when bf16 Linear layers can run here (oneDNN loads, the CPU has AVX512_BF16),
// else DISA_EINVAL with a message saying why.
int blas_bf16_available(void);
// oneDNN's name of the ISA its bf16 matmuls run on ("avx512_core_bf16", "avx512_core_amx"),
// or "none" before blas_bf16_available() succeeded. Kernels differ per ISA, and so may
// the bits of a bf16 image.
const char *blas_bf16_isa(void);
// Drop the bf16 copies of weights (their fp32 source is about to be unmapped).
void blas_bf16_forget(void);

void blas_set_threads(int n);  // OpenBLAS and, once loaded, oneDNN
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
