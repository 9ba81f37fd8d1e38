// diffloss.c: the MAR diffusion head, SimpleMLPAdaLN.
// Mirrors LTH14/mar models/diffloss.py: SimpleMLPAdaLN.forward, ResBlock.forward,
// FinalLayer.forward, TimestepEmbedder (DESIGN §6). The condition embedding is computed
// once per AR step and the time embedding once per diffusion step (once per distinct
// time when the rows of one call are at different times), not per row.
#include "disa/bf16.h"
#include "disa/err.h"
#include "disa/mar.h"
#include "disa/vec.h"
#include "disa/nn.h"
#include "disa/par.h"

#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// The bf16 form: every Linear packed once. adaLN_modulation's [3w, w] weight is three
// Linears (shift, scale, gate), so each output is a dense [N, w] block: the gate then
// enters fc2's epilogue as a oneDNN binary post-op, which needs a dense operand.

typedef struct dl_block_bf16 {
    bf16_linear shift, scale, gate, fc1, fc2;
} dl_block_bf16;

struct dl_bf16 {
    bf16_cache *cache;
    bf16_linear t0, t2, cond, in, fshift, fscale, flin;
    dl_block_bf16 *blocks;  // [depth]
};

static void dl_bf16_delete(dl_bf16 *b, int depth) {
    if (!b) return;
    bf16_linear *all[] = {&b->t0, &b->t2, &b->cond, &b->in, &b->fshift, &b->fscale, &b->flin};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) bf16_linear_free(all[i]);
    for (int i = 0; b->blocks && i < depth; i++) {
        dl_block_bf16 *k = &b->blocks[i];
        bf16_linear *bl[] = {&k->shift, &k->scale, &k->gate, &k->fc1, &k->fc2};
        for (size_t j = 0; j < sizeof bl / sizeof *bl; j++) bf16_linear_free(bl[j]);
    }
    free(b->blocks);
    bf16_cache_delete(b->cache);
    free(b);
}

int diffloss_prepare(diffloss_net *h, precision_kind p) {
    if (p == PRECISION_AUTO) p = precision_resolve(p, NULL, 0);
    if (p == PRECISION_FP32) {
        dl_bf16_delete(h->bf16, h->depth);
        h->bf16 = NULL;
        return 0;
    }
    if (h->bf16) return 0;
    int rc = bf16_available(), w = h->w;
    if (rc) return rc;
    dl_bf16 *b = calloc(1, sizeof *b);
    if (!b || !(b->blocks = calloc((size_t)h->depth, sizeof *b->blocks)) || !(b->cache = bf16_cache_new(32))) {
        dl_bf16_delete(b, h->depth);
        return disa_err(DISA_ENOMEM, "diffusion head: out of memory for its bf16 form");
    }
    size_t ww = (size_t)w * w;
    rc = bf16_linear_init(&b->t0, h->t0_w, h->t0_b, 256, w);
    if (!rc) rc = bf16_linear_init(&b->t2, h->t2_w, h->t2_b, w, w);
    if (!rc) rc = bf16_linear_init(&b->cond, h->cond_w, h->cond_b, h->z_dim, w);
    if (!rc) rc = bf16_linear_init(&b->in, h->in_w, h->in_b, h->C, w);
    for (int i = 0; !rc && i < h->depth; i++) {
        const dl_resblock *r = &h->blocks[i];
        dl_block_bf16 *k = &b->blocks[i];
        rc = bf16_linear_init(&k->shift, r->ada_w, r->ada_b, w, w);
        if (!rc) rc = bf16_linear_init(&k->scale, r->ada_w + ww, r->ada_b + w, w, w);
        if (!rc) rc = bf16_linear_init(&k->gate, r->ada_w + 2 * ww, r->ada_b + 2 * w, w, w);
        if (!rc) rc = bf16_linear_init(&k->fc1, r->fc1_w, r->fc1_b, w, w);
        if (!rc) rc = bf16_linear_init(&k->fc2, r->fc2_w, r->fc2_b, w, w);
    }
    if (!rc) rc = bf16_linear_init(&b->fshift, h->fada_w, h->fada_b, w, w);
    if (!rc) rc = bf16_linear_init(&b->fscale, h->fada_w + ww, h->fada_b + w, w, w);
    if (!rc) rc = bf16_linear_init(&b->flin, h->flin_w, h->flin_b, w, 2 * h->C);
    if (rc) {
        dl_bf16_delete(b, h->depth);
        return disa_err_wrap(rc, "diffusion head, bf16: ");
    }
    h->bf16 = b;
    return 0;
}

// ----------------------------------------------------------------------------

