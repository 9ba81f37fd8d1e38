// tensor.c: strided views (include/disa/tensor.h).
#include "disa/tensor.h"
#include "disa/vec.h"

#include <stdio.h>

tensor tensor_view(float *data, int ndim, const int64_t *shape) {
    tensor t = {.data = data, .ndim = ndim};
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

int64_t tensor_numel(const tensor *t) { return shape_numel(t->ndim, t->shape); }

int tensor_is_contiguous(const tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

tensor tensor_narrow(tensor t, int dim, int64_t start, int64_t len) {
    t.data += start * t.stride[dim];
    t.shape[dim] = len;
    return t;
}

float *tensor_at(const tensor *t, const int64_t *idx) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += idx[i] * t->stride[i];
    return t->data + off;
}

char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t used = 0;
    used += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}

DISA_VEC
size_t tensor_first_nonfinite(const float *x, size_t n) {
    const uint32_t *u = (const uint32_t *)x;
    enum { BLK = 4096 };
    for (size_t i0 = 0; i0 < n; i0 += BLK) {
        size_t i1 = i0 + BLK < n ? i0 + BLK : n;
        uint32_t any = 0;
        for (size_t i = i0; i < i1; i++) any |= (u[i] & 0x7F800000u) == 0x7F800000u;
        if (!any) continue;
        for (size_t i = i0; i < i1; i++)
            if ((u[i] & 0x7F800000u) == 0x7F800000u) return i;
    }
    return n;
}
