// refstats.c: reference statistics files (include/disa/refstats.h).
#include "disa/refstats.h"
#include "disa/err.h"
#include "disa/image.h"

#include <stdlib.h>

// Array `name` of `path` as float64 of ndim 1 ([d]) or 2 ([d, d]) under the dtype policy.
static int read_f64(const char *path, const char *name, int ndim, int d, double **out) {
    npy_array a;
    *out = NULL;
    int rc = npz_read(&a, path, name);
    if (rc) return rc;
    size_t n = ndim == 1 ? (size_t)d : (size_t)d * d;
    if (a.ndim != ndim || a.shape[0] != d || (ndim == 2 && a.shape[1] != d)) {
        npy_free(&a);
        return disa_err(DISA_ESHAPE, "%s: '%s' must be %s of size %d (the feature net's width)", path, name,
                        ndim == 1 ? "a vector" : "a square matrix", d);
    }
    if (a.dtype != NPY_F64 && a.dtype != NPY_F32) {
        npy_free(&a);
        return disa_err(DISA_EFORMAT, "%s: '%s' must be float32 or float64", path, name);
    }
    double *v = malloc(sizeof(double) * n);
    if (!v) {
        npy_free(&a);
        return disa_err(DISA_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) v[i] = a.dtype == NPY_F64 ? ((double *)a.data)[i] : ((float *)a.data)[i];
    npy_free(&a);
    *out = v;
    return 0;
}

int refstats_read(const char *path, int D, double **mu, double **sigma) {
    *sigma = NULL;
    int rc = read_f64(path, "mu", 1, D, mu);
    if (!rc && (rc = read_f64(path, "sigma", 2, D, sigma)) != 0) {
        free(*mu);
        *mu = NULL;
    }
    return rc;
}

int refstats_check(const char *path, int D) {
    double *mu, *sigma;
    int rc = refstats_read(path, D, &mu, &sigma);
    free(mu);
    free(sigma);
    return rc;
}

int refstats_features(npy_array *a, const char *path, int D) {
    int rc = npz_read(a, path, "features");
    if (rc) return rc;
    if (a->dtype != NPY_F32 || a->ndim != 2 || a->shape[1] != D) {
        npy_free(a);
        return disa_err(DISA_ESHAPE, "%s: 'features' must be float32 [N, %d]", path, D);
    }
    return 0;
}

int refstats_write(const char *path, const double *mu, const double *sigma, int D, int64_t n, const float *feat,
                   const float *logits, int n_logits) {
    npz_entry e[5] = {
        {.name = "mu", .dtype = NPY_F64, .ndim = 1, .shape = {D}, .data = mu},
        {.name = "sigma", .dtype = NPY_F64, .ndim = 2, .shape = {D, D}, .data = sigma},
        {.name = "n", .dtype = NPY_I64, .ndim = 1, .shape = {1}, .data = &n},
        {.name = "features", .dtype = NPY_F32, .ndim = 2, .shape = {n, D}, .data = feat},
        {.name = "logits", .dtype = NPY_F32, .ndim = 2, .shape = {n, n_logits}, .data = logits},
    };
    return npz_write(path, e, feat ? 5 : 3);
}
