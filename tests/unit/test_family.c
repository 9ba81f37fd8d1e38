// Unit tests of the model-family seam (src/sample/family.c, mar_family.c): which family
// a file or preset belongs to, the shared precision key and the message for another
// family's key, and that MAR through its table samples exactly what the sampler samples
// directly, with the FLOP model of the table equal to the engine's count.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/bf16.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/mar.h"
#include "disa/sampler.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TINY "models/tiny-test.safetensors"  // 28x28x1 pixels, 16 tokens of 7x7, 10 classes

// A second family with one key of its own, for the messages about keys of other families.
static void fake_init(family_params *p) { memset(p, 0, sizeof *p); }
static int fake_set(family_params *p, const char *key, const char *value) {
    p->bytes[0] = (unsigned char)atoi(value);
    return strcmp(key, "flow_steps") == 0 ? 0 : DISA_ENOTFOUND;
}
static const char *fake_str(const family_params *p, char *buf, int n) {
    snprintf(buf, (size_t)n, "flow_steps=%d", p->bytes[0]);
    return buf;
}
static const char *const fake_keys[] = {"flow_steps", NULL};
static const family fake = {.name = "fake", .format = "disa-fake-1", .keys = fake_keys, .params_init = fake_init,
                            .params_set = fake_set, .params_str = fake_str};

static void test_lookup(void **state) {
    (void)state;
    const family *mar = family_at(0);
    assert_non_null(mar);
    assert_string_equal(mar->name, "mar");
    assert_string_equal(mar->format, "disa-mar-1");
    assert_int_equal(family_index(mar), 0);
    assert_null(family_at(family_count()));
    assert_ptr_equal(family_for_file(TINY), mar);
    // No known format, or no file: the first family, whose loader names the problem.
    assert_ptr_equal(family_for_file("models/fmnist-classifier.safetensors"), mar);
    assert_ptr_equal(family_for_file("/nonexistent/m.safetensors"), mar);
    assert_ptr_equal(family_for_preset("mar_base"), mar);
    assert_null(family_for_preset("mar_tiny"));
    char buf[512];
    assert_string_equal(family_keys_str(mar, buf, sizeof buf),
                        "num_iter cfg cfg_schedule temperature diff_sampler diff_upper_steps diff_lower_steps "
                        "diff_annealing_strategy dpm_order diff_budget diff_adaptive_signal precision");
}

static void test_shared_and_foreign_keys(void **state) {
    (void)state;
    const family *mar = family_at(0);
    family_params p;
    int precision = PRECISION_FP32;
    char buf[512];
    mar->params_init(&p);
    assert_int_equal(family_sampling_set(mar, &p, &precision, "num_iter", "8"), 0);
    assert_int_equal(family_sampling_set(mar, &p, &precision, "precision", "bf16"), 0);
    assert_int_equal(precision, PRECISION_BF16);
    // The family's own text, then the shared key (only bf16 shows, as before it existed).
    family_sampling_str(mar, &p, precision, buf, sizeof buf);
    assert_string_equal(buf, "num_iter=8 cfg=1 cfg_schedule=linear temperature=1 diff_sampler=default "
                             "diff_upper_steps=25 diff_lower_steps=5 diff_annealing_strategy=linear precision=bf16");
    assert_int_equal(family_sampling_set(mar, &p, &precision, "precision", "fp16"), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "--precision must be fp32, bf16 or auto, got 'fp16'"));
    // auto shows until a run resolves it.
    assert_int_equal(family_sampling_set(mar, &p, &precision, "precision", "auto"), 0);
    assert_int_equal(precision, PRECISION_AUTO);
    family_sampling_str(mar, &p, precision, buf, sizeof buf);
    assert_non_null(strstr(buf, "diff_annealing_strategy=linear precision=auto"));
    // Another family: precision is shared, MAR's keys do not apply, unknown keys are unknown.
    fake.params_init(&p);
    precision = PRECISION_FP32;
    assert_int_equal(family_sampling_set(&fake, &p, &precision, "flow_steps", "7"), 0);
    assert_int_equal(family_sampling_set(&fake, &p, &precision, "precision", "bf16"), 0);
    assert_int_equal(precision, PRECISION_BF16);
    assert_string_equal(family_sampling_str(&fake, &p, PRECISION_FP32, buf, sizeof buf), "flow_steps=7");
    assert_int_equal(family_sampling_set(&fake, &p, &precision, "diff_sampler", "DDIM"), DISA_EINVAL);
    assert_string_equal(disa_errmsg(), "'--diff_sampler' does not apply to fake models");
    assert_int_equal(family_sampling_set(&fake, &p, &precision, "colour", "red"), DISA_ENOTFOUND);
    assert_true(family_is_sampling_key("diff_sampler") && family_is_sampling_key("precision"));
    assert_false(family_is_sampling_key("colour") || family_is_sampling_key("flow_steps"));
}

