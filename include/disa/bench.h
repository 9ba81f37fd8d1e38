// bench.h: MAR's step shapes timed with the engine's own forwards, and a whole sampling
// schedule extrapolated from them (disa-bench --extrapolate, --bf16_check; DESIGN §10):
// a full K = 64 run of MAR-B at batch 32 takes hours on two cores, the shapes minutes.
// Times are medians of repeats; FLOPs are what blas.h counts for them.
#ifndef DISA_BENCH_H
#define DISA_BENCH_H
#include <stddef.h>
#include <stdint.h>

#include "disa/flops.h"
#include "disa/mar.h"

// The median of v[n] (sorts v); 0 for n <= 0.
double bench_median(double *v, int n);
// Standard normals from a fixed stream (Philox, seed 12345, the given index).
void bench_fill_normal(float *x, size_t n, uint32_t index);
// The median GFLOPS of `reps` (<= 64) n^3 sgemms after one warm-up; each rep into
// gflops_all[reps]. 0 when out of memory.
double bench_sgemm_peak(int n, int reps, double *gflops_all);
// The bf16 counterpart: the median GFLOPS of `reps` (<= 64) products y [M, N] fp32 =
// x [M, K] bf16 . W^T through the primitive a bf16 model's Linears run (bf16_linear,
// W packed once into oneDNN's layout, no bias, no post-op), after one warm-up; each rep
// into gflops_all[reps]. 0 with the message set when bf16 cannot run here or memory is
// short.
double bench_bf16_peak(int M, int N, int K, int reps, double *gflops_all);

// Arena bytes the functions below need for batches of B images.
size_t bench_scratch_bytes(const mar_model *m, int B, int cfg);
// Median seconds of one transformer pass over B images with n_known known tokens and
// n_pred rows to return (random inputs); *flops the pass's count. Fails only when the
// arena is too small.
int bench_time_transformer(const mar_model *m, arena *a, int B, int cfg, int n_known, int n_pred, int reps,
                           double *sec, uint64_t *flops);
// Median seconds of one diffusion step of the head over R2 rows (mar_head_step at the
// middle spaced index of tb, CFG scale 2) and of the per-AR-step cond_embed; *fstep the
// step's count. At least 3 and up to 40 steps, about 0.3 s per row count.
int bench_time_head(const mar_model *m, arena *a, const gd_tables *tb, int R2, int cfg, double *sec_step,
                    double *sec_cond, uint64_t *fstep);
// One network evaluation each in bf16 and fp32 on the same random inputs: the transformer
// with half the tokens known (z of the unknown rows, both CFG halves of B images) and
// one head step at t = 500: normwise errors max|bf16 - fp32| / max|fp32| of z, of eps
// and of the variance channels. m32 and m16: the same weights prepared for fp32 and bf16.
int bench_bf16_check(const mar_model *m32, const mar_model *m16, arena *a, int B, int cfg, double *err_z,
                     double *err_eps, double *err_var);

// Transformer timings at some known-token counts, head timings at row counts.
typedef struct bench_point {
    int n_known;
    double sec, gflops;
    uint64_t flops;
} bench_point;
typedef struct bench_head_point {
    int rows;
    double sec_step, sec_cond, gflops;
    uint64_t flops;
} bench_head_point;
const bench_head_point *bench_find_head(const bench_head_point *h, int n, int rows);

// Extrapolated seconds of one whole schedule st[K] (per batch), split into the two
// phases: the transformer at GFLOPS interpolated linearly in n_known between the points
// (flat outside them, the FLOPs of every step exact), the head as its cond_embed plus
// its distinct diffusion steps at the measured time of its row count.
typedef struct bench_extrap {
    double t_tr, t_head;
    double t_head_late, f_head_late;  // the late half of the steps: DiSA's small step counts
    uint64_t f_tr, f_head;
    long diff_steps;
} bench_extrap;
void bench_extrapolate(bench_extrap *e, const flops_step *st, int K, const bench_point *tp, int ntp,
                       const bench_head_point *hp, int nhp);

#endif
