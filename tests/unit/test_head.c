// Unit tests of the per-row diffusion head (src/sample/head.c) through sampler_run on a
// small random-weight MAR, and of the adaptive rule (src/sample/adaptive.c):
// - adaptive with lower = upper is the constant schedule, bit for bit (same draws, same
//   first evaluation, same updates), for DiSA and for the DPM solvers;
// - an image's step counts never depend on the images sharing its batch, and its tokens
//   only within GEMM rounding;
// - the budget holds per image, the envelope spends it, and odd signals stay in range.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/adaptive.h"
#include "disa/err.h"
#include "disa/mar.h"
#include "disa/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testmodel.h"
#include "tmpdir.h"

static char g_model[96];

// 16 tokens of 16 values, K up to 16: one token per AR step at K = 16 (the embedded
// model's shape), several per step at smaller K.
#define CONFIG "{\"format\":\"disa-mar-1\",\"img_size\":16,\"vae_stride\":1,\"patch_size\":4,\"vae_embed_dim\":1," \
               "\"encoder_embed_dim\":32,\"encoder_depth\":1,\"encoder_num_heads\":4,\"decoder_embed_dim\":32," \
               "\"decoder_depth\":1,\"decoder_num_heads\":4,\"mlp_ratio\":4.0,\"buffer_size\":4,\"class_num\":10," \
               "\"diffloss_d\":2,\"diffloss_w\":32,\"tokenizer\":\"patch\",\"norm_eps\":1e-6}"
#define L 16
#define C 16

static int setup(void **state) {
    if (tmpdir_setup(state) != 0) return -1;
    snprintf(g_model, sizeof g_model, "%s/m.safetensors", g_dir);
    return testmodel_write(g_model, CONFIG, 31);
}

static void set(sample_params *p, const char *flag, const char *v) {
    if (sample_params_set(p, flag, v) != 0) fail_msg("--%s %s: %s", flag, v, disa_errmsg());
}

// Sample images index[0..B-1] (labels index % 10) into tokens [B, L, C]; stats into *st.
static void run(const sample_params *p, const uint32_t *index, int B, float *tokens, sample_stats *st) {
    mar_model m;
    assert_int_equal(mar_open(&m, g_model), 0);
    sampler s;
    if (sampler_init(&s, &m, p, B) != 0) fail_msg("sampler_init: %s", disa_errmsg());
    ar_rng_philox rng;
    int labels[8];
    for (int b = 0; b < B; b++) labels[b] = (int)(index[b] % 10);
    assert_int_equal(ar_rng_philox_init(&rng, 11, index, B), 0);
    memset(st, 0, sizeof *st);
    if (sampler_run(&s, &rng.base, labels, B, tokens, st) != 0) fail_msg("sampler_run: %s", disa_errmsg());
    ar_rng_philox_free(&rng);
    sampler_free(&s);
    mar_close(&m);
}

static void base(sample_params *p, const char *smp, const char *K) {
    sample_params_init(p);
    set(p, "num_iter", K);
    set(p, "cfg", "3.0");
    set(p, "diff_sampler", smp);
}

// ----------------------------------------------------------------------------

static void test_adaptive_constant_is_constant(void **state) {
    (void)state;
    const char *samplers[] = {"DiSA", "DPM_Solver++"};
    uint32_t index[3] = {3, 4, 5};
    float a[3 * L * C], b[3 * L * C];
    for (int k = 0; k < 2; k++) {
        sample_params p;
        base(&p, samplers[k], "6");
        set(&p, "dpm_order", "2");
        set(&p, "diff_upper_steps", "7");
        set(&p, "diff_lower_steps", "7");
        set(&p, "diff_annealing_strategy", "constant");
        sample_stats s1, s2;
        run(&p, index, 3, a, &s1);
        set(&p, "diff_annealing_strategy", "adaptive");
        set(&p, "diff_budget", "7");
        run(&p, index, 3, b, &s2);
        assert_memory_equal(a, b, sizeof a);
        assert_int_equal(s1.head_row_steps, s2.head_row_steps);
        assert_int_equal(s1.flops_head, s2.flops_head);
    }
}

