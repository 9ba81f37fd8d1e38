// Unit tests of src/run/job.c and src/run/ledger.c: the plan, overrides, sweeps, the
// ledger's torn-line recovery and the run identity check.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/err.h"
#include "disa/family.h"
#include "disa/job.h"
#include "disa/ledger.h"
#include "disa/record.h"
#include "disa/sampler.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpdir.h"

static const char *write_job(const char *name, const char *json) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    fputs(json, f);
    fclose(f);
    return path;
}

static void test_plan(void **state) {
    (void)state;
    job j;
    memset(&j, 0, sizeof j);
    j.num_images = 50000;
    j.eval_bsz = 64;
    // MAR's official plan: 50 consecutive images per class.
    assert_int_equal(job_label(&j, 0, 1000), 0);
    assert_int_equal(job_label(&j, 49, 1000), 0);
    assert_int_equal(job_label(&j, 50, 1000), 1);
    assert_int_equal(job_label(&j, 49999, 1000), 999);
    assert_int_equal(job_units(&j), 782);  // ceil(50000 / 64)
    assert_int_equal(job_unit_first(&j, 781), 49984);
    assert_int_equal(job_unit_count(&j, 781), 16);
    assert_int_equal(job_unit_count(&j, 0), 64);
}

static void test_load_overrides_and_variants(void **state) {
    (void)state;
    const char *p = write_job("sweep.json",
        "{\"name\": \"sw\", \"model\": \"models/tiny-test.safetensors\", \"num_images\": 20, \"eval_bsz\": 4,"
        " \"output_dir\": \"out\", \"sampling\": {\"num_iter\": 8, \"cfg\": 2.0},"
        " \"variants\": [{\"name\": \"base\", \"sampling\": {\"diff_sampler\": \"default\", \"diff_upper_steps\": 100}},"
        "                {\"name\": \"disa\", \"sampling\": {\"diff_sampler\": \"DiSA\", \"diff_upper_steps\": 50}}]}");
    job_list l = {0};
    job_override ov[] = {{"cfg", "3.5"}, {"seed", "11"}};
    assert_int_equal(job_load(&l, p, ov, 2), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.jobs[0].name, "sw/base");
    assert_string_equal(l.jobs[1].output_dir, "out/disa");
    // The model's family (MAR) holds the sampling settings.
    assert_string_equal(job_family(&l.jobs[0])->name, "mar");
    const sample_params *p0 = (const sample_params *)l.jobs[0].params.bytes;
    const sample_params *p1 = (const sample_params *)l.jobs[1].params.bytes;
    assert_int_equal(p0->upper, 100);
    assert_int_equal(p1->sampler, GD_SAMPLER_DISA);
    // Flags win over the file and over every variant.
    assert_true(p0->cfg == 3.5 && p1->cfg == 3.5);
    assert_int_equal(l.jobs[1].seed, 11);
    assert_int_equal(p1->num_iter, 8);
    char a[2048], b[2048];
    assert_int_equal(job_identity(&l.jobs[0], "m", "v", a, sizeof a), 0);
    assert_int_equal(job_identity(&l.jobs[1], "m", "v", b, sizeof b), 0);
    assert_string_not_equal(a, b);
    assert_non_null(strstr(a, "seed=11\n"));
    job_list_free(&l);
    job_override bad[] = {{"num_iter", "0"}};
    assert_int_equal(job_load(&l, p, bad, 1), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "--num_iter must be an integer in 1..4096, got '0'"));
    assert_int_equal(l.n, 0);
    // Keys a job does not use are refused with the list of those it does.
    p = write_job("npz.json", "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": 10, \"npz\": true}");
    assert_int_equal(job_load(&l, p, NULL, 0), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "unknown key 'npz' (known: name model vae features reference output_dir "
                                          "num_images eval_bsz seed labels png sampling variants description)"));
    // A sampling key of the model's family, with the family's list.
    p = write_job("key.json", "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": 10, "
                              "\"output_dir\": \"o\", \"sampling\": {\"steps\": 3}}");
    assert_int_equal(job_load(&l, p, NULL, 0), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "unknown key 'sampling.steps' (known: num_iter cfg cfg_schedule "
                                          "temperature diff_sampler diff_upper_steps diff_lower_steps "
                                          "diff_annealing_strategy dpm_order diff_budget diff_adaptive_signal precision)"));
}

