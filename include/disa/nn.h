// nn.h: fp32 forward kernels shared by the models (MAR and xAR transformers, DiffLoss
// head, KL-16 decoder, Inception feature net), and the bf16 forms MAR's transformer uses.
//
// Conventions (STYLE.md §3): outputs first, then const inputs, then weights, then
// sizes; every pointer carries its shape. Tensors are dense and row-major; images are
// NCHW. No kernel allocates or logs, and only the bf16 attention can fail (a oneDNN
// primitive it cannot make): sizes are trusted (the model loaders check shapes once),
// and work memory comes from the caller through a `scratch` pointer whose size the
// matching `*_scratch_floats` / `*_scratch_bytes` function gives. Kernels are
// single-threaded except for the GEMMs they hand to OpenBLAS (blas.h) or oneDNN
// (bf16.h), which count their own FLOPs.
//
// "In-place allowed" means out == inp is supported; otherwise the buffers must not overlap.
#ifndef DISA_NN_H
#define DISA_NN_H
#include <stddef.h>
#include <stdint.h>

#include "disa/bf16.h"

// ----------------------------------------------------------------------------
// Linear (torch.nn.functional.linear): out = inp W^T + b.

void linear_forward(float *out /*[N,Cout]*/, const float *inp /*[N,Cin]*/,
                    const float *w /*[Cout,Cin]*/, const float *b /*[Cout] or NULL*/,
                    int N, int Cin, int Cout);

// ----------------------------------------------------------------------------
// Normalisation.

// torch.nn.functional.layer_norm over the last axis: biased variance, statistics
// accumulated in double. w and b may each be NULL (no affine). In-place allowed.
void layernorm_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/,
                       const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                       int N, int C, float eps);

// x += r (the residual add of a timm Block), then out = layer_norm(x): one pass over the
// rows instead of two, the same values. out may be r.
void add_layernorm_forward(float *out /*[N,C]*/, float *x /*[N,C]*/, const float *r /*[N,C]*/,
                           const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/, int N, int C, float eps);

// RMSNorm (xAR models/xar.py): x * rsqrt(mean(x^2) + eps), times w when w != NULL; the
// mean accumulated in double. In-place allowed.
void rmsnorm_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/, const float *w /*[C] or NULL*/,
                     int N, int C, float eps);

// torch.nn.functional.group_norm on NCHW: C/groups consecutive channels share one mean
// and biased variance; per-channel affine. C must be a multiple of groups. w and b may
// each be NULL. In-place allowed.
void groupnorm_forward(float *out /*[N,C,HW]*/, const float *inp /*[N,C,HW]*/,
                       const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                       int N, int C, int HW, int groups, float eps);

// ----------------------------------------------------------------------------
// Element-wise activations (in-place allowed) and row softmax.

// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (torch GELU(approximate='none')).
void gelu_forward(float *out /*[n]*/, const float *inp /*[n]*/, size_t n);
// SiLU / swish, x * sigmoid(x).
void silu_forward(float *out /*[n]*/, const float *inp /*[n]*/, size_t n);
// The gate of timm's SwiGLU with GELU as its activation (xAR's Block): gelu(g) * x.
// out may be g or x.
void gelu_mul_forward(float *out /*[n]*/, const float *g /*[n]*/, const float *x /*[n]*/, size_t n);
// max(x, 0); NaN stays NaN as in torch.relu.
void relu_forward(float *out /*[n]*/, const float *inp /*[n]*/, size_t n);

// torch.softmax(dim=-1), max-subtracted so large logits cannot overflow. In-place allowed.
void softmax_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/, int N, int C);

// ----------------------------------------------------------------------------
// Multi-head self-attention core (timm Attention.forward without the qkv and proj
// Linears): per image and head, softmax(q k^T * head_dim^-0.5) v, no mask.
// qkv rows are [q | k | v], each d wide and split into `heads` slices of d/heads.
// Needs attention_scratch_floats(T, d, heads) floats of scratch. d % heads == 0.

