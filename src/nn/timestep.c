// timestep.c: the sinusoidal timestep embedding of the diffusion head (DESIGN §6).
// Mirrors LTH14/mar models/diffloss.py: TimestepEmbedder.timestep_embedding.
#include "disa/nn.h"

#include <math.h>

// torch evaluates every element-wise op as its own kernel and rounds after each one;
// a fused multiply-add would round once and drift from the official result.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

void gd_timestep_embedding(float *out /*[dim]*/, float t, int dim, float max_period) {
    int half = dim / 2;
    // torch: `-math.log(max_period) * arange(half, float32) / half`: the Python double
    // scalar is rounded to float32, then each op rounds in float32.
    const float neg_log = (float)(-log((double)max_period));
    for (int k = 0; k < half; k++) {
        float a = neg_log * (float)k;
        a = a / (float)half;
        float arg = t * expf(a);
        out[k] = cosf(arg);
        out[half + k] = sinf(arg);
    }
    if (dim % 2) out[dim - 1] = 0.0f;
}
