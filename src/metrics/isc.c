// isc.c: Inception Score, streamed per split.
// Mirrors LTH14/torch-fidelity metric_isc.py: isc_features_to_metric (shuffle with
// RandomState(2020).permutation, float64 softmax, 10 splits, mean and population std)
// and guided-diffusion evaluator.py: compute_inception_score (contiguous splits of
// 5,000, no shuffle, mean only), DESIGN §9.
//
// Per split, mean_rows KL(p || q) with q = mean_rows p equals
//   (1/n) sum_rows sum_c p log p  -  sum_c q_c log q_c,
// so a split needs only the scalar sum of p log p and the vector sum of p: rows can
// arrive from any rank in any order and never be held. p log p uses log_softmax as
// torch does (p = exp(log p)), so a p that underflows to 0 contributes 0.
// The ADM evaluator computes its softmax and logs in float32; here everything is
// float64 (the score differs by ~1e-6 relative).
#include "disa/metrics.h"
#include "disa/err.h"
#include "disa/mt19937.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int acc_alloc(isc_acc *a, int C, int64_t N, int splits) {
    memset(a, 0, sizeof *a);
    if (C < 1 || N < 1 || splits < 1 || N < splits)
        return disa_err(DISA_EINVAL, "inception score: need C >= 1 and N >= splits >= 1, got C %d, N %lld, splits %d",
                        C, (long long)N, splits);
    a->C = C;
    a->N = N;
    a->splits = splits;
    a->split_of = malloc((size_t)N * sizeof(int));
    // The per-split arrays share one zeroed block of 8-byte slots: count, size, ent, psum.
    _Static_assert(sizeof(int64_t) == sizeof(double), "one slot size for the per-split arrays");
    a->count = calloc((size_t)splits * (3 + (size_t)C), sizeof(int64_t));
    if (!a->split_of || !a->count) {
        isc_acc_free(a);
        return disa_err(DISA_ENOMEM, "inception score: out of memory for %lld rows", (long long)N);
    }
    a->size = a->count + splits;
    a->ent = (double *)(a->size + splits);
    a->psum = a->ent + splits;
    return 0;
}

int isc_acc_init_tf(isc_acc *a, int C, int64_t N, int splits, int shuffle, uint32_t seed) {
    int rc = acc_alloc(a, C, N, splits);
    if (rc) return rc;
    int64_t *perm = malloc((size_t)N * sizeof(int64_t));
    if (!perm) {
        isc_acc_free(a);
        return disa_err(DISA_ENOMEM, "inception score: out of memory for a permutation of %lld", (long long)N);
    }
    if (shuffle) mt19937_permutation(perm, N, seed);
    else
        for (int64_t i = 0; i < N; i++) perm[i] = i;
    // Position p of the shuffled order holds input row perm[p]; split s covers
    // positions [s N / splits, (s+1) N / splits) (Python floor division).
    for (int s = 0; s < splits; s++) {
        int64_t p0 = (int64_t)s * N / splits, p1 = (int64_t)(s + 1) * N / splits;
        a->size[s] = p1 - p0;
        for (int64_t p = p0; p < p1; p++) a->split_of[perm[p]] = s;
    }
    free(perm);
    return 0;
}

int isc_acc_init_adm(isc_acc *a, int C, int64_t N, int split_size) {
    if (split_size < 1) return disa_err(DISA_EINVAL, "inception score: split size must be >= 1, got %d", split_size);
    int splits = (int)((N + split_size - 1) / split_size);
    int rc = acc_alloc(a, C, N, splits < 1 ? 1 : splits);
    if (rc) return rc;
    for (int64_t i = 0; i < N; i++) a->split_of[i] = (int)(i / split_size);
    for (int s = 0; s < splits; s++) {
        int64_t e = (int64_t)(s + 1) * split_size;
        a->size[s] = (e < N ? e : N) - (int64_t)s * split_size;
    }
    return 0;
}

void isc_acc_free(isc_acc *a) {
    free(a->split_of);
    free(a->count);  // the per-split block
    memset(a, 0, sizeof *a);
}

