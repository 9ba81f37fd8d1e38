// seqcnn.c: a generic sequential CNN run from the layer list of a "disa-classifier-1"
// safetensors file, used as a feature net (penultimate features + logits).
// Mirrors tools/train_fmnist_classifier.py: run_layers (F.conv2d, F.relu,
// F.max_pool2d, F.avg_pool2d, flatten, F.linear in list order).
#include "disa/seqcnn.h"
#include "disa/err.h"
#include "disa/json.h"
#include "disa/nn.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *seq_kind_name(seq_kind k) {
    static const char *n[SEQ_KIND_COUNT] = {"conv2d", "relu", "maxpool2d", "avgpool2d", "flatten", "linear"};
    return k >= 0 && k < SEQ_KIND_COUNT ? n[k] : "?";
}

// ----------------------------------------------------------------------------
// config

static int jint(const cJSON *o, const char *key, int def, int required, int *out, const char *label, int li) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        if (required) return disa_err(DISA_EFORMAT, "%s: config layers[%d]: '%s' is missing", label, li, key);
        *out = def;
        return 0;
    }
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valueint < 0 || v->valueint > 1 << 20)
        return disa_err(DISA_EFORMAT, "%s: config layers[%d]: '%s' must be an integer in [0, 2^20]", label, li, key);
    *out = v->valueint;
    return 0;
}

