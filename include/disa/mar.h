// mar.h: the MAR transformer and its diffusion head (SimpleMLPAdaLN), loaded from
// safetensors with the official state_dict names and the architecture in the
// "config" metadata entry (JSON, format "disa-mar-1").
#ifndef DISA_MAR_H
#define DISA_MAR_H
#include "disa/arena.h"
#include "disa/bf16.h"
#include "disa/safetensors.h"

typedef enum { TOKENIZER_PATCH, TOKENIZER_KL16, TOKENIZER_COUNT } tokenizer_kind;
const char *tokenizer_name(tokenizer_kind k);
extern const char *const tokenizer_names[TOKENIZER_COUNT + 1];  // by kind, NULL-ended

typedef struct mar_config {
    int img_size, vae_stride, patch_size, vae_embed_dim;
    int enc_dim, enc_depth, enc_heads;
    int dec_dim, dec_depth, dec_heads;
    double mlp_ratio;
    int buffer_size, class_num;
    int diffloss_d, diffloss_w;
    float norm_eps;
    tokenizer_kind tokenizer;
    // derived
    int seq_h, seq_len, token_dim;  // token_dim = vae_embed_dim * patch_size^2
    int enc_hidden, dec_hidden;     // int(dim * mlp_ratio), as timm's Mlp
} mar_config;

// The keys (loader.h) of a config of MAR's layout, models/mar.py's arguments that xAR
// keeps, for a struct T with fields of mar_config's names, in the order of its JSON: the
// geometry and mlp_ratio (its range checked after every other key, as MAR's loader always
// did), the family's own keys (the rest of the arguments), the tokenizer (default kl16)
// and norm_eps (default 1e-6; a norm divides by sqrt(... + eps): eps <= 0 gives Inf/NaN).
#define MAR_CONFIG_KEYS(T, ...)                                                                                \
    LOADER_INT_KEY(T, "img_size", img_size, 1, INT_MAX),                                                       \
    LOADER_INT_KEY(T, "vae_stride", vae_stride, 1, INT_MAX),                                                   \
    LOADER_INT_KEY(T, "patch_size", patch_size, 1, INT_MAX),                                                   \
    LOADER_INT_KEY(T, "vae_embed_dim", vae_embed_dim, 1, INT_MAX),                                             \
    LOADER_INT_KEY(T, "encoder_embed_dim", enc_dim, 1, INT_MAX),                                               \
    LOADER_INT_KEY(T, "encoder_depth", enc_depth, 0, INT_MAX),                                                 \
    LOADER_INT_KEY(T, "encoder_num_heads", enc_heads, 1, INT_MAX),                                             \
    LOADER_INT_KEY(T, "decoder_embed_dim", dec_dim, 1, INT_MAX),                                               \
    LOADER_INT_KEY(T, "decoder_depth", dec_depth, 0, INT_MAX),                                                 \
    LOADER_INT_KEY(T, "decoder_num_heads", dec_heads, 1, INT_MAX),                                             \
    {.key = "mlp_ratio", .type = LOADER_DOUBLE, .offset = offsetof(T, mlp_ratio), .lo = 0, .hi = 64,           \
     .flags = LOADER_OPTIONAL | LOADER_HI_IN | LOADER_LATE, .def = 4},                                         \
    __VA_ARGS__,                                                                                               \
    {.key = "tokenizer", .type = LOADER_CHOICE, .offset = offsetof(T, tokenizer), .flags = LOADER_OPTIONAL,    \
     .def = TOKENIZER_KL16, .choices = tokenizer_names},                                                       \
    {.key = "norm_eps", .type = LOADER_FLOAT, .offset = offsetof(T, norm_eps), .lo = 0, .hi = 1,               \
     .flags = LOADER_OPTIONAL, .def = 1e-6}

// Parse and validate the config JSON; `label` (file name) prefixes every message. Strict
// (include/disa/json.h) and closed: a key outside mar_config_keys is refused.
int mar_config_parse(mar_config *c, const char *json, const char *label);
// The config keys mar_config_parse knows (NULL-terminated).
extern const char *const mar_config_keys[];

