// prc.c: improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls.
// Mirrors LTH14/torch-fidelity metric_prc.py: calculate_precision_recall_full with
// features_1 = reference (real) and features_2 = generated, neighborhood 3, and the
// guided-diffusion evaluator's ManifoldEstimator (nhood_sizes (3,), no clamping),
// DESIGN §9.
//
// The radius of a point is the (k+1)-th smallest distance to the points of its own set,
// itself included (kthvalue(k + 1), np.partition(..., k)): its k-th nearest neighbour.
// precision = share of generated points within the radius of some reference point,
// recall = share of reference points within the radius of some generated point.
// MAR's evaluation passes its generated folder as input1, which torch-fidelity treats
// as the real set, so precision and recall come out swapped there (LTH14/mar#91); the
// roles here are fixed by the argument names.
//
// Distances are compared squared (monotone): |x|^2 + |y|^2 - 2 x.y, norms in float64,
// x.y by sgemm on the float32 features (as torch.cdist's matmul path), clamped at 0.
// The ADM evaluator computes them in float16 when finite; ties at the ball boundary can
// therefore fall differently there.
#include "disa/metrics.h"
#include "disa/blas.h"
#include "disa/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Rows x columns of one distance block (4 MB of floats).
#define PRC_BLOCK 1024

static double *row_norms(const float *x, int64_t n, int D) {
    double *r = malloc((size_t)(n ? n : 1) * sizeof(double));
    if (!r) return NULL;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < D; j++) s += (double)x[(size_t)i * D + j] * x[(size_t)i * D + j];
        r[i] = s;
    }
    return r;
}

// dot[rb, cb] = a[r0:r0+rb] . b[c0:c0+cb]^T
static void block_dots(float *dot, const float *a, int64_t r0, int rb, const float *b, int64_t c0, int cb, int D) {
    blas_sgemm(0, 1, rb, cb, D, 1.0f, a + (size_t)r0 * D, D, b + (size_t)c0 * D, D, 0.0f, dot, cb);
}

// Squared k-NN radius of every point of x[n, D] within its own set: keeps the k+1
// smallest squared distances of each row (insertion into a sorted list).
static int knn_radii(double *rad2, const float *x, const double *nrm, int64_t n, int D, int k, float *dot) {
    double *best = malloc((size_t)PRC_BLOCK * (k + 1) * sizeof(double));
    if (!best) return DISA_ENOMEM;
    for (int64_t r0 = 0; r0 < n; r0 += PRC_BLOCK) {
        int rb = n - r0 < PRC_BLOCK ? (int)(n - r0) : PRC_BLOCK;
        for (size_t i = 0; i < (size_t)rb * (k + 1); i++) best[i] = INFINITY;
        for (int64_t c0 = 0; c0 < n; c0 += PRC_BLOCK) {
            int cb = n - c0 < PRC_BLOCK ? (int)(n - c0) : PRC_BLOCK;
            block_dots(dot, x, r0, rb, x, c0, cb, D);
            for (int r = 0; r < rb; r++) {
                double *bl = best + (size_t)r * (k + 1);
                for (int c = 0; c < cb; c++) {
                    double d2 = nrm[r0 + r] + nrm[c0 + c] - 2.0 * (double)dot[(size_t)r * cb + c];
                    if (r0 + r == c0 + c || d2 < 0) d2 = 0;  // itself at distance 0, as in cdist
                    if (d2 >= bl[k]) continue;
                    int p = k;
                    while (p > 0 && bl[p - 1] > d2) {
                        bl[p] = bl[p - 1];
                        p--;
                    }
                    bl[p] = d2;
                }
            }
        }
        for (int r = 0; r < rb; r++) rad2[r0 + r] = best[(size_t)r * (k + 1) + k];
    }
    free(best);
    return 0;
}

// Number of points of q[nq, D] inside some ball (centres c[nc, D], squared radii rad2).
static int64_t count_inside(const float *q, const double *qn, int64_t nq, const float *c, const double *cn,
                            const double *rad2, int64_t nc, int D, float *dot) {
    int64_t inside = 0;
    for (int64_t r0 = 0; r0 < nq; r0 += PRC_BLOCK) {
        int rb = nq - r0 < PRC_BLOCK ? (int)(nq - r0) : PRC_BLOCK;
        unsigned char hit[PRC_BLOCK] = {0};
        for (int64_t c0 = 0; c0 < nc; c0 += PRC_BLOCK) {
            int cb = nc - c0 < PRC_BLOCK ? (int)(nc - c0) : PRC_BLOCK;
            block_dots(dot, q, r0, rb, c, c0, cb, D);
            for (int r = 0; r < rb; r++) {
                if (hit[r]) continue;
                for (int j = 0; j < cb; j++) {
                    double d2 = qn[r0 + r] + cn[c0 + j] - 2.0 * (double)dot[(size_t)r * cb + j];
                    if (d2 < 0) d2 = 0;
                    if (d2 <= rad2[c0 + j]) {
                        hit[r] = 1;
                        break;
                    }
                }
            }
        }
        for (int r = 0; r < rb; r++) inside += hit[r];
    }
    return inside;
}

int prc_compute(double *precision, double *recall, const float *ref, int64_t Nr, const float *gen, int64_t Ng,
                int D, int k) {
    if (k < 1 || Nr <= k || Ng <= k || D < 1)
        return disa_err(DISA_EINVAL, "precision/recall: need k >= 1 and more than k points per set, got k %d, "
                        "%lld reference, %lld generated", k, (long long)Nr, (long long)Ng);
    int rc = 0;
    double *nr = row_norms(ref, Nr, D), *ng = row_norms(gen, Ng, D);
    double *rr = malloc((size_t)Nr * sizeof(double)), *rg = malloc((size_t)Ng * sizeof(double));
    float *dot = malloc((size_t)PRC_BLOCK * PRC_BLOCK * sizeof(float));
    if (!nr || !ng || !rr || !rg || !dot) {
        rc = disa_err(DISA_ENOMEM, "precision/recall: out of memory for %lld + %lld points", (long long)Nr,
                      (long long)Ng);
        goto fail;
    }
    if ((rc = knn_radii(rr, ref, nr, Nr, D, k, dot)) != 0 || (rc = knn_radii(rg, gen, ng, Ng, D, k, dot)) != 0) {
        rc = disa_err(rc, "precision/recall: out of memory");
        goto fail;
    }
    *precision = (double)count_inside(gen, ng, Ng, ref, nr, rr, Nr, D, dot) / (double)Ng;
    *recall = (double)count_inside(ref, nr, Nr, gen, ng, rg, Ng, D, dot) / (double)Nr;
fail:
    free(nr);
    free(ng);
    free(rr);
    free(rg);
    free(dot);
    return rc;
}
