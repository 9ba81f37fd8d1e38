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
#include "disa/provenance.h"
#include "disa/record.h"
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

// The folder of job 0 prepared for one rank: this process, as disa-gen's ranks sign.
static void prepare(ledger *led, provenance *pv, const job_list *l, const unit_runner *ur) {
    const featnet *f = ur->job[0].feat;
    folder_expect e = {.feat_dim = f ? f->feat_dim : 0};
    unit_runner_geometry(ur, 0, &e.H, &e.W, &e.C);
    assert_true(e.H == 28 && e.W == 28 && e.C == 1);
    machine_sig me;
    machine_sig_local(&me, l->jobs[0].precision);
    assert_int_equal(folder_prepare(led, pv, &l->jobs[0], &me, 1, 0, &e), 0);
    assert_true(pv->world_size == 1 && pv->n >= 1 && machine_sig_equal(&pv->sig[pv->rank_sig[0]], &me));
}

static void run_units(unit_runner *ur, ledger *led, const provenance *pv, const job *jb, const int *order, int n,
                      unit_report *reports) {
    for (int k = 0; k < n; k++) {
        int u = order[k];
        assert_int_equal(unit_run(ur, 0, u, NULL, NULL, &reports[k]), 0);
        assert_int_equal(reports[k].count, job_unit_count(jb, u));
        assert_true(reports[k].tokens > 0 && reports[k].flops_transformer > 0);
        assert_int_equal(ledger_append(led, u, job_unit_first(jb, u), reports[k].count, pv->rank_sig[reports[k].rank]),
                         0);
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
    provenance pa, pb;
    unit_report rep_a[3], rep_b[3];
    assert_int_equal(unit_runner_init(&ra, &la, 0), 0);
    assert_int_equal(unit_runner_init(&rb, &lb, 0), 0);
    prepare(&lda, &pa, &la, &ra);
    prepare(&ldb, &pb, &lb, &rb);
    run_units(&ra, &lda, &pa, ja, (const int[]){0, 1, 2}, 3, rep_a);
    run_units(&rb, &ldb, &pb, &lb.jobs[0], (const int[]){2, 0, 1}, 3, rep_b);
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
    provenance_free(&pb);
    // Resume: the ledger's units are verified and count as done; a damaged PNG does not.
    // The same process signs the same: the folder's table keeps one signature.
    ledger_close(&lda);
    provenance_free(&pa);
    snprintf(path, sizeof path, "%s/00009.png", a);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 100), 0);
    fclose(f);
    prepare(&lda, &pa, &la, &ra);
    assert_int_equal(pa.n, 1);
    assert_int_equal(lda.n_done, 2);
    assert_true(lda.done[0] && !lda.done[1] && lda.done[2] && lda.sig[0] == 0 && lda.sig[1] == -1);
    unit_report again;
    run_units(&ra, &lda, &pa, ja, (const int[]){1}, 1, &again);
    // Metrics from the shards and the summary of the reports.
    job_metrics mt;
    assert_int_equal(score_job(&mt, ja, ra.job[0].feat, ra.job[0].info.class_num), 0);
    assert_true(mt.have && mt.have_acc && !mt.have_fid && mt.n == 20);
    assert_true(mt.accuracy >= 0 && mt.accuracy <= 1 && mt.is_adm >= 1);
    job_row row;
    assert_int_equal(summary_job(&row, ja, 0, rep_a, 3, &lda, &pa, &mt, 1, NULL, 1), 0);
    snprintf(path, sizeof path, "%s/summary.json", a);
    f = fopen(path, "r");
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "\n  \"images_done\": 20,\n"));
    assert_non_null(strstr(text, "\n  \"images_this_run\": 20,\n"));
    assert_non_null(strstr(text, "\"class_accuracy\": "));
    // Every image made by the one signature of the folder, the same kernels throughout.
    assert_non_null(strstr(text, "\n  \"signatures\": [\n    {\"sig\": 0, \"images\": 20, \"kernels\": "));
    assert_non_null(strstr(text, "\n  \"images_without_signature\": 0,\n  \"mixed_kernels\": false\n}"));
    assert_true(row.have && row.steps > 0);
    // The ledger names the signature of each unit; run.json lists the table and the ranks'.
    snprintf(path, sizeof path, "%s/manifest", a);
    f = fopen(path, "r");
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_string_equal(text, "unit 0 first 0 count 8 sig 0\nunit 1 first 8 count 8 sig 0\nunit 2 first 16 count 4 "
                              "sig 0\nunit 1 first 8 count 8 sig 0\n");
    snprintf(path, sizeof path, "%s/run.json", a);
    f = fopen(path, "r");
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char want[256];
    snprintf(want, sizeof want, "\"blas_core\":\t\"%s\",\n\t\"signatures\":\t[{\n\t\t\t\"host\":", blas_corename());
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "\"rank_signatures\":\t[0],"));
    ledger_close(&lda);
    provenance_free(&pa);
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
    provenance pa, pb;
    prepare(&lda, &pa, &la, &ra);
    prepare(&ldb, &pb, &lb, &rb);
    unit_report r;
    for (int u = 0; u < 3; u++) {
        g_polls = 0;
        assert_int_equal(unit_run(&ra, 0, u, count_polls, NULL, &r), 0);
        double want = sim_unit_seconds(&la.jobs[0].sim, 0.002, la.jobs[0].seed, u, job_unit_count(&la.jobs[0], u));
        assert_true(r.count == job_unit_count(&la.jobs[0], u) && r.rank == 0 && r.unit == u);
        assert_true(r.t_total >= want && r.t_other >= want && g_polls >= 1);
        assert_true(r.flops_transformer > 0 && r.tokens == (uint64_t)r.count * uj->info.token_dims[0]);
        assert_int_equal(ledger_append(&lda, u, job_unit_first(&la.jobs[0], u), r.count, -1), 0);
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
    provenance_free(&pa);
    provenance_free(&pb);
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

static void read_text(const char *path, char *text, size_t cap) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(text, 1, cap - 1, f);
    text[n] = '\0';
    fclose(f);
}

