// unit.c: the unit pipeline (include/disa/unit.h): the models a rank holds for the jobs
// of a run, and one unit from sampling to PNGs and feature shard.
#include "disa/unit.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/folder.h"
#include "disa/image.h"
#include "disa/refstats.h"
#include "disa/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const mar_model *unit_runner_model(const unit_runner *ur, int j) { return &ur->mar[ur->mar_owner[j]]; }
const vae_model *unit_runner_vae(const unit_runner *ur, int j) {
    return ur->vae_owner[j] >= 0 ? &ur->vae[ur->vae_owner[j]] : NULL;
}
const featnet *unit_runner_featnet(const unit_runner *ur, int j) {
    return ur->feat_owner[j] >= 0 ? &ur->feat[ur->feat_owner[j]] : NULL;
}

static int image_geometry(const mar_config *c, const vae_model *v, int *H, int *W, int *C) {
    if (c->tokenizer == TOKENIZER_PATCH) {
        *H = *W = c->img_size;
        *C = c->vae_embed_dim;
    } else {
        *H = *W = c->seq_h * c->patch_size * vae_upscale(&v->cfg);
        *C = v->cfg.out_ch;
    }
    return 0;
}

void unit_runner_geometry(const unit_runner *ur, int j, int *H, int *W, int *C) {
    image_geometry(&unit_runner_model(ur, j)->cfg, unit_runner_vae(ur, j), H, W, C);
}

int unit_runner_init(unit_runner *ur, const job_list *jobs, int rank) {
    memset(ur, 0, sizeof *ur);
    ur->jobs = jobs;
    ur->rank = rank;
    int n = jobs->n;
    ur->mar = calloc((size_t)n, sizeof(mar_model));
    ur->vae = calloc((size_t)n, sizeof(vae_model));
    ur->mar_owner = calloc((size_t)n, sizeof(int));
    ur->vae_owner = calloc((size_t)n, sizeof(int));
    ur->samplers = calloc((size_t)n, sizeof(sampler));
    ur->feat = calloc((size_t)n, sizeof(featnet));
    ur->feat_owner = calloc((size_t)n, sizeof(int));
    if (!ur->feat || !ur->feat_owner) return disa_err(DISA_ENOMEM, "out of memory");
    size_t max_f = 0, max_l = 0;
    ur->sampler_ready = calloc((size_t)n, 1);
    if (!ur->mar || !ur->vae || !ur->mar_owner || !ur->vae_owner || !ur->samplers || !ur->sampler_ready)
        return disa_err(DISA_ENOMEM, "out of memory");
    size_t max_tok = 0, max_img = 0, max_dec = 0;
    for (int j = 0; j < n; j++) {
        const job *jb = &jobs->jobs[j];
        ur->mar_owner[j] = j;
        for (int k = 0; k < j; k++)
            if (strcmp(jobs->jobs[k].model, jb->model) == 0) {
                ur->mar_owner[j] = ur->mar_owner[k];
                break;
            }
        int rc;
        // Every rank checks its own CPU: the nodes of a cluster job may differ.
        if (jb->p.precision == BLAS_BF16 && (rc = blas_bf16_available()) != 0) return rc;
        if (ur->mar_owner[j] == j && (rc = mar_open(&ur->mar[j], jb->model)) != 0) return rc;
        ur->vae_owner[j] = -1;
        if (jb->vae[0]) {
            ur->vae_owner[j] = j;
            for (int k = 0; k < j; k++)
                if (strcmp(jobs->jobs[k].vae, jb->vae) == 0) {
                    ur->vae_owner[j] = ur->vae_owner[k];
                    break;
                }
            if (ur->vae_owner[j] == j && (rc = vae_open(&ur->vae[j], jb->vae)) != 0) return rc;
        }
        ur->feat_owner[j] = -1;
        if (jb->features[0]) {
            ur->feat_owner[j] = j;
            for (int k = 0; k < j; k++)
                if (strcmp(jobs->jobs[k].features, jb->features) == 0) {
                    ur->feat_owner[j] = ur->feat_owner[k];
                    break;
                }
            if (ur->feat_owner[j] == j && (rc = featnet_open(&ur->feat[j], jb->features)) != 0) return rc;
            const featnet *f = &ur->feat[ur->feat_owner[j]];
            // Reference statistics are used only when the run ends; a damaged or mismatched
            // file must stop the run before the sampling, not after it.
            if (rank == 0 && jb->reference[0] && (rc = refstats_check(jb->reference, f->feat_dim)) != 0) return rc;
            if ((size_t)jb->eval_bsz * f->feat_dim > max_f) max_f = (size_t)jb->eval_bsz * f->feat_dim;
            if ((size_t)jb->eval_bsz * f->n_logits > max_l) max_l = (size_t)jb->eval_bsz * f->n_logits;
        }
        const mar_config *mc = &unit_runner_model(ur, j)->cfg;
        int H, W, C;
        image_geometry(mc, unit_runner_vae(ur, j), &H, &W, &C);
        size_t tok = (size_t)jb->eval_bsz * mc->seq_len * mc->token_dim;
        size_t img = (size_t)jb->eval_bsz * C * H * W;
        if (tok > max_tok) max_tok = tok;
        if (img > max_img) max_img = img;
        if (unit_runner_vae(ur, j)) {
            size_t d = vae_decode_scratch_bytes(&unit_runner_vae(ur, j)->cfg, jb->eval_bsz, mc->seq_h * mc->patch_size,
                                                mc->seq_h * mc->patch_size);
            if (d > max_dec) max_dec = d;
        }
    }
    ur->tokens = malloc(sizeof(float) * (max_tok ? max_tok : 1));
    ur->img = malloc(sizeof(float) * (max_img ? max_img : 1));
    ur->pix = malloc(max_img ? max_img : 1);
    ur->feat_buf = malloc(sizeof(float) * (max_f ? max_f : 1));
    ur->logit_buf = malloc(sizeof(float) * (max_l ? max_l : 1));
    if (!ur->tokens || !ur->img || !ur->pix || !ur->feat_buf || !ur->logit_buf)
        return disa_err(DISA_ENOMEM, "out of memory for unit buffers");
    if (max_dec && arena_init(&ur->decode, max_dec, "decode") != 0) return DISA_ENOMEM;
    return 0;
}

