// family_kit.h: the entries of a family table (family.h) that every family fills alike,
// written once over each family's typed functions.
//
// A family file (src/sample/X_family.c) keeps what is its own: its sampling keys and
// presets (k_keys, k_presets), how it prepares a model for a precision, which settings
// run at which and how it starts a sampler at a precision (prepare,
// params_check_precision, init_sampler; FAMILY_FP32_ONLY writes them for a family that
// runs in fp32 only), its one-line description (describe) and its FLOP model (flops,
// through family_flops_per_image). The rest follows from its types and is the same for
// every family:
//   FAMILY_MODEL_ADAPTERS: the model on the heap from a file, a preset or a config JSON,
//     closed; family_info and the latent (unpatchify) from the config's token grid (its
//     fields class_num, tokenizer, vae_embed_dim, seq_h, patch_size, token_dim); a model
//     file with generated weights;
//   FAMILY_PARAMS_ADAPTERS: the params struct held in family_params' bytes;
//   FAMILY_SAMPLER_ADAPTERS: the sampler on the heap, and a run over per-image Philox
//     streams (rng.h) with the poll callback;
// and FAMILY_ENTRIES lists them all in the table. These are macros because C cannot
// adapt a typed function to the table's void * signature otherwise; each expands to
// small functions whose bodies use the helpers below.
#ifndef DISA_FAMILY_KIT_H
#define DISA_FAMILY_KIT_H
#include <stdlib.h>
#include <string.h>

#include "disa/err.h"
#include "disa/family.h"
#include "disa/mar.h"

// *out = obj when rc is 0; else obj is freed. Returns rc.
int family_keep(void **out, void *obj, int rc);
// Whether name is one of presets (NULL-ended).
int family_has_preset(const char *const *presets, const char *name);
// What the run knows of a model whose image is a seq_h x seq_h grid of tokens of
// token_dim values, each a patch x patch piece of the latent's C channels: pixels for
// the patch tokenizer, KL-16 latents otherwise.
void family_info_grid(family_info *out, int class_num, tokenizer_kind tokenizer, int C, int seq_h, int patch,
                      int token_dim);
// 0, or for bf16 DISA_EINVAL "--precision bf16 runs MAR models; LABEL runs in fp32 for
// now: give --precision fp32" (a family whose Linear layers are not packed for bf16).
int family_refuse_bf16(const char *label, int precision);

// MODEL has a CONFIG `cfg`; open(MODEL *, path) as mar_open, preset(CONFIG *, name) and
// parse(CONFIG *, json, label) as mar_config_preset / _parse, close(MODEL *) frees any
// model (opened, config only, table built), write(const CONFIG *, seed, path, n_values)
// as mar_write_generated. Uses the file's k_presets.
#define FAMILY_MODEL_ADAPTERS(MODEL, CONFIG, open_, preset_, parse_, close_, write_)                             \
    static inline const CONFIG *config_of(const void *model) { return &((const MODEL *)model)->cfg; }            \
    static int open_file(void **out, const char *path) {                                                        \
        MODEL *m = calloc(1, sizeof *m);                                                                        \
        return family_keep(out, m, m ? open_(m, path) : disa_err(DISA_ENOMEM, "%s: out of memory", path));      \
    }                                                                                                           \
    /* A config without weights (a preset or a config JSON): no mapping, no tensor table yet; */                \
    /* rc is the parse's. */                                                                                    \
    static int config_model(void **out, const CONFIG *c, int rc) {                                              \
        MODEL *m = rc ? NULL : calloc(1, sizeof *m);                                                            \
        if (m) m->cfg = *c;                                                                                     \
        return family_keep(out, m, rc ? rc : m ? 0 : disa_err(DISA_ENOMEM, "out of memory"));                   \
    }                                                                                                           \
    static int open_preset(void **out, const char *name) {                                                      \
        CONFIG c;                                                                                               \
        if (!family_has_preset(k_presets, name)) return DISA_ENOTFOUND;                                         \
        return config_model(out, &c, preset_(&c, name));                                                        \
    }                                                                                                           \
    static int open_config(void **out, const char *json, const char *label) {                                   \
        CONFIG c;                                                                                               \
        return config_model(out, &c, parse_(&c, json, label));                                                  \
    }                                                                                                           \
    static void close_model(void *model) {                                                                      \
        if (model) close_((MODEL *)model);                                                                      \
        free(model);                                                                                            \
    }                                                                                                           \
    static void info(const void *model, family_info *out) {                                                     \
        const CONFIG *c = config_of(model);                                                                     \
        family_info_grid(out, c->class_num, c->tokenizer, c->vae_embed_dim, c->seq_h, c->patch_size,            \
                         c->token_dim);                                                                         \
    }                                                                                                           \
    static void to_latent(const void *model, float *latent, const float *tokens, int B) {                       \
        const CONFIG *c = config_of(model);                                                                     \
        mar_unpatchify(latent, tokens, B, c->seq_h, c->vae_embed_dim, c->patch_size);                           \
    }                                                                                                           \
    static int write_random(const void *model, const char *path, uint64_t seed, size_t *n_values) {             \
        return write_(config_of(model), seed, path, n_values);                                                  \
    }

