// test_sample.c: unit tests of the diffusion tables, the reverse steps, the timestep
// embedding (src/nn/timestep.c) and the DiSA schedules (src/sample/disa_sched.c).
//
// Expected integers and doubles are those of the official MAR_DiSA code (checked with
// tools/marref/diffusion.py); float step results are checked against the DESIGN §6
// formulas evaluated in double. The golden files (tools/golden/diffusion.py) cover more
// sizes; these tests pin the cases that are easy to get subtly wrong.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "disa/diffusion.h"
#include "disa/disa_sched.h"
#include "disa/err.h"
#include "disa/nn.h"

// ----------------------------------------------------------------------------
// helpers

static void init_ok(gd_tables *t, int n, gd_sampler s) {
    int rc = gd_tables_init(t, n, s);
    if (rc != 0) fail_msg("gd_tables_init(%d, %s): %s", n, gd_sampler_name(s), disa_errmsg());
}

static void assert_msg_has(const char *needle) {
    if (!strstr(disa_errmsg(), needle))
        fail_msg("error message '%s' lacks '%s'", disa_errmsg(), needle);
}

static void assert_rel(double got, double want, double rtol) {
    if (!(fabs(got - want) <= rtol * fabs(want)))
        fail_msg("got %.9g, want %.9g (rel %.3g > %.3g)", got, want,
                 fabs(got - want) / fabs(want), rtol);
}

// Improved-DDPM cosine alpha_bar, written independently of gd.c.
static double abar(double u) {
    double c = cos((u + 0.008) / 1.008 * M_PI / 2.0);
    return c * c;
}

// ----------------------------------------------------------------------------
// sampler enum

static void test_sampler_names(void **state) {
    (void)state;
    gd_sampler s;
    for (int k = 0; k < GD_SAMPLER_COUNT; k++) {
        assert_int_equal(gd_sampler_parse(gd_sampler_name((gd_sampler)k), &s), 0);
        assert_int_equal(s, k);
    }
    // the official --diff_sampler spellings
    assert_int_equal(gd_sampler_parse("DiSA", &s), 0);
    assert_int_equal(s, GD_SAMPLER_DISA);
    assert_int_equal(gd_sampler_parse("DDIM", &s), 0);
    assert_int_equal(s, GD_SAMPLER_DDIM);
    assert_int_equal(gd_sampler_parse("default", &s), 0);
    assert_int_equal(s, GD_SAMPLER_DEFAULT);
    assert_int_equal(gd_sampler_parse("DPM_Solver", &s), 0);
    assert_int_equal(s, GD_SAMPLER_DPM);
    assert_int_equal(gd_sampler_parse("DPM_Solver++", &s), 0);
    assert_int_equal(s, GD_SAMPLER_DPM_PP);
    assert_true(gd_sampler_is_dpm(s) && !gd_sampler_is_dpm(GD_SAMPLER_DISA));
    assert_int_equal(gd_sampler_parse("DPM_Solver+", &s), DISA_EINVAL);
    assert_msg_has("'DPM_Solver+'");
    assert_int_equal(gd_sampler_parse("dis", &s), DISA_EINVAL);
    assert_int_equal(gd_sampler_parse(NULL, &s), DISA_EINVAL);
    assert_string_equal(gd_sampler_name(GD_SAMPLER_COUNT), "?");
    assert_int_equal(gd_sampler_clip(GD_SAMPLER_DISA), 950);
    assert_int_equal(gd_sampler_clip(GD_SAMPLER_DDIM), 980);
    assert_int_equal(gd_sampler_clip(GD_SAMPLER_DEFAULT), 999);
}

// ----------------------------------------------------------------------------
// respacing and clip

