// inception.h: the FID Inception-v3 (TF "2015-12-05" graph ported to PyTorch), as
// torch-fidelity's `inception-v3-compat` extractor and pytorch-fid's FIDInceptionV3
// run it (DESIGN §9).
//
// uint8 images [N, 3, H, W] -> TF1 bilinear resize to 299x299 (half-pixel-free source
// coordinates dst * in/out, as TF 1.x ResizeBilinear with align_corners=False, in
// float32) -> (x - 128) / 128 -> the network with BatchNorm eps 1e-3 folded into the
// convolutions at load -> 2048-d pool features and the bias-free 1008 logits
// (torch-fidelity's 'logits_unbiased', used for the Inception Score).
//
// Weights: safetensors with the PyTorch state_dict names (Conv2d_1a_3x3.conv.weight,
// Mixed_5b.branch1x1.bn.running_var, ..., fc.weight, fc.bias), converted from
// weights-inception-2015-12-05-6726825d.pth by tools/convert_inception.py.
#ifndef DISA_INCEPTION_H
#define DISA_INCEPTION_H
#include <stddef.h>
#include <stdint.h>

#include "disa/arena.h"
#include "disa/safetensors.h"

#define INCEPTION_SIZE 299
#define INCEPTION_FEAT 2048
#define INCEPTION_LOGITS 1008

// BasicConv2d: Conv2d(bias=False) + BatchNorm2d(eps=0.001) + ReLU.
typedef struct inc_conv {
    int cin, cout, kh, kw, sh, sw, ph, pw;
    const float *w;                 // NAME.conv.weight (cout, cin, kh, kw)
    const float *gamma, *beta;      // NAME.bn.weight, NAME.bn.bias (cout)
    const float *mean, *var;        // NAME.bn.running_mean, NAME.bn.running_var (cout)
    float *fw, *fb;                 // folded: w * s, beta - mean * s, s = gamma / sqrt(var + eps)
} inc_conv;

// Mixed_5b/5c/5d (InceptionA; avg-pool branch without padding counts).
typedef struct inc_a {
    inc_conv b1x1, b5x5_1, b5x5_2, b3dbl_1, b3dbl_2, b3dbl_3, pool;
} inc_a;
// Mixed_6a (InceptionB).
typedef struct inc_b {
    inc_conv b3x3, b3dbl_1, b3dbl_2, b3dbl_3;
} inc_b;
// Mixed_6b..6e (InceptionC, channels_7x7 = c7).
typedef struct inc_c {
    inc_conv b1x1, b7_1, b7_2, b7_3, b7dbl_1, b7dbl_2, b7dbl_3, b7dbl_4, b7dbl_5, pool;
} inc_c;
// Mixed_7a (InceptionD).
typedef struct inc_d {
    inc_conv b3_1, b3_2, b7x3_1, b7x3_2, b7x3_3, b7x3_4;
} inc_d;
// Mixed_7b (avg pool, no padding counts) and Mixed_7c (max pool): InceptionE_1 / _2.
typedef struct inc_e {
    inc_conv b1x1, b3_1, b3_2a, b3_2b, b3dbl_1, b3dbl_2, b3dbl_3a, b3dbl_3b, pool;
    int max_pool;
} inc_e;

typedef struct inception_model {
    st_file st;                                  // mapping of the weights file (when opened)
    inc_conv c1a, c2a, c2b, c3b, c4a;            // Conv2d_1a_3x3 .. Conv2d_4a_3x3
    inc_a m5b, m5c, m5d;
    inc_b m6a;
    inc_c m6b, m6c, m6d, m6e;
    inc_d m7a;
    inc_e m7b, m7c;
    const float *fc_w, *fc_b;                    // fc.weight (1008, 2048), fc.bias (1008)
    float *folded;                               // one allocation for every fw / fb
} inception_model;

// Fill the layer geometry of m (no weights) and the binding table of its 472 tensors
// with their official names; *tab and *names are the caller's to free.
int inception_tensor_table(inception_model *m, st_bind_entry **tab, char **names, int *count);
// Fold every BatchNorm into its convolution (allocates m->folded). DISA_ENOMEM, or
// DISA_ERANGE naming the layer when a running_var + eps is not positive.
int inception_fold(inception_model *m);
// Open, bind (all missing / mis-shaped tensors listed at once) and fold.
int inception_open(inception_model *m, const char *path);
void inception_close(inception_model *m);

// Scratch bytes inception_forward needs (independent of the input size up to 1024x1024).
size_t inception_scratch_bytes(void);

// torch-fidelity interpolate_bilinear_2d_like_tensorflow1x(align_corners=False),
// method 'slow', on a uint8 plane set: out[C, OH, OW] float32 with each step rounded
// to float32 exactly as the reference does (no FMA contraction). OH, OW <= 2048.
void inception_resize_tf1(float *out /*[C,OH,OW]*/, const uint8_t *in /*[C,H,W]*/,
                          int C, int H, int W, int OH, int OW);

// pool[N, 2048] (may be NULL) and logits[N, 1008] (bias-free, may be NULL) of uint8
// images img[N, 3, H, W] (channel-first; see inception_hwc_to_chw). One image at a time
// through the scratch arena, which is released before returning. DISA_ENOMEM when the
// arena is smaller than inception_scratch_bytes(), DISA_EINVAL for H or W outside
// [1, 1024].
int inception_forward(const inception_model *m, arena *a, float *pool, float *logits,
                      const uint8_t *img, int N, int H, int W);

// [H, W, C] -> [3, H, W] as PIL's convert('RGB'): C = 1 replicated, C = 3 copied,
// C = 4 (RGBA) drops alpha, C = 2 (gray + alpha) drops alpha.
void inception_hwc_to_chw(uint8_t *out /*[3,H,W]*/, const uint8_t *in /*[H,W,C]*/, int H, int W, int C);

// FLOPs of the forward on one image (conv GEMMs on the 299x299 input and, with logits
// != 0, the 2048 x 1008 logits GEMM): what inception_forward counts. 0 only when out of
// memory.
uint64_t inception_flops(int logits);

// Write an Inception file with the official tensor names and random weights (dgen,
// He-uniform convolutions, BatchNorm near identity), for tests and timing where the
// real weights are absent. Atomic; errors name the path.
int inception_write_random(const char *out, uint64_t seed);

#endif
