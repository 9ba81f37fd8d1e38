// norm.c: torch.nn.functional.layer_norm (last axis) and group_norm (NCHW).
//
// Both use the biased variance, as torch does. Mean and variance are accumulated in
// double over two passes: a single float pass loses ~1e-5 relative accuracy when the
// rows carry a large common offset (the MAR z_proj_ln input, VAE feature maps), and the
// parity tolerance is 1e-5.
#include "disa/nn.h"
#include "disa/bf16.h"
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

// The bf16 form: the same double statistics, the normalisation and the affine and
// modulation in float (the result is rounded to bf16 anyway), written as the bf16 input
// of the matmul that follows. One row; the flags are constants at each call, so every
// case gets its own loop with no masked loads from an absent operand.
static inline __attribute__((always_inline)) void ln_row_bf16(uint16_t *y, const float *x, const float *w,
                                                              const float *b, const float *sh, const float *sc,
                                                              int C, float eps, int affine, int mod) {
    double mean, var;
    moments(x, (size_t)C, &mean, &var);
    float m = (float)mean, r = (float)(1.0 / sqrt(var + (double)eps));
    for (int j = 0; j < C; j++) {
        float v = (x[j] - m) * r;
        if (affine) v = v * w[j] + b[j];
        if (mod) v = v * (1.0f + sc[j]) + sh[j];
        y[j] = bf16_bits(v);
    }
}

DISA_VEC
void layernorm_bf16_forward(uint16_t *out /*[N,C]*/, const float *inp /*[N,C]*/,
                            const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                            const float *shift /*[N,C] or NULL*/, const float *scale /*[N,C] or NULL*/,
                            int N, int C, float eps) {
    // The model's LayerNorms have both affine parts or neither (final_layer's norm).
    int affine = w && b, mod = shift && scale;
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        uint16_t *y = out + (size_t)i * C;
        const float *sh = mod ? shift + (size_t)i * C : NULL, *sc = mod ? scale + (size_t)i * C : NULL;
        if (affine && mod) ln_row_bf16(y, x, w, b, sh, sc, C, eps, 1, 1);
        else if (affine) ln_row_bf16(y, x, w, b, sh, sc, C, eps, 1, 0);
        else if (mod) ln_row_bf16(y, x, w, b, sh, sc, C, eps, 0, 1);
        else ln_row_bf16(y, x, w, b, sh, sc, C, eps, 0, 0);
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

// group_norm on channels-last rows x[p, c] (the bf16 decoder's layout): per-channel
// double sums over the HW positions, combined per group, two passes as moments() does;
// then (x - mean) * scale + shift in float per channel, the mean subtracted first so a
// large common offset cancels exactly.
DISA_VEC
void groupnorm_nhwc_forward(float *out /*[HW,C]*/, const float *inp /*[HW,C]*/,
                            const float *w /*[C] or NULL*/, const float *b /*[C] or NULL*/,
                            int HW, int C, int groups, float eps) {
    // Per-channel state on the stack: at most 192 KB (C <= 8192, nn.h).
    double acc[C], gmean[C];
    float mean[C], scale[C], shift[C];
    int cpg = C / groups;
    double n = (double)HW * cpg;
    for (int c = 0; c < C; c++) acc[c] = 0.0;
    for (int p = 0; p < HW; p++)
        for (int c = 0; c < C; c++) acc[c] += inp[(size_t)p * C + c];
    for (int g = 0; g < groups; g++) {
        double s = 0.0;
        for (int c = g * cpg; c < (g + 1) * cpg; c++) s += acc[c];
        for (int c = g * cpg; c < (g + 1) * cpg; c++) gmean[c] = s / n;
    }
    for (int c = 0; c < C; c++) acc[c] = 0.0;
    for (int p = 0; p < HW; p++)
        for (int c = 0; c < C; c++) {
            double d = (double)inp[(size_t)p * C + c] - gmean[c];
            acc[c] += d * d;
        }
    for (int g = 0; g < groups; g++) {
        double v = 0.0;
        for (int c = g * cpg; c < (g + 1) * cpg; c++) v += acc[c];
        double rstd = 1.0 / sqrt(v / n + (double)eps);
        for (int c = g * cpg; c < (g + 1) * cpg; c++) {
            mean[c] = (float)gmean[c];
            scale[c] = (float)(rstd * (w ? (double)w[c] : 1.0));
            shift[c] = b ? b[c] : 0.0f;
        }
    }
    for (int p = 0; p < HW; p++)
        for (int c = 0; c < C; c++) out[(size_t)p * C + c] = (inp[(size_t)p * C + c] - mean[c]) * scale[c] + shift[c];
}
