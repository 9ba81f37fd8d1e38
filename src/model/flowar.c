// flowar.c: FlowAR's config, loader and transformer, one scale at a time.
// Mirrors FlowAR_DiSA models/flowar.py: FlowAR.__init__ (names and shapes),
// forward_mae_encoder / forward_mae_decoder in evaluation mode, Block.forward and
// Attention.forward with its key/value cache. The flow head is in flowhead.c.
#include "disa/flowar.h"
#include "disa/blas.h"
#include "disa/dgen.h"
#include "disa/err.h"
#include "disa/loader.h"
#include "disa/nn.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// config

// int(dim * mlp_ratio * 2 / 3.) as Python evaluates it, left to right in double.
static int swiglu_width(int dim, double mlp_ratio) { return (int)((double)dim * mlp_ratio * 2 / 3.0); }

static int check_sizes(flowar_config *c, const char *label) {
    if (c->buffer_size != 0)
        return disa_err(DISA_ERANGE, "%s: config: 'buffer_size' must be 0 (FlowAR's sample_tokens starts from one "
                        "class row per image), got %d", label, c->buffer_size);
    if (c->enc_dim != c->dec_dim)
        return disa_err(DISA_ERANGE, "%s: config: decoder_embed_dim %d must equal encoder_embed_dim %d (the decoder "
                        "blocks' ada_lin reads the class embedding)", label, c->dec_dim, c->enc_dim);
    if (c->enc_dim % c->enc_heads || (c->enc_dim / c->enc_heads) % 4 || c->dec_dim % c->dec_heads ||
        (c->dec_dim / c->dec_heads) % 4)
        return disa_err(DISA_ERANGE, "%s: config: head widths (%d / %d, %d / %d) must be whole multiples of 4 (2-D "
                        "RoPE)", label, c->enc_dim, c->enc_heads, c->dec_dim, c->dec_heads);
    c->head_heads = c->diffloss_w / 64;
    if (c->head_heads < 1 || c->diffloss_w % c->head_heads || (c->diffloss_w / c->head_heads) % 4)
        return disa_err(DISA_ERANGE, "%s: config: 'diffloss_w' %d must be >= 64 and split into %d heads of a multiple "
                        "of 4", label, c->diffloss_w, c->head_heads);
    int rc = loader_token_grid(&c->seq_h, c->img_size, c->vae_stride, c->patch_size, label);
    if (rc) return rc;
    c->token_dim = c->vae_embed_dim * c->patch_size * c->patch_size;
    if (c->token_dim != FLOWAR_TOKEN_DIM)
        return disa_err(DISA_ERANGE, "%s: config: tokens of vae_embed_dim * patch_size^2 = %d channels; FlowAR's "
                        "sampler draws %d", label, c->token_dim, FLOWAR_TOKEN_DIM);
    if (c->scale[c->n_scales - 1] != c->seq_h)
        return disa_err(DISA_ERANGE, "%s: config: the last scale %d must be the token grid side img_size / vae_stride "
                        "/ patch_size = %d", label, c->scale[c->n_scales - 1], c->seq_h);
    c->start[0] = 0;
    for (int i = 0; i < c->n_scales; i++) c->start[i + 1] = c->start[i] + c->scale[i] * c->scale[i];
    c->seq_len = c->start[c->n_scales];
    c->enc_hidden = swiglu_width(c->enc_dim, c->mlp_ratio);
    c->dec_hidden = swiglu_width(c->dec_dim, c->mlp_ratio);
    c->head_hidden = swiglu_width(c->diffloss_w, 4.0);
    return 0;
}

const char *const flowar_config_keys[] = {
    "format", "img_size", "vae_stride", "patch_size", "vae_embed_dim", "encoder_embed_dim", "encoder_depth",
    "encoder_num_heads", "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio", "buffer_size",
    "class_num", "diffloss_d", "diffloss_w", "scale", "cross", "norm_eps", "tokenizer", NULL};

