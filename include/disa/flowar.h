// flowar.h: FlowAR, a scale-wise autoregressive transformer with a flow-matching head,
// loaded from safetensors with the official state_dict names and the architecture in
// the "config" metadata entry (JSON, format "disa-flowar-1", tools/convert_flowar.py).
//
// Mirrors Qinyu-Allen-Zhao/DiSA FlowAR_DiSA models/flowar.py (FlowAR, Block, Attention,
// RMSNorm) and models/flowmodel.py (SimpleTransformerAdaLN, Block_v1, Block_v2,
// CrossAttention, FinalLayer). The image latent is generated at the scales of
// cfg.scale (1, 2, 4, 8, 16 officially): each scale's tokens attend to every earlier
// scale through per-block key/value caches (the scale-causal mask of training), and the
// flow head samples the scale's tokens from the transformer's output (flowar_sample.h).
#ifndef DISA_FLOWAR_H
#define DISA_FLOWAR_H
#include <stdint.h>

#include "disa/arena.h"
#include "disa/flownn.h"
#include "disa/mar.h"
#include "disa/safetensors.h"

#define FLOWAR_MAX_SCALES 16
// class_emb has 1000 + 1 rows in every FlowAR (hard-coded officially); the last is the
// null class of classifier-free guidance.
#define FLOWAR_CLASS_ROWS 1001
#define FLOWAR_UNCOND_LABEL 1000
// Between scales the tokens go through a 16 x 16 grid (bicubic up, area down), and RoPE
// stretches every grid to 16 positions: both are constants of the official code.
#define FLOWAR_INTERP_SIZE 16
// The official sampler draws 16 noise channels per token.
#define FLOWAR_TOKEN_DIM 16

typedef struct flowar_config {
    int img_size, vae_stride, patch_size, vae_embed_dim;
    int enc_dim, enc_depth, enc_heads;
    int dec_dim, dec_depth, dec_heads;
    double mlp_ratio;
    int buffer_size, class_num;
    int diffloss_d, diffloss_w;
    int cross;                         // 1: Block_v2 (Attn-CrossAttn-MLP) head, 0: Block_v1
    int n_scales;
    int scale[FLOWAR_MAX_SCALES];      // grid side of each scale
    float norm_eps;
    tokenizer_kind tokenizer;          // KL-16, the only one (FlowAR decodes with MAR's)
    // derived
    int seq_h;                         // img_size / vae_stride / patch_size = scale[n_scales-1]
    int seq_len;                       // sum of scale^2: rows of the whole sequence
    int start[FLOWAR_MAX_SCALES + 1];  // first row of each scale; start[n_scales] = seq_len
    int token_dim;                     // vae_embed_dim * patch_size^2 (16)
    int enc_hidden, dec_hidden;        // SwiGLU widths int(dim * mlp_ratio * 2 / 3.)
    int head_heads, head_hidden;       // diffloss_w // 64 heads, SwiGLU width of the head
} flowar_config;

// Parse and validate the config JSON (strict JSON, json.h; keys other than
// flowar_config_keys are refused); `label` (file name) prefixes every message.
// DISA_EINVAL when the config names another format (a file of another model family),
// DISA_EFORMAT / DISA_ERANGE when it is malformed or out of range.
int flowar_config_parse(flowar_config *c, const char *json, const char *label);
extern const char *const flowar_config_keys[];  // NULL-terminated
// The config as the JSON the loader reads back.
const char *flowar_config_to_json(const flowar_config *c, char *buf, int n);
// Official presets flowar_small / flowar_large / flowar_huge (models/flowar.py, with the
// README's --diffloss_d / --diffloss_w) at 256 x 256; 0 or DISA_EINVAL naming them.
int flowar_config_preset(flowar_config *c, const char *name);

// models/flowar.py Block: norm1 and norm2 are RMSNorms without weight.
typedef struct flowar_block {
    const float *qkv_w, *qkv_b;      // attn.qkv.{weight (3d, d), bias (3d)}
    const float *proj_w, *proj_b;    // attn.proj.{weight (d, d), bias (d)}
    const float *freqs;              // attn.rope.freqs (hd/4)
    const float *fc1g_w, *fc1g_b;    // mlp.fc1_g.{weight (h, d), bias (h)}
    const float *fc1x_w, *fc1x_b;    // mlp.fc1_x.{weight (h, d), bias (h)}
    const float *fc2_w, *fc2_b;      // mlp.fc2.{weight (d, h), bias (d)}
    const float *ada_w, *ada_b;      // ada_lin.1.{weight (6d, d), bias (6d)}
} flowar_block;

