// xar.c: the xAR transformer, one velocity-network evaluation with its key/value cache.
// Mirrors Qinyu-Allen-Zhao/DiSA xAR_DiSA/models/xar.py: xAR.sample_inference,
// forward_mae_encoder, forward_mae_decoder, Block.forward, Attention.forward (eval
// branch), RMSNorm, TimestepEmbedder; the RoPE tables are src/nn/rope.c.
#include "disa/xar.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/loader.h"
#include "disa/nn.h"
#include "disa/vec.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// config

const char *const xar_config_keys[] = {
    "format", "img_size", "vae_stride", "patch_size", "vae_embed_dim", "encoder_embed_dim", "encoder_depth",
    "encoder_num_heads", "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio", "class_num",
    "clusters", "norm_eps", "tokenizer", NULL};

// xAR's own keys: the classes (class_num is also the unconditional label) and the groups.
static const loader_key k_keys[] = {MAR_CONFIG_KEYS(xar_config,
    LOADER_INT_KEY(xar_config, "class_num", class_num, 1, INT_MAX),
    {.key = "clusters", .type = LOADER_INT, .offset = offsetof(xar_config, clusters), .lo = 1, .hi = INT_MAX,
     .flags = LOADER_OPTIONAL, .def = 4})};

static const loader_schema k_schema = {
    .format = "disa-xar-1",
    .not_one = "not a disa xAR file (convert checkpoints with tools/convert_xar.py)",
    .known = xar_config_keys,
    .keys = k_keys, .n_keys = (int)(sizeof k_keys / sizeof *k_keys), .size = sizeof(xar_config), .say_got = 1};

int xar_config_parse(xar_config *c, const char *json, const char *label) {
    cJSON *o;
    int rc = loader_config_parse(c, &o, json, label, &k_schema);
    if (rc) return rc;
    if ((rc = loader_token_grid(&c->seq_h, c->img_size, c->vae_stride, c->patch_size, label)) != 0) goto out;
    c->seq_len = c->seq_h * c->seq_h;
    c->token_dim = c->vae_embed_dim * c->patch_size * c->patch_size;
    if (c->seq_len > 65536 || c->enc_dim > 65536 || c->dec_dim > 65536 || c->token_dim > 65536 ||
        c->class_num > 1 << 24) {
        rc = disa_err(DISA_ERANGE, "%s: config: sizes beyond 65536 are not supported", label);
        goto out;
    }
    // The decoder blocks' ada_lin reads the condition built at the encoder width.
    if (c->enc_dim != c->dec_dim) {
        rc = disa_err(DISA_ERANGE, "%s: config: encoder_embed_dim %d and decoder_embed_dim %d must be equal (the "
                      "decoder blocks are conditioned on the encoder-width class + time embedding)", label,
                      c->enc_dim, c->dec_dim);
        goto out;
    }
    if (c->enc_dim % c->enc_heads || c->dec_dim % c->dec_heads || (c->enc_dim / c->enc_heads) % 4 ||
        (c->dec_dim / c->dec_heads) % 4) {
        rc = disa_err(DISA_ERANGE, "%s: config: head widths (%d / %d, %d / %d) must be whole multiples of 4 "
                      "(2-D RoPE rotates channel pairs on two axes)", label, c->enc_dim, c->enc_heads, c->dec_dim,
                      c->dec_heads);
        goto out;
    }
    int ch = (int)lround(sqrt((double)c->clusters));
    if (c->clusters < 4 || ch * ch != c->clusters || c->seq_h % ch != 0) {
        rc = disa_err(DISA_ERANGE, "%s: config: 'clusters' must be a square >= 4 whose root divides the %d x %d "
                      "token grid, got %d", label, c->seq_h, c->seq_h, c->clusters);
        goto out;
    }
    c->cluster_h = ch;
    c->group = c->seq_len / c->clusters;
    // int(dim * mlp_ratio * 2 / 3.) in Python's evaluation order.
    c->enc_hidden = (int)((double)c->enc_dim * c->mlp_ratio * 2.0 / 3.0);
    c->dec_hidden = (int)((double)c->dec_dim * c->mlp_ratio * 2.0 / 3.0);
    if (c->enc_hidden < 1 || c->dec_hidden < 1) {
        rc = disa_err(DISA_ERANGE, "%s: config: mlp_ratio %g leaves no MLP width", label, c->mlp_ratio);
        goto out;
    }
out:
    cJSON_Delete(o);
    return rc;
}

