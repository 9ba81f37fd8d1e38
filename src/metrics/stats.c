// stats.c: mergeable float64 feature statistics (count, sum, sum of outer products).
// Mirrors torch-fidelity metric_fid.py: fid_features_to_statistics (np.mean, np.cov
// with rowvar=False), pytorch-fid calculate_activation_statistics (DESIGN §9).
//
// A 50,000 x 2048 run never holds its features: each batch is widened to float64 and
// added with one dsyrk. torch-fidelity's mean is numpy's float32 mean (sequential
// float32 sums along axis 0); here it is the float64 mean, which is the exact value that
// float32 mean approximates (they differ by ~1e-7 relative, far below the FID noise).
#include "disa/metrics.h"
#include "disa/err.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

// Rows widened per dsyrk: big enough for a level-3 call, small next to dim x dim.
#define FSTATS_CHUNK 128

int fstats_init(fstats *s, int dim) {
    memset(s, 0, sizeof *s);
    if (dim < 1 || dim > 65536) return disa_err(DISA_EINVAL, "feature statistics: dim must be in [1, 65536], got %d", dim);
    // One block: sum [dim], then sxx [dim, dim], then buf [FSTATS_CHUNK, dim].
    size_t count = (size_t)dim * dim + (size_t)(FSTATS_CHUNK + 1) * dim;
    s->dim = dim;
    s->sum = calloc(count, sizeof(double));
    if (!s->sum)
        return disa_err(DISA_ENOMEM, "feature statistics: cannot allocate %zu bytes for dim %d",
                        count * sizeof(double), dim);
    s->sxx = s->sum + dim;
    s->buf = s->sxx + (size_t)dim * dim;
    return 0;
}

void fstats_free(fstats *s) {
    free(s->sum);  // the whole block
    memset(s, 0, sizeof *s);
}

void fstats_add(fstats *s, const float *x, int n) {
    const int d = s->dim;
    for (int r0 = 0; r0 < n; r0 += FSTATS_CHUNK) {
        int m = n - r0 < FSTATS_CHUNK ? n - r0 : FSTATS_CHUNK;
        const float *xs = x + (size_t)r0 * d;
        for (size_t i = 0; i < (size_t)m * d; i++) s->buf[i] = xs[i];
        for (int r = 0; r < m; r++)
            for (int j = 0; j < d; j++) s->sum[j] += s->buf[(size_t)r * d + j];
        // sxx[d, d] += buf^T buf (upper triangle); buf is [m, d] row-major.
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, m, 1.0, s->buf, d, 1.0, s->sxx, d);
    }
    s->n += n;
}

int fstats_merge(fstats *dst, const fstats *src) {
    if (dst->dim != src->dim)
        return disa_err(DISA_ESHAPE, "merging feature statistics of dim %d into dim %d", src->dim, dst->dim);
    const int d = dst->dim;
    for (int j = 0; j < d; j++) dst->sum[j] += src->sum[j];
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) dst->sxx[(size_t)i * d + j] += src->sxx[(size_t)i * d + j];
    dst->n += src->n;
    return 0;
}

int fstats_mu_sigma(const fstats *s, double *mu, double *sigma) {
    const int d = s->dim;
    if (s->n < 2)
        return disa_err(DISA_ERANGE, "feature statistics: need at least 2 features for a covariance, got %lld",
                        (long long)s->n);
    const double n = (double)s->n;
    for (int j = 0; j < d; j++) mu[j] = s->sum[j] / n;
    // sigma = (sum x x^T - n mu mu^T) / (n - 1): the centred sum written with sums only,
    // float64 keeps the cancellation harmless for features whose mean is not far above
    // their spread (Inception pool features: mean ~ std).
    for (int i = 0; i < d; i++) {
        for (int j = i; j < d; j++) {
            double v = (s->sxx[(size_t)i * d + j] - s->sum[i] * s->sum[j] / n) / (n - 1.0);
            sigma[(size_t)i * d + j] = v;
            sigma[(size_t)j * d + i] = v;
        }
    }
    return 0;
}

void fstats_spans(fstats *s, metric_span *out) {
    size_t d = (size_t)s->dim;
    out[0] = (metric_span){SPAN_I64, &s->n, 1, 1};
    out[1] = (metric_span){SPAN_F64, s->sum, d, d};
    out[2] = (metric_span){SPAN_F64, s->sxx, d * d, d};  // row by row: d * d may exceed an int count
}