static void test_batch_independence(void **state) {
    (void)state;
    const char *samplers[] = {"DiSA", "DPM_Solver", "DiSA", "DPM_Solver"};
    const char *signals[] = {"cfg", "cfg", "var", "eps"};
    uint32_t index[3] = {7, 8, 9};
    for (int k = 0; k < 4; k++) {
        sample_params p;
        base(&p, samplers[k], k % 2 ? "5" : "16");
        set(&p, "dpm_order", "3");
        set(&p, "diff_upper_steps", "30");
        set(&p, "diff_lower_steps", "3");
        set(&p, "diff_annealing_strategy", "adaptive");
        set(&p, "diff_budget", "9.5");
        set(&p, "diff_adaptive_signal", signals[k]);
        float batch[3 * L * C], one[L * C];
        sample_stats sb, s1;
        run(&p, index, 3, batch, &sb);
        uint64_t steps = 0;
        double worst = 0, scale = 0;
        for (int b = 0; b < 3; b++) {
            run(&p, index + b, 1, one, &s1);
            steps += s1.head_row_steps;
            for (int i = 0; i < L * C; i++) {
                worst = fmax(worst, fabs(one[i] - batch[b * L * C + i]));
                scale = fmax(scale, fabs(one[i]));
            }
        }
        // The counts are the image's own; the values differ only by GEMM blocking.
        assert_int_equal(steps, sb.head_row_steps);
        if (worst > 1e-4 * scale)
            fail_msg("%s, %s: image alone vs in a batch differ by %g (scale %g)", samplers[k], signals[k], worst, scale);
        // The budget holds per image (DPM: evaluations are the requested counts).
        if (k % 2) assert_true(sb.head_row_steps <= 3 * (uint64_t)floor(9.5 * L));
    }
}

// The rule alone: never more than the budget, always within [lower, upper], even shares
// without a signal, whatever the signals (random, zero, spikes, NaN).
static void test_adapt_choose_budget(void **state) {
    (void)state;
    uint64_t z = 12345;
    for (int trial = 0; trial < 300; trial++) {
        int Lt = 1 + trial % 40, lower = 1 + trial % 5, upper = lower + trial % 30;
        double budget = lower + (upper - lower) * ((trial * 37) % 101) / 100.0;
        float g[64];
        for (int i = 0; i < Lt; i++) {
            z = z * 6364136223846793005ull + 1442695040888963407ull;
            g[i] = (float)((z >> 40) % 1000) / 100.0f;
            if (trial % 7 == 0) g[i] = 0;
            if (trial % 11 == 0 && i == Lt / 2) g[i] = 1e30f;
            if (trial % 13 == 0 && i == 0) g[i] = NAN;
        }
        adapt_state st;
        adapt_state_reset(&st);
        int n[64], used = 0;
        for (int pos = 0, P = 1; pos < Lt; pos += P, P = P % 3 + 1) {
            if (pos + P > Lt) P = Lt - pos;
            adapt_choose(n + pos, g + pos, P, Lt, lower, upper, budget, &st);
        }
        for (int i = 0; i < Lt; i++) {
            assert_in_range(n[i], lower, upper);
            used += n[i];
        }
        assert_true(used <= (int)floor(budget * Lt) || used == lower * Lt);
        assert_int_equal(st.assigned, Lt);
        if (trial % 7 == 0 && trial % 11 && trial % 13 && upper > lower) {
            // no signal: the even share, which spends the budget to within rounding
            if (fabs(used - budget * Lt) > 1.0) fail_msg("trial %d: %d steps for budget %g x %d", trial, used, budget, Lt);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adaptive_constant_is_constant),
        cmocka_unit_test(test_batch_independence),
        cmocka_unit_test(test_adapt_choose_budget),
    };
    return cmocka_run_group_tests(tests, setup, tmpdir_teardown);
}
