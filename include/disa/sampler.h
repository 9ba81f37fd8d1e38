// sampler.h: MAR's AR loop (sample_tokens) with the diffusion head and DiSA schedules.
#ifndef DISA_SAMPLER_H
#define DISA_SAMPLER_H
#include <stdint.h>

#include "disa/arena.h"
#include "disa/diffusion.h"
#include "disa/adaptive.h"
#include "disa/disa_sched.h"
#include "disa/family.h"
#include "disa/dpm.h"
#include "disa/mar.h"
#include "disa/rng.h"

// Sampling settings under MAR/DiSA's main_mar.py flag names.
typedef struct sample_params {
    int num_iter;            // --num_iter: AR steps K
    double cfg;              // --cfg: 1.0 disables classifier-free guidance
    int cfg_linear;          // --cfg_schedule: 1 linear, 0 constant
    double temperature;      // --temperature
    gd_sampler sampler;      // --diff_sampler: default | DiSA | DDIM | DPM_Solver | DPM_Solver++
    int upper, lower;        // --diff_upper_steps / --diff_lower_steps ("default" uses upper)
    disa_strategy strategy;  // --diff_annealing_strategy (adaptive: LINEAR here and adaptive = 1)
    precision_kind precision; // --precision fp32 | bf16 | auto: the model's matmuls (bf16.h)
    int dpm_order;           // --dpm_order 1..3: the DPM samplers' multistep order (official call: 1)
    int adaptive;            // --diff_annealing_strategy adaptive (adaptive.h): steps per token from a signal
    double budget;           // --diff_budget: adaptive's mean requested steps per token, in [lower, upper]
    adapt_signal signal;     // --diff_adaptive_signal: what adaptive measures
} sample_params;

// Official defaults: K 64, cfg 1.0 linear, temperature 1.0, DiSA 50 -> 5 linear.
void sample_params_init(sample_params *p);
// 0, or DISA_EINVAL/ERANGE with a message naming the flag and the accepted range.
int sample_params_check(const sample_params *p);
// Whether p's settings run at precision prec (resolved: FP32 or BF16). bf16 runs the
// default, DiSA and DDIM samplers; the DPM solvers and the adaptive strategy are
// validated in fp32 only, so they are DISA_EINVAL at BF16 with one message naming the
// setting (from_auto: the precision was "auto", and the message says it resolved to bf16).
int sample_params_check_precision(const sample_params *p, precision_kind prec, int from_auto);
// Set one field from a main_mar.py flag name without dashes ("num_iter", "cfg",
// "cfg_schedule", "temperature", "diff_sampler", "diff_upper_steps", "diff_lower_steps",
// "diff_annealing_strategy", and disa's "precision", "dpm_order", "diff_budget",
// "diff_adaptive_signal"). Returns 0, DISA_ENOTFOUND for another name, or
// DISA_EINVAL with a message naming the flag, the value and what is accepted.
int sample_params_set(sample_params *p, const char *flag, const char *value);
// "num_iter=64 cfg=2.9 cfg_schedule=linear ..." into buf.
const char *sample_params_str(const sample_params *p, char *buf, int n);
// An integer setting of any family: flag_int (flags.h) into an int, with its message.
int sample_flag_int(const char *flag, const char *value, int lo, int hi, int *out);

// Diffusion steps the head runs at AR step s (after the clip merges duplicates).
int sample_params_steps_at(const sample_params *p, const int *table, int s);


// Where the loop's randomness comes from: per-image Philox streams in production, a
// recorded tape in parity tests. Rows are always in (image, row) order.
typedef struct ar_rng ar_rng;
struct ar_rng {
    // orders [B, L]: one permutation of 0..L-1 per image.
    int (*orders)(ar_rng *r, int *orders, int B, int L);
    // out [B * rows, C] standard normals; image b fills rows [b*rows, (b+1)*rows).
    int (*normals)(ar_rng *r, float *out, int B, int rows, int C);
};

// Philox: image b draws from streams keyed by (seed, index[b], purpose), so its numbers
// do not depend on which images share its batch. Up to `max_batch` images.
typedef struct ar_rng_philox {
    ar_rng base;
    int B;
    rng_stream *order, *noise;  // [B] each
} ar_rng_philox;
int ar_rng_philox_init(ar_rng_philox *r, uint64_t seed, const uint32_t *index, int B);
void ar_rng_philox_free(ar_rng_philox *r);