static void test_disa50_clip950(void **state) {
    (void)state;
    gd_tables t;
    init_ok(&t, 50, GD_SAMPLER_DISA);
    // 50 uniform steps keep 0, 20, 41, ..., 917, 938, 958, 979, 999; the last three
    // merge into 950.
    assert_int_equal(t.n, 48);
    assert_int_equal(t.n_steps, 50);
    const int head[5] = {0, 20, 41, 61, 82};
    for (int i = 0; i < 5; i++) assert_int_equal(t.timestep_map[i], head[i]);
    assert_int_equal(t.timestep_map[46], 938);
    assert_int_equal(t.timestep_map[47], 950);
    // The official float64 values, bit for bit.
    assert_true(t.betas[0] == 0x1.5a51329e24000p-15);
    assert_true(t.betas[47] == 0x1.6a8ceb1d7f8b8p-2);
    assert_true(t.sqrt_recip_alphas_cumprod[47] == 0x1.a373df3d36443p+3);
    gd_tables_free(&t);
}

static void test_ddim50_clip980(void **state) {
    (void)state;
    gd_tables t;
    init_ok(&t, 50, GD_SAMPLER_DDIM);
    assert_int_equal(t.n, 50);
    for (int i = 0; i < 50; i++) assert_int_equal(t.timestep_map[i], 20 * i);
    gd_tables_free(&t);

    // ddim1000 keeps 0..999 (stride 1); the clip merges 980..999 into one step.
    init_ok(&t, 1000, GD_SAMPLER_DDIM);
    assert_int_equal(t.n, 981);
    assert_int_equal(t.timestep_map[980], 980);
    gd_tables_free(&t);

    // ddim45: no stride fits T = 1000 (ceil(1000/22) = 46, ceil(1000/23) = 44); the
    // search goes down to T = 990 with stride 22.
    init_ok(&t, 45, GD_SAMPLER_DDIM);
    assert_int_equal(t.n, 45);
    assert_int_equal(t.timestep_map[1], 22);
    assert_int_equal(t.timestep_map[44], 968);
    gd_tables_free(&t);

    // ddim5: stride 200, nothing reaches the clip.
    init_ok(&t, 5, GD_SAMPLER_DDIM);
    assert_int_equal(t.n, 5);
    assert_int_equal(t.timestep_map[4], 800);
    gd_tables_free(&t);
}

static void test_default100_no_clip(void **state) {
    (void)state;
    gd_tables t;
    init_ok(&t, 100, GD_SAMPLER_DEFAULT);
    assert_int_equal(t.n, 100);
    const int head[5] = {0, 10, 20, 30, 40}, tail[5] = {959, 969, 979, 989, 999};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(t.timestep_map[i], head[i]);
        assert_int_equal(t.timestep_map[95 + i], tail[i]);
    }
    // Unclipped, the first step divides by sqrt(ac) at t = 999.
    assert_rel(t.sqrt_recip_alphas_cumprod[99], 20291.169634711496, 1e-15);
    gd_tables_free(&t);
}

static void test_round_half_even(void **state) {
    (void)state;
    gd_tables t;
    // n = 7: stride 166.5, cur = 166.5 and 832.5 round to the even 166 and 832.
    init_ok(&t, 7, GD_SAMPLER_DEFAULT);
    const int want7[7] = {0, 166, 333, 500, 666, 832, 999};
    assert_int_equal(t.n, 7);
    for (int i = 0; i < 7; i++) assert_int_equal(t.timestep_map[i], want7[i]);
    gd_tables_free(&t);

    // n = 21: the accumulated cur is 499.49999999999994 -> 499 (10 * stride = 499.5
    // would round to 500).
    init_ok(&t, 21, GD_SAMPLER_DEFAULT);
    assert_int_equal(t.timestep_map[10], 499);
    gd_tables_free(&t);

    // n = 31: accumulated 499.5000000000001 -> 500 (15 * stride gives 499.49999...).
    init_ok(&t, 31, GD_SAMPLER_DEFAULT);
    assert_int_equal(t.timestep_map[14], 466);
    assert_int_equal(t.timestep_map[15], 500);
    assert_int_equal(t.timestep_map[16], 533);
    gd_tables_free(&t);
}

