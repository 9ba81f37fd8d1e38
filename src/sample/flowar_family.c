// flowar_family.c: FlowAR behind the model-family seam (include/disa/family.h): the model
// (model/flowar.c, flowhead.c), its scale-wise loop with the flow head and DiSA's
// per-scale step schedule (sample/flowar_sample.c), its FLOP model (flowar_flops.c).
// Its model handle is a flowar_model (a mapped file, generated weights or a bare config,
// each freed by flowar_close), its params a flowar_params; the entries every family
// fills alike come from family_kit.h. The sampler returns the last scale's tokens, in
// raster order like MAR's.
#include "disa/family.h"
#include "disa/family_kit.h"
#include "disa/flowar.h"
#include "disa/flowar_sample.h"

#include <stdio.h>

static const char *const k_presets[] = {"flowar_small", "flowar_large", "flowar_huge", NULL};

FAMILY_MODEL_ADAPTERS(flowar_model, flowar_config, flowar_open, flowar_config_preset, flowar_config_parse,
                      flowar_close, flowar_write_generated)

static const char *describe(const void *model, char *buf, int n) {
    const flowar_config *c = config_of(model);
    char sc[FLOWAR_MAX_SCALES * 6 + 4];
    int k = 0;
    for (int i = 0; i < c->n_scales; i++) k += snprintf(sc + k, sizeof sc - (size_t)k, "%s%d", i ? "," : "", c->scale[i]);
    snprintf(buf, (size_t)n, "scales %s (%d tokens of %d), enc %dx%d, dec %dx%d, flow head %dx%d %s", sc, c->seq_len,
             c->token_dim, c->enc_depth, c->enc_dim, c->dec_depth, c->dec_dim, c->diffloss_d, c->diffloss_w,
             c->cross ? "attn-crossattn-mlp" : "attn-mlp");
    return buf;
}

// ----------------------------------------------------------------------------
// sampling: bf16 runs MAR models; FlowAR's Linear layers are not packed for it yet, so
// it runs in fp32 ("auto" resolves to fp32 for it).

FAMILY_PARAMS_ADAPTERS(flowar_params, flowar_params_init, flowar_params_set, flowar_params_check, flowar_params_str)
FAMILY_FP32_ONLY("FlowAR", flowar_sampler_init)
FAMILY_SAMPLER_ADAPTERS(flowar_sampler, flowar_sampler_run, flowar_sampler_free, ar_rng_philox, ar_rng_philox_init,
                        ar_rng_philox_free)

// FlowAR_DiSA eval.py's sampling flags.
static const char *const k_keys[] = {"flow_upper_steps", "flow_lower_steps", "cfg", "guidance", NULL};

static int flops(sample_flops *out, const void *model, const family_params *p, int B) {
    flowar_flops f = {0};
    int rc = flowar_flops_run(&f, NULL, config_of(model), params_of(p), B);
    return family_flops_per_image(out, rc, f.transformer, f.head, f.head_row_steps, f.tokens, f.scales, B);
}

const family flowar_family = {.name = "flowar", .format = "disa-flowar-1", .fp32_only = 1, FAMILY_ENTRIES};
