// parity_metrics.c: golden adapters for src/metrics and the feature nets
// (tools/golden/metrics.py, tools/golden/inception.py); tests/golden/README.md
// "metrics" lists the ops, tensors and configs.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "disa/arena.h"
#include "disa/err.h"
#include "disa/inception.h"
#include "disa/metrics.h"
#include "disa/mt19937.h"
#include "parity.h"

// ----------------------------------------------------------------------------
// helpers

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// A 2-d float tensor; NULL (case failed) when absent or not 2-d.
static const float *need2(pcase *c, const char *name, int64_t *rows, int64_t *cols) {
    static const int64_t any2[2] = {-1, -1};
    int nd;
    int64_t sh[8];
    if (!pc_need(c, name, 2, any2)) return NULL;
    const float *p = pc_f32(c, name, &nd, sh);
    *rows = sh[0];
    *cols = sh[1];
    return p;
}

static int check_scalar(pcase *c, const char *name, double v) {
    float f = (float)v;
    return pc_check(c, name, &f, 1);
}

static int check_dvec(pcase *c, const char *name, const double *v, int n, size_t stride) {
    float *f = pc_alloc(c, (size_t)n);
    if (!f) return pc_fail(c, "out of memory");
    for (int i = 0; i < n; i++) f[i] = (float)v[(size_t)i * stride];
    return pc_check(c, name, f, (size_t)n);
}

// ----------------------------------------------------------------------------
// fid: statistics from features (two shards merged) or given, then both FID forms.

static int stats_from(pcase *c, const char *xname, double *mu, double *sigma, int d) {
    int64_t n, dd;
    const float *x = need2(c, xname, &n, &dd);
    if (!x) return 1;
    if (dd != d) return pc_fail(c, "%s has %lld columns, expected %d", xname, (long long)dd, d);
    fstats a, b;
    if (fstats_init(&a, d) || fstats_init(&b, d)) return pc_fail(c, "%s", disa_errmsg());
    // Two shards of unequal size merged, as ranks would.
    int64_t h = n / 3;
    fstats_add(&a, x, (int)h);
    fstats_add(&b, x + (size_t)h * d, (int)(n - h));
    int rc = fstats_merge(&b, &a) || fstats_mu_sigma(&b, mu, sigma);
    if (rc) pc_fail(c, "%s", disa_errmsg());
    fstats_free(&a);
    fstats_free(&b);
    return rc;
}

static int given_stats(pcase *c, const char *mun, const char *sn, double *mu, double *sigma, int d) {
    const int64_t vs[1] = {d}, ms[2] = {d, d};
    const float *m = pc_need(c, mun, 1, vs), *s = pc_need(c, sn, 2, ms);
    if (!m || !s) return 1;
    for (int i = 0; i < d; i++) mu[i] = m[i];
    for (size_t i = 0; i < (size_t)d * d; i++) sigma[i] = s[i];
    return 0;
}