// In the order of the JSON (flowar_config_to_json); scale and tokenizer are read below.
static const loader_key k_keys[] = {
    LOADER_INT_KEY(flowar_config, "img_size", img_size, 1, 65536),
    LOADER_INT_KEY(flowar_config, "vae_stride", vae_stride, 1, 4096),
    LOADER_INT_KEY(flowar_config, "patch_size", patch_size, 1, 64),
    LOADER_INT_KEY(flowar_config, "vae_embed_dim", vae_embed_dim, 1, 4096),
    LOADER_INT_KEY(flowar_config, "encoder_embed_dim", enc_dim, 1, 65536),
    LOADER_INT_KEY(flowar_config, "encoder_depth", enc_depth, 0, 1024),
    LOADER_INT_KEY(flowar_config, "encoder_num_heads", enc_heads, 1, 4096),
    LOADER_INT_KEY(flowar_config, "decoder_embed_dim", dec_dim, 1, 65536),
    LOADER_INT_KEY(flowar_config, "decoder_depth", dec_depth, 0, 1024),
    LOADER_INT_KEY(flowar_config, "decoder_num_heads", dec_heads, 1, 4096),
    {.key = "mlp_ratio", .type = LOADER_DOUBLE, .offset = offsetof(flowar_config, mlp_ratio), .lo = 0, .hi = 64,
     .flags = LOADER_OPTIONAL | LOADER_HI_IN, .def = 4},
    LOADER_INT_KEY(flowar_config, "buffer_size", buffer_size, 0, 65536),
    LOADER_INT_KEY(flowar_config, "class_num", class_num, 1, FLOWAR_UNCOND_LABEL),
    LOADER_INT_KEY(flowar_config, "diffloss_d", diffloss_d, 1, 1024),
    LOADER_INT_KEY(flowar_config, "diffloss_w", diffloss_w, 1, 65536),
    {.key = "cross", .type = LOADER_BOOL, .offset = offsetof(flowar_config, cross), .flags = LOADER_OPTIONAL},
    // RMSNorm divides by sqrt(mean(x^2) + eps): eps <= 0 gives Inf/NaN on a zero row.
    {.key = "norm_eps", .type = LOADER_FLOAT, .offset = offsetof(flowar_config, norm_eps), .lo = 0, .hi = 1,
     .flags = LOADER_OPTIONAL, .def = 1e-6},
};

static const loader_schema k_schema = {
    .format = "disa-flowar-1",
    .not_one = "not a disa FlowAR file (convert checkpoints with tools/convert_flowar.py)",
    .known = flowar_config_keys,
    .keys = k_keys, .n_keys = (int)(sizeof k_keys / sizeof *k_keys), .size = sizeof(flowar_config), .kind = "FlowAR"};

int flowar_config_parse(flowar_config *c, const char *json, const char *label) {
    cJSON *o;
    int rc = loader_config_parse(c, &o, json, label, &k_schema);
    if (rc) return rc;
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokenizer");
    if (tk && (!cJSON_IsString(tk) || strcmp(tk->valuestring, "kl16") != 0)) {
        rc = disa_err(DISA_EFORMAT, "%s: config 'tokenizer' must be \"kl16\" (FlowAR decodes with MAR's KL-16)", label);
        goto out;
    }
    c->tokenizer = TOKENIZER_KL16;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scale");
    int n = cJSON_IsArray(sc) ? cJSON_GetArraySize(sc) : -1;
    if (n < 2 || n > FLOWAR_MAX_SCALES) {
        rc = disa_err(DISA_EFORMAT, "%s: config 'scale' must be a list of 2..%d grid sides (officially [1, 2, 4, 8, "
                      "16])", label, FLOWAR_MAX_SCALES);
        goto out;
    }
    c->n_scales = n;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(sc, i);
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valueint < 1 ||
            v->valueint > 256) {
            rc = disa_err(DISA_ERANGE, "%s: config 'scale'[%d] must be an integer in 1..256", label, i);
            goto out;
        }
        c->scale[i] = v->valueint;
    }
    rc = check_sizes(c, label);
out:
    cJSON_Delete(o);
    return rc;
}

