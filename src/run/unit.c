// unit.c: the unit pipeline (include/disa/unit.h): the models a rank holds for the jobs
// of a run, and one unit from sampling to PNGs and feature shard.
#include "disa/unit.h"
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/folder.h"
#include "disa/log.h"
#include "disa/refstats.h"
#include "disa/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void unit_runner_geometry(const unit_runner *ur, int j, int *H, int *W, int *C) {
    decode_geometry(&ur->job[j].info, ur->job[j].vae, H, W, C);
}

// ----------------------------------------------------------------------------
// opening

// The earlier job naming the same file as job j under `field`, or -1. With same_precision
// it must also run in job j's precision (a model or decoder is prepared for one).
static int same_file(const job_list *jobs, int j, size_t field, int same_precision) {
    const char *f = (const char *)&jobs->jobs[j] + field;
    for (int k = 0; k < j; k++)
        if (strcmp((const char *)&jobs->jobs[k] + field, f) == 0 &&
            (!same_precision || jobs->jobs[k].precision == jobs->jobs[j].precision))
            return k;
    return -1;
}

// A simulated job's time per image and polls per unit (simulate.h).
static int simulate_job(unit_job *uj, const job *jb, int rank) {
    int rc = uj->fam->flops(&uj->sim_flops, uj->model, &jb->params, jb->eval_bsz);
    if (rc) return rc;
    double flops = uj->sim_flops.transformer + uj->sim_flops.head + decode_flops(&uj->info, uj->vae);
    if (jb->sim.s_per_image > 0) uj->sim_s_image = jb->sim.s_per_image;
    else if (jb->sim.gflops > 0) uj->sim_s_image = flops / (jb->sim.gflops * 1e9);
    else return disa_err(DISA_EINTERNAL, "%s: --simulate flops without a rate", jb->name);
    // One poll per transformer pass and head step: the real sampler polls more often.
    uj->sim_polls = (int)(uj->sim_flops.ar_steps * (1 + uj->sim_flops.nfe_per_token));
    char sim[64];
    if (rank == 0)
        LOG(LOG_INFO, "%s: simulated (--simulate %s): %.4g s per image (the FLOP model: %.4g GFLOP per image), %d polls "
            "per unit", jb->name, sim_str(&jb->sim, sim, sizeof sim), uj->sim_s_image, flops / 1e9, uj->sim_polls);
    return 0;
}

// Job j's model, decoder and feature net: opened, or shared with an earlier job.
static int open_job(unit_runner *ur, int j) {
    const job *jb = &ur->jobs->jobs[j];
    unit_job *uj = &ur->job[j];
    int rc, k;
    uj->fam = job_family(jb);
    // Every rank checks its own CPU: the nodes of a cluster job may differ. bf16 is
    // refused before the model is read.
    if (jb->precision != PRECISION_FP32 && (rc = bf16_available()) != 0) return rc;
    if ((k = same_file(ur->jobs, j, offsetof(job, model), 1)) >= 0) {
        uj->model = ur->job[k].model;
    } else {
        if ((rc = uj->fam->open(&uj->model, jb->model)) != 0) return rc;
        uj->owns_model = 1;
        if ((rc = uj->fam->prepare(uj->model, jb->precision)) != 0) return rc;
    }
    uj->fam->info(uj->model, &uj->info);
    if (jb->vae[0] && (k = same_file(ur->jobs, j, offsetof(job, vae), 1)) >= 0) {
        uj->vae = ur->job[k].vae;
    } else if (jb->vae[0]) {
        if (!(uj->vae = calloc(1, sizeof *uj->vae))) return disa_err(DISA_ENOMEM, "out of memory");
        uj->owns_vae = 1;
        if ((rc = vae_open(uj->vae, jb->vae)) != 0) return rc;
        // The decoder runs in the job's precision, packed for its model's latent size.
        if ((rc = vae_prepare(uj->vae, (precision_kind)jb->precision, uj->info.H, uj->info.W)) != 0) return rc;
    }
    if (jb->features[0] && (k = same_file(ur->jobs, j, offsetof(job, features), 0)) >= 0) {
        uj->feat = ur->job[k].feat;
    } else if (jb->features[0]) {
        if (!(uj->feat = calloc(1, sizeof *uj->feat))) return disa_err(DISA_ENOMEM, "out of memory");
        uj->owns_feat = 1;
        rc = jb->sim.on ? featnet_open_shape(uj->feat, jb->features) : featnet_open(uj->feat, jb->features);
        if (rc) return rc;
    }
    // Reference statistics are used only when the run ends; a damaged or mismatched
    // file must stop the run before the sampling, not after it.
    if (uj->feat && ur->rank == 0 && jb->reference[0] && (rc = refstats_check(jb->reference, uj->feat->feat_dim)))
        return rc;
    return jb->sim.on ? simulate_job(uj, jb, ur->rank) : 0;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }
