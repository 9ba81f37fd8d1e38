// flops.c: the analytic FLOP model of sampling (flops.h, DESIGN §10).
// Mirrors the GEMMs of src/model/mar.c (mar_forward, block_forward), src/nn/attention.c,
// src/model/diffloss.c and src/sample/ar.c (sampler_run); a change to any of them shows
// up as a failure of tests/unit/test_flops.c.
#include "disa/flops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "disa/diffusion.h"
#include "disa/disa_sched.h"
#include "disa/err.h"
#include "disa/inception.h"

// 2 M N K, the count blas_sgemm adds (nothing when a side is empty).
static uint64_t gemm(uint64_t M, uint64_t N, uint64_t K) {
    return 2ull * M * N * K;
}

// ----------------------------------------------------------------------------
// transformer

// timm Block over N images of T rows of width d: qkv, per-(image, head) QK^T and PV, proj, fc1, fc2.
static uint64_t block_flops(int N, int T, int d, int hidden, int heads) {
    uint64_t R = (uint64_t)N * T, hd = (uint64_t)(d / heads);
    uint64_t f = gemm(R, 3 * (uint64_t)d, d) + gemm(R, d, d) + gemm(R, hidden, d) + gemm(R, d, hidden);
    f += (uint64_t)N * heads * (gemm(T, T, hd) + gemm(T, hd, T));
    return f;
}

// The last decoder block at P output rows per image (block_forward_rows): k and v for all
// T rows, q, attention, proj and MLP for the P rows.
static uint64_t block_rows_flops(int N, int T, int P, int d, int hidden, int heads) {
    uint64_t R = (uint64_t)N * T, RP = (uint64_t)N * P, hd = (uint64_t)(d / heads);
    uint64_t f = gemm(R, 2 * (uint64_t)d, d) + gemm(RP, d, d) + gemm(RP, d, d) + gemm(RP, hidden, d) + gemm(RP, d, hidden);
    f += (uint64_t)N * heads * (gemm(P, T, hd) + gemm(P, hd, T));
    return f;
}

uint64_t flops_transformer_pass(const mar_config *c, int B, int cfg, int n_known, int n_pred) {
    int B2 = cfg ? 2 * B : B, Te = c->buffer_size + n_known, Td = c->buffer_size + c->seq_len;
    uint64_t f = 0;
    if (n_known > 0) f += gemm((uint64_t)B * n_known, c->enc_dim, c->token_dim);  // z_proj, shared by both halves
    f += (uint64_t)c->enc_depth * block_flops(B2, Te, c->enc_dim, c->enc_hidden, c->enc_heads);
    f += gemm((uint64_t)B2 * Te, c->dec_dim, c->enc_dim);                         // decoder_embed
    if (c->dec_depth > 0) {
        f += (uint64_t)(c->dec_depth - 1) * block_flops(B2, Td, c->dec_dim, c->dec_hidden, c->dec_heads);
        f += n_pred > 0 ? block_rows_flops(B2, Td, n_pred, c->dec_dim, c->dec_hidden, c->dec_heads)
                        : block_flops(B2, Td, c->dec_dim, c->dec_hidden, c->dec_heads);
    }
    return f;
}

// ----------------------------------------------------------------------------
// diffusion head

uint64_t flops_head_cond(const mar_config *c, int rows) {
    return gemm((uint64_t)rows, c->diffloss_w, c->dec_dim);
}

uint64_t flops_head_step(const mar_config *c, int rows) {
    uint64_t w = (uint64_t)c->diffloss_w, N = (uint64_t)rows, C = (uint64_t)c->token_dim;
    uint64_t f = gemm(1, w, 256) + gemm(1, w, w);               // time_embed: one row per step
    f += gemm(N, w, C);                                          // input_proj
    f += (uint64_t)c->diffloss_d * (gemm(N, 3 * w, w) + 2 * gemm(N, w, w));  // adaLN + mlp per res block
    f += gemm(N, 2 * w, w) + gemm(N, 2 * C, w);                  // final adaLN + linear
    return f;
}

// ----------------------------------------------------------------------------
// the AR schedule

