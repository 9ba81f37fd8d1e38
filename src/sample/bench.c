// bench.c: MAR's step shapes timed, and a schedule extrapolated (include/disa/bench.h).
#include "disa/bench.h"
#include "disa/arena.h"
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/rng.h"
#include "disa/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_fill_normal(float *x, size_t n, uint32_t index) {
    rng_stream r;
    rng_init(&r, 12345, index, 99);
    rng_normals(&r, x, n);
}

// The peaks' operands live in an arena like the model's activations do, so both sides of
// a "% of peak" get the same pages (arena.c puts large arenas on huge pages).
double bench_sgemm_peak(int n, int reps, double *gflops_all) {
    size_t nn = (size_t)n * n;
    arena a;
    if (arena_init(&a, sizeof(float) * 3 * nn + 4 * 64, "sgemm peak") != 0) return 0;
    float *A = arena_floats(&a, nn), *B = arena_floats(&a, nn), *C = arena_floats(&a, nn);
    if (!A || !B || !C) {
        arena_free(&a);
        return 0;
    }
    bench_fill_normal(A, (size_t)n * n, 1);
    bench_fill_normal(B, (size_t)n * n, 2);
    blas_sgemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);  // warm-up: threads, pages
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now();
        blas_sgemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        gflops_all[r] = 2.0 * n * (double)n * n / (clock_now() - t0) / 1e9;
    }
    double tmp[64];
    memcpy(tmp, gflops_all, sizeof(double) * (size_t)reps);
    arena_free(&a);
    return bench_median(tmp, reps);
}

double bench_bf16_peak(int M, int N, int K, int reps, double *gflops_all) {
    float *W = malloc(sizeof(float) * (size_t)N * K), *xf = malloc(sizeof(float) * (size_t)M * K);
    arena a;  // the product's input and output, as in the model
    size_t MK = (size_t)M * K, MN = (size_t)M * N;
    int ok = arena_init(&a, sizeof(uint16_t) * MK + sizeof(float) * MN + 4 * 64, "bf16 peak") == 0;
    uint16_t *x = ok ? arena_alloc(&a, sizeof(uint16_t) * MK) : NULL;
    float *y = ok ? arena_floats(&a, MN) : NULL;
    bf16_cache *c = bf16_cache_new(2);
    bf16_linear l = {0};
    double g = 0, tmp[64];
    if (!W || !xf || !x || !y) {
        disa_err(DISA_ENOMEM, "bf16 peak: out of memory for a %dx%dx%d product", M, N, K);
        goto out;
    }
    if (!c) goto out;
    bench_fill_normal(W, (size_t)N * K, 1);
    bench_fill_normal(xf, (size_t)M * K, 2);
    bf16_from_f32(x, xf, (size_t)M * K);
    if (bf16_linear_init(&l, W, NULL, K, N) != 0) goto out;
    // warm-up: the primitive, oneDNN's threads, the pages of y
    if (bf16_linear_forward(c, &l, y, 0, x, NULL, M, BF16_EPI_NONE) != 0) goto out;
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now();
        if (bf16_linear_forward(c, &l, y, 0, x, NULL, M, BF16_EPI_NONE) != 0) goto out;
        gflops_all[r] = 2.0 * M * (double)N * K / (clock_now() - t0) / 1e9;
    }
    memcpy(tmp, gflops_all, sizeof(double) * (size_t)reps);
    g = bench_median(tmp, reps);
out:
    bf16_linear_free(&l);
    bf16_cache_delete(c);
    free(W);
    free(xf);
    if (ok) arena_free(&a);
    return g;
}

// ----------------------------------------------------------------------------
// step shapes

size_t bench_scratch_bytes(const mar_model *m, int B, int cfg) {
    const mar_config *c = &m->cfg;
    size_t rows = (size_t)(cfg ? 2 * B : B) * c->seq_len, BL = (size_t)B * c->seq_len;
    // what an AR step of the sampler needs, the pass's inputs (tokens, known, pred,
    // labels) and bf16_check's second z and network output.
    return sampler_scratch_bytes(m, B, cfg) + sizeof(float) * BL * c->token_dim + BL * (1 + sizeof(int)) +
           sizeof(int) * (size_t)B + sizeof(float) * rows * (c->dec_dim + 2 * c->token_dim) + 64 * 64;
}

