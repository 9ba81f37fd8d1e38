// xar.h: the xAR transformer (next-X prediction: a whole group of tokens per AR step,
// the transformer itself being the flow-matching velocity network), loaded from
// safetensors with the official state_dict names and the architecture in the "config"
// metadata entry (JSON, format "disa-xar-1").
//
// Mirrors Qinyu-Allen-Zhao/DiSA xAR_DiSA/models/xar.py (xAR.sample_inference,
// forward_mae_encoder, forward_mae_decoder, Block, Attention with its key/value cache,
// RMSNorm, TimestepEmbedder) and models/rope.py (VisionRotaryEmbeddingFast).
//
// Token layout: the seq_h x seq_h token grid is cut into `clusters` groups (official: 4,
// the 2 x 2 quadrants of 8 x 8 tokens); AR step s samples group s. Inside the
// transformer tokens are in group order (group-major, raster order inside a group):
// position p belongs to group p / G (G = seq_len / clusters), and attention is
// block-causal over groups.
#ifndef DISA_XAR_H
#define DISA_XAR_H
#include "disa/arena.h"
#include "disa/mar.h"
#include "disa/safetensors.h"

typedef struct xar_config {
    int img_size, vae_stride, patch_size, vae_embed_dim;
    int enc_dim, enc_depth, enc_heads;
    int dec_dim, dec_depth, dec_heads;
    double mlp_ratio;
    int class_num;       // labels 0..class_num-1; class_num is the unconditional label
    int clusters;        // groups = AR steps; a square, sqrt(clusters) dividing seq_h
    float norm_eps;
    tokenizer_kind tokenizer;
    // derived
    int seq_h, seq_len, token_dim;  // token_dim = vae_embed_dim * patch_size^2
    int group;                      // G = seq_len / clusters tokens per group
    int cluster_h;                  // sqrt(clusters)
    int enc_hidden, dec_hidden;     // int(dim * mlp_ratio * 2 / 3.), the SwiGLU width
} xar_config;

// Parse and validate the config JSON (strict JSON, json.h; a key not in xar_config_keys
// is refused); `label` (file name) prefixes every message.
int xar_config_parse(xar_config *c, const char *json, const char *label);
extern const char *const xar_config_keys[];  // NULL-terminated
// The config as the JSON the loader reads back.
const char *xar_config_to_json(const xar_config *c, char *buf, int n);
// Write `path`: a model of config c with generated weights (st_write_generated: tests and
// benchmarks at full-size shapes); *n_values (may be NULL) the values written.
int xar_write_generated(const xar_config *c, uint64_t seed, const char *path, size_t *n_values);
// Preset configs of the official models (xar_base, xar_large, xar_huge) at 256x256 with
// the KL-16 tokenizer; 0 or DISA_EINVAL naming the accepted presets.
int xar_config_preset(xar_config *c, const char *name);

// Block weights. norm1 and norm2 are RMSNorms without weights.
typedef struct xar_block {
    const float *qkv_w, *qkv_b;      // attn.qkv.{weight (3d, d), bias (3d)}
    const float *proj_w, *proj_b;    // attn.proj.{weight (d, d), bias (d)}
    const float *fc1_g_w, *fc1_g_b;  // mlp.fc1_g.{weight (h, d), bias (h)}
    const float *fc1_x_w, *fc1_x_b;  // mlp.fc1_x.{weight (h, d), bias (h)}
    const float *fc2_w, *fc2_b;      // mlp.fc2.{weight (d, h), bias (d)}
    const float *ada_w, *ada_b;      // ada_lin.1.{weight (6d, d), bias (6d)}
} xar_block;

typedef struct xar_model {
    xar_config cfg;
    st_file st;
    const float *class_emb;               // class_emb.weight (class_num + 1, E)
    const float *t0_w, *t0_b;             // time_embed.mlp.0.{weight (E, 256), bias (E)}
    const float *t2_w, *t2_b;             // time_embed.mlp.2.{weight (E, E), bias (E)}
    const float *z_proj_w, *z_proj_b;     // z_proj.{weight (E, C), bias (E)}
    const float *z_ln_w;                  // z_proj_ln.weight (E)
    const float *enc_pos;                 // encoder_pos_embed_learned (1, S, E), group order
    xar_block *enc;                       // encoder_blocks.{i} [enc_depth]
    const float *enc_norm_w;              // encoder_norm.weight (E)
    const float *dec_embed_w, *dec_embed_b; // decoder_embed.{weight (D, E), bias (D)}
    const float *dec_pos;                 // decoder_pos_embed_learned (1, S, D), group order
    xar_block *dec;                       // decoder_blocks.{i} [dec_depth]
    const float *dec_norm_w;              // decoder_norm.weight (D)
    const float *pred_w, *pred_b;         // pred.{weight (C, D), bias (C)}
    // RoPE tables [S, head_dim] in group order, computed from the config when opened
    // (the official attn.rope.freqs_cos/freqs_sin buffers): owned by the model.
    float *rope_enc_cos, *rope_enc_sin, *rope_dec_cos, *rope_dec_sin;
} xar_model;