// flownet.res_blocks.{i}: Block_v1 uses ada_*, Block_v2 the cross-attention, its norms
// and ada_attn_* / ada_mlp_*. norm1, norm2 (v1), norm3 (v2) have no weight.
typedef struct flowhead_block {
    const float *qkv_w;                     // attn.qkv.weight (3w, w), no bias
    const float *proj_w, *proj_b;           // attn.proj.{weight (w, w), bias (w)}
    const float *freqs;                     // attn.rope.freqs (hd/4)
    const float *fc1g_w, *fc1g_b;           // mlp.fc1_g.{weight (h, w), bias (h)}
    const float *fc1x_w, *fc1x_b;           // mlp.fc1_x.{weight (h, w), bias (h)}
    const float *fc2_w, *fc2_b;             // mlp.fc2.{weight (w, h), bias (w)}
    const float *ada_w, *ada_b;             // v1 ada_lin.{weight (6w, w), bias (6w)}
    const float *q_w;                       // v2 crossattn.q.weight (w, w)
    const float *kv_w;                      // v2 crossattn.kv.weight (2w, z)
    const float *xproj_w, *xproj_b;         // v2 crossattn.proj.{weight (w, w), bias (w)}
    const float *xfreqs;                    // v2 crossattn.rope.freqs (hd/4)
    const float *n21_w;                     // v2 norm2_1.weight (w)
    const float *n22_w;                     // v2 norm2_2.weight (z)
    const float *ada_attn_w, *ada_attn_b;   // v2 ada_lin_attn.{weight (3w, w), bias (3w)}
    const float *ada_mlp_w, *ada_mlp_b;     // v2 ada_lin_mlp.{weight (3w, w), bias (3w)}
} flowhead_block;

// flownet (SimpleTransformerAdaLN): velocity of C-channel tokens, width w, condition
// z_dim, `depth` blocks, w / 64 heads.
typedef struct flowhead {
    int C, w, z_dim, depth, cross, heads, hidden;
    float eps;
    const float *t0_w, *t0_b;        // time_embed.mlp.0.{weight (w, 256), bias (w)}
    const float *t2_w, *t2_b;        // time_embed.mlp.2.{weight (w, w), bias (w)}
    const float *cond_w, *cond_b;    // cond_embed.{weight (w, z), bias (w)}
    const float *in_w, *in_b;        // input_proj.{weight (w, C), bias (w)}
    flowhead_block *blocks;          // [depth]
    const float *fada_w, *fada_b;    // final_layer.adaLN_modulation.1.{weight (2w, w), bias (2w)}
    const float *flin_w, *flin_b;    // final_layer.linear.{weight (C, w), bias (C)}
    rope2d rope;                     // self- and cross-attention tables (flowhead_prepare)
} flowhead;

typedef struct flowar_model {
    flowar_config cfg;
    st_file st;
    const float *class_emb;                 // class_emb.weight (1001, E)
    const float *z_proj_w, *z_proj_b;       // z_proj.{weight (E, C), bias (E)}
    const float *z_ln_w;                    // z_proj_ln.weight (E)
    const float *enc_pos;                   // encoder_pos_embed_learned (1, seq_len, E)
    flowar_block *enc;                      // encoder_blocks.{i} [enc_depth]
    const float *enc_norm_w;                // encoder_norm.weight (E)
    const float *dec_embed_w, *dec_embed_b; // decoder_embed.{weight (D, E), bias (D)}
    const float *dec_pos;                   // decoder_pos_embed_learned (1, seq_len, D)
    flowar_block *dec;                      // decoder_blocks.{i} [dec_depth]
    const float *dec_norm_w;                // decoder_norm.weight (D)
    const float *diff_pos;                  // diffusion_pos_embed_learned (1, seq_len, D)
    flowhead head;                          // flownet.*
    rope2d rope_enc, rope_dec;              // tables for every scale's grid (flowar_prepare)
    float *gen;                             // generated weights (flowar_generate), else NULL
} flowar_model;

// Open `path`, parse its config, bind every tensor (all missing or mis-shaped ones are
// listed in one message) and prepare the RoPE tables. The model owns the mapping until
// flowar_close. A MAR file (or any other format) is refused naming its format, with
// DISA_EINVAL; a missing file gives DISA_ENOTFOUND, a damaged one another code.
int flowar_open(flowar_model *m, const char *path);
// Frees everything: also of a model that holds a config only, or generated weights.
void flowar_close(flowar_model *m);
// The full list of tensors (official names, shapes) for m->cfg, with dst pointers into m.
// Allocates m's block arrays; *tab and *names are the caller's to free.
int flowar_tensor_table(flowar_model *m, st_bind_entry **tab, char **names, int *count);
// After binding: check that every block holds the same RoPE frequencies and build the
// tables of every scale's grid (transformer and head). `label` names the source.
int flowar_prepare(flowar_model *m, const char *label);
// Frees what flowar_tensor_table, flowar_prepare and flowar_generate allocated (not the
// mapping).
void flowar_release(flowar_model *m);

