// interp.c: bicubic and area (adaptive average) resampling as torch's CPU kernels do it.
// Mirrors torch 1.13 aten/src/ATen/native/UpSample.h (area_pixel_compute_scale,
// area_pixel_compute_source_index, get_cubic_upsample_coefficients) with
// cpu/UpSampleKernel.cpp's separable 4-tap sums, and cpu/AdaptiveAvgPoolKernel.cpp; used
// by FlowAR between scales (models/flowar.py: sample_tokens).
//
// The order of every operation is the point of this file: torch's AVX2 kernel is built
// with FMA contraction, and its sums start at the centre tap, so a 4-tap sum is
// w1*x1, then fmaf(x0, w0, .), fmaf(x2, w2, .), fmaf(x3, w3, .). Reproduced with fmaf
// (exact on every x86-64: hardware or glibc's software fma), the results are equal bit
// for bit (tests/golden/flowar_interp_*; found by comparing candidates with torch).
#include "disa/flownn.h"

#include <math.h>
#include <stdint.h>

// Coefficient arithmetic is separate float ops, as torch's (an FMA there would have
// changed the weights, which the goldens pin).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// ----------------------------------------------------------------------------
// bicubic

static float cubic1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
static float cubic2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

// The four source indices and weights of output position o along an axis of in -> out.
static void cubic_taps(int idx[4], float w[4], int o, int in, int out) {
    float scale = out > 1 ? (float)in / (float)out : 0.0f;
    const float A = -0.75f;
    // `scale * (dst_index + 0.5) - 0.5`: the 0.5 literals are double in torch, so the
    // product and difference are double and rounded to float once.
    float real = (float)((double)scale * ((double)o + 0.5) - 0.5);
    float fl = floorf(real);
    int64_t i0 = (int64_t)fl;
    float t = real - fl;
    float x1 = t, x2 = (float)(1.0 - (double)t);  // `1.0 - t` in double, then float
    w[0] = cubic2((float)((double)x1 + 1.0), A);
    w[1] = cubic1(x1, A);
    w[2] = cubic1(x2, A);
    w[3] = cubic2((float)((double)x2 + 1.0), A);
    for (int j = 0; j < 4; j++) {
        int64_t s = i0 - 1 + j;
        idx[j] = (int)(s < 0 ? 0 : s > in - 1 ? in - 1 : s);
    }
}

static inline float sum4(const float *v, const float *w) {
    float acc = v[1] * w[1];
    acc = fmaf(v[0], w[0], acc);
    acc = fmaf(v[2], w[2], acc);
    return fmaf(v[3], w[3], acc);
}

void resize_bicubic_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/, int N, int C, int H,
                            int W, int OH, int OW) {
    size_t planes = (size_t)N * C;
    for (int oh = 0; oh < OH; oh++) {
        int ih[4];
        float wh[4];
        cubic_taps(ih, wh, oh, H, OH);
        for (int ow = 0; ow < OW; ow++) {
            int iw[4];
            float ww[4];
            cubic_taps(iw, ww, ow, W, OW);
            for (size_t nc = 0; nc < planes; nc++) {
                const float *x = inp + nc * H * W;
                float rows[4], v[4];
                for (int i = 0; i < 4; i++) {
                    const float *xr = x + (size_t)ih[i] * W;
                    for (int j = 0; j < 4; j++) v[j] = xr[iw[j]];
                    rows[i] = sum4(v, ww);
                }
                out[(nc * OH + oh) * OW + ow] = sum4(rows, wh);
            }
        }
    }
}

// ----------------------------------------------------------------------------
// area

void adaptive_avgpool2d_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/, int N, int C, int H,
                                int W, int OH, int OW) {
    for (size_t nc = 0; nc < (size_t)N * C; nc++) {
        const float *x = inp + nc * H * W;
        float *y = out + nc * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0 = (int)((int64_t)oh * H / OH), h1 = (int)(((int64_t)(oh + 1) * H + OH - 1) / OH);
            for (int ow = 0; ow < OW; ow++) {
                int w0 = (int)((int64_t)ow * W / OW), w1 = (int)(((int64_t)(ow + 1) * W + OW - 1) / OW);
                float s = 0.0f;
                for (int i = h0; i < h1; i++)
                    for (int j = w0; j < w1; j++) s += x[(size_t)i * W + j];
                y[(size_t)oh * OW + ow] = s / (float)(h1 - h0) / (float)(w1 - w0);
            }
        }
    }
}
