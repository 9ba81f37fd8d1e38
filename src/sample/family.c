// family.c: the list of model families and what they share (include/disa/family.h), and
// the helpers of their tables' common entries (include/disa/family_kit.h).
#include "disa/family.h"
#include "disa/bf16.h"
#include "disa/err.h"
#include "disa/family_kit.h"
#include "disa/safetensors.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const family mar_family, xar_family, flowar_family;

// The families; a new one adds its table here (its index is its place in this list).
static const family *const k_families[] = {&mar_family, &xar_family, &flowar_family};

int family_count(void) { return (int)(sizeof k_families / sizeof *k_families); }

const family *family_at(int index) { return index >= 0 && index < family_count() ? k_families[index] : NULL; }

int family_index(const family *f) {
    for (int i = 0; i < family_count(); i++)
        if (k_families[i] == f) return i;
    return -1;
}

const char *latent_kind_name(latent_kind k) {
    return k == LATENT_PIXELS ? "pixels" : k == LATENT_KL16 ? "kl16" : "?";
}

const family *family_for_config(const char *json) {
    const family *found = k_families[0];
    cJSON *cfg = cJSON_Parse(json ? json : "");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(cfg, "format");
    for (int i = 0; cJSON_IsString(fmt) && i < family_count(); i++)
        if (strcmp(fmt->valuestring, k_families[i]->format) == 0) found = k_families[i];
    cJSON_Delete(cfg);
    return found;
}

const family *family_for_file(const char *path) {
    st_file st;
    if (st_open(&st, path) != 0) return k_families[0];
    const family *found = family_for_config(st_meta(&st, "config"));
    st_close(&st);
    return found;
}

const family *family_for_preset(const char *name) {
    for (int i = 0; i < family_count(); i++) {
        void *m;
        if (k_families[i]->preset(&m, name) == 0) {
            k_families[i]->close(m);
            return k_families[i];
        }
    }
    return NULL;
}

const char *family_presets_str(char *buf, int n) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < family_count(); i++)
        for (int k = 0; k_families[i]->presets[k] && used < (size_t)n; k++)
            used += (size_t)snprintf(buf + used, (size_t)n - used, "%s%s", used ? ", " : "", k_families[i]->presets[k]);
    return buf;
}

void sample_stats_step(sample_stats *st, uint64_t tokens, int steps) {
    st->head_row_steps += tokens * (uint64_t)steps;
    st->tokens += tokens;
    st->ar_steps++;
}

int family_precision_set(int *precision, const char *key, const char *value) {
    if (strcmp(key, "precision") != 0) return DISA_ENOTFOUND;
    precision_kind p;
    int rc = precision_parse(value, &p);
    if (!rc) *precision = (int)p;
    return rc;
}

static int has_key(const family *f, const char *key) {
    for (int k = 0; f->keys[k]; k++)
        if (strcmp(f->keys[k], key) == 0) return 1;
    return 0;
}

int family_is_sampling_key(const char *key) {
    if (strcmp(key, "precision") == 0) return 1;
    for (int i = 0; i < family_count(); i++)
        if (has_key(k_families[i], key)) return 1;
    return 0;
}

int family_precision_check(const family *f, const family_params *p, int precision, int from_auto) {
    return f->params_check_precision ? f->params_check_precision(p, precision, from_auto) : 0;
}

int family_precision_resolve(const family *f, int precision, char *why, int n) {
    if (precision == PRECISION_AUTO && f->fp32_only) {
        if (why) snprintf(why, (size_t)n, "fp32 (%s models run in fp32 for now)", f->name);
        return PRECISION_FP32;
    }
    return (int)precision_resolve((precision_kind)precision, why, n);
}

int family_sampling_set(const family *f, family_params *p, int *precision, const char *key, const char *value) {
    int rc = family_precision_set(precision, key, value);
    if (rc != DISA_ENOTFOUND) return rc;
    if (has_key(f, key)) return f->params_set(p, key, value);
    if (family_is_sampling_key(key)) return disa_err(DISA_EINVAL, "'--%s' does not apply to %s models", key, f->name);
    return DISA_ENOTFOUND;
}

const char *family_sampling_str(const family *f, const family_params *p, int precision, char *buf, int n) {
    f->params_str(p, buf, n);
    if (precision != PRECISION_FP32) {
        size_t used = strlen(buf);
        if (used + 1 < (size_t)n)
            snprintf(buf + used, (size_t)n - used, " precision=%s", precision_name((precision_kind)precision));
    }
    return buf;
}

const char *family_keys_str(const family *f, char *buf, int n) {
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; f->keys[k] && used < (size_t)n; k++)
        used += (size_t)snprintf(buf + used, (size_t)n - used, "%s ", f->keys[k]);
    if (used < (size_t)n) snprintf(buf + used, (size_t)n - used, "precision");
    return buf;
}

// ----------------------------------------------------------------------------
// what the family tables share (family_kit.h)

int family_keep(void **out, void *obj, int rc) {
    if (rc) free(obj);
    else *out = obj;
    return rc;
}

int family_has_preset(const char *const *presets, const char *name) {
    for (int i = 0; presets[i]; i++)
        if (strcmp(name, presets[i]) == 0) return 1;
    return 0;
}

void family_info_grid(family_info *out, int class_num, tokenizer_kind tokenizer, int C, int seq_h, int patch,
                      int token_dim) {
    memset(out, 0, sizeof *out);
    out->class_num = class_num;
    out->latent = tokenizer == TOKENIZER_PATCH ? LATENT_PIXELS : LATENT_KL16;
    // unpatchify: [seq_h, seq_h, C, patch, patch] -> [C, seq_h patch, seq_h patch]; for
    // patch tokenizers the image itself.
    out->C = C;
    out->H = out->W = seq_h * patch;
    out->token_dims[0] = seq_h * seq_h;
    out->token_dims[1] = token_dim;
}

int family_refuse_bf16(const char *label, int precision) {
    if (precision != PRECISION_BF16) return 0;
    return disa_err(DISA_EINVAL, "--precision bf16 runs MAR models; %s runs in fp32 for now: give --precision fp32",
                    label);
}

int family_flops_per_image(sample_flops *out, int rc, uint64_t transformer, uint64_t head, uint64_t head_row_steps,
                           uint64_t tokens, int ar_steps, int B) {
    memset(out, 0, sizeof *out);
    if (rc) return rc;
    out->transformer = (double)transformer / B;
    out->head = (double)head / B;
    out->nfe_per_token = tokens ? (double)head_row_steps / tokens : 0;
    out->ar_steps = ar_steps;
    return 0;
}
