// Unit tests of src/run in one process, without MPI: a job's folder prepared, its units
// run in any order by the unit pipeline, recorded in the ledger, verified again on
// resume, scored and summarised; image i does not depend on which unit order or runner
// made it.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/estimate.h"
#include "disa/folder.h"
#include "disa/image.h"
#include "disa/job.h"
#include "disa/ledger.h"
#include "disa/safetensors.h"
#include "disa/simulate.h"
#include "disa/score.h"
#include "disa/summary.h"
#include "disa/unit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tmpdir.h"

// jobs/tiny-test.json (pixel MAR, 28x28x1, 10 classes) as 20 images in units of 8 (the
// last unit has 4) into DIR, scored by the embedded classifier.
static void load(job_list *l, const char *dir) {
    job_override ov[] = {{"output_dir", dir}, {"num_images", "20"}, {"eval_bsz", "8"}, {"num_iter", "3"},
                         {"diff_upper_steps", "6"}, {"features", "models/fmnist-classifier.safetensors"}};
    memset(l, 0, sizeof *l);
    assert_int_equal(job_load(l, "jobs/tiny-test.json", ov, 6), 0);
    assert_int_equal(l->n, 1);
}

static void prepare(ledger *led, const job_list *l, const unit_runner *ur) {
    const featnet *f = ur->job[0].feat;
    folder_expect e = {.feat_dim = f ? f->feat_dim : 0};
    unit_runner_geometry(ur, 0, &e.H, &e.W, &e.C);
    assert_true(e.H == 28 && e.W == 28 && e.C == 1);
    assert_int_equal(folder_prepare(led, &l->jobs[0], 1, 0, &e), 0);
}

static void run_units(unit_runner *ur, ledger *led, const job *jb, const int *order, int n, unit_report *reports) {
    for (int k = 0; k < n; k++) {
        int u = order[k];
        assert_int_equal(unit_run(ur, 0, u, NULL, NULL, &reports[k]), 0);
        assert_int_equal(reports[k].count, job_unit_count(jb, u));
        assert_true(reports[k].tokens > 0 && reports[k].flops_transformer > 0);
        assert_int_equal(ledger_append(led, u, job_unit_first(jb, u), reports[k].count), 0);
    }
}

static void file_bytes(const char *path, unsigned char **buf, long *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)*n);
    assert_int_equal(fread(*buf, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
}

static void test_units_any_order_resume_score(void **state) {
    (void)state;
    blas_set_threads(1);  // equal threads in both runs: byte-identical images
    char a[128], b[128], path[200], text[4096];
    snprintf(a, sizeof a, "%s/a", g_dir);
    snprintf(b, sizeof b, "%s/b", g_dir);
    job_list la, lb;
    load(&la, a);
    load(&lb, b);
    const job *ja = &la.jobs[0];
    assert_int_equal(job_units(ja), 3);
    unit_runner ra, rb;
    ledger lda, ldb;
    unit_report rep_a[3], rep_b[3];
    assert_int_equal(unit_runner_init(&ra, &la, 0), 0);
    assert_int_equal(unit_runner_init(&rb, &lb, 0), 0);
    prepare(&lda, &la, &ra);
    prepare(&ldb, &lb, &rb);
    run_units(&ra, &lda, ja, (const int[]){0, 1, 2}, 3, rep_a);
    run_units(&rb, &ldb, &lb.jobs[0], (const int[]){2, 0, 1}, 3, rep_b);
    // Same PNG bytes whatever the unit order: image i draws from its own streams.
    for (int i = 0; i < 20; i++) {
        unsigned char *x, *y;
        long nx, ny;
        snprintf(path, sizeof path, "%s/%05d.png", a, i);
        file_bytes(path, &x, &nx);
        snprintf(path, sizeof path, "%s/%05d.png", b, i);
        file_bytes(path, &y, &ny);
        assert_int_equal(nx, ny);
        assert_memory_equal(x, y, (size_t)nx);
        free(x);
        free(y);
    }
    // The recipe in tEXt: job, index, class (official plan: 2 images per class), seed, sampling.
    image_u8 im = {0};
    snprintf(path, sizeof path, "%s/00013.png", a);
    assert_int_equal(png_read_u8(&im, path), 0);
    int found = 0;
    for (int k = 0; k < im.n_text; k++) {
        if (strcmp(im.key[k], "class") == 0) found += strcmp(im.value[k], "6") == 0;
        if (strcmp(im.key[k], "index") == 0) found += strcmp(im.value[k], "13") == 0;
        if (strcmp(im.key[k], "sampling") == 0) found += strncmp(im.value[k], "num_iter=3 cfg=2 ", 17) == 0;
    }
    assert_int_equal(found, 3);
    image_u8_free(&im);
    ledger_close(&ldb);
    // Resume: the ledger's units are verified and count as done; a damaged PNG does not.
    ledger_close(&lda);
    snprintf(path, sizeof path, "%s/00009.png", a);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 100), 0);
    fclose(f);
    prepare(&lda, &la, &ra);
    assert_int_equal(lda.n_done, 2);
    assert_true(lda.done[0] && !lda.done[1] && lda.done[2]);
    unit_report again;
    run_units(&ra, &lda, ja, (const int[]){1}, 1, &again);
    // Metrics from the shards and the summary of the reports.
    job_metrics mt;
    assert_int_equal(score_job(&mt, ja, ra.job[0].feat, ra.job[0].info.class_num), 0);
    assert_true(mt.have && mt.have_acc && !mt.have_fid && mt.n == 20);
    assert_true(mt.accuracy >= 0 && mt.accuracy <= 1 && mt.is_adm >= 1);
    job_row row;
    assert_int_equal(summary_job(&row, ja, 0, rep_a, 3, &lda, &mt, 1, NULL, 1), 0);
    snprintf(path, sizeof path, "%s/summary.json", a);
    f = fopen(path, "r");
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "\n  \"images_done\": 20,\n"));
    assert_non_null(strstr(text, "\n  \"images_this_run\": 20,\n"));
    assert_non_null(strstr(text, "\"class_accuracy\": "));
    assert_true(row.have && row.steps > 0);
    ledger_close(&lda);
    unit_runner_free(&ra);
    unit_runner_free(&rb);
    job_list_free(&la);
    job_list_free(&lb);
}