// Inputs of one transformer pass over B images: random tokens; known = every
// (L / n_known)-th position; the first n_pred unknown positions, ascending, to predict.
static int step_inputs(const mar_config *c, arena *a, int B, int n_known, int n_pred, float **tokens,
                       unsigned char **known, int **pred, int **labels) {
    int L = c->seq_len;
    *tokens = arena_floats(a, (size_t)B * L * c->token_dim);
    *known = arena_alloc(a, (size_t)B * L);
    *pred = arena_alloc(a, sizeof(int) * (size_t)B * (n_pred > 0 ? n_pred : 1));
    *labels = arena_alloc(a, sizeof(int) * (size_t)B);
    if (!*tokens || !*known || !*pred || !*labels) return DISA_ENOMEM;
    bench_fill_normal(*tokens, (size_t)B * L * c->token_dim, 3);
    for (int b = 0; b < B; b++) {
        (*labels)[b] = b % c->class_num;
        int np = 0;
        for (int p = 0; p < L; p++) {
            int k = (int)((long long)(p + 1) * n_known / L) != (int)((long long)p * n_known / L);
            (*known)[(size_t)b * L + p] = (unsigned char)k;
            if (!k && np < n_pred) (*pred)[(size_t)b * n_pred + np++] = p;
        }
    }
    return 0;
}

int bench_time_transformer(const mar_model *m, arena *a, int B, int cfg, int n_known, int n_pred, int reps,
                           double *sec, uint64_t *flops) {
    const mar_config *c = &m->cfg;
    int B2 = cfg ? 2 * B : B, rc = 0;
    size_t mark = arena_mark(a);
    float *z = arena_floats(a, (size_t)B2 * (n_pred > 0 ? n_pred : 1) * c->dec_dim), *tokens;
    unsigned char *known;
    int *pred, *labels;
    if (!z || step_inputs(c, a, B, n_known, n_pred, &tokens, &known, &pred, &labels)) return DISA_ENOMEM;
    double t[64];
    reps = reps < 1 ? 1 : reps > 64 ? 64 : reps;
    // A sampler's arena is warm after its first AR step and stays so for the run; touch
    // the scratch the pass will use, so a single timed pass is not charged the first-touch
    // page faults of a fresh allocation (several percent at batch 64).
    memset(a->base + a->used, 0, a->cap - a->used);
    for (int r = 0; r < reps && !rc; r++) {
        uint64_t f0 = blas_flops();
        double t0 = clock_now();
        rc = mar_forward(m, a, z, tokens, known, n_known, labels, cfg, pred, n_pred, B, NULL, NULL);
        t[r] = clock_now() - t0;
        *flops = blas_flops() - f0;
    }
    *sec = bench_median(t, reps);
    arena_reset(a, mark);
    return rc;
}

int bench_time_head(const mar_model *m, arena *a, const gd_tables *tb, int R2, int cfg, double *sec_step,
                    double *sec_cond, uint64_t *fstep) {
    const mar_config *c = &m->cfg;
    int C = c->token_dim, W = m->head.w, R = cfg ? R2 / 2 : R2, rc = 0;
    size_t mark = arena_mark(a);
    float *zc = arena_floats(a, (size_t)R2 * c->dec_dim), *ce = arena_floats(a, (size_t)R2 * W);
    float *x = arena_floats(a, (size_t)R2 * C), *noise = arena_floats(a, (size_t)R * C);
    head_work hw;
    if (!zc || !ce || !x || !noise || head_work_alloc(&hw, a, &m->head, R, cfg)) return DISA_ENOMEM;
    bench_fill_normal(zc, (size_t)R2 * c->dec_dim, 4);
    bench_fill_normal(x, (size_t)R * C, 5);
    bench_fill_normal(noise, (size_t)R * C, 6);
    double t0 = clock_now();
    if ((rc = diffloss_cond(&m->head, a, ce, zc, R2)) != 0) return rc;
    *sec_cond = clock_now() - t0;
    const head_step_opts ho = {.sampler = GD_SAMPLER_DISA, .temperature = 1.0f, .cfg = cfg, .cfg_scale = 2.0f};
    double t[64];
    int n = 0;
    double start = clock_now();
    // At least 3 and up to 40 steps, about 0.3 s per row count.
    while (n < 40 && (n < 3 || clock_now() - start < 0.3)) {
        uint64_t f0 = blas_flops();
        double t1 = clock_now();
        if ((rc = mar_head_step(&m->head, a, &hw, x, ce, noise, tb, tb->n / 2, &ho, R)) != 0) break;
        t[n++] = clock_now() - t1;
        *fstep = blas_flops() - f0;
    }
    *sec_step = bench_median(t, n);
    arena_reset(a, mark);
    return rc;
}

