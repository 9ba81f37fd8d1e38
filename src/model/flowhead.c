// flowhead.c: FlowAR's flow head, SimpleTransformerAdaLN: the velocity of one scale's
// tokens given the time and the transformer's output at those tokens.
// Mirrors FlowAR_DiSA models/flowmodel.py: SimpleTransformerAdaLN.forward, Block_v1 and
// Block_v2.forward, Attention, CrossAttention, FinalLayer, TimestepEmbedder.
//
// Work that does not change over a scale's flow steps is done once per scale
// (flowhead_condition): cond_embed of the condition and, in Block_v2, the
// cross-attention keys and values (crossattn.kv(norm2_2(condition)) with RoPE). The
// time embedding and Block_v2's ada_lin_attn depend on the time only: one row per step.
#include "disa/err.h"
#include "disa/flowar.h"
#include "disa/loader.h"
#include "disa/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int flowhead_init(flowhead *h, int C, int w, int z_dim, int depth, int cross) {
    memset(h, 0, sizeof *h);
    h->C = C;
    h->w = w;
    h->z_dim = z_dim;
    h->depth = depth;
    h->cross = cross;
    h->heads = w / 64;  // model_channels // 64 (flowmodel.py)
    h->hidden = (int)((double)w * 4.0 * 2 / 3.0);
    h->eps = 1e-6f;
    if (h->heads < 1 || w % h->heads || (w / h->heads) % 4)
        return disa_err(DISA_EINVAL, "flow head width %d: needs >= 64 channels in heads of a multiple of 4", w);
    h->blocks = calloc((size_t)depth + 1, sizeof(flowhead_block));
    return h->blocks ? 0 : disa_err(DISA_ENOMEM, "flow head: out of memory");
}

void flowhead_free(flowhead *h) {
    free(h->blocks);
    h->blocks = NULL;
    rope2d_free(&h->rope);
}

#define SH(...) (const int64_t[]){__VA_ARGS__}

int flowhead_table_count(const flowhead *h) { return 12 + h->depth * (h->cross ? 21 : 12); }

void flowhead_table(st_table *t, flowhead *h, const char *p) {
    const int W = h->w, Z = h->z_dim, C = h->C, H = h->hidden, q = W / h->heads / 4;
    loader_add_head_embeds(t, (const float **const[]){&h->t0_w, &h->t0_b, &h->t2_w, &h->t2_b, &h->cond_w, &h->cond_b,
                                                      &h->in_w, &h->in_b},
                           W, Z, C, p);
    for (int i = 0; i < h->depth; i++) {
        flowhead_block *b = &h->blocks[i];
        char pre[160];
        snprintf(pre, sizeof pre, "%sres_blocks.%d.", p, i);
        loader_add_attn(t, (const float **const[]){&b->qkv_w, NULL, &b->proj_w, &b->proj_b}, W, pre);
        st_table_add(t, &b->freqs, 1, SH(q), "%sattn.rope.freqs", pre);
        if (h->cross) {
            st_table_add(t, &b->q_w, 2, SH(W, W), "%scrossattn.q.weight", pre);
            st_table_add(t, &b->kv_w, 2, SH(2 * W, Z), "%scrossattn.kv.weight", pre);
            st_table_add(t, &b->xproj_w, 2, SH(W, W), "%scrossattn.proj.weight", pre);
            st_table_add(t, &b->xproj_b, 1, SH(W), "%scrossattn.proj.bias", pre);
            st_table_add(t, &b->xfreqs, 1, SH(q), "%scrossattn.rope.freqs", pre);
            st_table_add(t, &b->n21_w, 1, SH(W), "%snorm2_1.weight", pre);
            st_table_add(t, &b->n22_w, 1, SH(Z), "%snorm2_2.weight", pre);
        }
        const float **const mlp[] = {&b->fc1g_w, &b->fc1g_b, &b->fc1x_w, &b->fc1x_b, &b->fc2_w, &b->fc2_b};
        loader_add_swiglu(t, mlp, W, H, pre);
        if (h->cross) {
            st_table_add(t, &b->ada_attn_w, 2, SH(3 * W, W), "%sada_lin_attn.weight", pre);
            st_table_add(t, &b->ada_attn_b, 1, SH(3 * W), "%sada_lin_attn.bias", pre);
            st_table_add(t, &b->ada_mlp_w, 2, SH(3 * W, W), "%sada_lin_mlp.weight", pre);
            st_table_add(t, &b->ada_mlp_b, 1, SH(3 * W), "%sada_lin_mlp.bias", pre);
        } else {
            st_table_add(t, &b->ada_w, 2, SH(6 * W, W), "%sada_lin.weight", pre);
            st_table_add(t, &b->ada_b, 1, SH(6 * W), "%sada_lin.bias", pre);
        }
    }
    st_table_add(t, &h->fada_w, 2, SH(2 * W, W), "%sfinal_layer.adaLN_modulation.1.weight", p);
    st_table_add(t, &h->fada_b, 1, SH(2 * W), "%sfinal_layer.adaLN_modulation.1.bias", p);
    st_table_add(t, &h->flin_w, 2, SH(C, W), "%sfinal_layer.linear.weight", p);
    st_table_add(t, &h->flin_b, 1, SH(C), "%sfinal_layer.linear.bias", p);
}

