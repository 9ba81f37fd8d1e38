// featnet.c: one interface over the feature networks disa-stats and the run's metric
// stage can use: the FID Inception-v3 (inception.c) and a sequential CNN (seqcnn.c).
#include "disa/metrics.h"
#include "disa/err.h"

#include <stdlib.h>
#include <string.h>

const char *featnet_kind_name(featnet_kind k) {
    return k == FEATNET_INCEPTION ? "inception-v3-compat" : k == FEATNET_SEQCNN ? "sequential-cnn" : "?";
}

// Whether `path` declares the sequential-CNN classifier format (else: the Inception).
static int is_classifier(const char *path, int *is_cnn) {
    st_file st;
    int rc = st_open(&st, path);
    if (rc) return rc;
    const char *cfg = st_meta(&st, "config");
    *is_cnn = cfg && strstr(cfg, "\"disa-classifier-1\"") != NULL;
    st_close(&st);
    return 0;
}

int featnet_open(featnet *f, const char *path) {
    memset(f, 0, sizeof *f);
    int is_cnn, rc = is_classifier(path, &is_cnn);
    if (rc) return rc;
    size_t bytes;
    if (is_cnn) {
        if ((rc = seqcnn_open(&f->cnn, path)) != 0) return rc;
        f->kind = FEATNET_SEQCNN;
        f->feat_dim = f->cnn.feat_dim, f->n_logits = f->cnn.n_classes;
        f->in_c = f->cnn.in_c, f->in_h = f->cnn.in_h, f->in_w = f->cnn.in_w;
        f->batch = 64;
        bytes = seqcnn_scratch_bytes(&f->cnn, f->batch);
    } else {
        if ((rc = inception_open(&f->inc, path)) != 0) return rc;
        f->kind = FEATNET_INCEPTION;
        f->feat_dim = INCEPTION_FEAT, f->n_logits = INCEPTION_LOGITS;
        f->in_c = 3;
        f->batch = 1;  // the forward goes image by image anyway
        bytes = inception_scratch_bytes();
    }
    if ((rc = arena_init(&f->scratch, bytes, "feature net")) != 0) featnet_close(f);
    return rc;
}

int featnet_open_shape(featnet *f, const char *path) {
    memset(f, 0, sizeof *f);
    int is_cnn, rc = is_classifier(path, &is_cnn);
    if (rc) return rc;
    if (is_cnn) return featnet_open(f, path);
    f->kind = FEATNET_INCEPTION;
    f->feat_dim = INCEPTION_FEAT, f->n_logits = INCEPTION_LOGITS;
    f->in_c = 3;
    f->batch = 1;
    f->shape_only = 1;
    return 0;
}

void featnet_close(featnet *f) {
    if (f->kind == FEATNET_SEQCNN) seqcnn_close(&f->cnn);
    else inception_close(&f->inc);
    arena_free(&f->scratch);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

// PIL Image.convert('L') from RGB: ITU-R 601-2 luma in 16-bit fixed point, rounded.
static uint8_t luma(const uint8_t *p) {
    return (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
}

int featnet_run(featnet *f, float *feat, float *logits, const uint8_t *hwc, int n, int H, int W, int C) {
    if (f->shape_only) return disa_err(DISA_EINTERNAL, "feature net opened for its shape only");
    if (C < 1 || C > 4) return disa_err(DISA_EINVAL, "feature net: images with %d channels", C);
    if (f->in_h && (H != f->in_h || W != f->in_w))
        return disa_err(DISA_ESHAPE, "feature net %s takes %dx%d images, got %dx%d", featnet_kind_name(f->kind),
                        f->in_h, f->in_w, H, W);
    size_t per = (size_t)f->in_c * H * W;
    if (mem_reserve(&f->buf, &f->buf_cap, per * f->batch))
        return disa_err(DISA_ENOMEM, "feature net: out of memory for a %dx%d batch", H, W);
    for (int i0 = 0; i0 < n; i0 += f->batch) {
        int b = n - i0 < f->batch ? n - i0 : f->batch;
        for (int i = 0; i < b; i++) {
            const uint8_t *src = hwc + (size_t)(i0 + i) * H * W * C;
            uint8_t *dst = f->buf + (size_t)i * per;
            if (f->in_c == 3) inception_hwc_to_chw(dst, src, H, W, C);
            else
                for (size_t p = 0; p < (size_t)H * W; p++) dst[p] = C >= 3 ? luma(src + p * C) : src[p * C];
        }
        float *fo = feat ? feat + (size_t)i0 * f->feat_dim : NULL, *lo = logits ? logits + (size_t)i0 * f->n_logits : NULL;
        int rc = f->kind == FEATNET_INCEPTION ? inception_forward(&f->inc, &f->scratch, fo, lo, f->buf, b, H, W)
                                              : seqcnn_forward(&f->cnn, &f->scratch, fo, lo, f->buf, b);
        if (rc) return disa_err_wrap(rc, "feature net %s: ", featnet_kind_name(f->kind));
    }
    return 0;
}