const char *flowar_config_to_json(const flowar_config *c, char *buf, int n) {
    char sc[FLOWAR_MAX_SCALES * 6 + 4];
    int k = 0;
    for (int i = 0; i < c->n_scales; i++) k += snprintf(sc + k, sizeof sc - (size_t)k, "%s%d", i ? "," : "", c->scale[i]);
    snprintf(buf, (size_t)n,
             "{\"format\":\"disa-flowar-1\",\"img_size\":%d,\"vae_stride\":%d,\"patch_size\":%d,\"vae_embed_dim\":%d,"
             "\"encoder_embed_dim\":%d,\"encoder_depth\":%d,\"encoder_num_heads\":%d,\"decoder_embed_dim\":%d,"
             "\"decoder_depth\":%d,\"decoder_num_heads\":%d,\"mlp_ratio\":%.17g,\"buffer_size\":%d,\"class_num\":%d,"
             "\"diffloss_d\":%d,\"diffloss_w\":%d,\"scale\":[%s],\"cross\":%s,\"tokenizer\":\"kl16\",\"norm_eps\":%.9g}",
             c->img_size, c->vae_stride, c->patch_size, c->vae_embed_dim, c->enc_dim, c->enc_depth, c->enc_heads,
             c->dec_dim, c->dec_depth, c->dec_heads, c->mlp_ratio, c->buffer_size, c->class_num, c->diffloss_d,
             c->diffloss_w, sc, c->cross ? "true" : "false", (double)c->norm_eps);
    return buf;
}

int flowar_config_preset(flowar_config *c, const char *name) {
    // models/flowar.py flowar_small / _large / _huge; head depth and width from the README.
    static const struct { const char *name; int dim, depth, heads, hd, hw, cross; } presets[] = {
        {"flowar_small", 768, 6, 12, 2, 1024, 0},
        {"flowar_large", 1024, 8, 16, 12, 1024, 1},
        {"flowar_huge", 1536, 15, 16, 12, 1536, 1}};
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++) {
        if (strcmp(name, presets[i].name) != 0) continue;
        char json[640];
        snprintf(json, sizeof json,
                 "{\"format\":\"disa-flowar-1\",\"img_size\":256,\"vae_stride\":16,\"patch_size\":1,"
                 "\"vae_embed_dim\":16,\"encoder_embed_dim\":%d,\"encoder_depth\":%d,\"encoder_num_heads\":%d,"
                 "\"decoder_embed_dim\":%d,\"decoder_depth\":%d,\"decoder_num_heads\":%d,\"mlp_ratio\":4.0,"
                 "\"buffer_size\":0,\"class_num\":1000,\"diffloss_d\":%d,\"diffloss_w\":%d,\"scale\":[1,2,4,8,16],"
                 "\"cross\":%s,\"tokenizer\":\"kl16\",\"norm_eps\":1e-6}",
                 presets[i].dim, presets[i].depth, presets[i].heads, presets[i].dim, presets[i].depth,
                 presets[i].heads, presets[i].hd, presets[i].hw, presets[i].cross ? "true" : "false");
        return flowar_config_parse(c, json, name);
    }
    return disa_err(DISA_EINVAL, "unknown preset '%s' (flowar_small, flowar_large, flowar_huge)", name);
}

// ----------------------------------------------------------------------------
// loading

#define SH(...) (const int64_t[]){__VA_ARGS__}

static void bind_block(st_table *t, flowar_block *b, const char *stack, int i, int d, int h, int hd) {
    const float **const dst[] = {&b->qkv_w,  &b->qkv_b,  &b->proj_w, &b->proj_b, &b->fc1g_w, &b->fc1g_b,
                                 &b->fc1x_w, &b->fc1x_b, &b->fc2_w,  &b->fc2_b,  &b->ada_w,  &b->ada_b};
    loader_add_ar_block(t, dst, &b->freqs, hd, stack, i, d, h);
}

