// Unit tests of src/sample/flops.c: the analytic FLOP model must equal what the engine
// counts (blas_flops() per phase in sample_stats) for real sampler_run calls on a small
// random-weight MAR built in memory, under every sampler (the DPM solvers included), with and without CFG, with
// skipped AR steps (K > seq_len), and its per-step schedule must be the one the sampler
// traces. The Inception count is checked against the published Inception-v3 cost.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/arena.h"
#include "disa/dgen.h"
#include "disa/err.h"
#include "disa/flops.h"
#include "disa/inception.h"
#include "disa/mar.h"
#include "disa/safetensors.h"
#include "disa/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testmodel.h"
#include "tmpdir.h"

static char g_flops_dir[64];
static char g_model[96];

// Encoder and decoder widths, depths and head counts differ so that a swapped dimension
// in the model changes the count; 64 tokens of 2x4x4.
#define CONFIG "{\"format\":\"disa-mar-1\",\"img_size\":32,\"vae_stride\":1,\"patch_size\":4,\"vae_embed_dim\":2," \
               "\"encoder_embed_dim\":32,\"encoder_depth\":2,\"encoder_num_heads\":4,\"decoder_embed_dim\":48," \
               "\"decoder_depth\":1,\"decoder_num_heads\":3,\"mlp_ratio\":4.0,\"buffer_size\":4,\"class_num\":10," \
               "\"diffloss_d\":2,\"diffloss_w\":40,\"tokenizer\":\"patch\",\"norm_eps\":1e-6}"

static int setup(void **state) {
    (void)state;
    snprintf(g_flops_dir, sizeof g_flops_dir, "%s/disa-flops-XXXXXX", tmp_root());
    if (!mkdtemp(g_flops_dir)) return -1;
    snprintf(g_model, sizeof g_model, "%s/m.safetensors", g_flops_dir);
    return testmodel_write(g_model, CONFIG, 77);
}

static int teardown(void **state) {
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_flops_dir);
    return system(cmd) == 0 ? 0 : -1;
}

// What the sampler reports after every AR step, to compare with the model's schedule.
typedef struct trace_log {
    int n;
    int step[512], mask_len[512], n_steps[512], n_pred[512];
} trace_log;

static void on_trace(void *ctx, int step, int mask_len, int n_steps, int n_pred, float cfg, const float *tokens) {
    trace_log *t = ctx;
    if (t->n >= 512) return;
    t->step[t->n] = step;
    t->mask_len[t->n] = mask_len;
    t->n_steps[t->n] = n_steps;
    t->n_pred[t->n] = n_pred;
    t->n++;
}

// Run sampler_run on B images under p and compare every counter with the model.
static void check_case(const char *label, const sample_params *p, int B) {
    mar_model m;
    assert_int_equal(mar_open(&m, g_model), 0);
    sampler s;
    assert_int_equal(sampler_init(&s, &m, p, B), 0);
    trace_log *tl = calloc(1, sizeof *tl);
    assert_non_null(tl);
    s.trace = on_trace;
    s.trace_ctx = tl;
    ar_rng_philox rng;
    uint32_t index[8];
    int labels[8];
    for (int b = 0; b < B; b++) index[b] = (uint32_t)b, labels[b] = b % 3 == 2 ? -1 : b;
    assert_int_equal(ar_rng_philox_init(&rng, 5, index, B), 0);
    float *tokens = malloc(sizeof(float) * (size_t)B * m.cfg.seq_len * m.cfg.token_dim);
    assert_non_null(tokens);
    sample_stats st = {0};
    assert_int_equal(sampler_run(&s, &rng.base, labels, B, tokens, &st), 0);

    flops_sample f;
    flops_step *steps = calloc((size_t)p->num_iter, sizeof *steps);
    assert_non_null(steps);
    assert_int_equal(flops_sample_run(&f, steps, &m.cfg, p, B), 0);
    print_message("%s: transformer measured %llu predicted %llu; head measured %llu predicted %llu\n", label,
                  (unsigned long long)st.flops_transformer, (unsigned long long)f.transformer,
                  (unsigned long long)st.flops_head, (unsigned long long)f.head);
    assert_true(st.flops_transformer > 0 && st.flops_head > 0);
    assert_int_equal(st.flops_transformer, f.transformer);
    assert_int_equal(st.flops_head, f.head);
    assert_int_equal(st.head_row_steps, f.head_row_steps);
    assert_int_equal(st.tokens, f.tokens);
    assert_int_equal(st.ar_steps, f.ar_steps);
    // The per-step schedule is the one the sampler ran (skipped steps are not traced).
    int j = 0;
    for (int k = 0; k < p->num_iter; k++) {
        if (steps[k].rows == 0) continue;
        assert_true(j < tl->n);
        assert_int_equal(tl->step[j], k);
        assert_int_equal(tl->mask_len[j], steps[k].mask_len);
        assert_int_equal(tl->n_steps[j], steps[k].diff_steps);
        assert_int_equal(tl->n_pred[j], steps[k].n_pred);
        j++;
    }
    assert_int_equal(j, tl->n);

    // The per-image table is the batch total over B.
    flops_image fi;
    assert_int_equal(flops_per_image(&fi, &m.cfg, p, B, NULL, 0), 0);
    assert_true(fabs(fi.transformer * B - (double)f.transformer) <= 1e-12 * (double)f.transformer);
    assert_true(fabs(fi.head * B - (double)f.head) <= 1e-12 * (double)f.head);
    assert_true(fi.total == fi.transformer + fi.head);

    free(steps);
    free(tokens);
    free(tl);
    ar_rng_philox_free(&rng);
    sampler_free(&s);
    mar_close(&m);
}