int flowhead_prepare(flowhead *h, const int *grids, int n, const char *label) {
    int q = h->w / h->heads / 4;
    const float *f0 = h->blocks[0].freqs;
    for (int i = 0; i < h->depth; i++) {
        const flowhead_block *b = &h->blocks[i];
        if (memcmp(b->freqs, f0, sizeof(float) * (size_t)q) != 0 ||
            (h->cross && memcmp(b->xfreqs, f0, sizeof(float) * (size_t)q) != 0))
            return disa_err(DISA_EFORMAT, "%s: tensor 'flownet.res_blocks.%d.%s.rope.freqs' differs from block 0's "
                            "attn.rope.freqs: the RoPE frequencies are computed, every block holds the same", label,
                            i, memcmp(b->freqs, f0, sizeof(float) * (size_t)q) ? "attn" : "crossattn");
    }
    int rc = rope2d_init(&h->rope, f0, h->w / h->heads, grids, n);
    return rc ? disa_err_wrap(rc, "%s: flow head: ", label) : 0;
}

int64_t flowhead_time_index(double t) {
    // time_input.to(float32) then (t * 1000).long(): a float32 product, truncated.
    float tf = (float)t;
    float p = tf * 1000.0f;
    return (int64_t)p;
}

// ----------------------------------------------------------------------------
// per scale

size_t flowhead_condition_scratch_bytes(const flowhead *h, int R) {
    return ((size_t)R * h->z_dim + 16) * sizeof(float) + 64;
}

int flowhead_condition(const flowhead *h, arena *a, float *c, float *kv, const float *z, int images, int N) {
    const int W = h->w, R = images * N, hd = W / h->heads, ft = (int)lround(sqrt((double)N));
    linear_forward(c, z, h->cond_w, h->cond_b, R, h->z_dim, W);
    if (!h->cross) return 0;
    size_t mark = arena_mark(a);
    float *zn = arena_floats(a, (size_t)R * h->z_dim);
    if (!zn) return DISA_ENOMEM;
    for (int i = 0; i < h->depth; i++) {
        const flowhead_block *b = &h->blocks[i];
        float *kvb = kv + (size_t)i * R * 2 * W;
        flow_rmsnorm_forward(zn, z, b->n22_w, R, h->z_dim, h->eps);
        linear_forward(kvb, zn, b->kv_w, NULL, R, h->z_dim, 2 * W);
        // kv rows are [k | v]; RoPE on the keys, per image's grid.
        for (int im = 0; im < images; im++)
            rope2d_apply(kvb + (size_t)im * N * 2 * W, 2 * (size_t)W, h->rope.cos_t[ft], h->rope.sin_t[ft], N,
                         h->heads, hd);
    }
    arena_reset(a, mark);
    return 0;
}

// ----------------------------------------------------------------------------
// one evaluation

