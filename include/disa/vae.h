// vae.h: the KL-16 token decoder (LDM AutoencoderKL, decoder half), DESIGN §8.
//
// Mirrors LTH14/mar models/vae.py: AutoencoderKL.decode = Decoder(post_quant_conv(z)),
// called by engine_mar.py as vae.decode(tokens / 0.2325). Weights are read from a
// safetensors file with the official kl16.ckpt state_dict names (`post_quant_conv.*`,
// `decoder.*`; tools/convert_vae.py makes one) and the architecture in the "config"
// metadata entry, a JSON object:
//
//   {"format": "disa-vae-1", "embed_dim": 16, "z_channels": 16, "ch": 128,
//    "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "out_ch": 3, "resolution": 256,
//    "num_groups": 32, "eps": 1e-6, "latent_scale": 0.2325}
//
// Required: format, embed_dim, ch, ch_mult, num_res_blocks. Defaults: z_channels =
// embed_dim (the official model ties them), out_ch 3, resolution 256 (informational:
// any latent size decodes), num_groups 32, eps 1e-6, latent_scale 0.2325. An optional
// "attn_resolutions" must be empty: the official decoder has attention only in the
// middle block. Every ch * ch_mult[i] must be a multiple of num_groups.
#ifndef DISA_VAE_H
#define DISA_VAE_H
#include <stddef.h>
#include <stdint.h>

#include "disa/arena.h"
#include "disa/bf16.h"
#include "disa/safetensors.h"

#define VAE_MAX_LEVELS 8

typedef struct vae_config {
    int embed_dim;      // channels of the tokens the sampler produces (16)
    int z_channels;     // decoder input channels = post_quant_conv outputs (16)
    int ch;             // base width (128)
    int ch_mult[VAE_MAX_LEVELS];
    int n_levels;       // len(ch_mult) (5); the image is 2^(n_levels-1) times the latent
    int num_res_blocks; // 2: the decoder has num_res_blocks + 1 ResnetBlocks per level
    int out_ch;         // 3
    int resolution;     // 256, the training resolution (kept for reports only)
    int num_groups;     // GroupNorm groups (32)
    float eps;          // GroupNorm eps (1e-6)
    float latent_scale; // 0.2325: the decoder sees tokens / latent_scale
} vae_config;

// The official KL-16 configuration above.
void vae_config_kl16(vae_config *c);
// Parse and validate the config JSON; `label` (the file name) prefixes every message.
// Fails with DISA_EFORMAT (missing/mistyped key, wrong format) or DISA_ERANGE.
int vae_config_parse(vae_config *c, const char *json, const char *label);
// Image side per latent side: 2^(n_levels - 1) (16 for KL-16).
int vae_upscale(const vae_config *c);

// decoder.{mid.block_1, mid.block_2, up.{i}.block.{j}}: ResnetBlock without temb.
typedef struct vae_resblock {
    int cin, cout;
    const float *norm1_w, *norm1_b; // norm1.{weight,bias} (cin)
    const float *conv1_w, *conv1_b; // conv1.{weight (cout, cin, 3, 3), bias (cout)}
    const float *norm2_w, *norm2_b; // norm2.{weight,bias} (cout)
    const float *conv2_w, *conv2_b; // conv2.{weight (cout, cout, 3, 3), bias (cout)}
    const float *nin_w, *nin_b;     // nin_shortcut.{weight (cout, cin, 1, 1), bias (cout)}, only when cin != cout
} vae_resblock;

// decoder.mid.attn_1: AttnBlock, single-head attention over the h*w positions.
typedef struct vae_attn {
    const float *norm_w, *norm_b;   // norm.{weight,bias} (c)
    const float *q_w, *q_b;         // q.{weight (c, c, 1, 1), bias (c)}
    const float *k_w, *k_b;         // k.{weight (c, c, 1, 1), bias (c)}
    const float *v_w, *v_b;         // v.{weight (c, c, 1, 1), bias (c)}
    const float *proj_w, *proj_b;   // proj_out.{weight (c, c, 1, 1), bias (c)}
} vae_attn;

