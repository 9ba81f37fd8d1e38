// estimate.c: the cost of a job from the FLOP model and a short calibration
// (include/disa/estimate.h).
#include "disa/estimate.h"
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/err.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct budget {
    double t_end;
} budget;

// The sampler's poll hook: stop once the budget is spent.
static int over_budget(void *ctx) { return clock_now() > ((const budget *)ctx)->t_end; }

// Seconds per image to write PNGs as a run does (decode_write_pngs: atomic files, one
// folder fsync per unit) on the filesystem of the job's output folder: B images into a
// temporary folder beside where it will be, removed again. 0 when no folder can be made
// there (the run itself would refuse such an output_dir at its start).
static double time_png_writes(const job *jb, const uint8_t *pix, int B, int H, int W, int C, const int *labels) {
    char base[4096], tmp[4200], f[4300], sampling[512];
    snprintf(base, sizeof base, "%s", jb->output_dir);
    while (access(base, F_OK) != 0 && strcmp(base, ".") != 0 && strcmp(base, "/") != 0) {
        char up[4096];
        snprintf(up, sizeof up, "%s", base);
        snprintf(base, sizeof base, "%s", dirname(up));
    }
    snprintf(tmp, sizeof tmp, "%s/.disa-estimate.XXXXXX", base);
    if (!mkdtemp(tmp)) return 0;
    png_recipe rec = {jb->name, job_sampling_str(jb, sampling, sizeof sampling), jb->seed};
    double t0 = clock_now();
    int rc = decode_write_pngs(tmp, pix, B, H, W, C, 0, labels, &rec);
    double t = clock_now() - t0;
    for (int b = 0; b < B; b++) {
        snprintf(f, sizeof f, "%s/%05d.png", tmp, b);
        unlink(f);
    }
    rmdir(tmp);
    disa_err_clear();
    return rc == 0 ? t / B : 0;
}

int estimate_job(estimate *e, unit_runner *ur, int j, int precision, double budget_s) {
    const job *jb = &ur->jobs->jobs[j];
    unit_job *uj = &ur->job[j];
    memset(e, 0, sizeof *e);
    e->precision = precision;
    e->threads = blas_get_threads();
    int B = job_unit_count(jb, 0), rc;
    sample_flops sf;
    if ((rc = uj->fam->flops(&sf, uj->model, &jb->params, jb->eval_bsz)) != 0) return rc;
    e->flops_sample = sf.transformer + sf.head;
    e->flops_decode = decode_flops(&uj->info, uj->vae);

    // The model and its decoder prepared for `precision` (a model serves samplers of the
    // precision it is prepared for), then sampling: the first unit's images, as the run
    // makes them, until the budget is spent.
    if ((rc = uj->fam->prepare(uj->model, precision)) != 0) return rc;
    if (uj->vae && (rc = vae_prepare(uj->vae, (precision_kind)precision, uj->info.H, uj->info.W)) != 0) return rc;
    void *s = NULL;
    if ((rc = uj->fam->sampler_new(&s, uj->model, &jb->params, precision, jb->eval_bsz)) != 0) return rc;
    int labels[JOB_MAX_EVAL_BSZ];
    uint32_t index[JOB_MAX_EVAL_BSZ];
    for (int b = 0; b < B; b++) {
        labels[b] = job_label(jb, b, uj->info.class_num);
        index[b] = (uint32_t)b;
    }
    memset(ur->tokens, 0, sizeof(float) * (size_t)B * uj->info.token_dims[0] * uj->info.token_dims[1]);
    sample_stats st = {0};
    double t0 = clock_now();
    budget bud = {t0 + budget_s};
    uint64_t f0 = blas_flops();
    rc = uj->fam->sampler_run(s, ur->tokens, labels, jb->seed, index, B, &st, over_budget, &bud);
    double ts = clock_now() - t0;
    uint64_t fs = blas_flops() - f0;
    uj->fam->sampler_delete(s);
    if (rc && rc != DISA_ECANCELED) return rc;
    e->calib_complete = rc == 0;
    if (e->calib_complete) {
        e->s_sample = ts / B;
        e->gflops_sample = e->s_sample > 0 ? e->flops_sample / e->s_sample / 1e9 : 0;
    } else {
        // A partial unit: each phase's rate so far, over the FLOPs a whole image needs in
        // it. The early AR steps run the smallest GEMMs (fewest tokens known, fewest
        // predicted), so these rates are the lowest of the run and the time errs long.
        double rt = st.t_transformer > 0 ? (double)st.flops_transformer / st.t_transformer : 0;
        double rh = st.t_head > 0 ? (double)st.flops_head / st.t_head : 0;
        double r_all = ts > 0 ? (double)fs / ts : 0;
        if (rt <= 0) rt = r_all;
        if (rh <= 0) rh = r_all;
        double other = fs > 0 ? st.t_other * (e->flops_sample * B) / (double)fs : 0;
        e->s_sample = rt > 0 && rh > 0 ? sf.transformer / rt + sf.head / rh + other / B : 0;
        e->gflops_sample = e->s_sample > 0 ? e->flops_sample / e->s_sample / 1e9 : 0;
    }
    e->flops_measured = (double)fs;

    // Decoding and features of two images (whatever the tokens hold: the cost does not
    // depend on the values).
    int Bd = B < 2 ? B : 2, H, W, C;
    unit_runner_geometry(ur, j, &H, &W, &C);
    uj->fam->to_latent(uj->model, ur->latent, ur->tokens, Bd);
    uint64_t fd = 0;
    double t1 = clock_now();
    if ((rc = decoder_run(&ur->dec, ur->pix, ur->latent, Bd, &uj->info, uj->vae, &fd)) != 0) return rc;
    double t2 = clock_now();
    e->s_decode = (t2 - t1) / Bd;
    e->gflops_decode = t2 > t1 ? (double)fd / (t2 - t1) / 1e9 : 0;
    if (jb->png) e->s_io = time_png_writes(jb, ur->pix, Bd, H, W, C, labels);
    if (uj->feat) {
        f0 = blas_flops();
        if ((rc = featnet_run(uj->feat, ur->feat_buf, ur->logit_buf, ur->pix, Bd, H, W, C)) != 0) return rc;
        double t3 = clock_now();
        e->flops_feat = (double)(blas_flops() - f0) / Bd;
        e->s_feat = (t3 - t2) / Bd;
        e->gflops_feat = t3 > t2 ? e->flops_feat * Bd / (t3 - t2) / 1e9 : 0;
    }
    e->s_image = e->s_sample + e->s_decode + e->s_io + e->s_feat;
    e->calib_seconds = clock_now() - t0;
    return 0;
}