static int op_fid(pcase *c) {
    int nd;
    int64_t sh[8];
    int given = pc_f32(c, "in.sigma1", &nd, sh) != NULL;
    int d;
    if (given) d = (int)sh[0];
    else {
        int64_t n, dd;
        if (!need2(c, "in.x1", &n, &dd)) return 1;
        d = (int)dd;
    }
    size_t nn = (size_t)d * d;
    double *mem = calloc(2 * nn + 2 * (size_t)d, sizeof(double));
    if (!mem) return pc_fail(c, "out of memory");
    double *s1 = mem, *s2 = mem + nn, *mu1 = mem + 2 * nn, *mu2 = mu1 + d;
    int bad = 0;
    double t0 = now_s();
    if (given) bad = given_stats(c, "in.mu1", "in.sigma1", mu1, s1, d) || given_stats(c, "in.mu2", "in.sigma2", mu2, s2, d);
    else bad = stats_from(c, "in.x1", mu1, s1, d) || stats_from(c, "in.x2", mu2, s2, d);
    if (bad) goto out;
    double t1 = now_s();
    bad += check_dvec(c, "mu1", mu1, d, 1);
    bad += check_dvec(c, "mu2", mu2, d, 1);
    bad += check_dvec(c, "sigma1_diag", s1, d, (size_t)d + 1);
    bad += check_dvec(c, "sigma2_row0", s2, d, 1);
    double fe = NAN, fs = NAN;
    if (fid_eig(&fe, mu1, s1, mu2, s2, d) != 0) {
        bad += pc_fail(c, "fid_eig: %s", disa_errmsg());
        goto out;
    }
    double t2 = now_s();
    fid_sqrtm_info info;
    if (fid_sqrtm(&fs, &info, mu1, s1, mu2, s2, d, pc_num(c, "eps", 1e-6, 1)) != 0) {
        bad += pc_fail(c, "fid_sqrtm: %s", disa_errmsg());
        goto out;
    }
    double t3 = now_s();
    printf("  dim %d: stats %.2f s, FID eig %.17g (%.2f s), sqrtm %.17g (%.2f s, offset %d, complex %d)\n", d,
           t1 - t0, fe, t2 - t1, fs, t3 - t2, info.offset_used, info.complex_schur);
    bad += check_scalar(c, "fid_eig", fe);
    bad += check_scalar(c, "fid_sqrtm", fs);
    int64_t used = info.offset_used;
    bad += pc_check_i64(c, "offset_used", &used, 1);
out:
    free(mem);
    return bad;
}

// ----------------------------------------------------------------------------
// isc: torch-fidelity and ADM scores; the torch-fidelity one also fed in shuffled
// shards to two accumulators that are merged.

static int op_isc(pcase *c) {
    int64_t N, C;
    const float *x = need2(c, "in.logits", &N, &C);
    if (!x) return 1;
    int splits = pc_int(c, "splits", 10, 1), shuffle = pc_int(c, "shuffle", 1, 1);
    uint32_t seed = (uint32_t)pc_num(c, "seed", 2020, 1);
    double mean, std, adm, m2, s2;
    if (isc_tf(&mean, &std, x, N, (int)C, splits, shuffle, seed) != 0 ||
        isc_adm(&adm, x, N, (int)C, pc_int(c, "adm_split", 5000, 1)) != 0)
        return pc_fail(c, "%s", disa_errmsg());
    // Streamed: rows in reverse order over two accumulators.
    isc_acc a, b;
    if (isc_acc_init_tf(&a, (int)C, N, splits, shuffle, seed) || isc_acc_init_tf(&b, (int)C, N, splits, shuffle, seed))
        return pc_fail(c, "%s", disa_errmsg());
    int rc = 0;
    for (int64_t i = N - 1; i >= 0 && rc == 0; i--)
        rc = isc_acc_add(i % 2 ? &a : &b, x + (size_t)i * C, &i, 0, 1);
    if (rc == 0) rc = isc_acc_merge(&a, &b);
    if (rc == 0) rc = isc_acc_result(&a, &m2, &s2);
    isc_acc_free(&a);
    isc_acc_free(&b);
    if (rc) return pc_fail(c, "%s", disa_errmsg());
    int bad = check_scalar(c, "is_mean", mean) + check_scalar(c, "is_std", std) + check_scalar(c, "is_adm", adm);
    if (fabs(m2 - mean) > 1e-12 * mean || fabs(s2 - std) > 1e-9 * (std + 1e-300))
        bad += pc_fail(c, "streamed/merged IS %.17g +- %.17g differs from one-shot %.17g +- %.17g", m2, s2, mean, std);
    return bad;
}

// ----------------------------------------------------------------------------
// prc

static int op_prc(pcase *c) {
    int64_t nr, d1, ng, d2;
    const float *ref = need2(c, "in.ref", &nr, &d1), *gen = need2(c, "in.gen", &ng, &d2);
    if (!ref || !gen) return 1;
    if (d1 != d2) return pc_fail(c, "in.ref and in.gen differ in width (%lld, %lld)", (long long)d1, (long long)d2);
    double p, r;
    if (prc_compute(&p, &r, ref, nr, gen, ng, (int)d1, pc_int(c, "k", 3, 1)) != 0)
        return pc_fail(c, "%s", disa_errmsg());
    return check_scalar(c, "precision", p) + check_scalar(c, "recall", r);
}