size_t flowhead_scratch_bytes(const flowhead *h, int images, int N) {
    size_t R = (size_t)images * N, W = (size_t)h->w, H = (size_t)h->hidden;
    // te, emb, tact, a1 rows; x, y, ln, att, o; ada (6w); qkv (3w); g, u; scores.
    size_t floats = 256 + 6 * W + R * W * 5 + R * 6 * W + R * 3 * W + 2 * R * H + (size_t)N * N;
    return floats * sizeof(float) + 20 * 64;
}

// Self-attention of every image's N rows: qkv [R, 3w] (no bias), RoPE on q and k, the
// attention, into att [R, w].
static void self_attention(const flowhead *h, const flowhead_block *b, float *att, float *qkv, const float *ln,
                           float *scr, int images, int N, int ft) {
    const int W = h->w, R = images * N, hd = W / h->heads;
    linear_forward(qkv, ln, b->qkv_w, NULL, R, W, 3 * W);
    for (int im = 0; im < images; im++) {
        float *qi = qkv + (size_t)im * N * 3 * W;
        rope2d_apply(qi, 3 * (size_t)W, h->rope.cos_t[ft], h->rope.sin_t[ft], N, h->heads, hd);
        rope2d_apply(qi + W, 3 * (size_t)W, h->rope.cos_t[ft], h->rope.sin_t[ft], N, h->heads, hd);
    }
    attention_kv_batch_forward(att, qkv, 3 * (size_t)W, (size_t)N * 3 * W, qkv + W, qkv + 2 * W, 3 * (size_t)W,
                         (size_t)N * 3 * W, scr, images, N, N, W, h->heads);
}

// x += mlp(ln) * gamma: the SwiGLU MLP on ln [R, w] (ln is overwritten).
static void mlp_gated(const flowhead *h, const flowhead_block *b, float *x, float *ln, float *g, float *u,
                      const float *gamma, size_t ld, int group, int R) {
    const int W = h->w, H = h->hidden;
    linear_forward(g, ln, b->fc1g_w, b->fc1g_b, R, W, H);
    linear_forward(u, ln, b->fc1x_w, b->fc1x_b, R, W, H);
    swiglu_gelu_forward(g, g, u, (size_t)R * H);
    linear_forward(ln, g, b->fc2_w, b->fc2_b, R, H, W);
    gated_add(x, ln, gamma, ld, group, R, W);
}