// timm Block weights: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2.
typedef struct vit_block {
    const float *norm1_w, *norm1_b;  // norm1.{weight,bias} (d)
    const float *qkv_w, *qkv_b;      // attn.qkv.{weight (3d, d), bias (3d)}
    const float *proj_w, *proj_b;    // attn.proj.{weight (d, d), bias (d)}
    const float *norm2_w, *norm2_b;  // norm2.{weight,bias} (d)
    const float *fc1_w, *fc1_b;      // mlp.fc1.{weight (h, d), bias (h)}
    const float *fc2_w, *fc2_b;      // mlp.fc2.{weight (d, h), bias (d)}
} vit_block;

// diffloss.net.res_blocks.{i}
typedef struct dl_resblock {
    const float *ln_w, *ln_b;        // in_ln.{weight,bias} (w)
    const float *fc1_w, *fc1_b;      // mlp.0.{weight (w, w), bias (w)}
    const float *fc2_w, *fc2_b;      // mlp.2.{weight (w, w), bias (w)}
    const float *ada_w, *ada_b;      // adaLN_modulation.1.{weight (3w, w), bias (3w)}
} dl_resblock;

// The bf16 forms of the transformer (mar.c) and the head (diffloss.c): packed weights
// and their primitives, made by mar_prepare.
typedef struct mar_bf16 mar_bf16;
typedef struct dl_bf16 dl_bf16;

// diffloss.net: in C channels, width w, condition z_dim, `depth` res blocks.
typedef struct diffloss_net {
    int C, w, z_dim, depth;
    float eps;
    const float *t0_w, *t0_b;        // time_embed.mlp.0.{weight (w, 256), bias (w)}
    const float *t2_w, *t2_b;        // time_embed.mlp.2.{weight (w, w), bias (w)}
    const float *cond_w, *cond_b;    // cond_embed.{weight (w, z_dim), bias (w)}
    const float *in_w, *in_b;        // input_proj.{weight (w, C), bias (w)}
    dl_resblock *blocks;             // [depth]
    const float *fada_w, *fada_b;    // final_layer.adaLN_modulation.1.{weight (2w, w), bias (2w)}
    const float *flin_w, *flin_b;    // final_layer.linear.{weight (2C, w), bias (2C)}
    dl_bf16 *bf16;                   // the bf16 form when prepared for bf16, else NULL
} diffloss_net;

typedef struct mar_model {
    mar_config cfg;
    st_file st;
    const float *class_emb;          // class_emb.weight (class_num, enc)
    const float *fake_latent;        // fake_latent (1, enc)
    const float *z_proj_w, *z_proj_b;     // z_proj.{weight (enc, token_dim), bias (enc)}
    const float *z_ln_w, *z_ln_b;         // z_proj_ln.{weight,bias} (enc)
    const float *enc_pos;            // encoder_pos_embed_learned (1, buf + seq, enc)
    vit_block *enc;                  // encoder_blocks.{i} [enc_depth]
    const float *enc_norm_w, *enc_norm_b; // encoder_norm (enc)
    const float *dec_embed_w, *dec_embed_b; // decoder_embed.{weight (dec, enc), bias (dec)}
    const float *mask_token;         // mask_token (1, 1, dec)
    const float *dec_pos;            // decoder_pos_embed_learned (1, buf + seq, dec)
    vit_block *dec;                  // decoder_blocks.{i} [dec_depth]
    const float *dec_norm_w, *dec_norm_b; // decoder_norm (dec)
    const float *diff_pos;           // diffusion_pos_embed_learned (1, seq, dec)
    diffloss_net head;               // diffloss.net.*
    precision_kind precision;        // what mar_prepare made it: FP32 (after mar_open) or BF16
    mar_bf16 *bf16;                  // the bf16 form when BF16, else NULL
} mar_model;