// A signature of this process with another OpenBLAS core, thread count or host.
static machine_sig sig_as(const char *core, int threads, const char *host) {
    machine_sig s;
    machine_sig_local(&s, PRECISION_FP32);
    snprintf(s.blas_core, sizeof s.blas_core, "%s", core);
    snprintf(s.host, sizeof s.host, "%s", host);
    s.threads = threads;
    return s;
}

// Which fields change the bits, and their short and long forms.
static void test_signature_kernels(void **state) {
    (void)state;
    char what[256], buf[320];
    machine_sig h1 = sig_as("Haswell", 1, "a"), h2 = sig_as("Haswell", 2, "a"), s1 = sig_as("SkylakeX", 1, "a");
    machine_sig s2 = sig_as("SkylakeX", 2, "b"), c2 = sig_as("Cooperlake", 2, "b");
    // Haswell sgemm rounds differently per thread count; SkylakeX's (and Cooperlake's) does not.
    assert_true(machine_sig_kernels_differ(&h1, &h2, what, sizeof what));
    assert_string_equal(what, "threads 1 vs 2");
    assert_false(machine_sig_kernels_differ(&s1, &s2, what, sizeof what));
    assert_string_equal(what, "");
    assert_true(machine_sig_kernels_differ(&h1, &s2, what, sizeof what));
    assert_string_equal(what, "OpenBLAS core Haswell vs SkylakeX; threads 1 vs 2");
    assert_true(machine_sig_kernels_differ(&s2, &c2, NULL, 0));
    assert_string_equal(machine_sig_kernels(&h2, 0, buf, sizeof buf), "Haswell/fp32/2 threads");
    assert_string_equal(machine_sig_kernels(&s1, 0, buf, sizeof buf), "SkylakeX/fp32");
    // bf16 counts threads (oneDNN may split a reduction) and names oneDNN's ISA.
    machine_sig b1 = s1, b2 = s2;
    snprintf(b1.precision, sizeof b1.precision, "bf16");
    snprintf(b1.bf16_isa, sizeof b1.bf16_isa, "avx512_core_bf16");
    snprintf(b2.precision, sizeof b2.precision, "bf16");
    snprintf(b2.bf16_isa, sizeof b2.bf16_isa, "avx512_core_amx");
    assert_true(machine_sig_kernels_differ(&b1, &b2, what, sizeof what));
    assert_string_equal(what, "oneDNN ISA avx512_core_bf16 vs avx512_core_amx; threads 1 vs 2");
    assert_string_equal(machine_sig_kernels(&b2, 0, buf, sizeof buf), "SkylakeX/bf16 avx512_core_amx/2 threads");
    assert_true(machine_sig_kernels_differ(&s1, &b1, what, sizeof what));
    assert_string_equal(what, "precision fp32 vs bf16; oneDNN ISA none vs avx512_core_bf16");
    // Hardware: the CPU model too, the host never.
    machine_sig other_cpu = s1;
    snprintf(other_cpu.cpu, sizeof other_cpu.cpu, "Intel(R) Xeon(R) Platinum 8480+");
    assert_false(machine_sig_kernels_differ(&s1, &other_cpu, NULL, 0));
    assert_true(machine_sig_hardware_differ(&other_cpu, &s1, what, sizeof what));
    assert_non_null(strstr(what, "CPU Intel(R) Xeon(R) Platinum 8480+ vs "));
    assert_false(machine_sig_hardware_differ(&s1, &s2, NULL, 0));
    assert_false(machine_sig_equal(&s1, &s2));
    snprintf(s1.cpu, sizeof s1.cpu, "AMD EPYC");
    snprintf(s1.blas, sizeof s1.blas, "OpenBLAS 0.3.21");
    assert_string_equal(machine_sig_str(&s1, buf, sizeof buf), "a, AMD EPYC, OpenBLAS 0.3.21 SkylakeX, fp32, 1 thread");
    assert_string_equal(machine_sig_str(&b2, buf, sizeof buf) + strlen(b2.host) + strlen(b2.cpu) + strlen(b2.blas) + 5,
                        "SkylakeX, bf16 (oneDNN avx512_core_amx), 2 threads");
}

