// decode.h: from a sampler's latents to PNGs, for disa-gen's units and disa-sample
// alike: the latent [B, C, H, W] (family.h) is the image itself for pixel-space models
// or goes through the KL-16 decoder (vae.h); then the official conversion to uint8
// (image_to_u8) and one PNG per image with its recipe in tEXt.
#ifndef DISA_DECODE_H
#define DISA_DECODE_H
#include <stddef.h>
#include <stdint.h>

#include "disa/arena.h"
#include "disa/family.h"
#include "disa/vae.h"

// Work memory of decoding: the VAE's scratch and the decoded images, sized once for the
// largest batch and latent it will see (decode_sizes of each), reused for every batch.
typedef struct decoder {
    arena scratch;
    float *img;           // [B, C, H, W] the decoded image in [-1, 1]
    size_t img_floats;
} decoder;

// Height, width and channels of the images of latents `latent` through v (NULL for
// pixel-space latents).
void decode_geometry(const family_info *latent, const vae_model *v, int *H, int *W, int *C);
// The work memory decoding B images of `latent` through v needs.
void decode_sizes(const family_info *latent, const vae_model *v, int B, size_t *scratch_bytes, size_t *img_floats);
// DISA_ENOMEM; decoder_free is safe either way.
int decoder_init(decoder *d, size_t scratch_bytes, size_t img_floats);
void decoder_free(decoder *d);
// pix [B, H, W, C] uint8 of latents [B, C, h, w] (the images themselves for pixel-space
// models; a KL-16 latent needs v, else DISA_EINVAL). *flops gets the FLOPs the decode
// counted (may be NULL).
int decoder_run(decoder *d, uint8_t *pix, const float *latent, int B, const family_info *fi, const vae_model *v,
                uint64_t *flops);
// The FLOPs of decoding one image (0 for pixel-space latents), as decoder_run counts them.
double decode_flops(const family_info *latent, const vae_model *v);

// The recipe of one image, each PNG's tEXt: job (omitted when NULL), index, class, seed,
// sampling.
typedef struct png_recipe {
    const char *job;
    const char *sampling;
    uint64_t seed;
} png_recipe;

// DIR/NNNNN.png for image first + b of pix [B, H, W, C] (each written atomically, the
// folder fsynced once after the last), with labels[b] as its class.
int decode_write_pngs(const char *dir, const uint8_t *pix, int B, int H, int W, int C, int first, const int *labels,
                      const png_recipe *r);

#endif