int seqcnn_config_parse(seqcnn *m, const char *json, const char *label) {
    memset(m, 0, sizeof *m);
    if (!json) return disa_err(DISA_EFORMAT, "%s: no 'config' metadata: not a disa classifier file", label);
    char where[1100];
    snprintf(where, sizeof where, "%s: config", label);
    cJSON *o = NULL;
    int rc = json_parse_strict(&o, json, strlen(json), 4096, where);
    if (rc) return rc;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
    if (!cJSON_IsObject(o) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, "disa-classifier-1") != 0) {
        rc = disa_err(DISA_EFORMAT, "%s: config 'format' must be \"disa-classifier-1\"", label);
        goto fail;
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "input"), *layers = cJSON_GetObjectItemCaseSensitive(o, "layers");
    if (!cJSON_IsObject(in) || !cJSON_IsArray(layers) || cJSON_GetArraySize(layers) < 1) {
        rc = disa_err(DISA_EFORMAT, "%s: config needs an 'input' object and a non-empty 'layers' array", label);
        goto fail;
    }
    if ((rc = jint(in, "channels", 0, 1, &m->in_c, label, -1)) || (rc = jint(in, "height", 0, 1, &m->in_h, label, -1)) ||
        (rc = jint(in, "width", 0, 1, &m->in_w, label, -1)))
        goto fail;
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(in, "from_uint8");
    if (conv && (!cJSON_IsString(conv) || strcmp(conv->valuestring, "x / 255 * 2 - 1") != 0)) {
        rc = disa_err(DISA_EFORMAT, "%s: config input.from_uint8 must be \"x / 255 * 2 - 1\"", label);
        goto fail;
    }
    m->n_layers = cJSON_GetArraySize(layers);
    m->layers = calloc((size_t)m->n_layers, sizeof(seq_layer));
    if (!m->layers) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory", label);
        goto fail;
    }
    int C = m->in_c, H = m->in_h, W = m->in_w, flat = 0;
    if (C < 1 || H < 1 || W < 1) {
        rc = disa_err(DISA_ERANGE, "%s: config input size %dx%dx%d must be positive", label, C, H, W);
        goto fail;
    }
    for (int i = 0; i < m->n_layers; i++) {
        const cJSON *L = cJSON_GetArrayItem(layers, i), *t = cJSON_GetObjectItemCaseSensitive(L, "type");
        seq_layer *l = &m->layers[i];
        int k;
        for (k = 0; k < SEQ_KIND_COUNT; k++)
            if (cJSON_IsString(t) && strcmp(t->valuestring, seq_kind_name((seq_kind)k)) == 0) break;
        if (k == SEQ_KIND_COUNT) {
            rc = disa_err(DISA_EFORMAT, "%s: config layers[%d]: unknown type (conv2d, relu, maxpool2d, avgpool2d, "
                          "flatten, linear)", label, i);
            goto fail;
        }
        l->kind = (seq_kind)k;
        if (l->kind == SEQ_CONV2D || l->kind == SEQ_LINEAR) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(L, "name");
            if (!cJSON_IsString(nm) || strlen(nm->valuestring) >= sizeof l->name - 8) {
                rc = disa_err(DISA_EFORMAT, "%s: config layers[%d]: 'name' missing or too long", label, i);
                goto fail;
            }
            snprintf(l->name, sizeof l->name, "%s", nm->valuestring);
            snprintf(l->wname, sizeof l->wname, "%s.weight", l->name);
            snprintf(l->bname, sizeof l->bname, "%s.bias", l->name);
        }
        switch (l->kind) {
        case SEQ_CONV2D:
            if ((rc = jint(L, "cin", 0, 1, &l->cin, label, i)) || (rc = jint(L, "cout", 0, 1, &l->cout, label, i)) ||
                (rc = jint(L, "k", 0, 1, &l->k, label, i)) || (rc = jint(L, "stride", 1, 0, &l->stride, label, i)) ||
                (rc = jint(L, "pad", 0, 0, &l->pad, label, i)))
                goto fail;
            if (flat || l->cin != C || l->cout < 1 || l->k < 1 || l->stride < 1) {
                rc = disa_err(DISA_ESHAPE, "%s: config layers[%d] conv2d: cin %d does not match the %d channels "
                              "coming in (or bad k/stride/cout, or after flatten)", label, i, l->cin, C);
                goto fail;
            }
            C = l->cout;
            H = conv2d_out_size(H, l->k, l->stride, l->pad);
            W = conv2d_out_size(W, l->k, l->stride, l->pad);
            break;
        case SEQ_MAXPOOL:
        case SEQ_AVGPOOL:
            if ((rc = jint(L, "k", 0, 1, &l->k, label, i)) || (rc = jint(L, "stride", l->k, 0, &l->stride, label, i)) ||
                (rc = jint(L, "pad", 0, 0, &l->pad, label, i)) ||
                (rc = jint(L, "count_include_pad", 1, 0, &l->count_include_pad, label, i)))
                goto fail;
            if (flat || l->k < 1 || l->stride < 1 || 2 * l->pad > l->k) {
                rc = disa_err(DISA_ERANGE, "%s: config layers[%d] %s: bad k/stride/pad (or after flatten)", label, i,
                              seq_kind_name(l->kind));
                goto fail;
            }
            H = conv2d_out_size(H, l->k, l->stride, l->pad);
            W = conv2d_out_size(W, l->k, l->stride, l->pad);
            break;
        case SEQ_FLATTEN:
            C = C * H * W, H = W = 1, flat = 1;
            break;
        case SEQ_LINEAR:
            if ((rc = jint(L, "in", 0, 1, &l->cin, label, i)) || (rc = jint(L, "out", 0, 1, &l->cout, label, i))) goto fail;
            if (!flat || l->cin != C || l->cout < 1) {
                rc = disa_err(DISA_ESHAPE, "%s: config layers[%d] linear: in %d does not match the %d features coming "
                              "in (or no flatten before it)", label, i, l->cin, C);
                goto fail;
            }
            C = l->cout;
            break;
        default:
            break;
        }
        if (H < 1 || W < 1) {
            rc = disa_err(DISA_ERANGE, "%s: config layers[%d] %s: output would be empty", label, i, seq_kind_name(l->kind));
            goto fail;
        }
        l->C = C, l->H = H, l->W = W;
    }
    if ((rc = jint(o, "feature_layer", m->n_layers - 1, 0, &m->feature_layer, label, -1)) != 0) goto fail;
    if (m->feature_layer >= m->n_layers || !flat) {
        rc = disa_err(DISA_ERANGE, "%s: config: feature_layer %d outside the %d layers, or no flatten", label,
                      m->feature_layer, m->n_layers);
        goto fail;
    }
    m->feat_dim = m->layers[m->feature_layer].C * m->layers[m->feature_layer].H * m->layers[m->feature_layer].W;
    m->n_classes = C;
    cJSON_Delete(o);
    return 0;
fail:
    cJSON_Delete(o);
    free(m->layers);
    m->layers = NULL;
    return rc;
}

int seqcnn_tensor_table(seqcnn *m, st_bind_entry **tab, int *count) {
    int n = 0;
    *tab = calloc((size_t)2 * m->n_layers + 1, sizeof(st_bind_entry));
    if (!*tab) return disa_err(DISA_ENOMEM, "classifier tensor table: out of memory");
    for (int i = 0; i < m->n_layers; i++) {
        seq_layer *l = &m->layers[i];
        if (l->kind != SEQ_CONV2D && l->kind != SEQ_LINEAR) continue;
        st_bind_entry *w = &(*tab)[n++], *b = &(*tab)[n++];
        w->name = l->wname;
        w->dst = &l->w;
        if (l->kind == SEQ_CONV2D) {
            w->ndim = 4;
            w->shape[0] = l->cout, w->shape[1] = l->cin, w->shape[2] = l->k, w->shape[3] = l->k;
        } else {
            w->ndim = 2;
            w->shape[0] = l->cout, w->shape[1] = l->cin;
        }
        b->name = l->bname;
        b->dst = &l->b;
        b->ndim = 1;
        b->shape[0] = l->cout;
    }
    *count = n;
    return 0;
}

