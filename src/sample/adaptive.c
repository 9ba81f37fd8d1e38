// adaptive.c: the adaptive step allocation (include/disa/adaptive.h).
// Python reference: tools/marref/adaptive.py, the same double arithmetic in the same
// order, so the integer step choices of tests/golden/adaptive_*.safetensors match exactly.
#include "disa/adaptive.h"

#include "disa/err.h"
#include "disa/flags.h"

#include <math.h>
#include <string.h>

// Sums and products below are compared exactly against Python doubles.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static const char *const k_signal_names[ADAPT_SIGNAL_COUNT] = {"cfg", "var", "eps"};

const char *adapt_signal_name(adapt_signal s) { return flag_enum_name(k_signal_names, ADAPT_SIGNAL_COUNT, (int)s); }

int adapt_signal_parse(const char *s, adapt_signal *out) {
    int k = 0, rc = flag_enum_parse(&k, s, k_signal_names, ADAPT_SIGNAL_COUNT, FLAG_ICASE, "adaptive signal");
    if (!rc) *out = (adapt_signal)k;
    return rc;
}

void adapt_signal_rows(float *g, const float *out_c, const float *out_u, const float *eps, int R, int C,
                       adapt_signal which) {
    for (int r = 0; r < R; r++) {
        const float *oc = out_c + (size_t)r * 2 * C;
        double acc = 0;
        switch (which) {
        case ADAPT_SIGNAL_CFG:
            if (!out_u) break;
            for (int k = 0; k < C; k++) {
                double d = (double)oc[k] - (double)out_u[(size_t)r * 2 * C + k];
                acc += d * d;
            }
            acc = sqrt(acc / C);
            break;
        case ADAPT_SIGNAL_VAR:
            for (int k = 0; k < C; k++) acc += ((double)oc[C + k] + 1.0) / 2.0;
            acc /= C;
            break;
        default:
            for (int k = 0; k < C; k++) acc += (double)eps[(size_t)r * C + k] * eps[(size_t)r * C + k];
            acc = sqrt(acc / C);
            break;
        }
        g[r] = (float)acc;
    }
}

// ----------------------------------------------------------------------------
// choice

void adapt_state_reset(adapt_state *st) {
    memset(st, 0, sizeof *st);
}

void adapt_choose(int *n, const float *g, int P, int L, int lower, int upper, double budget, adapt_state *st) {
    if (P <= 0) return;
    for (int r = 0; r < P; r++) st->gsum += (double)g[r];
    double gbar = st->gsum / (double)(st->assigned + P);
    double total = budget * (double)L;
    int left = L - st->assigned;  // tokens of this image without a count, these rows included
    double base = left > 0 ? (total - st->used) / (double)left : 0.0;
    for (int r = 0; r < P; r++) {
        double v = gbar > 0 ? base * ((double)g[r] / gbar) : base;
        // nearbyint: half to even in the default rounding mode, as Python's round()
        double k = nearbyint(v);
        // never spend what the later tokens need for their `lower` steps
        double cap = floor(total - st->used - (double)lower * (double)(left - 1));
        if (k > cap) k = cap;
        int c = !(k >= lower) ? lower : k > upper ? upper : (int)k;  // NaN: lower
        n[r] = c;
        st->used += c;
        st->assigned++;
        left--;
    }
}