// n rounded up to a multiple of 16 (a 64-byte line of floats).
static size_t up16(size_t n) { return (n + 15) / 16 * 16; }

int unit_runner_init(unit_runner *ur, const job_list *jobs, int rank) {
    memset(ur, 0, sizeof *ur);
    ur->jobs = jobs;
    ur->rank = rank;
    if (!(ur->job = calloc((size_t)jobs->n, sizeof(unit_job)))) return disa_err(DISA_ENOMEM, "out of memory");
    size_t max_tok = 1, max_lat = 1, max_pix = 1, max_f = 1, max_l = 1, max_dec = 0, max_img = 0;
    for (int j = 0; j < jobs->n; j++) {
        int rc = open_job(ur, j);
        if (rc) return rc;
        const job *jb = &jobs->jobs[j];
        const unit_job *uj = &ur->job[j];
        const family_info *fi = &uj->info;
        int H, W, C;
        unit_runner_geometry(ur, j, &H, &W, &C);
        size_t B = (size_t)jb->eval_bsz;
        if (uj->feat) {
            max_f = max_size(max_f, B * uj->feat->feat_dim);
            max_l = max_size(max_l, B * uj->feat->n_logits);
        }
        if (jb->sim.on) continue;  // nothing is sampled or decoded
        max_tok = max_size(max_tok, B * fi->token_dims[0] * fi->token_dims[1]);
        max_lat = max_size(max_lat, B * fi->C * fi->H * fi->W);
        max_pix = max_size(max_pix, B * C * H * W);
        size_t dec, img;
        decode_sizes(fi, uj->vae, jb->eval_bsz, &dec, &img);
        max_dec = max_size(max_dec, dec);
        max_img = max_size(max_img, img);
    }
    // The per-unit buffers in one block, each on a cache line of its own: the float
    // ones (tokens owns the block), then the pixels.
    size_t lat_at = up16(max_tok), f_at = lat_at + up16(max_lat), l_at = f_at + up16(max_f);
    size_t pix_at = l_at + up16(max_l), bytes = sizeof(float) * pix_at + up16(max_pix);
    ur->tokens = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!ur->tokens) return disa_err(DISA_ENOMEM, "out of memory for unit buffers");
    ur->latent = ur->tokens + lat_at;
    ur->feat_buf = ur->tokens + f_at;
    ur->logit_buf = ur->tokens + l_at;
    ur->pix = (uint8_t *)(ur->tokens + pix_at);
    return decoder_init(&ur->dec, max_dec, max_img);
}

void unit_runner_free(unit_runner *ur) {
    for (int j = 0; ur->job && j < ur->jobs->n; j++) {
        unit_job *uj = &ur->job[j];
        if (uj->sampler) uj->fam->sampler_delete(uj->sampler);
        if (uj->owns_model) uj->fam->close(uj->model);
        if (uj->owns_vae) vae_close(uj->vae);
        if (uj->owns_vae) free(uj->vae);
        if (uj->owns_feat) featnet_close(uj->feat);
        if (uj->owns_feat) free(uj->feat);
    }
    free(ur->job);
    free(ur->tokens);  // the block of all per-unit buffers
    decoder_free(&ur->dec);
    memset(ur, 0, sizeof *ur);
}

// ----------------------------------------------------------------------------
// one unit

// Peak resident set (VmHWM) and proportional set size (Pss: shared pages divided among
// the processes mapping them, so ranks sharing the mmapped weights show it) in KiB.
void unit_memory_kb(uint64_t *hwm, uint64_t *pss) {
    char line[256];
    *hwm = *pss = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) *hwm = strtoull(line + 6, NULL, 10);
    if (f) fclose(f);
    f = fopen("/proc/self/smaps_rollup", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Pss:", 4) == 0) *pss = strtoull(line + 4, NULL, 10);
    if (f) fclose(f);
}

// Features and logits of the unit's images, right after decoding (no PNG re-read), as
// one shard per unit written atomically next to the images: rank 0 merges the shards
// in index order, so a resumed run gives the numbers of an uninterrupted one.
static int write_features(unit_runner *ur, int j, int u, const int *labels, int B, int H, int W, int C) {
    int rc = featnet_run(ur->job[j].feat, ur->feat_buf, ur->logit_buf, ur->pix, B, H, W, C);
    if (rc) return disa_err_wrap(rc, "%s: features of unit %d: ", ur->jobs->jobs[j].name, u);
    return unit_write_shard(ur, j, u, labels, B);
}

