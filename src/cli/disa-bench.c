// disa-bench: the analytic FLOP table of a sampling configuration and speed measurements
// against it (DESIGN §10; tools/bench.sh runs the whole set as `make bench`).
//
//   disa-bench --model PRESET|FILE [--num_iter K --cfg X --diff_sampler ... (main_mar.py flags)]
//              [--batch B] [--baseline_sampler default|DiSA|DDIM --baseline_steps N --baseline_iter K]
//              [--steps]                      per-AR-step FLOP schedule
//              [--sgemm [--sgemm_n N --sgemm_reps R]]   sgemm peak (median), OpenBLAS core
//              [--peak GFLOPS]                the peak to quote percentages against
//              [--run [--run_iter K] [--per-step]]     time sampler_run at a reduced K
//              [--extrapolate [--t_points N --t_reps R]]  per-step timing at the target K
//              [--vae FILE] [--features FILE] [--threads N] [--json FILE]
//
// Without --sgemm/--run/--extrapolate it prints the per-image FLOP table only (a preset
// name needs no weights). --run and --extrapolate need a model file (disa-mkmodel).
//
// Extrapolation: a full K = 64 run of MAR-B at batch 32 takes hours here, so the target
// schedule (--num_iter, exact mask schedule of sampler_run) is timed step shape by step
// shape with the engine's own forwards: mar_forward at --t_points known-token counts
// spread over the schedule (GFLOPS interpolated linearly in n_known between them, the
// FLOPs of every step are exact), and one diffusion step of the head (time embedding,
// diffloss_forward, CFG combine, gd_ddpm_step) at every distinct head row count the
// schedule has, times its distinct diffusion steps. Per image = sum over steps / B.
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/flops.h"
#include "disa/inception.h"
#include "disa/mar.h"
#include "disa/rng.h"
#include "disa/sampler.h"
#include "disa/vae.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill_normal(float *x, size_t n, uint32_t index) {
    rng_stream r;
    rng_init(&r, 12345, index, 99);
    rng_normals(&r, x, n);
}

static int usage(void) {
    fprintf(stderr,
            "usage: disa-bench --model PRESET|FILE [main_mar.py sampling flags] [--batch B]\n"
            "       [--baseline_sampler S --baseline_steps N --baseline_iter K] [--steps]\n"
            "       [--sgemm [--sgemm_n N] [--sgemm_reps R]] [--peak GFLOPS]\n"
            "       [--run [--run_iter K] [--per-step]] [--extrapolate [--t_points N] [--t_reps R]] [--bf16_check]\n"
            "       [--vae FILE] [--features FILE] [--threads N] [--json FILE]\n");
    return 2;
}

// ----------------------------------------------------------------------------
// sgemm peak

static double sgemm_peak(int n, int reps, double *gflops_all) {
    float *A = malloc(sizeof(float) * (size_t)n * n), *B = malloc(sizeof(float) * (size_t)n * n);
    float *C = malloc(sizeof(float) * (size_t)n * n);
    if (!A || !B || !C) return 0;
    fill_normal(A, (size_t)n * n, 1);
    fill_normal(B, (size_t)n * n, 2);
    blas_sgemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);  // warm-up: threads, pages
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now();
        blas_sgemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        gflops_all[r] = 2.0 * n * (double)n * n / (clock_now() - t0) / 1e9;
    }
    double tmp[64];
    memcpy(tmp, gflops_all, sizeof(double) * (size_t)reps);
    free(A);
    free(B);
    free(C);
    return median(tmp, reps);
}

// ----------------------------------------------------------------------------
// the real sampler at a reduced K, with per-AR-step deltas from the trace hook

typedef struct step_rec {
    int step, n_pred, n_steps;
    double t_tr, t_head;
    uint64_t f_tr, f_head;
} step_rec;

typedef struct run_trace {
    sample_stats *st;
    sample_stats last;
    step_rec rec[1024];
    int n;
} run_trace;

static void on_trace(void *ctx, int step, int mask_len, int n_steps, int n_pred, float cfg, const float *tokens) {
    run_trace *t = ctx;
    if (t->n >= 1024) return;
    step_rec *r = &t->rec[t->n++];
    r->step = step;
    r->n_pred = n_pred;
    r->n_steps = n_steps;
    r->t_tr = t->st->t_transformer - t->last.t_transformer;
    r->t_head = t->st->t_head - t->last.t_head;
    r->f_tr = t->st->flops_transformer - t->last.flops_transformer;
    r->f_head = t->st->flops_head - t->last.flops_head;
    t->last = *t->st;
}

// ----------------------------------------------------------------------------
// step-shape timing at the target K

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
    fill_normal(*tokens, (size_t)B * L * c->token_dim, 3);
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

// Median seconds of one transformer pass over B images with n_known known tokens and
// n_pred rows to return; *flops gets the pass's counted FLOPs.
static int time_transformer(const mar_model *m, arena *a, int B, int cfg, int n_known, int n_pred, int reps,
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
    for (int r = 0; r < reps && !rc; r++) {
        uint64_t f0 = blas_flops();
        double t0 = clock_now();
        rc = mar_forward(m, a, z, tokens, known, n_known, labels, cfg, pred, n_pred, B, NULL, NULL);
        t[r] = clock_now() - t0;
        *flops = blas_flops() - f0;
    }
    *sec = median(t, reps);
    arena_reset(a, mark);
    return rc;
}