// decoder.up.{i}: num_res_blocks + 1 blocks, then (i > 0) nearest x2 + 3x3 conv.
typedef struct vae_level {
    vae_resblock *block;            // block.{j} [num_res_blocks + 1]
    const float *up_w, *up_b;       // upsample.conv.{weight (c, c, 3, 3), bias (c)}; NULL at level 0
} vae_level;

// The bf16 form (vae.c): packed convolutions and their primitives, made by vae_prepare.
typedef struct vae_bf16 vae_bf16;

typedef struct vae_model {
    vae_config cfg;
    st_file st;                     // the mapping the pointers below point into (when opened from a file)
    const float *pq_w, *pq_b;       // post_quant_conv.{weight (z, embed, 1, 1), bias (z)}
    const float *in_w, *in_b;       // decoder.conv_in.{weight (ch*mult[-1], z, 3, 3), bias}
    vae_resblock mid1, mid2;        // decoder.mid.block_1, decoder.mid.block_2
    vae_attn attn;                  // decoder.mid.attn_1
    vae_level *up;                  // decoder.up.{i} [n_levels]
    const float *norm_out_w, *norm_out_b; // decoder.norm_out.{weight,bias} (ch*mult[0])
    const float *out_w, *out_b;     // decoder.conv_out.{weight (out_ch, ch*mult[0], 3, 3), bias (out_ch)}
    precision_kind precision;       // FP32 after vae_open, BF16 after vae_prepare(BF16)
    vae_bf16 *bf16;                 // the bf16 form when BF16, else NULL
} vae_model;

// Open `path`, parse its config, bind every tensor. All missing or mis-shaped tensors
// are listed in one message, and so are unexpected `post_quant_conv.*`/`decoder.*`
// tensors (a sign the config does not match the weights); other top-level names
// (`encoder.*`, `quant_conv.*`, `loss.*` of a full checkpoint) are ignored. On failure
// nothing stays open. The model owns the mapping until vae_close.
int vae_open(vae_model *m, const char *path);
void vae_close(vae_model *m);

// For callers that bind weights themselves (parity adapter): with m->cfg set, allocate
// the per-level arrays and return the binding table (state_dict name, destination
// field, expected shape). *tab and *names are malloc'd, owned by the caller; the level
// arrays are freed by vae_close. Fails only with DISA_ENOMEM / DISA_EINTERNAL.
int vae_tensor_table(vae_model *m, st_bind_entry **tab, char **names, int *count);

// Prepare m for precision p (AUTO resolves first) and latents of h x w. BF16 packs every
// convolution once for the resolution it runs at (oneDNN's layout, channels-last
// activations) and vae_decode then runs them as bf16 convolutions with fp32
// accumulation, bias and skip connections, GroupNorm and SiLU in fp32, for latents of
// exactly h x w. FP32 drops the bf16 form. 0, or DISA_EINVAL (bf16 cannot run here /
// sizes) or DISA_ENOMEM with a message, m unchanged. One thread at a time.
int vae_prepare(vae_model *m, precision_kind p, int h, int w);

// Arena bytes vae_decode needs for latents of h x w. It does not grow with B: images
// are decoded one after another, because conv2d_forward runs one GEMM per image
// anyway and a batch would multiply the ~110 MB a 256x256 image needs.
size_t vae_decode_scratch_bytes(const vae_config *c, int B, int h, int w);

// FLOPs of decoding one image (convolutions and attention GEMMs), for GFLOPS reports.
double vae_decode_flops(const vae_config *c, int h, int w);

// img = decoder(post_quant_conv(tokens / latent_scale)), the image in the model's
// [-1, 1] range, unclipped (image_to_u8 in image.h makes pixels). H = h * vae_upscale,
// W likewise. The division by latent_scale happens here, so callers pass the tokens
// exactly as the sampler produced them. Scratch comes from `a` and is released before
// returning; fails with DISA_ENOMEM (arena too small, message says by how much) or
// DISA_EINVAL (sizes), leaving img unspecified.
int vae_decode(const vae_model *m, arena *a, float *img /*[B,out_ch,H,W]*/,
               const float *tokens /*[B,embed_dim,h,w]*/, int B, int h, int w);

#endif
