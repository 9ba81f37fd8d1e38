// xar_family.c: xAR behind the model-family seam (include/disa/family.h): the model
// (model/xar.c), its AR loop over groups with the flow samplers and DiSA's linear step
// schedule, and its FLOP model (sample/xar_sample.c). Its model handle is an xar_model,
// its params an xar_params.
#include "disa/bf16.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/xar.h"
#include "disa/xar_sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(xar_params) <= FAMILY_PARAMS_BYTES, "xar_params must fit a job's family_params");

// xAR_DiSA eval.py's sampling flags (cfg, cfg_schedule, flow_upper_steps,
// flow_lower_steps), the original xAR eval.py's constant count (num_steps: both), and
// disa's choice of the flow sampler.
static const char *const k_keys[] = {"cfg",        "cfg_schedule", "flow_upper_steps", "flow_lower_steps",
                                     "num_steps",  "flow_sampler", NULL};

static const char *const k_presets[] = {"xar_base", "xar_large", "xar_huge", NULL};

static xar_params *P(family_params *p) { return (xar_params *)p->bytes; }
static const xar_params *CP(const family_params *p) { return (const xar_params *)p->bytes; }

// ----------------------------------------------------------------------------
// model

static int open_file(void **out, const char *path) {
    xar_model *m = calloc(1, sizeof *m);
    if (!m) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
    int rc = xar_open(m, path);
    if (rc) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

// A config without weights (a preset or a config JSON): no mapping, no tables yet.
static int config_model(void **out, const xar_config *c) {
    xar_model *m = calloc(1, sizeof *m);
    if (!m) return disa_err(DISA_ENOMEM, "out of memory");
    m->cfg = *c;
    *out = m;
    return 0;
}

static int open_preset(void **out, const char *name) {
    for (int i = 0; k_presets[i]; i++) {
        if (strcmp(name, k_presets[i]) != 0) continue;
        xar_config c;
        int rc = xar_config_preset(&c, name);
        return rc ? rc : config_model(out, &c);
    }
    return DISA_ENOTFOUND;
}

static int open_config(void **out, const char *json, const char *label) {
    xar_config c;
    int rc = xar_config_parse(&c, json, label);
    return rc ? rc : config_model(out, &c);
}

static void close_model(void *model) {
    xar_model *m = model;
    if (!m) return;
    if (m->st.map) xar_close(m);
    else xar_model_free_tables(m);  // a config, or a model whose tensor table was built without a file
    free(m);
}

static void info(const void *model, family_info *out) {
    const xar_config *c = &((const xar_model *)model)->cfg;
    memset(out, 0, sizeof *out);
    out->class_num = c->class_num;
    out->latent = c->tokenizer == TOKENIZER_PATCH ? LATENT_PIXELS : LATENT_KL16;
    // The sampler returns raster-order tokens, unpatchified as MAR's are.
    out->C = c->vae_embed_dim;
    out->H = out->W = c->seq_h * c->patch_size;
    out->token_dims[0] = c->seq_len;
    out->token_dims[1] = c->token_dim;
}

static const char *describe(const void *model, char *buf, int n) {
    const xar_config *c = &((const xar_model *)model)->cfg;
    snprintf(buf, (size_t)n, "seq %d x %d in %d groups of %d, enc %dx%d, dec %dx%d, heads %d/%d", c->seq_len,
             c->token_dim, c->clusters, c->group, c->enc_depth, c->enc_dim, c->dec_depth, c->dec_dim, c->enc_heads,
             c->dec_heads);
    return buf;
}

static int write_random(const void *model, const char *path, uint64_t seed, size_t *n_values) {
    xar_model m;
    memset(&m, 0, sizeof m);
    m.cfg = ((const xar_model *)model)->cfg;
    st_bind_entry *tab;
    char *names, json[1024];
    int n, rc = xar_tensor_table(&m, &tab, &names, &n);
    if (rc) return rc;
    rc = st_write_generated(tab, n, seed, xar_config_to_json(&m.cfg, json, sizeof json), path, n_values);
    free(tab);
    free(names);
    xar_model_free_tables(&m);
    return rc;
}

// ----------------------------------------------------------------------------
// sampling settings

static void params_init(family_params *p) {
    memset(p, 0, sizeof *p);
    xar_params_init(P(p));
}

static int params_set(family_params *p, const char *key, const char *value) { return xar_params_set(P(p), key, value); }

static int params_check(const family_params *p) { return xar_params_check(CP(p)); }

static const char *params_str(const family_params *p, char *buf, int n) { return xar_params_str(CP(p), buf, n); }

// bf16 runs MAR models; xAR's Linear layers are not packed for it yet, so it runs in fp32.
static int params_check_precision(const family_params *p, int precision, int from_auto) {
    (void)p;
    (void)from_auto;  // auto resolves to fp32 for xAR (fp32_only)
    if (precision != PRECISION_BF16) return 0;
    return disa_err(DISA_EINVAL, "--precision bf16 runs MAR models; xAR runs in fp32 for now: give --precision fp32");
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
    xar_sampler *s = calloc(1, sizeof *s);
    if (!s) return disa_err(DISA_ENOMEM, "xAR sampler: out of memory");
    int rc = params_check_precision(p, precision, 0);
    if (!rc) rc = xar_sampler_init(s, model, CP(p), max_batch);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int sampler_run_(void *run, float *tokens, const int *labels, uint64_t seed, const uint32_t *index, int B,
                        sample_stats *st, sample_poll_fn poll, void *poll_ctx) {
    xar_sampler *s = run;
    xar_rng_philox rng;
    int rc = xar_rng_philox_init(&rng, seed, index, B);
    if (rc) return rc;
    s->poll = poll;
    s->poll_ctx = poll_ctx;
    rc = xar_sampler_run(s, &rng.base, labels, B, tokens, st);
    xar_rng_philox_free(&rng);
    return rc;
}

static void sampler_delete_(void *run) {
    xar_sampler *s = run;
    if (!s) return;
    xar_sampler_free(s);
    free(s);
}

static void to_latent(const void *model, float *latent, const float *tokens, int B) {
    const xar_config *c = &((const xar_model *)model)->cfg;
    mar_unpatchify(latent, tokens, B, c->seq_h, c->vae_embed_dim, c->patch_size);
}

// ----------------------------------------------------------------------------
// FLOP model: every FLOP is the transformer's (it is its own flow network).

static int flops(sample_flops *out, const void *model, const family_params *p, int B) {
    memset(out, 0, sizeof *out);
    xar_flops f;
    int rc = xar_flops_run(&f, &((const xar_model *)model)->cfg, CP(p), B);
    if (rc) return rc;
    out->transformer = (double)f.transformer / B;
    out->nfe_per_token = f.tokens ? (double)f.row_steps / f.tokens : 0;
    out->ar_steps = f.ar_steps;
    return 0;
}

const family xar_family = {
    .name = "xar",
    .format = "disa-xar-1",
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
