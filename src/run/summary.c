// summary.c: summary.json, the per-job table row and the sweep comparison
// (include/disa/summary.h).
#include "disa/summary.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/plot.h"
#include "disa/path.h"
#include "disa/log.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const k_phase_names[PHASE_COUNT] = {"transformer", "diffusion_head", "decode", "features",
                                                        "io",          "idle",           "other"};

const char *phase_name(phase p) { return p >= 0 && p < PHASE_COUNT ? k_phase_names[p] : "?"; }

// ----------------------------------------------------------------------------
// aggregation of one job's unit reports

typedef struct rank_totals {
    double images, busy, idle;
    uint64_t rss_peak_kb, pss_kb;
    int units;
} rank_totals;

typedef struct job_timing {
    int images;               // images computed by this invocation
    double phase_s[PHASE_COUNT];
    double busy, steps_rows, tokens, flops;
    double wall;              // first unit's start to last unit's report
    double *per_image;        // [n_timed] seconds per image of each timed unit, ascending
    int n_timed;
    rank_totals *ranks;       // [world_size]
} job_timing;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Quantile q of the sorted v[n], linear between neighbours (numpy's default).
static double quantile(const double *v, int n, double q) {
    if (n == 0) return 0;
    double pos = q * (n - 1);
    int lo = (int)pos;
    return lo + 1 < n ? v[lo] + (pos - lo) * (v[lo + 1] - v[lo]) : v[lo];
}

static double mean(const double *v, int n) {
    double m = 0;
    for (int k = 0; k < n; k++) m += v[k];
    return n ? m / n : 0;
}

static void timing_free(job_timing *t) {
    free(t->per_image);
    free(t->ranks);
}

static int timing_of_job(job_timing *t, int j, const unit_report *reports, int n_reports, int world_size) {
    memset(t, 0, sizeof *t);
    int units = 0;
    for (int k = 0; k < n_reports; k++) units += reports[k].job == j;
    t->per_image = malloc(sizeof(double) * (size_t)(n_reports + 1));
    t->ranks = calloc((size_t)world_size, sizeof(rank_totals));
    if (!t->per_image || !t->ranks) {
        timing_free(t);
        return disa_err(DISA_ENOMEM, "out of memory");
    }
    double first_start = 1e300, last_done = 0;
    for (int k = 0; k < n_reports; k++) {
        const unit_report *r = &reports[k];
        if (r->job != j) continue;
        rank_totals *rt = &t->ranks[r->rank];
        t->images += r->count;
        t->phase_s[PHASE_TRANSFORMER] += r->t_transformer;
        t->phase_s[PHASE_HEAD] += r->t_head;
        t->phase_s[PHASE_DECODE] += r->t_decode;
        t->phase_s[PHASE_FEATURES] += r->t_features;
        t->phase_s[PHASE_IO] += r->t_io;
        t->phase_s[PHASE_IDLE] += r->t_idle;
        t->phase_s[PHASE_OTHER] += r->t_other;
        t->busy += r->t_total;
        t->steps_rows += (double)r->head_row_steps;
        t->tokens += (double)r->tokens;
        t->flops += (double)(r->flops_transformer + r->flops_head + r->flops_decode);
        rt->images += r->count;
        rt->busy += r->t_total;
        rt->idle += r->t_idle;
        if (r->t_done - r->t_total < first_start) first_start = r->t_done - r->t_total;
        if (r->t_done > last_done) last_done = r->t_done;
        if (r->rss_peak_kb > rt->rss_peak_kb) rt->rss_peak_kb = r->rss_peak_kb;
        if (r->pss_kb > rt->pss_kb) rt->pss_kb = r->pss_kb;
        // The first unit of each rank pays for warm-up (page faults, thread start), as the
        // first batch does in the official evaluation: keep it out of the per-image times.
        if (rt->units++ == 0 && units > 2 * world_size) continue;
        t->per_image[t->n_timed++] = r->t_total / r->count;
    }
    qsort(t->per_image, (size_t)t->n_timed, sizeof(double), cmp_double);
    // Wall time of this job: from its first unit's start to its last unit's report (jobs
    // of one run overlap, so the run's wall time would not tell them apart).
    t->wall = last_done > first_start ? last_done - first_start : 0;
    return 0;
}

// A number as printf formats it: the file keeps the precision each field always had.
static void add_num(cJSON *o, const char *key, const char *fmt, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    cJSON_AddRawToObject(o, key, buf);
}

// ----------------------------------------------------------------------------
// occupancy of the ranks

void run_stats_occupancy(run_stats *rs, const unit_report *reports, int n_reports, int ranks, double t0) {
    double *first = malloc(sizeof(double) * (size_t)ranks), *last = calloc((size_t)ranks, sizeof(double));
    double *busy = calloc((size_t)ranks, sizeof(double)), wall = 0;
    rs->ranks = ranks;
    rs->wall = rs->busy = rs->idle_start = rs->idle_steady = rs->idle_tail = 0;
    rs->first_unit_p50 = rs->first_unit_max = 0;
    if (!first || !last || !busy) goto out;
    for (int w = 0; w < ranks; w++) first[w] = -1;
    for (int k = 0; k < n_reports; k++) {
        const unit_report *r = &reports[k];
        double end = r->t_done - t0, start = end - r->t_total;
        if (start < 0) start = 0;
        if (first[r->rank] < 0 || start < first[r->rank]) first[r->rank] = start;
        if (end > last[r->rank]) last[r->rank] = end;
        busy[r->rank] += r->t_total;
        if (end > wall) wall = end;
    }
    rs->wall = wall;
    if (wall <= 0) goto out;
    int n_first = 0;
    for (int w = 0; w < ranks; w++) {
        rs->busy += busy[w];
        if (first[w] < 0) {
            rs->idle_tail += wall;  // never had a unit
            continue;
        }
        double steady = last[w] - first[w] - busy[w];
        rs->idle_start += first[w];
        rs->idle_steady += steady > 0 ? steady : 0;
        rs->idle_tail += wall - last[w];
        first[n_first++] = first[w];
        if (first[w] > rs->first_unit_max) rs->first_unit_max = first[w];
    }
    qsort(first, (size_t)n_first, sizeof(double), cmp_double);
    rs->first_unit_p50 = quantile(first, n_first, 0.5);
    double all = wall * ranks;
    rs->busy /= all;
    rs->idle_start /= all;
    rs->idle_steady /= all;
    rs->idle_tail /= all;
out:
    free(first);
    free(last);
    free(busy);
}

static cJSON *run_stats_object(const run_stats *rs) {
    cJSON *o = cJSON_CreateObject();
    add_num(o, "ranks", "%.0f", rs->ranks);
    add_num(o, "wall_s", "%.3f", rs->wall);
    add_num(o, "busy_share", "%.4f", rs->busy);
    add_num(o, "idle_start_share", "%.4f", rs->idle_start);
    add_num(o, "idle_steady_share", "%.4f", rs->idle_steady);
    add_num(o, "idle_tail_share", "%.4f", rs->idle_tail);
    add_num(o, "first_unit_p50_s", "%.3f", rs->first_unit_p50);
    add_num(o, "first_unit_max_s", "%.3f", rs->first_unit_max);
    add_num(o, "messages", "%.0f", rs->messages);
    add_num(o, "messages_per_s", "%.2f", rs->messages_per_s);
    add_num(o, "rank0_answer_share", "%.4f", rs->rank0_answer);
    add_num(o, "rank0_units_share", "%.4f", rs->rank0_units);
    add_num(o, "ledger_lines", "%.0f", rs->ledger_lines);
    add_num(o, "ledger_fsyncs", "%.0f", rs->ledger_syncs);
    add_num(o, "ledger_s", "%.4f", rs->ledger_s);
    add_num(o, "rank0_rss_peak_mib", "%.1f", rs->rank0_rss_mib);
    return o;
}

// ----------------------------------------------------------------------------
// summary.json

static cJSON *metrics_object(const job *jb, const job_metrics *mt) {
    cJSON *m = cJSON_CreateObject();
    add_num(m, "images", "%.0f", (double)mt->n);
    cJSON_AddStringToObject(m, "feature_net", jb->features);
    add_num(m, "IS", "%.6f", mt->is_mean);
    add_num(m, "IS_std", "%.6f", mt->is_std);
    add_num(m, "IS_adm", "%.6f", mt->is_adm);
    if (mt->have_fid) {
        add_num(m, "FID", "%.6f", mt->fid);
        add_num(m, "FID_sqrtm", "%.6f", mt->fid_sqrtm);
        cJSON_AddStringToObject(m, "reference", jb->reference);
    }
    if (mt->have_prc) {
        add_num(m, "precision", "%.6f", mt->precision);
        add_num(m, "recall", "%.6f", mt->recall);
    }
    if (mt->have_acc) add_num(m, "class_accuracy", "%.6f", mt->accuracy);
    add_num(m, "seconds", "%.3f", mt->seconds);
    return m;
}

// Which machine signatures made the images the ledger holds (provenance.h): the table
// with each entry's image count, the images of units recorded without one, and whether
// (and where) their kernels differ.
static void add_provenance(cJSON *o, const provenance *pv, const int64_t *images, int64_t unknown,
                           const char *mixed) {
    cJSON *arr = cJSON_AddArrayToObject(o, "signatures");
    for (int k = 0; k < pv->n; k++) {
        cJSON *e = cJSON_CreateObject();
        char kern[96];
        add_num(e, "sig", "%.0f", k);
        add_num(e, "images", "%.0f", (double)images[k]);
        cJSON_AddStringToObject(e, "kernels", machine_sig_kernels(&pv->sig[k], 0, kern, sizeof kern));
        machine_sig_to_json(e, &pv->sig[k]);
        cJSON_AddItemToArray(arr, e);
    }
    add_num(o, "images_without_signature", "%.0f", (double)unknown);
    cJSON_AddRawToObject(o, "mixed_kernels", mixed[0] ? "true" : "false");
    if (mixed[0]) cJSON_AddStringToObject(o, "mixed_kernels_warning", mixed);
}

static cJSON *summary_object(const job *jb, const job_timing *t, const ledger *l, const job_metrics *mt,
                             int world_size, const provenance *pv, const int64_t *images, int64_t unknown,
                             const char *mixed, const run_stats *rs) {
    char ps[512];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", jb->name);
    if (jb->sim.on) cJSON_AddStringToObject(o, "simulated", sim_str(&jb->sim, ps, sizeof ps));
    cJSON_AddStringToObject(o, "output_dir", jb->output_dir);
    cJSON_AddStringToObject(o, "sampling", job_sampling_str(jb, ps, sizeof ps));
    int images_done = 0;  // exact: the last unit may be shorter than eval_bsz
    for (int u = 0; u < job_units(jb); u++)
        if (l->done[u]) images_done += job_unit_count(jb, u);
    add_num(o, "images_total", "%.0f", jb->num_images);
    add_num(o, "images_done", "%.0f", images_done);
    add_num(o, "images_this_run", "%.0f", t->images);
    add_num(o, "world_size", "%.0f", world_size);
    cJSON_AddStringToObject(o, "blas_core", blas_corename());
    add_num(o, "blas_threads", "%.0f", blas_get_threads());
    add_num(o, "wall_s", "%.3f", t->wall);
    add_num(o, "images_per_s", "%.4f", t->wall > 0 ? t->images / t->wall : 0);
    cJSON *spi = cJSON_AddObjectToObject(o, "s_per_image");
    add_num(spi, "mean", "%.6f", mean(t->per_image, t->n_timed));
    add_num(spi, "p50", "%.6f", quantile(t->per_image, t->n_timed, 0.5));
    add_num(spi, "p95", "%.6f", quantile(t->per_image, t->n_timed, 0.95));
    add_num(spi, "units", "%.0f", t->n_timed);
    cJSON *ph = cJSON_AddObjectToObject(o, "phases_s");
    for (int p = 0; p < PHASE_COUNT; p++) add_num(ph, phase_name(p), "%.3f", t->phase_s[p]);
    add_num(o, "mean_diffusion_steps_per_token", "%.4f", t->tokens > 0 ? t->steps_rows / t->tokens : 0);
    add_num(o, "flops", "%.6e", t->flops);
    add_num(o, "gflops_per_busy_s", "%.2f", t->busy > 0 ? t->flops / t->busy / 1e9 : 0);
    // A simulation's metrics come from random feature rows (simulate.h): they are named
    // so that nothing reading "metrics" takes them for a result.
    if (mt->have) cJSON_AddItemToObject(o, jb->sim.on ? "metrics_of_random_features" : "metrics", metrics_object(jb, mt));
    cJSON *ranks = cJSON_AddArrayToObject(o, "ranks");
    for (int r = 0; r < world_size; r++) {
        const rank_totals *rt = &t->ranks[r];
        cJSON *e = cJSON_CreateObject();
        add_num(e, "rank", "%.0f", r);
        add_num(e, "images", "%.0f", rt->images);
        add_num(e, "busy_s", "%.3f", rt->busy);
        add_num(e, "images_per_busy_s", "%.4f", rt->busy > 0 ? rt->images / rt->busy : 0);
        add_num(e, "idle_s", "%.4f", rt->idle);
        add_num(e, "rss_peak_mib", "%.1f", rt->rss_peak_kb / 1024.0);
        add_num(e, "pss_mib", "%.1f", rt->pss_kb / 1024.0);
        cJSON_AddItemToArray(ranks, e);
    }
    add_provenance(o, pv, images, unknown, mixed);
    if (rs) cJSON_AddItemToObject(o, "scheduler", run_stats_object(rs));
    return o;
}

// A string as JSON (cJSON escapes it).
static int put_string(FILE *f, const char *text) {
    cJSON *str = cJSON_CreateString(text);
    char *s = str ? cJSON_PrintUnformatted(str) : NULL;
    int bad = !s || fputs(s, f) < 0;
    free(s);
    cJSON_Delete(str);
    return bad;
}

// A value on one line: {"key": value, ...} for objects, raw numbers as formatted.
static int put_inline(FILE *f, const cJSON *v) {
    if (cJSON_IsRaw(v)) return fputs(v->valuestring, f) < 0;
    if (cJSON_IsString(v)) return put_string(f, v->valuestring);
    if (!cJSON_IsObject(v)) return disa_err(DISA_EINTERNAL, "summary: unexpected JSON value");
    int bad = fputc('{', f) < 0;
    for (const cJSON *member = v->child; member; member = member->next) {
        if (member != v->child) bad |= fputs(", ", f) < 0;
        bad |= put_string(f, member->string) || fputs(": ", f) < 0 || put_inline(f, member);
    }
    return bad | (fputc('}', f) < 0);
}

// The layout summary.json always had (and the tools grep): one top-level member per
// line, objects on one line, an array one element per line.
static int put_summary(FILE *f, const cJSON *o) {
    int bad = fputs("{\n", f) < 0;
    for (const cJSON *m = o->child; m; m = m->next) {
        bad |= fputs(m == o->child ? "  " : ",\n  ", f) < 0 || put_string(f, m->string) || fputs(": ", f) < 0;
        if (!cJSON_IsArray(m)) {
            bad |= put_inline(f, m);
            continue;
        }
        bad |= fputc('[', f) < 0;
        for (const cJSON *e = m->child; e; e = e->next)
            bad |= fputs(e == m->child ? "\n    " : ",\n    ", f) < 0 || put_inline(f, e);
        bad |= fputs("\n  ]", f) < 0;
    }
    return bad | (fputs("\n}\n", f) < 0);
}

static int write_summary(const char *dir, const cJSON *o) {
    char path[JOB_PATH_MAX + 32], tmp[JOB_PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return disa_err(DISA_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = put_summary(f, o);
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return disa_err(DISA_EIO, "%s: write failed", path);
    }
    return 0;
}

// ----------------------------------------------------------------------------
// tables on stdout

void summary_print_header(void) {
    printf("\n%-28s %7s %8s %8s %9s %9s %9s %7s %8s %7s %7s %7s %6s %6s\n", "job", "images", "wall s", "img/s",
           "s/img", "p50", "p95", "steps", "GFLOPS", "transf", "head", "decode", "io", "idle");
}

static void print_row(const job *jb, const job_timing *t, const job_metrics *mt) {
    int n = t->n_timed;
    printf("%-28s %7d %8.1f %8.3f %9.4f %9.4f %9.4f %7.2f %8.1f %7.1f %7.1f %7.1f %6.1f %6.2f\n", jb->name, t->images,
           t->wall, t->wall > 0 ? t->images / t->wall : 0, mean(t->per_image, n), quantile(t->per_image, n, 0.5),
           quantile(t->per_image, n, 0.95), t->tokens > 0 ? t->steps_rows / t->tokens : 0,
           t->busy > 0 ? t->flops / t->busy / 1e9 : 0, t->phase_s[PHASE_TRANSFORMER], t->phase_s[PHASE_HEAD],
           t->phase_s[PHASE_DECODE], t->phase_s[PHASE_IO], t->phase_s[PHASE_IDLE]);
    if (jb->sim.on) printf("%-28s simulated (disa-gen --simulate): no images%s\n", " ",
                           mt->have ? "; the metrics below are of random feature rows" : "");
    if (!mt->have) return;
    printf("%-28s metrics over %lld images:", " ", (long long)mt->n);
    if (mt->have_fid) printf(" FID %.4f (sqrtm %.4f)", mt->fid, mt->fid_sqrtm);
    printf(" IS %.4f +- %.4f (ADM %.4f)", mt->is_mean, mt->is_std, mt->is_adm);
    if (mt->have_prc) printf(" precision %.4f recall %.4f", mt->precision, mt->recall);
    if (mt->have_acc) printf(" class accuracy %.2f%%", 100 * mt->accuracy);
    printf("\n");
}

// Under the job's row: the images of each signature that made some (at most 8 lines).
static void print_signatures(const provenance *pv, const int64_t *images, int64_t unknown) {
    int shown = 0, more = 0;
    for (int k = 0; k < pv->n; k++) {
        if (!images[k]) continue;
        if (shown++ == 8) {
            more++;
            continue;
        }
        char desc[320];
        printf("%-28s %7lld images on machine signature %d: %s\n", " ", (long long)images[k], k,
               machine_sig_str(&pv->sig[k], desc, sizeof desc));
    }
    if (more) printf("%-28s (%d more signatures in summary.json)\n", " ", more);
    if (unknown) printf("%-28s %7lld images recorded without a machine signature\n", " ", (long long)unknown);
}

int summary_job(job_row *row, const job *jb, int j, const unit_report *reports, int n_reports, const ledger *l,
                const provenance *pv, const job_metrics *mt, int world_size, const run_stats *rs, int quiet) {
    job_timing t;
    int rc = timing_of_job(&t, j, reports, n_reports, world_size);
    if (rc) return rc;
    int64_t *images = malloc(sizeof(int64_t) * (size_t)(pv->n + 1)), unknown;
    char mixed[1024];
    if (!images) {
        timing_free(&t);
        return disa_err(DISA_ENOMEM, "out of memory");
    }
    provenance_count(pv, l, jb, images, &unknown);
    provenance_mixed(pv, l, jb, mixed, sizeof mixed);
    cJSON *o = summary_object(jb, &t, l, mt, world_size, pv, images, unknown, mixed, rs);
    rc = o ? write_summary(jb->output_dir, o) : disa_err(DISA_ENOMEM, "out of memory");
    cJSON_Delete(o);
    if (!rc && !quiet) {
        print_row(jb, &t, mt);
        print_signatures(pv, images, unknown);
        fflush(stdout);  // the warning (stderr) below the lines it is about
    }
    if (mixed[0]) LOG(LOG_WARN, "%s: %s", jb->name, mixed);
    free(images);
    if (!rc) {
        row->have = t.n_timed > 0;
        row->s_img = mean(t.per_image, t.n_timed);
        row->img_s = t.wall > 0 ? t.images / t.wall : 0;
        row->steps = t.tokens > 0 ? t.steps_rows / t.tokens : 0;
    }
    timing_free(&t);
    return rc;
}

// Speedups are against the first job: measured from the compute seconds per image (the
// same model and K make that a fair ratio), predicted from the FLOP model
// (include/disa/flops.h) of sampling and decoding one image.
void summary_print_comparison(const job_list *jobs, const job_metrics *mt, const job_row *row) {
    printf("\ncomparison (speedup against %s):\n", jobs->jobs[0].name);
    printf("%-28s %9s %9s %11s %10s %10s %9s %16s %16s\n", "variant", "s/image", "images/s", "steps/token", "FID",
           "class acc", "IS", "speedup measured", "FLOP-predicted");
    for (int j = 0; j < jobs->n; j++) {
        char fid[32] = "-", acc[32] = "-", is[32] = "-", sm[32] = "-", sp[32] = "-";
        if (mt[j].have_fid) snprintf(fid, sizeof fid, "%.3f", mt[j].fid);
        if (mt[j].have_acc) snprintf(acc, sizeof acc, "%.2f%%", 100 * mt[j].accuracy);
        if (mt[j].have) snprintf(is, sizeof is, "%.3f", mt[j].is_mean);
        if (row[0].have && row[j].have && row[j].s_img > 0) snprintf(sm, sizeof sm, "%.2fx", row[0].s_img / row[j].s_img);
        if (row[0].flops > 0 && row[j].flops > 0) snprintf(sp, sizeof sp, "%.2fx", row[0].flops / row[j].flops);
        printf("%-28s %9.4f %9.3f %11.2f %10s %10s %9s %16s %16s\n", jobs->jobs[j].name, row[j].s_img, row[j].img_s,
               row[j].steps, fid, acc, is, sm, sp);
    }
}

// The folder the sweep's variants share (the deepest common ancestor of the parents of
// their output folders), where comparison.png goes; 0, or -1 when that is only "/".
static int sweep_folder(char *out, size_t n, const job_list *jobs) {
    char c[PATH_MAX];
    for (int j = 0; j < jobs->n; j++) {
        if (path_canonical(c, sizeof c, jobs->jobs[j].output_dir) != 0) return -1;
        char *slash = strrchr(c, '/');
        if (slash) *slash = '\0';  // the parent of the job's folder
        if (j == 0) {
            snprintf(out, n, "%s", c);
            continue;
        }
        // Keep the longest prefix of whole components that c and out share.
        size_t k = 0, last = 0;
        for (; out[k] && out[k] == c[k]; k++)
            if (out[k] == '/') last = k;
        if (!(out[k] == '\0' && (c[k] == '/' || c[k] == '\0'))) out[last] = '\0';
    }
    return out[0] ? 0 : -1;
}

// comparison.png beside the variants: FID against s/image and against diffusion steps per
// token, and class accuracy against s/image when the feature net is a classifier; the
// first job (the speedups' reference) drawn as the reference marker. A missing gnuplot
// is a warning: the table above has the same numbers.
static void plot_comparison(const job_list *jobs, const job_metrics *mt, const job_row *row) {
    char dir[PATH_MAX], out[PATH_MAX + 32];
    if (sweep_folder(dir, sizeof dir, jobs) != 0) return;
    snprintf(out, sizeof out, "%s/comparison.png", dir);
    plot_point *p = calloc((size_t)jobs->n * 3, sizeof *p);
    if (!p) return;
    int have_fid = 0, have_acc = 0;
    for (int j = 0; j < jobs->n; j++) {
        const char *slash = strrchr(jobs->jobs[j].name, '/');
        const char *label = slash ? slash + 1 : jobs->jobs[j].name;
        double s = row[j].have ? row[j].s_img : NAN, fid = mt[j].have_fid ? mt[j].fid : NAN;
        p[j] = (plot_point){s, fid, label, j == 0};
        p[jobs->n + j] = (plot_point){row[j].steps > 0 ? row[j].steps : NAN, fid, label, j == 0};
        p[2 * jobs->n + j] = (plot_point){s, mt[j].have_acc ? 100 * mt[j].accuracy : NAN, label, j == 0};
        have_fid |= mt[j].have_fid;
        have_acc |= mt[j].have_acc;
    }
    plot_panel panels[3];
    int np = 0;
    if (have_fid) {
        panels[np++] = (plot_panel){"FID against time (lower left is better)", "seconds per image (compute)", "FID", p, jobs->n};
        panels[np++] = (plot_panel){"FID against head steps", "diffusion steps per token (mean)", "FID", p + jobs->n, jobs->n};
    }
    if (have_acc)
        panels[np++] = (plot_panel){"class accuracy against time", "seconds per image (compute)", "class accuracy (%)",
                                    p + 2 * jobs->n, jobs->n};
    if (np > 0) {
        char title[300];
        snprintf(title, sizeof title, "%d variants; reference %s", jobs->n, jobs->jobs[0].name);
        if (plot_scatter(out, title, panels, np) == 0) LOG(LOG_INFO, "comparison plot: %s", out);
        else LOG(LOG_WARN, "comparison plot not drawn: %s", disa_errmsg());
    }
    free(p);
}

// ----------------------------------------------------------------------------
// the end of a run

int summary_run(int *complete, const unit_runner *ur, const ledger *ledgers, const provenance *prov,
                const unit_report *reports, int n_reports, int world_size, const run_stats *rs, int quiet, int fatal) {
    const job_list *jobs = ur->jobs;
    *complete = 1;
    if (!quiet) summary_print_header();
    job_metrics *mts = calloc((size_t)jobs->n, sizeof(job_metrics));
    job_row *rows = calloc((size_t)jobs->n, sizeof(job_row));
    if (!mts || !rows) {
        free(mts);
        free(rows);
        return disa_err(DISA_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (int j = 0; j < jobs->n; j++) {
        const job *jb = &jobs->jobs[j];
        const unit_job *uj = &ur->job[j];
        int done = ledgers[j].n_done == job_units(jb);
        *complete &= done;
        // Metrics cover the whole job, so only a complete one gets them.
        if (done && !fatal && !rc && score_job(&mts[j], jb, uj->feat, uj->info.class_num) != 0) {
            LOG(LOG_ERROR, "%s: metrics: %s", jb->name, disa_errmsg());
            rc = DISA_EIO;
        }
        if (summary_job(&rows[j], jb, j, reports, n_reports, &ledgers[j], &prov[j], &mts[j], world_size, rs, quiet) != 0)
            LOG(LOG_ERROR, "%s", disa_errmsg());
        // The FLOP model of sampling and decoding one image.
        sample_flops sf;
        if (uj->fam->flops(&sf, uj->model, &jb->params, jb->eval_bsz) == 0)
            rows[j].flops = sf.transformer + sf.head + decode_flops(&uj->info, uj->vae);
    }
    if (jobs->n > 1 && !quiet) summary_print_comparison(jobs, mts, rows);
    if (jobs->n > 1 && *complete && !fatal) plot_comparison(jobs, mts, rows);
    free(mts);
    free(rows);
    return rc;
}
