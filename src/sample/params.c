// params.c: sampling settings under main_mar.py's flag names, their defaults and checks.
#include "disa/bf16.h"
#include "disa/err.h"
#include "disa/flags.h"
#include "disa/sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sample_params_init(sample_params *p) {
    // main_mar.py defaults of the DiSA fork: the "default" sampler with 25 steps.
    p->num_iter = 64;
    p->cfg = 1.0;
    p->cfg_linear = 1;
    p->temperature = 1.0;
    p->sampler = GD_SAMPLER_DEFAULT;
    p->upper = 25;
    p->lower = 5;
    p->strategy = DISA_STRATEGY_LINEAR;
    p->precision = PRECISION_FP32;
    // DiffLoss.sample calls the DPM solvers with order=1.
    p->dpm_order = 1;
    p->adaptive = 0;
    p->budget = 0;
    p->signal = ADAPT_SIGNAL_VAR;  // chosen by measurement: docs/samplers.md
}

int sample_params_check(const sample_params *p) {
    if (p->num_iter < 1 || p->num_iter > 4096)
        return disa_err(DISA_ERANGE, "--num_iter must be in 1..4096, got %d", p->num_iter);
    if (!(p->cfg >= 1.0 && p->cfg <= 100.0))
        return disa_err(DISA_ERANGE, "--cfg must be in [1, 100], got %g", p->cfg);
    if (!(p->temperature > 0 && p->temperature <= 10.0))
        return disa_err(DISA_ERANGE, "--temperature must be in (0, 10], got %g", p->temperature);
    if (p->lower < 1 || p->lower > 1000)
        return disa_err(DISA_ERANGE, "--diff_lower_steps must be in 1..1000, got %d", p->lower);
    if ((unsigned)p->precision >= PRECISION_COUNT) return disa_err(DISA_EINVAL, "--precision must be fp32, bf16 or auto");
    if (p->upper < p->lower || p->upper > 1000)
        return disa_err(DISA_ERANGE, "--diff_upper_steps must be in %d..1000 (>= --diff_lower_steps), got %d",
                        p->lower, p->upper);
    if (p->dpm_order < 1 || p->dpm_order > 3)
        return disa_err(DISA_ERANGE, "--dpm_order must be 1, 2 or 3, got %d", p->dpm_order);
    // The multistep solver needs at least `order` steps; every AR step runs >= lower.
    if (gd_sampler_is_dpm(p->sampler) && p->lower < p->dpm_order)
        return disa_err(DISA_ERANGE,
                        "--dpm_order %d needs at least %d diffusion steps at every AR step, but --diff_lower_steps is %d",
                        p->dpm_order, p->dpm_order, p->lower);
    // "default" ignores the strategy (it always runs upper steps), adaptive included.
    if (p->adaptive && p->sampler != GD_SAMPLER_DEFAULT) {
        if (p->sampler == GD_SAMPLER_DDIM)
            return disa_err(DISA_EINVAL, "--diff_annealing_strategy adaptive needs --diff_sampler DiSA, DPM_Solver or "
                                         "DPM_Solver++ (DDIM's first timestep depends on its step count)");
        // One DiSA step keeps only timestep 0: the first evaluation would differ by count.
        if (p->sampler == GD_SAMPLER_DISA && p->lower < 2)
            return disa_err(DISA_ERANGE, "--diff_annealing_strategy adaptive with DiSA needs --diff_lower_steps >= 2, "
                                         "got %d (a single step starts at t = 0, not 950)", p->lower);
        if (!(p->budget >= p->lower && p->budget <= p->upper))
            return disa_err(DISA_ERANGE,
                            "--diff_budget must be in [%d, %d] (--diff_lower_steps..--diff_upper_steps) for "
                            "--diff_annealing_strategy adaptive, got %g%s",
                            p->lower, p->upper, p->budget, p->budget == 0 ? " (not set)" : "");
    }
    return 0;
}

int sample_params_check_precision(const sample_params *p, precision_kind prec, int from_auto) {
    // "default" ignores the strategy, adaptive included (sampler_init).
    const int dpm = gd_sampler_is_dpm(p->sampler), adaptive = p->adaptive && p->sampler != GD_SAMPLER_DEFAULT;
    if (prec != PRECISION_BF16 || (!dpm && !adaptive)) return 0;
    // The flag's own spelling (gd_sampler_name is lower case).
    const char *name = p->sampler == GD_SAMPLER_DPM      ? "DPM_Solver"
                       : p->sampler == GD_SAMPLER_DPM_PP ? "DPM_Solver++"
                       : p->sampler == GD_SAMPLER_DDIM   ? "DDIM"
                                                         : "DiSA";
    char got[96];
    if (dpm)
        snprintf(got, sizeof got, "--diff_sampler %s%s", name, p->adaptive ? " with --diff_annealing_strategy adaptive" : "");
    else
        snprintf(got, sizeof got, "--diff_annealing_strategy adaptive with --diff_sampler %s", name);
    return disa_err(DISA_EINVAL,
                    "%s runs the default, DiSA and DDIM samplers; DPM_Solver, DPM_Solver++ and the adaptive "
                    "strategy run in fp32 for now (got %s): give --precision fp32",
                    from_auto ? "--precision auto resolves to bf16 here, and bf16" : "--precision bf16", got);
}