int flowar_tensor_table(flowar_model *m, st_bind_entry **tab, char **names, int *count) {
    const flowar_config *c = &m->cfg;
    int rc = flowhead_init(&m->head, c->token_dim, c->diffloss_w, c->dec_dim, c->diffloss_d, c->cross);
    if (rc) return rc;
    m->enc = calloc((size_t)c->enc_depth + 1, sizeof(flowar_block));
    m->dec = calloc((size_t)c->dec_depth + 1, sizeof(flowar_block));
    // 11 top-level tensors, 13 per transformer block, then the head's.
    st_table t;
    rc = loader_table_begin(&t, 11 + 13 * (c->enc_depth + c->dec_depth) + flowhead_table_count(&m->head),
                            m->enc && m->dec, tab, names, count, "FlowAR");
    if (rc) return rc;
    int E = c->enc_dim, D = c->dec_dim, L = c->seq_len, C = c->token_dim;
    st_table_add(&t, &m->class_emb, 2, SH(FLOWAR_CLASS_ROWS, E), "class_emb.weight");
    st_table_add(&t, &m->z_proj_w, 2, SH(E, C), "z_proj.weight");
    st_table_add(&t, &m->z_proj_b, 1, SH(E), "z_proj.bias");
    st_table_add(&t, &m->z_ln_w, 1, SH(E), "z_proj_ln.weight");
    st_table_add(&t, &m->enc_pos, 3, SH(1, L, E), "encoder_pos_embed_learned");
    for (int i = 0; i < c->enc_depth; i++)
        bind_block(&t, &m->enc[i], "encoder_blocks", i, E, c->enc_hidden, E / c->enc_heads);
    st_table_add(&t, &m->enc_norm_w, 1, SH(E), "encoder_norm.weight");
    st_table_add(&t, &m->dec_embed_w, 2, SH(D, E), "decoder_embed.weight");
    st_table_add(&t, &m->dec_embed_b, 1, SH(D), "decoder_embed.bias");
    st_table_add(&t, &m->dec_pos, 3, SH(1, L, D), "decoder_pos_embed_learned");
    for (int i = 0; i < c->dec_depth; i++)
        bind_block(&t, &m->dec[i], "decoder_blocks", i, D, c->dec_hidden, D / c->dec_heads);
    st_table_add(&t, &m->dec_norm_w, 1, SH(D), "decoder_norm.weight");
    st_table_add(&t, &m->diff_pos, 3, SH(1, L, D), "diffusion_pos_embed_learned");
    flowhead_table(&t, &m->head, "flownet.");
    return loader_table_end(&t, tab, names, count, "FlowAR");
}

// Every block of a stack must carry the same RoPE frequencies (they are computed, not
// learned): one table serves them all.
static int same_freqs(const flowar_block *b, int depth, int n, const char *stack, const char *label) {
    for (int i = 1; i < depth; i++)
        if (memcmp(b[i].freqs, b[0].freqs, sizeof(float) * (size_t)n) != 0)
            return disa_err(DISA_EFORMAT, "%s: tensor '%s.%d.attn.rope.freqs' differs from block 0's: the RoPE "
                            "frequencies are computed, every block holds the same", label, stack, i);
    return 0;
}

int flowar_prepare(flowar_model *m, const char *label) {
    const flowar_config *c = &m->cfg;
    int hde = c->enc_dim / c->enc_heads, hdd = c->dec_dim / c->dec_heads, rc;
    if ((rc = same_freqs(m->enc, c->enc_depth, hde / 4, "encoder_blocks", label)) ||
        (rc = same_freqs(m->dec, c->dec_depth, hdd / 4, "decoder_blocks", label)))
        return rc;
    if (c->enc_depth && (rc = rope2d_init(&m->rope_enc, m->enc[0].freqs, hde, c->scale, c->n_scales)) != 0)
        return disa_err_wrap(rc, "%s: ", label);
    if (c->dec_depth && (rc = rope2d_init(&m->rope_dec, m->dec[0].freqs, hdd, c->scale, c->n_scales)) != 0)
        return disa_err_wrap(rc, "%s: ", label);
    // A model bound without its head (the transformer's parity cases) has no head tables.
    if (!m->head.t0_w) return 0;
    return flowhead_prepare(&m->head, c->scale, c->n_scales, label);
}

void flowar_release(flowar_model *m) {
    free(m->gen);
    m->gen = NULL;
    free(m->enc);
    free(m->dec);
    m->enc = m->dec = NULL;
    rope2d_free(&m->rope_enc);
    rope2d_free(&m->rope_dec);
    flowhead_free(&m->head);
}

LOADER_MODEL(k_loader, flowar_model, flowar_config, flowar_config_parse, flowar_tensor_table, flowar_close, NULL,
             "the config's encoder_depth, decoder_depth, diffloss_d and cross must match the blocks in the file");

int flowar_open(flowar_model *m, const char *path) {
    int rc = loader_open(&k_loader, m, &m->st, &m->cfg, path);
    if (!rc && (rc = flowar_prepare(m, path)) != 0) flowar_close(m);
    return rc;
}