// Median seconds of one diffusion step of the head over R2 rows (the time embedding,
// diffloss_forward, the CFG combine and one DDPM update, as sampler_run does them), and
// of the per-AR-step cond_embed.
static int time_head(const mar_model *m, arena *a, const gd_tables *tb, int R2, int cfg, double *sec_step,
                     double *sec_cond, uint64_t *fstep) {
    const mar_config *c = &m->cfg;
    int C = c->token_dim, W = m->head.w, R = cfg ? R2 / 2 : R2, rc = 0;
    size_t mark = arena_mark(a);
    float *zc = arena_floats(a, (size_t)R2 * c->dec_dim), *ce = arena_floats(a, (size_t)R2 * W);
    float *te = arena_floats(a, (size_t)W), *x = arena_floats(a, (size_t)R2 * C);
    float *out = arena_floats(a, (size_t)R2 * 2 * C), *eps = arena_floats(a, (size_t)R * C);
    float *var = arena_floats(a, (size_t)R * C), *noise = arena_floats(a, (size_t)R * C);
    if (!zc || !ce || !te || !x || !out || !eps || !var || !noise) return DISA_ENOMEM;
    fill_normal(zc, (size_t)R2 * c->dec_dim, 4);
    fill_normal(x, (size_t)R * C, 5);
    fill_normal(noise, (size_t)R * C, 6);
    double t0 = clock_now();
    diffloss_cond(&m->head, ce, zc, R2);
    *sec_cond = clock_now() - t0;
    double t[64];
    int n = 0;
    double start = clock_now();
    // At least 3 and up to 40 steps, about 0.3 s per row count.
    while (n < 40 && (n < 3 || clock_now() - start < 0.3)) {
        int i = tb->n / 2;
        uint64_t f0 = blas_flops();
        double t1 = clock_now();
        if (cfg) memcpy(x + (size_t)R * C, x, sizeof(float) * (size_t)R * C);
        diffloss_time(&m->head, te, (float)tb->timestep_map[i]);
        if ((rc = diffloss_forward(&m->head, a, out, x, te, ce, R2)) != 0) break;
        for (int r = 0; r < R; r++) {
            const float *oc = out + (size_t)r * 2 * C, *ou = cfg ? out + (size_t)(R + r) * 2 * C : oc;
            for (int k = 0; k < C; k++) {
                eps[(size_t)r * C + k] = cfg ? ou[k] + 2.0f * (oc[k] - ou[k]) : oc[k];
                var[(size_t)r * C + k] = oc[C + k];
            }
        }
        gd_ddpm_step(x, eps, var, noise, tb, i, 1.0f, R, C);
        t[n++] = clock_now() - t1;
        *fstep = blas_flops() - f0;
    }
    *sec_step = median(t, n);
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

// One network evaluation each in bf16 and fp32 on the same random inputs: the transformer
// with half the tokens known (step_inputs; z of the unknown rows, both CFG halves of B
// images) and one diffusion-head step (eps and variance channels) at t = 500.
static int bf16_check(const mar_model *m, arena *a, int B, int cfg, double *err_z, double *err_eps, double *err_var) {
    const mar_config *c = &m->cfg;
    int L = c->seq_len, C = c->token_dim, D = c->dec_dim, W = m->head.w, B2 = cfg ? 2 * B : B;
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
    fill_normal(x, (size_t)R2 * C, 12);
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {  // k = 0 fp32, 1 bf16
        int old = blas_set_precision(k ? BLAS_BF16 : BLAS_FP32);
        rc = mar_forward(m, a, z[k], tokens, known, n_known, labels, cfg, pred, n_pred, B, NULL, NULL);
        if (!rc) {
            diffloss_cond(&m->head, ce, z[k], R2);
            diffloss_time(&m->head, te, 500.0f);
            rc = diffloss_forward(&m->head, a, out[k], x, te, ce, R2);
        }
        blas_set_precision(old);
    }
    if (!rc) {
        *err_z = normwise(z[1], z[0], R2, D, 0, D);
        *err_eps = normwise(out[1], out[0], R2, 2 * C, 0, C);  // rows are [eps | variance values]
        *err_var = normwise(out[1], out[0], R2, 2 * C, C, C);
    }
    arena_reset(a, mark);
    return rc;
}

typedef struct point { int n_known; double sec, gflops; uint64_t flops; } point;

// GFLOPS at n_known, linear between the measured points, flat outside them.
static double interp_gflops(const point *p, int n, int n_known) {
    if (n_known <= p[0].n_known) return p[0].gflops;
    for (int i = 1; i < n; i++)
        if (n_known <= p[i].n_known) {
            double u = (double)(n_known - p[i - 1].n_known) / (p[i].n_known - p[i - 1].n_known);
            return p[i - 1].gflops + u * (p[i].gflops - p[i - 1].gflops);
        }
    return p[n - 1].gflops;
}

typedef struct head_point { int rows; double sec_step, sec_cond, gflops; uint64_t flops; } head_point;

static const head_point *find_head(const head_point *h, int n, int rows) {
    for (int i = 0; i < n; i++)
        if (h[i].rows == rows) return &h[i];
    return NULL;
}

// Extrapolated seconds of one whole schedule (per batch), split into the two phases.
typedef struct extrap { double t_tr, t_head, t_head_late, f_head_late; uint64_t f_tr, f_head; long diff_steps; } extrap;

static void extrapolate(extrap *e, const flops_step *st, int K, const point *tp, int ntp, const head_point *hp,
                        int nhp, const mar_config *c) {
    memset(e, 0, sizeof *e);
    for (int s = 0; s < K; s++) {
        if (st[s].rows == 0) continue;
        e->t_tr += st[s].transformer / (interp_gflops(tp, ntp, st[s].n_known) * 1e9);
        e->f_tr += st[s].transformer;
        const head_point *h = find_head(hp, nhp, st[s].rows);
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

// ----------------------------------------------------------------------------

typedef struct opts {
    const char *model, *vae, *features, *json;
    sample_params p, base;
    int batch, steps, sgemm, sgemm_n, sgemm_reps, run, run_iter, per_step, extrap, t_points, t_reps, threads;
    int bf16_check;
    double peak;
} opts;

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "disa-bench: --%s must be an integer in %d..%d, got '%s'\n", flag, lo, hi, v);
        return 2;
    }
    *out = (int)x;
    return 0;
}

