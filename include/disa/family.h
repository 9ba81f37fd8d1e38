// family.h: the model-family seam (DESIGN §11).
//
// MAR, xAR and FlowAR share the run: class labels in, latents out, decoded, written,
// scored. Their AR loops differ too much to share one (MAR: random-order masked AR with
// a diffusion head per step; xAR: next-X groups through a block-causal transformer with
// a key/value cache; FlowAR: scale-wise with a flow head per scale), so the seam sits at
// the sampler: each family is one table of the operations below, and src/run, src/mpi,
// disa-gen, disa-sample, resume and the metrics use only the table. MAR
// (src/sample/mar_family.c over model/mar.c and sample/ar.c), xAR
// (src/sample/xar_family.c over model/xar.c and sample/xar_sample.c) and FlowAR
// (src/sample/flowar_family.c over model/flowar.c and sample/flowar_sample.c) fill it.
//
// Adding a family: write its model and sampler with their own structs (nothing here
// assumes diffusion tables, a mask schedule or diff_* flags), fill a `family` table
// (family_kit.h writes the entries every family fills alike) and add it to the list in
// src/sample/family.c. Its model files declare it by the "format" of their safetensors
// "config" metadata.
//
// What every family shares, outside its table:
// - `precision` (fp32 | bf16 | auto), a sampling key of every family: what the opened
//   model is prepared for (`prepare`; bf16.h: matmul inputs bf16, fp32 accumulation and
//   statistics), and the KL-16 decoder with it (vae_prepare); feature nets stay fp32;
// - the randomness: image i of a run draws from Philox streams keyed by (seed, i)
//   (rng.h), so it is the same image whatever its batch, unit and rank;
// - the latent: [C, H, W] per image, either the image itself in [-1, 1] (pixel-space
//   models) or KL-16 latents for the VAE decoder (vae.h).
#ifndef DISA_FAMILY_H
#define DISA_FAMILY_H
#include <stddef.h>
#include <stdint.h>

// Room for any family's sampling settings inside a job (job.h), which moves between
// ranks as bytes: a family's params struct is plain data of at most this size.
#define FAMILY_PARAMS_BYTES 256

typedef struct family_params {
    _Alignas(8) unsigned char bytes[FAMILY_PARAMS_BYTES];
} family_params;

typedef enum { LATENT_PIXELS, LATENT_KL16, LATENT_KIND_COUNT } latent_kind;
const char *latent_kind_name(latent_kind k);  // "pixels", "kl16"

// What the run needs to know about an opened model.
typedef struct family_info {
    int class_num;        // labels 0..class_num-1, -1 = unconditional
    latent_kind latent;   // what the sampler's latent is
    int C, H, W;          // the latent of one image
    int token_dims[2];    // the sampler's own output per image (MAR: seq, token_dim),
                          // written as disa-sample's tokens.npy
} family_info;

// Per-phase accounting of sampler runs (added to, never reset by the sampler).
typedef struct sample_stats {
    double t_transformer, t_head, t_other;   // seconds: the AR step's transformer, the head
                                             // (diffusion or flow) steps, the rest
    uint64_t flops_transformer, flops_head;  // 2 per multiply-add (blas.h counts them)
    uint64_t head_row_steps;                 // rows x head steps (NFE summed over tokens)
    uint64_t tokens;                         // tokens sampled
    int ar_steps;
} sample_stats;

// The end of an AR step that sampled `tokens` tokens with `steps` head steps each.
void sample_stats_step(sample_stats *st, uint64_t tokens, int steps);

// The FLOP model of sampling per image, for a batch of B (equal to the engine's count).
typedef struct sample_flops {
    double transformer, head;  // FLOPs per image
    double nfe_per_token;      // mean head steps per token
    int ar_steps;
} sample_flops;

// Called from inside a sampler run (at least once per transformer block and head step):
// non-zero stops the run with DISA_ECANCELED.
typedef int (*sample_poll_fn)(void *ctx);

typedef struct family family;
struct family {
    const char *name;          // "mar": the family's name in messages and tables
    const char *format;        // the config "format" its model files carry: "disa-mar-1"
    const char *const *keys;   // its sampling keys, the official flag names, NULL-ended
    const char *const *presets; // its preset names (official model sizes), NULL-ended