void unit_runner_free(unit_runner *ur) {
    if (!ur->jobs) return;
    for (int j = 0; j < ur->jobs->n; j++) {
        if (ur->sampler_ready && ur->sampler_ready[j]) sampler_free(&ur->samplers[j]);
        if (ur->mar_owner && ur->mar_owner[j] == j) mar_close(&ur->mar[j]);
        if (ur->vae_owner && ur->vae_owner[j] == j) vae_close(&ur->vae[j]);
        if (ur->feat_owner && ur->feat_owner[j] == j) featnet_close(&ur->feat[j]);
    }
    free(ur->mar);
    free(ur->vae);
    free(ur->mar_owner);
    free(ur->vae_owner);
    free(ur->feat);
    free(ur->feat_owner);
    free(ur->feat_buf);
    free(ur->logit_buf);
    free(ur->samplers);
    free(ur->sampler_ready);
    free(ur->tokens);
    free(ur->img);
    free(ur->pix);
    arena_free(&ur->decode);
}

// Peak resident set (VmHWM) and proportional set size (Pss: shared pages divided among
// the processes mapping them, so ranks sharing the mmapped weights show it) in KiB.
static void memory_kb(uint64_t *hwm, uint64_t *pss) {
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
    const job *jb = &ur->jobs->jobs[j];
    featnet *f = &ur->feat[ur->feat_owner[j]];
    int rc = featnet_run(f, ur->feat_buf, ur->logit_buf, ur->pix, B, H, W, C);
    if (rc) return disa_err_wrap(rc, "%s: features of unit %d: ", jb->name, u);
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

int unit_run(unit_runner *ur, int j, int u, mar_poll_fn poll, void *poll_ctx, unit_report *r) {
    const job *jb = &ur->jobs->jobs[j];
    const mar_model *m = unit_runner_model(ur, j);
    const mar_config *mc = &m->cfg;
    const vae_model *v = unit_runner_vae(ur, j);
    int first = job_unit_first(jb, u), B = job_unit_count(jb, u), rc;
    double t0 = clock_now();
    memset(r, 0, sizeof *r);
    r->job = j;
    r->unit = u;
    r->rank = ur->rank;
    r->count = B;
    if (!ur->sampler_ready[j]) {
        if ((rc = sampler_init(&ur->samplers[j], m, &jb->p, jb->eval_bsz)) != 0) return rc;
        ur->sampler_ready[j] = 1;
    }
    sampler *s = &ur->samplers[j];
    s->poll = poll;
    s->poll_ctx = poll_ctx;
    int labels[JOB_MAX_EVAL_BSZ];
    uint32_t index[JOB_MAX_EVAL_BSZ];
    for (int b = 0; b < B; b++) {
        labels[b] = job_label(jb, first + b, mc->class_num);
        index[b] = (uint32_t)(first + b);
    }
    ar_rng_philox rng;
    if ((rc = ar_rng_philox_init(&rng, jb->seed, index, B)) != 0) return rc;
    sample_stats st = {0};
    rc = sampler_run(s, &rng.base, labels, B, ur->tokens, &st);
    ar_rng_philox_free(&rng);
    if (rc) return rc;
    r->t_transformer = st.t_transformer;
    r->t_head = st.t_head;
    r->t_other = st.t_other;
    r->flops_transformer = st.flops_transformer;
    r->flops_head = st.flops_head;
    r->head_row_steps = st.head_row_steps;
    r->tokens = st.tokens;

    double t1 = clock_now();
    int H, W, C;
    image_geometry(mc, v, &H, &W, &C);
    int p = mc->patch_size, hs = mc->seq_h * p;
    uint64_t f0 = blas_flops();
    if (mc->tokenizer == TOKENIZER_PATCH) {
        mar_unpatchify(ur->img, ur->tokens, B, mc->seq_h, mc->vae_embed_dim, p);
    } else {
        // Latent [B, 16, h, w] from the tokens, then the KL-16 decoder.
        float *lat = malloc(sizeof(float) * (size_t)B * mc->vae_embed_dim * hs * hs);
        if (!lat) return disa_err(DISA_ENOMEM, "out of memory for latents");
        mar_unpatchify(lat, ur->tokens, B, mc->seq_h, mc->vae_embed_dim, p);
        arena_reset(&ur->decode, 0);
        rc = vae_decode(v, &ur->decode, ur->img, lat, B, hs, hs);
        free(lat);
        if (rc) return rc;
    }
    image_to_u8(ur->pix, ur->img, B, C, H, W);
    double t2 = clock_now();
    r->t_decode = t2 - t1;
    r->flops_decode = blas_flops() - f0;

    if (jb->png) {
        for (int b = 0; b < B; b++) {
            char path[JOB_PATH_MAX + 32], idx[16], cls[16], sd[32], steps[512];
            snprintf(path, sizeof path, "%s/%05d.png", jb->output_dir, first + b);
            snprintf(idx, sizeof idx, "%d", first + b);
            snprintf(cls, sizeof cls, "%d", labels[b]);
            snprintf(sd, sizeof sd, "%llu", (unsigned long long)jb->seed);
            sample_params_str(&jb->p, steps, sizeof steps);
            const image_kv kv[] = {{"job", jb->name}, {"index", idx}, {"class", cls}, {"seed", sd}, {"sampling", steps}};
            if ((rc = png_write_u8(path, ur->pix + (size_t)b * H * W * C, W, H, C, kv, 5)) != 0) return rc;
        }
    }
    double t3 = clock_now();
    r->t_io = t3 - t2;
    if (ur->feat_owner[j] >= 0 && (rc = write_features(ur, j, u, labels, B, H, W, C)) != 0) return rc;
    double t4 = clock_now();
    r->t_features = t4 - t3;
    r->t_total = t4 - t0;
    memory_kb(&r->rss_peak_kb, &r->pss_kb);
    return 0;
}

