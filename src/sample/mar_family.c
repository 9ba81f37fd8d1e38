// mar_family.c: MAR behind the model-family seam (include/disa/family.h): the model
// (model/mar.c), its AR loop with the diffusion head and DiSA (sample/ar.c), its FLOP
// model (sample/flops.c). Its model handle is a mar_model, its params a sample_params;
// the entries every family fills alike come from family_kit.h.
#include "disa/family.h"
#include "disa/family_kit.h"
#include "disa/flops.h"
#include "disa/mar.h"
#include "disa/sampler.h"

#include <stdio.h>

static const char *const k_presets[] = {"mar_base", "mar_large", "mar_huge", NULL};

FAMILY_MODEL_ADAPTERS(mar_model, mar_config, mar_open, mar_config_preset, mar_config_parse, mar_close,
                      mar_write_generated)

static int prepare(void *model, int precision) { return mar_prepare(model, (precision_kind)precision); }

static const char *describe(const void *model, char *buf, int n) {
    const mar_config *c = config_of(model);
    snprintf(buf, (size_t)n, "seq %d x %d, enc %dx%d, dec %dx%d, head %dx%d", c->seq_len, c->token_dim, c->enc_depth,
             c->enc_dim, c->dec_depth, c->dec_dim, c->diffloss_d, c->diffloss_w);
    return buf;
}

// ----------------------------------------------------------------------------
// sampling

FAMILY_PARAMS_ADAPTERS(sample_params, sample_params_init, sample_params_set, sample_params_check, sample_params_str)

static int params_check_precision(const family_params *p, int precision, int from_auto) {
    return sample_params_check_precision(params_of(p), (precision_kind)precision, from_auto);
}

// The precision travels in the params: sampler_init checks it against the model's and
// the settings'.
static int init_sampler(sampler *s, const mar_model *m, const sample_params *p, int precision, int max_batch) {
    sample_params sp = *p;
    sp.precision = (precision_kind)precision;
    return sampler_init(s, m, &sp, max_batch);
}

FAMILY_SAMPLER_ADAPTERS(sampler, sampler_run, sampler_free, ar_rng_philox, ar_rng_philox_init, ar_rng_philox_free)

// main_mar.py's sampling flags, then disa's own (dpm.h, adaptive.h), in the order the
// messages list them.
static const char *const k_keys[] = {"num_iter",         "cfg",
                                     "cfg_schedule",     "temperature",
                                     "diff_sampler",     "diff_upper_steps",
                                     "diff_lower_steps", "diff_annealing_strategy",
                                     "dpm_order",        "diff_budget",
                                     "diff_adaptive_signal", NULL};

static int flops(sample_flops *out, const void *model, const family_params *p, int B) {
    flops_sample s = {0};
    int rc = flops_sample_run(&s, NULL, config_of(model), params_of(p), B);
    return family_flops_per_image(out, rc, s.transformer, s.head, s.head_row_steps, s.tokens, s.ar_steps, B);
}

const family mar_family = {.name = "mar", .format = "disa-mar-1", FAMILY_ENTRIES};
