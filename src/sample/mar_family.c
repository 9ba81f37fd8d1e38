// mar_family.c: MAR behind the model-family seam (include/disa/family.h): the model
// (model/mar.c), its AR loop with the diffusion head and DiSA (sample/ar.c), its FLOP
// model (sample/flops.c). Its model handle is a mar_model, its params a sample_params.
#include "disa/family.h"
#include "disa/err.h"
#include "disa/flops.h"
#include "disa/mar.h"
#include "disa/sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(sample_params) <= FAMILY_PARAMS_BYTES, "sample_params must fit a job's family_params");

// main_mar.py's sampling flags, then disa's own (dpm.h, adaptive.h), in the order the
// messages list them.
static const char *const k_keys[] = {"num_iter",         "cfg",
                                     "cfg_schedule",     "temperature",
                                     "diff_sampler",     "diff_upper_steps",
                                     "diff_lower_steps", "diff_annealing_strategy",
                                     "dpm_order",        "diff_budget",
                                     "diff_adaptive_signal", NULL};

static const char *const k_presets[] = {"mar_base", "mar_large", "mar_huge", NULL};

static sample_params *P(family_params *p) { return (sample_params *)p->bytes; }
static const sample_params *CP(const family_params *p) { return (const sample_params *)p->bytes; }

// ----------------------------------------------------------------------------
// model