static void hms(char *buf, size_t n, double s) {
    if (s < 100) snprintf(buf, n, "%.1f s", s);
    else if (s < 3600 * 48) snprintf(buf, n, "%d:%02d:%02d", (int)(s / 3600), (int)(s / 60) % 60, (int)s % 60);
    else snprintf(buf, n, "%.1f days", s / 86400);
}

void estimate_print(const estimate *e, const job *jb, int64_t images, const int *cores, int n_cores) {
    printf("%s: %lld images, %s, calibrated on %d BLAS thread%s (%.1f s%s)\n", jb->name, (long long)images,
           precision_name((precision_kind)e->precision), e->threads, e->threads == 1 ? "" : "s", e->calib_seconds,
           e->calib_complete ? ", a whole unit" : ", part of a unit");
    if (!e->calib_complete)
        printf("  (the calibration stopped inside the first unit: the early AR steps run the smallest GEMMs,\n"
               "   so the sampling time below errs long)\n");
    printf("  %-10s %12s %12s %12s\n", "phase", "GFLOP/image", "GFLOPS here", "s/image here");
    printf("  %-10s %12.3f %12.1f %12.4f\n", "sampling", e->flops_sample / 1e9, e->gflops_sample, e->s_sample);
    if (e->flops_decode > 0)
        printf("  %-10s %12.3f %12.1f %12.4f\n", "decode", e->flops_decode / 1e9, e->gflops_decode, e->s_decode);
    if (e->s_io > 0) printf("  %-10s %12s %12s %12.4f\n", "PNG files", "", "", e->s_io);
    if (e->s_feat > 0) printf("  %-10s %12.3f %12.1f %12.4f\n", "features", e->flops_feat / 1e9, e->gflops_feat, e->s_feat);
    double core_s = e->s_image * e->threads;
    printf("  %-10s %12.3f %12s %12.4f   (%.4g core-seconds per image)\n", "total",
           (e->flops_sample + e->flops_decode + e->flops_feat) / 1e9, "", e->s_image, core_s);
    for (int k = 0; k < n_cores; k++) {
        char w[32];
        hms(w, sizeof w, core_s * (double)images / cores[k]);
        printf("  on %5d cores%s: %12s wall, %.2f core-hours\n", cores[k], k == 0 ? " (here)" : "        ", w,
               core_s * (double)images / 3600.0);
    }
}
