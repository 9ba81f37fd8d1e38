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
#include <math.h>
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
    // A simulation adds a key; a real run's identity stays what it was.
    assert_null(strstr(a, "simulated"));
    assert_int_equal(sim_parse(&l.jobs[0].sim, "0.1"), 0);
    assert_int_equal(job_identity(&l.jobs[0], "m", "v", b, sizeof b), 0);
    assert_int_equal(strncmp(a, b, strlen(a)), 0);
    assert_string_equal(b + strlen(a), "simulated=1\n");
    job_list_free(&l);
    job_override bad[] = {{"num_iter", "0"}};
    assert_int_equal(job_load(&l, p, bad, 1), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "--num_iter must be an integer in 1..4096, got '0'"));
    assert_int_equal(l.n, 0);
    // Keys a job does not use are refused with the list of those it does.
    p = write_job("npz.json", "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": 10, \"npz\": true}");
    assert_int_equal(job_load(&l, p, NULL, 0), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "unknown key 'npz' (known: name model vae features reference output_dir "
                                          "num_images eval_bsz seed labels png sampling variants description "
                                          "require_uniform_hardware)"));
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
    assert_int_equal(ledger_append(&l, 3, 12, 4, 1), 0);
    assert_int_equal(ledger_append(&l, 0, 0, 4, 0), 0);
    assert_int_equal(ledger_append(&l, 3, 12, 4, 0), 0);  // idempotent
    assert_int_equal(l.sig[3], 1);
    ledger_close(&l);
    // A crash in the middle of a line leaves a torn tail: ignored and cut off.
    char path[320];
    snprintf(path, sizeof path, "%s/manifest", dir);
    FILE *f = fopen(path, "a");
    fputs("unit 4 fir", f);
    fclose(f);
    // Reading only (the uniform-hardware check before anything is written) keeps the tail.
    struct stat sb;
    stat(path, &sb);
    off_t torn = sb.st_size;
    assert_int_equal(ledger_read(&l, dir, 5), 0);
    assert_int_equal(l.n_done, 2);
    assert_true(l.done[0] && l.done[3] && l.sig[0] == 0 && l.sig[3] == 1 && l.sig[4] == -1);
    ledger_close(&l);
    stat(path, &sb);
    assert_int_equal(sb.st_size, torn);
    char none[320];
    snprintf(none, sizeof none, "%s/none", g_dir);
    assert_int_equal(ledger_read(&l, none, 5), 0);  // no manifest: nothing done, nothing created
    assert_int_equal(l.n_done, 0);
    ledger_close(&l);
    snprintf(none, sizeof none, "%s/none/manifest", g_dir);
    assert_int_not_equal(access(none, F_OK), 0);
    assert_int_equal(ledger_open(&l, dir, 5), 0);
    assert_int_equal(l.n_done, 2);
    assert_true(l.done[0] && l.done[3] && !l.done[4]);
    // A unit of unknown signature is written as lines were before signatures existed.
    assert_int_equal(ledger_append(&l, 4, 16, 4, -1), 0);
    ledger_close(&l);
    f = fopen(path, "r");
    char text[256] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_string_equal(text, "unit 3 first 12 count 4 sig 1\nunit 0 first 0 count 4 sig 0\nunit 4 first 16 count 4\n");
    // Lines without a signature (ledgers written before them) and a later line of the same
    // unit (recomputed elsewhere) read as expected.
    f = fopen(path, "a");
    fputs("unit 0 first 0 count 4 sig 2\nunit 1 first 4 count 4\n", f);
    fclose(f);
    assert_int_equal(ledger_open(&l, dir, 5), 0);
    assert_int_equal(l.n_done, 4);
    assert_true(l.sig[0] == 2 && l.sig[1] == -1 && l.sig[3] == 1 && l.sig[4] == -1);
    ledger_close(&l);
    // Forgetting a unit (its PNG failed verification) makes it pending again.
    assert_int_equal(ledger_open(&l, dir, 5), 0);
    ledger_forget(&l, 3);
    assert_int_equal(l.n_done, 3);
    assert_false(l.done[3]);
    assert_int_equal(l.sig[3], -1);
    ledger_close(&l);
    // Another run's ledger (more units) is refused, not silently reused.
    assert_int_equal(ledger_open(&l, dir, 4), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "unit 4 outside this run's 0..3"));
    f = fopen(path, "a");
    fputs("garbage line\n", f);
    fclose(f);
    assert_int_equal(ledger_open(&l, dir, 5), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "not a ledger line: 'garbage line'"));
    // A signature that is not a non-negative index is no ledger line either.
    for (int k = 0; k < 3; k++) {
        static const char *const bad[] = {"unit 2 first 8 count 4 sig -1\n", "unit 2 first 8 count 4 sig\n",
                                          "unit 2 first 8 count 4 sig 1 x\n"};
        f = fopen(path, "w");
        fputs(bad[k], f);
        fclose(f);
        assert_int_equal(ledger_read(&l, dir, 5), DISA_EFORMAT);
        assert_non_null(strstr(disa_errmsg(), "manifest:1: not a ledger line"));
    }
}