static int parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    sample_params_init(&o->p);
    o->batch = 1, o->sgemm_n = 2048, o->sgemm_reps = 7, o->run_iter = 4, o->t_points = 3, o->t_reps = 1;
    const char *bs = "default", *bsteps = "100", *biter = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "disa-bench: unexpected argument '%s'\n", a);
            return usage();
        }
        const char *f = a + 2;
        if (!strcmp(f, "steps")) { o->steps = 1; continue; }
        if (!strcmp(f, "sgemm")) { o->sgemm = 1; continue; }
        if (!strcmp(f, "run")) { o->run = 1; continue; }
        if (!strcmp(f, "per-step")) { o->per_step = 1; continue; }
        if (!strcmp(f, "extrapolate")) { o->extrap = 1; continue; }
        if (!strcmp(f, "bf16_check")) { o->bf16_check = 1; continue; }
        if (!strcmp(f, "help")) return usage();
        if (i + 1 >= argc) {
            fprintf(stderr, "disa-bench: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(f, "model")) o->model = v;
        else if (!strcmp(f, "vae")) o->vae = v;
        else if (!strcmp(f, "features")) o->features = v;
        else if (!strcmp(f, "json")) o->json = v;
        else if (!strcmp(f, "batch")) rc = parse_int(f, v, 1, 4096, &o->batch);
        else if (!strcmp(f, "sgemm_n")) rc = parse_int(f, v, 64, 16384, &o->sgemm_n);
        else if (!strcmp(f, "sgemm_reps")) rc = parse_int(f, v, 1, 64, &o->sgemm_reps);
        else if (!strcmp(f, "run_iter")) rc = parse_int(f, v, 1, 1024, &o->run_iter);
        else if (!strcmp(f, "t_points")) rc = parse_int(f, v, 1, 16, &o->t_points);
        else if (!strcmp(f, "t_reps")) rc = parse_int(f, v, 1, 64, &o->t_reps);
        else if (!strcmp(f, "threads")) rc = parse_int(f, v, 1, 1024, &o->threads);
        else if (!strcmp(f, "baseline_sampler")) bs = v;
        else if (!strcmp(f, "baseline_steps")) bsteps = v;
        else if (!strcmp(f, "baseline_iter")) biter = v;
        else if (!strcmp(f, "peak")) {
            char *end;
            o->peak = strtod(v, &end);
            if (*end || o->peak <= 0) {
                fprintf(stderr, "disa-bench: --peak must be a positive GFLOPS value, got '%s'\n", v);
                return 2;
            }
        } else {
            int r = sample_params_set(&o->p, f, v);
            if (r == DISA_ENOTFOUND) {
                fprintf(stderr, "disa-bench: unknown flag '%s'\n", a);
                return usage();
            }
            if (r) {
                fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
                return 2;
            }
        }
        if (rc) return rc;
    }
    if (!o->model && !o->sgemm) {
        fprintf(stderr, "disa-bench: --model is required (a preset: mar_base, mar_large, mar_huge, or a file)\n");
        return usage();
    }
    // The baseline: the same settings with its own sampler, step count and K.
    o->base = o->p;
    char nit[16];
    snprintf(nit, sizeof nit, "%d", o->p.num_iter);
    if (sample_params_set(&o->base, "diff_sampler", bs) || sample_params_set(&o->base, "diff_upper_steps", bsteps) ||
        sample_params_set(&o->base, "diff_lower_steps", bsteps) ||
        sample_params_set(&o->base, "num_iter", biter ? biter : nit) || sample_params_check(&o->base) ||
        sample_params_check(&o->p)) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    return 0;
}