// ----------------------------------------------------------------------------
// numpy RandomState

static int op_mt(pcase *c) {
    int n = pc_int(c, "n", 0, 0);
    uint32_t seed = (uint32_t)pc_num(c, "seed", 0, 0);
    int nd;
    int64_t sh[8];
    const int64_t *want = pc_i64(c, "out.u32", &nd, sh);
    if (n < 1 || !want) return pc_fail(c, "config 'n' >= 1 and out.u32 are required");
    int64_t *perm = malloc((size_t)n * sizeof(int64_t)), *u = malloc((size_t)sh[0] * sizeof(int64_t));
    if (!perm || !u) {
        free(perm);
        free(u);
        return pc_fail(c, "out of memory");
    }
    mt19937_permutation(perm, n, seed);
    mt19937 r;
    mt19937_seed(&r, seed);
    for (int64_t i = 0; i < sh[0]; i++) u[i] = mt19937_next_u32(&r);
    int bad = pc_check_i64(c, "perm", perm, (size_t)n) + pc_check_i64(c, "u32", u, (size_t)sh[0]);
    free(perm);
    free(u);
    return bad;
}

// ----------------------------------------------------------------------------
// feature nets

// A uint8 image tensor stored as float (F16 holds 0..255 exactly); NULL on a bad golden.
static uint8_t *u8_of(pcase *c, const char *name, int *nd, int64_t sh[8], size_t *n) {
    const float *f = pc_f32(c, name, nd, sh);
    if (!f) {
        pc_fail(c, "required tensor '%s' is missing", name);
        return NULL;
    }
    *n = 1;
    for (int i = 0; i < *nd; i++) *n *= (size_t)sh[i];
    uint8_t *u = (uint8_t *)pc_alloc(c, (*n + 3) / 4);
    if (!u) return NULL;
    for (size_t i = 0; i < *n; i++) {
        if (!(f[i] >= 0 && f[i] <= 255 && f[i] == (float)(int)f[i])) {
            pc_fail(c, "%s[%zu] = %g is not a uint8 value", name, i, f[i]);
            return NULL;
        }
        u[i] = (uint8_t)f[i];
    }
    return u;
}

static int op_inception_resize(pcase *c) {
    int nd;
    int64_t sh[8];
    size_t n;
    uint8_t *img = u8_of(c, "in.image", &nd, sh, &n);
    if (!img) return 1;
    if (nd != 3) return pc_fail(c, "in.image must be [C, H, W]");
    int oh = pc_int(c, "out_h", 0, 0), ow = pc_int(c, "out_w", 0, 0);
    if (oh < 1 || ow < 1 || oh > 2048 || ow > 2048) return pc_fail(c, "out_h/out_w must be in 1..2048");
    float *y = pc_alloc(c, (size_t)sh[0] * oh * ow);
    if (!y) return pc_fail(c, "out of memory");
    inception_resize_tf1(y, img, (int)sh[0], (int)sh[1], (int)sh[2], oh, ow);
    return pc_check(c, "y", y, (size_t)sh[0] * oh * ow);
}

// Binds every table entry to param.<name> (generated from param_gen).
static int bind_params(pcase *c, st_bind_entry *tab, int n) {
    char full[160];
    int bad = 0;
    for (int i = 0; i < n && !bad; i++) {
        snprintf(full, sizeof full, "param.%s", tab[i].name);
        *tab[i].dst = pc_need(c, full, tab[i].ndim, tab[i].shape);
        if (!*tab[i].dst) bad = 1;
    }
    return bad;
}

