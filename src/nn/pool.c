// pool.c: resampling and pooling on NCHW planes.
//
// Mirrors torch.nn.functional.interpolate (nearest x2 and bilinear with
// align_corners=False, antialias=False), avg_pool2d, max_pool2d and
// adaptive_avg_pool2d(x, 1), all with ceil_mode=False. Each (n, c) plane is independent,
// so every kernel loops over N*C planes.
#include "disa/nn.h"
#include "disa/bf16.h"

#include <math.h>
#include <string.h>

// ----------------------------------------------------------------------------

void upsample_nearest2x_forward(float *out /*[N,C,2H,2W]*/, const float *inp /*[N,C,H,W]*/,
                                int N, int C, int H, int W) {
    size_t planes = (size_t)N * C;
    int OW = 2 * W;
    for (size_t p = 0; p < planes; p++) {
        const float *x = inp + p * H * W;
        float *y = out + p * 4 * H * W;
        for (int iy = 0; iy < H; iy++) {
            float *r0 = y + (size_t)(2 * iy) * OW;
            const float *src = x + (size_t)iy * W;
            for (int ix = 0; ix < W; ix++) r0[2 * ix] = r0[2 * ix + 1] = src[ix];
            // The second output row repeats the first.
            float *r1 = r0 + OW;
            for (int ox = 0; ox < OW; ox++) r1[ox] = r0[ox];
        }
    }
}

// Channels-last, written as the bf16 input of the convolution that follows it.
void upsample_nearest2x_nhwc_bf16(uint16_t *out /*[2H,2W,C]*/, const float *inp /*[H,W,C]*/, int H, int W,
                                  int C) {
    size_t rowc = (size_t)2 * W * C;
    for (int iy = 0; iy < H; iy++) {
        uint16_t *r0 = out + (size_t)(2 * iy) * rowc;
        for (int ix = 0; ix < W; ix++) {
            const float *src = inp + ((size_t)iy * W + ix) * C;
            uint16_t *d = r0 + (size_t)2 * ix * C;
            bf16_from_f32(d, src, (size_t)C);
            memcpy(d + C, d, sizeof(uint16_t) * (size_t)C);
        }
        memcpy(r0 + rowc, r0, sizeof(uint16_t) * rowc);
    }
}

// ----------------------------------------------------------------------------

// Average and max pooling share the window walk; op picks, per output, a summing or a
// comparing loop over the window, so each inner loop stays one operation.
enum { POOL_AVG_EXCLUDE_PAD, POOL_AVG_INCLUDE_PAD, POOL_MAX };

// The window of output o along one axis (kernel k, stride s, padding p, n inputs): first
// clipped to the padded extent, whose size it returns (torch's divisor with
// count_include_pad), then to the input, [*lo, *hi) (the elements it covers).
static int pool_window(int o, int k, int s, int p, int n, int *lo, int *hi) {
    int a = o * s - p, b = a + k;
    if (b > n + p) b = n + p;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
    return b - a;
}

// Padding is -inf, so only in-image elements can win; torch requires pad <= k/2, so
// every window holds at least one of them.
static inline float window_max(const float *x, int W, int y0, int y1, int x0, int x1) {
    float m = -INFINITY;
    for (int iy = y0; iy < y1; iy++) {
        for (int ix = x0; ix < x1; ix++) {
            float v = x[(size_t)iy * W + ix];
            // A NaN, once taken, is never replaced (no v > NaN): as in torch.
            if (v > m || isnan(v)) m = v;
        }
    }
    return m;
}