static FILE *g_json;
#define J(...) do { if (g_json) fprintf(g_json, __VA_ARGS__); } while (0)

static void pct_line(const char *what, double gflops, double peak) {
    if (peak > 0) printf("  %-34s %8.1f GFLOPS  %5.1f%% of peak\n", what, gflops, 100 * gflops / peak);
    else printf("  %-34s %8.1f GFLOPS\n", what, gflops);
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    if (o.threads) blas_set_threads(o.threads);
    if (o.p.precision == BLAS_BF16 && blas_bf16_available() != 0) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    char buf[512], ps[512];
    printf("disa-bench: %s\n", cpu_blas_describe(buf, sizeof buf));
    if (o.json && !(g_json = fopen(o.json, "w"))) {
        fprintf(stderr, "disa-bench: %s: cannot create: %s\n", o.json, strerror(errno));
        return 1;
    }
    J("{\n  \"blas_core\": \"%s\", \"blas_threads\": %d", blas_corename(), blas_get_threads());

    if (o.sgemm) {
        double all[64];
        double g = sgemm_peak(o.sgemm_n, o.sgemm_reps, all);
        printf("sgemm %d^3, %d threads, %d reps: median %.1f GFLOPS (", o.sgemm_n, blas_get_threads(), o.sgemm_reps, g);
        J(",\n  \"sgemm\": {\"n\": %d, \"reps\": %d, \"median_gflops\": %.2f, \"all\": [", o.sgemm_n, o.sgemm_reps, g);
        for (int r = 0; r < o.sgemm_reps; r++) {
            printf("%s%.0f", r ? " " : "", all[r]);
            J("%s%.2f", r ? ", " : "", all[r]);
        }
        printf(")\n");
        J("]}");
        if (o.peak == 0) o.peak = g;
    }
    if (o.peak > 0) J(",\n  \"peak_gflops\": %.2f", o.peak);
    if (!o.model) goto done;

    // The model: a preset config, or a file (weights needed for --run / --extrapolate).
    mar_model m;
    memset(&m, 0, sizeof m);
    int have_weights = 0;
    if (mar_config_preset(&m.cfg, o.model) != 0) {
        if (mar_open(&m, o.model) != 0) {
            fprintf(stderr, "disa-bench: --model: not a preset (mar_base, mar_large, mar_huge) and %s\n", disa_errmsg());
            return 2;
        }
        have_weights = 1;
    }
    const mar_config *c = &m.cfg;
    if ((o.run || o.extrap || o.bf16_check) && !have_weights) {
        fprintf(stderr, "disa-bench: --run, --extrapolate and --bf16_check need a model file (build/bin/disa-mkmodel --preset %s "
                        "--out FILE)\n", o.model);
        return 2;
    }
    vae_config vc;
    vae_config_kl16(&vc);
    const int B = o.batch, K = o.p.num_iter, cfg = o.p.cfg != 1.0;

    // ---- the FLOP table
    flops_image fi, fb;
    if (flops_per_image(&fi, c, &o.p, B, &vc, 1) || flops_per_image(&fb, c, &o.base, B, &vc, 1)) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    printf("model %s: enc %dx%d, dec %dx%d, heads %d, head %dx%d, seq %d x %d\n", o.model, c->enc_depth, c->enc_dim,
           c->dec_depth, c->dec_dim, c->enc_heads, c->diffloss_d, c->diffloss_w, c->seq_len, c->token_dim);
    printf("per image (batch %d), GFLOP:   %-14s %-14s\n", B, "this config", "baseline");
    printf("  config                     %s\n", sample_params_str(&o.p, ps, sizeof ps));
    printf("  baseline                   %s\n", sample_params_str(&o.base, ps, sizeof ps));
    printf("  AR steps (passes)          %14d %14d\n", fi.ar_steps, fb.ar_steps);
    printf("  diffusion NFE per token    %14.2f %14.2f\n", fi.nfe_per_token, fb.nfe_per_token);
    printf("  transformer                %14.1f %14.1f\n", fi.transformer / 1e9, fb.transformer / 1e9);
    printf("  diffusion head             %14.1f %14.1f\n", fi.head / 1e9, fb.head / 1e9);
    printf("  KL-16 decode               %14.1f %14.1f\n", fi.decode / 1e9, fb.decode / 1e9);
    printf("  Inception features         %14.1f %14.1f\n", fi.features / 1e9, fb.features / 1e9);
    printf("  total                      %14.1f %14.1f\n", fi.total / 1e9, fb.total / 1e9);
    double sp_sample = (fb.transformer + fb.head) / (fi.transformer + fi.head), sp_total = fb.total / fi.total;
    printf("predicted speedup vs baseline (equal GFLOPS): sampling %.3fx, end to end %.3fx; head alone %.2fx\n",
           sp_sample, sp_total, fb.head / fi.head);
    J(",\n  \"model\": \"%s\", \"batch\": %d, \"config\": \"%s\"", o.model, B, sample_params_str(&o.p, ps, sizeof ps));
    J(",\n  \"baseline\": \"%s\"", sample_params_str(&o.base, ps, sizeof ps));
    J(",\n  \"flops_per_image\": {\"transformer\": %.6e, \"head\": %.6e, \"decode\": %.6e, \"features\": %.6e, "
      "\"total\": %.6e, \"nfe_per_token\": %.4f, \"ar_steps\": %d}", fi.transformer, fi.head, fi.decode, fi.features,
      fi.total, fi.nfe_per_token, fi.ar_steps);
    J(",\n  \"baseline_flops_per_image\": {\"transformer\": %.6e, \"head\": %.6e, \"decode\": %.6e, \"features\": "
      "%.6e, \"total\": %.6e, \"nfe_per_token\": %.4f, \"ar_steps\": %d}", fb.transformer, fb.head, fb.decode,
      fb.features, fb.total, fb.nfe_per_token, fb.ar_steps);
    J(",\n  \"predicted_speedup\": {\"sampling\": %.4f, \"end_to_end\": %.4f, \"head\": %.4f}", sp_sample, sp_total,
      fb.head / fi.head);

    flops_step *sched = calloc((size_t)K, sizeof *sched);
    flops_step *bsched = calloc((size_t)o.base.num_iter, sizeof *bsched);
    flops_sample fs, fbs;
    if (!sched || !bsched || flops_sample_run(&fs, sched, c, &o.p, B) || flops_sample_run(&fbs, bsched, c, &o.base, B)) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 1;
    }
    if (o.steps) {
        printf("step  n_known  n_pred  rows  diff_steps  transformer_GFLOP  head_GFLOP   (batch %d)\n", B);
        for (int s = 0; s < K; s++)
            printf("%4d  %7d  %6d  %4d  %10d  %17.2f  %10.3f\n", s, sched[s].n_known, sched[s].n_pred, sched[s].rows,
                   sched[s].diff_steps, sched[s].transformer / 1e9, sched[s].head / 1e9);
    }

    // ---- the real sampler at a reduced K
    if (o.bf16_check) {
        if (blas_bf16_available() != 0) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 2;
        }
        int B2 = cfg ? 2 * B : B;
        arena a;
        size_t rows = (size_t)B2 * c->seq_len;
        size_t bytes = mar_forward_scratch_bytes(c, B2) + diffloss_scratch_bytes(&m.head, (int)rows) +
                       sizeof(float) * (rows * (2 * c->dec_dim + m.head.w + 9 * c->token_dim) + m.head.w) +
                       sizeof(float) * (size_t)B * c->seq_len * c->token_dim + (size_t)B * c->seq_len * 6 + 64 * 64;
        double ez, ee, ev;
        if (arena_init(&a, bytes, "bf16 check") || bf16_check(&m, &a, B, cfg, &ez, &ee, &ev)) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 1;
        }
        arena_free(&a);
        printf("bf16 vs fp32, one evaluation (batch %d, half the tokens known): transformer z normwise error %.3g; "
               "diffusion head eps %.3g, variance channels %.3g\n", B, ez, ee, ev);
        J(",\n  \"bf16_check\": {\"batch\": %d, \"z\": %.4g, \"eps\": %.4g, \"var\": %.4g}", B, ez, ee, ev);
    }

    if (o.run) {
        sample_params rp = o.p;
        snprintf(buf, sizeof buf, "%d", o.run_iter);
        sample_params_set(&rp, "num_iter", buf);
        sampler s;
        ar_rng_philox rng;
        uint32_t *index = malloc(sizeof(uint32_t) * (size_t)B);
        int *labels = malloc(sizeof(int) * (size_t)B);
        float *tokens = malloc(sizeof(float) * (size_t)B * c->seq_len * c->token_dim);
        run_trace *tr = calloc(1, sizeof *tr);
        if (!index || !labels || !tokens || !tr) return 1;
        for (int b = 0; b < B; b++) index[b] = (uint32_t)b, labels[b] = b % c->class_num;
        if (sampler_init(&s, &m, &rp, B) || ar_rng_philox_init(&rng, 1, index, B)) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 1;
        }
        sample_stats st = {0};
        tr->st = &st;
        s.trace = on_trace;
        s.trace_ctx = tr;
        double t0 = clock_now();
        if (sampler_run(&s, &rng.base, labels, B, tokens, &st) != 0) {
            fprintf(stderr, "disa-bench: sampling failed: %s\n", disa_errmsg());
            return 1;
        }
        double wall = clock_now() - t0;
        flops_sample pr;
        flops_sample_run(&pr, NULL, c, &rp, B);
        double gt = st.flops_transformer / st.t_transformer / 1e9, gh = st.flops_head / st.t_head / 1e9;
        uint64_t row_steps = st.head_row_steps;
        printf("run: sampler_run, batch %d, %s: wall %.2f s (%.3f s/image)\n", B, sample_params_str(&rp, ps, sizeof ps),
               wall, wall / B);
        printf("  transformer %.2f s, %.1f GFLOP (model %s), head %.2f s, %.1f GFLOP (model %s), other %.3f s\n",
               st.t_transformer, st.flops_transformer / 1e9, st.flops_transformer == pr.transformer ? "equal" : "DIFFERS",
               st.t_head, st.flops_head / 1e9, st.flops_head == pr.head ? "equal" : "DIFFERS", st.t_other);
        pct_line("transformer", gt, o.peak);
        pct_line("diffusion head", gh, o.peak);
        pct_line("sampling (FLOP-weighted)", (st.flops_transformer + st.flops_head) / wall / 1e9, o.peak);
        J(",\n  \"run\": {\"num_iter\": %d, \"wall_s\": %.4f, \"t_transformer\": %.4f, \"t_head\": %.4f, \"t_other\": %.4f, "
          "\"flops_transformer\": %llu, \"flops_head\": %llu, \"model_equal\": %s, \"gflops_transformer\": %.2f, "
          "\"gflops_head\": %.2f, \"steps\": [", o.run_iter, wall, st.t_transformer, st.t_head, st.t_other,
          (unsigned long long)st.flops_transformer, (unsigned long long)st.flops_head,
          st.flops_transformer == pr.transformer && st.flops_head == pr.head ? "true" : "false", gt, gh);
        if (o.per_step)
            printf("  step  n_pred  diff_steps  transformer_s  head_s  s/diff_step  GFLOPS_tr  GFLOPS_head\n");
        for (int i = 0; i < tr->n; i++) {
            step_rec *r = &tr->rec[i];
            double g1 = r->t_tr > 0 ? r->f_tr / r->t_tr / 1e9 : 0, g2 = r->t_head > 0 ? r->f_head / r->t_head / 1e9 : 0;
            if (o.per_step)
                printf("  %4d  %6d  %10d  %13.3f  %6.3f  %11.4f  %9.1f  %11.1f\n", r->step, r->n_pred, r->n_steps, r->t_tr,
                       r->t_head, r->t_head / r->n_steps, g1, g2);
            J("%s\n    {\"step\": %d, \"n_pred\": %d, \"diff_steps\": %d, \"t_transformer\": %.4f, \"t_head\": %.4f, "
              "\"gflops_transformer\": %.2f, \"gflops_head\": %.2f}", i ? "," : "", r->step, r->n_pred, r->n_steps,
              r->t_tr, r->t_head, g1, g2);
        }
        J("], \"head_row_steps\": %llu}", (unsigned long long)row_steps);
        sampler_free(&s);
        ar_rng_philox_free(&rng);
        free(index);
        free(labels);
        free(tokens);
        free(tr);
    }

    // ---- step-shape timing at the target K
    if (o.extrap) {
        // The step shapes are timed with the sampler's Linear precision (sampler_run sets it
        // itself for --run); decode and features below stay fp32.
        int old_precision = blas_set_precision(o.p.precision);
        int B2 = cfg ? 2 * B : B;
        arena a;
        size_t rows_max = (size_t)B2 * c->seq_len;
        size_t bytes = mar_forward_scratch_bytes(c, B2) + diffloss_scratch_bytes(&m.head, (int)rows_max) +
                       sizeof(float) * (rows_max * (c->dec_dim + m.head.w + 6 * c->token_dim) + m.head.w) +
                       sizeof(float) * (size_t)B * c->seq_len * c->token_dim + (size_t)B * c->seq_len * 6 + 64 * 64;
        if (arena_init(&a, bytes, "bench scratch")) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 1;
        }
        double tw;
        uint64_t fw;
        // Warm-up: page in the weights and the arena, start the BLAS threads.
        if (time_transformer(&m, &a, 1, cfg, 0, 1, 1, &tw, &fw)) goto fail_extrap;
        // Transformer at t_points steps spread over the executed steps of the target.
        int exec[1024], ne = 0;
        for (int s = 0; s < K && ne < 1024; s++)
            if (sched[s].rows) exec[ne++] = s;
        point tp[16];
        int ntp = o.t_points < ne ? o.t_points : ne;
        printf("extrapolate to K %d, batch %d: transformer passes (median of %d)\n", K, B, o.t_reps);
        J(",\n  \"extrapolate\": {\"num_iter\": %d, \"t_points\": [", K);
        for (int i = 0; i < ntp; i++) {
            int s = exec[ntp == 1 ? ne / 2 : (int)((long long)i * (ne - 1) / (ntp - 1))];
            tp[i].n_known = sched[s].n_known;
            if (time_transformer(&m, &a, B, cfg, sched[s].n_known, sched[s].n_pred, o.t_reps, &tp[i].sec, &tp[i].flops))
                goto fail_extrap;
            tp[i].gflops = tp[i].flops / tp[i].sec / 1e9;
            printf("  step %2d  n_known %3d: %8.3f s per AR step, %8.1f GFLOP (model %s), %7.1f GFLOPS%s",
                   s, tp[i].n_known, tp[i].sec, tp[i].flops / 1e9, tp[i].flops == sched[s].transformer ? "equal" : "DIFFERS",
                   tp[i].gflops, o.peak > 0 ? "" : "\n");
            if (o.peak > 0) printf(" %5.1f%% of peak\n", 100 * tp[i].gflops / o.peak);
            J("%s\n    {\"step\": %d, \"n_known\": %d, \"n_pred\": %d, \"s\": %.4f, \"flops\": %llu, \"gflops\": %.2f}",
              i ? "," : "", s, tp[i].n_known, sched[s].n_pred, tp[i].sec, (unsigned long long)tp[i].flops, tp[i].gflops);
        }
        J("],\n    \"head_points\": [");
        // Head: every distinct row count of both schedules.
        head_point hp[2048];
        int nhp = 0;
        gd_tables tb;
        if (gd_tables_init(&tb, 50, GD_SAMPLER_DISA)) goto fail_extrap;
        printf("  head, one diffusion step (median over >= 3 steps or 0.3 s):\n");
        for (int pass = 0; pass < 2; pass++) {
            const flops_step *sc = pass ? bsched : sched;
            int k = pass ? o.base.num_iter : K;
            for (int s = 0; s < k; s++) {
                if (!sc[s].rows || find_head(hp, nhp, sc[s].rows) || nhp >= 2048) continue;
                head_point *h = &hp[nhp++];
                h->rows = sc[s].rows;
                if (time_head(&m, &a, &tb, h->rows, cfg, &h->sec_step, &h->sec_cond, &h->flops)) goto fail_extrap;
                h->gflops = h->flops / h->sec_step / 1e9;
                printf("    rows %5d: %9.5f s per diffusion step, %7.1f GFLOPS (model %s)%s", h->rows, h->sec_step,
                       h->gflops, h->flops == flops_head_step(c, h->rows) ? "equal" : "DIFFERS", o.peak > 0 ? "" : "\n");
                if (o.peak > 0) printf(" %5.1f%% of peak\n", 100 * h->gflops / o.peak);
                J("%s\n      {\"rows\": %d, \"s_per_diff_step\": %.6f, \"s_cond\": %.6f, \"gflops\": %.2f}",
                  nhp > 1 ? "," : "", h->rows, h->sec_step, h->sec_cond, h->gflops);
            }
        }
        gd_tables_free(&tb);
        extrap e, eb;
        extrapolate(&e, sched, K, tp, ntp, hp, nhp, c);
        extrapolate(&eb, bsched, o.base.num_iter, tp, ntp, hp, nhp, c);
        double ti = (e.t_tr + e.t_head) / B, tbi = (eb.t_tr + eb.t_head) / B;
        double g_i = (e.f_tr + e.f_head) / (e.t_tr + e.t_head) / 1e9, g_b = (eb.f_tr + eb.f_head) / (eb.t_tr + eb.t_head) / 1e9;
        double g_late = e.t_head_late > 0 ? e.f_head_late / e.t_head_late / 1e9 : 0;
        printf("  per image, K %d, batch %d      transformer s   head s   total s   GFLOPS\n", K, B);
        printf("    %-26s %13.2f %8.2f %9.2f %8.1f\n", "this config", e.t_tr / B, e.t_head / B, ti, g_i);
        printf("    %-26s %13.2f %8.2f %9.2f %8.1f\n", "baseline", eb.t_tr / B, eb.t_head / B, tbi, g_b);
        printf("  per batch: %.3f s per AR step (transformer, mean), %.5f s per diffusion step (head, mean)\n",
               e.t_tr / fs.ar_steps, e.t_head / (double)e.diff_steps);
        printf("  DiSA speedup vs baseline: measured (extrapolated) %.3fx, predicted by FLOPs %.3fx\n", tbi / ti,
               sp_sample);
        pct_line("sampling, this config", g_i, o.peak);
        pct_line("head, this config", (double)e.f_head / e.t_head / 1e9, o.peak);
        pct_line("head, late half of the steps", g_late, o.peak);
        J("],\n    \"per_image\": {\"t_transformer\": %.4f, \"t_head\": %.4f, \"t_total\": %.4f, \"gflops\": %.2f, "
          "\"gflops_head\": %.2f, \"gflops_head_late\": %.2f, \"gflops_transformer\": %.2f, \"ar_steps\": %d, "
          "\"diff_steps\": %ld, \"s_per_ar_step\": %.4f, \"s_per_diff_step\": %.6f},", e.t_tr / B, e.t_head / B, ti, g_i,
          (double)e.f_head / e.t_head / 1e9, g_late, (double)e.f_tr / e.t_tr / 1e9, fs.ar_steps, e.diff_steps,
          e.t_tr / fs.ar_steps, e.t_head / (double)e.diff_steps);
        J("\n    \"baseline_per_image\": {\"t_transformer\": %.4f, \"t_head\": %.4f, \"t_total\": %.4f, \"gflops\": %.2f, "
          "\"gflops_head\": %.2f, \"s_per_diff_step\": %.6f},", eb.t_tr / B, eb.t_head / B, tbi, g_b,
          (double)eb.f_head / eb.t_head / 1e9, eb.t_head / (double)eb.diff_steps);
        J("\n    \"speedup_measured\": %.4f, \"speedup_predicted\": %.4f,", tbi / ti, sp_sample);
        // The two schedules step by step, so another implementation (tools/bench_torch.py)
        // can be timed at the same shapes and summed the same way. transformer_full: the
        // pass with a full last decoder block, as an implementation without the row
        // restriction computes it.
        for (int pass = 0; pass < 2; pass++) {
            const flops_step *sc = pass ? bsched : sched;
            int k = pass ? o.base.num_iter : K;
            J("\n    \"%s\": [", pass ? "baseline_schedule" : "schedule");
            int first = 1;
            for (int st = 0; st < k; st++) {
                if (!sc[st].rows) continue;
                J("%s\n      {\"step\": %d, \"n_known\": %d, \"n_pred\": %d, \"rows\": %d, \"diff_steps\": %d, "
                  "\"transformer\": %llu, \"transformer_full\": %llu, \"head\": %llu}",
                  first ? "" : ",", sc[st].step, sc[st].n_known, sc[st].n_pred, sc[st].rows, sc[st].diff_steps,
                  (unsigned long long)sc[st].transformer,
                  (unsigned long long)flops_transformer_pass(c, B, cfg, sc[st].n_known, 0),
                  (unsigned long long)sc[st].head);
                first = 0;
            }
            J("]%s", pass ? "}" : ",");
        }
        arena_free(&a);
        blas_set_precision(old_precision);
        goto extrap_done;
    fail_extrap:
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 1;
    extrap_done:;
    }

    // ---- decode and features per image
    if (o.vae) {
        vae_model v;
        if (vae_open(&v, o.vae)) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 1;
        }
        int h = c->seq_h * c->patch_size, H = h * vae_upscale(&v.cfg);
        arena a;
        float *lat = malloc(sizeof(float) * (size_t)v.cfg.embed_dim * h * h);
        float *img = malloc(sizeof(float) * (size_t)v.cfg.out_ch * H * H);
        if (!lat || !img || arena_init(&a, vae_decode_scratch_bytes(&v.cfg, 1, h, h), "decode")) return 1;
        fill_normal(lat, (size_t)v.cfg.embed_dim * h * h, 7);
        double t[8];
        uint64_t f = 0;
        vae_decode(&v, &a, img, lat, 1, h, h);  // warm-up
        for (int r = 0; r < 3; r++) {
            uint64_t f0 = blas_flops();
            double t0 = clock_now();
            if (vae_decode(&v, &a, img, lat, 1, h, h)) return 1;
            t[r] = clock_now() - t0;
            f = blas_flops() - f0;
        }
        double s = median(t, 3), pred = vae_decode_flops(&v.cfg, h, h);
        printf("KL-16 decode: %.3f s per image (median of 3), %.1f GFLOP (vae_decode_flops %.1f)\n", s, f / 1e9, pred / 1e9);
        pct_line("decode", f / s / 1e9, o.peak);
        J(",\n  \"decode\": {\"s_per_image\": %.4f, \"flops\": %llu, \"flops_model\": %.0f, \"gflops\": %.2f}", s,
          (unsigned long long)f, pred, f / s / 1e9);
        arena_free(&a);
        free(lat);
        free(img);
        vae_close(&v);
    }
    if (o.features) {
        inception_model *inc = calloc(1, sizeof *inc);
        if (!inc || inception_open(inc, o.features)) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 1;
        }
        int S = 256;
        uint8_t *img = malloc((size_t)3 * S * S);
        float feat[INCEPTION_FEAT], logits[INCEPTION_LOGITS];
        arena a;
        if (!img || arena_init(&a, inception_scratch_bytes(), "inception")) return 1;
        for (int i = 0; i < 3 * S * S; i++) img[i] = (uint8_t)(i * 37 % 251);
        inception_forward(inc, &a, feat, logits, img, 1, S, S);  // warm-up
        double t[8];
        uint64_t f = 0;
        for (int r = 0; r < 3; r++) {
            uint64_t f0 = blas_flops();
            double t0 = clock_now();
            if (inception_forward(inc, &a, feat, logits, img, 1, S, S)) return 1;
            t[r] = clock_now() - t0;
            f = blas_flops() - f0;
        }
        double s = median(t, 3);
        uint64_t pred = flops_inception(1);
        printf("Inception features: %.3f s per %dx%d image (median of 3), %.2f GFLOP (model %s)\n", s, S, S, f / 1e9,
               f == pred ? "equal" : "DIFFERS");
        pct_line("features", f / s / 1e9, o.peak);
        J(",\n  \"features\": {\"s_per_image\": %.4f, \"flops\": %llu, \"flops_model\": %llu, \"gflops\": %.2f}", s,
          (unsigned long long)f, (unsigned long long)pred, f / s / 1e9);
        arena_free(&a);
        free(img);
        inception_close(inc);
        free(inc);
    }
    free(sched);
    free(bsched);
    if (have_weights) mar_close(&m);
    else {
        free(m.enc);
        free(m.dec);
        free(m.head.blocks);
    }
done:
    J("\n}\n");
    if (g_json && fclose(g_json) != 0) {
        fprintf(stderr, "disa-bench: %s: write failed\n", o.json);
        return 1;
    }
    return 0;
}
