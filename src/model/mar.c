// mar.c: MAR transformer forward for one AR step.
// Mirrors LTH14/mar models/mar.py: MAR.forward_mae_encoder, MAR.forward_mae_decoder,
// and timm's Block (DESIGN §4). The head is in diffloss.c.
#include "disa/mar.h"
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/loader.h"
#include "disa/nn.h"
#include "disa/par.h"
#include "disa/vec.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tokenizer_names[TOKENIZER_COUNT + 1] = {"patch", "kl16", NULL};

const char *tokenizer_name(tokenizer_kind k) { return (unsigned)k < TOKENIZER_COUNT ? tokenizer_names[k] : "?"; }

// ----------------------------------------------------------------------------
// config

const char *const mar_config_keys[] = {
    "format", "img_size", "vae_stride", "patch_size", "vae_embed_dim", "encoder_embed_dim", "encoder_depth",
    "encoder_num_heads", "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio", "buffer_size",
    "class_num", "diffloss_d", "diffloss_w", "norm_eps", "tokenizer",
    // What the trainer records about the data (tools/train_fmnist_mar.py --export); checked
    // below, used by nothing that computes.
    "dataset", "class_names", "train_steps", "pixel_range", NULL};

// MAR's own keys: the class rows in front of the tokens, the classes, the diffusion head.
static const loader_key k_keys[] = {MAR_CONFIG_KEYS(mar_config,
    LOADER_INT_KEY(mar_config, "buffer_size", buffer_size, 1, INT_MAX),
    LOADER_INT_KEY(mar_config, "class_num", class_num, 1, INT_MAX),
    LOADER_INT_KEY(mar_config, "diffloss_d", diffloss_d, 1, INT_MAX),
    LOADER_INT_KEY(mar_config, "diffloss_w", diffloss_w, 1, INT_MAX))};

static const loader_schema k_schema = {
    .format = "disa-mar-1",
    .not_one = "not a disa MAR file (convert checkpoints with tools/convert_mar.py)",
    .known = mar_config_keys,
    .keys = k_keys, .n_keys = (int)(sizeof k_keys / sizeof *k_keys), .size = sizeof(mar_config)};

// The descriptive keys: types and, for the pixel range, the one value the patch
// tokenizer's decoding assumes.
static int check_descriptive(const cJSON *o, int class_num, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "dataset");
    if (v && !cJSON_IsString(v)) return disa_err(DISA_EFORMAT, "%s: config 'dataset' must be a string", label);
    v = cJSON_GetObjectItemCaseSensitive(o, "class_names");
    if (v) {
        int ok = cJSON_IsArray(v) && cJSON_GetArraySize(v) == class_num;
        const cJSON *it;
        cJSON_ArrayForEach(it, v) ok &= cJSON_IsString(it);
        if (!ok) return disa_err(DISA_EFORMAT, "%s: config 'class_names' must be %d strings (class_num)", label, class_num);
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "train_steps");
    if (v && !(cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble == (double)(int64_t)v->valuedouble))
        return disa_err(DISA_EFORMAT, "%s: config 'train_steps' must be a non-negative integer", label);
    v = cJSON_GetObjectItemCaseSensitive(o, "pixel_range");
    if (v && !(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(v, 0)) &&
               cJSON_IsNumber(cJSON_GetArrayItem(v, 1)) && cJSON_GetArrayItem(v, 0)->valuedouble == -1.0 &&
               cJSON_GetArrayItem(v, 1)->valuedouble == 1.0))
        return disa_err(DISA_EFORMAT, "%s: config 'pixel_range' must be [-1, 1] (images are decoded from [-1, 1])",
                        label);
    return 0;
}

int mar_config_parse(mar_config *c, const char *json, const char *label) {
    cJSON *o;
    int rc = loader_config_parse(c, &o, json, label, &k_schema);
    if (rc) return rc;
    if ((rc = loader_token_grid(&c->seq_h, c->img_size, c->vae_stride, c->patch_size, label)) != 0) goto out;
    if (c->enc_dim % c->enc_heads || c->dec_dim % c->dec_heads) {
        rc = disa_err(DISA_ERANGE, "%s: config: embed dims (%d, %d) must be multiples of the head counts (%d, %d)",
                      label, c->enc_dim, c->dec_dim, c->enc_heads, c->dec_heads);
        goto out;
    }
    if ((rc = check_descriptive(o, c->class_num, label)) != 0) goto out;
    c->seq_len = c->seq_h * c->seq_h;
    c->token_dim = c->vae_embed_dim * c->patch_size * c->patch_size;
    c->enc_hidden = (int)(c->enc_dim * c->mlp_ratio);
    c->dec_hidden = (int)(c->dec_dim * c->mlp_ratio);
    if (c->seq_len > 65536 || c->enc_dim > 65536 || c->dec_dim > 65536 || c->diffloss_w > 65536) {
        rc = disa_err(DISA_ERANGE, "%s: config: sizes beyond 65536 are not supported", label);
        goto out;
    }
out:
    cJSON_Delete(o);
    return rc;
}