// The warning's image ranges: consecutive units of one kernel set merge, hosts that run
// the same kernels share a set, long lists are cut.
static void test_mixed_ranges(void **state) {
    (void)state;
    job jb;
    memset(&jb, 0, sizeof jb);
    jb.num_images = 20000;
    jb.eval_bsz = 1000;
    provenance p;
    provenance_init(&p);
    machine_sig h = sig_as("Haswell", 1, "a"), h_other_host = sig_as("Haswell", 1, "b"), s = sig_as("SkylakeX", 2, "c");
    assert_int_equal(provenance_add(&p, &h), 0);
    assert_int_equal(provenance_add(&p, &h_other_host), 1);
    assert_int_equal(provenance_add(&p, &s), 2);
    assert_int_equal(provenance_add(&p, &h), 0);
    unsigned char done[20];
    int sig[20];
    ledger l = {.fd = -1, .done = done, .sig = sig, .n_units = 20};
    for (int u = 0; u < 20; u++) {
        done[u] = 1;
        sig[u] = u < 13 ? u % 2 : 2;  // two hosts alternate on one core, then another core
    }
    char text[1024];
    assert_int_equal(provenance_mixed(&p, &l, &jb, text, sizeof text), 1);
    assert_string_equal(text, "images 0-12,999 on Haswell/fp32/1 thread, 13,000-19,999 on SkylakeX/fp32: not bitwise "
                              "reproducible across them");
    int64_t images[3], unknown;
    provenance_count(&p, &l, &jb, images, &unknown);
    assert_true(images[0] == 7000 && images[1] == 6000 && images[2] == 7000 && unknown == 0);
    // Interleaved (dynamic scheduling across two kernel sets), a unit not done, and a
    // unit recorded without a signature: each ends a range.
    for (int u = 0; u < 20; u++) sig[u] = u % 2 ? 2 : 0;
    done[6] = 0;
    sig[8] = -1;
    assert_int_equal(provenance_mixed(&p, &l, &jb, text, sizeof text), 1);
    assert_string_equal(text, "images 0-999, 2,000-2,999, 4,000-4,999 and 5 more ranges (8,000 images) on "
                              "Haswell/fp32/1 thread, 1,000-1,999, 3,000-3,999, 5,000-5,999 and 7 more ranges "
                              "(10,000 images) on SkylakeX/fp32: not bitwise reproducible across them");
    provenance_count(&p, &l, &jb, images, &unknown);
    assert_true(images[0] == 8000 && images[1] == 0 && images[2] == 10000 && unknown == 1000);
    // One kernel set (the other hosts' units not done): nothing to warn about.
    for (int u = 0; u < 20; u++) done[u] = sig[u] != 2;
    assert_int_equal(provenance_mixed(&p, &l, &jb, text, sizeof text), 0);
    assert_string_equal(text, "");
    provenance_free(&p);
}