static void pool2d(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/, int N, int C, int H, int W, int kh,
                   int kw, int sh, int sw, int ph, int pw, int op) {
    int OH = conv2d_out_size(H, kh, sh, ph), OW = conv2d_out_size(W, kw, sw, pw);
    size_t planes = (size_t)N * C;
    for (size_t p = 0; p < planes; p++) {
        const float *x = inp + p * H * W;
        float *y = out + p * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            int y0, y1, ylen_pad = pool_window(oy, kh, sh, ph, H, &y0, &y1);
            for (int ox = 0; ox < OW; ox++) {
                int x0, x1, xlen_pad = pool_window(ox, kw, sw, pw, W, &x0, &x1);
                if (op == POOL_MAX) {
                    y[(size_t)oy * OW + ox] = window_max(x, W, y0, y1, x0, x1);
                    continue;
                }
                float s = 0.0f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) s += x[(size_t)iy * W + ix];
                int div = op == POOL_AVG_INCLUDE_PAD ? ylen_pad * xlen_pad : (y1 - y0) * (x1 - x0);
                y[(size_t)oy * OW + ox] = s / (float)div;
            }
        }
    }
}

void avgpool2d_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/,
                       int N, int C, int H, int W, int kh, int kw, int sh, int sw,
                       int ph, int pw, int count_include_pad) {
    pool2d(out, inp, N, C, H, W, kh, kw, sh, sw, ph, pw,
           count_include_pad ? POOL_AVG_INCLUDE_PAD : POOL_AVG_EXCLUDE_PAD);
}

void maxpool2d_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/,
                       int N, int C, int H, int W, int kh, int kw, int sh, int sw,
                       int ph, int pw) {
    pool2d(out, inp, N, C, H, W, kh, kw, sh, sw, ph, pw, POOL_MAX);
}

void adaptive_avgpool_1x1(float *out /*[N,C]*/, const float *inp /*[N,C,HW]*/,
                          int N, int C, int HW) {
    size_t planes = (size_t)N * C;
    for (size_t p = 0; p < planes; p++) {
        const float *x = inp + p * HW;
        // Double sum: the Inception pool averages 8x8 planes of large activations and
        // its features feed a 2048-d covariance, where float sums would show.
        double s = 0.0;
        for (int i = 0; i < HW; i++) s += x[i];
        out[p] = (float)(s / HW);
    }
}

// ----------------------------------------------------------------------------
// Bilinear: torch's upsample_bilinear2d with align_corners=False and no explicit scale
// factor uses scale = in/out and source coordinate src = scale*(dst + 0.5) - 0.5,
// clamped below at 0; i0 = floor(src), i1 = min(i0 + 1, in - 1), and i1 weighs
// src - i0. Coordinates are computed in double (cheap next to the 4 loads).

static void bilinear_axis(double scale, int in, int o, int *i0, int *i1, float *l1) {
    double src = scale * (o + 0.5) - 0.5;
    if (src < 0.0) src = 0.0;
    int a = (int)src;  // floor, as src >= 0
    if (a > in - 1) a = in - 1;
    *i0 = a;
    *i1 = a < in - 1 ? a + 1 : a;
    *l1 = (float)(src - a);
}

void resize_bilinear_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/,
                             int N, int C, int H, int W, int OH, int OW) {
    size_t planes = (size_t)N * C;
    double sy = (double)H / OH, sx = (double)W / OW;
    for (size_t p = 0; p < planes; p++) {
        const float *x = inp + p * H * W;
        float *y = out + p * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            int y0, y1;
            float ly;
            bilinear_axis(sy, H, oy, &y0, &y1, &ly);
            const float *r0 = x + (size_t)y0 * W, *r1 = x + (size_t)y1 * W;
            for (int ox = 0; ox < OW; ox++) {
                int x0, x1;
                float lx;
                bilinear_axis(sx, W, ox, &x0, &x1, &lx);
                // Same association as torch: blend along x within each row, then along y.
                float top = (1.0f - lx) * r0[x0] + lx * r0[x1];
                float bot = (1.0f - lx) * r1[x0] + lx * r1[x1];
                y[(size_t)oy * OW + ox] = (1.0f - ly) * top + ly * bot;
            }
        }
    }
}