// ----------------------------------------------------------------------------
// loading

#define SH(...) (const int64_t[]){__VA_ARGS__}

static void bind_block(st_table *t, vit_block *b, const char *stack, int i, int d, int h) {
    char pre[64];
    snprintf(pre, sizeof pre, "%s.%d.", stack, i);
    st_table_add(t, &b->norm1_w, 1, SH(d), "%snorm1.weight", pre);
    st_table_add(t, &b->norm1_b, 1, SH(d), "%snorm1.bias", pre);
    loader_add_attn(t, (const float **const[]){&b->qkv_w, &b->qkv_b, &b->proj_w, &b->proj_b}, d, pre);
    st_table_add(t, &b->norm2_w, 1, SH(d), "%snorm2.weight", pre);
    st_table_add(t, &b->norm2_b, 1, SH(d), "%snorm2.bias", pre);
    st_table_add(t, &b->fc1_w, 2, SH(h, d), "%smlp.fc1.weight", pre);
    st_table_add(t, &b->fc1_b, 1, SH(h), "%smlp.fc1.bias", pre);
    st_table_add(t, &b->fc2_w, 2, SH(d, h), "%smlp.fc2.weight", pre);
    st_table_add(t, &b->fc2_b, 1, SH(d), "%smlp.fc2.bias", pre);
}

int mar_tensor_table(mar_model *m, st_bind_entry **tab, char **names, int *count) {
    const mar_config *c = &m->cfg;
    m->enc = calloc((size_t)c->enc_depth + 1, sizeof(vit_block));
    m->dec = calloc((size_t)c->dec_depth + 1, sizeof(vit_block));
    m->head.blocks = calloc((size_t)c->diffloss_d, sizeof(dl_resblock));
    // 16 top-level tensors, 12 per transformer block, 12 + 8 per res block in the head.
    st_table t;
    int rc = loader_table_begin(&t, 16 + 12 * (c->enc_depth + c->dec_depth) + 12 + 8 * c->diffloss_d,
                                m->enc && m->dec && m->head.blocks, tab, names, count, "MAR");
    if (rc) return rc;
    int E = c->enc_dim, D = c->dec_dim, S = c->seq_len, Bf = c->buffer_size, W = c->diffloss_w, C = c->token_dim;
    st_table_add(&t, &m->class_emb, 2, SH(c->class_num, E), "class_emb.weight");
    st_table_add(&t, &m->fake_latent, 2, SH(1, E), "fake_latent");
    st_table_add(&t, &m->z_proj_w, 2, SH(E, C), "z_proj.weight");
    st_table_add(&t, &m->z_proj_b, 1, SH(E), "z_proj.bias");
    st_table_add(&t, &m->z_ln_w, 1, SH(E), "z_proj_ln.weight");
    st_table_add(&t, &m->z_ln_b, 1, SH(E), "z_proj_ln.bias");
    st_table_add(&t, &m->enc_pos, 3, SH(1, S + Bf, E), "encoder_pos_embed_learned");
    for (int i = 0; i < c->enc_depth; i++) bind_block(&t, &m->enc[i], "encoder_blocks", i, E, c->enc_hidden);
    st_table_add(&t, &m->enc_norm_w, 1, SH(E), "encoder_norm.weight");
    st_table_add(&t, &m->enc_norm_b, 1, SH(E), "encoder_norm.bias");
    st_table_add(&t, &m->dec_embed_w, 2, SH(D, E), "decoder_embed.weight");
    st_table_add(&t, &m->dec_embed_b, 1, SH(D), "decoder_embed.bias");
    st_table_add(&t, &m->mask_token, 3, SH(1, 1, D), "mask_token");
    st_table_add(&t, &m->dec_pos, 3, SH(1, S + Bf, D), "decoder_pos_embed_learned");
    for (int i = 0; i < c->dec_depth; i++) bind_block(&t, &m->dec[i], "decoder_blocks", i, D, c->dec_hidden);
    st_table_add(&t, &m->dec_norm_w, 1, SH(D), "decoder_norm.weight");
    st_table_add(&t, &m->dec_norm_b, 1, SH(D), "decoder_norm.bias");
    st_table_add(&t, &m->diff_pos, 3, SH(1, S, D), "diffusion_pos_embed_learned");
    diffloss_net *h = &m->head;
    h->C = C;
    h->w = W;
    h->z_dim = D;
    h->depth = c->diffloss_d;
    h->eps = 1e-6f;
    loader_add_head_embeds(&t, (const float **const[]){&h->t0_w, &h->t0_b, &h->t2_w, &h->t2_b, &h->cond_w, &h->cond_b,
                                                       &h->in_w, &h->in_b},
                           W, D, C, "diffloss.net.");
    for (int i = 0; i < h->depth; i++) {
        dl_resblock *b = &h->blocks[i];
        st_table_add(&t, &b->ln_w, 1, SH(W), "diffloss.net.res_blocks.%d.in_ln.weight", i);
        st_table_add(&t, &b->ln_b, 1, SH(W), "diffloss.net.res_blocks.%d.in_ln.bias", i);
        st_table_add(&t, &b->fc1_w, 2, SH(W, W), "diffloss.net.res_blocks.%d.mlp.0.weight", i);
        st_table_add(&t, &b->fc1_b, 1, SH(W), "diffloss.net.res_blocks.%d.mlp.0.bias", i);
        st_table_add(&t, &b->fc2_w, 2, SH(W, W), "diffloss.net.res_blocks.%d.mlp.2.weight", i);
        st_table_add(&t, &b->fc2_b, 1, SH(W), "diffloss.net.res_blocks.%d.mlp.2.bias", i);
        st_table_add(&t, &b->ada_w, 2, SH(3 * W, W), "diffloss.net.res_blocks.%d.adaLN_modulation.1.weight", i);
        st_table_add(&t, &b->ada_b, 1, SH(3 * W), "diffloss.net.res_blocks.%d.adaLN_modulation.1.bias", i);
    }
    st_table_add(&t, &h->fada_w, 2, SH(2 * W, W), "diffloss.net.final_layer.adaLN_modulation.1.weight");
    st_table_add(&t, &h->fada_b, 1, SH(2 * W), "diffloss.net.final_layer.adaLN_modulation.1.bias");
    st_table_add(&t, &h->flin_w, 2, SH(2 * C, W), "diffloss.net.final_layer.linear.weight");
    st_table_add(&t, &h->flin_b, 1, SH(2 * C), "diffloss.net.final_layer.linear.bias");
    return loader_table_end(&t, tab, names, count, "MAR");
}

