// xar_sample.h: xAR's AR loop (sample_tokens) with its flow samplers and DiSA step
// annealing, and the FLOP model of it.
//
// Mirrors Qinyu-Allen-Zhao/DiSA xAR_DiSA/models/xar.py: xAR.sample_tokens and
// models/sampler.py: euler_maruyama_sampler, euler_sampler, get_score_from_velocity.
// One AR step per group (xar.h): start from Gaussian latents of the group, integrate the
// velocity from t = 1 to 0 in float64 with n network calls, n from the DiSA schedule;
// the result (rounded to float32) is the group's tokens and the clean context of the
// next step.
#ifndef DISA_XAR_SAMPLE_H
#define DISA_XAR_SAMPLE_H
#include <stdint.h>

#include "disa/arena.h"
#include "disa/rng.h"
#include "disa/sampler.h"
#include "disa/xar.h"

typedef enum {
    XAR_SAMPLER_EULER_MARUYAMA,  // "euler_maruyama": what sample_tokens uses
    XAR_SAMPLER_EULER,           // "euler": models/sampler.py euler_sampler
    XAR_SAMPLER_COUNT
} xar_flow_sampler;
const char *xar_flow_sampler_name(xar_flow_sampler s);
int xar_flow_sampler_parse(const char *s, xar_flow_sampler *out);

// Sampling settings under xAR_DiSA eval.py's flag names.
typedef struct xar_params {
    int upper, lower;          // --flow_upper_steps / --flow_lower_steps (--num_steps n sets both)
    double cfg;                // --cfg: 1.0 disables classifier-free guidance
    xar_flow_sampler sampler;  // --flow_sampler (disa's): euler_maruyama (official) | euler
} xar_params;

// eval.py defaults: 50 -> 15 steps, cfg 1.0 (linear schedule), Euler-Maruyama.
void xar_params_init(xar_params *p);
// 0, or DISA_ERANGE/EINVAL with a message naming the flag and the accepted range.
int xar_params_check(const xar_params *p);
// Set one field from a flag name without dashes: "flow_upper_steps", "flow_lower_steps",
// "num_steps" (the original xAR eval.py's constant count: both), "cfg", "cfg_schedule"
// (only "linear": the one schedule sample_tokens has), "flow_sampler". xAR runs in fp32
// (the family refuses --precision bf16, xar_family.c).
// Returns 0, DISA_ENOTFOUND for another name, or DISA_EINVAL naming the flag, the value
// and what is accepted.
int xar_params_set(xar_params *p, const char *flag, const char *value);
// "flow_upper_steps=50 flow_lower_steps=15 cfg=2.7 cfg_schedule=linear ..." into buf.
const char *xar_params_str(const xar_params *p, char *buf, int n);

// Flow steps at AR step s of K = clusters: int((u - s) / u * (upper - lower) + lower),
// u = K - 1, in double as the official Python.
int xar_steps_at(const xar_params *p, int clusters, int s);
// Guidance scale at AR step s: (cfg - 1) * s / (K - 1) + 1 (1 at the first step).
double xar_cfg_at(const xar_params *p, int clusters, int s);

// The times t[0..n] of an n-step flow: Euler-Maruyama linspace(1, 0.04, n) then 0;
// Euler linspace(1, 0, n + 1). linspace as torch defines it: start + i step for the
// first half, end - (steps - 1 - i) step for the second (torch's vectorised CPU kernel
// can differ by an ulp; the time indices do not).
void xar_time_grid(double *t /*[n+1]*/, xar_flow_sampler s, int n);

// One flow update of N rows of C values in float64, with the official operation order.
// v_c [N, C] the conditional velocity, v_u [N, C] the unconditional one or NULL (no
// guidance: scale <= 1 or no CFG batch), eps [N, C] the step's Gaussian draws (Euler-
// Maruyama steps but the last; NULL otherwise). Euler-Maruyama: drift v - t score(v)
// (score from the velocity on the linear path), guided, x += drift dt + sqrt(2t |dt|)
// eps; the last step (t 0.04 -> 0) without noise. Euler: x += (t_next - t_cur) v.
void xar_flow_update(double *x /*[N,C]*/, const float *v_c, const float *v_u, const double *eps, double scale,
                     double t_cur, double t_next, xar_flow_sampler s, int N, int C);

// Where the loop's randomness comes from: per-image Philox streams in production, a
// recorded tape in parity tests. normals fills out [B, n]: image b's n next standard
// normals, in float64.
typedef struct xar_rng xar_rng;
struct xar_rng {
    int (*normals)(xar_rng *r, double *out, int B, int n);
};
// Image b draws from the stream keyed by (seed, index[b], RNG_PURPOSE_NOISE).
typedef struct xar_rng_philox {
    xar_rng base;
    int B;
    rng_stream *noise;  // [B]
    float *buf;
    size_t cap;
} xar_rng_philox;
int xar_rng_philox_init(xar_rng_philox *r, uint64_t seed, const uint32_t *index, int B);
void xar_rng_philox_free(xar_rng_philox *r);
// Tape [B, T] (tools/golden/xar_goldens.py): per AR step image b's start latents
// (G x C), then the noise of each Euler-Maruyama step but the last (G x C each).
// Asking for more than T values is an error naming the image.
typedef struct xar_rng_tape {
    xar_rng base;
    const double *tape;
    int B;
    int64_t T;
    int64_t *pos;  // [B]
} xar_rng_tape;
int xar_rng_tape_init(xar_rng_tape *r, const double *tape, int B, int64_t T);
void xar_rng_tape_free(xar_rng_tape *r);