    // Model: open a file (every problem named, see the family's loader) / a config preset
    // without weights, for FLOP tables (DISA_ENOTFOUND: not a preset of this family).
    int (*open)(void **model, const char *path);
    // Prepare an opened model for a precision (precision_kind: FP32, or BF16, which packs
    // its weights once; AUTO resolves first). A model serves samplers of the precision it
    // is prepared for. DISA_EINVAL when bf16 cannot run here (the message says why).
    int (*prepare)(void *model, int precision);
    int (*preset)(void **model, const char *name);
    // A config without weights from the JSON a model file carries as "config" (messages
    // prefixed by `label`), for FLOP tables and random weights.
    int (*config)(void **model, const char *json, const char *label);
    void (*close)(void *model);
    void (*info)(const void *model, family_info *out);
    // One line for logs: the architecture ("seq 256 x 16, enc 12x768, ...").
    const char *(*describe)(const void *model, char *buf, int n);
    // Write a model file of this model's config with generated weights (st_write_generated:
    // tests and benchmarks at full-size shapes); *n_values (may be NULL) the values written.
    int (*write_random)(const void *model, const char *path, uint64_t seed, size_t *n_values);

    // Sampling settings in a family_params blob, under the official flag names:
    // defaults; one key (DISA_ENOTFOUND for a key the family does not have, DISA_EINVAL
    // with a message naming --key, the value and what is accepted); the whole check; the
    // "key=value ..." text that goes into PNG tEXt, run.json and the resume identity.
    void (*params_init)(family_params *p);
    int (*params_set)(family_params *p, const char *key, const char *value);
    int (*params_check)(const family_params *p);
    const char *(*params_str)(const family_params *p, char *buf, int n);
    // Whether p's settings run at a resolved precision (FP32 or BF16): DISA_EINVAL with a
    // message naming the setting when not; from_auto: the precision was "auto" (the
    // message says what it resolved to). NULL: every setting runs at both.
    int (*params_check_precision)(const family_params *p, int precision, int from_auto);
    // 1: the family runs in fp32 only (params_check_precision refuses bf16 and says so);
    // "auto" resolves to fp32 for it.
    int fp32_only;

    // Sampler for batches of up to max_batch images of one model and setting, the model
    // prepared for `precision` (AUTO: for what AUTO resolves to).
    int (*sampler_new)(void **s, const void *model, const family_params *p, int precision, int max_batch);
    // tokens [B, token_dims] of images labels[B] whose streams are keyed by (seed,
    // index[b]); stats added to *st; poll may be NULL.
    int (*sampler_run)(void *s, float *tokens, const int *labels, uint64_t seed, const uint32_t *index, int B,
                       sample_stats *st, sample_poll_fn poll, void *poll_ctx);
    void (*sampler_delete)(void *s);
    // The latent [B, C, H, W] of tokens [B, token_dims] (MAR's unpatchify).
    void (*to_latent)(const void *model, float *latent, const float *tokens, int B);

    // The FLOP model per image of sampler_run over batches of B under p.
    int (*flops)(sample_flops *out, const void *model, const family_params *p, int B);
};

// The families, in the order of this list; a family's index is stable within a build
// (jobs carry it between ranks).
int family_count(void);
const family *family_at(int index);
int family_index(const family *f);
// The family of a model file: the one whose format its config declares. A file that
// cannot be read or declares no known format gets the first family (MAR), whose loader
// then names what is wrong with it.
const family *family_for_file(const char *path);
// The family of a config JSON: the one whose format it declares, else the first, as above.
const family *family_for_config(const char *json);
// The family with a preset of that name (open with ->preset), or NULL.
const family *family_for_preset(const char *name);
// Every family's presets for messages: "mar_base, mar_large, ..., xar_huge".
const char *family_presets_str(char *buf, int n);

// The shared sampling key: "precision" (fp32 | bf16 | auto) into *precision (a
// precision_kind, bf16.h). DISA_ENOTFOUND for another key, DISA_EINVAL naming the value.
int family_precision_set(int *precision, const char *key, const char *value);
// Any family's key or "precision": the command-line flags a program may pass on.
int family_is_sampling_key(const char *key);
// One key of family f or "precision" (see params_set): DISA_ENOTFOUND without a message
// for a key no family has, DISA_EINVAL "'--KEY' does not apply to NAME models" for
// another family's key.
int family_sampling_set(const family *f, family_params *p, int *precision, const char *key, const char *value);
// params_str, plus " precision=bf16" for bf16 (" precision=auto" while unresolved; fp32
// adds nothing, so the identity of runs started before the key existed holds).
const char *family_sampling_str(const family *f, const family_params *p, int precision, char *buf, int n);
// f's params_check_precision (0 for a family without one).
int family_precision_check(const family *f, const family_params *p, int precision, int from_auto);
// precision_resolve for a model of family f: "auto" is fp32 for an fp32-only family.
int family_precision_resolve(const family *f, int precision, char *why, int n);
// The known keys of f for messages: "num_iter cfg ... precision".
const char *family_keys_str(const family *f, char *buf, int n);

#endif