// Tape: orders [B, L] and per-image recorded draws tape [B, T], each image's row read
// in order (tools/golden/mar_goldens.py: split_tape writes the official loop's draws in
// this layout: per AR step the start noise of the image's rows, then each reverse
// step's noise). Asking for more than T values is an error naming the image.
typedef struct ar_rng_tape {
    ar_rng base;
    const int64_t *orders;
    const float *tape;
    int B, L;
    int64_t T;
    int64_t *pos;  // [B] read position per image
} ar_rng_tape;
int ar_rng_tape_init(ar_rng_tape *r, const int64_t *orders, const float *tape, int B, int L, int64_t T);
void ar_rng_tape_free(ar_rng_tape *r);
// What every recorded tape shares (this one and xAR's, xar_sample.h): the read positions
// of B images, all 0 (*pos the caller's to free; DISA_ENOMEM), and the read of each
// image's next n values of `size` bytes from tape [B, T] into out [B, n], pos advanced;
// DISA_EINVAL naming the first image with fewer than n values left.
int ar_tape_start(int64_t **pos, int B);
int ar_tape_read(void *out, const void *tape, size_t size, int64_t *pos, int B, int64_t T, int64_t n);

typedef struct sampler {
    const mar_model *m;
    sample_params p;
    int *steps;          // [K] requested diffusion steps per AR step (adaptive: upper, the most)
    gd_tables *tables;   // indexed by requested step count (lower..upper), zeroed elsewhere
    dpm_schedule dpm;    // DPM samplers: the noise schedule
    dpm_plan *plans;     // DPM samplers: indexed by step count like tables
    adapt_state *astate; // adaptive: [max_batch] per-image state, reset by sampler_run
    int n_blocks;        // adaptive DDPM: noise blocks drawn per AR step (head.h)
    int max_steps;
    int max_batch;
    arena scratch;
    // Called after every transformer block and diffusion step (rank 0 answers MPI
    // requests there; signals stop a unit): non-zero stops the run with DISA_ECANCELED.
    mar_poll_fn poll;
    void *poll_ctx;
    // Optional, for parity tests and logs: called after every AR step with the step's
    // mask length, diffusion steps (distinct, after the clip), rows per image, CFG scale
    // and the tokens [B, seq, token_dim] so far.
    void (*trace)(void *ctx, int step, int mask_len, int n_steps, int n_pred, float cfg, const float *tokens);
    void *trace_ctx;
} sampler;

// Arena bytes of a sampler for batches of up to max_batch images (cfg: with the
// unconditional half); what an AR step needs at most.
size_t sampler_scratch_bytes(const mar_model *m, int max_batch, int cfg);

// MAR's mask schedule at AR step `step` of K with n_unknown of L tokens unknown
// (MaskGIT's cosine, then MAR's clamp), for the loop and the FLOP model alike.
typedef struct mask_step {
    int mask_len;  // tokens still unknown after the step: max(1, min(n_unknown - 1, floor(L cos(pi/2 (step+1)/K))))
    int lo;        // predict order[lo .. n_unknown): lo = mask_len, 0 at the last step
    int n_pred;    // tokens predicted per image (<= 0: the step runs no pass)
} mask_step;
mask_step mar_mask_step(int L, int K, int step, int n_unknown);

// One reverse step of the diffusion head (DiffLoss.sample's loop body, DESIGN §6) over R
// trajectories x [R, C] at spaced index i: with CFG the network runs on [x; x] against
// [c_cond; c_uncond] (x has 2R rows; the copy is made here) and eps = eps_u + s (eps_c -
// eps_u); the variance channels come from the conditional half; then the DDPM (noise
// [R, C], drawn by the caller) or DDIM update of x in place.
typedef struct head_step_opts {
    gd_sampler sampler;
    float temperature;
    int cfg;            // with the unconditional half
    float cfg_scale;    // this AR step's CFG scale
} head_step_opts;
typedef struct head_work {
    float *te;          // [w] time embedding
    float *out;         // [R2, 2C] the network's eps | var_values
    float *eps, *var;   // [R, C] guided eps, conditional variance values
} head_work;
// Work rows for R trajectories from arena a (DISA_ENOMEM when it is too small).
int head_work_alloc(head_work *w, arena *a, const diffloss_net *h, int R, int cfg);
// ce [R2, w]: diffloss_cond of the conditioning rows. Fails only when the arena is too small.
int mar_head_step(const diffloss_net *h, arena *a, const head_work *w, float *x, const float *ce, const float *noise,
                  const gd_tables *tb, int i, const head_step_opts *o, int R);

// Prepare tables and scratch for batches of up to max_batch images. The model must be
// prepared for p->precision (mar_prepare; AUTO resolves here, and s->p holds what it
// became): DISA_EINVAL names both when it is not. Also fails with the message of a bad
// parameter or of memory. sampler_run refuses once the model was prepared for another.
int sampler_init(sampler *s, const mar_model *m, const sample_params *p, int max_batch);
void sampler_free(sampler *s);

// Sample tokens [B, seq_len, token_dim] for labels [B] (-1 = unconditional).
int sampler_run(sampler *s, ar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st);

#endif
