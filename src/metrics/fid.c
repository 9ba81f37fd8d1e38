// fid.c: Frechet distance between two Gaussians, in the two forms the community uses.
// Mirrors LTH14/torch-fidelity (0.4.0-beta) metric_fid.py: fid_statistics_to_metric
// (eigenvalue form) and pytorch-fid fid_score.py / guided-diffusion evaluator.py:
// frechet_distance (scipy.linalg.sqrtm form, scipy 1.10 _matfuncs_sqrtm.py), DESIGN §9.
//
// Both need tr sqrt(s1 s2). For a product of two covariances the eigenvalues are real
// and >= 0 in exact arithmetic, so both forms agree to rounding on healthy statistics;
// they part ways on singular ones (fewer samples than dimensions), where the sqrtm form
// may fail and retry with eps on the diagonals. The sqrtm form is therefore reproduced
// step by step (real Schur form, rsf2csf, the blocked upper-triangular square root with
// its failure rule, X = Z R Z^H), not replaced by the eigenvalue sum.
//
// LAPACK is OpenBLAS's (Debian libopenblas0 ships dgeev_, dgees_, dtrsyl_, ztrsyl_,
// zgeev_): no LAPACKE header is installed, so the Fortran symbols are declared here
// with gfortran's calling convention (column-major, pointers to scalars, trailing
// hidden character lengths as size_t). All matrices inside are column-major.
#include "disa/metrics.h"
#include "disa/err.h"

#include <cblas.h>
#include <complex.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef double _Complex zdbl;

extern void dgeev_(const char *jobvl, const char *jobvr, const int *n, double *a, const int *lda, double *wr,
                   double *wi, double *vl, const int *ldvl, double *vr, const int *ldvr, double *work,
                   const int *lwork, int *info, size_t l1, size_t l2);
extern void dgees_(const char *jobvs, const char *sort, int (*select)(const double *, const double *),
                   const int *n, double *a, const int *lda, int *sdim, double *wr, double *wi, double *vs,
                   const int *ldvs, double *work, const int *lwork, int *bwork, int *info, size_t l1,
                   size_t l2);
extern void dtrsyl_(const char *trana, const char *tranb, const int *isgn, const int *m, const int *n,
                    const double *a, const int *lda, const double *b, const int *ldb, double *c,
                    const int *ldc, double *scale, int *info, size_t l1, size_t l2);
extern void ztrsyl_(const char *trana, const char *tranb, const int *isgn, const int *m, const int *n,
                    const zdbl *a, const int *lda, const zdbl *b, const int *ldb, zdbl *c, const int *ldc,
                    double *scale, int *info, size_t l1, size_t l2);
extern void zgeev_(const char *jobvl, const char *jobvr, const int *n, zdbl *a, const int *lda, zdbl *w,
                   zdbl *vl, const int *ldvl, zdbl *vr, const int *ldvr, zdbl *work, const int *lwork,
                   double *rwork, int *info, size_t l1, size_t l2);

// scipy's blocksize default for sqrtm.
#define SQRTM_BLOCK 64

// ----------------------------------------------------------------------------
// shared pieces

// |mu1 - mu2|^2 + tr s1 + tr s2 (row-major inputs).
static double fid_base(const double *mu1, const double *s1, const double *mu2, const double *s2, int d) {
    double dd = 0, t1 = 0, t2 = 0;
    for (int i = 0; i < d; i++) {
        double e = mu1[i] - mu2[i];
        dd += e * e;
        t1 += s1[(size_t)i * d + i];
        t2 += s2[(size_t)i * d + i];
    }
    return dd + t1 + t2;
}

// A = s1 s2 as numpy's sigma1.dot(sigma2), stored column-major for LAPACK: with both
// operands read transposed from row-major memory, A(i,j) = sum_k s1[i,k] s2[k,j].
static void product_colmajor(double *A, const double *s1, const double *s2, int d) {
    cblas_dgemm(CblasColMajor, CblasTrans, CblasTrans, d, d, d, 1.0, s1, d, s2, d, 0.0, A, d);
}

// ----------------------------------------------------------------------------
// eigenvalue form