static void set(sample_params *p, const char *flag, const char *v) {
    assert_int_equal(sample_params_set(p, flag, v), 0);
}

static void test_disa_cfg(void **state) {
    (void)state;
    sample_params p;
    sample_params_init(&p);
    set(&p, "num_iter", "8");
    set(&p, "cfg", "2.9");
    set(&p, "diff_sampler", "DiSA");
    set(&p, "diff_upper_steps", "50");
    set(&p, "diff_lower_steps", "5");
    check_case("DiSA 50->5 linear, K 8, cfg 2.9, B 3", &p, 3);
    set(&p, "diff_annealing_strategy", "cosine");
    set(&p, "cfg_schedule", "constant");
    set(&p, "cfg", "1.5");
    set(&p, "num_iter", "5");
    set(&p, "diff_upper_steps", "20");
    set(&p, "diff_lower_steps", "3");
    check_case("DiSA 20->3 cosine, K 5, cfg 1.5 constant, B 2", &p, 2);
}

static void test_default_no_cfg(void **state) {
    (void)state;
    sample_params p;
    sample_params_init(&p);
    set(&p, "num_iter", "4");
    set(&p, "cfg", "1.0");
    set(&p, "diff_sampler", "default");
    set(&p, "diff_upper_steps", "20");
    check_case("default 20 steps, K 4, no cfg, B 2", &p, 2);
    set(&p, "num_iter", "1");
    check_case("default 20 steps, K 1, no cfg, B 1", &p, 1);
}

static void test_ddim_and_skipped_steps(void **state) {
    (void)state;
    sample_params p;
    sample_params_init(&p);
    set(&p, "cfg", "3.0");
    set(&p, "diff_sampler", "DDIM");
    set(&p, "diff_upper_steps", "10");
    set(&p, "diff_lower_steps", "4");
    set(&p, "diff_annealing_strategy", "two-stage");
    set(&p, "num_iter", "6");
    check_case("DDIM 10->4 two-stage, K 6, cfg 3, B 1", &p, 1);
    // 100 AR steps over 64 tokens: some steps have nothing to predict and run no pass.
    set(&p, "num_iter", "100");
    set(&p, "diff_sampler", "DiSA");
    set(&p, "diff_annealing_strategy", "linear");
    check_case("DiSA 10->4, K 100 > 64 tokens, cfg 3, B 2", &p, 2);
}

static void test_dpm(void **state) {
    (void)state;
    sample_params p;
    sample_params_init(&p);
    set(&p, "num_iter", "6");
    set(&p, "cfg", "3.0");
    set(&p, "diff_sampler", "DPM_Solver++");
    set(&p, "diff_upper_steps", "12");
    set(&p, "diff_lower_steps", "3");
    set(&p, "dpm_order", "3");
    check_case("DPM-Solver++ order 3, 12->3 linear, K 6, cfg 3, B 3", &p, 3);
    set(&p, "diff_sampler", "DPM_Solver");
    set(&p, "dpm_order", "1");
    set(&p, "cfg", "1.0");
    set(&p, "diff_annealing_strategy", "cosine");
    check_case("DPM-Solver order 1, 12->3 cosine, K 6, no cfg, B 2", &p, 2);
}