static void test_small_and_large_n(void **state) {
    (void)state;
    gd_tables t;
    init_ok(&t, 1, GD_SAMPLER_DISA);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.timestep_map[0], 0);
    assert_true(isfinite(t.posterior_log_variance_clipped[0]));
    gd_tables_free(&t);

    init_ok(&t, 2, GD_SAMPLER_DEFAULT);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.timestep_map[1], 999);
    gd_tables_free(&t);

    init_ok(&t, 25, GD_SAMPLER_DISA);
    assert_int_equal(t.n, 24);
    gd_tables_free(&t);

    init_ok(&t, 1000, GD_SAMPLER_DISA);
    assert_int_equal(t.n, 951);
    gd_tables_free(&t);
}

static void test_table_identities(void **state) {
    (void)state;
    gd_tables t;
    init_ok(&t, 48, GD_SAMPLER_DISA);
    // t = 0 is always kept, so beta'_0 is the first cosine beta.
    assert_true(t.betas[0] == 1.0 - abar(0.001) / abar(0.0));
    assert_true(t.alphas_cumprod_prev[0] == 1.0);
    assert_true(t.posterior_variance[0] == 0.0);
    // the clipped log variance repeats entry 1 at entry 0
    assert_true(t.posterior_log_variance_clipped[0] == t.posterior_log_variance_clipped[1]);
    for (int i = 1; i < t.n; i++) {
        assert_true(t.alphas_cumprod_prev[i] == t.alphas_cumprod[i - 1]);
        assert_true(t.timestep_map[i] > t.timestep_map[i - 1]);
        // spaced alphas_cumprod equals the original one at the kept step
        double ac = 1.0;
        for (int v = 0; v <= t.timestep_map[i]; v++) {
            double b = 1.0 - abar((v + 1) / 1000.0) / abar(v / 1000.0);
            ac *= 1.0 - (b < 0.999 ? b : 0.999);
        }
        assert_rel(t.alphas_cumprod[i], ac, 1e-12);
        assert_rel(t.posterior_log_variance_clipped[i], log(t.posterior_variance[i]), 1e-15);
    }
    gd_tables_free(&t);
}

static void test_tables_errors(void **state) {
    (void)state;
    gd_tables t;
    assert_int_equal(gd_tables_init(&t, 0, GD_SAMPLER_DISA), DISA_EINVAL);
    assert_msg_has("got 0");
    assert_int_equal(t.n, 0);
    assert_null(t.betas);
    gd_tables_free(&t); // no-op on the zeroed struct
    assert_int_equal(gd_tables_init(&t, 1001, GD_SAMPLER_DEFAULT), DISA_EINVAL);
    assert_msg_has("got 1001");
    assert_int_equal(gd_tables_init(&t, 1, GD_SAMPLER_DDIM), DISA_EINVAL);
    assert_msg_has("ddim1");
    assert_int_equal(gd_tables_init(&t, 50, GD_SAMPLER_COUNT), DISA_EINVAL);
    assert_msg_has("sampler 5");
    assert_int_equal(gd_tables_init(&t, 50, GD_SAMPLER_DPM), DISA_EINVAL);
    assert_msg_has("dpm_solver sampler has no respaced tables");
    assert_null(t.betas);
    assert_int_equal(gd_tables_init(&t, -5, GD_SAMPLER_DDIM), DISA_EINVAL);
    assert_msg_has("got -5");

    init_ok(&t, 5, GD_SAMPLER_DISA);
    gd_tables_free(&t);
    gd_tables_free(&t); // twice is fine
    gd_tables_free(NULL);
}

// ----------------------------------------------------------------------------
// reverse steps

// At i = 0: ac_prev = 1, so mean = x0 = (x - sqrt(beta0) eps) / sqrt(1 - beta0), and no
// noise is added (noise may be NULL).
static void test_ddpm_last_step_by_hand(void **state) {
    (void)state;
    gd_tables t;
    init_ok(&t, 50, GD_SAMPLER_DISA);
    double b0 = 1.0 - abar(0.001) / abar(0.0); // 4.128422482196914e-05
    float x[3] = {1.0f, -2.0f, 0.25f}, eps[3] = {0.5f, 0.0f, -1.0f}, var[3] = {0.0f, 1.0f, -1.0f};
    float x_in[3];
    memcpy(x_in, x, sizeof x);
    gd_ddpm_step(x, eps, var, NULL, &t, 0, 1.0f, 1, 3);
    for (int k = 0; k < 3; k++)
        assert_rel(x[k], (x_in[k] - sqrt(b0) * eps[k]) / sqrt(1.0 - b0), 1e-6);
    gd_tables_free(&t);
}

