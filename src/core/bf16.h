// bf16.h: the oneDNN side of blas_linear's bf16 mode (bf16.c), used by blas.c only.
#ifndef DISA_CORE_BF16_H
#define DISA_CORE_BF16_H

// y = x W^T (+ bias) in bf16: 0, or -1 if it could not run (the caller falls back).
int blas_bf16_linear(float *y, const float *x, const float *W, const float *bias, int M, int K, int N);
// oneDNN's thread count, once it is loaded.
void blas_bf16_set_threads(int n);

#endif