void flowar_close(flowar_model *m) {
    flowar_release(m);
    st_close(&m->st);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------
// generated models

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static size_t numel(const st_bind_entry *e) {
    size_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
    return n;
}

// Fill m's tensors (config c) from the generator; with `path`, also write them there.
static int generate(flowar_model *m, const flowar_config *c, uint64_t seed, const char *path, size_t *params) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    st_bind_entry *tab = NULL;
    char *names = NULL;
    st_writer *w = NULL;
    int n, rc;
    if ((rc = flowar_tensor_table(m, &tab, &names, &n)) != 0) goto fail;
    size_t total = 0, values = 0;
    for (int i = 0; i < n; i++) {
        total += (numel(&tab[i]) + 15) / 16 * 16;  // 64-byte aligned tensors
        values += numel(&tab[i]);
    }
    if (params) *params = values;
    if (!(m->gen = aligned_alloc(64, total * sizeof(float)))) {
        rc = disa_err(DISA_ENOMEM, "generated FlowAR weights: out of memory (%.1f GB)", total * 4.0 / 1e9);
        goto fail;
    }
    if (path && !(w = st_writer_new())) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    float *p = m->gen;
    for (int i = 0; i < n && !rc; i++) {
        const st_bind_entry *t = &tab[i];
        size_t cnt = numel(t);
        if (ends_with(t->name, "rope.freqs")) {
            // rope.py: 1 / (10000 ** (arange(0, dim, 2)[:dim // 2].float() / dim)), dim =
            // head_dim / 2, in float32 (powf may differ from torch's pow by an ulp: real
            // checkpoints carry their own values).
            int dim = 2 * (int)cnt;
            for (size_t k = 0; k < cnt; k++) p[k] = 1.0f / powf(10000.0f, (float)(2 * k) / (float)dim);
        } else {
            int gain = t->ndim == 1 && ends_with(t->name, ".weight");  // RMSNorm weights
            double scale = 0.02;
            if (t->ndim == 2 && ends_with(t->name, ".weight") && strcmp(t->name, "class_emb.weight") != 0)
                scale = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
            dgen_fill(p, cnt, seed * 1000003ull + (uint64_t)i, gain ? 0.05 : scale);
            if (gain)
                for (size_t k = 0; k < cnt; k++) p[k] += 1.0f;
        }
        *t->dst = p;
        if (w) rc = st_writer_add(w, t->name, ST_F32, t->ndim, t->shape, p);
        p += (cnt + 15) / 16 * 16;
    }
    if (w && !rc) {
        char json[1024];
        rc = st_writer_meta(w, "config", flowar_config_to_json(c, json, sizeof json));
        if (!rc) rc = st_writer_meta(w, "generator", "deterministic generator (random weights)");
        if (!rc) rc = st_writer_write(w, path);
    }
    if (!rc) rc = flowar_prepare(m, "generated FlowAR");
fail:
    st_writer_delete(w);
    free(tab);
    free(names);
    if (rc) flowar_release(m);
    return rc;
}

int flowar_generate(flowar_model *m, const flowar_config *c, uint64_t seed) {
    return generate(m, c, seed, NULL, NULL);
}

int flowar_write_generated(const flowar_config *c, uint64_t seed, const char *path, size_t *params) {
    flowar_model m;
    int rc = generate(&m, c, seed, path, params);
    if (!rc) flowar_release(&m);
    return rc;
}

// ----------------------------------------------------------------------------
// caches

int flowar_cache_init(flowar_cache *c, const flowar_config *cfg, int max_b2) {
    memset(c, 0, sizeof *c);
    c->max_b2 = max_b2;
    c->cap = cfg->seq_len;
    c->blocks = cfg->enc_depth + cfg->dec_depth;
    c->d = cfg->enc_dim;
    size_t kvn = (size_t)(c->blocks ? c->blocks : 1) * max_b2 * c->cap * c->d;
    c->k = malloc(sizeof(float) * kvn);
    c->v = malloc(sizeof(float) * kvn);
    // ada of every block, then room for SiLU(class embedding) while computing it.
    c->ada = malloc(sizeof(float) * ((size_t)(c->blocks + 1) * max_b2 * 6 * c->d));
    if (!c->k || !c->v || !c->ada) {
        size_t mb = (2 * kvn * sizeof(float)) >> 20;
        flowar_cache_free(c);
        return disa_err(DISA_ENOMEM, "FlowAR key/value caches for %d images: out of memory (%zu MiB)", max_b2, mb);
    }
    return 0;
}

void flowar_cache_free(flowar_cache *c) {
    free(c->k);
    free(c->v);
    free(c->ada);
    memset(c, 0, sizeof *c);
}