int flops_sample_run(flops_sample *out, flops_step *steps, const mar_config *c, const sample_params *p, int B) {
    memset(out, 0, sizeof *out);
    int rc = sample_params_check(p);
    if (rc) return rc;
    if (B < 1) return disa_err(DISA_EINVAL, "flops: batch must be >= 1, got %d", B);
    const int K = p->num_iter, L = c->seq_len, cfg = p->cfg != 1.0, B2 = cfg ? 2 * B : B;
    int *req = calloc((size_t)K, sizeof(int));
    int *distinct = calloc((size_t)p->upper + 1, sizeof(int));  // distinct steps by requested count, 0 = unknown
    if (!req || !distinct) {
        rc = disa_err(DISA_ENOMEM, "flops: out of memory");
        goto fail;
    }
    const int adaptive = p->adaptive && p->sampler != GD_SAMPLER_DEFAULT;
    if (p->sampler == GD_SAMPLER_DEFAULT) {
        for (int s = 0; s < K; s++) req[s] = p->upper;
    } else if (adaptive) {
        // The counts are chosen per token while sampling (adaptive.h); the model gives
        // every token the budget rounded, the most the rule spends on average. The
        // engine's own count is the measurement.
        int n = (int)nearbyint(p->budget);
        for (int s = 0; s < K; s++) req[s] = n < p->lower ? p->lower : n > p->upper ? p->upper : n;
    } else if ((rc = disa_steps_for(req, K, p->upper, p->lower, p->strategy)) != 0) {
        goto fail;
    }
    int n_unknown = L;
    for (int s = 0; s < K; s++) {
        flops_step st = {.step = s};
        mask_step ms = mar_mask_step(L, K, s, n_unknown);  // the schedule of sampler_run
        int mask_len = ms.mask_len, lo = ms.lo, n_pred = ms.n_pred;
        st.mask_len = mask_len;
        st.n_known = L - n_unknown;
        if (n_pred <= 0) {
            n_unknown = mask_len;
            if (steps) steps[s] = st;
            continue;
        }
        int n = req[s];
        if (!distinct[n] && gd_sampler_is_dpm(p->sampler)) {
            distinct[n] = n;  // a DPM solver evaluates the network once per step
        } else if (!distinct[n]) {
            gd_tables t;
            if ((rc = gd_tables_init(&t, n, p->sampler)) != 0) goto fail;
            distinct[n] = t.n;
            gd_tables_free(&t);
        }
        st.n_pred = n_pred;
        st.diff_steps = distinct[n];
        st.rows = B2 * n_pred;
        st.transformer = flops_transformer_pass(c, B, cfg, st.n_known, n_pred);
        st.head = flops_head_cond(c, st.rows) + (uint64_t)st.diff_steps * flops_head_step(c, st.rows);
        out->transformer += st.transformer;
        out->head += st.head;
        out->head_row_steps += (uint64_t)B * n_pred * st.diff_steps;
        out->tokens += (uint64_t)B * n_pred;
        out->ar_steps++;
        n_unknown = lo;
        if (steps) steps[s] = st;
    }
fail:
    if (rc) memset(out, 0, sizeof *out);
    free(req);
    free(distinct);
    return rc;
}

// ----------------------------------------------------------------------------
// per image

int flops_per_image(flops_image *out, const mar_config *c, const sample_params *p, int B, const vae_config *v,
                    int with_features) {
    memset(out, 0, sizeof *out);
    flops_sample s;
    int rc = flops_sample_run(&s, NULL, c, p, B);
    if (rc) return rc;
    out->transformer = (double)s.transformer / B;
    out->head = (double)s.head / B;
    if (v && c->tokenizer == TOKENIZER_KL16) out->decode = vae_decode_flops(v, c->seq_h * c->patch_size, c->seq_h * c->patch_size);
    if (with_features) out->features = (double)inception_flops(1);
    out->total = out->transformer + out->head + out->decode + out->features;
    out->nfe_per_token = s.tokens ? (double)s.head_row_steps / s.tokens : 0;
    out->ar_steps = s.ar_steps;
    return 0;
}
