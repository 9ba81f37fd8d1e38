// flowar_sample.h: FlowAR's sample_tokens: the transformer scale by scale, the flow
// head's Euler sampler with classifier-free guidance inside a time interval, and DiSA's
// per-scale step schedule (flow_upper_steps at the first scale down to flow_lower_steps
// at the last), plus its FLOP model.
//
// Mirrors Qinyu-Allen-Zhao/DiSA FlowAR_DiSA models/flowar.py: FlowAR.sample_tokens,
// models/sampler.py: euler_sampler, eval.py's flags.
#ifndef DISA_FLOWAR_SAMPLE_H
#define DISA_FLOWAR_SAMPLE_H
#include <stdint.h>

#include "disa/arena.h"
#include "disa/flowar.h"
#include "disa/sampler.h"

// Sampling settings under eval.py's flag names.
typedef struct flowar_params {
    int upper, lower;   // --flow_upper_steps, --flow_lower_steps: Euler steps at the first / last scale
    double cfg;         // --cfg: 1.0 disables classifier-free guidance
    double guidance;    // --guidance: guidance applies while t <= guidance (euler_sampler's guidance_high)
} flowar_params;

// eval.py defaults: 50 -> 15 steps, guidance 0.9, cfg 1.0; fp32.
void flowar_params_init(flowar_params *p);
// 0, or DISA_ERANGE / DISA_EINVAL with a message naming the flag and the accepted range.
int flowar_params_check(const flowar_params *p);
// Set one field from an eval.py flag name without dashes ("flow_upper_steps",
// "flow_lower_steps", "cfg", "guidance"; FlowAR runs in fp32, flowar_family.c). Returns 0,
// DISA_ENOTFOUND for another name, or DISA_EINVAL naming the flag, value and range.
int flowar_params_set(flowar_params *p, const char *flag, const char *value);
// "flow_upper_steps=25 flow_lower_steps=15 cfg=4.2 guidance=0.9" into buf.
const char *flowar_params_str(const flowar_params *p, char *buf, int n);

// Euler steps asked for at scale s of S: int((upper - lower) * (S-1 - s) / (S-1) + lower).
int flowar_steps_at(const flowar_params *p, int s, int S);
// CFG scale at scale s: (cfg - 1) * s / (S - 1) + 1 (1 at the first scale).
double flowar_cfg_at(const flowar_params *p, int s, int S);

// torch.linspace(start, end, steps, dtype=float64) as torch 1.13's AVX2 kernel computes it,
// bit for bit (blocks of 8 as two 4-lane vectors from a fused base, the rest fused).
void flowar_linspace(double *out /*[steps]*/, double start, double end, int steps);
// euler_sampler's time grid for num_steps: linspace(1, 0.3, n/2) then linspace(0.25, 0,
// n/2 + 1), or linspace(1, 0, 51) for n = 50. Returns the point count (evaluations + 1);
// t needs num_steps + 2 entries.
int flowar_time_grid(double *t, int num_steps);
// Steps of a grid that run guided: cfg_scale > 1 and 0 <= t <= guidance.
int flowar_guided_steps(const double *t, int points, double cfg_scale, double guidance);

// One scale of euler_sampler for B images of N tokens: x [B*N*C] float64 holds the start
// noise and receives the result. c and kv come from flowhead_condition over 2B images
// ([conditional; unconditional]) when the grid has guided steps, else over B (kv blocks
// kv_block floats apart). A guided step evaluates [x; x] against both halves and moves
// x by uncond + cfg_scale (cond - uncond); an unguided one evaluates x against the
// conditional half alone: the official loop's unconditional half is then its own
// trajectory, which no later step reads. *nfe and *n_guided (may be NULL) receive the
// evaluations. Fails with DISA_ENOMEM (arena) or DISA_ECANCELED (poll).
size_t flowar_euler_scratch_bytes(const flowhead *h, int B, int N);
int flowar_euler(const flowhead *h, arena *a, double *x, const float *c, const float *kv, size_t kv_block, int B,
                 int N, int num_steps, double cfg_scale, double guidance, int *nfe, int *n_guided,
                 flowar_poll_fn poll, void *poll_ctx);

typedef struct flowar_sampler {
    const flowar_model *m;
    flowar_params p;
    int max_batch;
    flowar_cache kv;
    arena scratch;
    // Called after every transformer block and flow step: non-zero stops the run with
    // DISA_ECANCELED.
    flowar_poll_fn poll;
    void *poll_ctx;
    // Optional, for parity tests and logs: after every scale, its requested steps,
    // evaluations, guided evaluations, CFG scale and sampled tokens [B, N, C].
    void (*trace)(void *ctx, int scale, int n_steps, int nfe, int n_guided, double cfg, const float *tokens);
    void *trace_ctx;
} flowar_sampler;

// Caches and scratch for batches of up to max_batch images.
int flowar_sampler_init(flowar_sampler *s, const flowar_model *m, const flowar_params *p, int max_batch);
void flowar_sampler_free(flowar_sampler *s);

// Sample tokens [B, seq_h * seq_h, C] for labels [B] (-1: unconditional). Randomness: one
// rng->normals(B, N, C) per scale, the start noise of the conditional images (tape layout
// of tools/golden/flowar_goldens.py: split_tape). Statistics are added to *st (the
// transformer phase includes the class adaLN and z_proj; ar_steps counts scales).
int flowar_sampler_run(flowar_sampler *s, ar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st);

// The tokens of one scale [B, s*s, C] -> the next scale's token inputs [B, t*t, C]:
// bicubic to 16 x 16, area to t x t (sample_tokens between scales). work: 2 * B * C * 256
// floats.
void flowar_interp_tokens(float *out, const float *in, float *work, int B, int C, int s, int t);

// FLOP model ---------------------------------------------------------------------
// Counted GEMM by GEMM as the engine issues them (2 per multiply-add; norms, RoPE,
// activations and the Euler update are not counted), so totals equal blas_flops() of a
// run: per scale s (N = scale^2, T = rows up to this scale, B2 = 2B with CFG) the
// transformer (scale 0 adds every block's ada_lin of the class embeddings, later scales
// z_proj on B * N rows), then the head: flowhead_condition over 2B images when the
// scale has guided steps (else B), and per evaluation the time embedding (one row) and
// the blocks over 2B images when guided, B otherwise.

typedef struct flowar_flops_scale {
    int n_steps, nfe, n_guided;
    uint64_t transformer, head;
} flowar_flops_scale;

typedef struct flowar_flops {
    uint64_t transformer, head;  // equal sample_stats.flops_transformer / flops_head
    uint64_t head_row_steps;     // conditional tokens x evaluations (sample_stats.head_row_steps)
    uint64_t tokens;             // tokens sampled (sample_stats.tokens)
    int scales;
} flowar_flops;

// One transformer pass at scale s over B2 images (without the adaLN and z_proj).
uint64_t flowar_flops_forward(const flowar_config *c, int s, int B2);
// One head evaluation over `images` images of N tokens; the per-scale condition.
uint64_t flowar_flops_head_eval(const flowar_config *c, int images, int N);
uint64_t flowar_flops_head_condition(const flowar_config *c, int images, int N);
// The whole flowar_sampler_run of B images; per [n_scales] may be NULL. Fails with the
// message of flowar_params_check; *out is then zeroed.
int flowar_flops_run(flowar_flops *out, flowar_flops_scale *per, const flowar_config *c, const flowar_params *p,
                     int B);

#endif
