// Unit tests of src/run in one process, without MPI: a job's folder prepared, its units
// run in any order by the unit pipeline, recorded in the ledger, verified again on
// resume, scored and summarised; image i does not depend on which unit order or runner
// made it.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/blas.h"
#include "disa/err.h"
#include "disa/estimate.h"
#include "disa/folder.h"
#include "disa/image.h"
#include "disa/job.h"
#include "disa/ledger.h"
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
        assert_int_equal(ledger_append(led, u, job_unit_first(jb, u), reports[k].count, -1), 0);
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
    assert_int_equal(summary_job(&row, ja, 0, rep_a, 3, &lda, &mt, 1, 1), 0);
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
    assert_int_equal(estimate_job(&e, &ur, 0, BLAS_FP32, 600.0), 0);
    assert_int_equal(e.calib_complete, 1);
    assert_int_equal(e.threads, 1);
    assert_true(e.flops_sample > 0 && e.flops_decode == 0 && e.flops_feat > 0);
    assert_true(fabs(e.flops_measured - e.flops_sample * 8) <= 1e-9 * e.flops_measured);
    assert_true(e.s_sample > 0 && e.s_feat > 0 && e.s_io > 0);
    assert_true(fabs(e.s_image - (e.s_sample + e.s_decode + e.s_io + e.s_feat)) < 1e-12);
    estimate cut;
    assert_int_equal(estimate_job(&cut, &ur, 0, BLAS_FP32, 0.0), 0);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units_any_order_resume_score),
        cmocka_unit_test(test_estimate),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
