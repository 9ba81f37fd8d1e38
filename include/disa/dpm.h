// dpm.h: DPM-Solver and DPM-Solver++ (multistep) for the MAR diffusion head, as MAR_DiSA
// runs them for --diff_sampler DPM_Solver / DPM_Solver++ (DESIGN §6).
//
// Mirrors Qinyu-Allen-Zhao/DiSA MAR_DiSA models/diffloss.py (DiffLoss.__init__,
// DiffLoss.dpm_forward, DiffLoss.sample) and diffusion/dpm_solver.py (NoiseScheduleVP
// 'discrete', interpolate_fn, DPM_Solver.sample with method 'multistep', the first and the
// multistep second/third updates, solver_type 'dpmsolver'); the Python reference is
// tools/marref/dpm.py, the check tests/golden/dpm_*.safetensors.
//
// The official settings: the noise schedule of DiffLoss.train_diffusion (MAR_DiSA's
// create_diffusion clips it at 950: 951 respaced cosine betas), time-uniform steps from
// t = 0.95 to 1/951, the network evaluated at t * 1000, multistep with lower_order_final,
// no denoise-to-zero; `steps` network evaluations, only the start noise is random.
//
// Split like diffusion.h: a plan holds the time grid and every per-update scalar for one
// (steps, order, algorithm); dpm_model_value and dpm_update do the element-wise work, and
// dpm_solve runs the loop with the network passed as a callback.
#ifndef DISA_DPM_H
#define DISA_DPM_H

typedef enum {
    DPM_SOLVER,     // "dpmsolver": noise prediction
    DPM_SOLVER_PP,  // "dpmsolver++": data prediction x0 = (x - sigma eps) / alpha
    DPM_ALGO_COUNT
} dpm_algorithm;

// Continuous time of the first network evaluation (DiffLoss.sample's t_start).
#define DPM_T_START 0.95f

// NoiseScheduleVP('discrete') of the 951 training betas, float32 as the official arrays:
// log_alpha[i] = 0.5 * cumsum(log(1 - beta))[i] and keypoint t_array[i] = 0.95 (i+1) / K,
// each the exact value rounded once.
typedef struct dpm_schedule {
    int K;             // keypoints (951)
    float *t_array;    // [K] ascending
    float *log_alpha;  // [K]
} dpm_schedule;

// Build the schedule. Returns 0, or DISA_ENOMEM; on failure *s is zeroed.
int dpm_schedule_init(dpm_schedule *s);
void dpm_schedule_free(dpm_schedule *s);
// log(alpha_t): interpolate_fn between the keypoints (linear extrapolation outside), in
// float32 as the official tensor ops round.
float dpm_log_alpha(const dpm_schedule *s, float t);

// One update from t[k-1] to t[k]. With the newest model values m0, m1, m2:
//   D1_0 = inv_r0 (m0 - m1), D1_1 = inv_r1 (m1 - m2),
//   D1 = D1_0 + q (D1_0 - D1_1), D2 = inv_r01 (D1_0 - D1_1)
//   order 1: x = a x - b m0
//   order 2: x = a x - b m0 - c D1_0
//   order 3: x = a x - b m0 + c D1 - d D2 (DPM-Solver++), a x - b m0 - c D1 - d D2 (DPM-Solver)
typedef struct dpm_update_coef {
    int order;
    float a, b, c, d, inv_r0, inv_r1, q, inv_r01;
} dpm_update_coef;

typedef struct dpm_plan {
    int steps, order;      // network evaluations (NFE) and the highest order
    dpm_algorithm algo;
    float *t;              // [steps + 1] time grid, t[0] = 0.95
    float *t_input;        // [steps] network time of evaluation k: t[k] * 1000 (float32)
    float *alpha, *sigma;  // [steps] at t[k], for the data prediction of DPM-Solver++
    dpm_update_coef *up;   // [steps] up[k-1] is update k
    void *block_;
} dpm_plan;

// The plan for `steps` evaluations of the given order (1..3). steps must be >= order (the
// official multistep solver asserts it). Returns 0, DISA_EINVAL naming the bad value, or
// DISA_ENOMEM; on failure *p is zeroed. The caller owns it until dpm_plan_free.
int dpm_plan_init(dpm_plan *p, const dpm_schedule *s, int steps, int order, dpm_algorithm algo);
void dpm_plan_free(dpm_plan *p);

// The model value of evaluation k in place: eps stays eps (DPM-Solver), or becomes the
// data prediction (x - sigma_k eps) / alpha_k (DPM-Solver++). m [N,C] in/out, x [N,C].
void dpm_model_value(float *m, const float *x, const dpm_plan *p, int k, int N, int C);

// Update k (1..steps) in place on x [N,C]; m0 is the newest model value, m1 and m2 the
// ones before (read only when the update's order needs them; may be NULL otherwise).
void dpm_update(float *x, const float *m0, const float *m1, const float *m2, const dpm_plan *p, int k, int N,
                int C);

// eps [N,C] = the network's eps (guided, with CFG) at rows x [N,C], network time t_input.
// Returns 0 or a negative DISA_E* code, which stops the solver.
typedef int (*dpm_eps_fn)(void *ctx, float *eps, const float *x, float t_input, int N);

// The whole solver in place on x [N,C] (the start noise at t = 0.95): `steps` calls of fn,
// work [3 N C] floats for the model history. Returns 0 or the callback's code.
int dpm_solve(const dpm_plan *p, float *x, float *work, dpm_eps_fn fn, void *ctx, int N, int C);

#endif