// A folder of a job that writes no PNGs, so units can be recorded without running them.
static void bare_job(job_list *l, const char *dir, int uniform) {
    char path[256], json[512];
    snprintf(path, sizeof path, "%s/bare.json", g_dir);
    snprintf(json, sizeof json, "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": 20, \"eval_bsz\": 2, "
             "\"png\": false, \"output_dir\": \"%s\"%s}", dir, uniform ? ", \"require_uniform_hardware\": true" : "");
    FILE *f = fopen(path, "w");
    fputs(json, f);
    fclose(f);
    memset(l, 0, sizeof *l);
    assert_int_equal(job_load(l, path, NULL, 0), 0);
    assert_int_equal(l->jobs[0].require_uniform_hardware, uniform);
}

static int prepare_as(ledger *led, provenance *pv, const job *jb, const machine_sig *ranks, int n) {
    folder_expect e = {0};
    int rc = folder_prepare(led, pv, jb, ranks, n, 0, &e);
    if (rc) provenance_free(pv);
    return rc;
}

// Units from..9 of a bare job made by rank 0, the ledger and table closed, and the
// summary.json written then into text.
static void finish(ledger *led, provenance *pv, const job *jb, int from, char *text, size_t cap) {
    char path[JOB_PATH_MAX + 32];
    for (int u = from; u < 10; u++) assert_int_equal(ledger_append(led, u, 2 * u, 2, pv->rank_sig[0]), 0);
    job_metrics mt = {0};
    job_row row;
    assert_int_equal(summary_job(&row, jb, 0, NULL, 0, led, pv, &mt, 1, NULL, 1), 0);
    ledger_close(led);
    provenance_free(pv);
    snprintf(path, sizeof path, "%s/summary.json", jb->output_dir);
    read_text(path, text, cap);
}