int fid_eig(double *fid, const double *mu1, const double *s1, const double *mu2, const double *s2, int d) {
    int rc = 0, info = 0, lwork = -1, n = d, one = 1;
    double *A = malloc((size_t)d * d * sizeof(double)), *wr = malloc((size_t)d * sizeof(double));
    double *wi = malloc((size_t)d * sizeof(double)), *work = NULL, q, dummy;
    if (!A || !wr || !wi) {
        rc = disa_err(DISA_ENOMEM, "FID: cannot allocate a %dx%d matrix", d, d);
        goto fail;
    }
    product_colmajor(A, s1, s2, d);
    // numpy.linalg.eigvals calls dgeev without eigenvectors (balancing on, as default).
    dgeev_("N", "N", &n, A, &n, wr, wi, &dummy, &one, &dummy, &one, &q, &lwork, &info, 1, 1);
    lwork = (int)q;
    work = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof(double));
    if (!work) {
        rc = disa_err(DISA_ENOMEM, "FID: cannot allocate LAPACK work of %d doubles", lwork);
        goto fail;
    }
    dgeev_("N", "N", &n, A, &n, wr, wi, &dummy, &one, &dummy, &one, work, &lwork, &info, 1, 1);
    if (info != 0) {
        rc = disa_err(DISA_EINTERNAL, "FID: LAPACK dgeev failed on the %dx%d product (info %d)", d, d, info);
        goto fail;
    }
    // torch-fidelity casts the eigenvalues to complex128 before np.sqrt, so a slightly
    // negative real eigenvalue contributes Re sqrt = 0 (not NaN).
    double tr = 0;
    for (int i = 0; i < d; i++) tr += creal(csqrt(wr[i] + I * wi[i]));
    *fid = fid_base(mu1, s1, mu2, s2, d) - 2.0 * tr;
fail:
    free(A);
    free(wr);
    free(wi);
    free(work);
    return rc;
}

// ----------------------------------------------------------------------------
// scipy.linalg.sqrtm: upper-triangular square root (_sqrtm_triu), blocked.

typedef struct { int nb; int start[4096]; int stop[4096]; } blocks;

// scipy's split: nblocks = max(n // 64, 1) blocks, the small ones (n // nblocks) first.
static void make_blocks(blocks *b, int n) {
    int nb = n / SQRTM_BLOCK;
    if (nb < 1) nb = 1;
    int bsmall = n / nb, nlarge = n % nb, nsmall = nb - nlarge, s = 0;
    b->nb = nb;
    for (int i = 0; i < nb; i++) {
        int size = i < nsmall ? bsmall : bsmall + 1;
        b->start[i] = s;
        b->stop[i] = s + size;
        s += size;
    }
}

// Returns 0, or 1 when the within-block recurrence meets denom == 0 with num != 0
// (scipy raises SqrtmError and sqrtm returns a NaN matrix). triu_sqrt_complex below is
// its twin line for line, on purpose: a real Schur form stays in real arithmetic (dgemm,
// dtrsyl), as in scipy, and C has no generic code for the two scalar types short of a
// macro template.
static int triu_sqrt_real(double *R, const double *T, int n) {
    blocks *b = malloc(sizeof *b);
    if (!b) return -1;
    make_blocks(b, n);
    memset(R, 0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++) R[(size_t)i * n + i] = sqrt(T[(size_t)i * n + i]);
#define RR(i, j) R[(size_t)(j) * n + (i)]
#define TT(i, j) T[(size_t)(j) * n + (i)]
    for (int bl = 0; bl < b->nb; bl++) {
        for (int j = b->start[bl]; j < b->stop[bl]; j++) {
            for (int i = j - 1; i >= b->start[bl]; i--) {
                double s = 0;
                for (int k = i + 1; k < j; k++) s += RR(i, k) * RR(k, j);
                double denom = RR(i, i) + RR(j, j), num = TT(i, j) - s;
                if (denom != 0) RR(i, j) = num / denom;
                else if (num == 0) RR(i, j) = 0;
                else {
                    free(b);
                    return 1;
                }
            }
        }
    }
    // Between blocks: R_ij solves R_ii X + X R_jj = T_ij - R_i,mid R_mid,j (dtrsyl).
    for (int j = 0; j < b->nb; j++) {
        int js = b->start[j], jn = b->stop[j] - js;
        for (int i = j - 1; i >= 0; i--) {
            int is = b->start[i], in = b->stop[i] - is, isgn = 1, info = 0;
            double scale = 1;
            double *S = &RR(is, js);
            for (int c = 0; c < jn; c++)
                for (int r = 0; r < in; r++) RR(is + r, js + c) = TT(is + r, js + c);
            if (j - i > 1) {
                int ms = b->stop[i], mn = js - ms;
                cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, in, jn, mn, -1.0, &RR(is, ms), n,
                            &RR(ms, js), n, 1.0, S, n);
            }
            dtrsyl_("N", "N", &isgn, &in, &jn, &RR(is, is), &n, &RR(js, js), &n, S, &n, &scale, &info, 1, 1);
            if (scale != 1.0)
                for (int c = 0; c < jn; c++)
                    for (int r = 0; r < in; r++) RR(is + r, js + c) *= scale;
        }
    }