// A middle step with noise: DESIGN §6 evaluated in double on the table values.
static void test_ddpm_step_formula(void **state) {
    (void)state;
    gd_tables t;
    init_ok(&t, 50, GD_SAMPLER_DISA);
    enum { N = 2, C = 4 };
    const float x0[N * C] = {0.3f, -1.2f, 2.0f, 0.0f, 1.5f, -0.7f, 0.1f, -2.5f};
    const float eps[N * C] = {-0.4f, 0.9f, 1.1f, -1.0f, 0.2f, 0.0f, -1.7f, 0.6f};
    const float var[N * C] = {-1.0f, 1.0f, 0.0f, 0.5f, -0.25f, 0.9f, -1.0f, 1.0f};
    const float noise[N * C] = {1.0f, -0.5f, 0.3f, 2.0f, -1.1f, 0.8f, 0.0f, -0.2f};
    const float temp = 0.9f;
    for (int i = 1; i < t.n; i += 23) { // i = 1, 24, 47 (the clipped top)
        float x[N * C];
        memcpy(x, x0, sizeof x);
        gd_ddpm_step(x, eps, var, noise, &t, i, temp, N, C);
        for (int k = 0; k < N * C; k++) {
            double frac = (var[k] + 1.0) / 2.0;
            double lv = frac * log(t.betas[i]) + (1.0 - frac) * t.posterior_log_variance_clipped[i];
            double xs = t.sqrt_recip_alphas_cumprod[i] * x0[k] -
                        t.sqrt_recipm1_alphas_cumprod[i] * eps[k];
            double mean = t.posterior_mean_coef1[i] * xs + t.posterior_mean_coef2[i] * x0[k];
            double want = mean + exp(0.5 * lv) * noise[k] * temp;
            // float32 rounding of x0 (scaled up to 13x at t = 950) bounds the error
            if (!(fabs(x[k] - want) <= 2e-6 * (1.0 + fabs(want))))
                fail_msg("i=%d k=%d: got %.9g want %.9g", i, k, x[k], want);
        }
    }
    // temperature 0 leaves the mean, as zero noise does
    float a[N * C];
    memcpy(a, x0, sizeof a);
    gd_ddpm_step(a, eps, var, noise, &t, 10, 0.0f, N, C);
    const float zero_noise[N * C] = {0};
    float c[N * C];
    memcpy(c, x0, sizeof c);
    gd_ddpm_step(c, eps, var, zero_noise, &t, 10, 1.0f, N, C);
    for (int k = 0; k < N * C; k++) assert_true(a[k] == c[k]);
    gd_tables_free(&t);
}

// DDIM (eta 0) is exact on a forward-process sample: x_t = sqrt(ac) x0 + sqrt(1-ac) eps
// maps to sqrt(ac_prev) x0 + sqrt(1-ac_prev) eps.
static void test_ddim_step_identity(void **state) {
    (void)state;
    gd_tables t;
    init_ok(&t, 25, GD_SAMPLER_DDIM);
    enum { C = 6 };
    const double xs[C] = {0.5, -1.0, 0.0, 1.7, -0.3, 0.9};
    const float eps[C] = {0.1f, -0.8f, 1.3f, 0.0f, 0.6f, -1.9f};
    for (int i = 0; i < t.n; i++) {
        double ac = t.alphas_cumprod[i], acp = t.alphas_cumprod_prev[i];
        float x[C];
        for (int k = 0; k < C; k++) x[k] = (float)(sqrt(ac) * xs[k] + sqrt(1.0 - ac) * eps[k]);
        gd_ddim_step(x, eps, &t, i, 1, C);
        for (int k = 0; k < C; k++) {
            double want = sqrt(acp) * xs[k] + sqrt(1.0 - acp) * eps[k];
            if (!(fabs(x[k] - want) <= 2e-5 * (1.0 + fabs(want))))
                fail_msg("i=%d (t=%d) k=%d: got %.9g want %.9g", i, t.timestep_map[i], k, x[k], want);
        }
    }
    gd_tables_free(&t);
}

