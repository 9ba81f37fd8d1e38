// linear.c: torch.nn.functional.linear (nn.Linear.forward), y = x W^T + b.
//
// A thin name over blas_linear so model code reads like its PyTorch source; the GEMM
// (OpenBLAS, threaded) counts its own FLOPs.
#include "disa/nn.h"

#include "disa/blas.h"

void linear_forward(float *out /*[N,Cout]*/, const float *inp /*[N,Cin]*/,
                    const float *w /*[Cout,Cin]*/, const float *b /*[Cout] or NULL*/,
                    int N, int Cin, int Cout) {
    blas_linear(out, inp, w, b, N, Cin, Cout);
}