void flowar_cache_begin(const flowar_model *m, flowar_cache *c, const float *cls, int B2) {
    const int d = c->d;
    c->B2 = B2;
    c->rows = 0;
    // Block.forward: ada_lin = Sequential(SiLU, Linear) of the class embedding, the same
    // at every scale, so it is computed once per sample.
    float *act = c->ada + (size_t)c->blocks * c->max_b2 * 6 * d;
    silu_forward(act, cls, (size_t)B2 * d);
    for (int i = 0; i < c->blocks; i++) {
        const flowar_block *b = i < m->cfg.enc_depth ? &m->enc[i] : &m->dec[i - m->cfg.enc_depth];
        linear_forward(c->ada + (size_t)i * c->max_b2 * 6 * d, act, b->ada_w, b->ada_b, B2, d, 6 * d);
    }
}

void flowar_class_rows(const flowar_model *m, float *cls, const int *labels, int B, int cfg) {
    int E = m->cfg.enc_dim;
    for (int b = 0; b < (cfg ? 2 * B : B); b++) {
        int lab = b >= B || labels[b] < 0 ? FLOWAR_UNCOND_LABEL : labels[b];
        memcpy(cls + (size_t)b * E, m->class_emb + (size_t)lab * E, sizeof(float) * E);
    }
}

// ----------------------------------------------------------------------------
// forward

size_t flowar_forward_scratch_bytes(const flowar_config *c, int B2) {
    int N = c->scale[c->n_scales - 1] * c->scale[c->n_scales - 1], d = c->enc_dim;
    int h = c->enc_hidden > c->dec_hidden ? c->enc_hidden : c->dec_hidden;
    size_t R = (size_t)B2 * N;
    // two row buffers kept across the blocks, and a block's: ln, qkv, att, g, u, scores.
    size_t floats = 2 * R * d + R * d + R * 3 * d + R * d + 2 * R * h + (size_t)N * c->seq_len;
    return floats * sizeof(float) + 16 * 64;
}

// Block.forward on x [B2*N, d] in place for the rows [start, start + N) of each image;
// keys and values go into this block's cache rows, the queries attend to rows
// [0, start + N): every earlier scale and their own.
static int block_forward(const flowar_block *b, arena *a, const flowar_cache *kv, int slot, const rope2d *rope,
                         float *x, int N, int start, int ft, int d, int hidden, int heads, float eps) {
    size_t mark = arena_mark(a);
    const int B2 = kv->B2, R = B2 * N, T = start + N;
    // One arena_floats per buffer, each beside its size, so an overflow names the line:
    // the block forwards of mar.c and xar.c list theirs the same way on purpose.
    float *ln = arena_floats(a, (size_t)R * d);
    float *qkv = arena_floats(a, (size_t)R * 3 * d);
    float *att = arena_floats(a, (size_t)R * d);
    float *g = arena_floats(a, (size_t)R * hidden);
    float *u = arena_floats(a, (size_t)R * hidden);
    float *scr = arena_floats(a, (size_t)N * T);
    if (!ln || !qkv || !att || !g || !u || !scr) return DISA_ENOMEM;
    // ada rows per image: gamma1, gamma2, scale1, scale2, shift1, shift2 (d each).
    const float *ada = kv->ada + (size_t)slot * kv->max_b2 * 6 * d;
    const size_t ld = 6 * (size_t)d;
    float *kc = kv->k + (size_t)slot * kv->max_b2 * kv->cap * d;
    float *vc = kv->v + (size_t)slot * kv->max_b2 * kv->cap * d;
    int hd = d / heads;

    flow_rmsnorm_forward(ln, x, NULL, R, d, eps);
    adaln_modulate(ln, ada + 2 * d, ada + 4 * d, ld, N, R, d);
    linear_forward(qkv, ln, b->qkv_w, b->qkv_b, R, d, 3 * d);
    for (int i = 0; i < B2; i++) {
        float *qi = qkv + (size_t)i * N * 3 * d;
        rope2d_apply(qi, 3 * (size_t)d, rope->cos_t[ft], rope->sin_t[ft], N, heads, hd);      // q
        rope2d_apply(qi + d, 3 * (size_t)d, rope->cos_t[ft], rope->sin_t[ft], N, heads, hd);  // k
        for (int r = 0; r < N; r++) {
            size_t dst = ((size_t)i * kv->cap + start + r) * d;
            memcpy(kc + dst, qi + (size_t)r * 3 * d + d, sizeof(float) * d);
            memcpy(vc + dst, qi + (size_t)r * 3 * d + 2 * d, sizeof(float) * d);
        }
    }
    attention_kv_batch_forward(att, qkv, 3 * (size_t)d, (size_t)N * 3 * d, kc, vc, d, (size_t)kv->cap * d, scr, B2, N, T,
                         d, heads);
    linear_forward(ln, att, b->proj_w, b->proj_b, R, d, d);
    gated_add(x, ln, ada, ld, N, R, d);
    flow_rmsnorm_forward(ln, x, NULL, R, d, eps);
    adaln_modulate(ln, ada + 3 * d, ada + 5 * d, ld, N, R, d);
    linear_forward(g, ln, b->fc1g_w, b->fc1g_b, R, d, hidden);
    linear_forward(u, ln, b->fc1x_w, b->fc1x_b, R, d, hidden);
    swiglu_gelu_forward(g, g, u, (size_t)R * hidden);
    linear_forward(ln, g, b->fc2_w, b->fc2_b, R, hidden, d);
    gated_add(x, ln, ada + d, ld, N, R, d);
    arena_reset(a, mark);
    return 0;
}