const char *xar_config_to_json(const xar_config *c, char *buf, int n) {
    return loader_config_json(&k_schema, c, buf, n);
}

// xAR_DiSA/models/xar.py: xar_base, xar_large, xar_huge at 256 x 256 with the KL-16
// tokenizer, in k_keys' order (mlp_ratio 4, 4 clusters).
static const loader_preset k_official[] = {
    {"xar_base", {256, 16, 1, 16, 768, 8, 12, 768, 8, 12, 4, 1000, 4, TOKENIZER_KL16, 1e-6}},
    {"xar_large", {256, 16, 1, 16, 1024, 16, 16, 1024, 16, 16, 4, 1000, 4, TOKENIZER_KL16, 1e-6}},
    {"xar_huge", {256, 16, 1, 16, 1280, 20, 16, 1280, 20, 16, 4, 1000, 4, TOKENIZER_KL16, 1e-6}},
};

int xar_config_preset(xar_config *c, const char *name) {
    char json[1024];
    if (!loader_preset_json(&k_schema, c, k_official, 3, name, json, sizeof json))
        return disa_err(DISA_EINVAL, "unknown preset '%s' (xar_base, xar_large, xar_huge)", name);
    return xar_config_parse(c, json, name);
}

// ----------------------------------------------------------------------------
// loading

#define SH(...) (const int64_t[]){__VA_ARGS__}

static void bind_block(st_table *t, xar_block *b, const char *stack, int i, int d, int h);

int xar_tensor_table(xar_model *m, st_bind_entry **tab, char **names, int *count) {
    const xar_config *c = &m->cfg;
    m->enc = calloc((size_t)c->enc_depth + 1, sizeof(xar_block));
    m->dec = calloc((size_t)c->dec_depth + 1, sizeof(xar_block));
    // 16 top-level tensors and 12 per block.
    st_table t;
    int rc = loader_table_begin(&t, 16 + 12 * (c->enc_depth + c->dec_depth), m->enc && m->dec, tab, names, count,
                                "xAR");
    if (rc) return rc;
    int E = c->enc_dim, D = c->dec_dim, S = c->seq_len, C = c->token_dim;
    st_table_add(&t, &m->class_emb, 2, SH(c->class_num + 1, E), "class_emb.weight");
    st_table_add(&t, &m->t0_w, 2, SH(E, 256), "time_embed.mlp.0.weight");
    st_table_add(&t, &m->t0_b, 1, SH(E), "time_embed.mlp.0.bias");
    st_table_add(&t, &m->t2_w, 2, SH(E, E), "time_embed.mlp.2.weight");
    st_table_add(&t, &m->t2_b, 1, SH(E), "time_embed.mlp.2.bias");
    st_table_add(&t, &m->z_proj_w, 2, SH(E, C), "z_proj.weight");
    st_table_add(&t, &m->z_proj_b, 1, SH(E), "z_proj.bias");
    st_table_add(&t, &m->z_ln_w, 1, SH(E), "z_proj_ln.weight");
    st_table_add(&t, &m->enc_pos, 3, SH(1, S, E), "encoder_pos_embed_learned");
    for (int i = 0; i < c->enc_depth; i++) bind_block(&t, &m->enc[i], "encoder_blocks", i, E, c->enc_hidden);
    st_table_add(&t, &m->enc_norm_w, 1, SH(E), "encoder_norm.weight");
    st_table_add(&t, &m->dec_embed_w, 2, SH(D, E), "decoder_embed.weight");
    st_table_add(&t, &m->dec_embed_b, 1, SH(D), "decoder_embed.bias");
    st_table_add(&t, &m->dec_pos, 3, SH(1, S, D), "decoder_pos_embed_learned");
    for (int i = 0; i < c->dec_depth; i++) bind_block(&t, &m->dec[i], "decoder_blocks", i, D, c->dec_hidden);
    st_table_add(&t, &m->dec_norm_w, 1, SH(D), "decoder_norm.weight");
    st_table_add(&t, &m->pred_w, 2, SH(C, D), "pred.weight");
    st_table_add(&t, &m->pred_b, 1, SH(C), "pred.bias");
    return loader_table_end(&t, tab, names, count, "xAR");
}