size_t attention_scratch_floats(int T, int d, int heads);
void attention_forward(float *out /*[B*T,d]*/, const float *qkv /*[B*T,3d]*/,
                       float *scratch /*[attention_scratch_floats]*/,
                       int B, int T, int d, int heads);
// The same attention for P query rows per image against all T rows: q[B*P, d] (row
// stride ldq), k and v inside kv[B*T, 2d] (k in columns [0,d), v in [d,2d)). Scratch:
// P*T floats. For a block whose output is needed only at P rows.
void attention_rows_forward(float *out /*[B*P,d]*/, const float *q, int ldq, const float *kv /*[B*T,2d]*/,
                            float *scratch /*[P*T]*/, int B, int P, int T, int d, int heads);

// Attention of P query rows against the first T rows of a key/value store (a KV
// cache): per head softmax(q k^T * hd^-0.5) v over k, v rows [T, ldkv]. No mask: a
// block-causal mask over groups is a key prefix per group of queries, so callers pass
// each group of queries with its prefix length. Scratch: P*T floats. out rows have
// stride ldo (columns [0, d) written).
void attention_kv_forward(float *out /*[P,ldo]*/, int ldo, const float *q /*[P,ldq]*/, int ldq,
                          const float *k /*[T,ldkv]*/, const float *v /*[T,ldkv]*/, int ldkv,
                          float *scratch /*[P*T]*/, int P, int T, int d, int heads);

// ----------------------------------------------------------------------------
// Rotary position embedding (xAR models/rope.py: VisionRotaryEmbeddingFast).

// 2-D RoPE tables over a grid x grid token map for heads of hd channels (hd % 4 == 0):
// channels [0, hd/2) rotate with the row index, [hd/2, hd) with the column index, at
// frequencies 1 / theta^(2j / (hd/2)), each pair (2i, 2i+1) sharing its angle. Rows are
// in group order: the sqrt(clusters)^2 quadrants group-major, raster order inside one.
// float32 as the official buffers.
void rope_tables(float *cos /*[grid*grid, hd]*/, float *sin /*[grid*grid, hd]*/, int grid, int clusters,
                 int hd, float theta);
// x * cos + rotate_half(x) * sin on every head of R rows (rotate_half: pairs (a, b) ->
// (-b, a)); row r uses table row r (callers offset the tables to the first position).
// x rows have stride ld; heads * hd channels from column 0. In place.
void rope_forward(float *x /*[R,ld]*/, int ld, const float *cos /*[R,hd]*/, const float *sin /*[R,hd]*/,
                  int R, int heads, int hd);

// ----------------------------------------------------------------------------
// bf16 forms (--precision bf16, bf16.h): fp32 statistics, bf16 outputs for the matmul
// that follows.

// layer_norm as above, then x * (1 + scale) + shift with per-row modulation rows when
// shift and scale are given (DiT's adaLN modulate), rounded to bf16. The affine part
// applies when both w and b are given. shift/scale [N, C].
void layernorm_bf16_forward(uint16_t *out /*[N,C]*/, const float *inp /*[N,C]*/,
                            const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                            const float *shift /*[N,C] or NULL*/, const float *scale /*[N,C] or NULL*/,
                            int N, int C, float eps);
// silu_forward's values rounded to bf16.
void silu_bf16_forward(uint16_t *out /*[n]*/, const float *inp /*[n]*/, size_t n);
// group_norm on channels-last rows [HW, C] (one image), statistics in double as above;
// C <= 8192. In-place allowed.
void groupnorm_nhwc_forward(float *out /*[HW,C]*/, const float *inp /*[HW,C]*/,
                            const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                            int HW, int C, int groups, float eps);
// nn.Upsample(scale_factor=2, mode='nearest') on channels-last [H, W, C], rounded to bf16.
void upsample_nearest2x_nhwc_bf16(uint16_t *out /*[2H,2W,C]*/, const float *inp /*[H,W,C]*/, int H, int W,
                                  int C);
