// conv.c: torch.nn.functional.conv2d (groups 1, dilation 1, zero padding), NCHW.
//
// im2col + sgemm. Per image, out[Cout, OH*OW] = W[Cout, Cin*kh*kw] x col[Cin*kh*kw, OH*OW].
// The col matrix of a full KL-16 decoder layer (128 ch, 3x3, 256x256) would be 300 MB,
// so it is built for a band of output rows at a time: a band of rows is a contiguous
// column range of out (ldc = OH*OW), so each band is one GEMM with the same weights.
// Bands are sized so col stays under COL_CAP floats yet each GEMM still has thousands
// of columns for OpenBLAS to tile. A 1x1, stride-1, unpadded convolution is already a
// GEMM on the input (col == input) and skips im2col altogether.
#include "disa/nn.h"

#include <string.h>

#include "disa/blas.h"
#include "disa/par.h"

// 4 Mi floats (16 MB) of col per band.
#define COL_CAP ((size_t)1 << 22)

int conv2d_out_size(int in, int k, int stride, int pad) {
    return (in + 2 * pad - k) / stride + 1;
}

static int is_pointwise(int kh, int kw, int sh, int sw, int ph, int pw) {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
}

// Output rows per band; shared by the scratch query and the forward so they agree.
static int band_rows(int Cin, int kh, int kw, int OH, int OW) {
    size_t per_row = (size_t)Cin * kh * kw * OW;  // col floats for one output row
    size_t rows = per_row ? COL_CAP / per_row : (size_t)OH;
    if (rows < 1) rows = 1;
    if (rows > (size_t)OH) rows = (size_t)OH;
    return (int)rows;
}

size_t conv2d_scratch_floats(int Cin, int H, int W, int kh, int kw, int sh, int sw,
                             int ph, int pw) {
    if (is_pointwise(kh, kw, sh, sw, ph, pw)) return 0;
    int OH = conv2d_out_size(H, kh, sh, ph), OW = conv2d_out_size(W, kw, sw, pw);
    return (size_t)Cin * kh * kw * (size_t)band_rows(Cin, kh, kw, OH, OW) * OW;
}

// ----------------------------------------------------------------------------
// col[(c*kh + i)*kw + j, (oy - oy0)*OW + ox] = x[c, oy*sh - ph + i, ox*sw - pw + j],
// zero outside the image, for output rows oy0 <= oy < oy1 and channels c0 <= c < c1.
static void im2col_band(float *col /*[Cin*kh*kw, (oy1-oy0)*OW]*/,
                        const float *x /*[Cin,H,W]*/, int c0, int c1, int H, int W,
                        int kh, int kw, int sh, int sw, int ph, int pw,
                        int OW, int oy0, int oy1) {
    size_t ncol = (size_t)(oy1 - oy0) * OW;
    for (int c = c0; c < c1; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int i = 0; i < kh; i++) {
            for (int j = 0; j < kw; j++) {
                float *dst = col + ((size_t)(c * kh + i) * kw + j) * ncol;
                for (int oy = oy0; oy < oy1; oy++) {
                    int iy = oy * sh - ph + i;
                    float *d = dst + (size_t)(oy - oy0) * OW;
                    if (iy < 0 || iy >= H) {
                        memset(d, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    const float *src = xc + (size_t)iy * W;
                    if (sw == 1) {
                        // Contiguous run: zero the padded ends, copy the middle.
                        int ox_lo = pw - j;  // first ox with ix >= 0
                        if (ox_lo < 0) ox_lo = 0;
                        int ox_hi = W + pw - j;  // first ox with ix >= W
                        if (ox_hi > OW) ox_hi = OW;
                        if (ox_hi < ox_lo) ox_hi = ox_lo;
                        for (int ox = 0; ox < ox_lo; ox++) d[ox] = 0.0f;
                        if (ox_hi > ox_lo)
                            memcpy(d + ox_lo, src + ox_lo - pw + j,
                                   (size_t)(ox_hi - ox_lo) * sizeof(float));
                        for (int ox = ox_hi; ox < OW; ox++) d[ox] = 0.0f;
                    } else {
                        for (int ox = 0; ox < OW; ox++) {
                            int ix = ox * sw - pw + j;
                            d[ox] = (ix >= 0 && ix < W) ? src[ix] : 0.0f;
                        }
                    }
                }
            }
        }
    }
}

// The copies around the GEMMs over the threads (par.h), by input channel (im2col) or
// output channel (bias): the same values for any split.
typedef struct conv_ctx {
    float *col, *y;
    const float *x, *b;
    int H, W, kh, kw, sh, sw, ph, pw, OW, oy0, oy1;
    size_t P;
} conv_ctx;

static void im2col_part(void *ctx, size_t lo, size_t hi) {
    const conv_ctx *c = ctx;
    im2col_band(c->col, c->x, (int)lo, (int)hi, c->H, c->W, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->OW, c->oy0,
                c->oy1);
}

static void bias_part(void *ctx, size_t lo, size_t hi) {
    const conv_ctx *c = ctx;
    for (size_t co = lo; co < hi; co++)
        for (size_t p = 0; p < c->P; p++) c->y[co * c->P + p] = c->b[co];
}

void conv2d_forward(float *out /*[N,Cout,OH,OW]*/, const float *inp /*[N,Cin,H,W]*/,
                    const float *w /*[Cout,Cin,kh,kw]*/, const float *b /*[Cout] or NULL*/,
                    float *scratch /*[conv2d_scratch_floats]*/,
                    int N, int Cin, int H, int W, int Cout, int kh, int kw,
                    int sh, int sw, int ph, int pw) {
    int OH = conv2d_out_size(H, kh, sh, ph), OW = conv2d_out_size(W, kw, sw, pw);
    if (OH <= 0 || OW <= 0) return;
    int K = Cin * kh * kw;
    size_t P = (size_t)OH * OW;
    int pointwise = is_pointwise(kh, kw, sh, sw, ph, pw);
    int rows = band_rows(Cin, kh, kw, OH, OW);
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * Cin * H * W;
        float *y = out + (size_t)n * Cout * P;
        conv_ctx cc = {scratch, y, x, b, H, W, kh, kw, sh, sw, ph, pw, OW, 0, 0, P};
        // Seed the output with the bias so every GEMM accumulates into it (beta = 1).
        if (b) par_for((size_t)Cout, par_row_grain(P), bias_part, &cc);
        float beta = b ? 1.0f : 0.0f;
        if (pointwise) {
            blas_sgemm(0, 0, Cout, (int)P, K, 1.0f, w, K, x, (int)P, beta, y, (int)P);
            continue;
        }
        for (int oy0 = 0; oy0 < OH; oy0 += rows) {
            int oy1 = oy0 + rows < OH ? oy0 + rows : OH;
            int ncol = (oy1 - oy0) * OW;
            cc.oy0 = oy0, cc.oy1 = oy1;
            par_for((size_t)Cin, par_row_grain((size_t)kh * kw * ncol), im2col_part, &cc);
            blas_sgemm(0, 0, Cout, ncol, K, 1.0f, w, K, scratch, ncol, beta,
                       y + (size_t)oy0 * OW, (int)P);
        }
    }
}