static void bind_block(st_table *t, xar_block *b, const char *stack, int i, int d, int h) {
    const float **const dst[] = {&b->qkv_w,   &b->qkv_b,   &b->proj_w,  &b->proj_b,  &b->fc1_g_w, &b->fc1_g_b,
                                 &b->fc1_x_w, &b->fc1_x_b, &b->fc2_w,   &b->fc2_b,   &b->ada_w,   &b->ada_b};
    loader_add_ar_block(t, dst, NULL, 0, stack, i, d, h);
}

int xar_rope_init(xar_model *m) {
    const xar_config *c = &m->cfg;
    int hde = c->enc_dim / c->enc_heads, hdd = c->dec_dim / c->dec_heads;
    size_t S = (size_t)c->seq_len;
    m->rope_enc_cos = malloc(sizeof(float) * S * hde);
    m->rope_enc_sin = malloc(sizeof(float) * S * hde);
    m->rope_dec_cos = malloc(sizeof(float) * S * hdd);
    m->rope_dec_sin = malloc(sizeof(float) * S * hdd);
    if (!m->rope_enc_cos || !m->rope_enc_sin || !m->rope_dec_cos || !m->rope_dec_sin)
        return disa_err(DISA_ENOMEM, "xAR RoPE tables: out of memory");
    rope_tables(m->rope_enc_cos, m->rope_enc_sin, c->seq_h, c->clusters, hde, 10000.0f);
    rope_tables(m->rope_dec_cos, m->rope_dec_sin, c->seq_h, c->clusters, hdd, 10000.0f);
    return 0;
}

void xar_model_free_tables(xar_model *m) {
    free(m->enc);
    free(m->dec);
    free(m->rope_enc_cos);
    free(m->rope_enc_sin);
    free(m->rope_dec_cos);
    free(m->rope_dec_sin);
    m->enc = m->dec = NULL;
    m->rope_enc_cos = m->rope_enc_sin = m->rope_dec_cos = m->rope_dec_sin = NULL;
}

// xAR files were never checked for tensors the config does not describe (no hint).
LOADER_MODEL(k_loader, xar_model, xar_config, xar_config_parse, xar_tensor_table, xar_close, NULL, NULL);

int xar_open(xar_model *m, const char *path) {
    int rc = loader_open(&k_loader, m, &m->st, &m->cfg, path);
    if (!rc && (rc = xar_rope_init(m)) != 0) xar_close(m);
    return rc;
}

int xar_write_generated(const xar_config *c, uint64_t seed, const char *path, size_t *n_values) {
    xar_model m = {.cfg = *c};
    char json[1024];
    return loader_write_generated(&k_loader, &m, xar_config_to_json(c, json, sizeof json), seed, path, n_values);
}