static int open_file(void **out, const char *path) {
    mar_model *m = calloc(1, sizeof *m);
    if (!m) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
    int rc = mar_open(m, path);
    if (rc) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

// A config without weights (a preset or a config JSON): no mapping, no tensor table yet.
static int config_model(void **out, const mar_config *c) {
    mar_model *m = calloc(1, sizeof *m);
    if (!m) return disa_err(DISA_ENOMEM, "out of memory");
    m->cfg = *c;
    *out = m;
    return 0;
}

static int open_preset(void **out, const char *name) {
    mar_config c;
    if (mar_config_preset(&c, name) != 0) return DISA_ENOTFOUND;
    return config_model(out, &c);
}

static int open_config(void **out, const char *json, const char *label) {
    mar_config c;
    int rc = mar_config_parse(&c, json, label);
    return rc ? rc : config_model(out, &c);
}

static int prepare(void *model, int precision) { return mar_prepare(model, (precision_kind)precision); }

static void close_model(void *model) {
    mar_model *m = model;
    if (!m) return;
    if (m->st.map) {
        mar_close(m);
    } else {  // a preset, or a model whose tensor table was built without a file
        free(m->enc);
        free(m->dec);
        free(m->head.blocks);
    }
    free(m);
}

static void info(const void *model, family_info *out) {
    const mar_config *c = &((const mar_model *)model)->cfg;
    memset(out, 0, sizeof *out);
    out->class_num = c->class_num;
    out->latent = c->tokenizer == TOKENIZER_PATCH ? LATENT_PIXELS : LATENT_KL16;
    // unpatchify: [seq_h, seq_h, c, p, p] -> [c, seq_h p, seq_h p]; for patch models
    // the image itself (vae_embed_dim channels, img_size pixels).
    out->C = c->vae_embed_dim;
    out->H = out->W = c->seq_h * c->patch_size;
    out->token_dims[0] = c->seq_len;
    out->token_dims[1] = c->token_dim;
}

static const char *describe(const void *model, char *buf, int n) {
    const mar_config *c = &((const mar_model *)model)->cfg;
    snprintf(buf, (size_t)n, "seq %d x %d, enc %dx%d, dec %dx%d, head %dx%d", c->seq_len, c->token_dim, c->enc_depth,
             c->enc_dim, c->dec_depth, c->dec_dim, c->diffloss_d, c->diffloss_w);
    return buf;
}

static int write_random(const void *model, const char *path, uint64_t seed, size_t *n_values) {
    mar_model m;
    memset(&m, 0, sizeof m);
    m.cfg = ((const mar_model *)model)->cfg;
    st_bind_entry *tab;
    char *names, json[1024];
    int n, rc = mar_tensor_table(&m, &tab, &names, &n);
    if (rc) return rc;
    rc = st_write_generated(tab, n, seed, mar_config_to_json(&m.cfg, json, sizeof json), path, n_values);
    free(tab);
    free(names);
    free(m.enc);
    free(m.dec);
    free(m.head.blocks);
    return rc;
}

// ----------------------------------------------------------------------------
// sampling settings

static void params_init(family_params *p) {
    memset(p, 0, sizeof *p);
    sample_params_init(P(p));
}

static int params_set(family_params *p, const char *key, const char *value) {
    return sample_params_set(P(p), key, value);
}

static int params_check(const family_params *p) { return sample_params_check(CP(p)); }
static int params_check_precision(const family_params *p, int precision, int from_auto) {
    return sample_params_check_precision(CP(p), (precision_kind)precision, from_auto);
}

static const char *params_str(const family_params *p, char *buf, int n) { return sample_params_str(CP(p), buf, n); }

// ----------------------------------------------------------------------------
// sampler

typedef struct mar_run {
    sampler s;
    int max_batch;
} mar_run;

static int sampler_new_(void **out, const void *model, const family_params *p, int precision, int max_batch) {
    mar_run *r = calloc(1, sizeof *r);
    if (!r) return disa_err(DISA_ENOMEM, "sampler: out of memory");
    sample_params sp = *CP(p);
    sp.precision = (precision_kind)precision;
    int rc = sampler_init(&r->s, model, &sp, max_batch);
    if (rc) {
        free(r);
        return rc;
    }
    r->max_batch = max_batch;
    *out = r;
    return 0;
}

static int sampler_run_(void *run, float *tokens, const int *labels, uint64_t seed, const uint32_t *index, int B,
                        sample_stats *st, sample_poll_fn poll, void *poll_ctx) {
    mar_run *r = run;
    ar_rng_philox rng;
    int rc = ar_rng_philox_init(&rng, seed, index, B);
    if (rc) return rc;
    r->s.poll = poll;
    r->s.poll_ctx = poll_ctx;
    rc = sampler_run(&r->s, &rng.base, labels, B, tokens, st);
    ar_rng_philox_free(&rng);
    return rc;
}

static void sampler_delete_(void *run) {
    mar_run *r = run;
    if (!r) return;
    sampler_free(&r->s);
    free(r);
}

static void to_latent(const void *model, float *latent, const float *tokens, int B) {
    const mar_config *c = &((const mar_model *)model)->cfg;
    mar_unpatchify(latent, tokens, B, c->seq_h, c->vae_embed_dim, c->patch_size);
}

// ----------------------------------------------------------------------------
// FLOP model

static int flops(sample_flops *out, const void *model, const family_params *p, int B) {
    memset(out, 0, sizeof *out);
    flops_sample s;
    int rc = flops_sample_run(&s, NULL, &((const mar_model *)model)->cfg, CP(p), B);
    if (rc) return rc;
    out->transformer = (double)s.transformer / B;
    out->head = (double)s.head / B;
    out->nfe_per_token = s.tokens ? (double)s.head_row_steps / s.tokens : 0;
    out->ar_steps = s.ar_steps;
    return 0;
}

const family mar_family = {
    .name = "mar",
    .format = "disa-mar-1",
    .keys = k_keys,
    .presets = k_presets,
    .open = open_file,
    .prepare = prepare,
    .preset = open_preset,
    .config = open_config,
    .close = close_model,
    .info = info,
    .describe = describe,
    .write_random = write_random,
    .params_init = params_init,
    .params_set = params_set,
    .params_check = params_check,
    .params_check_precision = params_check_precision,
    .params_str = params_str,
    .sampler_new = sampler_new_,
    .sampler_run = sampler_run_,
    .sampler_delete = sampler_delete_,
    .to_latent = to_latent,
    .flops = flops,
};
