// diffusion.h: the Gaussian diffusion of the MAR diffusion head (DESIGN §6): respaced
// float64 tables and one DDPM (learned-range variance) or DDIM (eta 0) reverse step.
//
// Mirrors LTH14/mar and Qinyu-Allen-Zhao/DiSA MAR_DiSA: diffusion/__init__.py
// create_diffusion (the per-sampler clip), diffusion/respace.py space_timesteps and
// SpacedDiffusion, diffusion/gaussian_diffusion.py GaussianDiffusion (tables, p_sample,
// ddim_sample).
//
// The sampler owns the loop: for i = t->n-1 down to 0 it calls the network with the
// ORIGINAL timestep t->timestep_map[i] and then one gd_*_step at spaced index i. DiSA
// only chooses n (disa_sched.h).
#ifndef DISA_DIFFUSION_H
#define DISA_DIFFUSION_H

// Length of the training diffusion that every table is respaced from.
#define GD_T_TRAIN 1000

// Which official sampler the tables are built for; it fixes the spacing and the clip.
typedef enum {
    GD_SAMPLER_DEFAULT, // "default": space_timesteps "n", no clip (official clip 1001)
    GD_SAMPLER_DISA,    // "DiSA":    space_timesteps "n", clip 950
    GD_SAMPLER_DDIM,    // "DDIM":    space_timesteps "ddimN", clip 980, DDIM steps
    GD_SAMPLER_DPM,     // "DPM_Solver":   multistep DPM-Solver (dpm.h), no tables here
    GD_SAMPLER_DPM_PP,  // "DPM_Solver++": multistep DPM-Solver++ (dpm.h), no tables here
    GD_SAMPLER_COUNT
} gd_sampler;

// "default", "disa", "ddim", "dpm_solver", "dpm_solver++"; "?" for a value out of range.
const char *gd_sampler_name(gd_sampler s);
// Case-insensitive "default" | "disa" | "ddim" | "dpm_solver" | "dpm_solver++" (so the
// official "DiSA", "DDIM", "DPM_Solver" and "DPM_Solver++" are accepted). Returns 0, or
// DISA_EINVAL with a message listing the choices.
int gd_sampler_parse(const char *s, gd_sampler *out);
// Largest original timestep the sampler keeps (950, 980), or GD_T_TRAIN - 1 for default;
// 950 for the DPM samplers, whose first network time is 0.95 * 1000.
int gd_sampler_clip(gd_sampler s);
// 1 for the two DPM-Solver samplers (they run dpm.h's solver, not these tables).
int gd_sampler_is_dpm(gd_sampler s);

// Respaced tables. All arrays have n entries, index i = spaced step (0 = least noise);
// the float64 values are those of the official numpy tables, bit for bit.
typedef struct gd_tables {
    int n;             // distinct spaced steps after the clip (DiSA "50" -> 48)
    int n_steps;       // the requested step count
    gd_sampler sampler;
    int *timestep_map; // [n] original timestep of each spaced index, ascending
    double *betas;                          // [n] 1 - ac[i]/ac[i-1] of the kept original steps
    double *log_betas;                      // [n] log(betas): the learned-range upper bound
    double *alphas_cumprod;                 // [n]
    double *alphas_cumprod_prev;            // [n] 1 prepended
    double *posterior_variance;             // [n]
    double *posterior_log_variance_clipped; // [n] log(pv) with pv[0] replaced by pv[1]
    double *posterior_mean_coef1;           // [n]
    double *posterior_mean_coef2;           // [n]
    double *sqrt_recip_alphas_cumprod;      // [n]
    double *sqrt_recipm1_alphas_cumprod;    // [n]
    void *block_;                           // the one allocation behind every array
} gd_tables;

// Build the tables for `n_steps` under sampler `s`.
// default/DiSA: n_steps in 1..1000; DDIM: n_steps in 2..1000 (no integer stride gives
// a single DDIM step, as in the official code); the DPM samplers have no tables
// (DISA_EINVAL). On failure returns DISA_EINVAL with a
// message naming the bad value, or DISA_ENOMEM, and leaves *t zeroed (gd_tables_free is
// then a no-op). On success the caller owns the tables until gd_tables_free.
int gd_tables_init(gd_tables *t, int n_steps, gd_sampler s);
// Release the tables and zero *t; safe on a zeroed or already freed struct.
void gd_tables_free(gd_tables *t);

// One DDPM step at spaced index i (GaussianDiffusion.p_sample, LEARNED_RANGE variance,
// clip_denoised False). eps and var_values are the two halves of the network output.
// Noise is added only when i > 0; at i == 0 `noise` is not read and may be NULL.
// Float32 arithmetic in the order torch evaluates it, table values rounded to float32
// first, so the result matches the official run to the last bits. In-place on x.
void gd_ddpm_step(float *x /*[N,C] in/out*/, const float *eps /*[N,C]*/,
                  const float *var_values /*[N,C]*/, const float *noise /*[N,C] or NULL*/,
                  const gd_tables *t, int i, float temperature, int N, int C);

// One DDIM step (eta 0) at spaced index i (GaussianDiffusion.ddim_sample). In-place on x.
void gd_ddim_step(float *x /*[N,C] in/out*/, const float *eps /*[N,C]*/,
                  const gd_tables *t, int i, int N, int C);

#endif