#undef RR
#undef TT
    free(b);
    return 0;
}

// The complex twin of triu_sqrt_real, line for line (scipy's _sqrtm_triu runs one code on
// either dtype); two copies keep real Schur forms in real arithmetic, as scipy does.
static int triu_sqrt_complex(zdbl *R, const zdbl *T, int n) {
    blocks *b = malloc(sizeof *b);
    if (!b) return -1;
    make_blocks(b, n);
    memset(R, 0, (size_t)n * n * sizeof(zdbl));
    for (int i = 0; i < n; i++) R[(size_t)i * n + i] = csqrt(T[(size_t)i * n + i]);
#define RR(i, j) R[(size_t)(j) * n + (i)]
#define TT(i, j) T[(size_t)(j) * n + (i)]
    for (int bl = 0; bl < b->nb; bl++) {
        for (int j = b->start[bl]; j < b->stop[bl]; j++) {
            for (int i = j - 1; i >= b->start[bl]; i--) {
                zdbl s = 0;
                for (int k = i + 1; k < j; k++) s += RR(i, k) * RR(k, j);
                zdbl denom = RR(i, i) + RR(j, j), num = TT(i, j) - s;
                if (denom != 0) RR(i, j) = num / denom;
                else if (num == 0) RR(i, j) = 0;
                else {
                    free(b);
                    return 1;
                }
            }
        }
    }
    const zdbl one = 1, mone = -1;
    for (int j = 0; j < b->nb; j++) {
        int js = b->start[j], jn = b->stop[j] - js;
        for (int i = j - 1; i >= 0; i--) {
            int is = b->start[i], in = b->stop[i] - is, isgn = 1, info = 0;
            double scale = 1;
            zdbl *S = &RR(is, js);
            for (int c = 0; c < jn; c++)
                for (int r = 0; r < in; r++) RR(is + r, js + c) = TT(is + r, js + c);
            if (j - i > 1) {
                int ms = b->stop[i], mn = js - ms;
                cblas_zgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, in, jn, mn, &mone, &RR(is, ms), n,
                            &RR(ms, js), n, &one, S, n);
            }
            ztrsyl_("N", "N", &isgn, &in, &jn, &RR(is, is), &n, &RR(js, js), &n, S, &n, &scale, &info, 1, 1);
            if (scale != 1.0)
                for (int c = 0; c < jn; c++)
                    for (int r = 0; r < in; r++) RR(is + r, js + c) *= scale;
        }
    }
#undef RR
#undef TT
    free(b);
    return 0;
}