int diffloss_cond(const diffloss_net *h, arena *a, float *ce, const float *c, int N) {
    if (!h->bf16) {
        linear_forward(ce, c, h->cond_w, h->cond_b, N, h->z_dim, h->w);
        return 0;
    }
    size_t mark = arena_mark(a);
    uint16_t *cb = arena_alloc(a, sizeof(uint16_t) * (size_t)N * h->z_dim);
    if (!cb) return DISA_ENOMEM;
    bf16_from_f32(cb, c, (size_t)N * h->z_dim);
    int rc = bf16_linear_forward(h->bf16->cache, &h->bf16->cond, ce, 0, cb, NULL, N, BF16_EPI_NONE);
    arena_reset(a, mark);
    return rc;
}

int diffloss_time(const diffloss_net *h, float *te, float t) {
    float freq[256], hid[65536];
    gd_timestep_embedding(freq, t, 256, 10000.0f);
    if (h->bf16) {
        // w <= 65536 is checked when the config is parsed.
        uint16_t fb[256], hb[65536];
        bf16_from_f32(fb, freq, 256);
        int rc = bf16_linear_forward(h->bf16->cache, &h->bf16->t0, hb, 1, fb, NULL, 1, BF16_EPI_SILU);
        return rc ? rc : bf16_linear_forward(h->bf16->cache, &h->bf16->t2, te, 0, hb, NULL, 1, BF16_EPI_NONE);
    }
    linear_forward(hid, freq, h->t0_w, h->t0_b, 1, 256, h->w);
    silu_forward(hid, hid, (size_t)h->w);
    linear_forward(te, hid, h->t2_w, h->t2_b, 1, h->w, h->w);
    return 0;
}

