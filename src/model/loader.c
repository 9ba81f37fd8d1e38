// loader.c: what the model loaders share (include/disa/loader.h): the config reader,
// the binding table's bookends and shared tensor groups, opening and writing model files.
#include "disa/loader.h"
#include "disa/err.h"
#include "disa/json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// config

int loader_config_open(cJSON **o, const char *json, const char *label, const loader_schema *s) {
    *o = NULL;
    if (!json) return disa_err(DISA_EFORMAT, "%s: no 'config' metadata: %s", label, s->not_one);
    char where[1100];
    snprintf(where, sizeof where, "%s: config", label);
    int rc = json_parse_strict(o, json, strlen(json), 64, where);
    if (rc) goto out;
    if (!cJSON_IsObject(*o)) {
        rc = disa_err(DISA_EFORMAT, "%s: 'config' metadata is not a JSON object", label);
        goto out;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(*o, "format");
    const char *got = cJSON_IsString(fmt) ? fmt->valuestring : NULL;
    if (!got || strcmp(got, s->format) != 0) {
        if (s->kind)
            rc = disa_err(got ? DISA_EINVAL : DISA_EFORMAT, "%s: config 'format' is %s%s%s, not \"%s\": not a %s model",
                          label, got ? "\"" : "", got ? got : "missing", got ? "\"" : "", s->format, s->kind);
        else
            rc = disa_err(DISA_EFORMAT, "%s: config 'format' must be \"%s\"%s%s%s", label, s->format,
                          s->say_got && got ? ", got \"" : "", s->say_got && got ? got : "",
                          s->say_got && got ? "\"" : "");
        goto out;
    }
    // A key this reader does not know may change the model (a converter newer than the
    // engine): refuse it rather than sample from a different network.
    rc = json_check_keys(*o, s->known, where, "");
out:
    if (rc) {
        cJSON_Delete(*o);
        *o = NULL;
    }
    return rc;
}

static int read_int(int *out, const cJSON *v, const loader_key *k, const char *label) {
    const int wide = k->flags & LOADER_WIDE;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d == floor(d) && (wide || (d >= INT_MIN && d <= INT_MAX))))
        return disa_err(DISA_EFORMAT, "%s: config: '%s' must be an integer", label, k->key);
    if (d < k->lo || d > k->hi) {
        char got[32];
        if (wide) snprintf(got, sizeof got, "%g", d);
        else snprintf(got, sizeof got, "%d", (int)d);
        if (k->hi >= INT_MAX)
            return disa_err(DISA_ERANGE, "%s: config: '%s' must be >= %d, got %s", label, k->key, (int)k->lo, got);
        return disa_err(DISA_ERANGE, "%s: config: '%s' must be in %d..%d, got %s", label, k->key, (int)k->lo,
                        (int)k->hi, got);
    }
    *out = (int)d;
    return 0;
}

// lo < d < hi, or d <= hi with LOADER_HI_IN.
static int in_range(double d, const loader_key *k) {
    return d > k->lo && (k->flags & LOADER_HI_IN ? d <= k->hi : d < k->hi);
}

static int read_number(double *out, const cJSON *v, const loader_key *k, const char *label) {
    if ((k->lo == 0 && k->hi == 0) || k->flags & LOADER_LATE) {
        if (!cJSON_IsNumber(v)) return disa_err(DISA_EFORMAT, "%s: config '%s' must be a number", label, k->key);
    } else if (!cJSON_IsNumber(v) || !in_range(v->valuedouble, k)) {
        return disa_err(DISA_ERANGE, "%s: config '%s' must be a number in (%g, %g%c", label, k->key, k->lo, k->hi,
                        k->flags & LOADER_HI_IN ? ']' : ')');
    }
    *out = v->valuedouble;
    return 0;
}

static int read_choice(int *out, const cJSON *v, const loader_key *k, const char *label) {
    if (!cJSON_IsString(v)) return disa_err(DISA_EFORMAT, "%s: config '%s' must be a string", label, k->key);
    int n = 0;
    while (k->choices[n]) n++;
    for (int i = 0; i < n; i++)
        if (strcmp(v->valuestring, k->choices[i]) == 0) {
            *out = i;
            return 0;
        }
    // "a", "b" or "c"
    char list[256];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s\"%s\"", i == 0 ? "" : i + 1 < n ? ", " : " or ",
                                 k->choices[i]);
    return disa_err(DISA_EFORMAT, "%s: config '%s' must be %s, got \"%s\"", label, k->key, list, v->valuestring);
}