// x[i, r, :] += pos[start + r, :] for every image.
static void add_pos(float *x, const float *pos, int B2, int N, int start, int d) {
    for (int i = 0; i < B2; i++)
        for (int r = 0; r < N; r++) {
            float *xr = x + ((size_t)i * N + r) * d;
            const float *p = pos + (size_t)(start + r) * d;
            for (int k = 0; k < d; k++) xr[k] += p[k];
        }
}

int flowar_forward_scale(const flowar_model *m, arena *a, flowar_cache *kv, float *z, const float *x, int s,
                         flowar_poll_fn poll, void *poll_ctx) {
    const flowar_config *c = &m->cfg;
    if (s < 0 || s >= c->n_scales || kv->rows != c->start[s])
        return disa_err(DISA_EINVAL, "FlowAR transformer: scale %d asked with %d cached rows per image (expected %d)",
                        s, kv->rows, s >= 0 && s < c->n_scales ? c->start[s] : -1);
    const int E = c->enc_dim, D = c->dec_dim, ft = c->scale[s], N = ft * ft, start = c->start[s], B2 = kv->B2;
    const size_t R = (size_t)B2 * N;
    size_t mark = arena_mark(a);
    float *xe = arena_floats(a, R * E);
    float *xd = arena_floats(a, R * D);
    if (!xe || !xd) return DISA_ENOMEM;

    // forward_mae_encoder: + encoder_pos_embed_learned[start:end], z_proj_ln, blocks, encoder_norm.
    memcpy(xe, x, sizeof(float) * R * E);
    add_pos(xe, m->enc_pos, B2, N, start, E);
    flow_rmsnorm_forward(xe, xe, m->z_ln_w, (int)R, E, c->norm_eps);
    for (int i = 0; i < c->enc_depth; i++) {
        int rc = block_forward(&m->enc[i], a, kv, i, &m->rope_enc, xe, N, start, ft, E, c->enc_hidden, c->enc_heads,
                               c->norm_eps);
        if (rc) return rc;
        if (poll && poll(poll_ctx)) return DISA_ECANCELED;
    }
    flow_rmsnorm_forward(xe, xe, m->enc_norm_w, (int)R, E, c->norm_eps);

    // forward_mae_decoder: decoder_embed, + decoder_pos_embed_learned, blocks,
    // decoder_norm, + diffusion_pos_embed_learned.
    linear_forward(xd, xe, m->dec_embed_w, m->dec_embed_b, (int)R, E, D);
    add_pos(xd, m->dec_pos, B2, N, start, D);
    for (int i = 0; i < c->dec_depth; i++) {
        int rc = block_forward(&m->dec[i], a, kv, c->enc_depth + i, &m->rope_dec, xd, N, start, ft, D, c->dec_hidden,
                               c->dec_heads, c->norm_eps);
        if (rc) return rc;
        if (poll && poll(poll_ctx)) return DISA_ECANCELED;
    }
    flow_rmsnorm_forward(z, xd, m->dec_norm_w, (int)R, D, c->norm_eps);
    add_pos(z, m->diff_pos, B2, N, start, D);
    kv->rows = start + N;
    arena_reset(a, mark);
    return 0;
}