size_t diffloss_scratch_bytes(const diffloss_net *h, int N) {
    // fp32 needs 7 [N, w] float blocks; bf16 five float and three bf16 ones, x in bf16,
    // and the bf16 copy of the condition rows in diffloss_cond. The size covers either, so
    // it does not depend on the precision.
    size_t bf = ((size_t)N * h->z_dim + (size_t)N * h->C) * sizeof(uint16_t) + 2 * 64;
    return ((size_t)N * h->w * 7 + 64) * sizeof(float) + 8 * 64 + bf;
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

// sy = ce + te row-wise: row n adds te[te_row[n] * w ..] (te_row NULL: te[0..w) for every row).
DISA_VEC
static void add_time(float *sy, const float *ce, const float *te, const int *te_row, int N, int w) {
    for (int n = 0; n < N; n++) {
        const float *tr = te + (te_row ? (size_t)te_row[n] * w : 0);
        for (int k = 0; k < w; k++) sy[(size_t)n * w + k] = ce[(size_t)n * w + k] + tr[k];
    }
}

// The three row loops over the threads (par.h), a chunk of rows each.
enum { ROWS_TIME, ROWS_MODULATE, ROWS_GATE };
typedef struct rows_ctx {
    int op;
    float *x;
    const float *a, *b;  // TIME: ce, te; MODULATE: mod; GATE: mod, u
    const int *te_row;   // TIME: the row of te each row adds (NULL: row 0)
    int shift_off, scale_off, stride, w;
} rows_ctx;

static void rows_part(void *ctx, size_t lo, size_t hi) {
    const rows_ctx *r = ctx;
    int n = (int)(hi - lo), w = r->w;
    float *x = r->x + lo * w;
    if (r->op == ROWS_TIME) add_time(x, r->a + lo * w, r->b, r->te_row ? r->te_row + lo : NULL, n, w);
    else if (r->op == ROWS_MODULATE) modulate(x, r->a + lo * r->stride, r->shift_off, r->scale_off, r->stride, n, w);
    else gate_add(x, r->a + lo * 3 * w, r->b + lo * w, n, w);
}

static void rows_for(int op, float *x, const float *a, const float *b, int shift_off, int scale_off, int stride,
                     int N, int w) {
    rows_ctx r = {op, x, a, b, NULL, shift_off, scale_off, stride, w};
    par_for((size_t)N, par_row_grain((size_t)w), rows_part, &r);
}

static void time_rows_for(float *sy, const float *ce, const float *te, const int *te_row, int N, int w) {
    rows_ctx r = {ROWS_TIME, sy, ce, te, te_row, 0, 0, w, w};
    par_for((size_t)N, par_row_grain((size_t)w), rows_part, &r);
}

// SimpleMLPAdaLN.forward in bf16: each ResBlock is three modulation matmuls, the
// LayerNorm + modulate written as bf16, fc1 with SiLU as its epilogue, and fc2 whose
// epilogue multiplies by the gate and adds the residual stream (fp32) in place.
static int forward_bf16(const diffloss_net *h, arena *a, float *out, const float *x, const float *te,
                        const int *te_row, const float *ce, int N) {
    const dl_bf16 *b = h->bf16;
    bf16_cache *c = b->cache;
    const int w = h->w;
    size_t nw = (size_t)N * w;
    float *sy = arena_floats(a, nw), *hx = arena_floats(a, nw);
    float *shift = arena_floats(a, nw), *scale = arena_floats(a, nw), *gate = arena_floats(a, nw);
    uint16_t *syb = arena_alloc(a, sizeof(uint16_t) * nw), *u = arena_alloc(a, sizeof(uint16_t) * nw);
    uint16_t *t1 = arena_alloc(a, sizeof(uint16_t) * nw), *xb = arena_alloc(a, sizeof(uint16_t) * N * h->C);
    if (!sy || !hx || !shift || !scale || !gate || !syb || !u || !t1 || !xb) return DISA_ENOMEM;
    time_rows_for(sy, ce, te, te_row, N, w);
    silu_forward(sy, sy, nw);
    bf16_from_f32(syb, sy, nw);
    bf16_from_f32(xb, x, (size_t)N * h->C);
    int rc = bf16_linear_forward(c, &b->in, hx, 0, xb, NULL, N, BF16_EPI_NONE);
    for (int i = 0; !rc && i < h->depth; i++) {
        const dl_resblock *r = &h->blocks[i];
        const dl_block_bf16 *k = &b->blocks[i];
        rc = bf16_linear_forward(c, &k->shift, shift, 0, syb, NULL, N, BF16_EPI_NONE);
        if (!rc) rc = bf16_linear_forward(c, &k->scale, scale, 0, syb, NULL, N, BF16_EPI_NONE);
        if (!rc) rc = bf16_linear_forward(c, &k->gate, gate, 0, syb, NULL, N, BF16_EPI_NONE);
        if (rc) break;
        layernorm_bf16_forward(u, hx, r->ln_w, r->ln_b, shift, scale, N, w, h->eps);
        rc = bf16_linear_forward(c, &k->fc1, t1, 1, u, NULL, N, BF16_EPI_SILU);
        if (!rc) rc = bf16_linear_forward(c, &k->fc2, hx, 0, t1, gate, N, BF16_EPI_GATE_RESIDUAL);
    }
    if (!rc) rc = bf16_linear_forward(c, &b->fshift, shift, 0, syb, NULL, N, BF16_EPI_NONE);
    if (!rc) rc = bf16_linear_forward(c, &b->fscale, scale, 0, syb, NULL, N, BF16_EPI_NONE);
    if (rc) return rc;
    layernorm_bf16_forward(u, hx, NULL, NULL, shift, scale, N, w, h->eps);
    return bf16_linear_forward(c, &b->flin, out, 0, u, NULL, N, BF16_EPI_NONE);
}

int diffloss_forward(const diffloss_net *h, arena *a, float *out, const float *x, const float *te,
                     const float *ce, int N) {
    return diffloss_forward_te(h, a, out, x, te, NULL, ce, N);
}

int diffloss_forward_te(const diffloss_net *h, arena *a, float *out, const float *x, const float *te,
                        const int *te_row, const float *ce, int N) {
    if (h->bf16) {
        size_t mark = arena_mark(a);
        int rc = forward_bf16(h, a, out, x, te, te_row, ce, N);
        arena_reset(a, mark);
        return rc;
    }
    const int w = h->w;
    size_t mark = arena_mark(a);
    float *sy = arena_floats(a, (size_t)N * w);       // silu(t_emb + c_emb)
    float *hx = arena_floats(a, (size_t)N * w);       // residual stream
    float *u = arena_floats(a, (size_t)N * w);
    float *t1 = arena_floats(a, (size_t)N * w);
    float *mod = arena_floats(a, (size_t)N * 3 * w);  // shift | scale | gate
    if (!sy || !hx || !u || !t1 || !mod) return DISA_ENOMEM;
    time_rows_for(sy, ce, te, te_row, N, w);
    silu_forward(sy, sy, (size_t)N * w);
    linear_forward(hx, x, h->in_w, h->in_b, N, h->C, w);
    for (int i = 0; i < h->depth; i++) {
        const dl_resblock *b = &h->blocks[i];
        linear_forward(mod, sy, b->ada_w, b->ada_b, N, w, 3 * w);
        layernorm_forward(u, hx, b->ln_w, b->ln_b, N, w, h->eps);
        rows_for(ROWS_MODULATE, u, mod, NULL, 0, w, 3 * w, N, w);
        linear_forward(t1, u, b->fc1_w, b->fc1_b, N, w, w);
        silu_forward(t1, t1, (size_t)N * w);
        linear_forward(u, t1, b->fc2_w, b->fc2_b, N, w, w);
        rows_for(ROWS_GATE, hx, mod, u, 0, 0, 3 * w, N, w);
    }
    linear_forward(mod, sy, h->fada_w, h->fada_b, N, w, 2 * w);
    layernorm_forward(u, hx, NULL, NULL, N, w, h->eps);
    rows_for(ROWS_MODULATE, u, mod, NULL, 0, w, 2 * w, N, w);
    linear_forward(out, u, h->flin_w, h->flin_b, N, w, 2 * h->C);
    arena_reset(a, mark);
    return 0;
}
