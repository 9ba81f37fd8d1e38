// flowar_family.c: FlowAR behind the model-family seam (include/disa/family.h): the model
// (model/flowar.c, flowhead.c), its scale-wise loop with the flow head and DiSA's
// per-scale step schedule (sample/flowar_sample.c), its FLOP model (flowar_flops.c).
// Its model handle is a flowar_model, its params a flowar_params.
#include "disa/bf16.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/flowar.h"
#include "disa/flowar_sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(flowar_params) <= FAMILY_PARAMS_BYTES, "flowar_params must fit a job's family_params");

// FlowAR_DiSA eval.py's sampling flags.
static const char *const k_keys[] = {"flow_upper_steps", "flow_lower_steps", "cfg", "guidance", NULL};
static const char *const k_presets[] = {"flowar_small", "flowar_large", "flowar_huge", NULL};

static flowar_params *P(family_params *p) { return (flowar_params *)p->bytes; }
static const flowar_params *CP(const family_params *p) { return (const flowar_params *)p->bytes; }

// ----------------------------------------------------------------------------
// model

static int open_file(void **out, const char *path) {
    flowar_model *m = calloc(1, sizeof *m);
    if (!m) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
    int rc = flowar_open(m, path);
    if (rc) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

// A config without weights (a preset or a config JSON).
static int config_model(void **out, const flowar_config *c) {
    flowar_model *m = calloc(1, sizeof *m);
    if (!m) return disa_err(DISA_ENOMEM, "out of memory");
    m->cfg = *c;
    *out = m;
    return 0;
}

static int open_preset(void **out, const char *name) {
    for (int i = 0; k_presets[i]; i++) {
        if (strcmp(name, k_presets[i]) != 0) continue;
        flowar_config c;
        int rc = flowar_config_preset(&c, name);
        return rc ? rc : config_model(out, &c);
    }
    return DISA_ENOTFOUND;
}

static int open_config(void **out, const char *json, const char *label) {
    flowar_config c;
    int rc = flowar_config_parse(&c, json, label);
    return rc ? rc : config_model(out, &c);
}

static void close_model(void *model) {
    if (!model) return;
    flowar_close(model);  // a mapped file, generated weights, or a bare config
    free(model);
}

static void info(const void *model, family_info *out) {
    const flowar_config *c = &((const flowar_model *)model)->cfg;
    memset(out, 0, sizeof *out);
    out->class_num = c->class_num;
    out->latent = LATENT_KL16;
    out->C = c->vae_embed_dim;
    out->H = out->W = c->seq_h * c->patch_size;
    out->token_dims[0] = c->seq_h * c->seq_h;  // the last scale's tokens
    out->token_dims[1] = c->token_dim;
}

static const char *describe(const void *model, char *buf, int n) {
    const flowar_config *c = &((const flowar_model *)model)->cfg;
    char sc[FLOWAR_MAX_SCALES * 6 + 4];
    int k = 0;
    for (int i = 0; i < c->n_scales; i++) k += snprintf(sc + k, sizeof sc - (size_t)k, "%s%d", i ? "," : "", c->scale[i]);
    snprintf(buf, (size_t)n, "scales %s (%d tokens of %d), enc %dx%d, dec %dx%d, flow head %dx%d %s", sc, c->seq_len,
             c->token_dim, c->enc_depth, c->enc_dim, c->dec_depth, c->dec_dim, c->diffloss_d, c->diffloss_w,
             c->cross ? "attn-crossattn-mlp" : "attn-mlp");
    return buf;
}

static int write_random(const void *model, const char *path, uint64_t seed, size_t *n_values) {
    return flowar_write_generated(&((const flowar_model *)model)->cfg, seed, path, n_values);
}

// ----------------------------------------------------------------------------
// sampling settings

static void params_init(family_params *p) {
    memset(p, 0, sizeof *p);
    flowar_params_init(P(p));
}

static int params_set(family_params *p, const char *key, const char *value) {
    return flowar_params_set(P(p), key, value);
}

static int params_check(const family_params *p) { return flowar_params_check(CP(p)); }

static const char *params_str(const family_params *p, char *buf, int n) { return flowar_params_str(CP(p), buf, n); }

// bf16 runs MAR models; FlowAR's Linear layers are not packed for it yet, so it runs in fp32.
static int params_check_precision(const family_params *p, int precision, int from_auto) {
    (void)p;
    (void)from_auto;  // auto resolves to fp32 for FlowAR (fp32_only)
    if (precision != PRECISION_BF16) return 0;
    return disa_err(DISA_EINVAL, "--precision bf16 runs MAR models; FlowAR runs in fp32 for now: give --precision fp32");
}

// fp32 is the model as opened; bf16 is refused (params_check_precision).
static int prepare(void *model, int precision) {
    (void)model;
    if (precision == PRECISION_BF16) return params_check_precision(NULL, precision, 0);
    return 0;
}

// ----------------------------------------------------------------------------
// sampler

static int sampler_new_(void **out, const void *model, const family_params *p, int precision, int max_batch) {
    flowar_sampler *s = calloc(1, sizeof *s);
    if (!s) return disa_err(DISA_ENOMEM, "sampler: out of memory");
    int rc = params_check_precision(p, precision, 0);
    if (!rc) rc = flowar_sampler_init(s, model, CP(p), max_batch);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int sampler_run_(void *run, float *tokens, const int *labels, uint64_t seed, const uint32_t *index, int B,
                        sample_stats *st, sample_poll_fn poll, void *poll_ctx) {
    flowar_sampler *s = run;
    ar_rng_philox rng;
    int rc = ar_rng_philox_init(&rng, seed, index, B);
    if (rc) return rc;
    s->poll = poll;
    s->poll_ctx = poll_ctx;
    rc = flowar_sampler_run(s, &rng.base, labels, B, tokens, st);
    ar_rng_philox_free(&rng);
    return rc;
}

static void sampler_delete_(void *run) {
    if (!run) return;
    flowar_sampler_free(run);
    free(run);
}

static void to_latent(const void *model, float *latent, const float *tokens, int B) {
    const flowar_config *c = &((const flowar_model *)model)->cfg;
    mar_unpatchify(latent, tokens, B, c->seq_h, c->vae_embed_dim, c->patch_size);
}

// ----------------------------------------------------------------------------
// FLOP model

static int flops(sample_flops *out, const void *model, const family_params *p, int B) {
    memset(out, 0, sizeof *out);
    flowar_flops f;
    int rc = flowar_flops_run(&f, NULL, &((const flowar_model *)model)->cfg, CP(p), B);
    if (rc) return rc;
    out->transformer = (double)f.transformer / B;
    out->head = (double)f.head / B;
    out->nfe_per_token = f.tokens ? (double)f.head_row_steps / f.tokens : 0;
    out->ar_steps = f.scales;
    return 0;
}

const family flowar_family = {
    .name = "flowar",
    .format = "disa-flowar-1",
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
    .params_str = params_str,
    .params_check_precision = params_check_precision,
    .fp32_only = 1,
    .sampler_new = sampler_new_,
    .sampler_run = sampler_run_,
    .sampler_delete = sampler_delete_,
    .to_latent = to_latent,
    .flops = flops,
};
