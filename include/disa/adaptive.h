// adaptive.h: --diff_annealing_strategy adaptive, the diffusion steps of each token chosen
// from a signal the sampler measures at the token's first network evaluation, under a
// budget of mean requested steps per token (--diff_budget, in [lower, upper]).
//
// Not in the official code: DiSA's schedules depend on the AR step index only. The rule,
// chosen by measurement on the embedded model (models/README.md), is per image, so image
// i never depends on which images share its batch. At each AR step, for the image's P
// rows with signals g_r:
//
//   gbar  = mean signal of all the image's tokens so far, these rows included
//   base  = (budget * L - steps given so far) / (tokens not given steps yet)
//   n_r   = round(base * g_r / gbar)          (half to even; base itself when gbar is not
//                                             positive: no CFG for the cfg signal, or a NaN)
//   n_r   = min(n_r, what leaves `lower` for every later token), then clamp to [lower, upper]
//
// The budget is spread evenly over the tokens still to come, and a token gets more than
// its share when its signal is above the image's running mean and less below. It never
// spends more than the budget. The default signal is the learned variance ("var"): on the
// embedded model it spent its budget (9.67 steps per token for 9.69) and matched DiSA's
// linear schedule at that spend, while the cfg signal, which falls over the AR steps,
// left most later tokens below the running mean and spent less (8.76) for a worse FID
// (docs/samplers.md). Without CFG the cfg signal is 0 and every token gets its even share.
//
// The measurement is the token's first evaluation, so that evaluation must be the same
// for every count in lower..upper: time 950 for DiSA with lower >= 2 and for the DPM
// samplers; DDIM's first time depends on its step count (not allowed).
#ifndef DISA_ADAPTIVE_H
#define DISA_ADAPTIVE_H

// What the rule measures at a token's first evaluation (x the start noise, time 950).
typedef enum {
    ADAPT_SIGNAL_CFG,  // "cfg": ||eps_cond - eps_uncond|| / sqrt(C); 0 without CFG
    ADAPT_SIGNAL_VAR,  // "var": mean of (var_values + 1) / 2, the learned variance's position
    ADAPT_SIGNAL_EPS,  // "eps": ||eps|| / sqrt(C) of the (guided) eps
    ADAPT_SIGNAL_COUNT
} adapt_signal;

// "cfg", "var", "eps"; "?" out of range.
const char *adapt_signal_name(adapt_signal s);
// Case-insensitive. Returns 0 or DISA_EINVAL listing the choices.
int adapt_signal_parse(const char *s, adapt_signal *out);

// g[r] for R rows from the first evaluation: out_c [R, 2C] the (conditional) network
// output eps | var_values, out_u [R, 2C] the unconditional one (NULL without CFG), eps
// [R, C] the eps the sampler uses (guided with CFG). Sums in double, in order.
void adapt_signal_rows(float *g, const float *out_c, const float *out_u, const float *eps, int R, int C,
                       adapt_signal which);

// One image's running totals; zero them (adapt_state_reset) before its first AR step.
typedef struct adapt_state {
    double used;    // requested steps given to its tokens so far
    double gsum;    // sum of the signals of its tokens so far
    int assigned;   // tokens given a count so far
} adapt_state;
void adapt_state_reset(adapt_state *st);

// n[r] for the P rows of one image at an AR step (row order as the sampler's), from their
// signals g[P], for an image of L tokens under `budget` in [lower, upper]; updates st.
void adapt_choose(int *n, const float *g, int P, int L, int lower, int upper, double budget, adapt_state *st);

#endif
