// tensor.h: shape + strides over float*. Views never own their data.
#ifndef DISA_TENSOR_H
#define DISA_TENSOR_H
#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAXDIM 8

typedef struct tensor {
    float *data;
    int ndim;
    int64_t shape[TENSOR_MAXDIM];
    int64_t stride[TENSOR_MAXDIM];  // in elements
} tensor;

// Contiguous row-major view. ndim must be 0..TENSOR_MAXDIM.
tensor tensor_view(float *data, int ndim, const int64_t *shape);
int64_t tensor_numel(const tensor *t);
int tensor_is_contiguous(const tensor *t);
// Sub-range [start, start+len) along `dim` (shares data).
tensor tensor_narrow(tensor t, int dim, int64_t start, int64_t len);
// Element pointer for a full index.
float *tensor_at(const tensor *t, const int64_t *idx);
// "[2, 3, 4]" into buf; returns buf.
char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape);
int64_t shape_numel(int ndim, const int64_t *shape);
// Index of the first NaN or +-Inf in x[0..n), or n when all are finite. Runs at memory
// speed (branch-free blocks, vectorised): cheap enough for every weight at load and for
// the sampler's outputs at every step.
size_t tensor_first_nonfinite(const float *x, size_t n);

#endif