// A run on two hosts of one core, resumed on another core: the folder's table keeps its
// indices and gains the new signature, the ledger names each unit's, the summary counts
// and warns; require_uniform_hardware refuses that resume, and ranks that differ, with
// nothing written; a ledger and run.json of the format before signatures still resume.
static void test_provenance_resume(void **state) {
    (void)state;
    char dir[128], path[200], text[8192], before[8192], before_m[2048];
    snprintf(dir, sizeof dir, "%s/prov", g_dir);
    job_list jl, ju;
    bare_job(&jl, dir, 0);
    const job *jb = &jl.jobs[0];
    machine_sig two[2] = {sig_as("Haswell", 1, "node1"), sig_as("Haswell", 1, "node2")};
    machine_sig sky = sig_as("SkylakeX", 2, "node3");
    ledger led;
    provenance pv;
    assert_int_equal(prepare_as(&led, &pv, jb, two, 2), 0);
    assert_true(pv.n == 2 && pv.rank_sig[0] == 0 && pv.rank_sig[1] == 1);
    for (int u = 0; u < 5; u++) assert_int_equal(ledger_append(&led, u, 2 * u, 2, pv.rank_sig[u % 2]), 0);
    ledger_close(&led);
    provenance_free(&pv);
    // Resume on the other core: appended as signature 2.
    assert_int_equal(prepare_as(&led, &pv, jb, &sky, 1), 0);
    assert_true(pv.n == 3 && pv.rank_sig[0] == 2 && machine_sig_equal(&pv.sig[1], &two[1]));
    finish(&led, &pv, jb, 5, text, sizeof text);
    assert_non_null(strstr(text, "{\"sig\": 0, \"images\": 6, \"kernels\": \"Haswell/fp32/1 thread\", \"host\": \"node1\""));
    assert_non_null(strstr(text, "{\"sig\": 1, \"images\": 4, \"kernels\": \"Haswell/fp32/1 thread\", \"host\": \"node2\""));
    assert_non_null(strstr(text, "{\"sig\": 2, \"images\": 10, \"kernels\": \"SkylakeX/fp32\", \"host\": \"node3\""));
    assert_non_null(strstr(text, "\"mixed_kernels\": true,\n  \"mixed_kernels_warning\": \"images 0-9 on "
                                 "Haswell/fp32/1 thread, 10-19 on SkylakeX/fp32: not bitwise reproducible across them\"\n}"));
    snprintf(path, sizeof path, "%s/manifest", dir);
    read_text(path, before_m, sizeof before_m);
    assert_non_null(strstr(before_m, "unit 1 first 2 count 2 sig 1\nunit 2 first 4 count 2 sig 0\n"));
    assert_non_null(strstr(before_m, "unit 9 first 18 count 2 sig 2\n"));
    // require_uniform_hardware: the resume on SkylakeX is refused (units 0-4 were made on
    // Haswell), with run.json and the manifest untouched.
    bare_job(&ju, dir, 1);
    snprintf(path, sizeof path, "%s/run.json", dir);
    read_text(path, before, sizeof before);
    assert_int_equal(prepare_as(&led, &pv, &ju.jobs[0], &sky, 1), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "bare: require_uniform_hardware: 3 units of "));
    assert_non_null(strstr(disa_errmsg(), "/manifest (from unit 0) were made on machine signature 0 (node1, "));
    assert_non_null(strstr(disa_errmsg(), "(recorded vs now: OpenBLAS core Haswell vs SkylakeX; threads 1 vs 2)"));
    read_text(path, text, sizeof text);
    assert_string_equal(text, before);
    snprintf(path, sizeof path, "%s/manifest", dir);
    read_text(path, text, sizeof text);
    assert_string_equal(text, before_m);
    // Ranks that differ among themselves are refused before the folder exists; hosts
    // alone do not count.
    char fresh[160];
    snprintf(fresh, sizeof fresh, "%s/fresh", g_dir);
    job fj = ju.jobs[0];
    snprintf(fj.output_dir, sizeof fj.output_dir, "%s", fresh);
    machine_sig mixed[3] = {two[0], two[1], sky};
    assert_int_equal(prepare_as(&led, &pv, &fj, mixed, 3), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "bare: require_uniform_hardware: rank 2 differs from rank 0 (rank 2 vs rank "
                                          "0: OpenBLAS core SkylakeX vs Haswell; threads 2 vs 1); nothing was written"));
    assert_int_not_equal(access(fresh, F_OK), 0);
    assert_int_equal(prepare_as(&led, &pv, &fj, two, 2), 0);
    ledger_close(&led);
    provenance_free(&pv);
    // The format before signatures: ledger lines end at the count, run.json has no table.
    char ident[2048];
    assert_int_equal(record_identity(jb, ident, sizeof ident), 0);
    assert_int_equal(runinfo_write(dir, ident, "\"world_size\": 1"), 0);
    snprintf(path, sizeof path, "%s/manifest", dir);
    FILE *f = fopen(path, "w");
    for (int u = 0; u < 6; u++) fprintf(f, "unit %d first %d count 2\n", u, 2 * u);
    fclose(f);
    assert_int_equal(prepare_as(&led, &pv, &ju.jobs[0], &sky, 1), 0);  // nothing recorded to differ from
    assert_true(pv.n == 1 && led.n_done == 6 && led.sig[5] == -1);
    finish(&led, &pv, jb, 6, text, sizeof text);
    assert_non_null(strstr(text, "{\"sig\": 0, \"images\": 8, \"kernels\": \"SkylakeX/fp32\""));
    assert_non_null(strstr(text, "\"images_without_signature\": 12,\n  \"mixed_kernels\": false\n}"));
    snprintf(path, sizeof path, "%s/manifest", dir);
    read_text(path, text, sizeof text);
    assert_non_null(strstr(text, "unit 5 first 10 count 2\nunit 6 first 12 count 2 sig 0\n"));
    // A table that is not one is refused, naming the file.
    assert_int_equal(runinfo_write(dir, ident, "\"signatures\": [{\"host\": 3}]"), 0);
    assert_int_equal(folder_check(jb, 0), DISA_EINVAL);  // among the checks of every job before any is prepared
    assert_non_null(strstr(disa_errmsg(), "/run.json: 'signatures[0].host' must be a string"));
    assert_int_equal(folder_check(jb, 1), 0);  // --restart discards it
    assert_int_equal(prepare_as(&led, &pv, jb, &sky, 1), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "/run.json: 'signatures[0].host' must be a string of at most 63 characters"));
    job_list_free(&jl);
    job_list_free(&ju);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units_any_order_resume_score),
        cmocka_unit_test(test_estimate),
        cmocka_unit_test(test_simulated_units),
        cmocka_unit_test(test_occupancy),
        cmocka_unit_test(test_signature_kernels),
        cmocka_unit_test(test_mixed_ranges),
        cmocka_unit_test(test_provenance_resume),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
