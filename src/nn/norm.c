// norm.c: torch.nn.functional.layer_norm (last axis), group_norm (NCHW) and xAR's RMSNorm.
//
// LayerNorm and GroupNorm use the biased variance, as torch does. Mean and variance are accumulated in
// double over two passes: a single float pass loses ~1e-5 relative accuracy when the
// rows carry a large common offset (the MAR z_proj_ln input, VAE feature maps), and the
// parity tolerance is 1e-5.
#include "disa/nn.h"
#include "disa/vec.h"

#include <math.h>

// ----------------------------------------------------------------------------
// Mean and biased variance of x[0..n-1]; the second pass around the mean avoids the
// cancellation of E[x^2] - E[x]^2. Eight double partial sums per pass, so the loops
// vectorise (DISA_VEC) without reassociating a single running sum.
enum { LANES = 8 };

static inline void moments(const float *x /*[n]*/, size_t n, double *mean, double *var) {
    double s8[LANES] = {0}, v8[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) s8[k] += x[i + k];
    double s = 0.0;
    for (; i < n; i++) s += x[i];
    for (int k = 0; k < LANES; k++) s += s8[k];
    double m = s / (double)n;
    for (i = 0; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            double d = (double)x[i + k] - m;
            v8[k] += d * d;
        }
    double v = 0.0;
    for (; i < n; i++) {
        double d = (double)x[i] - m;
        v += d * d;
    }
    for (int k = 0; k < LANES; k++) v += v8[k];
    *mean = m;
    *var = v / (double)n;
}

// ----------------------------------------------------------------------------

DISA_VEC
void layernorm_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/,
                       const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                       int N, int C, float eps) {
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        double mean, var;
        // Statistics are complete before the first write, so out == inp is safe.
        moments(x, (size_t)C, &mean, &var);
        double rstd = 1.0 / sqrt(var + (double)eps);
        for (int j = 0; j < C; j++) y[j] = (float)(((double)x[j] - mean) * rstd);
        if (w)
            for (int j = 0; j < C; j++) y[j] *= w[j];
        if (b)
            for (int j = 0; j < C; j++) y[j] += b[j];
    }
}

DISA_VEC
void groupnorm_forward(float *out /*[N,C,HW]*/, const float *inp /*[N,C,HW]*/,
                       const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                       int N, int C, int HW, int groups, float eps) {
    int cpg = C / groups;  // channels per group; contiguous in NCHW
    size_t gsize = (size_t)cpg * HW;
    for (int n = 0; n < N; n++) {
        for (int g = 0; g < groups; g++) {
            size_t off = ((size_t)n * C + (size_t)g * cpg) * HW;
            double mean, var;
            moments(inp + off, gsize, &mean, &var);
            double rstd = 1.0 / sqrt(var + (double)eps);
            for (int cc = 0; cc < cpg; cc++) {
                int ch = g * cpg + cc;
                // Fold normalisation and affine into one scale/shift per channel.
                double scale = rstd * (w ? (double)w[ch] : 1.0);
                double shift = (b ? (double)b[ch] : 0.0) - mean * scale;
                const float *x = inp + off + (size_t)cc * HW;
                float *y = out + off + (size_t)cc * HW;
                for (int k = 0; k < HW; k++) y[k] = (float)((double)x[k] * scale + shift);
            }
        }
    }
}

// RMSNorm: the official code forms mean(x^2) in float32; in double the result is what the
// float64 reference computes, and a row of large common offset keeps its accuracy.
DISA_VEC
void rmsnorm_forward(float *out /*[N,C]*/, const float *inp /*[N,C]*/, const float *w /*[C] or NULL*/,
                     int N, int C, float eps) {
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        double s8[LANES] = {0};
        int j = 0;
        for (; j + LANES <= C; j += LANES)
            for (int k = 0; k < LANES; k++) s8[k] += (double)x[j + k] * (double)x[j + k];
        double s = 0.0;
        for (; j < C; j++) s += (double)x[j] * (double)x[j];
        for (int k = 0; k < LANES; k++) s += s8[k];
        // The sum is complete before the first write, so out == inp is safe.
        double r = 1.0 / sqrt(s / (double)C + (double)eps);
        if (w)
            for (j = 0; j < C; j++) y[j] = (float)((double)x[j] * r) * w[j];
        else
            for (j = 0; j < C; j++) y[j] = (float)((double)x[j] * r);
    }
}