static void test_mar_b_and_inception(void **state) {
    (void)state;
    // DESIGN §10: MAR-B at K = 64 is ~11 TFLOP transformer, ~3.4 TFLOP head at 100 steps
    // and ~0.7 under DiSA 50 -> 5 per image (CFG on).
    mar_config c;
    assert_int_equal(mar_config_preset(&c, "mar_base"), 0);
    sample_params p;
    sample_params_init(&p);
    set(&p, "cfg", "2.9");
    set(&p, "diff_sampler", "default");
    set(&p, "diff_upper_steps", "100");
    flops_image base, disa;
    assert_int_equal(flops_per_image(&base, &c, &p, 1, NULL, 0), 0);
    set(&p, "diff_sampler", "DiSA");
    set(&p, "diff_upper_steps", "50");
    set(&p, "diff_lower_steps", "5");
    assert_int_equal(flops_per_image(&disa, &c, &p, 1, NULL, 0), 0);
    print_message("MAR-B K 64: transformer %.2f TFLOP, head %.2f (100 steps) / %.2f (DiSA) TFLOP\n",
                  base.transformer / 1e12, base.head / 1e12, disa.head / 1e12);
    assert_true(base.transformer > 10e12 && base.transformer < 12e12);
    assert_true(base.head > 3.0e12 && base.head < 3.8e12);
    assert_true(disa.head > 0.5e12 && disa.head < 0.9e12);
    assert_true(base.transformer == disa.transformer);
    // Inception-v3 at 299x299: 5.71 G multiply-adds in its convolutions (torchvision's
    // figure includes its 2048 x 1000 fc, 2 M).
    double inc = (double)inception_flops(0);
    print_message("Inception convs %.3f GFLOP\n", inc / 1e9);
    assert_true(inc > 2 * 5.65e9 && inc < 2 * 5.75e9);
    assert_int_equal(inception_flops(1) - inception_flops(0), 2ull * 2048 * 1008);
}

// The last decoder block runs only on the sampled rows: z for a few rows must equal the
// same rows of a pass that samples every unknown position (up to GEMM rounding), in both
// CFG halves, whatever the order of the rows.
static void test_last_block_rows(void **state) {
    mar_model m;
    assert_int_equal(mar_open(&m, g_model), 0);
    const mar_config *c = &m.cfg;
    enum { B = 2 };
    int L = c->seq_len, D = c->dec_dim, n_known = 20, cfg = 1, B2 = 2 * B;
    arena a;
    assert_int_equal(arena_init(&a, mar_forward_scratch_bytes(c, B2), "test"), 0);
    float *tokens = malloc(sizeof(float) * B * L * c->token_dim);
    unsigned char *known = calloc((size_t)B * L, 1);
    int *all = malloc(sizeof(int) * B * L), sub[B * 3], labels[B] = {3, -1};
    float *z_all = malloc(sizeof(float) * B2 * L * D), *z_sub = malloc(sizeof(float) * B2 * 3 * D);
    assert_true(tokens && known && all && z_all && z_sub);
    dgen_fill(tokens, (size_t)B * L * c->token_dim, 9, 1.0);
    int n_unknown = L - n_known;
    for (int b = 0; b < B; b++) {
        int r = 0;
        for (int p = 0; p < L; p++) {
            known[b * L + p] = (unsigned char)((p * 7 + b) % L < n_known);
            if (!known[b * L + p]) all[b * n_unknown + r++] = p;
        }
        assert_int_equal(r, n_unknown);
        // Three unknown positions, out of order.
        sub[b * 3 + 0] = all[b * n_unknown + 17], sub[b * 3 + 1] = all[b * n_unknown + 2];
        sub[b * 3 + 2] = all[b * n_unknown + 30];
    }
    assert_int_equal(mar_forward(&m, &a, z_all, tokens, known, n_known, labels, cfg, all, n_unknown, B, NULL, NULL), 0);
    assert_int_equal(mar_forward(&m, &a, z_sub, tokens, known, n_known, labels, cfg, sub, 3, B, NULL, NULL), 0);
    int idx[3] = {17, 2, 30};
    double maxe = 0, maxv = 0;
    for (int b2 = 0; b2 < B2; b2++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < D; k++) {
                double w = z_all[((size_t)b2 * n_unknown + idx[j]) * D + k], v = z_sub[((size_t)b2 * 3 + j) * D + k];
                maxe = fmax(maxe, fabs(v - w));
                maxv = fmax(maxv, fabs(w));
            }
    print_message("last block on 3 of %d rows: max abs diff %.3g (max |z| %.3g)\n", n_unknown, maxe, maxv);
    assert_true(maxv > 0.1);
    assert_true(maxe <= 1e-5 * maxv);
    free(tokens), free(known), free(all), free(z_all), free(z_sub);
    arena_free(&a);
    mar_close(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disa_cfg),
        cmocka_unit_test(test_last_block_rows),
        cmocka_unit_test(test_default_no_cfg),
        cmocka_unit_test(test_ddim_and_skipped_steps),
        cmocka_unit_test(test_dpm),
        cmocka_unit_test(test_mar_b_and_inception),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