int isc_acc_add(isc_acc *a, const float *logits, const int64_t *idx, int64_t first, int n) {
    const int C = a->C;
    for (int r = 0; r < n; r++) {
        int64_t i = idx ? idx[r] : first + r;
        if (i < 0 || i >= a->N)
            return disa_err(DISA_ERANGE, "inception score: row index %lld outside [0, %lld)", (long long)i,
                            (long long)a->N);
        const float *x = logits + (size_t)r * C;
        int s = a->split_of[i];
        // log_softmax in float64: x - max - log(sum exp(x - max)).
        double mx = -INFINITY;
        for (int c = 0; c < C; c++)
            if (x[c] > mx) mx = x[c];
        double z = 0;
        for (int c = 0; c < C; c++) z += exp((double)x[c] - mx);
        double lz = log(z), e = 0;
        double *ps = a->psum + (size_t)s * C;
        for (int c = 0; c < C; c++) {
            double lp = (double)x[c] - mx - lz, p = exp(lp);
            e += p * lp;
            ps[c] += p;
        }
        a->ent[s] += e;
        a->count[s]++;
    }
    return 0;
}

int isc_acc_merge(isc_acc *dst, const isc_acc *src) {
    if (dst->C != src->C || dst->N != src->N || dst->splits != src->splits)
        return disa_err(DISA_ESHAPE, "inception score: merging accumulators of different layouts");
    for (int s = 0; s < dst->splits; s++) {
        dst->count[s] += src->count[s];
        dst->ent[s] += src->ent[s];
        for (int c = 0; c < dst->C; c++) dst->psum[(size_t)s * dst->C + c] += src->psum[(size_t)s * dst->C + c];
    }
    return 0;
}

void isc_acc_spans(isc_acc *a, metric_span *out) {
    size_t sp = (size_t)a->splits, C = (size_t)a->C;
    out[0] = (metric_span){SPAN_I64, a->count, sp, sp};
    out[1] = (metric_span){SPAN_F64, a->ent, sp, sp};
    out[2] = (metric_span){SPAN_F64, a->psum, sp * C, C};
}

int isc_acc_result(const isc_acc *a, double *mean, double *std) {
    double sum = 0, sq = 0;
    double *score = malloc((size_t)a->splits * sizeof(double));
    if (!score) return disa_err(DISA_ENOMEM, "inception score: out of memory");
    for (int s = 0; s < a->splits; s++) {
        if (a->count[s] != a->size[s]) {
            free(score);
            return disa_err(DISA_ERANGE, "inception score: split %d got %lld of its %lld rows", s,
                            (long long)a->count[s], (long long)a->size[s]);
        }
        double n = (double)a->count[s], qlq = 0;
        const double *ps = a->psum + (size_t)s * a->C;
        for (int c = 0; c < a->C; c++) {
            double q = ps[c] / n;
            if (q > 0) qlq += q * log(q);
        }
        score[s] = exp(a->ent[s] / n - qlq);
        sum += score[s];
    }
    double m = sum / a->splits;
    for (int s = 0; s < a->splits; s++) sq += (score[s] - m) * (score[s] - m);
    *mean = m;
    if (std) *std = sqrt(sq / a->splits);  // np.std: population (ddof 0)
    free(score);
    return 0;
}

// Rows logits[N, C] in input order into a (initialised), then the score; frees a.
static int isc_stream(isc_acc *a, double *mean, double *std, const float *logits, int64_t N, int C) {
    int rc = 0;
    for (int64_t r0 = 0; r0 < N && rc == 0; r0 += 4096) {
        int n = N - r0 < 4096 ? (int)(N - r0) : 4096;
        rc = isc_acc_add(a, logits + (size_t)r0 * C, NULL, r0, n);
    }
    if (rc == 0) rc = isc_acc_result(a, mean, std);
    isc_acc_free(a);
    return rc;
}

int isc_tf(double *mean, double *std, const float *logits, int64_t N, int C, int splits, int shuffle,
           uint32_t seed) {
    isc_acc a;
    int rc = isc_acc_init_tf(&a, C, N, splits, shuffle, seed);
    return rc ? rc : isc_stream(&a, mean, std, logits, N, C);
}

int isc_adm(double *mean, const float *logits, int64_t N, int C, int split_size) {
    isc_acc a;
    int rc = isc_acc_init_adm(&a, C, N, split_size);
    return rc ? rc : isc_stream(&a, mean, NULL, logits, N, C);
}