int flowhead_forward(const flowhead *h, arena *a, float *out, const float *x, int64_t t_index, const float *c,
                     const float *kv, size_t kv_block, int images, int N) {
    const int W = h->w, R = images * N, hd = W / h->heads, ft = (int)lround(sqrt((double)N));
    size_t mark = arena_mark(a);
    float *emb = arena_floats(a, 256), *te = arena_floats(a, W), *tact = arena_floats(a, W);
    float *a1 = arena_floats(a, 3 * (size_t)W);
    float *xs = arena_floats(a, (size_t)R * W), *y = arena_floats(a, (size_t)R * W);
    float *ln = arena_floats(a, (size_t)R * W), *att = arena_floats(a, (size_t)R * W);
    float *ada = arena_floats(a, (size_t)R * 6 * W), *qkv = arena_floats(a, (size_t)R * 3 * W);
    float *g = arena_floats(a, (size_t)R * h->hidden), *u = arena_floats(a, (size_t)R * h->hidden);
    float *scr = arena_floats(a, (size_t)N * N);
    if (!emb || !te || !tact || !a1 || !xs || !y || !ln || !att || !ada || !qkv || !g || !u || !scr)
        return DISA_ENOMEM;

    // t = time_embed(t) (one row: every token of the step shares the time).
    gd_timestep_embedding(emb, (float)t_index, 256, 10000.0f);
    linear_forward(tact, emb, h->t0_w, h->t0_b, 1, 256, W);
    silu_forward(tact, tact, (size_t)W);
    linear_forward(te, tact, h->t2_w, h->t2_b, 1, W, W);
    // y = SiLU(c + t): the input of Block_v1's ada_lin, Block_v2's ada_lin_mlp and the
    // final adaLN alike.
    for (int r = 0; r < R; r++)
        for (int k = 0; k < W; k++) y[(size_t)r * W + k] = c[(size_t)r * W + k] + te[k];
    silu_forward(y, y, (size_t)R * W);
    if (h->cross) silu_forward(tact, te, (size_t)W);  // Block_v2: ada_lin_attn(SiLU(t))

    linear_forward(xs, x, h->in_w, h->in_b, R, h->C, W);
    for (int i = 0; i < h->depth; i++) {
        const flowhead_block *b = &h->blocks[i];
        if (!h->cross) {
            // Block_v1: per token gamma1, gamma2, scale1, scale2, shift1, shift2.
            const size_t ld = 6 * (size_t)W;
            linear_forward(ada, y, b->ada_w, b->ada_b, R, W, 6 * W);
            flow_rmsnorm_forward(ln, xs, NULL, R, W, h->eps);
            adaln_modulate(ln, ada + 2 * W, ada + 4 * W, ld, 1, R, W);
            self_attention(h, b, att, qkv, ln, scr, images, N, ft);
            linear_forward(ln, att, b->proj_w, b->proj_b, R, W, W);
            gated_add(xs, ln, ada, ld, 1, R, W);
            flow_rmsnorm_forward(ln, xs, NULL, R, W, h->eps);
            adaln_modulate(ln, ada + 3 * W, ada + 5 * W, ld, 1, R, W);
            mlp_gated(h, b, xs, ln, g, u, ada + W, ld, 1, R);
            continue;
        }
        // Block_v2: attention modulated by gamma1, scale1, shift1 of the time alone
        // (one row for every token), the ungated cross-attention, then the MLP with the
        // per-token gamma2, scale2, shift2.
        linear_forward(a1, tact, b->ada_attn_w, b->ada_attn_b, 1, W, 3 * W);
        linear_forward(ada, y, b->ada_mlp_w, b->ada_mlp_b, R, W, 3 * W);
        flow_rmsnorm_forward(ln, xs, NULL, R, W, h->eps);
        adaln_modulate(ln, a1 + W, a1 + 2 * W, 0, 1, R, W);
        self_attention(h, b, att, qkv, ln, scr, images, N, ft);
        linear_forward(ln, att, b->proj_w, b->proj_b, R, W, W);
        gated_add(xs, ln, a1, 0, 1, R, W);
        // crossattn(norm2_1(x), norm2_2(condition)): keys and values precomputed.
        flow_rmsnorm_forward(ln, xs, b->n21_w, R, W, h->eps);
        linear_forward(qkv, ln, b->q_w, NULL, R, W, W);
        for (int im = 0; im < images; im++)
            rope2d_apply(qkv + (size_t)im * N * W, (size_t)W, h->rope.cos_t[ft], h->rope.sin_t[ft], N, h->heads, hd);
        const float *kvb = kv + (size_t)i * kv_block;
        attention_kv_batch_forward(att, qkv, (size_t)W, (size_t)N * W, kvb, kvb + W, 2 * (size_t)W, (size_t)N * 2 * W, scr,
                             images, N, N, W, h->heads);
        linear_forward(ln, att, b->xproj_w, b->xproj_b, R, W, W);
        gated_add(xs, ln, NULL, 0, 1, R, W);
        flow_rmsnorm_forward(ln, xs, NULL, R, W, h->eps);
        adaln_modulate(ln, ada + W, ada + 2 * W, 3 * (size_t)W, 1, R, W);
        mlp_gated(h, b, xs, ln, g, u, ada, 3 * (size_t)W, 1, R);
    }
    // FinalLayer(x, c + t): shift, scale = adaLN_modulation(c + t); linear(modulate(norm(x))).
    linear_forward(ada, y, h->fada_w, h->fada_b, R, W, 2 * W);
    flow_rmsnorm_forward(ln, xs, NULL, R, W, h->eps);
    adaln_modulate(ln, ada + W, ada, 2 * (size_t)W, 1, R, W);
    linear_forward(out, ln, h->flin_w, h->flin_b, R, W, h->C);
    arena_reset(a, mark);
    return 0;
}