// The shipped xAR ImageNet jobs: they load as xAR jobs with the settings of the official
// README (the files they name are converted weights, here a small KL-16 xAR and stand-ins).
static void test_imagenet_xar_jobs(void **state) {
    (void)state;
    const char *json = "{\"format\":\"disa-xar-1\",\"img_size\":64,\"vae_stride\":16,\"patch_size\":1,"
                       "\"vae_embed_dim\":16,\"encoder_embed_dim\":16,\"encoder_depth\":1,\"encoder_num_heads\":2,"
                       "\"decoder_embed_dim\":16,\"decoder_depth\":1,\"decoder_num_heads\":2,\"class_num\":1000,"
                       "\"clusters\":4,\"tokenizer\":\"kl16\"}";
    const family *xar = family_for_config(json);
    void *m;
    char model[256];
    snprintf(model, sizeof model, "%s/xar.safetensors", g_dir);
    assert_int_equal(xar->config(&m, json, "test"), 0);
    assert_int_equal(xar->write_random(m, model, 1, NULL), 0);
    xar->close(m);
    job_override ov[] = {{"model", model}, {"vae", "models/tiny-test.safetensors"},
                         {"features", "models/fmnist-classifier.safetensors"}, {"reference", "models/fmnist-test-stats.npz"}};
    struct { const char *file, *sampling; int eval_bsz; } want[] = {
        {"jobs/imagenet256-xar-b-disa.json", "flow_upper_steps=50 flow_lower_steps=15 cfg=2.7", 16},
        {"jobs/imagenet256-xar-b-baseline.json", "flow_upper_steps=40 flow_lower_steps=40 cfg=2.7", 16},
        {"jobs/imagenet256-xar-l-disa.json", "flow_upper_steps=50 flow_lower_steps=15 cfg=2.3", 8},
        {"jobs/imagenet256-xar-l-baseline.json", "flow_upper_steps=50 flow_lower_steps=50 cfg=2.3", 8},
        {"jobs/imagenet256-xar-h-disa.json", "flow_upper_steps=50 flow_lower_steps=15 cfg=2.2", 8},
        {"jobs/imagenet256-xar-h-baseline.json", "flow_upper_steps=50 flow_lower_steps=50 cfg=2.2", 8},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        job_list l = {0};
        if (job_load(&l, want[i].file, ov, 4) != 0) fail_msg("%s: %s", want[i].file, disa_errmsg());
        assert_int_equal(l.n, 1);
        assert_string_equal(job_family(&l.jobs[0])->name, "xar");
        char buf[512], expect[256];
        snprintf(expect, sizeof expect, "%s cfg_schedule=linear flow_sampler=euler_maruyama", want[i].sampling);
        assert_string_equal(job_sampling_str(&l.jobs[0], buf, sizeof buf), expect);
        assert_int_equal(l.jobs[0].num_images, 50000);
        assert_int_equal(l.jobs[0].eval_bsz, want[i].eval_bsz);
        job_list_free(&l);
    }
}

static void test_ledger(void **state) {
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/run", g_dir);
    mkdir(dir, 0755);
    ledger l;
    assert_int_equal(ledger_open(&l, dir, 5), 0);
    assert_int_equal(l.n_done, 0);
    assert_int_equal(ledger_append(&l, 3, 12, 4), 0);
    assert_int_equal(ledger_append(&l, 0, 0, 4), 0);
    assert_int_equal(ledger_append(&l, 3, 12, 4), 0);  // idempotent
    ledger_close(&l);
    // A crash in the middle of a line leaves a torn tail: ignored and cut off.
    char path[320];
    snprintf(path, sizeof path, "%s/manifest", dir);
    FILE *f = fopen(path, "a");
    fputs("unit 4 fir", f);
    fclose(f);
    assert_int_equal(ledger_open(&l, dir, 5), 0);
    assert_int_equal(l.n_done, 2);
    assert_true(l.done[0] && l.done[3] && !l.done[4]);
    assert_int_equal(ledger_append(&l, 4, 16, 4), 0);
    ledger_close(&l);
    f = fopen(path, "r");
    char text[256] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_string_equal(text, "unit 3 first 12 count 4\nunit 0 first 0 count 4\nunit 4 first 16 count 4\n");
    // Forgetting a unit (its PNG failed verification) makes it pending again.
    assert_int_equal(ledger_open(&l, dir, 5), 0);
    ledger_forget(&l, 3);
    assert_int_equal(l.n_done, 2);
    assert_false(l.done[3]);
    ledger_close(&l);
    // Another run's ledger (more units) is refused, not silently reused.
    assert_int_equal(ledger_open(&l, dir, 4), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "unit 4 outside this run's 0..3"));
    f = fopen(path, "a");
    fputs("garbage line\n", f);
    fclose(f);
    assert_int_equal(ledger_open(&l, dir, 5), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "not a ledger line: 'garbage line'"));
}

static void test_runinfo(void **state) {
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/info", g_dir);
    mkdir(dir, 0755);
    int exists;
    assert_int_equal(runinfo_check(dir, "seed=1\ncfg=2\n", &exists), 0);
    assert_int_equal(exists, 0);
    assert_int_equal(runinfo_write(dir, "seed=1\ncfg=2\n", "\"world_size\": 2"), 0);
    assert_int_equal(runinfo_check(dir, "seed=1\ncfg=2\n", &exists), 0);
    assert_int_equal(exists, 1);
    assert_int_equal(runinfo_check(dir, "seed=1\ncfg=3\n", &exists), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "cfg: '2' in the folder, '3' now"));
    char d1[17], d2[17];
    char path[320];
    snprintf(path, sizeof path, "%s/run.json", dir);
    assert_int_equal(file_digest(path, d1), 0);
    assert_int_equal(file_digest(path, d2), 0);
    assert_string_equal(d1, d2);
    assert_int_equal(strlen(d1), 16);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan), cmocka_unit_test(test_load_overrides_and_variants),
        cmocka_unit_test(test_imagenet_xar_jobs),
        cmocka_unit_test(test_ledger), cmocka_unit_test(test_runinfo),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
