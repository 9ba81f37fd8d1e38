// Unit tests of the model-family seam (src/sample/family.c, mar_family.c, xar_family.c):
// which family a file, config or preset belongs to, the shared precision key and the
// message for another family's key, and that MAR and xAR through their tables sample
// exactly what their samplers sample directly, with the FLOP model of the table equal
// to the engine's count.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/bf16.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/mar.h"
#include "disa/sampler.h"
#include "disa/xar.h"
#include "disa/xar_sample.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tmpdir.h"

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

// ----------------------------------------------------------------------------
// xAR

// 4 x 4 tokens of 4 (2 x 2 patches of 1 channel) in 4 groups, 5 classes.
#define XAR_CONFIG "{\"format\":\"disa-xar-1\",\"img_size\":8,\"vae_stride\":1,\"patch_size\":2," \
                   "\"vae_embed_dim\":1,\"encoder_embed_dim\":16,\"encoder_depth\":1,\"encoder_num_heads\":2," \
                   "\"decoder_embed_dim\":16,\"decoder_depth\":1,\"decoder_num_heads\":2,\"mlp_ratio\":4.0," \
                   "\"class_num\":5,\"clusters\":4,\"tokenizer\":\"patch\",\"norm_eps\":1e-6}"

static const family *xar_fam(void) {
    for (int i = 0; i < family_count(); i++)
        if (strcmp(family_at(i)->name, "xar") == 0) return family_at(i);
    return NULL;
}

// A random-weight xAR through the table's own writer, in the group's folder.
static void write_tiny_xar(char *path, size_t n) {
    const family *x = family_for_config(XAR_CONFIG);
    assert_ptr_equal(x, xar_fam());
    void *m;
    assert_int_equal(x->config(&m, XAR_CONFIG, "test"), 0);
    snprintf(path, n, "%s/xar.safetensors", g_dir);
    size_t values = 0;
    assert_int_equal(x->write_random(m, path, 7, &values), 0);
    assert_true(values > 0);
    x->close(m);
}

static void test_xar_lookup_and_keys(void **state) {
    (void)state;
    const family *xar = xar_fam(), *mar = family_at(0);
    assert_non_null(xar);
    assert_string_equal(xar->format, "disa-xar-1");
    char path[256], buf[512];
    write_tiny_xar(path, sizeof path);
    assert_ptr_equal(family_for_file(path), xar);
    assert_ptr_equal(family_for_preset("xar_base"), xar);
    assert_ptr_equal(family_for_preset("xar_huge"), xar);
    assert_null(family_for_preset("xar_tiny"));
    assert_string_equal(family_presets_str(buf, sizeof buf),
                        "mar_base, mar_large, mar_huge, xar_base, xar_large, xar_huge, flowar_small, flowar_large, "
                        "flowar_huge");
    assert_string_equal(family_keys_str(xar, buf, sizeof buf),
                        "cfg cfg_schedule flow_upper_steps flow_lower_steps num_steps flow_sampler precision");
    family_params p;
    int precision = PRECISION_FP32;
    xar->params_init(&p);
    assert_string_equal(family_sampling_str(xar, &p, precision, buf, sizeof buf),
                        "flow_upper_steps=50 flow_lower_steps=15 cfg=1 cfg_schedule=linear flow_sampler=euler_maruyama");
    assert_int_equal(family_sampling_set(xar, &p, &precision, "num_steps", "40"), 0);
    assert_int_equal(family_sampling_set(xar, &p, &precision, "cfg", "2.7"), 0);
    assert_int_equal(family_sampling_set(xar, &p, &precision, "precision", "bf16"), 0);
    assert_string_equal(family_sampling_str(xar, &p, precision, buf, sizeof buf),
                        "flow_upper_steps=40 flow_lower_steps=40 cfg=2.7 cfg_schedule=linear "
                        "flow_sampler=euler_maruyama precision=bf16");
    // Each family refuses the other's keys by name; both know cfg and cfg_schedule, with
    // their own accepted values.
    assert_int_equal(family_sampling_set(xar, &p, &precision, "diff_sampler", "DiSA"), DISA_EINVAL);
    assert_string_equal(disa_errmsg(), "'--diff_sampler' does not apply to xar models");
    assert_int_equal(family_sampling_set(xar, &p, &precision, "num_iter", "64"), DISA_EINVAL);
    assert_string_equal(disa_errmsg(), "'--num_iter' does not apply to xar models");
    assert_int_equal(family_sampling_set(xar, &p, &precision, "cfg_schedule", "constant"), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "--cfg_schedule must be linear for xAR"));
    mar->params_init(&p);
    assert_int_equal(family_sampling_set(mar, &p, &precision, "flow_upper_steps", "50"), DISA_EINVAL);
    assert_string_equal(disa_errmsg(), "'--flow_upper_steps' does not apply to mar models");
    assert_int_equal(family_sampling_set(mar, &p, &precision, "cfg_schedule", "constant"), 0);
    assert_true(family_is_sampling_key("flow_lower_steps") && family_is_sampling_key("num_steps"));
    // Steps out of range: refused when set, and by the check.
    xar->params_init(&p);
    assert_int_equal(family_sampling_set(xar, &p, &precision, "flow_upper_steps", "0"), DISA_EINVAL);
    assert_string_equal(disa_errmsg(), "--flow_upper_steps must be an integer in 1..1000, got '0'");
    assert_int_equal(family_sampling_set(xar, &p, &precision, "flow_upper_steps", "10"), 0);
    assert_int_equal(xar->params_check(&p), DISA_ERANGE);
    assert_string_equal(disa_errmsg(), "--flow_upper_steps must be in 15..1000 (>= --flow_lower_steps), got 10");
}