void xar_close(xar_model *m) {
    xar_model_free_tables(m);
    st_close(&m->st);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------
// key/value cache

static int kv_layers(const xar_config *c) {
    return c->enc_depth + c->dec_depth;
}

size_t xar_kv_bytes(const xar_config *c, int max_seq) {
    return sizeof(float) * (size_t)kv_layers(c) * (size_t)max_seq * (size_t)c->seq_len * 2 * (size_t)c->enc_dim;
}

int xar_kv_init(xar_kv *kv, const xar_config *c, int max_seq) {
    memset(kv, 0, sizeof *kv);
    size_t bytes = xar_kv_bytes(c, max_seq);
    kv->data = malloc(bytes ? bytes : 1);
    if (!kv->data)
        return disa_err(DISA_ENOMEM, "xAR key/value cache: cannot allocate %zu bytes (%d sequences x %d blocks x %d "
                        "positions x 2 x %d)", bytes, max_seq, kv_layers(c), c->seq_len, c->enc_dim);
    kv->layers = kv_layers(c);
    kv->max_seq = max_seq;
    kv->seq_len = c->seq_len;
    kv->width = c->enc_dim;
    return 0;
}

void xar_kv_free(xar_kv *kv) {
    free(kv->data);
    memset(kv, 0, sizeof *kv);
}

// ----------------------------------------------------------------------------
// forward

int xar_time_index(double t) {
    // torch: time_input.to(float32) * 1000 -> float32, then .long() truncates: one
    // rounding to float32, a float32 product (FLT_EVAL_METHOD 0 on x86-64), truncation.
    float f = (float)t;
    float g = f * 1000.0f;
    return (int)g;
}

// Scratch of one block pass over NR rows of width d, hidden h, keys up to S per sequence.
static size_t block_floats(int NR, int d, int h, int S, int G) {
    return (size_t)NR * d * 3 + (size_t)NR * 3 * d + (size_t)NR * h * 2 + (size_t)G * S + 6 * 16;
}

size_t xar_forward_scratch_bytes(const xar_config *c, int N, int R) {
    size_t NR = (size_t)N * R, E = (size_t)c->enc_dim, nch = (size_t)(R / c->group);
    int h = c->enc_hidden > c->dec_hidden ? c->enc_hidden : c->dec_hidden;
    size_t blk = block_floats((int)NR, c->enc_dim, h, c->seq_len, c->group);
    // Held across the blocks: the encoder and decoder streams, SiLU(condition), one
    // block's modulations, the time embedding and its input, the noisy group's rows.
    // E == D (xar_config_parse).
    size_t keep = 2 * NR * E + nch * N * E + nch * N * 6 * E + nch * (256 + 2 * E) + (size_t)N * c->group * E;
    return (keep + blk) * sizeof(float) + 32 * 64;  // + 64-byte alignment of each block
}

DISA_VEC
static void add_rows(float *x, const float *pos, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += pos[i];
}

// t = t * (1 + scale) + shift on the rows of one group (one modulation row).
DISA_VEC
static void modulate(float *t, const float *scale, const float *shift, int rows, int d) {
    for (int r = 0; r < rows; r++) {
        float *p = t + (size_t)r * d;
        for (int k = 0; k < d; k++) p[k] = p[k] * (1.0f + scale[k]) + shift[k];
    }
}

// x += o * gamma on the rows of one group.
DISA_VEC
static void gate_add(float *x, const float *o, const float *gamma, int rows, int d) {
    for (int r = 0; r < rows; r++) {
        float *p = x + (size_t)r * d;
        const float *q = o + (size_t)r * d;
        for (int k = 0; k < d; k++) p[k] += q[k] * gamma[k];
    }
}

// The per-(sequence, group) modulation row of one block: ada [nch * N, 6d] rows chunk-major
// (the official condition order: all sequences of group 0, then of group 1), each row
// gamma1 | gamma2 | scale1 | scale2 | shift1 | shift2.
enum { GAMMA1, GAMMA2, SCALE1, SCALE2, SHIFT1, SHIFT2 };
static const float *mod_row(const float *ada, int n, int k, int N, int d, int which) {
    return ada + ((size_t)k * N + n) * 6 * d + (size_t)which * d;
}

typedef struct pass {
    int N, R, G, nch, p0, d, heads, hidden;
    float eps;
    const float *rope_cos, *rope_sin;  // tables offset to position p0
} pass;

// Block.forward on x [N, R, d] in place, keys/values of this block's cache layer
// kvl [max_seq][S][2d] written at rows p0..p0+R-1 and read from row 0.
static int block_forward(const xar_block *b, const pass *ps, arena *a, float *x, const float *ada, float *kvl,
                         int S) {
    const int N = ps->N, R = ps->R, G = ps->G, d = ps->d, h = ps->hidden, NR = N * R;
    size_t mark = arena_mark(a);
    // One arena_floats per buffer, each beside its size, so an overflow names the line:
    // the block forwards of mar.c and flowar.c list theirs the same way on purpose.
    float *t = arena_floats(a, (size_t)NR * d);
    float *qkv = arena_floats(a, (size_t)NR * 3 * d);
    float *att = arena_floats(a, (size_t)NR * d);
    float *o = arena_floats(a, (size_t)NR * d);
    float *g = arena_floats(a, (size_t)NR * h);
    float *u = arena_floats(a, (size_t)NR * h);
    float *scr = arena_floats(a, (size_t)G * S);
    if (!t || !qkv || !att || !o || !g || !u || !scr) return DISA_ENOMEM;

    // x += gamma1 * attn(norm1(x) * (1 + scale1) + shift1)
    rmsnorm_forward(t, x, NULL, NR, d, ps->eps);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < ps->nch; k++)
            modulate(t + ((size_t)n * R + (size_t)k * G) * d, mod_row(ada, n, k, N, d, SCALE1),
                     mod_row(ada, n, k, N, d, SHIFT1), G, d);
    linear_forward(qkv, t, b->qkv_w, b->qkv_b, NR, d, 3 * d);
    const int hd = d / ps->heads;
    for (int n = 0; n < N; n++) {
        float *rows = qkv + (size_t)n * R * 3 * d;
        rope_forward(rows, 3 * d, ps->rope_cos, ps->rope_sin, R, ps->heads, hd);      // q
        rope_forward(rows + d, 3 * d, ps->rope_cos, ps->rope_sin, R, ps->heads, hd);  // k
        float *kv = kvl + ((size_t)n * S + ps->p0) * 2 * d;
        for (int r = 0; r < R; r++) memcpy(kv + (size_t)r * 2 * d, rows + (size_t)r * 3 * d + d, sizeof(float) * 2 * d);
    }
    // Block-causal mask over groups: the queries of group c see the keys of groups
    // 0..c, a prefix of the cache (the official additive -inf mask; the noisy group's
    // later calls, without mask, see all keys up to it, which is the same prefix).
    for (int n = 0; n < N; n++)
        for (int k = 0; k < ps->nch; k++) {
            int first = ps->p0 + k * G, T = (first / G + 1) * G;
            const float *kvn = kvl + (size_t)n * S * 2 * d;
            attention_kv_forward(att + ((size_t)n * R + (size_t)k * G) * d, d,
                                 qkv + ((size_t)n * R + (size_t)k * G) * 3 * d, 3 * d, kvn, kvn + d, 2 * d, scr, G,
                                 T, d, ps->heads);
        }
    linear_forward(o, att, b->proj_w, b->proj_b, NR, d, d);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < ps->nch; k++) {
            size_t off = ((size_t)n * R + (size_t)k * G) * d;
            gate_add(x + off, o + off, mod_row(ada, n, k, N, d, GAMMA1), G, d);
        }

    // x += gamma2 * fc2(gelu(fc1_g(u)) * fc1_x(u)), u = norm2(x) * (1 + scale2) + shift2
    rmsnorm_forward(t, x, NULL, NR, d, ps->eps);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < ps->nch; k++)
            modulate(t + ((size_t)n * R + (size_t)k * G) * d, mod_row(ada, n, k, N, d, SCALE2),
                     mod_row(ada, n, k, N, d, SHIFT2), G, d);
    linear_forward(g, t, b->fc1_g_w, b->fc1_g_b, NR, d, h);
    linear_forward(u, t, b->fc1_x_w, b->fc1_x_b, NR, d, h);
    gelu_mul_forward(g, g, u, (size_t)NR * h);
    linear_forward(o, g, b->fc2_w, b->fc2_b, NR, h, d);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < ps->nch; k++) {
            size_t off = ((size_t)n * R + (size_t)k * G) * d;
            gate_add(x + off, o + off, mod_row(ada, n, k, N, d, GAMMA2), G, d);
        }
    arena_reset(a, mark);
    return 0;
}