// scipy.linalg.rsf2csf on column-major T, Z (already widened to complex): removes the
// 2x2 blocks of the real Schur form with Givens rotations, bottom up.
static int rsf2csf(zdbl *T, zdbl *Z, int n) {
#define TT(i, j) T[(size_t)(j) * n + (i)]
#define ZZ(i, j) Z[(size_t)(j) * n + (i)]
    for (int m = n - 1; m >= 1; m--) {
        if (cabs(TT(m, m - 1)) > DBL_EPSILON * (cabs(TT(m - 1, m - 1)) + cabs(TT(m, m)))) {
            // Eigenvalues of the 2x2 block through zgeev, as scipy's eigvals, so the
            // first one (the one rotated to the top) is the same.
            zdbl blk[4] = {TT(m - 1, m - 1), TT(m, m - 1), TT(m - 1, m), TT(m, m)}, w[2], work[8], dummy;
            double rwork[4];
            int two = 2, one = 1, lwork = 8, info = 0;
            zgeev_("N", "N", &two, blk, &two, w, &dummy, &one, &dummy, &one, work, &lwork, rwork, &info, 1, 1);
            if (info != 0) return disa_err(DISA_EINTERNAL, "FID sqrtm: zgeev failed on a 2x2 block (info %d)", info);
            zdbl mu = w[0] - TT(m, m), t = TT(m, m - 1);
            double r = sqrt(creal(mu * conj(mu)) + creal(t * conj(t)));
            zdbl c = mu / r, s = t / r;
            for (int k = m - 1; k < n; k++) {  // rows m-1, m: G T with G = [[c*, s], [-s, c]]
                zdbl a = TT(m - 1, k), bb = TT(m, k);
                TT(m - 1, k) = conj(c) * a + s * bb;
                TT(m, k) = -s * a + c * bb;
            }
            for (int k = 0; k <= m; k++) {  // columns m-1, m: T G^H
                zdbl a = TT(k, m - 1), bb = TT(k, m);
                TT(k, m - 1) = a * c + bb * conj(s);
                TT(k, m) = -a * conj(s) + bb * conj(c);
            }
            for (int k = 0; k < n; k++) {
                zdbl a = ZZ(k, m - 1), bb = ZZ(k, m);
                ZZ(k, m - 1) = a * c + bb * conj(s);
                ZZ(k, m) = -a * conj(s) + bb * conj(c);
            }
        }
        TT(m, m - 1) = 0;
    }
#undef TT
#undef ZZ
    return 0;
}

// tr Re sqrtm(A) for column-major A [n, n] (destroyed). *ok = 0 when scipy's sqrtm
// would return a non-finite matrix (failed recurrence or overflow). The square root
// itself is X = Z R Z^H; only its diagonal is formed (from Z R, which is checked for
// finiteness whole) since the FID needs the trace and the imaginary-diagonal check.
static int sqrtm_trace(double *tr, int *ok, fid_sqrtm_info *info, double *A, int n) {
    int rc = 0, sdim = 0, lapack_info = 0, lwork = -1, bwork = 0;
    double q;
    size_t nn = (size_t)n * n;
    double *wr = malloc((size_t)n * sizeof(double)), *wi = malloc((size_t)n * sizeof(double));
    double *Z = malloc(nn * sizeof(double)), *work = NULL, *R = NULL;
    zdbl *Tc = NULL, *Zc = NULL, *Rc = NULL;
    *ok = 1;
    *tr = NAN;
    if (!wr || !wi || !Z) goto nomem;
    dgees_("V", "N", NULL, &n, A, &n, &sdim, wr, wi, Z, &n, &q, &lwork, &bwork, &lapack_info, 1, 1);
    lwork = (int)q;
    if (!(work = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof(double)))) goto nomem;
    dgees_("V", "N", NULL, &n, A, &n, &sdim, wr, wi, Z, &n, work, &lwork, &bwork, &lapack_info, 1, 1);
    if (lapack_info != 0) {
        rc = disa_err(DISA_EINTERNAL, "FID sqrtm: LAPACK dgees failed on the %dx%d product (info %d)", n, n,
                      lapack_info);
        goto fail;
    }
    int blocks2 = 0, negdiag = 0;
    for (int m = 1; m < n; m++) blocks2 |= A[(size_t)(m - 1) * n + m] != 0.0;
    for (int i = 0; i < n; i++) negdiag |= A[(size_t)i * n + i] < 0.0;
    double trace = 0, max_imag = 0;
    if (!blocks2 && !negdiag) {
        // Real path: R real, X = Z R Z^T real.
        if (!(R = malloc(nn * sizeof(double)))) goto nomem;
        int f = triu_sqrt_real(R, A, n);
        if (f < 0) goto nomem;
        if (f) {
            *ok = 0;
            goto done;
        }
        // Z <- Z R (R upper triangular), then X_ii = sum_k (Z R)_ik Z_ik.
        double *ZR = A;  // T is no longer needed
        memcpy(ZR, Z, nn * sizeof(double));
        cblas_dtrmm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, n, n, 1.0, R, n, ZR, n);
        for (size_t i = 0; i < nn; i++)
            if (!isfinite(ZR[i])) {
                *ok = 0;
                goto done;
            }
        for (int i = 0; i < n; i++) {
            double x = 0;
            for (int k = 0; k < n; k++) x += ZR[(size_t)k * n + i] * Z[(size_t)k * n + i];
            trace += x;
        }
    } else {
        if (info) info->complex_schur = 1;
        Tc = malloc(nn * sizeof(zdbl));
        Zc = malloc(nn * sizeof(zdbl));
        Rc = malloc(nn * sizeof(zdbl));
        if (!Tc || !Zc || !Rc) goto nomem;
        for (size_t i = 0; i < nn; i++) Tc[i] = A[i], Zc[i] = Z[i];
        if (blocks2 && (rc = rsf2csf(Tc, Zc, n)) != 0) goto fail;
        int f = triu_sqrt_complex(Rc, Tc, n);
        if (f < 0) goto nomem;
        if (f) {
            *ok = 0;
            goto done;
        }
        zdbl *ZR = Tc;
        memcpy(ZR, Zc, nn * sizeof(zdbl));
        const zdbl one = 1;
        cblas_ztrmm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, n, n, &one, Rc, n, ZR, n);
        for (size_t i = 0; i < nn; i++)
            if (!isfinite(creal(ZR[i])) || !isfinite(cimag(ZR[i]))) {
                *ok = 0;
                goto done;
            }
        for (int i = 0; i < n; i++) {
            zdbl x = 0;
            for (int k = 0; k < n; k++) x += ZR[(size_t)k * n + i] * conj(Zc[(size_t)k * n + i]);
            trace += creal(x);
            if (fabs(cimag(x)) > max_imag) max_imag = fabs(cimag(x));
        }
    }
    *tr = trace;
    if (info) info->max_imag_diag = max_imag;