// Open `path`, parse its config, bind every tensor (all missing or mis-shaped ones are
// listed in one message). The model owns the mapping until mar_close. It opens as FP32.
int mar_open(mar_model *m, const char *path);
// Frees what mar_open, mar_tensor_table and mar_prepare made: also for a model that holds
// a config only, or whose table was built without a file.
void mar_close(mar_model *m);
// Prepare m for precision p (AUTO is resolved first: precision_resolve). BF16 packs every
// Linear of the transformer and the head once into oneDNN's layout; mar_forward and the
// diffloss_* calls then run in bf16 (bf16.h: matmul inputs bf16, fp32 accumulation,
// LayerNorm and softmax statistics, residual stream and outputs). FP32 drops the bf16
// form. 0, or DISA_EINVAL (bf16 cannot run here: the message says why) / DISA_ENOMEM, and
// m stays as it was. A model prepared for bf16 serves one thread at a time.
int mar_prepare(mar_model *m, precision_kind p);
// The full list of tensors (official names, shapes) for m->cfg, with dst pointers into m.
// Allocates m's block arrays; *tab and *names are the caller's to free. Used by the
// loader and by tools that write models.
int mar_tensor_table(mar_model *m, st_bind_entry **tab, char **names, int *count);
// The config as the JSON the loader reads back.
const char *mar_config_to_json(const mar_config *c, char *buf, int n);
// Write `path`: a model of config c with generated weights (st_write_generated: tests and
// benchmarks at full-size shapes); *n_values (may be NULL) the values written.
int mar_write_generated(const mar_config *c, uint64_t seed, const char *path, size_t *n_values);
// Preset configs of the official models (mar_base, mar_large, mar_huge) at 256x256 with
// the KL-16 tokenizer; 0 or DISA_EINVAL naming the accepted presets.
int mar_config_preset(mar_config *c, const char *name);

// Scratch bytes mar_forward needs for `B` images (2B with CFG counts as B2 = 2B).
size_t mar_forward_scratch_bytes(const mar_config *c, int B2);

// One transformer pass of an AR step (MAR forward_mae_encoder + forward_mae_decoder).
// tokens [B, seq, token_dim]; known [B, seq] (1 = known, same count n_known per image);
// labels [B] (class index, -1 = unconditional: fake_latent); with cfg != 0 the batch is
// doubled and the second half uses fake_latent. pred [B, n_pred]: positions (ascending)
// whose condition vectors are returned in z [B2, n_pred, dec] (B2 = cfg ? 2B : B), the
// conditional half first. Scratch comes from `a` and is released before returning.
// `poll` (may be NULL) is called after every transformer block; a non-zero return stops
// the pass with DISA_ECANCELED. Otherwise fails only when the arena is too small.
typedef int (*mar_poll_fn)(void *ctx);
int mar_forward(const mar_model *m, arena *a, float *z, const float *tokens, const unsigned char *known,
                int n_known, const int *labels, int cfg, const int *pred, int n_pred, int B,
                mar_poll_fn poll, void *poll_ctx);

// diffusion head ---------------------------------------------------------------

// The head runs in bf16 when h->bf16 is set (mar_prepare). Each call returns 0 or, in
// bf16 only, the error of a primitive that could not be made (message set); fp32 fails
// only when the arena is too small.
// ce[N, w] = cond_embed(c): the part of the head's input that is fixed for an AR step.
// The arena gives the bf16 copy of c (diffloss_scratch_bytes covers it).
int diffloss_cond(const diffloss_net *h, arena *a, float *ce, const float *c /*[N, z_dim]*/, int N);
// te[w] = time_embed(t): one per diffusion step, shared by every row.
int diffloss_time(const diffloss_net *h, float *te, float t);
size_t diffloss_scratch_bytes(const diffloss_net *h, int N);
// out[N, 2C] (eps | var_values) = net(x[N, C], t, c) given te and ce from above.
int diffloss_forward(const diffloss_net *h, arena *a, float *out, const float *x, const float *te,
                     const float *ce, int N);
// The same with rows at different times: row n uses te[te_row[n] * w ..] of a table of time
// embeddings (te_row NULL: every row uses te[0..w), as diffloss_forward).
int diffloss_forward_te(const diffloss_net *h, arena *a, float *out, const float *x, const float *te,
                        const int *te_row, const float *ce, int N);
// Pack the head for p (FP32 drops the bf16 form); mar_prepare calls it. As mar_prepare.
int diffloss_prepare(diffloss_net *h, precision_kind p);

// token layout ------------------------------------------------------------------

// MAR unpatchify: tokens [B, seq, c*p*p] -> image/latent [B, c, seq_h*p, seq_h*p].
void mar_unpatchify(float *out, const float *tokens, int B, int seq_h, int c, int p);

#endif