// Normwise error max|a - b| / max|b| over `rows` rows of n values at column `off` of rows
// `stride` apart.
static double normwise(const float *a, const float *b, int rows, int stride, int off, int n) {
    double e = 0, m = 0;
    for (int r = 0; r < rows; r++)
        for (int j = off; j < off + n; j++) {
            size_t i = (size_t)r * stride + j;
            double d = fabs((double)a[i] - b[i]);
            if (!(d <= e)) e = d;
            if (fabs(b[i]) > m) m = fabs(b[i]);
        }
    return m > 0 ? e / m : e;
}

int bench_bf16_check(const mar_model *m32, const mar_model *m16, arena *a, int B, int cfg, double *err_z,
                     double *err_eps, double *err_var) {
    const mar_config *c = &m32->cfg;
    const int W = m32->head.w;
    int L = c->seq_len, C = c->token_dim, D = c->dec_dim, B2 = cfg ? 2 * B : B;
    int n_known = L / 2, n_pred = L - n_known, R2 = B2 * n_pred;
    size_t mark = arena_mark(a);
    float *z[2] = {arena_floats(a, (size_t)R2 * D), arena_floats(a, (size_t)R2 * D)};
    float *out[2] = {arena_floats(a, (size_t)R2 * 2 * C), arena_floats(a, (size_t)R2 * 2 * C)};
    float *ce = arena_floats(a, (size_t)R2 * W), *te = arena_floats(a, (size_t)W), *x = arena_floats(a, (size_t)R2 * C);
    float *tokens;
    unsigned char *known;
    int *pred, *labels;
    if (!z[0] || !z[1] || !out[0] || !out[1] || !ce || !te || !x ||
        step_inputs(c, a, B, n_known, n_pred, &tokens, &known, &pred, &labels))
        return DISA_ENOMEM;
    bench_fill_normal(x, (size_t)R2 * C, 12);
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {  // k = 0 fp32, 1 bf16
        const mar_model *m = k ? m16 : m32;
        rc = mar_forward(m, a, z[k], tokens, known, n_known, labels, cfg, pred, n_pred, B, NULL, NULL);
        if (!rc) rc = diffloss_cond(&m->head, a, ce, z[k], R2);
        if (!rc) rc = diffloss_time(&m->head, te, 500.0f);
        if (!rc) rc = diffloss_forward(&m->head, a, out[k], x, te, ce, R2);
    }
    if (!rc) {
        *err_z = normwise(z[1], z[0], R2, D, 0, D);
        *err_eps = normwise(out[1], out[0], R2, 2 * C, 0, C);  // rows are [eps | variance values]
        *err_var = normwise(out[1], out[0], R2, 2 * C, C, C);
    }
    arena_reset(a, mark);
    return rc;
}

// ----------------------------------------------------------------------------
// extrapolation

// GFLOPS at n_known, linear between the measured points, flat outside them.
static double interp_gflops(const bench_point *p, int n, int n_known) {
    if (n_known <= p[0].n_known) return p[0].gflops;
    for (int i = 1; i < n; i++)
        if (n_known <= p[i].n_known) {
            double u = (double)(n_known - p[i - 1].n_known) / (p[i].n_known - p[i - 1].n_known);
            return p[i - 1].gflops + u * (p[i].gflops - p[i - 1].gflops);
        }
    return p[n - 1].gflops;
}

const bench_head_point *bench_find_head(const bench_head_point *h, int n, int rows) {
    for (int i = 0; i < n; i++)
        if (h[i].rows == rows) return &h[i];
    return NULL;
}

void bench_extrapolate(bench_extrap *e, const flops_step *st, int K, const bench_point *tp, int ntp,
                       const bench_head_point *hp, int nhp) {
    memset(e, 0, sizeof *e);
    for (int s = 0; s < K; s++) {
        if (st[s].rows == 0) continue;
        e->t_tr += st[s].transformer / (interp_gflops(tp, ntp, st[s].n_known) * 1e9);
        e->f_tr += st[s].transformer;
        const bench_head_point *h = bench_find_head(hp, nhp, st[s].rows);
        double th = h ? h->sec_cond + st[s].diff_steps * h->sec_step : 0;
        e->t_head += th;
        e->f_head += st[s].head;
        e->diff_steps += st[s].diff_steps;
        if (s >= K / 2) {  // the late half: DiSA's small step counts
            e->t_head_late += th;
            e->f_head_late += (double)st[s].head;
        }
    }
}