// --estimate's calibration: a whole first unit counts exactly the FLOPs the FLOP model
// predicts for it; a calibration cut off at once still gives a positive time; nothing is
// written (the output folder is not created).
static void test_estimate(void **state) {
    (void)state;
    blas_set_threads(1);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/est", g_dir);
    job_list l;
    load(&l, dir);
    unit_runner ur;
    assert_int_equal(unit_runner_init(&ur, &l, 0), 0);
    estimate e;
    assert_int_equal(estimate_job(&e, &ur, 0, PRECISION_FP32, 600.0), 0);
    assert_int_equal(e.calib_complete, 1);
    assert_int_equal(e.threads, 1);
    assert_true(e.flops_sample > 0 && e.flops_decode == 0 && e.flops_feat > 0);
    assert_true(fabs(e.flops_measured - e.flops_sample * 8) <= 1e-9 * e.flops_measured);
    assert_true(e.s_sample > 0 && e.s_feat > 0 && e.s_io > 0);
    assert_true(fabs(e.s_image - (e.s_sample + e.s_decode + e.s_io + e.s_feat)) < 1e-12);
    estimate cut;
    assert_int_equal(estimate_job(&cut, &ur, 0, PRECISION_FP32, 0.0), 0);
    assert_int_equal(cut.calib_complete, 0);
    assert_true(cut.flops_measured < e.flops_measured);
    assert_true(cut.s_sample > 0 && cut.flops_sample == e.flops_sample);
    assert_int_equal(access(dir, F_OK), -1);
    // The PNG timing's temporary folder (beside the output folder) is gone.
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -q disa-estimate", g_dir);
    assert_int_not_equal(system(cmd), 0);
    unit_runner_free(&ur);
    job_list_free(&l);
}

// ----------------------------------------------------------------------------
// disa-gen --simulate's units (simulate.h)

static int g_polls;
static int count_polls(void *ctx) {
    g_polls++;
    return ctx != NULL && g_polls >= *(const int *)ctx;  // stop at the given poll
}

// Row `row` of tensor `name` (cols floats) of a shard.
static void shard_row(const char *dir, int unit, const char *name, int rows, int cols, int row, float *out) {
    char path[300];
    snprintf(path, sizeof path, "%s/features/%06d.safetensors", dir, unit);
    st_file st;
    const float *p;
    assert_int_equal(st_open(&st, path), 0);
    assert_int_equal(st_get_f32(&st, name, 2, (int64_t[]){rows, cols}, &p), 0);
    memcpy(out, p + (size_t)row * cols, sizeof(float) * (size_t)cols);
    st_close(&st);
}

