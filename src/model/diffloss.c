// diffloss.c: the MAR diffusion head, SimpleMLPAdaLN.
// Mirrors LTH14/mar models/diffloss.py: SimpleMLPAdaLN.forward, ResBlock.forward,
// FinalLayer.forward, TimestepEmbedder (DESIGN §6). The condition embedding is computed
// once per AR step and the time embedding once per diffusion step (once per distinct
// time when the rows of one call are at different times), not per row.
#include "disa/err.h"
#include "disa/mar.h"
#include "disa/vec.h"
#include "disa/nn.h"

#include <string.h>

void diffloss_cond(const diffloss_net *h, float *ce, const float *c, int N) {
    linear_forward(ce, c, h->cond_w, h->cond_b, N, h->z_dim, h->w);
}

void diffloss_time(const diffloss_net *h, float *te, float t) {
    float freq[256], hid[65536];
    gd_timestep_embedding(freq, t, 256, 10000.0f);
    // w <= 65536 is checked when the config is parsed.
    linear_forward(hid, freq, h->t0_w, h->t0_b, 1, 256, h->w);
    silu_forward(hid, hid, (size_t)h->w);
    linear_forward(te, hid, h->t2_w, h->t2_b, 1, h->w, h->w);
}

size_t diffloss_scratch_bytes(const diffloss_net *h, int N) {
    return ((size_t)N * h->w * 7 + 64) * sizeof(float) + 8 * 64;
}

// x * (1 + scale) + shift, row-wise with modulation rows mod[N, k*w] at column offsets.
DISA_VEC
static void modulate(float *x, const float *mod, int shift_off, int scale_off, int stride, int N, int w) {
    for (int n = 0; n < N; n++) {
        const float *m = mod + (size_t)n * stride;
        float *r = x + (size_t)n * w;
        for (int k = 0; k < w; k++) r[k] = r[k] * (1.0f + m[scale_off + k]) + m[shift_off + k];
    }
}

// x += gate * u row-wise, the gate being the third w-wide part of each modulation row.
DISA_VEC
static void gate_add(float *x, const float *mod, const float *u, int N, int w) {
    for (int n = 0; n < N; n++) {
        const float *gate = mod + (size_t)n * 3 * w + 2 * w;
        float *r = x + (size_t)n * w;
        const float *uu = u + (size_t)n * w;
        for (int k = 0; k < w; k++) r[k] += gate[k] * uu[k];
    }
}

int diffloss_forward(const diffloss_net *h, arena *a, float *out, const float *x, const float *te,
                     const float *ce, int N) {
    return diffloss_forward_te(h, a, out, x, te, NULL, ce, N);
}

int diffloss_forward_te(const diffloss_net *h, arena *a, float *out, const float *x, const float *te,
                        const int *te_row, const float *ce, int N) {
    const int w = h->w;
    size_t mark = arena_mark(a);
    float *sy = arena_floats(a, (size_t)N * w);       // silu(t_emb + c_emb)
    float *hx = arena_floats(a, (size_t)N * w);       // residual stream
    float *u = arena_floats(a, (size_t)N * w);
    float *t1 = arena_floats(a, (size_t)N * w);
    float *mod = arena_floats(a, (size_t)N * 3 * w);  // shift | scale | gate
    if (!sy || !hx || !u || !t1 || !mod) return DISA_ENOMEM;
    for (int n = 0; n < N; n++) {
        const float *tr = te + (te_row ? (size_t)te_row[n] * w : 0);
        for (int k = 0; k < w; k++) sy[(size_t)n * w + k] = ce[(size_t)n * w + k] + tr[k];
    }
    silu_forward(sy, sy, (size_t)N * w);
    linear_forward(hx, x, h->in_w, h->in_b, N, h->C, w);
    for (int i = 0; i < h->depth; i++) {
        const dl_resblock *b = &h->blocks[i];
        linear_forward(mod, sy, b->ada_w, b->ada_b, N, w, 3 * w);
        layernorm_forward(u, hx, b->ln_w, b->ln_b, N, w, h->eps);
        modulate(u, mod, 0, w, 3 * w, N, w);
        linear_forward(t1, u, b->fc1_w, b->fc1_b, N, w, w);
        silu_forward(t1, t1, (size_t)N * w);
        linear_forward(u, t1, b->fc2_w, b->fc2_b, N, w, w);
        gate_add(hx, mod, u, N, w);
    }
    linear_forward(mod, sy, h->fada_w, h->fada_b, N, w, 2 * w);
    layernorm_forward(u, hx, NULL, NULL, N, w, h->eps);
    modulate(u, mod, 0, w, 2 * w, N, w);
    linear_forward(out, u, h->flin_w, h->flin_b, N, w, 2 * h->C);
    arena_reset(a, mark);
    return 0;
}