int unit_write_shard(unit_runner *ur, int j, int u, const int *labels, int B) {
    const job *jb = &ur->jobs->jobs[j];
    const featnet *f = ur->job[j].feat;
    int rc;
    int64_t idx[JOB_MAX_EVAL_BSZ], lab[JOB_MAX_EVAL_BSZ];
    for (int b = 0; b < B; b++) {
        idx[b] = job_unit_first(jb, u) + b;
        lab[b] = labels[b];
    }
    char path[JOB_PATH_MAX + 64];
    folder_shard_path(path, sizeof path, jb, u);
    st_writer *w = st_writer_new();
    if (!w) return DISA_ENOMEM;
    rc = st_writer_add(w, "feat", ST_F32, 2, (int64_t[]){B, f->feat_dim}, ur->feat_buf);
    if (!rc) rc = st_writer_add(w, "logits", ST_F32, 2, (int64_t[]){B, f->n_logits}, ur->logit_buf);
    if (!rc) rc = st_writer_add(w, "index", ST_I64, 1, (int64_t[]){B}, idx);
    if (!rc) rc = st_writer_add(w, "label", ST_I64, 1, (int64_t[]){B}, lab);
    if (!rc) rc = st_writer_meta(w, "feature_net", jb->features);
    if (!rc) rc = st_writer_write(w, path);
    st_writer_delete(w);
    return rc;
}

int unit_run(unit_runner *ur, int j, int u, sample_poll_fn poll, void *poll_ctx, unit_report *r) {
    const job *jb = &ur->jobs->jobs[j];
    unit_job *uj = &ur->job[j];
    int first = job_unit_first(jb, u), B = job_unit_count(jb, u), rc;
    double t0 = clock_now();
    memset(r, 0, sizeof *r);
    r->job = j;
    r->unit = u;
    r->rank = ur->rank;
    r->count = B;
    if (jb->sim.on) {
        if ((rc = unit_simulate(ur, j, u, poll, poll_ctx, r)) != 0) return rc;
        r->t_total = clock_now() - t0;
        unit_memory_kb(&r->rss_peak_kb, &r->pss_kb);
        return 0;
    }
    if (!uj->sampler &&
        (rc = uj->fam->sampler_new(&uj->sampler, uj->model, &jb->params, jb->precision, jb->eval_bsz)) != 0)
        return rc;
    int labels[JOB_MAX_EVAL_BSZ];
    uint32_t index[JOB_MAX_EVAL_BSZ];
    for (int b = 0; b < B; b++) {
        labels[b] = job_label(jb, first + b, uj->info.class_num);
        index[b] = (uint32_t)(first + b);
    }
    sample_stats st = {0};
    if ((rc = uj->fam->sampler_run(uj->sampler, ur->tokens, labels, jb->seed, index, B, &st, poll, poll_ctx)) != 0)
        return rc;
    r->t_transformer = st.t_transformer;
    r->t_head = st.t_head;
    r->t_other = st.t_other;
    r->flops_transformer = st.flops_transformer;
    r->flops_head = st.flops_head;
    r->head_row_steps = st.head_row_steps;
    r->tokens = st.tokens;

    double t1 = clock_now();
    uj->fam->to_latent(uj->model, ur->latent, ur->tokens, B);
    if ((rc = decoder_run(&ur->dec, ur->pix, ur->latent, B, &uj->info, uj->vae, &r->flops_decode)) != 0) return rc;
    double t2 = clock_now();
    r->t_decode = t2 - t1;
    int H, W, C;
    unit_runner_geometry(ur, j, &H, &W, &C);
    if (jb->png) {
        char sampling[512];
        png_recipe rec = {jb->name, job_sampling_str(jb, sampling, sizeof sampling), jb->seed};
        if ((rc = decode_write_pngs(jb->output_dir, ur->pix, B, H, W, C, first, labels, &rec)) != 0)
            return rc;
    }
    double t3 = clock_now();
    r->t_io = t3 - t2;
    if (uj->feat && (rc = write_features(ur, j, u, labels, B, H, W, C)) != 0) return rc;
    double t4 = clock_now();
    r->t_features = t4 - t3;
    r->t_total = t4 - t0;
    unit_memory_kb(&r->rss_peak_kb, &r->pss_kb);
    return 0;
}