static int op_inception(pcase *c) {
    int nd;
    int64_t sh[8];
    size_t n;
    double t0 = now_s();
    uint8_t *hwc = u8_of(c, "in.image_hwc", &nd, sh, &n);
    if (!hwc) return 1;
    if (nd != 4) return pc_fail(c, "in.image_hwc must be [N, H, W, C]");
    int N = (int)sh[0], H = (int)sh[1], W = (int)sh[2], C = (int)sh[3];
    inception_model m;
    memset(&m, 0, sizeof m);
    st_bind_entry *tab = NULL;
    char *names = NULL;
    int cnt, bad = 0;
    arena a = {0};
    uint8_t *chw = (uint8_t *)pc_alloc(c, ((size_t)N * 3 * H * W + 3) / 4);
    float *pool = pc_alloc(c, (size_t)N * INCEPTION_FEAT), *logits = pc_alloc(c, (size_t)N * INCEPTION_LOGITS);
    if (!chw || !pool || !logits) return pc_fail(c, "out of memory");
    if (inception_tensor_table(&m, &tab, &names, &cnt) != 0) return pc_fail(c, "%s", disa_errmsg());
    if ((bad = bind_params(c, tab, cnt)) != 0) goto out;
    if (inception_fold(&m) != 0 || arena_init(&a, inception_scratch_bytes(), "inception") != 0) {
        bad = pc_fail(c, "%s", disa_errmsg());
        goto out;
    }
    for (int i = 0; i < N; i++)
        inception_hwc_to_chw(chw + (size_t)i * 3 * H * W, hwc + (size_t)i * H * W * C, H, W, C);
    double t1 = now_s();
    if (inception_forward(&m, &a, pool, logits, chw, N, H, W) != 0) {
        bad = pc_fail(c, "inception_forward: %s", disa_errmsg());
        goto out;
    }
    double t2 = now_s();
    printf("  %d image(s) %dx%dx%d: weights generated + folded %.2f s, forward %.3f s/image\n", N, H, W, C, t1 - t0,
           (t2 - t1) / N);
    bad += pc_check(c, "pool", pool, (size_t)N * INCEPTION_FEAT);
    bad += pc_check(c, "logits", logits, (size_t)N * INCEPTION_LOGITS);
out:
    free(tab);
    free(names);
    free(m.folded);
    arena_free(&a);
    return bad;
}

static int op_seqcnn(pcase *c) {
    int nd;
    int64_t sh[8];
    size_t n;
    uint8_t *img = u8_of(c, "in.image", &nd, sh, &n);
    if (!img) return 1;
    seqcnn m;
    char *json = cJSON_PrintUnformatted(pc_config(c));
    if (!json) return pc_fail(c, "out of memory");
    int rc = seqcnn_config_parse(&m, json, "golden config");
    free(json);
    if (rc) return pc_fail(c, "%s", disa_errmsg());
    st_bind_entry *tab = NULL;
    int cnt, bad = 0;
    arena a = {0};
    if (nd != 4 || sh[1] != m.in_c || sh[2] != m.in_h || sh[3] != m.in_w) {
        bad = pc_fail(c, "in.image must be [N, %d, %d, %d]", m.in_c, m.in_h, m.in_w);
        goto out;
    }
    int N = (int)sh[0];
    float *feat = pc_alloc(c, (size_t)N * m.feat_dim), *logits = pc_alloc(c, (size_t)N * m.n_classes);
    if (!feat || !logits || seqcnn_tensor_table(&m, &tab, &cnt) != 0) {
        bad = pc_fail(c, "out of memory");
        goto out;
    }
    if ((bad = bind_params(c, tab, cnt)) != 0) goto out;
    if (arena_init(&a, seqcnn_scratch_bytes(&m, N), "seqcnn") != 0 || seqcnn_forward(&m, &a, feat, logits, img, N) != 0) {
        bad = pc_fail(c, "%s", disa_errmsg());
        goto out;
    }
    bad += pc_check(c, "feat", feat, (size_t)N * m.feat_dim);
    bad += pc_check(c, "logits", logits, (size_t)N * m.n_classes);
out:
    free(tab);
    free(m.layers);
    arena_free(&a);
    return bad;
}

const parity_op parity_ops_metrics[] = {
    {"seqcnn", op_seqcnn},
    {"fid", op_fid},
    {"isc", op_isc},
    {"prc", op_prc},
    {"mt19937_permutation", op_mt},
    {"inception_resize", op_inception_resize},
    {"inception_v3", op_inception},
    {NULL, NULL},
};