typedef struct xar_sampler {
    const xar_model *m;
    xar_params p;
    int *steps;       // [clusters] flow steps per AR step
    int max_batch;
    xar_kv kv;        // 2 * max_batch sequences with CFG
    arena scratch;
    // Called after every transformer block and flow step: non-zero stops the run with
    // DISA_ECANCELED.
    mar_poll_fn poll;
    void *poll_ctx;
    // Optional, for parity tests and logs: after every AR step, its flow steps, guidance
    // scale and the group's tokens z [B, G, C].
    void (*trace)(void *ctx, int step, int n_steps, double cfg, const float *z);
    void *trace_ctx;
} xar_sampler;

// Prepare the key/value cache and scratch for batches of up to max_batch images.
// Fails with DISA_ERANGE/EINVAL (params), DISA_ENOMEM naming the bytes.
int xar_sampler_init(xar_sampler *s, const xar_model *m, const xar_params *p, int max_batch);
void xar_sampler_free(xar_sampler *s);
// Bytes xar_sampler_init allocates (cache + scratch).
size_t xar_sampler_bytes(const xar_config *c, const xar_params *p, int max_batch);

// Sample tokens [B, seq_len, token_dim] in raster order (what mar_unpatchify reads) for
// labels [B] (0..class_num-1, -1 = unconditional). Adds to *st: all FLOPs and time count
// as transformer; head_row_steps = tokens x flow steps.
int xar_sampler_run(xar_sampler *s, xar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st);

// ----------------------------------------------------------------------------
// FLOP model: the GEMMs xar_forward issues (2 per multiply-add, counted as blas.c does),
// so it equals blas_flops() of a run.
//
//   per network call of N sequences, R rows each (R/G groups), `cached` rows in the cache:
//     time_embed 2 (R/G) (256 E + E E); z_proj 2 N R C E; decoder_embed 2 N R E D;
//     pred 2 N G D C; per block: ada_lin 2 (R/G) N d 6d, qkv 2 N R d 3d, proj 2 N R d d,
//     fc1_g + fc1_x 2 * 2 N R d h, fc2 2 N R h d, and per sequence, head and group of
//     queries (group index c) QK^T and PV 2 * 2 G (c + 1) G hd.
//   per AR step s with n flow steps: N = 2B when guided (cfg > 1 and s > 0), else B;
//     call 0 with R = 2G (R = G at s = 0) and (s-1)G cached rows, then n - 1 calls with
//     R = G and sG cached rows.

uint64_t xar_flops_call(const xar_config *c, int N, int R, int step);

typedef struct xar_flops {
    uint64_t transformer;   // equals sample_stats.flops_transformer of a run
    uint64_t row_steps;     // equals sample_stats.head_row_steps
    uint64_t tokens;
    uint64_t calls;         // network evaluations
    int ar_steps;
} xar_flops;
// The whole schedule of xar_sampler_run(B images) under p; DISA_EINVAL for bad params.
int xar_flops_run(xar_flops *out, const xar_config *c, const xar_params *p, int B);

// ----------------------------------------------------------------------------
// Call shapes timed (disa-bench --extrapolate): a run is the same few network calls
// repeated, so timing each shape once gives any flow-step schedule of the same batch
// and guidance without running it (xAR-B at 50 -> 15 steps is ~130 calls per batch).

// Sequences of AR step s for B images: 2B where the step is guided, else B.
int xar_seqs_at(const xar_params *p, int clusters, int s, int B);

// Median seconds over `reps` (after one warm-up) of one xar_forward call of N sequences
// at AR step `step`: the first call of the step (`first`: R = 2G, or G at step 0, cache
// update) or a later one (R = G). Random inputs; the cache is zero-filled and set to the
// rows the call expects before every repeat. *flops the call's count (xar_flops_call).
// Allocates its cache and scratch; DISA_ENOMEM naming the bytes.
int xar_bench_time_call(const xar_model *m, int N, int step, int first, int reps, double *sec, uint64_t *flops);

// Seconds of xar_sampler_run over one batch under p, from the call times of its shapes:
// t_first[s] and t_rest[s] for each AR step s (the batch and guidance they were timed
// with must be p's): sum over s of t_first[s] + (n_s - 1) t_rest[s].
double xar_bench_schedule(const xar_config *c, const xar_params *p, const double *t_first, const double *t_rest);

#endif