// ----------------------------------------------------------------------------
// timestep embedding

static void test_timestep_embedding(void **state) {
    (void)state;
    float e[257];
    // dim 4: freqs [1, exp(-ln(1e4)/2) = 0.01]
    gd_timestep_embedding(e, 1.0f, 4, 10000.0f);
    assert_rel(e[0], cos(1.0), 1e-7);
    assert_rel(e[1], cos(0.01), 1e-7);
    assert_rel(e[2], sin(1.0), 1e-7);
    assert_rel(e[3], sin(0.01), 2e-7);
    // t = 0: cos half all 1, sin half all 0
    gd_timestep_embedding(e, 0.0f, 256, 10000.0f);
    for (int k = 0; k < 128; k++) {
        assert_true(e[k] == 1.0f);
        assert_true(e[128 + k] == 0.0f);
    }
    // odd dim: zero pad at the end
    e[6] = 7.0f;
    gd_timestep_embedding(e, 3.0f, 7, 10000.0f);
    assert_true(e[6] == 0.0f);
    assert_rel(e[0], cos(3.0), 1e-6);
    assert_rel(e[3], sin(3.0), 1e-6);
    // dim 256 at t = 950, k = 64: freq = exp(-ln(1e4) * 64/128) = 0.01
    gd_timestep_embedding(e, 950.0f, 256, 10000.0f);
    assert_true(fabs(e[64] - cos(9.5)) < 1e-6);
    assert_true(fabs(e[128 + 64] - sin(9.5)) < 1e-6);
}

// ----------------------------------------------------------------------------
// DiSA schedules

static void test_strategy_names(void **state) {
    (void)state;
    disa_strategy s;
    for (int k = 0; k < DISA_STRATEGY_COUNT; k++) {
        assert_int_equal(disa_strategy_parse(disa_strategy_name((disa_strategy)k), &s), 0);
        assert_int_equal(s, k);
    }
    assert_string_equal(disa_strategy_name(DISA_STRATEGY_TWO_STAGE), "two-stage");
    assert_int_equal(disa_strategy_parse("two_stage", &s), 0);
    assert_int_equal(s, DISA_STRATEGY_TWO_STAGE);
    assert_int_equal(disa_strategy_parse("Linear", &s), 0);
    assert_int_equal(s, DISA_STRATEGY_LINEAR);
    assert_int_equal(disa_strategy_parse("twostage", &s), DISA_EINVAL);
    assert_msg_has("'twostage'");
    assert_int_equal(disa_strategy_parse("", &s), DISA_EINVAL);
    assert_string_equal(disa_strategy_name(DISA_STRATEGY_COUNT), "?");
}

static int sum(const int *v, int n) {
    int s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return s;
}

