// head.h: one AR step's diffusion head with a step count per row, for the DPM samplers
// (every row the same count) and the adaptive strategy (adaptive.h: a count per token,
// chosen after the first evaluation). The DDPM / DDIM loop of the official samplers with
// one count per AR step stays in ar.c.
//
// Rows are sorted by their number of network evaluations, most first, so the rows still
// running are always a prefix: a row that has finished leaves the batch, and each
// evaluation runs only the rows that need it. Rows at different times share one forward
// pass (diffloss_forward_te: one time embedding per distinct time).
//
// Randomness per image, as the official order: the start noise of its rows; then for
// DDPM (DiSA) every reverse step's noise block of its rows, all `n_blocks` of them
// whatever the counts chosen (n_blocks = the most distinct steps any count in
// lower..upper has: the DiSA layout at upper steps), so the stream of image i never
// depends on its own choices or on other images. The DPM solvers draw only the start
// noise.
#ifndef DISA_HEAD_H
#define DISA_HEAD_H

#include "disa/sampler.h"

// eps [R,C] and var [R,C] from the head's output out [R2, 2C] (eps | var_values; with CFG
// R2 = 2R, conditional rows first): the guided eps of forward_with_cfg,
// eps_u + cfg_iter (eps_c - eps_u), and the conditional half's var_values.
void head_split_out(float *eps, float *var, const float *out, int R, int C, int cfg, float cfg_iter);

// Bytes of sampler scratch head_rows_run needs for up to `rows` rows (B * n_pred).
size_t head_rows_scratch_bytes(const sampler *s, int rows);

// Sample x [B * n_pred, C] (rows in (image, position) order) at AR step `step` from
// ce [R2, w]: cond_embed of the rows (R2 = 2R with CFG: conditional rows, then the
// unconditional ones), which is reordered in place. cfg_iter is the step's guidance
// scale. Adds the head's row-steps and reports the most evaluations a row ran in
// *n_evals. Returns 0 or a DISA_E* code (DISA_ECANCELED when the sampler's poll asks).
int head_rows_run(sampler *s, ar_rng *rng, float *x, float *ce, int B, int n_pred, int step, int cfg,
                  float cfg_iter, int *n_evals, sample_stats *st);

#endif
