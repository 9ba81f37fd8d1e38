// params.c: sampling settings under main_mar.py's flag names, their defaults and checks.
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/flags.h"
#include "disa/sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    p->precision = BLAS_FP32;
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
    if (p->precision != BLAS_FP32 && p->precision != BLAS_BF16)
        return disa_err(DISA_EINVAL, "--precision must be fp32 or bf16");
    if (p->upper < p->lower || p->upper > 1000)
        return disa_err(DISA_ERANGE, "--diff_upper_steps must be in %d..1000 (>= --diff_lower_steps), got %d",
                        p->lower, p->upper);
    return 0;
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    long long x;
    int rc = flag_int(flag, v, lo, hi, &x);
    if (!rc) *out = (int)x;
    return rc;
}

int sample_params_set(sample_params *p, const char *flag, const char *v) {
    if (strcmp(flag, "num_iter") == 0) return parse_int(flag, v, 1, 4096, &p->num_iter);
    if (strcmp(flag, "cfg") == 0) return flag_num(flag, v, 1.0, 100.0, &p->cfg);
    if (strcmp(flag, "temperature") == 0) {
        int rc = flag_num(flag, v, 0.0, 10.0, &p->temperature);
        if (!rc && p->temperature <= 0) return disa_err(DISA_EINVAL, "--temperature must be > 0, got '%s'", v);
        return rc;
    }
    if (strcmp(flag, "diff_upper_steps") == 0) return parse_int(flag, v, 1, 1000, &p->upper);
    if (strcmp(flag, "diff_lower_steps") == 0) return parse_int(flag, v, 1, 1000, &p->lower);
    if (strcmp(flag, "cfg_schedule") == 0) {
        if (strcmp(v, "linear") == 0) p->cfg_linear = 1;
        else if (strcmp(v, "constant") == 0) p->cfg_linear = 0;
        else return disa_err(DISA_EINVAL, "--cfg_schedule must be linear or constant, got '%s'", v);
        return 0;
    }
    if (strcmp(flag, "diff_sampler") == 0) {
        if (gd_sampler_parse(v, &p->sampler) != 0)
            return disa_err(DISA_EINVAL, "--diff_sampler must be default, DiSA or DDIM, got '%s'", v);
        return 0;
    }
    if (strcmp(flag, "precision") == 0) {
        if (strcmp(v, "fp32") == 0) p->precision = BLAS_FP32;
        else if (strcmp(v, "bf16") == 0) p->precision = BLAS_BF16;
        else return disa_err(DISA_EINVAL, "--precision must be fp32 or bf16, got '%s'", v);
        return 0;
    }
    if (strcmp(flag, "diff_annealing_strategy") == 0) {
        if (disa_strategy_parse(v, &p->strategy) != 0)
            return disa_err(DISA_EINVAL,
                            "--diff_annealing_strategy must be linear, cosine, two-stage or constant, got '%s'", v);
        return 0;
    }
    return DISA_ENOTFOUND;
}

const char *sample_params_str(const sample_params *p, char *buf, int n) {
    snprintf(buf, (size_t)n,
             "num_iter=%d cfg=%g cfg_schedule=%s temperature=%g diff_sampler=%s diff_upper_steps=%d "
             "diff_lower_steps=%d diff_annealing_strategy=%s",
             p->num_iter, p->cfg, p->cfg_linear ? "linear" : "constant", p->temperature,
             gd_sampler_name(p->sampler), p->upper, p->lower, disa_strategy_name(p->strategy));
    // fp32 adds nothing, so the identity of runs started before the flag existed holds.
    if (p->precision == BLAS_BF16) {
        size_t used = strlen(buf);
        if (used + 1 < (size_t)n) snprintf(buf + used, (size_t)n - used, " precision=bf16");
    }
    return buf;
}
