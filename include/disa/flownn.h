// flownn.h: fp32 kernels of the flow-matching model families (FlowAR's transformer and
// flow head): RMSNorm, adaLN modulation and gated residuals, the SwiGLU activation, 2-D
// rotary position embeddings, attention against separate key/value rows (a cache or a
// condition), and the bicubic and area resampling FlowAR uses between scales.
//
// Conventions as nn.h (STYLE.md §3): outputs first, shapes on every pointer, no kernel
// allocates, logs or fails, in-place allowed where said. rope2d_init is the exception:
// it builds tables once per model and allocates them.
//
// xAR needs RMSNorm, the SwiGLU gate, 2-D RoPE and key/value attention too; until one
// set of these kernels serves both families, the ones here carry names of their own
// (flow_rmsnorm_forward, attention_kv_batch_forward, rope2d_*) so both can be built.
#ifndef DISA_FLOWNN_H
#define DISA_FLOWNN_H
#include <stddef.h>

// ----------------------------------------------------------------------------
// Normalisation and adaLN.

// FlowAR RMSNorm over the last axis: out = x * rsqrt(mean(x^2) + eps), times w when w is
// not NULL. The mean of squares is accumulated in double. In-place allowed.
void flow_rmsnorm_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/, const float *w /*[C] or NULL*/,
                     int N, int C, float eps);

// adaLN modulation in place, x = x * (1 + scale) + shift, each op rounded as torch's
// `x.mul(scale.add(1)).add_(shift)`. Row r uses scale and shift at offset (r / group) * ld:
// group = rows per image with one vector per image, 1 with one per row, or ld = 0 with
// one vector for every row.
void adaln_modulate(float *x /*[N,C]*/, const float *scale, const float *shift, size_t ld, int group, int N,
                    int C);

// Gated residual x += y * gamma (the product rounded first, as torch's
// `x + y.mul_(gamma)`); gamma indexed like adaln_modulate's vectors. gamma NULL: x += y.
void gated_add(float *x /*[N,C]*/, const float *y /*[N,C]*/, const float *gamma, size_t ld, int group, int N,
               int C);

// SwiGLU with FlowAR's activation (timm SwiGLU, act_layer nn.GELU): out = gelu(g) * u,
// exact erf GELU. out may alias g.
void swiglu_gelu_forward(float *out /*[n]*/, const float *g /*[n]*/, const float *u /*[n]*/, size_t n);

// ----------------------------------------------------------------------------
// 2-D rotary position embedding (FlowAR models/rope.py VisionRotaryEmbeddingFast) on a
// square grid of ft x ft tokens, row-major. Positions are stretched to a 16-wide grid,
// t_i = i / ft * 16 (float32); angle(t, k) = t * freqs[k] in float32, with freqs the
// module's buffer (hd/4 values). Channel j < hd/2 of a head rotates with the row at
// freqs[j/2], channel j >= hd/2 with the column at freqs[(j - hd/2)/2]; pairs
// (2i, 2i+1) rotate together: x' = x cos + rotate_half(x) sin.

typedef struct rope2d {
    int hd;           // head dim (multiple of 4)
    int max_ft;
    float **cos_t;    // [max_ft + 1]: cos_t[ft] = [ft*ft, hd] for the grids asked for, else NULL
    float **sin_t;
} rope2d;

// Tables for every grid side in grids[0..n-1] (1..4096). Returns 0, or DISA_ENOMEM /
// DISA_EINVAL (hd not a multiple of 4, bad side) with a message; r is then empty.
int rope2d_init(rope2d *r, const float *freqs /*[hd/4]*/, int hd, const int *grids, int n);
void rope2d_free(rope2d *r);

// Rotate `heads` head slices of hd channels in each of N rows (row stride ld), in place,
// row p at grid position p (N = ft*ft, tables from rope2d_init for ft).
void rope2d_apply(float *x /*[N, ld]*/, size_t ld, const float *cos_t /*[N,hd]*/, const float *sin_t /*[N,hd]*/,
                  int N, int heads, int hd);

// ----------------------------------------------------------------------------
// Attention with queries and key/value rows in separate buffers, per image b and head h:
// out = softmax(q k^T * hd^-0.5) v over T key rows, no mask. Row i of image b: query at
// q + b*q_img + i*ldq, key at k + b*kv_img + j*ldkv, value likewise from v; head h
// occupies channels [h*hd, (h+1)*hd) of each. out rows are [B*P, d], dense. Scratch:
// P*T floats. Two sgemms per (image, head), counted by blas.c.
void attention_kv_batch_forward(float *out /*[B*P,d]*/, const float *q, size_t ldq, size_t q_img, const float *k,
                          const float *v, size_t ldkv, size_t kv_img, float *scratch /*[P*T]*/, int B, int P,
                          int T, int d, int heads);

// ----------------------------------------------------------------------------
// Resampling as torch's CPU kernels compute it (NCHW, float32), bit for bit with the
// AVX2 build of Debian's torch 1.13.1 (tests/golden/flowar_interp_*).

// F.interpolate(mode='bicubic', align_corners=False, antialias=False): A = -0.75, source
// coordinate scale * (o + 0.5) - 0.5 with scale = in / out (0 when out = 1), indices
// clamped to the border. Each 4-tap sum runs centre tap first, then the others fused
// (fmaf), first along the width, then along the height, as torch's kernel does.
void resize_bicubic_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/, int N, int C, int H,
                            int W, int OH, int OW);

// F.adaptive_avg_pool2d (= F.interpolate(mode='area')): window rows
// [floor(o*H/OH), ceil((o+1)*H/OH)), columns likewise; a float sum in row-major order,
// divided by the row count, then by the column count.
void adaptive_avgpool2d_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/, int N, int C, int H,
                                int W, int OH, int OW);

#endif