done:
    goto fail;
nomem:
    rc = disa_err(DISA_ENOMEM, "FID sqrtm: out of memory for %dx%d matrices", n, n);
fail:
    free(wr);
    free(wi);
    free(Z);
    free(work);
    free(R);
    free(Tc);
    free(Zc);
    free(Rc);
    return rc;
}

int fid_sqrtm(double *fid, fid_sqrtm_info *info, const double *mu1, const double *s1, const double *mu2,
              const double *s2, int d, double eps) {
    fid_sqrtm_info loc = {0};
    if (!info) info = &loc;
    memset(info, 0, sizeof *info);
    int rc = 0, ok = 0;
    size_t nn = (size_t)d * d;
    double *A = malloc(nn * sizeof(double)), *o1 = NULL, *o2 = NULL, tr = NAN;
    if (!A) return disa_err(DISA_ENOMEM, "FID sqrtm: cannot allocate a %dx%d matrix", d, d);
    product_colmajor(A, s1, s2, d);
    if ((rc = sqrtm_trace(&tr, &ok, info, A, d)) != 0) goto fail;
    if (!ok) {
        // "fid calculation produces singular product; adding eps to diagonal of cov
        // estimates": sqrtm((s1 + eps I)(s2 + eps I)).
        info->offset_used = 1;
        info->complex_schur = 0;
        o1 = malloc(nn * sizeof(double));
        o2 = malloc(nn * sizeof(double));
        if (!o1 || !o2) {
            rc = disa_err(DISA_ENOMEM, "FID sqrtm: cannot allocate %dx%d matrices", d, d);
            goto fail;
        }
        memcpy(o1, s1, nn * sizeof(double));
        memcpy(o2, s2, nn * sizeof(double));
        for (int i = 0; i < d; i++) o1[(size_t)i * d + i] += eps, o2[(size_t)i * d + i] += eps;
        product_colmajor(A, o1, o2, d);
        if ((rc = sqrtm_trace(&tr, &ok, info, A, d)) != 0) goto fail;
        if (!ok) {
            rc = disa_err(DISA_ERANGE, "FID sqrtm: the matrix square root is not finite even with eps %g on the "
                          "diagonals (%d-d statistics; are they from fewer than 2 samples or non-finite?)", eps, d);
            goto fail;
        }
    }
    if (info->complex_schur && !(info->max_imag_diag <= 1e-3)) {
        rc = disa_err(DISA_ERANGE, "FID sqrtm: imaginary component %g on the diagonal of sqrtm(s1 s2) (> 1e-3, "
                      "pytorch-fid and the ADM evaluator stop here)", info->max_imag_diag);
        goto fail;
    }
    *fid = fid_base(mu1, s1, mu2, s2, d) - 2.0 * tr;
fail:
    free(A);
    free(o1);
    free(o2);
    return rc;
}