// MAR through the table against the sampler called directly: the same tokens bit for bit,
// the same latent as mar_unpatchify, and FLOPs equal to the table's model.
static void test_mar_table_equals_sampler(void **state) {
    (void)state;
    const family *fam = family_at(0);
    void *model;
    assert_int_equal(fam->open(&model, TINY), 0);
    family_info fi;
    fam->info(model, &fi);
    assert_int_equal(fi.class_num, 10);
    assert_int_equal(fi.latent, LATENT_PIXELS);
    assert_true(fi.C == 1 && fi.H == 28 && fi.W == 28);
    assert_true(fi.token_dims[0] == 16 && fi.token_dims[1] == 49);
    family_params p;
    int precision = PRECISION_FP32;
    fam->params_init(&p);
    const char *kv[][2] = {{"num_iter", "4"}, {"cfg", "2.5"}, {"diff_sampler", "DiSA"}, {"diff_upper_steps", "12"}};
    for (size_t k = 0; k < sizeof kv / sizeof *kv; k++)
        assert_int_equal(family_sampling_set(fam, &p, &precision, kv[k][0], kv[k][1]), 0);
    const int B = 3, labels[3] = {1, -1, 9};
    const uint32_t index[3] = {5, 6, 7};
    size_t n = (size_t)B * fi.token_dims[0] * fi.token_dims[1];
    float *a = calloc(n, sizeof(float)), *b = calloc(n, sizeof(float)), *la = calloc(n, sizeof(float));
    float *lb = calloc(n, sizeof(float));
    void *s;
    sample_stats st = {0}, st2 = {0};
    assert_int_equal(fam->sampler_new(&s, model, &p, precision, B), 0);
    assert_int_equal(fam->sampler_run(s, a, labels, 42, index, B, &st, NULL, NULL), 0);
    fam->sampler_delete(s);
    sampler direct;
    ar_rng_philox rng;
    assert_int_equal(sampler_init(&direct, model, (const sample_params *)p.bytes, B), 0);
    assert_int_equal(ar_rng_philox_init(&rng, 42, index, B), 0);
    assert_int_equal(sampler_run(&direct, &rng.base, labels, B, b, &st2), 0);
    ar_rng_philox_free(&rng);
    sampler_free(&direct);
    assert_memory_equal(a, b, n * sizeof(float));
    assert_true(st.flops_transformer == st2.flops_transformer && st.tokens == st2.tokens && st.tokens > 0);
    fam->to_latent(model, la, a, B);
    const mar_config *c = &((const mar_model *)model)->cfg;
    mar_unpatchify(lb, a, B, c->seq_h, c->vae_embed_dim, c->patch_size);
    assert_memory_equal(la, lb, n * sizeof(float));
    sample_flops sf;
    assert_int_equal(fam->flops(&sf, model, &p, B), 0);
    assert_true(fabs(sf.transformer * B - (double)st.flops_transformer) <= 1e-9 * (double)st.flops_transformer);
    assert_true(fabs(sf.head * B - (double)st.flops_head) <= 1e-9 * (double)st.flops_head);
    assert_true(sf.nfe_per_token == (double)st.head_row_steps / (double)st.tokens);
    assert_int_equal(sf.ar_steps, st.ar_steps);
    free(a);
    free(b);
    free(la);
    free(lb);
    fam->close(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_shared_and_foreign_keys),
        cmocka_unit_test(test_mar_table_equals_sampler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