int sample_flag_int(const char *flag, const char *v, int lo, int hi, int *out) {
    long long x;
    int rc = flag_int(flag, v, lo, hi, &x);
    if (!rc) *out = (int)x;
    return rc;
}

int sample_params_set(sample_params *p, const char *flag, const char *v) {
    if (strcmp(flag, "num_iter") == 0) return sample_flag_int(flag, v, 1, 4096, &p->num_iter);
    if (strcmp(flag, "cfg") == 0) return flag_num(flag, v, 1.0, 100.0, &p->cfg);
    if (strcmp(flag, "temperature") == 0) {
        int rc = flag_num(flag, v, 0.0, 10.0, &p->temperature);
        if (!rc && p->temperature <= 0) return disa_err(DISA_EINVAL, "--temperature must be > 0, got '%s'", v);
        return rc;
    }
    if (strcmp(flag, "diff_upper_steps") == 0) return sample_flag_int(flag, v, 1, 1000, &p->upper);
    if (strcmp(flag, "diff_lower_steps") == 0) return sample_flag_int(flag, v, 1, 1000, &p->lower);
    if (strcmp(flag, "cfg_schedule") == 0) {
        if (strcmp(v, "linear") == 0) p->cfg_linear = 1;
        else if (strcmp(v, "constant") == 0) p->cfg_linear = 0;
        else return disa_err(DISA_EINVAL, "--cfg_schedule must be linear or constant, got '%s'", v);
        return 0;
    }
    if (strcmp(flag, "diff_sampler") == 0) {
        if (gd_sampler_parse(v, &p->sampler) != 0)
            return disa_err(DISA_EINVAL, "--diff_sampler must be default, DiSA, DDIM, DPM_Solver or DPM_Solver++, got '%s'",
                            v);
        return 0;
    }
    if (strcmp(flag, "dpm_order") == 0) return sample_flag_int(flag, v, 1, 3, &p->dpm_order);
    if (strcmp(flag, "diff_budget") == 0) return flag_num(flag, v, 1.0, 1000.0, &p->budget);
    if (strcmp(flag, "diff_adaptive_signal") == 0) {
        if (adapt_signal_parse(v, &p->signal) != 0)
            return disa_err(DISA_EINVAL, "--diff_adaptive_signal must be cfg, var or eps, got '%s'", v);
        return 0;
    }
    if (strcmp(flag, "precision") == 0) return precision_parse(v, &p->precision);
    if (strcmp(flag, "diff_annealing_strategy") == 0) {
        // adaptive is not a DiSA schedule: strategy stays at its default (adaptive.h)
        p->adaptive = strcasecmp(v, "adaptive") == 0;
        if (p->adaptive) {
            p->strategy = DISA_STRATEGY_LINEAR;
        } else if (disa_strategy_parse(v, &p->strategy) != 0) {
            return disa_err(DISA_EINVAL,
                            "--diff_annealing_strategy must be linear, cosine, two-stage, constant or adaptive, got '%s'",
                            v);
        }
        return 0;
    }
    return DISA_ENOTFOUND;
}

const char *sample_params_str(const sample_params *p, char *buf, int n) {
    snprintf(buf, (size_t)n,
             "num_iter=%d cfg=%g cfg_schedule=%s temperature=%g diff_sampler=%s diff_upper_steps=%d "
             "diff_lower_steps=%d diff_annealing_strategy=%s",
             p->num_iter, p->cfg, p->cfg_linear ? "linear" : "constant", p->temperature,
             gd_sampler_name(p->sampler), p->upper, p->lower,
             p->adaptive ? "adaptive" : disa_strategy_name(p->strategy));
    // Settings that do not apply (fp32 among them) add nothing, so the identity of runs
    // started before these flags existed holds.
    size_t used = strlen(buf);
    if (p->adaptive && used + 1 < (size_t)n)
        used += (size_t)snprintf(buf + used, (size_t)n - used, " diff_budget=%g diff_adaptive_signal=%s", p->budget,
                                 adapt_signal_name(p->signal));
    if (gd_sampler_is_dpm(p->sampler) && used + 1 < (size_t)n)
        used += (size_t)snprintf(buf + used, (size_t)n - used, " dpm_order=%d", p->dpm_order);
    if (p->precision != PRECISION_FP32 && used + 1 < (size_t)n)
        snprintf(buf + used, (size_t)n - used, " precision=%s", precision_name(p->precision));
    return buf;
}