static int read_key(void *cfg, const cJSON *o, const loader_key *k, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k->key);
    void *field = (char *)cfg + k->offset;
    int *ifield = field;
    double d = k->def;
    int rc = 0;
    if (!v && k->flags & LOADER_KEEP) return 0;
    if (!v && !(k->flags & LOADER_OPTIONAL))
        return disa_err(DISA_EFORMAT, "%s: config: '%s' is missing", label, k->key);
    switch (k->type) {
    case LOADER_INT:
        if (!v) *ifield = (int)d;
        else rc = read_int(ifield, v, k, label);
        break;
    case LOADER_DOUBLE:
    case LOADER_FLOAT:
        if (v && (rc = read_number(&d, v, k, label)) != 0) break;
        if (k->type == LOADER_DOUBLE) *(double *)field = d;
        else *(float *)field = (float)d;
        break;
    case LOADER_BOOL:
        if (v && !cJSON_IsBool(v)) rc = disa_err(DISA_EFORMAT, "%s: config '%s' must be true or false", label, k->key);
        else *ifield = v ? cJSON_IsTrue(v) : (int)d;
        break;
    case LOADER_CHOICE:
        if (!v) *ifield = (int)d;
        else rc = read_choice(ifield, v, k, label);
        break;
    default:
        rc = disa_err(DISA_EINTERNAL, "%s: config: key '%s' of unknown type %d", label, k->key, (int)k->type);
    }
    return rc;
}

// Which pass reads a key: sizes, then numbers, then the rest.
static int pass_of(loader_type t) { return t == LOADER_INT ? 0 : t == LOADER_DOUBLE || t == LOADER_FLOAT ? 1 : 2; }

int loader_config_read(void *cfg, const cJSON *o, const loader_key *keys, int n, const char *label) {
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < n; i++) {
            int rc = pass_of(keys[i].type) == pass ? read_key(cfg, o, &keys[i], label) : 0;
            if (rc) return rc;
        }
    for (int i = 0; i < n; i++) {
        const loader_key *k = &keys[i];
        if (!(k->flags & LOADER_LATE)) continue;
        const char *field = (const char *)cfg + k->offset;
        double d = k->type == LOADER_DOUBLE ? *(const double *)field : *(const float *)field;
        if (!in_range(d, k))
            return disa_err(DISA_ERANGE, "%s: config '%s' must be in (%g, %g%c, got %g", label, k->key, k->lo, k->hi,
                            k->flags & LOADER_HI_IN ? ']' : ')', d);
    }
    return 0;
}

int loader_config_parse(void *cfg, cJSON **o, const char *json, const char *label, const loader_schema *s) {
    memset(cfg, 0, s->size);
    int rc = loader_config_open(o, json, label, s);
    if (!rc && (rc = loader_config_read(cfg, *o, s->keys, s->n_keys, label)) != 0) {
        cJSON_Delete(*o);
        *o = NULL;
    }
    return rc;
}

const char *loader_config_json(const loader_schema *s, const void *cfg, char *buf, int n) {
    size_t used = (size_t)snprintf(buf, (size_t)n, "{\"format\":\"%s\"", s->format);
    for (int i = 0; i < s->n_keys && used < (size_t)n; i++) {
        const loader_key *k = &s->keys[i];
        const char *field = (const char *)cfg + k->offset;
        char *at = buf + used;
        size_t left = (size_t)n - used;
        if (k->type == LOADER_DOUBLE)
            used += (size_t)snprintf(at, left, ",\"%s\":%.17g", k->key, *(const double *)field);
        else if (k->type == LOADER_FLOAT)
            used += (size_t)snprintf(at, left, ",\"%s\":%.9g", k->key, (double)*(const float *)field);
        else if (k->type == LOADER_CHOICE)
            used += (size_t)snprintf(at, left, ",\"%s\":\"%s\"", k->key, k->choices[*(const int *)field]);
        else if (k->type == LOADER_BOOL)
            used += (size_t)snprintf(at, left, ",\"%s\":%s", k->key, *(const int *)field ? "true" : "false");
        else
            used += (size_t)snprintf(at, left, ",\"%s\":%d", k->key, *(const int *)field);
    }
    if (used < (size_t)n) snprintf(buf + used, (size_t)n - used, "}");
    return buf;
}

const char *loader_preset_json(const loader_schema *s, void *cfg, const loader_preset *presets, int n,
                               const char *name, char *buf, int size) {
    for (int i = 0; i < n; i++) {
        if (strcmp(name, presets[i].name) != 0) continue;
        // The values in a config, then its JSON: the preset reads as a file's would.
        memset(cfg, 0, s->size);
        for (int j = 0; j < s->n_keys && j < (int)(sizeof presets[i].v / sizeof *presets[i].v); j++) {
            const loader_key *k = &s->keys[j];
            char *field = (char *)cfg + k->offset;
            double v = presets[i].v[j];
            if (k->type == LOADER_DOUBLE) *(double *)field = v;
            else if (k->type == LOADER_FLOAT) *(float *)field = (float)v;
            else *(int *)field = (int)v;
        }
        return loader_config_json(s, cfg, buf, size);
    }
    return NULL;
}

