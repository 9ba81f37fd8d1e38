// decode.c: latents to PNGs (include/disa/decode.h).
#include "disa/decode.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void decode_geometry(const family_info *latent, const vae_model *v, int *H, int *W, int *C) {
    if (latent->latent != LATENT_KL16 || !v) {
        *H = latent->H, *W = latent->W, *C = latent->C;
    } else {
        *H = latent->H * vae_upscale(&v->cfg);
        *W = latent->W * vae_upscale(&v->cfg);
        *C = v->cfg.out_ch;
    }
}

void decode_sizes(const family_info *latent, const vae_model *v, int B, size_t *scratch_bytes, size_t *img_floats) {
    *scratch_bytes = *img_floats = 0;
    if (latent->latent != LATENT_KL16 || !v) return;
    int H, W, C;
    decode_geometry(latent, v, &H, &W, &C);
    *scratch_bytes = vae_decode_scratch_bytes(&v->cfg, B, latent->H, latent->W);
    *img_floats = (size_t)B * C * H * W;
}

int decoder_init(decoder *d, size_t scratch_bytes, size_t img_floats) {
    memset(d, 0, sizeof *d);
    int rc;
    if (scratch_bytes && (rc = arena_init(&d->scratch, scratch_bytes, "decode")) != 0) return rc;
    d->img_floats = img_floats;
    if (img_floats && !(d->img = malloc(sizeof(float) * img_floats)))
        return disa_err(DISA_ENOMEM, "out of memory for decoded images");
    return 0;
}

void decoder_free(decoder *d) {
    arena_free(&d->scratch);
    free(d->img);
    memset(d, 0, sizeof *d);
}

int decoder_run(decoder *d, uint8_t *pix, const float *latent, int B, const family_info *fi, const vae_model *v,
                uint64_t *flops) {
    int H, W, C;
    decode_geometry(fi, v, &H, &W, &C);
    uint64_t f0 = blas_flops();
    const float *img = latent;  // pixel-space: the latent is the image
    if (fi->latent == LATENT_KL16) {
        if (!v) return disa_err(DISA_EINVAL, "a KL-16 model needs its VAE decoder");
        if ((size_t)B * C * H * W > d->img_floats)
            return disa_err(DISA_EINTERNAL, "decode: %d images of %dx%dx%d, decoder made for %zu floats", B, C, H, W,
                            d->img_floats);
        arena_reset(&d->scratch, 0);
        int rc = vae_decode(v, &d->scratch, d->img, latent, B, fi->H, fi->W);
        if (rc) return rc;
        img = d->img;
    }
    image_to_u8(pix, img, B, C, H, W);
    if (flops) *flops = blas_flops() - f0;
    return 0;
}

double decode_flops(const family_info *latent, const vae_model *v) {
    return latent->latent == LATENT_KL16 && v ? vae_decode_flops(&v->cfg, latent->H, latent->W) : 0;
}

int decode_write_pngs(const char *dir, const uint8_t *pix, int B, int H, int W, int C, int first, const int *labels,
                      const png_recipe *r) {
    char path[4200], idx[16], cls[16], sd[32];
    snprintf(sd, sizeof sd, "%llu", (unsigned long long)r->seed);
    for (int b = 0; b < B; b++) {
        snprintf(path, sizeof path, "%s/%05d.png", dir, first + b);
        snprintf(idx, sizeof idx, "%d", first + b);
        snprintf(cls, sizeof cls, "%d", labels[b]);
        const image_kv with_job[] = {{"job", r->job}, {"index", idx}, {"class", cls}, {"seed", sd},
                                     {"sampling", r->sampling}};
        const image_kv *kv = r->job ? with_job : with_job + 1;
        int rc = png_write_u8_unsynced_dir(path, pix + (size_t)b * H * W * C, W, H, C, kv, r->job ? 5 : 4);
        if (rc) return rc;
    }
    // One folder fsync for the unit's renames (not one per image): the unit enters the
    // ledger only after this returns.
    return png_sync_dir(dir);
}