// One fsync for many lines: a written unit is pending, not done, until ledger_sync.
static void test_ledger_write_sync(void **state) {
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/run2", g_dir);
    mkdir(dir, 0755);
    ledger l;
    assert_int_equal(ledger_open(&l, dir, 6), 0);
    assert_int_equal(ledger_write(&l, 5, 20, 2, -1), 0);
    assert_int_equal(ledger_write(&l, 1, 4, 4, -1), 0);
    assert_int_equal(ledger_write(&l, 5, 20, 2, -1), 0);  // idempotent while pending
    assert_int_equal(l.n_pending, 2);
    assert_true(l.n_done == 0 && !l.done[5] && !l.done[1]);
    assert_int_equal(ledger_sync(&l), 0);
    assert_true(l.n_done == 2 && l.done[5] && l.done[1] && l.n_pending == 0);
    assert_int_equal(ledger_sync(&l), 0);  // nothing pending: nothing to do
    assert_int_equal(ledger_write(&l, 1, 4, 4, -1), 0);  // done already: no second line
    assert_int_equal(l.n_pending, 0);
    ledger_close(&l);
    assert_int_equal(ledger_open(&l, dir, 6), 0);
    assert_true(l.n_done == 2 && l.done[5] && l.done[1]);
    ledger_close(&l);
}

static void test_simulate_spec(void **state) {
    (void)state;
    sim_spec s;
    char buf[64];
    assert_int_equal(sim_parse(&s, "0.02"), 0);
    assert_true(s.on && s.s_per_image == 0.02 && s.spread == 0 && s.gflops == 0);
    assert_string_equal(sim_str(&s, buf, sizeof buf), "0.02:0");
    assert_int_equal(sim_parse(&s, "1.5:0.25"), 0);
    assert_true(s.s_per_image == 1.5 && s.spread == 0.25);
    assert_int_equal(sim_parse(&s, "flops"), 0);
    assert_true(s.on && s.s_per_image == 0 && s.gflops == 0);
    assert_int_equal(sim_parse(&s, "flops@120:0.1"), 0);
    assert_true(s.gflops == 120 && s.spread == 0.1);
    assert_string_equal(sim_str(&s, buf, sizeof buf), "flops@120:0.1");
    const char *bad[] = {"", "0", "-1", "x", "0.1:", "0.1:1", "0.1:-0.1", "flops@", "flops@0", "flopsy", "1e9", "0.1:0.2:3"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        assert_int_equal(sim_parse(&s, bad[k]), DISA_EINVAL);
        assert_false(s.on);
        assert_non_null(strstr(disa_errmsg(), "--simulate must be SECONDS[:SPREAD]"));
    }
    // Unit times: the unit's own stream, inside (1 +- spread) x the mean, about the mean.
    assert_int_equal(sim_parse(&s, "0.5:0.2"), 0);
    double sum = 0, lo = 1e9, hi = 0;
    for (int u = 0; u < 2000; u++) {
        double t = sim_unit_seconds(&s, 0.5, 7, u, 4);
        assert_true(t == sim_unit_seconds(&s, 0.5, 7, u, 4));
        sum += t;
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    assert_true(lo >= 4 * 0.5 * 0.8 && hi <= 4 * 0.5 * 1.2);
    assert_true(lo < 4 * 0.5 * 0.82 && hi > 4 * 0.5 * 1.18);
    assert_true(fabs(sum / 2000 - 2.0) < 0.02);
    assert_true(sim_unit_seconds(&s, 0.5, 8, 3, 4) != sim_unit_seconds(&s, 0.5, 7, 3, 4));
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
    // A key only the folder has is a difference too.
    assert_int_equal(runinfo_check(dir, "seed=1\n", &exists), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "cfg: '2' in the folder, (absent) now"));
    // A simulation and a real run never share a folder, whichever came first.
    assert_int_equal(runinfo_check(dir, "seed=1\ncfg=2\nsimulated=1\n", &exists), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "holds a real run; a simulation does not resume it"));
    char sdir[300];
    snprintf(sdir, sizeof sdir, "%s/info-sim", g_dir);
    mkdir(sdir, 0755);
    assert_int_equal(runinfo_write(sdir, "seed=1\ncfg=2\nsimulated=1\n", ""), 0);
    assert_int_equal(runinfo_check(sdir, "seed=1\ncfg=2\nsimulated=1\n", &exists), 0);
    assert_int_equal(runinfo_check(sdir, "seed=1\ncfg=2\n", &exists), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "holds a simulated run (disa-gen --simulate: no images); a real run does "
                                          "not resume it"));
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
        cmocka_unit_test(test_ledger), cmocka_unit_test(test_ledger_write_sync), cmocka_unit_test(test_runinfo),
        cmocka_unit_test(test_simulate_spec),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