int loader_token_grid(int *seq_h, int img_size, int vae_stride, int patch_size, const char *label) {
    int grid = vae_stride * patch_size;
    if (img_size % grid != 0)
        return disa_err(DISA_ERANGE, "%s: config: img_size %d is not a multiple of vae_stride*patch_size = %d", label,
                        img_size, grid);
    *seq_h = img_size / grid;
    return 0;
}

// ----------------------------------------------------------------------------
// binding tables

int loader_table_begin(st_table *t, int n, int allocated, st_bind_entry **tab, char **names, int *count,
                       const char *what) {
    *tab = NULL;
    *names = NULL;
    *count = 0;
    if (!allocated || st_table_init(t, n) != 0) return disa_err(DISA_ENOMEM, "%s tensor table: out of memory", what);
    return 0;
}

int loader_table_end(st_table *t, st_bind_entry **tab, char **names, int *count, const char *what) {
    if (t->overflow) {
        st_table_free(t);
        return disa_err(DISA_EINTERNAL, "%s tensor table: more tensors than counted", what);
    }
    *tab = t->e;
    *names = t->names;
    *count = t->n;
    return 0;
}

#define SH(...) (const int64_t[]){__VA_ARGS__}

void loader_add_linears(st_table *t, const float **const *dst, const loader_linear *layers, int n, const char *pre) {
    for (int i = 0; i < n; i++) {
        const loader_linear *l = &layers[i];
        st_table_add(t, dst[2 * i], 2, SH(l->out, l->in), "%s%s.weight", pre, l->name);
        if (dst[2 * i + 1]) st_table_add(t, dst[2 * i + 1], 1, SH(l->out), "%s%s.bias", pre, l->name);
    }
}

void loader_add_attn(st_table *t, const float **const dst[4], int d, const char *pre) {
    loader_add_linears(t, dst, (const loader_linear[]){{"attn.qkv", 3 * d, d}, {"attn.proj", d, d}}, 2, pre);
}

void loader_add_swiglu(st_table *t, const float **const dst[6], int d, int h, const char *pre) {
    loader_add_linears(t, dst, (const loader_linear[]){{"mlp.fc1_g", h, d}, {"mlp.fc1_x", h, d}, {"mlp.fc2", d, h}}, 3,
                       pre);
}

void loader_add_ar_block(st_table *t, const float **const dst[12], const float **freqs, int hd, const char *stack,
                         int i, int d, int h) {
    char pre[64];
    snprintf(pre, sizeof pre, "%s.%d.", stack, i);
    loader_add_attn(t, dst, d, pre);
    if (freqs) st_table_add(t, freqs, 1, SH(hd / 4), "%sattn.rope.freqs", pre);
    loader_add_swiglu(t, dst + 4, d, h, pre);
    loader_add_linears(t, dst + 10, (const loader_linear[]){{"ada_lin.1", 6 * d, d}}, 1, pre);
}

void loader_add_head_embeds(st_table *t, const float **const dst[8], int w, int z, int c, const char *pre) {
    const loader_linear layers[] = {
        {"time_embed.mlp.0", w, 256}, {"time_embed.mlp.2", w, w}, {"cond_embed", w, z}, {"input_proj", w, c}};
    loader_add_linears(t, dst, layers, 4, pre);
}

// ----------------------------------------------------------------------------
// model files

int loader_open(const loader_model *k, void *model, st_file *st, void *cfg, const char *path) {
    memset(model, 0, k->size);
    int rc = st_open(st, path);
    if (rc) return rc;
    st_bind_entry *tab;
    char *names;
    int n;
    if ((rc = k->parse(cfg, st_meta(st, "config"), path)) == 0 && (rc = k->table(model, &tab, &names, &n)) == 0) {
        rc = st_bind(st, tab, n);
        if (!rc && k->hint) rc = st_check_unexpected(st, tab, n, k->ignore, k->hint);
        free(tab);
        free(names);
    }
    if (rc) k->close(model);
    return rc;
}

int loader_write_generated(const loader_model *k, void *model, const char *config_json, uint64_t seed,
                           const char *path, size_t *n_values) {
    st_bind_entry *tab = NULL;
    char *names = NULL;
    int n, rc = k->table(model, &tab, &names, &n);
    if (!rc) rc = st_write_generated(tab, n, seed, config_json, path, n_values);
    free(tab);
    free(names);
    k->close(model);
    return rc;
}
