// disa_sched.c: DiSA step annealing, the diffusion step count per AR step (DESIGN §7).
//
// Mirrors Qinyu-Allen-Zhao/DiSA MAR_DiSA models/diffloss.py: DiffLoss.sample, the
// `schedule_id` expression of each --diff_annealing_strategy, indexing the list of
// diffusions built for lower..upper steps in DiffLoss.__init__.
#include "disa/disa_sched.h"

#include "disa/err.h"
#include "disa/flags.h"

#include <math.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846 // Python's math.pi, the same double
#endif

// ----------------------------------------------------------------------------
// strategy enum

static const char *const k_names[DISA_STRATEGY_COUNT] = {"linear", "cosine", "two-stage", "constant"};

const char *disa_strategy_name(disa_strategy s) { return flag_enum_name(k_names, DISA_STRATEGY_COUNT, (int)s); }

// Case-insensitive, and "two_stage" for "two-stage" as well.
int disa_strategy_parse(const char *s, disa_strategy *out) {
    int k = 0, rc = flag_enum_parse(&k, s, k_names, DISA_STRATEGY_COUNT, FLAG_ICASE | FLAG_DASH, "DiSA strategy");
    if (!rc) *out = (disa_strategy)k;
    return rc;
}

// ----------------------------------------------------------------------------
// schedule

// Index j into lower..upper for AR step s; u = K-1 >= 1, L >= 1. Python's int() truncates
// toward zero; the operands are never negative, so the (int) cast is the same. The
// division and multiplication stay in the official order: (u - s) / u first, then
// * (L - 1), because the other order rounds differently near integers.
static int schedule_index(int s, int u, int L, disa_strategy st) {
    switch (st) {
    case DISA_STRATEGY_LINEAR:
        return (int)((double)(u - s) / (double)u * (double)(L - 1));
    case DISA_STRATEGY_COSINE:
        return (int)((cos(M_PI * (double)s / (double)u) + 1.0) / 2.0 * (double)(L - 1));
    case DISA_STRATEGY_TWO_STAGE:
        return (double)s < (double)u / 2.0 ? L - 1 : 0;
    default:
        return 0;
    }
}

int disa_steps_for(int *out /*[K]*/, int K, int upper, int lower, disa_strategy s) {
    if ((int)s < 0 || s >= DISA_STRATEGY_COUNT)
        return disa_err(DISA_EINVAL, "disa_steps_for: unknown strategy %d (expected 0..%d)",
                        (int)s, DISA_STRATEGY_COUNT - 1);
    if (K < 1)
        return disa_err(DISA_EINVAL, "disa_steps_for: AR step count K must be >= 1, got %d", K);
    if (lower < 1)
        return disa_err(DISA_EINVAL, "disa_steps_for: 'lower' must be >= 1, got %d", lower);
    if (upper < lower)
        return disa_err(DISA_EINVAL,
                        "disa_steps_for: 'upper' must be >= 'lower' (%d), got %d", lower, upper);
    if (K == 1) {
        // u = 0: the official expressions divide by zero. A single AR step predicts every
        // token at once, so it gets the most steps.
        out[0] = upper;
        return 0;
    }
    int L = upper - lower + 1;
    for (int k = 0; k < K; k++) out[k] = lower + schedule_index(k, K - 1, L, s);
    return 0;
}