static void test_simulated_units(void **state) {
    (void)state;
    char a[128], b[128], path[200];
    snprintf(a, sizeof a, "%s/sim-a", g_dir);
    snprintf(b, sizeof b, "%s/sim-b", g_dir);
    job_list la, lb;
    load(&la, a);
    load(&lb, b);
    lb.jobs[0].eval_bsz = 4;
    for (int k = 0; k < 2; k++) {  // as disa-gen --simulate makes them
        job *jb = k ? &lb.jobs[0] : &la.jobs[0];
        assert_int_equal(sim_parse(&jb->sim, "0.002:0.5"), 0);
        jb->png = 0;
    }
    unit_runner ra, rb;
    assert_int_equal(unit_runner_init(&ra, &la, 0), 0);
    assert_int_equal(unit_runner_init(&rb, &lb, 0), 0);
    const unit_job *uj = &ra.job[0];
    assert_true(uj->sim_s_image == 0.002 && uj->sim_polls > 3 && uj->sim_flops.transformer > 0);
    ledger lda, ldb;
    prepare(&lda, &la, &ra);
    prepare(&ldb, &lb, &rb);
    unit_report r;
    for (int u = 0; u < 3; u++) {
        g_polls = 0;
        assert_int_equal(unit_run(&ra, 0, u, count_polls, NULL, &r), 0);
        double want = sim_unit_seconds(&la.jobs[0].sim, 0.002, la.jobs[0].seed, u, job_unit_count(&la.jobs[0], u));
        assert_true(r.count == job_unit_count(&la.jobs[0], u) && r.rank == 0 && r.unit == u);
        assert_true(r.t_total >= want && r.t_other >= want && g_polls >= 1);
        assert_true(r.flops_transformer > 0 && r.tokens == (uint64_t)r.count * uj->info.token_dims[0]);
        assert_int_equal(ledger_append(&lda, u, job_unit_first(&la.jobs[0], u), r.count), 0);
    }
    for (int u = 0; u < 5; u++) assert_int_equal(unit_run(&rb, 0, u, NULL, NULL, &r), 0);
    // No PNGs; the feature rows of image i are the same whatever unit held it.
    snprintf(path, sizeof path, "%s/00000.png", a);
    assert_int_equal(access(path, F_OK), -1);
    int D = uj->feat->feat_dim, NL = uj->feat->n_logits;
    float *x = malloc(sizeof(float) * (size_t)(D + NL)), *y = malloc(sizeof(float) * (size_t)(D + NL));
    shard_row(a, 1, "feat", 8, D, 5, x);      // image 13: unit 1 of 8, row 5
    shard_row(b, 3, "feat", 4, D, 1, y);      // image 13: unit 3 of 4, row 1
    shard_row(a, 1, "logits", 8, NL, 5, x + D);
    shard_row(b, 3, "logits", 4, NL, 1, y + D);
    assert_memory_equal(x, y, sizeof(float) * (size_t)(D + NL));
    shard_row(a, 1, "feat", 8, D, 4, y);
    assert_memory_not_equal(x, y, sizeof(float) * (size_t)D);
    free(x);
    free(y);
    // The rank 0 merge reads the shards as a real run's.
    job_metrics mt;
    assert_int_equal(score_job(&mt, &la.jobs[0], uj->feat, uj->info.class_num), 0);
    assert_true(mt.have && mt.n == 20);
    // A poll that says stop cancels the unit.
    int stop_at = 1;  // the first poll comes after the first slice, however long the sleep took
    g_polls = 0;
    assert_int_equal(unit_run(&ra, 0, 0, count_polls, &stop_at, &r), DISA_ECANCELED);
    assert_int_equal(g_polls, 1);
    ledger_close(&lda);
    ledger_close(&ldb);
    unit_runner_free(&ra);
    unit_runner_free(&rb);
    job_list_free(&la);
    job_list_free(&lb);
}

// Idle time split into start, steady and tail, from reports alone.
static void test_occupancy(void **state) {
    (void)state;
    unit_report rep[3];
    memset(rep, 0, sizeof rep);
    // t0 = 10, three ranks: rank 0 runs [10, 12]; rank 1 runs [11, 13] and [14, 16]; rank 2 none.
    rep[0].rank = 0, rep[0].t_done = 12, rep[0].t_total = 2;
    rep[1].rank = 1, rep[1].t_done = 16, rep[1].t_total = 2;
    rep[2].rank = 1, rep[2].t_done = 13, rep[2].t_total = 2;
    run_stats rs;
    memset(&rs, 0, sizeof rs);
    rs.messages = 7;  // left alone
    run_stats_occupancy(&rs, rep, 3, 3, 10);
    assert_int_equal(rs.ranks, 3);
    assert_true(fabs(rs.wall - 6) < 1e-12);
    assert_true(fabs(rs.busy - 6.0 / 18) < 1e-12);
    assert_true(fabs(rs.idle_start - 1.0 / 18) < 1e-12);
    assert_true(fabs(rs.idle_steady - 1.0 / 18) < 1e-12);
    assert_true(fabs(rs.idle_tail - 10.0 / 18) < 1e-12);
    assert_true(fabs(rs.busy + rs.idle_start + rs.idle_steady + rs.idle_tail - 1) < 1e-12);
    assert_true(fabs(rs.first_unit_p50 - 0.5) < 1e-12 && fabs(rs.first_unit_max - 1) < 1e-12);
    assert_true(rs.messages == 7);
    run_stats_occupancy(&rs, rep, 0, 3, 10);  // no reports: nothing measured
    assert_true(rs.wall == 0 && rs.busy == 0 && rs.idle_tail == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units_any_order_resume_score),
        cmocka_unit_test(test_estimate),
        cmocka_unit_test(test_simulated_units),
        cmocka_unit_test(test_occupancy),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