LOADER_MODEL(k_loader, mar_model, mar_config, mar_config_parse, mar_tensor_table, mar_close, NULL,
             "the config's encoder_depth, decoder_depth and diffloss_d must match the blocks in the file");

int mar_open(mar_model *m, const char *path) { return loader_open(&k_loader, m, &m->st, &m->cfg, path); }

int mar_write_generated(const mar_config *c, uint64_t seed, const char *path, size_t *n_values) {
    mar_model m = {.cfg = *c};
    char json[1024];
    return loader_write_generated(&k_loader, &m, mar_config_to_json(c, json, sizeof json), seed, path, n_values);
}

void mar_close(mar_model *m) {
    mar_prepare(m, PRECISION_FP32);  // drops the bf16 form, which holds no pointer into the mapping
    free(m->enc);
    free(m->dec);
    free(m->head.blocks);
    st_close(&m->st);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------
// bf16 form: every Linear packed once (bf16.h). The last decoder block also gets its qkv
// weight as separate q and kv Linears for block_forward_rows.

typedef struct vit_bf16 {
    bf16_linear qkv, proj, fc1, fc2, q, kv;
} vit_bf16;

struct mar_bf16 {
    bf16_cache *cache;
    bf16_linear z_proj, dec_embed;
    vit_bf16 *enc, *dec;  // [enc_depth], [dec_depth]
};

static void vit_bf16_free(vit_bf16 *v, int n) {
    for (int i = 0; v && i < n; i++) {
        bf16_linear *all[] = {&v[i].qkv, &v[i].proj, &v[i].fc1, &v[i].fc2, &v[i].q, &v[i].kv};
        for (size_t j = 0; j < sizeof all / sizeof *all; j++) bf16_linear_free(all[j]);
    }
    free(v);
}

static void mar_bf16_delete(mar_bf16 *bf, const mar_config *c) {
    if (!bf) return;
    bf16_linear_free(&bf->z_proj);
    bf16_linear_free(&bf->dec_embed);
    vit_bf16_free(bf->enc, c->enc_depth);
    vit_bf16_free(bf->dec, c->dec_depth);
    bf16_cache_delete(bf->cache);
    free(bf);
}

static int pack_block(vit_bf16 *v, const vit_block *b, int d, int h, int split_qkv) {
    int rc = bf16_linear_init(&v->qkv, b->qkv_w, b->qkv_b, d, 3 * d);
    if (!rc) rc = bf16_linear_init(&v->proj, b->proj_w, b->proj_b, d, d);
    if (!rc) rc = bf16_linear_init(&v->fc1, b->fc1_w, b->fc1_b, d, h);
    if (!rc) rc = bf16_linear_init(&v->fc2, b->fc2_w, b->fc2_b, h, d);
    if (!rc && split_qkv) rc = bf16_linear_init(&v->q, b->qkv_w, b->qkv_b, d, d);
    if (!rc && split_qkv)
        rc = bf16_linear_init(&v->kv, b->qkv_w + (size_t)d * d, b->qkv_b ? b->qkv_b + d : NULL, d, 2 * d);
    return rc;
}

int mar_prepare(mar_model *m, precision_kind p) {
    const mar_config *c = &m->cfg;
    if (p == PRECISION_AUTO) p = precision_resolve(p, NULL, 0);
    if (p == PRECISION_FP32) {
        mar_bf16_delete(m->bf16, c);
        m->bf16 = NULL;
        diffloss_prepare(&m->head, PRECISION_FP32);
        m->precision = PRECISION_FP32;
        return 0;
    }
    if (m->bf16) return 0;
    int rc = bf16_available();
    if (rc) return rc;
    // Shapes per AR step: ~10 Linear row counts and the attention shapes.
    mar_bf16 *bf = calloc(1, sizeof *bf);
    if (!bf || !(bf->cache = bf16_cache_new(64)) || !(bf->enc = calloc((size_t)c->enc_depth + 1, sizeof(vit_bf16))) ||
        !(bf->dec = calloc((size_t)c->dec_depth + 1, sizeof(vit_bf16)))) {
        mar_bf16_delete(bf, c);
        return disa_err(DISA_ENOMEM, "MAR: out of memory for its bf16 form");
    }
    rc = bf16_linear_init(&bf->z_proj, m->z_proj_w, m->z_proj_b, c->token_dim, c->enc_dim);
    if (!rc) rc = bf16_linear_init(&bf->dec_embed, m->dec_embed_w, m->dec_embed_b, c->enc_dim, c->dec_dim);
    for (int i = 0; !rc && i < c->enc_depth; i++) rc = pack_block(&bf->enc[i], &m->enc[i], c->enc_dim, c->enc_hidden, 0);
    for (int i = 0; !rc && i < c->dec_depth; i++)
        rc = pack_block(&bf->dec[i], &m->dec[i], c->dec_dim, c->dec_hidden, i + 1 == c->dec_depth);
    // A model bound without its head (the transformer's parity goldens) packs none.
    if (!rc && m->head.t0_w) rc = diffloss_prepare(&m->head, PRECISION_BF16);
    if (rc) {
        mar_bf16_delete(bf, c);
        return disa_err_wrap(rc, "MAR, bf16: ");
    }
    m->bf16 = bf;
    m->precision = PRECISION_BF16;
    return 0;
}

// ----------------------------------------------------------------------------
// forward

// Scratch of one block pass over R rows of width d with hidden h, T rows per image.
static size_t block_floats(int R, int T, int d, int h, int heads) {
    return (size_t)R * d * 2 + (size_t)R * 3 * d + (size_t)R * h + attention_scratch_floats(T, d, heads) + 64;
}

// Scratch of one bf16 block pass in floats: ln, qkv, att (bf16: 2.5 R d floats' worth,
// rounded up), hid (R h / 2) and one image's attention scores and probabilities for all
// heads; the row-restricted block needs no more. The larger of the two forms is reserved.
static size_t block_bf16_floats(int R, int T, int d, int h, int heads) {
    return (size_t)R * d * 3 + (size_t)R * h / 2 + attention_bf16_scratch_bytes(T, T, heads) / sizeof(float) + 128;
}

size_t mar_forward_scratch_bytes(const mar_config *c, int B2) {
    size_t T = (size_t)c->buffer_size + c->seq_len;
    size_t R = (size_t)B2 * T;
    size_t enc = block_floats((int)R, (int)T, c->enc_dim, c->enc_hidden, c->enc_heads);
    size_t dec = block_floats((int)R, (int)T, c->dec_dim, c->dec_hidden, c->dec_heads);
    // block_forward_rows with at most seq_len rows per image: ln, kv (2d) and up to R rows
    // each of lnp, q, att (d) and hid, plus a P x T score matrix.
    size_t dec_rows = R * (size_t)c->dec_dim * 6 + R * (size_t)c->dec_hidden + T * T + 8 * 16;
    if (dec_rows > dec) dec = dec_rows;
    size_t enc16 = block_bf16_floats((int)R, (int)T, c->enc_dim, c->enc_hidden, c->enc_heads);
    size_t dec16 = block_bf16_floats((int)R, (int)T, c->dec_dim, c->dec_hidden, c->dec_heads);
    if (enc16 > enc) enc = enc16;
    if (dec16 > dec) dec = dec16;
    // What mar_forward keeps across the blocks: encoder rows xe, decoder rows xd, the
    // projected and gathered known tokens, the embedded encoder output (B <= B2).
    size_t S = (size_t)B2 * c->seq_len;
    // Then the sampled rows leaving the decoder (xs) and their indices.
    // In bf16 also the bf16 copies of the gathered tokens and of the normalised encoder
    // output (under S * token_dim + R * enc_dim floats).
    size_t persistent = R * c->enc_dim + R * c->dec_dim + S * c->enc_dim + S * c->token_dim + R * c->dec_dim +
                        S * c->dec_dim + S + (S * c->token_dim + R * c->enc_dim) / 2 + 2 * 16;
    return (persistent + (enc > dec ? enc : dec)) * sizeof(float) + 16 * 64;
}

DISA_VEC
static void add_run(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

typedef struct add_ctx {
    float *x;
    const float *y;
    size_t n;
} add_ctx;

static void add_part(void *ctx, size_t lo, size_t hi) {
    const add_ctx *c = ctx;
    size_t a, b;
    par_block_range(c->n, lo, hi, &a, &b);
    add_run(c->x + a, c->y + a, b - a);
}

// x += y over the threads (par.h).
static void add_inplace(float *x, const float *y, size_t n) {
    add_ctx c = {x, y, n};
    par_for(par_blocks(n), 32, add_part, &c);
}

// The rest of a timm Block after attention, on R rows in place:
// x += proj(att); x += fc2(gelu(fc1(norm2(x)))). tmp [R, d] and hid [R, hidden] are scratch.
static void block_tail(const vit_block *b, float *x, const float *att, float *tmp, float *hid, int R, int d,
                       int hidden, float eps) {
    linear_forward(tmp, att, b->proj_w, b->proj_b, R, d, d);
    add_layernorm_forward(tmp, x, tmp, b->norm2_w, b->norm2_b, R, d, eps);
    linear_forward(hid, tmp, b->fc1_w, b->fc1_b, R, d, hidden);
    gelu_forward(hid, hid, (size_t)R * hidden);
    linear_forward(tmp, hid, b->fc2_w, b->fc2_b, R, hidden, d);
    add_inplace(x, tmp, (size_t)R * d);
}

// timm Block.forward on x [N*T, d] in place: x += proj(attn(norm1(x))); x += fc2(gelu(fc1(norm2(x)))).
static int block_forward(const vit_block *b, arena *a, float *x, int N, int T, int d, int hidden, int heads,
                         float eps) {
    size_t mark = arena_mark(a);
    int R = N * T;
    float *ln = arena_floats(a, (size_t)R * d);
    float *qkv = arena_floats(a, (size_t)R * 3 * d);
    float *att = arena_floats(a, (size_t)R * d);
    float *hid = arena_floats(a, (size_t)R * hidden);
    float *scr = arena_floats(a, attention_scratch_floats(T, d, heads));
    if (!ln || !qkv || !att || !hid || !scr) return DISA_ENOMEM;
    layernorm_forward(ln, x, b->norm1_w, b->norm1_b, R, d, eps);
    linear_forward(qkv, ln, b->qkv_w, b->qkv_b, R, d, 3 * d);
    attention_forward(att, qkv, scr, N, T, d, heads);
    block_tail(b, x, att, ln, hid, R, d, hidden, eps);
    arena_reset(a, mark);
    return 0;
}

// dst[n*P + j] = src[n*T + rows[n*P + j]] for rows of `bytes` bytes.
static void gather_rows(void *dst, const void *src, const int *rows, int N, int P, int T, size_t bytes) {
    for (int n = 0; n < N; n++)
        for (int j = 0; j < P; j++)
            memcpy((char *)dst + ((size_t)n * P + j) * bytes, (const char *)src + ((size_t)n * T + rows[(size_t)n * P + j]) * bytes,
                   bytes);
}

// block_forward whose output is needed only at P rows of each of the N sequences
// (rows[n*P + j], an index within sequence n): K and V come from all rows, Q, attention,
// proj and the MLP only from those rows. Writes the P output rows per sequence to
// xs[N*P, d]. For MAR-B at K = 64 this removes ~80% of the last decoder block's FLOPs.
static int block_forward_rows(const vit_block *b, arena *a, float *xs, const float *x, const int *rows, int P,
                              int N, int T, int d, int hidden, int heads, float eps) {
    size_t mark = arena_mark(a);
    int R = N * T, RP = N * P;
    // One arena_floats per buffer, each beside its size, so an overflow names the line:
    // the block forwards of xar.c and flowar.c list theirs the same way on purpose.
    float *ln = arena_floats(a, (size_t)R * d);
    float *kv = arena_floats(a, (size_t)R * 2 * d);
    float *lnp = arena_floats(a, (size_t)RP * d);
    float *q = arena_floats(a, (size_t)RP * d);
    float *att = arena_floats(a, (size_t)RP * d);
    float *hid = arena_floats(a, (size_t)RP * hidden);
    float *scr = arena_floats(a, (size_t)P * T);
    if (!ln || !kv || !lnp || !q || !att || !hid || !scr) return DISA_ENOMEM;
    layernorm_forward(ln, x, b->norm1_w, b->norm1_b, R, d, eps);
    // qkv weight rows [0,d) make q, [d,3d) make k and v.
    linear_forward(kv, ln, b->qkv_w + (size_t)d * d, b->qkv_b ? b->qkv_b + d : NULL, R, d, 2 * d);
    gather_rows(xs, x, rows, N, P, T, sizeof(float) * d);
    gather_rows(lnp, ln, rows, N, P, T, sizeof(float) * d);
    linear_forward(q, lnp, b->qkv_w, b->qkv_b, RP, d, d);
    attention_rows_forward(att, q, d, kv, scr, N, P, T, d, heads);
    block_tail(b, xs, att, lnp, hid, RP, d, hidden, eps);
    arena_reset(a, mark);
    return 0;
}

// ----------------------------------------------------------------------------
// The same blocks in bf16, each Linear with what follows it as its epilogue: the
// residual stream x stays fp32, every matmul input is bf16 and written as such by the
// op before it (LayerNorm, the qkv projection, attention, fc1 with GELU).

// block_tail in bf16: x += proj(att) + b; x += fc2(gelu(fc1(norm2(x)))).
static int block_tail_bf16(bf16_cache *c, const vit_block *b, const vit_bf16 *w, float *x, const uint16_t *att,
                           uint16_t *ln, uint16_t *hid, int R, int d, float eps) {
    int rc = bf16_linear_forward(c, &w->proj, x, 0, att, NULL, R, BF16_EPI_RESIDUAL);
    if (rc) return rc;
    layernorm_bf16_forward(ln, x, b->norm2_w, b->norm2_b, NULL, NULL, R, d, eps);
    rc = bf16_linear_forward(c, &w->fc1, hid, 1, ln, NULL, R, BF16_EPI_GELU);
    return rc ? rc : bf16_linear_forward(c, &w->fc2, x, 0, hid, NULL, R, BF16_EPI_RESIDUAL);
}

static int block_bf16(bf16_cache *c, const vit_block *b, const vit_bf16 *w, arena *a, float *x, int N, int T, int d,
                      int hidden, int heads, float eps) {
    size_t mark = arena_mark(a);
    size_t R = (size_t)N * T;
    uint16_t *ln = arena_alloc(a, sizeof(uint16_t) * R * d), *qkv = arena_alloc(a, sizeof(uint16_t) * R * 3 * d);
    uint16_t *att = arena_alloc(a, sizeof(uint16_t) * R * d), *hid = arena_alloc(a, sizeof(uint16_t) * R * hidden);
    void *scr = arena_alloc(a, attention_bf16_scratch_bytes(T, T, heads));
    if (!ln || !qkv || !att || !hid || !scr) return DISA_ENOMEM;
    layernorm_bf16_forward(ln, x, b->norm1_w, b->norm1_b, NULL, NULL, (int)R, d, eps);
    int rc = bf16_linear_forward(c, &w->qkv, qkv, 1, ln, NULL, (int)R, BF16_EPI_NONE);
    if (!rc) rc = attention_bf16_forward(c, att, qkv, 3 * d, qkv + d, qkv + 2 * d, 3 * d, scr, N, T, T, d, heads);
    if (!rc) rc = block_tail_bf16(c, b, w, x, att, ln, hid, (int)R, d, eps);
    arena_reset(a, mark);
    return rc;
}

static int block_rows_bf16(bf16_cache *c, const vit_block *b, const vit_bf16 *w, arena *a, float *xs, const float *x,
                           const int *rows, int P, int N, int T, int d, int hidden, int heads, float eps) {
    size_t mark = arena_mark(a);
    size_t R = (size_t)N * T, RP = (size_t)N * P;
    uint16_t *ln = arena_alloc(a, sizeof(uint16_t) * R * d), *kv = arena_alloc(a, sizeof(uint16_t) * R * 2 * d);
    uint16_t *lnp = arena_alloc(a, sizeof(uint16_t) * RP * d), *q = arena_alloc(a, sizeof(uint16_t) * RP * d);
    uint16_t *att = arena_alloc(a, sizeof(uint16_t) * RP * d), *hid = arena_alloc(a, sizeof(uint16_t) * RP * hidden);
    void *scr = arena_alloc(a, attention_bf16_scratch_bytes(P, T, heads));
    if (!ln || !kv || !lnp || !q || !att || !hid || !scr) return DISA_ENOMEM;
    layernorm_bf16_forward(ln, x, b->norm1_w, b->norm1_b, NULL, NULL, (int)R, d, eps);
    int rc = bf16_linear_forward(c, &w->kv, kv, 1, ln, NULL, (int)R, BF16_EPI_NONE);
    gather_rows(xs, x, rows, N, P, T, sizeof(float) * d);
    gather_rows(lnp, ln, rows, N, P, T, sizeof(uint16_t) * d);
    if (!rc) rc = bf16_linear_forward(c, &w->q, q, 1, lnp, NULL, (int)RP, BF16_EPI_NONE);
    if (!rc) rc = attention_bf16_forward(c, att, q, d, kv, kv + d, 2 * d, scr, N, P, T, d, heads);
    if (!rc) rc = block_tail_bf16(c, b, w, xs, att, lnp, hid, (int)RP, d, eps);
    arena_reset(a, mark);
    return rc;
}

// y [M, N] fp32 = x W^T + b for fp32 rows x, rounded to bf16 in the arena first.
static int linear_f32_bf16(bf16_cache *c, const bf16_linear *l, arena *a, float *y, const float *x, int M) {
    size_t mark = arena_mark(a);
    uint16_t *xb = arena_alloc(a, sizeof(uint16_t) * (size_t)M * l->K);
    if (!xb) return DISA_ENOMEM;
    bf16_from_f32(xb, x, (size_t)M * l->K);
    int rc = bf16_linear_forward(c, l, y, 0, xb, NULL, M, BF16_EPI_NONE);
    arena_reset(a, mark);
    return rc;
}

int mar_forward(const mar_model *m, arena *a, float *z, const float *tokens, const unsigned char *known,
                int n_known, const int *labels, int cfg, const int *pred, int n_pred, int B,
                mar_poll_fn poll, void *poll_ctx) {
    const mar_config *c = &m->cfg;
    const int E = c->enc_dim, D = c->dec_dim, S = c->seq_len, Bf = c->buffer_size, C = c->token_dim;
    const int B2 = cfg ? 2 * B : B, Te = Bf + n_known, Td = Bf + S;
    size_t mark = arena_mark(a);
    float *xe = arena_floats(a, (size_t)B2 * Te * E);
    float *xd = arena_floats(a, (size_t)B2 * Td * D);
    float *tmp = arena_floats(a, (size_t)B * (n_known > 0 ? n_known : 1) * E);
    if (!xe || !xd || !tmp) return DISA_ENOMEM;

    // Encoder input: buffer rows carry the class embedding, then the known tokens in
    // position order (the rows MAR keeps after dropping masked ones). z_proj is row-wise,
    // so projecting only the kept rows equals projecting all and dropping after.
    // Gather the known token rows, then one GEMM for all images.
    float *gath = arena_floats(a, (size_t)B * (n_known > 0 ? n_known : 1) * C);
    if (!gath) return DISA_ENOMEM;
    for (int b = 0; b < B; b++) {
        int r = 0;
        for (int p = 0; p < S; p++)
            if (known[(size_t)b * S + p])
                memcpy(gath + ((size_t)b * n_known + r++) * C, tokens + ((size_t)b * S + p) * C, sizeof(float) * C);
    }
    mar_bf16 *bf = m->bf16;
    int rc = 0;
    if (n_known > 0 && bf) rc = linear_f32_bf16(bf->cache, &bf->z_proj, a, tmp, gath, B * n_known);
    else if (n_known > 0) linear_forward(tmp, gath, m->z_proj_w, m->z_proj_b, B * n_known, C, E);
    if (rc) return rc;
    for (int b2 = 0; b2 < B2; b2++) {
        int b = b2 % B;
        int uncond = b2 >= B || labels[b] < 0;
        const float *cls = uncond ? m->fake_latent : m->class_emb + (size_t)labels[b] * E;
        float *xb = xe + (size_t)b2 * Te * E;
        for (int r = 0; r < Bf; r++)
            for (int k = 0; k < E; k++) xb[(size_t)r * E + k] = cls[k] + m->enc_pos[(size_t)r * E + k];
        int r = 0;
        for (int p = 0; p < S; p++) {
            if (!known[(size_t)b * S + p]) continue;
            const float *src = tmp + ((size_t)b * n_known + r) * E, *pos = m->enc_pos + (size_t)(Bf + p) * E;
            float *dst = xb + (size_t)(Bf + r) * E;
            for (int k = 0; k < E; k++) dst[k] = src[k] + pos[k];
            r++;
        }
    }
    layernorm_forward(xe, xe, m->z_ln_w, m->z_ln_b, B2 * Te, E, c->norm_eps);
    for (int i = 0; i < c->enc_depth; i++) {
        rc = bf ? block_bf16(bf->cache, &m->enc[i], &bf->enc[i], a, xe, B2, Te, E, c->enc_hidden, c->enc_heads,
                             c->norm_eps)
                : block_forward(&m->enc[i], a, xe, B2, Te, E, c->enc_hidden, c->enc_heads, c->norm_eps);
        if (rc) return rc;
        if (poll && poll(poll_ctx)) return DISA_ECANCELED;
    }
    // Decoder input: every row starts as mask_token; buffer and known rows are replaced by
    // the embedded encoder output; then the position embedding is added to all rows.
    float *emb = arena_floats(a, (size_t)B2 * Te * D);
    if (!emb) return DISA_ENOMEM;
    if (bf) {
        // encoder_norm writes the bf16 input of decoder_embed directly.
        uint16_t *xn = arena_alloc(a, sizeof(uint16_t) * (size_t)B2 * Te * E);
        if (!xn) return DISA_ENOMEM;
        layernorm_bf16_forward(xn, xe, m->enc_norm_w, m->enc_norm_b, NULL, NULL, B2 * Te, E, c->norm_eps);
        if ((rc = bf16_linear_forward(bf->cache, &bf->dec_embed, emb, 0, xn, NULL, B2 * Te, BF16_EPI_NONE)) != 0)
            return rc;
    } else {
        layernorm_forward(xe, xe, m->enc_norm_w, m->enc_norm_b, B2 * Te, E, c->norm_eps);
        linear_forward(emb, xe, m->dec_embed_w, m->dec_embed_b, B2 * Te, E, D);
    }
    for (int b2 = 0; b2 < B2; b2++) {
        int b = b2 % B;
        float *xb = xd + (size_t)b2 * Td * D;
        const float *eb = emb + (size_t)b2 * Te * D;
        for (int r = 0; r < Td; r++) memcpy(xb + (size_t)r * D, m->mask_token, sizeof(float) * D);
        memcpy(xb, eb, sizeof(float) * Bf * D);
        int r = Bf;
        for (int p = 0; p < S; p++)
            if (known[(size_t)b * S + p]) memcpy(xb + (size_t)(Bf + p) * D, eb + (size_t)r++ * D, sizeof(float) * D);
        add_inplace(xb, m->dec_pos, (size_t)Td * D);
    }
    // Only the rows the head samples at this step leave the decoder, so the last block
    // runs on them alone (block_forward_rows); the blocks before need every row.
    int *rows = arena_alloc(a, sizeof(int) * (size_t)B2 * (n_pred > 0 ? n_pred : 1));
    float *xs = arena_floats(a, (size_t)B2 * (n_pred > 0 ? n_pred : 1) * D);
    if (!rows || !xs) return DISA_ENOMEM;
    for (int b2 = 0; b2 < B2; b2++)
        for (int j = 0; j < n_pred; j++) rows[(size_t)b2 * n_pred + j] = Bf + pred[(size_t)(b2 % B) * n_pred + j];
    for (int i = 0; i < c->dec_depth; i++) {
        int all = i + 1 < c->dec_depth || n_pred <= 0;
        if (bf && all)
            rc = block_bf16(bf->cache, &m->dec[i], &bf->dec[i], a, xd, B2, Td, D, c->dec_hidden, c->dec_heads,
                            c->norm_eps);
        else if (bf)
            rc = block_rows_bf16(bf->cache, &m->dec[i], &bf->dec[i], a, xs, xd, rows, n_pred, B2, Td, D,
                                 c->dec_hidden, c->dec_heads, c->norm_eps);
        else if (all)
            rc = block_forward(&m->dec[i], a, xd, B2, Td, D, c->dec_hidden, c->dec_heads, c->norm_eps);
        else
            rc = block_forward_rows(&m->dec[i], a, xs, xd, rows, n_pred, B2, Td, D, c->dec_hidden, c->dec_heads,
                                    c->norm_eps);
        if (rc) return rc;
        if (poll && poll(poll_ctx)) return DISA_ECANCELED;
    }
    if (c->dec_depth == 0)
        for (size_t r = 0; r < (size_t)B2 * n_pred; r++)
            memcpy(xs + r * D, xd + ((size_t)(r / n_pred) * Td + rows[r]) * D, sizeof(float) * D);
    // decoder_norm and the diffusion position embedding are row-wise: applied to the
    // sampled rows only.
    layernorm_forward(z, xs, m->dec_norm_w, m->dec_norm_b, B2 * n_pred, D, c->norm_eps);
    for (size_t r = 0; r < (size_t)B2 * n_pred; r++)
        add_inplace(z + r * D, m->diff_pos + (size_t)(rows[r] - Bf) * D, D);
    arena_reset(a, mark);
    return 0;
}

// The official models at 256 x 256 with the KL-16 tokenizer, in k_keys' order.
static const loader_preset k_official[] = {
    {"mar_base", {256, 16, 1, 16, 768, 12, 12, 768, 12, 12, 4, 64, 1000, 6, 1024, TOKENIZER_KL16, 1e-6}},
    {"mar_large", {256, 16, 1, 16, 1024, 16, 16, 1024, 16, 16, 4, 64, 1000, 8, 1280, TOKENIZER_KL16, 1e-6}},
    {"mar_huge", {256, 16, 1, 16, 1280, 20, 16, 1280, 20, 16, 4, 64, 1000, 12, 1536, TOKENIZER_KL16, 1e-6}},
};

int mar_config_preset(mar_config *c, const char *name) {
    char json[1024];
    if (!loader_preset_json(&k_schema, c, k_official, 3, name, json, sizeof json))
        return disa_err(DISA_EINVAL, "unknown preset '%s' (mar_base, mar_large, mar_huge)", name);
    return mar_config_parse(c, json, name);
}

const char *mar_config_to_json(const mar_config *c, char *buf, int n) {
    return loader_config_json(&k_schema, c, buf, n);
}