// softmax_forward's values rounded to bf16; x is overwritten (it holds the exponentials).
void softmax_bf16_forward(uint16_t *out /*[N,C]*/, float *x /*[N,C]*/, int N, int C);
// attention_rows_forward in bf16: q [B*P, d] (row stride ldq), k and v [B*T, d] each
// (row stride ldkv) -> out [B*P, d], per image two batched oneDNN matmuls over the heads
// with the softmax between them in fp32. The full self-attention is P = T with q, k, v
// the three column blocks of qkv (ldq = ldkv = 3d). Scratch: attention_bf16_scratch_bytes.
// 0, or the error of a matmul that could not run (message set).
size_t attention_bf16_scratch_bytes(int P, int T, int heads);
int attention_bf16_forward(bf16_cache *c, uint16_t *out /*[B*P,d]*/, const uint16_t *q, int ldq,
                           const uint16_t *k, const uint16_t *v, int ldkv, void *scratch, int B, int P, int T,
                           int d, int heads);

// ----------------------------------------------------------------------------
// 2-D convolution (torch.nn.functional.conv2d, groups 1, dilation 1, zero padding),
// as im2col + sgemm over bands of output rows. A 1x1, stride-1, unpadded convolution
// is one GEMM per image and needs no scratch.

// Output extent of one axis: floor((in + 2 pad - k) / stride) + 1.
int conv2d_out_size(int in, int k, int stride, int pad);
size_t conv2d_scratch_floats(int Cin, int H, int W, int kh, int kw, int sh, int sw,
                             int ph, int pw);
void conv2d_forward(float *out /*[N,Cout,OH,OW]*/, const float *inp /*[N,Cin,H,W]*/,
                    const float *w /*[Cout,Cin,kh,kw]*/, const float *b /*[Cout] or NULL*/,
                    float *scratch /*[conv2d_scratch_floats]*/,
                    int N, int Cin, int H, int W, int Cout, int kh, int kw,
                    int sh, int sw, int ph, int pw);

// ----------------------------------------------------------------------------
// Resampling and pooling (NCHW). Output sizes follow torch with ceil_mode=False:
// OH = conv2d_out_size(H, kh, sh, ph), OW likewise.

// torch.nn.Upsample(scale_factor=2, mode='nearest').
void upsample_nearest2x_forward(float *out /*[N,C,2H,2W]*/, const float *inp /*[N,C,H,W]*/,
                                int N, int C, int H, int W);

// torch.nn.functional.avg_pool2d. count_include_pad = 0 divides by the number of
// in-image elements of each window, 1 by the window clipped to the padded extent.
void avgpool2d_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/,
                       int N, int C, int H, int W, int kh, int kw, int sh, int sw,
                       int ph, int pw, int count_include_pad);

// torch.nn.functional.max_pool2d: padding acts as -inf; NaN propagates.
void maxpool2d_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/,
                       int N, int C, int H, int W, int kh, int kw, int sh, int sw,
                       int ph, int pw);

// torch.nn.functional.adaptive_avg_pool2d(x, 1): the mean of each channel plane.
void adaptive_avgpool_1x1(float *out /*[N,C]*/, const float *inp /*[N,C,HW]*/,
                          int N, int C, int HW);

// torch.nn.functional.interpolate(size=(OH,OW), mode='bilinear', align_corners=False,
// antialias=False): half-pixel centres, source scale in/out, negative source
// coordinates clamped to 0.
void resize_bilinear_forward(float *out /*[N,C,OH,OW]*/, const float *inp /*[N,C,H,W]*/,
                             int N, int C, int H, int W, int OH, int OW);

// ----------------------------------------------------------------------------
// Timestep embedding of the diffusion head.

// Sinusoidal embedding of one timestep: out = [cos(t*f_k), sin(t*f_k)] (cos first),
// f_k = exp(-ln(max_period) * k / (dim/2)), k = 0..dim/2-1, a trailing 0 when dim is
// odd. Float32 arithmetic as TimestepEmbedder.timestep_embedding (max_period 10000).
void gd_timestep_embedding(float *out /*[dim]*/, float t, int dim, float max_period);

#endif