// PARAMS is plain data of at most FAMILY_PARAMS_BYTES; init, set, check and str as
// sample_params_init, _set, _check and _str.
#define FAMILY_PARAMS_ADAPTERS(PARAMS, init_, set_, check_, str_)                                                \
    _Static_assert(sizeof(PARAMS) <= FAMILY_PARAMS_BYTES, #PARAMS " must fit a job's family_params");            \
    static inline const PARAMS *params_of(const family_params *p) { return (const PARAMS *)p->bytes; }           \
    static void params_init(family_params *p) {                                                                 \
        memset(p, 0, sizeof *p);                                                                                \
        init_((PARAMS *)p->bytes);                                                                              \
    }                                                                                                           \
    static int params_set(family_params *p, const char *key, const char *value) {                              \
        return set_((PARAMS *)p->bytes, key, value);                                                            \
    }                                                                                                           \
    static int params_check(const family_params *p) { return check_(params_of(p)); }                           \
    static const char *params_str(const family_params *p, char *buf, int n) { return str_(params_of(p), buf, n); }

// SAMPLER has `poll` and `poll_ctx`; the file's init_sampler(SAMPLER *, const MODEL *,
// const PARAMS *, int precision, int max_batch) starts one; run(SAMPLER *, RNG's base *,
// labels, B, tokens, stats) and free(SAMPLER *) as sampler_run and sampler_free; RNG
// with rng_init(RNG *, seed, index, B) and rng_free as ar_rng_philox.
#define FAMILY_SAMPLER_ADAPTERS(SAMPLER, run_, free_, RNG, rng_init_, rng_free_)                                  \
    static int sampler_new_(void **out, const void *model, const family_params *p, int precision, int max_batch) { \
        SAMPLER *s = calloc(1, sizeof *s);                                                                      \
        return family_keep(out, s,                                                                              \
                           s ? init_sampler(s, model, params_of(p), precision, max_batch)                       \
                             : disa_err(DISA_ENOMEM, "sampler: out of memory"));                                \
    }                                                                                                           \
    static int sampler_run_(void *run, float *tokens, const int *labels, uint64_t seed, const uint32_t *index,  \
                            int B, sample_stats *st, sample_poll_fn poll, void *poll_ctx) {                     \
        SAMPLER *s = run;                                                                                       \
        RNG rng;                                                                                                \
        int rc = rng_init_(&rng, seed, index, B);                                                               \
        if (rc) return rc;                                                                                      \
        s->poll = poll;                                                                                         \
        s->poll_ctx = poll_ctx;                                                                                 \
        rc = run_(s, &rng.base, labels, B, tokens, st);                                                         \
        rng_free_(&rng);                                                                                        \
        return rc;                                                                                              \
    }                                                                                                           \
    static void sampler_delete_(void *run) {                                                                    \
        if (run) free_((SAMPLER *)run);                                                                         \
        free(run);                                                                                              \
    }

// prepare, params_check_precision and init_sampler of a family that runs in fp32 only
// (fp32_only = 1): fp32 is the model as opened, bf16 is refused naming LABEL ("xAR")
// before a sampler is started with sampler_init_(SAMPLER *, const MODEL *, const PARAMS *,
// int max_batch).
#define FAMILY_FP32_ONLY(LABEL, sampler_init_)                                                                   \
    static int params_check_precision(const family_params *p, int precision, int from_auto) {                  \
        return family_refuse_bf16(LABEL, precision);                                                            \
    }                                                                                                           \
    static int prepare(void *model, int precision) { return family_refuse_bf16(LABEL, precision); }             \
    static int init_sampler(void *s, const void *model, const void *p, int precision, int max_batch) {          \
        int rc = family_refuse_bf16(LABEL, precision);                                                          \
        return rc ? rc : sampler_init_(s, model, p, max_batch);                                                 \
    }

// A FLOP model's counts for a batch of B as sample_flops per image (all 0 when rc, the
// FLOP model's result, is not). Returns rc.
int family_flops_per_image(sample_flops *out, int rc, uint64_t transformer, uint64_t head, uint64_t head_row_steps,
                           uint64_t tokens, int ar_steps, int B);

// The table's entries past its name, format and fp32_only: the file's k_keys and
// k_presets, the adapters above and the family's own functions.
#define FAMILY_ENTRIES                                                                                           \
    .keys = k_keys, .presets = k_presets, .open = open_file, .prepare = prepare, .preset = open_preset,         \
    .config = open_config, .close = close_model, .info = info, .describe = describe, .write_random = write_random, \
    .params_init = params_init, .params_set = params_set, .params_check = params_check, .params_str = params_str, \
    .params_check_precision = params_check_precision, .sampler_new = sampler_new_, .sampler_run = sampler_run_, \
    .sampler_delete = sampler_delete_, .to_latent = to_latent, .flops = flops

#endif