// Encoder or decoder stack: blocks [depth] on x [N, R, d], cache layers from `layer0`.
static int run_blocks(const xar_block *blocks, int depth, pass *ps, arena *a, float *x, const float *sc,
                      xar_kv *kv, int layer0, mar_poll_fn poll, void *poll_ctx) {
    const int d = ps->d, rows = ps->nch * ps->N;
    size_t mark = arena_mark(a);
    float *ada = arena_floats(a, (size_t)rows * 6 * d);
    if (!ada) return DISA_ENOMEM;
    size_t layer_floats = (size_t)kv->max_seq * kv->seq_len * 2 * kv->width;
    for (int i = 0; i < depth; i++) {
        // ada_lin = Linear(SiLU(condition)): the SiLU is shared by every block.
        linear_forward(ada, sc, blocks[i].ada_w, blocks[i].ada_b, rows, d, 6 * d);
        int rc = block_forward(&blocks[i], ps, a, x, ada, kv->data + (size_t)(layer0 + i) * layer_floats,
                               kv->seq_len);
        if (rc) return rc;
        if (poll && poll(poll_ctx)) return DISA_ECANCELED;
    }
    arena_reset(a, mark);
    return 0;
}

int xar_forward(const xar_model *m, xar_kv *kv, arena *a, float *v, const float *x, int R, const int *labels,
                const int *tidx, int step, int update, int N, mar_poll_fn poll, void *poll_ctx) {
    const xar_config *c = &m->cfg;
    const int G = c->group, E = c->enc_dim, D = c->dec_dim, C = c->token_dim, S = c->seq_len;
    if (step < 0 || step >= c->clusters || (R != G && R != 2 * G) || (R == 2 * G && step == 0))
        return disa_err(DISA_EINVAL, "xar_forward: %d rows at AR step %d: expected %d (one group)%s", R, step, G,
                        step > 0 ? " or twice that (the clean previous group, then the noisy one)" : "");
    const int nch = R / G, p0 = (step + 1) * G - R, NR = N * R;
    if (N < 1 || N > kv->max_seq || kv->seq_len != S || kv->width != E || kv->layers != c->enc_depth + c->dec_depth)
        return disa_err(DISA_EINVAL, "xar_forward: %d sequences, the key/value cache is for 1..%d of this model", N,
                        kv->max_seq);
    if (kv->rows != p0)
        return disa_err(DISA_EINVAL, "xar_forward: AR step %d with %d rows needs the cache to hold %d rows, it holds %d",
                        step, R, p0, kv->rows);
    for (int n = 0; n < N; n++)
        if (labels[n] < 0 || labels[n] > c->class_num)
            return disa_err(DISA_EINVAL, "xar_forward: label %d out of range 0..%d (%d = unconditional)", labels[n],
                            c->class_num, c->class_num);
    size_t mark = arena_mark(a);
    float *te = arena_floats(a, (size_t)nch * E);
    float *freq = arena_floats(a, (size_t)nch * 256);
    float *hid = arena_floats(a, (size_t)nch * E);
    float *sc = arena_floats(a, (size_t)nch * N * E);
    float *h = arena_floats(a, (size_t)NR * E);
    if (!te || !freq || !hid || !sc || !h) return DISA_ENOMEM;

    // condition = class_emb(label) + time_embed(t index), one row per (group, sequence),
    // group-major; the blocks read SiLU(condition).
    for (int k = 0; k < nch; k++) gd_timestep_embedding(freq + (size_t)k * 256, (float)tidx[k], 256, 10000.0f);
    linear_forward(hid, freq, m->t0_w, m->t0_b, nch, 256, E);
    silu_forward(hid, hid, (size_t)nch * E);
    linear_forward(te, hid, m->t2_w, m->t2_b, nch, E, E);
    for (int k = 0; k < nch; k++)
        for (int n = 0; n < N; n++) {
            float *row = sc + ((size_t)k * N + n) * E;
            const float *ce = m->class_emb + (size_t)labels[n] * E, *tk = te + (size_t)k * E;
            for (int j = 0; j < E; j++) row[j] = ce[j] + tk[j];
        }
    silu_forward(sc, sc, (size_t)nch * N * E);

    // Encoder: z_proj, + the position embedding of positions p0.., z_proj_ln.
    linear_forward(h, x, m->z_proj_w, m->z_proj_b, NR, C, E);
    for (int n = 0; n < N; n++) add_rows(h + (size_t)n * R * E, m->enc_pos + (size_t)p0 * E, (size_t)R * E);
    rmsnorm_forward(h, h, m->z_ln_w, NR, E, c->norm_eps);
    pass ps = {.N = N, .R = R, .G = G, .nch = nch, .p0 = p0, .d = E, .heads = c->enc_heads,
               .hidden = c->enc_hidden, .eps = c->norm_eps};
    int hde = E / c->enc_heads, hdd = D / c->dec_heads;
    ps.rope_cos = m->rope_enc_cos + (size_t)p0 * hde;
    ps.rope_sin = m->rope_enc_sin + (size_t)p0 * hde;
    int rc = run_blocks(m->enc, c->enc_depth, &ps, a, h, sc, kv, 0, poll, poll_ctx);
    if (rc) return rc;
    rmsnorm_forward(h, h, m->enc_norm_w, NR, E, c->norm_eps);

    // Decoder: decoder_embed, + position embedding, blocks.
    float *hd_ = arena_floats(a, (size_t)NR * D);
    if (!hd_) return DISA_ENOMEM;
    linear_forward(hd_, h, m->dec_embed_w, m->dec_embed_b, NR, E, D);
    for (int n = 0; n < N; n++) add_rows(hd_ + (size_t)n * R * D, m->dec_pos + (size_t)p0 * D, (size_t)R * D);
    ps.d = D;
    ps.heads = c->dec_heads;
    ps.hidden = c->dec_hidden;
    ps.rope_cos = m->rope_dec_cos + (size_t)p0 * hdd;
    ps.rope_sin = m->rope_dec_sin + (size_t)p0 * hdd;
    if ((rc = run_blocks(m->dec, c->dec_depth, &ps, a, hd_, sc, kv, c->enc_depth, poll, poll_ctx)) != 0) return rc;

    // decoder_norm and pred are row-wise: only the noisy group's rows are kept.
    float *last = arena_floats(a, (size_t)N * G * D);
    if (!last) return DISA_ENOMEM;
    for (int n = 0; n < N; n++)
        memcpy(last + (size_t)n * G * D, hd_ + ((size_t)n * R + (size_t)(R - G)) * D, sizeof(float) * G * D);
    rmsnorm_forward(last, last, m->dec_norm_w, N * G, D, c->norm_eps);
    linear_forward(v, last, m->pred_w, m->pred_b, N * G, D, C);
    // The official cache keeps k[:, :, :-G]: every row but the noisy group's.
    if (update) kv->rows = p0 + R - G;
    arena_reset(a, mark);
    return 0;
}

// ----------------------------------------------------------------------------
// token layout

int xar_raster_pos(const xar_config *c, int p) {
    int P = c->seq_h / c->cluster_h, g = p / c->group, i = p % c->group;
    int r = (g / c->cluster_h) * P + i / P, col = (g % c->cluster_h) * P + i % P;
    return r * c->seq_h + col;
}

void xar_group_to_raster(float *raster, const float *group, const xar_config *c, int B) {
    const int S = c->seq_len, C = c->token_dim;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < S; p++)
            memcpy(raster + ((size_t)b * S + xar_raster_pos(c, p)) * C, group + ((size_t)b * S + p) * C,
                   sizeof(float) * C);
}
