// flops.h: the analytic FLOP model of sampling (DESIGN §10), counted GEMM by GEMM exactly
// as the engine issues them, so it equals blas_flops() of a run bit for bit.
//
// 2 FLOPs per multiply-add; only GEMM-shaped work is counted (Linear layers, attention
// QK^T and PV per (image, head), convolutions as im2col GEMMs), as blas.c counts it:
// bias adds, norms, softmax, GELU/SiLU, modulation and the DDPM update are not FLOPs
// here. What each phase issues (src/model/mar.c, diffloss.c, src/sample/ar.c):
//
//   transformer pass, B images, B2 = 2B with CFG, n_known known tokens,
//   Te = buffer + n_known encoder rows per image, Td = buffer + seq decoder rows:
//     z_proj on the B * n_known known tokens only (not doubled: the CFG halves share it)
//     per encoder block (R = B2 * Te): qkv 2R d 3d, QK^T and PV 2 * 2 Te^2 hd per
//       (image, head), proj 2R d d, fc1 2R d h, fc2 2R h d
//     decoder_embed 2 B2 Te E D, then the decoder blocks on B2 * Td rows
//   head, per AR step with R2 = B2 * n_pred rows:
//     cond_embed 2 R2 D w once, then per diffusion step (n = gd_tables_init(..).n, the
//     distinct steps after the sampler's clip): time_embed 2 (256 w + w w) (one row,
//     independent of B), input_proj 2 R2 C w, per res block adaLN 2 R2 w 3w + mlp
//     2 * 2 R2 w w, final adaLN 2 R2 w 2w + linear 2 R2 w 2C.
//
// The mask schedule is the loop's own (mar_mask_step, sampler.h); a step with nothing
// to predict runs no pass.
#ifndef DISA_FLOPS_H
#define DISA_FLOPS_H
#include <stdint.h>

#include "disa/mar.h"
#include "disa/sampler.h"
#include "disa/vae.h"

// One AR step of a batch.
typedef struct flops_step {
    int step;            // AR step index s
    int mask_len;        // tokens still unknown after this step
    int n_known;         // tokens known when the transformer runs
    int n_pred;          // tokens predicted per image
    int diff_steps;      // distinct diffusion steps the head runs (after the clip)
    int rows;            // head rows per diffusion step: B2 * n_pred
    uint64_t transformer;
    uint64_t head;
} flops_step;

// A whole sampler_run of B images.
typedef struct flops_sample {
    uint64_t transformer, head;  // equal sample_stats.flops_transformer / flops_head
    uint64_t head_row_steps;     // equals sample_stats.head_row_steps
    uint64_t tokens;             // equals sample_stats.tokens
    int ar_steps;                // transformer passes (equals sample_stats.ar_steps)
} flops_sample;

// FLOPs of one transformer pass (mar_forward) over B images with n_known known tokens and
// n_pred sampled rows per image (the last decoder block runs on those only).
uint64_t flops_transformer_pass(const mar_config *c, int B, int cfg, int n_known, int n_pred);
// FLOPs of cond_embed over `rows` head rows (once per AR step).
uint64_t flops_head_cond(const mar_config *c, int rows);
// FLOPs of one diffusion step of the head over `rows` rows (time embedding included).
uint64_t flops_head_step(const mar_config *c, int rows);

// The whole schedule of sampler_run(B images) under p: totals into *out and, when steps
// is not NULL, one entry per AR step into steps[p->num_iter] (skipped steps get rows 0
// and zero FLOPs). Fails with DISA_EINVAL (bad params, message from sample_params_check
// or the diffusion tables), DISA_ENOMEM; *out is then zeroed.
int flops_sample_run(flops_sample *out, flops_step *steps, const mar_config *c, const sample_params *p, int B);

// Per-image table: the averages over a batch of B of the numbers above plus the KL-16
// decode (vae_decode_flops; 0 for patch models or v == NULL) and the feature net.
typedef struct flops_image {
    double transformer, head, decode, features, total;  // FLOPs per image
    double nfe_per_token;                                // mean distinct diffusion steps
    int ar_steps;
} flops_image;
int flops_per_image(flops_image *out, const mar_config *c, const sample_params *p, int B, const vae_config *v,
                    int with_features);

#endif