// A model of config c with generated weights held in memory (for tests and benchmarks of
// full-size shapes: FlowAR-H is 7.7 GB in float32): Linear weights uniform in the Xavier
// range, RMSNorm gains 1 +- 0.05, everything else +- 0.02 (the deterministic generator of
// dgen.h, seeded by `seed` and the tensor's position), and the RoPE frequency buffers
// computed as rope.py does. Release with flowar_close. DISA_ENOMEM names the size.
int flowar_generate(flowar_model *m, const flowar_config *c, uint64_t seed);
// The same weights written to `path` (F32, official names, the config in the metadata;
// atomic). *params (may be NULL) receives the number of values.
int flowar_write_generated(const flowar_config *c, uint64_t seed, const char *path, size_t *params);

// Key/value caches of every transformer block and the adaLN vectors of the current
// class embeddings: the state of one sample_tokens between scales.
typedef struct flowar_cache {
    int max_b2;     // images the buffers hold
    int B2;         // images of the current sample
    int rows;       // rows filled per image
    int cap;        // rows per image (seq_len)
    int blocks, d;
    float *k, *v;   // [blocks, max_b2, cap, d]: encoder blocks, then decoder blocks
    float *ada;     // [blocks, max_b2, 6d]: ada_lin(SiLU(class embedding))
} flowar_cache;

int flowar_cache_init(flowar_cache *c, const flowar_config *cfg, int max_b2);
void flowar_cache_free(flowar_cache *c);
// Start a sample of B2 images with class embeddings cls [B2, E]: empty caches, and every
// block's ada_lin of the embeddings (they condition every scale).
void flowar_cache_begin(const flowar_model *m, flowar_cache *c, const float *cls, int B2);

// cls [B2, E] = class_emb rows: labels[b] (-1: the null class) for the first B images,
// then, with cfg != 0, the null class for B more.
void flowar_class_rows(const flowar_model *m, float *cls, const int *labels, int B, int cfg);

// Scratch bytes flowar_forward_scale needs for B2 images at the largest scale.
size_t flowar_forward_scratch_bytes(const flowar_config *c, int B2);

// One scale of the transformer (forward_mae_encoder + forward_mae_decoder in evaluation
// mode): x [B2, N, E] the scale's input rows (scale 0: the class embedding; later: z_proj
// of the interpolated tokens), N = scale[s]^2; z [B2, N, D] the decoder output plus
// diffusion_pos_embed_learned. Scales must come in order 0, 1, ... after
// flowar_cache_begin; each appends its keys and values. `poll` (may be NULL) runs after
// every block; non-zero stops with DISA_ECANCELED. Otherwise fails only when the arena
// is too small (DISA_ENOMEM) or a scale comes out of order (DISA_EINVAL).
typedef int (*flowar_poll_fn)(void *ctx);
int flowar_forward_scale(const flowar_model *m, arena *a, flowar_cache *kv, float *z, const float *x, int s,
                         flowar_poll_fn poll, void *poll_ctx);

// flow head -------------------------------------------------------------------

// Sizes of a head; allocates the block array (flowhead_free releases it and the tables).
int flowhead_init(flowhead *h, int C, int w, int z_dim, int depth, int cross);
void flowhead_free(flowhead *h);
// Add the head's tensors to a binding table under `prefix` ("flownet." in a model).
void flowhead_table(st_table *t, flowhead *h, const char *prefix);
// Number of tensors flowhead_table adds.
int flowhead_table_count(const flowhead *h);
// After binding: equal RoPE frequencies in every block, tables for grids[0..n-1].
int flowhead_prepare(flowhead *h, const int *grids, int n, const char *label);

// The head's time index: (t * 1000).long() of the float32 time, as the official forward
// computes it (float32 product, truncation): 0.7 -> 700.
int64_t flowhead_time_index(double t);

// What stays fixed over a scale's flow steps, for R = images * N rows of condition
// z [R, z_dim]: c [R, w] = cond_embed(z) and, for Block_v2 heads, every block's
// cross-attention keys and values kv [depth, R, 2w] (crossattn.kv(norm2_2(z)), RoPE on
// the keys). kv is unused (may be NULL) for Block_v1. Scratch from `a`.
size_t flowhead_condition_scratch_bytes(const flowhead *h, int R);
int flowhead_condition(const flowhead *h, arena *a, float *c, float *kv, const float *z, int images, int N);

size_t flowhead_scratch_bytes(const flowhead *h, int images, int N);
// One network evaluation: out [R, C] = velocity of x [R, C] at time index t_index for
// `images` images of N tokens (R = images * N), with c and kv from flowhead_condition
// (their first R rows; kv blocks kv_block floats apart). Fails only when the arena is
// too small.
int flowhead_forward(const flowhead *h, arena *a, float *out, const float *x, int64_t t_index, const float *c,
                     const float *kv, size_t kv_block, int images, int N);

#endif
