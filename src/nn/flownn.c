// flownn.c: adaLN modulation, gated residuals, SwiGLU, 2-D RoPE and attention against
// key/value rows, for the flow-matching families (their RMSNorm is in norm.c, beside xAR's).
// Mirrors FlowAR_DiSA models/flowar.py (Block.forward's modulation and gates),
// models/rope.py (VisionRotaryEmbeddingFast, rotate_half), timm's SwiGLU and
// F.scaled_dot_product_attention without a mask.
#include "disa/flownn.h"

#include "disa/blas.h"
#include "disa/err.h"
#include "disa/nn.h"
#include "disa/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// adaLN

DISA_VEC
void adaln_modulate(float *x /*[N,C]*/, const float *scale, const float *shift, size_t ld, int group, int N,
                    int C) {
    for (int r = 0; r < N; r++) {
        const float *sc = scale + (size_t)(r / group) * ld, *sh = shift + (size_t)(r / group) * ld;
        float *xr = x + (size_t)r * C;
        for (int j = 0; j < C; j++) xr[j] = xr[j] * (sc[j] + 1.0f) + sh[j];
    }
}

DISA_VEC
void gated_add(float *x /*[N,C]*/, const float *y /*[N,C]*/, const float *gamma, size_t ld, int group, int N,
               int C) {
    for (int r = 0; r < N; r++) {
        float *xr = x + (size_t)r * C;
        const float *yr = y + (size_t)r * C;
        if (!gamma) {
            for (int j = 0; j < C; j++) xr[j] += yr[j];
            continue;
        }
        const float *g = gamma + (size_t)(r / group) * ld;
        for (int j = 0; j < C; j++) xr[j] += yr[j] * g[j];
    }
}

DISA_VEC
void swiglu_gelu_forward(float *out /*[n]*/, const float *g /*[n]*/, const float *u /*[n]*/, size_t n) {
    gelu_forward(out, g, n);
    for (size_t i = 0; i < n; i++) out[i] *= u[i];
}

// ----------------------------------------------------------------------------
// 2-D RoPE

int rope2d_init(rope2d *r, const float *freqs /*[hd/4]*/, int hd, const int *grids, int n) {
    memset(r, 0, sizeof *r);
    if (hd < 4 || hd % 4)
        return disa_err(DISA_EINVAL, "2-D RoPE needs a head dim that is a multiple of 4, got %d", hd);
    int mx = 0;
    for (int i = 0; i < n; i++) {
        if (grids[i] < 1 || grids[i] > 4096)
            return disa_err(DISA_EINVAL, "2-D RoPE grid side %d out of range 1..4096", grids[i]);
        if (grids[i] > mx) mx = grids[i];
    }
    r->hd = hd;
    r->max_ft = mx;
    r->cos_t = calloc((size_t)mx + 1, sizeof(float *));
    r->sin_t = calloc((size_t)mx + 1, sizeof(float *));
    if (!r->cos_t || !r->sin_t) goto oom;
    int half = hd / 2;
    for (int i = 0; i < n; i++) {
        int ft = grids[i];
        if (r->cos_t[ft]) continue;
        size_t cells = (size_t)ft * ft * hd;
        float *c = malloc(sizeof(float) * cells), *s = malloc(sizeof(float) * cells);
        r->cos_t[ft] = c;
        r->sin_t[ft] = s;
        if (!c || !s) goto oom;
        for (int row = 0; row < ft; row++)
            for (int col = 0; col < ft; col++) {
                float *cp = c + ((size_t)row * ft + col) * hd, *sp = s + ((size_t)row * ft + col) * hd;
                for (int j = 0; j < hd; j++) {
                    // torch: arange(ft) / ft (float32 true division), * 16, times the
                    // frequency: three float32 roundings, then cos/sin of that float.
                    int pos = j < half ? row : col;
                    float t = (float)pos / (float)ft * 16.0f;
                    float a = t * freqs[(j % half) / 2];
                    cp[j] = cosf(a);
                    sp[j] = sinf(a);
                }
            }
    }
    return 0;
oom:
    rope2d_free(r);
    return disa_err(DISA_ENOMEM, "2-D RoPE tables: out of memory");
}

void rope2d_free(rope2d *r) {
    for (int i = 0; r->cos_t && i <= r->max_ft; i++) free(r->cos_t[i]);
    for (int i = 0; r->sin_t && i <= r->max_ft; i++) free(r->sin_t[i]);
    free(r->cos_t);
    free(r->sin_t);
    memset(r, 0, sizeof *r);
}

// The rotation of xAR's rope_forward (rope.c), a twin kept on purpose: this one is
// built in DISA_VEC copies, where the compiler may fuse a * c - b * s into one FMA, and
// xAR's at the baseline ISA, where it cannot; one shared loop would change the low bits
// of one family's images.
DISA_VEC
void rope2d_apply(float *x /*[N, ld]*/, size_t ld, const float *cos_t /*[N,hd]*/, const float *sin_t /*[N,hd]*/,
                  int N, int heads, int hd) {
    for (int p = 0; p < N; p++) {
        const float *c = cos_t + (size_t)p * hd, *s = sin_t + (size_t)p * hd;
        for (int h = 0; h < heads; h++) {
            float *xh = x + (size_t)p * ld + (size_t)h * hd;
            for (int i = 0; i < hd; i += 2) {
                // x * cos + rotate_half(x) * sin, rotate_half(x)[2i, 2i+1] = (-x[2i+1], x[2i])
                float a = xh[i], b = xh[i + 1];
                xh[i] = a * c[i] + (-b) * s[i];
                xh[i + 1] = b * c[i + 1] + a * s[i + 1];
            }
        }
    }
}

// ----------------------------------------------------------------------------
// attention against key/value rows

void attention_kv_batch_forward(float *out /*[B*P,d]*/, const float *q, size_t ldq, size_t q_img, const float *k,
                          const float *v, size_t ldkv, size_t kv_img, float *scratch /*[P*T]*/, int B, int P,
                          int T, int d, int heads) {
    int hd = d / heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++) {
            const float *qh = q + (size_t)b * q_img + (size_t)h * hd;
            const float *kh = k + (size_t)b * kv_img + (size_t)h * hd;
            const float *vh = v + (size_t)b * kv_img + (size_t)h * hd;
            float *o = out + (size_t)b * P * d + (size_t)h * hd;
            blas_sgemm(0, 1, P, T, hd, scale, qh, (int)ldq, kh, (int)ldkv, 0.0f, scratch, T);
            softmax_forward(scratch, scratch, P, T);
            blas_sgemm(0, 0, P, hd, T, 1.0f, scratch, T, vh, (int)ldkv, 0.0f, o, d);
        }
}