// Open `path`, parse its config, bind every tensor (all missing or mis-shaped ones are
// listed in one message), build the RoPE tables. The model owns the mapping and the
// tables until xar_close.
int xar_open(xar_model *m, const char *path);
// Frees the tables and the mapping: also of a model that holds a config only, or whose
// table was built without a file.
void xar_close(xar_model *m);
// The full list of tensors (official names, shapes) for m->cfg, with dst pointers into m.
// Allocates m's block arrays; *tab and *names are the caller's to free.
int xar_tensor_table(xar_model *m, st_bind_entry **tab, char **names, int *count);
// Build the RoPE tables of m->cfg (xar_open does it; loaders that bind tensors
// themselves call it). DISA_ENOMEM.
int xar_rope_init(xar_model *m);
// Free what xar_tensor_table and xar_rope_init allocated, without touching the mapping.
void xar_model_free_tables(xar_model *m);

// ----------------------------------------------------------------------------
// key/value cache

// Keys (after RoPE) and values of every encoder and decoder block for up to max_seq
// sequences: [layers][max_seq][seq_len][2 d] (k | v). Position p of a sequence is row p,
// so the rows of the groups sampled so far are a prefix. `rows` is that prefix length,
// the same for every sequence (the official Attention.k/.v after the first call of an
// AR step: all groups before the current one).
typedef struct xar_kv {
    float *data;
    int layers, max_seq, seq_len, width;
    int rows;
} xar_kv;
// DISA_ENOMEM naming the bytes.
int xar_kv_init(xar_kv *kv, const xar_config *c, int max_seq);
void xar_kv_free(xar_kv *kv);
// Bytes xar_kv_init allocates.
size_t xar_kv_bytes(const xar_config *c, int max_seq);

// ----------------------------------------------------------------------------
// forward

// Time index of a flow time t as the official network gets it: int(float32(t) * 1000)
// in float32 (TimestepEmbedder then embeds that integer).
int xar_time_index(double t);

// Scratch bytes xar_forward needs for N sequences of R rows.
size_t xar_forward_scratch_bytes(const xar_config *c, int N, int R);

// One evaluation of the velocity network (xAR.sample_inference) for N sequences at AR
// step `step` (0..clusters-1), sequence n using cache slot n:
//   x [N, R, C]: R = G (the noisy group `step`) or R = 2 G (the clean group step-1, then
//     the noisy group: the first call of an AR step s >= 1);
//   labels [N]: class indices, class_num = unconditional;
//   tidx [R / G]: time index of each group of rows (0 for the clean group);
//   update: 1 on the first call of an AR step (the official update_cache): afterwards the
//     cache holds every group before `step`; 0 leaves it unchanged.
// The rows are positions p0..p0+R-1 with p0 = (step + 1) G - R, and the cache must hold
// exactly p0 rows. Writes the velocity of the noisy group, v [N, G, C].
// Scratch comes from `a` and is released before returning. `poll` (may be NULL) runs
// after every block; non-zero stops with DISA_ECANCELED. Fails with DISA_EINVAL (cache
// state, sizes or a label out of range, naming them) or when the arena is too small.
int xar_forward(const xar_model *m, xar_kv *kv, arena *a, float *v, const float *x, int R, const int *labels,
                const int *tidx, int step, int update, int N, mar_poll_fn poll, void *poll_ctx);

// Group order <-> raster order of [B, seq_len, C] token rows (xAR clusterify /
// unclusterify as a permutation of rows): raster[pos(p)] = group[p].
void xar_group_to_raster(float *raster, const float *group, const xar_config *c, int B);
// The raster position of group-order position p.
int xar_raster_pos(const xar_config *c, int p);

#endif
