// xar_family.c: xAR behind the model-family seam (include/disa/family.h): the model
// (model/xar.c), its AR loop over groups with the flow samplers and DiSA's linear step
// schedule, and its FLOP model (sample/xar_sample.c). Its model handle is an xar_model,
// its params an xar_params; the entries every family fills alike come from family_kit.h.
#include "disa/family.h"
#include "disa/family_kit.h"
#include "disa/xar.h"
#include "disa/xar_sample.h"

#include <stdio.h>

static const char *const k_presets[] = {"xar_base", "xar_large", "xar_huge", NULL};

FAMILY_MODEL_ADAPTERS(xar_model, xar_config, xar_open, xar_config_preset, xar_config_parse, xar_close,
                      xar_write_generated)

static const char *describe(const void *model, char *buf, int n) {
    const xar_config *c = config_of(model);
    snprintf(buf, (size_t)n, "seq %d x %d in %d groups of %d, enc %dx%d, dec %dx%d, heads %d/%d", c->seq_len,
             c->token_dim, c->clusters, c->group, c->enc_depth, c->enc_dim, c->dec_depth, c->dec_dim, c->enc_heads,
             c->dec_heads);
    return buf;
}

// ----------------------------------------------------------------------------
// sampling: bf16 runs MAR models; xAR's Linear layers are not packed for it yet, so it
// runs in fp32 ("auto" resolves to fp32 for it).

FAMILY_PARAMS_ADAPTERS(xar_params, xar_params_init, xar_params_set, xar_params_check, xar_params_str)
FAMILY_FP32_ONLY("xAR", xar_sampler_init)
FAMILY_SAMPLER_ADAPTERS(xar_sampler, xar_sampler_run, xar_sampler_free, xar_rng_philox, xar_rng_philox_init,
                        xar_rng_philox_free)

// xAR_DiSA eval.py's sampling flags (cfg, cfg_schedule, flow_upper_steps,
// flow_lower_steps), the original xAR eval.py's constant count (num_steps: both), and
// disa's choice of the flow sampler.
static const char *const k_keys[] = {"cfg",        "cfg_schedule", "flow_upper_steps", "flow_lower_steps",
                                     "num_steps",  "flow_sampler", NULL};

// The FLOP model: every FLOP is the transformer's (it is its own flow network).
static int flops(sample_flops *out, const void *model, const family_params *p, int B) {
    xar_flops f = {0};
    int rc = xar_flops_run(&f, config_of(model), params_of(p), B);
    return family_flops_per_image(out, rc, f.transformer, 0, f.row_steps, f.tokens, f.ar_steps, B);
}

const family xar_family = {.name = "xar", .format = "disa-xar-1", .fp32_only = 1, FAMILY_ENTRIES};
