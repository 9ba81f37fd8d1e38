// disa_sched.h: DiSA diffusion step annealing, the diffusion step count of each AR step
// (DESIGN §7).
//
// Mirrors Qinyu-Allen-Zhao/DiSA MAR_DiSA models/diffloss.py: DiffLoss.sample (the
// schedule_id choice) with DiffLoss.__init__'s list of step counts lower..upper.
// The schedule only picks n; the tables and steps live in diffusion.h. The official
// "default" sampler ignores the strategy and runs `upper` steps at every AR step; the
// caller handles that case (it is not a strategy).
#ifndef DISA_DISA_SCHED_H
#define DISA_DISA_SCHED_H

typedef enum {
    DISA_STRATEGY_LINEAR,    // "linear": upper at the first AR step down to lower at the last
    DISA_STRATEGY_COSINE,    // "cosine": the same ends, half-cosine in between
    DISA_STRATEGY_TWO_STAGE, // "two-stage": upper while s < (K-1)/2, then lower
    DISA_STRATEGY_CONSTANT,  // "constant": lower at every AR step
    DISA_STRATEGY_COUNT
} disa_strategy;

// "linear", "cosine", "two-stage", "constant" (the official --diff_annealing_strategy
// spellings); "?" for a value out of range.
const char *disa_strategy_name(disa_strategy s);
// Case-insensitive, '_' accepted for '-' ("two_stage"). Returns 0, or DISA_EINVAL with a
// message listing the choices.
int disa_strategy_parse(const char *s, disa_strategy *out);

// out[s] = diffusion step count of AR step s = 0..K-1, from lower..upper (L entries,
// entry j = lower + j):
//   linear    j = trunc((u - s) / u * (L - 1))
//   cosine    j = trunc((cos(pi * s / u) + 1) / 2 * (L - 1))
//   two-stage j = L - 1 if s < u / 2 else 0
//   constant  j = 0
// with u = K - 1, evaluated in double as the official Python does. K = 1 (u = 0, a
// ZeroDivisionError officially) gives out[0] = upper. Returns 0, or DISA_EINVAL (K < 1,
// lower < 1, upper < lower, unknown strategy) naming the bad value; out is then untouched.
int disa_steps_for(int *out /*[K]*/, int K, int upper, int lower, disa_strategy s);

#endif