// xAR through the table against the sampler called directly: the same tokens bit for
// bit, the latent as mar_unpatchify reads raster-order tokens, FLOPs equal to the model.
static void test_xar_table_equals_sampler(void **state) {
    (void)state;
    const family *fam = xar_fam();
    char path[256];
    write_tiny_xar(path, sizeof path);
    void *model;
    assert_int_equal(fam->open(&model, path), 0);
    family_info fi;
    fam->info(model, &fi);
    assert_int_equal(fi.class_num, 5);
    assert_int_equal(fi.latent, LATENT_PIXELS);
    assert_true(fi.C == 1 && fi.H == 8 && fi.W == 8);
    assert_true(fi.token_dims[0] == 16 && fi.token_dims[1] == 4);
    family_params p;
    int precision = PRECISION_FP32;
    fam->params_init(&p);
    const char *kv[][2] = {{"flow_upper_steps", "6"}, {"flow_lower_steps", "3"}, {"cfg", "2.5"}};
    for (size_t k = 0; k < sizeof kv / sizeof *kv; k++)
        assert_int_equal(family_sampling_set(fam, &p, &precision, kv[k][0], kv[k][1]), 0);
    const int B = 3, labels[3] = {1, -1, 4};
    const uint32_t index[3] = {5, 6, 7};
    size_t n = (size_t)B * fi.token_dims[0] * fi.token_dims[1];
    float *a = calloc(n, sizeof(float)), *b = calloc(n, sizeof(float)), *la = calloc(n, sizeof(float));
    float *lb = calloc(n, sizeof(float));
    void *s;
    sample_stats st = {0}, st2 = {0};
    assert_int_equal(fam->sampler_new(&s, model, &p, precision, B), 0);
    assert_int_equal(fam->sampler_run(s, a, labels, 42, index, B, &st, NULL, NULL), 0);
    fam->sampler_delete(s);
    xar_sampler direct;
    xar_rng_philox rng;
    assert_int_equal(xar_sampler_init(&direct, model, (const xar_params *)p.bytes, B), 0);
    assert_int_equal(xar_rng_philox_init(&rng, 42, index, B), 0);
    assert_int_equal(xar_sampler_run(&direct, &rng.base, labels, B, b, &st2), 0);
    xar_rng_philox_free(&rng);
    xar_sampler_free(&direct);
    assert_memory_equal(a, b, n * sizeof(float));
    assert_true(st.flops_transformer == st2.flops_transformer && st.tokens == st2.tokens && st.tokens > 0);
    assert_int_equal(st.ar_steps, 4);
    assert_int_equal(st.head_row_steps, (uint64_t)B * 4 * (6 + 5 + 4 + 3));  // steps 6, 5, 4, 3 per group of 4
    fam->to_latent(model, la, a, B);
    const xar_config *c = &((const xar_model *)model)->cfg;
    mar_unpatchify(lb, a, B, c->seq_h, c->vae_embed_dim, c->patch_size);
    assert_memory_equal(la, lb, n * sizeof(float));
    sample_flops sf;
    assert_int_equal(fam->flops(&sf, model, &p, B), 0);
    assert_true(fabs(sf.transformer * B - (double)st.flops_transformer) <= 1e-9 * (double)st.flops_transformer);
    assert_true(sf.head == 0 && st.flops_head == 0);
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
        cmocka_unit_test(test_xar_lookup_and_keys),
        cmocka_unit_test(test_xar_table_equals_sampler),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