static void test_strategies_k64(void **state) {
    (void)state;
    int out[64];
    // paper setting: K = 64, 50 -> 5
    assert_int_equal(disa_steps_for(out, 64, 50, 5, DISA_STRATEGY_LINEAR), 0);
    assert_int_equal(out[0], 50);
    assert_int_equal(out[1], 49);
    assert_int_equal(out[32], 27);
    assert_int_equal(out[33], 26);
    assert_int_equal(out[63], 5);
    assert_int_equal(sum(out, 64), 1733);

    assert_int_equal(disa_steps_for(out, 64, 50, 5, DISA_STRATEGY_COSINE), 0);
    assert_int_equal(out[0], 50);
    assert_int_equal(out[1], 49);
    assert_int_equal(out[32], 26);
    assert_int_equal(out[63], 5);
    assert_int_equal(sum(out, 64), 1729);

    // two-stage: s < 31.5 gets upper
    assert_int_equal(disa_steps_for(out, 64, 50, 5, DISA_STRATEGY_TWO_STAGE), 0);
    assert_int_equal(out[0], 50);
    assert_int_equal(out[31], 50);
    assert_int_equal(out[32], 5);
    assert_int_equal(out[63], 5);
    assert_int_equal(sum(out, 64), 1760);

    assert_int_equal(disa_steps_for(out, 64, 50, 5, DISA_STRATEGY_CONSTANT), 0);
    for (int s = 0; s < 64; s++) assert_int_equal(out[s], 5);

    // the linear ramp at K = 16: 50, 47, ..., 5
    assert_int_equal(disa_steps_for(out, 16, 50, 5, DISA_STRATEGY_LINEAR), 0);
    for (int s = 0; s < 16; s++) assert_int_equal(out[s], 50 - 3 * s);

    // upper == lower: n constant steps whatever the strategy
    for (int k = 0; k < DISA_STRATEGY_COUNT; k++) {
        assert_int_equal(disa_steps_for(out, 64, 7, 7, (disa_strategy)k), 0);
        for (int s = 0; s < 64; s++) assert_int_equal(out[s], 7);
    }
}

static void test_strategies_small_k(void **state) {
    (void)state;
    int out[2];
    for (int k = 0; k < DISA_STRATEGY_COUNT; k++) {
        // K = 1 divides by zero officially; defined as upper
        out[0] = -1;
        assert_int_equal(disa_steps_for(out, 1, 50, 5, (disa_strategy)k), 0);
        assert_int_equal(out[0], 50);
    }
    // K = 2: u = 1, the first step is upper, the last lower (constant: lower twice)
    assert_int_equal(disa_steps_for(out, 2, 50, 5, DISA_STRATEGY_COSINE), 0);
    assert_int_equal(out[0], 50);
    assert_int_equal(out[1], 5);
    assert_int_equal(disa_steps_for(out, 2, 50, 5, DISA_STRATEGY_TWO_STAGE), 0);
    assert_int_equal(out[0], 50);
    assert_int_equal(out[1], 5);
    assert_int_equal(disa_steps_for(out, 2, 50, 5, DISA_STRATEGY_CONSTANT), 0);
    assert_int_equal(out[0], 5);
    assert_int_equal(out[1], 5);
}

static void test_strategies_errors(void **state) {
    (void)state;
    int out[4] = {-9, -9, -9, -9};
    assert_int_equal(disa_steps_for(out, 4, 50, 0, DISA_STRATEGY_LINEAR), DISA_EINVAL);
    assert_msg_has("'lower' must be >= 1, got 0");
    assert_int_equal(disa_steps_for(out, 4, 4, 5, DISA_STRATEGY_LINEAR), DISA_EINVAL);
    assert_msg_has("'upper' must be >= 'lower' (5), got 4");
    assert_int_equal(disa_steps_for(out, 0, 50, 5, DISA_STRATEGY_LINEAR), DISA_EINVAL);
    assert_msg_has("K must be >= 1, got 0");
    assert_int_equal(disa_steps_for(out, 4, 50, 5, DISA_STRATEGY_COUNT), DISA_EINVAL);
    assert_msg_has("unknown strategy 4");
    for (int i = 0; i < 4; i++) assert_int_equal(out[i], -9);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampler_names),
        cmocka_unit_test(test_disa50_clip950),
        cmocka_unit_test(test_ddim50_clip980),
        cmocka_unit_test(test_default100_no_clip),
        cmocka_unit_test(test_round_half_even),
        cmocka_unit_test(test_small_and_large_n),
        cmocka_unit_test(test_table_identities),
        cmocka_unit_test(test_tables_errors),
        cmocka_unit_test(test_ddpm_last_step_by_hand),
        cmocka_unit_test(test_ddpm_step_formula),
        cmocka_unit_test(test_ddim_step_identity),
        cmocka_unit_test(test_timestep_embedding),
        cmocka_unit_test(test_strategy_names),
        cmocka_unit_test(test_strategies_k64),
        cmocka_unit_test(test_strategies_small_k),
        cmocka_unit_test(test_strategies_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