int seqcnn_open(seqcnn *m, const char *path) {
    st_file st;
    int rc = st_open(&st, path);
    if (rc) return rc;
    if ((rc = seqcnn_config_parse(m, st_meta(&st, "config"), path)) != 0) {
        st_close(&st);
        return rc;
    }
    m->st = st;
    st_bind_entry *tab = NULL;
    int n = 0;
    if ((rc = seqcnn_tensor_table(m, &tab, &n)) == 0) rc = st_bind(&m->st, tab, n);
    if (!rc) rc = st_check_unexpected(&m->st, tab, n, NULL, "the config's layers must match the file");
    free(tab);
    if (rc) seqcnn_close(m);
    return rc;
}

void seqcnn_close(seqcnn *m) {
    free(m->layers);
    st_close(&m->st);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------
// forward

static size_t max_act(const seqcnn *m, int N) {
    size_t mx = (size_t)N * m->in_c * m->in_h * m->in_w;
    for (int i = 0; i < m->n_layers; i++) {
        size_t s = (size_t)N * m->layers[i].C * m->layers[i].H * m->layers[i].W;
        if (s > mx) mx = s;
    }
    return mx;
}

static size_t max_scratch(const seqcnn *m) {
    size_t mx = 1;
    int C = m->in_c, H = m->in_h, W = m->in_w;
    for (int i = 0; i < m->n_layers; i++) {
        const seq_layer *l = &m->layers[i];
        if (l->kind == SEQ_CONV2D) {
            size_t s = conv2d_scratch_floats(C, H, W, l->k, l->k, l->stride, l->stride, l->pad, l->pad);
            if (s > mx) mx = s;
        }
        C = l->C, H = l->H, W = l->W;
    }
    return mx;
}

size_t seqcnn_scratch_bytes(const seqcnn *m, int N) {
    return (2 * max_act(m, N) + max_scratch(m)) * sizeof(float) + 4 * 64;
}

int seqcnn_forward(const seqcnn *m, arena *a, float *feat, float *logits, const uint8_t *img, int N) {
    size_t mark = arena_mark(a), act = max_act(m, N);
    float *x = arena_floats(a, act), *y = arena_floats(a, act), *scr = arena_floats(a, max_scratch(m));
    if (!x || !y || !scr) {
        arena_reset(a, mark);
        return DISA_ENOMEM;
    }
    size_t n_in = (size_t)N * m->in_c * m->in_h * m->in_w;
    // x / 255 * 2 - 1 in float32, each step rounded as the PyTorch expression is.
    for (size_t i = 0; i < n_in; i++) {
        float v = (float)img[i] / 255.0f;
        v = v * 2.0f;
        x[i] = v - 1.0f;
    }
    int C = m->in_c, H = m->in_h, W = m->in_w;
    for (int i = 0; i < m->n_layers; i++) {
        const seq_layer *l = &m->layers[i];
        size_t n_out = (size_t)N * l->C * l->H * l->W;
        switch (l->kind) {
        case SEQ_CONV2D:
            conv2d_forward(y, x, l->w, l->b, scr, N, C, H, W, l->cout, l->k, l->k, l->stride, l->stride, l->pad, l->pad);
            break;
        case SEQ_RELU:
            relu_forward(y, x, n_out);
            break;
        case SEQ_MAXPOOL:
            maxpool2d_forward(y, x, N, C, H, W, l->k, l->k, l->stride, l->stride, l->pad, l->pad);
            break;
        case SEQ_AVGPOOL:
            avgpool2d_forward(y, x, N, C, H, W, l->k, l->k, l->stride, l->stride, l->pad, l->pad, l->count_include_pad);
            break;
        case SEQ_FLATTEN:  // NCHW is already (c, h, w)-major per image
            memcpy(y, x, n_out * sizeof(float));
            break;
        case SEQ_LINEAR:
            linear_forward(y, x, l->w, l->b, N, l->cin, l->cout);
            break;
        default:
            break;
        }
        if (i == m->feature_layer && feat) memcpy(feat, y, n_out * sizeof(float));
        float *t = x;
        x = y, y = t;
        C = l->C, H = l->H, W = l->W;
    }
    if (logits) memcpy(logits, x, (size_t)N * m->n_classes * sizeof(float));
    arena_reset(a, mark);
    return 0;
}
