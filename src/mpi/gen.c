// gen.c: rank-0 scheduler + workers of disa-gen (include/disa/gen.h).
//
// Roles (libcircle/HPL style): rank 0 runs gen_scheduler (which also generates) and
// every other rank runs gen_worker. Messages are fixed-size structs:
//
//   worker -> 0   TAG_REQUEST  "give me a unit"      (at most one outstanding)
//   0 -> worker   TAG_REPLY    ASSIGN(job, unit) or STOP (answers one REQUEST)
//   worker -> 0   TAG_DONE     unit_report            (images and ledger-worthy)
//   worker -> 0   TAG_BYE      "I will send nothing more"
//   0 -> worker   TAG_ABORT    "drop the unit in flight" (graceful stop)
//   0 -> worker   TAG_FIN      last message to a worker, answers BYE
//
// Polling order. A worker sends REQUEST as soon as it receives an ASSIGN, so the next
// unit is already waiting when it finishes (prefetch of depth one). Rank 0 answers
// requests from inside its own sampling (the sampler's poll hook runs after every
// transformer block and diffusion step), so a worker waits at most that long.
//
// Why no unit is lost or duplicated. A unit enters the ledger only when rank 0 holds
// its DONE report (the worker wrote and fsync'd its PNGs before sending it) or finished
// it itself; the ledger line is fsync'd. Any other unit, assigned or not, is absent from
// the ledger and is computed by the next run; PNGs are written under temporary names
// and renamed, so a half-written image never carries a final name, and rewriting a unit
// replaces its files whole. On resume every ledger unit's PNGs are decoded again before
// they count. Message matching at exit: every REQUEST gets exactly one REPLY; a worker
// sends BYE once and then receives until FIN, so an ABORT rank 0 sent meanwhile is
// consumed; rank 0 sends FIN only after BYE and finishes only when every worker's BYE
// arrived. Hence MPI_Finalize never sees an unmatched message.
#include "disa/gen.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/flops.h"
#include "disa/folder.h"
#include "disa/image.h"
#include "disa/ledger.h"
#include "disa/log.h"
#include "disa/mar.h"
#include "disa/metrics.h"
#include "disa/safetensors.h"
#include "disa/sampler.h"
#include "disa/score.h"
#include "disa/summary.h"
#include "disa/unit.h"
#include "disa/vae.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { TAG_REQUEST = 101, TAG_REPLY, TAG_DONE, TAG_BYE, TAG_ABORT, TAG_FIN };
enum { REPLY_ASSIGN = 1, REPLY_STOP = 2 };

typedef struct reply_msg {
    int32_t kind, job, unit, pad;
} reply_msg;

static volatile sig_atomic_t g_stop;

void gen_request_stop(int sig) { g_stop = sig ? sig : 1; }

int gen_default_threads(int ranks_on_node) {
    const char *v = getenv("SRUN_CPUS_PER_TASK");
    if (!v || atoi(v) < 1) v = getenv("SLURM_CPUS_PER_TASK");
    if (v && atoi(v) >= 1) return atoi(v);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int mine = online > 0 ? (int)online : 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0) mine = CPU_COUNT(&set);
    if (online > 0 && mine < online) return mine > 0 ? mine : 1;
    int t = mine / (ranks_on_node > 0 ? ranks_on_node : 1);
    return t > 0 ? t : 1;
}

// ----------------------------------------------------------------------------
// rank 0

typedef struct sched {
    unit_runner *ur;
    const job_list *jobs;
    int size;
    ledger *ledgers;      // [n jobs]
    int *queue_job, *queue_unit, queue_len, queue_next;
    int active_workers;   // workers that have not said BYE
    unsigned char *bye, *aborted;
    int (*inflight)[4];   // [size] up to two (job, unit) pairs assigned to each worker
    double *last_heard;   // [size] when each worker's last message arrived
    double slowest_unit;  // longest t_total of a finished unit, for the watchdog
    int shutdown;
    unit_report *reports; // finished units of this invocation
    int n_reports, cap_reports;
    double t_start, last_progress, *rank_busy;
    int64_t images_done, images_total;
    int *rank_images;
    const gen_opts *o;
    int fatal;
} sched;

static void progress(sched *s, int force) {
    double t = clock_now();
    // A bar redraws at most 4 times a second; plain lines come every progress_every s.
    double every = s->o->bar ? 0.25 : s->o->progress_every;
    if (s->o->quiet || (!force && t - s->last_progress < every)) return;
    s->last_progress = t;
    double el = t - s->t_start, rate = el > 0 ? s->images_done / el : 0;
    int64_t left = s->images_total - s->images_done;
    double eta = rate > 0 ? left / rate : 0;
    if (s->o->bar) {
        char bar[33];
        int fill = s->images_total > 0 ? (int)(32 * s->images_done / s->images_total) : 32;
        for (int k = 0; k < 32; k++) bar[k] = k < fill ? '#' : '.';
        bar[32] = '\0';
        fprintf(stderr, "\r[%s] %lld/%lld images  %.2f img/s  ETA %02d:%02d:%02d ", bar, (long long)s->images_done,
                (long long)s->images_total, rate, (int)(eta / 3600), (int)(eta / 60) % 60, (int)eta % 60);
        for (int r = 0; r < s->size && r < 8; r++)
            fprintf(stderr, " r%d %.2f", r, el > 0 ? s->rank_images[r] / el : 0.0);
        fprintf(stderr, force ? "\n" : "   ");
        fflush(stderr);
        return;
    }
    char per[256] = "";
    size_t used = 0;
    for (int r = 0; r < s->size && used < sizeof per; r++)
        used += (size_t)snprintf(per + used, sizeof per - used, "%sr%d %.2f", r ? " " : "", r,
                                 el > 0 ? s->rank_images[r] / el : 0.0);
    LOG(LOG_INFO, "progress %lld/%lld images, %.3f images/s, ETA %.0f s, per rank images/s: %s",
        (long long)s->images_done, (long long)s->images_total, rate, eta, per);
}

static int record(sched *s, const unit_report *r) {
    const job *jb = &s->jobs->jobs[r->job];
    int rc = ledger_append(&s->ledgers[r->job], r->unit, job_unit_first(jb, r->unit), r->count);
    if (rc) return rc;
    if (s->n_reports == s->cap_reports) {
        int cap = s->cap_reports ? 2 * s->cap_reports : 256;
        unit_report *n = realloc(s->reports, sizeof(unit_report) * (size_t)cap);
        if (!n) return disa_err(DISA_ENOMEM, "out of memory");
        s->reports = n;
        s->cap_reports = cap;
    }
    s->reports[s->n_reports] = *r;
    s->reports[s->n_reports++].t_done = clock_now() - s->t_start;
    s->images_done += r->count;
    s->rank_images[r->rank] += r->count;
    progress(s, 0);
    return 0;
}

static void send_reply(int dest, int kind, int j, int unit) {
    reply_msg m = {kind, j, unit, 0};
    MPI_Send(&m, sizeof m, MPI_BYTE, dest, TAG_REPLY, MPI_COMM_WORLD);
}

static void begin_shutdown(sched *s) {
    if (s->shutdown) return;
    s->shutdown = 1;
    for (int w = 1; w < s->size; w++)
        if (!s->bye[w] && !s->aborted[w]) {
            int z = 0;
            MPI_Send(&z, 1, MPI_INT, w, TAG_ABORT, MPI_COMM_WORLD);
            s->aborted[w] = 1;
        }
}

static void handle(sched *s, MPI_Status *stt) {
    int src = stt->MPI_SOURCE;
    s->last_heard[src] = clock_now();
    if (stt->MPI_TAG == TAG_REQUEST) {
        int z;
        MPI_Recv(&z, 1, MPI_INT, src, TAG_REQUEST, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (!s->shutdown && s->queue_next < s->queue_len) {
            int k = s->queue_next++;
            send_reply(src, REPLY_ASSIGN, s->queue_job[k], s->queue_unit[k]);
            int *f = s->inflight[src];
            int slot = f[1] < 0 ? 0 : 2;  // a worker holds at most two: one running, one prefetched
            f[slot] = s->queue_job[k];
            f[slot + 1] = s->queue_unit[k];
        } else {
            send_reply(src, REPLY_STOP, 0, 0);
        }
    } else if (stt->MPI_TAG == TAG_DONE) {
        unit_report r;
        MPI_Recv(&r, sizeof r, MPI_BYTE, src, TAG_DONE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        int *f = s->inflight[src];
        for (int k = 0; k < 4; k += 2)
            if (f[k] == r.job && f[k + 1] == r.unit) f[k] = f[k + 1] = -1;
        if (f[1] < 0 && f[3] >= 0) {  // keep the pending one in the first slot
            f[0] = f[2];
            f[1] = f[3];
            f[2] = f[3] = -1;
        }
        if (r.t_total > s->slowest_unit) s->slowest_unit = r.t_total;
        if (record(s, &r) != 0) {
            LOG(LOG_ERROR, "%s", disa_errmsg());
            s->fatal = 1;
            begin_shutdown(s);
        }
    } else if (stt->MPI_TAG == TAG_BYE) {
        int z;
        MPI_Recv(&z, 1, MPI_INT, src, TAG_BYE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        s->bye[src] = 1;
        s->active_workers--;
        // Units this worker held but did not finish go back to the queue (it stopped on
        // its own signal while the run goes on).
        int *f = s->inflight[src];
        for (int k = 0; k < 4; k += 2)
            if (f[k + 1] >= 0 && !s->ledgers[f[k]].done[f[k + 1]]) {
                s->queue_job[s->queue_len] = f[k];
                s->queue_unit[s->queue_len++] = f[k + 1];
                f[k] = f[k + 1] = -1;
            }
        MPI_Send(&z, 1, MPI_INT, src, TAG_FIN, MPI_COMM_WORLD);
    } else {
        LOG(LOG_ERROR, "unexpected message tag %d from rank %d", stt->MPI_TAG, src);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

// Watchdog. A healthy worker reports every unit it finishes and asks for the next as it
// starts one, so a worker holding a unit that has said nothing for far longer than any
// unit took is stuck: a hung node, a frozen process, a network that drops packets
// without closing the connection. MPI would wait for it forever; rank 0 aborts the job
// instead, naming the rank, and the ledger lets the next run resume. Automatic limit:
// 10x the slowest finished unit, at least 600 s, armed once every rank had time to
// finish a unit (model loading and warm-up make first units slow).
static void watchdog(sched *s) {
    double limit = s->o->unit_timeout;
    if (limit < 0) return;
    if (limit == 0) {
        if (s->n_reports < s->size) return;
        limit = 10 * s->slowest_unit > 600 ? 10 * s->slowest_unit : 600;
    }
    double t = clock_now();
    for (int w = 1; w < s->size; w++) {
        const int *f = s->inflight[w];
        if (s->bye[w] || f[1] < 0 || t - s->last_heard[w] <= limit) continue;
        LOG(LOG_ERROR, "rank %d has sent nothing for %.0f s while holding unit %d of %s (limit %.0f s); aborting "
            "the job: run the same command again to resume from the ledger", w, t - s->last_heard[w], f[1],
            s->jobs->jobs[f[0]].name, limit);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
}

// Poll hook of rank 0's own sampling: answer everything pending, then report a stop.
static int sched_poll(void *ctx) {
    sched *s = ctx;
    int flag;
    MPI_Status stt;
    for (;;) {
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &stt);
        if (!flag) break;
        handle(s, &stt);
    }
    watchdog(s);
    if (g_stop) begin_shutdown(s);
    return s->shutdown;
}

// ----------------------------------------------------------------------------
// worker

typedef struct worker {
    int abort;
} worker;

static int worker_poll(void *ctx) {
    worker *w = ctx;
    int flag;
    if (!w->abort) {
        MPI_Iprobe(0, TAG_ABORT, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
        if (flag) {
            int z;
            MPI_Recv(&z, 1, MPI_INT, 0, TAG_ABORT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            w->abort = 1;
        }
    }
    return w->abort || g_stop;
}

static int gen_worker(unit_runner *ur) {
    worker w = {0};
    int z = 0, rc = 0;
    double idle = 0;
    int first = 1;
    MPI_Send(&z, 1, MPI_INT, 0, TAG_REQUEST, MPI_COMM_WORLD);
    for (;;) {
        MPI_Status stt;
        double t0 = clock_now();
        // The reply, or an ABORT that overtook it.
        MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &stt);
        if (stt.MPI_TAG == TAG_ABORT) {
            MPI_Recv(&z, 1, MPI_INT, 0, TAG_ABORT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            w.abort = 1;
            // The REPLY to our outstanding REQUEST still comes: receive it below.
            MPI_Probe(0, TAG_REPLY, MPI_COMM_WORLD, &stt);
        }
        reply_msg m;
        MPI_Recv(&m, sizeof m, MPI_BYTE, 0, TAG_REPLY, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (!first) idle += clock_now() - t0;
        first = 0;
        if (m.kind == REPLY_STOP || w.abort || g_stop) break;
        MPI_Send(&z, 1, MPI_INT, 0, TAG_REQUEST, MPI_COMM_WORLD);  // prefetch the next unit
        unit_report r;
        rc = unit_run(ur, m.job, m.unit, worker_poll, &w, &r);
        if (rc == DISA_ECANCELED) {
            // Our prefetch REQUEST is outstanding: its REPLY is consumed in the drain below.
            rc = 0;
            break;
        }
        if (rc) {
            LOG(LOG_ERROR, "unit %d of %s: %s", m.unit, ur->jobs->jobs[m.job].name, disa_errmsg());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        r.t_idle = idle;
        idle = 0;
        MPI_Send(&r, sizeof r, MPI_BYTE, 0, TAG_DONE, MPI_COMM_WORLD);
    }
    MPI_Send(&z, 1, MPI_INT, 0, TAG_BYE, MPI_COMM_WORLD);
    // Drain until FIN: a late REPLY or ABORT is consumed here.
    for (;;) {
        MPI_Status stt;
        MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &stt);
        char buf[64];
        MPI_Recv(buf, sizeof buf, MPI_BYTE, 0, stt.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (stt.MPI_TAG == TAG_FIN) break;
    }
    return rc;
}

// ----------------------------------------------------------------------------
// rank 0: metrics and summary

static int gen_scheduler(unit_runner *ur, int size, const gen_opts *o, int setup_failed, int *status) {
    const job_list *jobs = ur->jobs;
    sched s;
    memset(&s, 0, sizeof s);
    s.ur = ur;
    s.jobs = jobs;
    s.size = size;
    s.o = o;
    s.active_workers = size - 1;
    s.t_start = s.last_progress = clock_now();
    s.ledgers = calloc((size_t)jobs->n, sizeof(ledger));
    s.bye = calloc((size_t)size, 1);
    s.aborted = calloc((size_t)size, 1);
    s.inflight = malloc(sizeof(int[4]) * (size_t)size);
    s.rank_images = calloc((size_t)size, sizeof(int));
    s.last_heard = calloc((size_t)size, sizeof(double));
    for (int w = 0; s.last_heard && w < size; w++) s.last_heard[w] = clock_now();
    int total_units = 0;
    for (int j = 0; j < jobs->n; j++) total_units += job_units(&jobs->jobs[j]);
    s.queue_job = malloc(sizeof(int) * (size_t)(total_units + 2 * size));
    s.queue_unit = malloc(sizeof(int) * (size_t)(total_units + 2 * size));
    int rc = 0;
    if (!s.ledgers || !s.bye || !s.aborted || !s.inflight || !s.rank_images || !s.last_heard || !s.queue_job ||
        !s.queue_unit)
        rc = disa_err(DISA_ENOMEM, "out of memory");
    for (int w = 0; !rc && w < size; w++) s.inflight[w][0] = s.inflight[w][1] = s.inflight[w][2] = s.inflight[w][3] = -1;
    for (int j = 0; !rc && !setup_failed && j < jobs->n; j++) {
        folder_expect e = {0};
        unit_runner_geometry(ur, j, &e.H, &e.W, &e.C);
        if (unit_runner_featnet(ur, j)) e.feat_dim = unit_runner_featnet(ur, j)->feat_dim;
        if ((rc = folder_prepare(&s.ledgers[j], &jobs->jobs[j], size, o->restart, &e)) != 0) break;
        for (int u = 0; u < job_units(&jobs->jobs[j]); u++) {
            if (s.ledgers[j].done[u]) continue;
            s.queue_job[s.queue_len] = j;
            s.queue_unit[s.queue_len++] = u;
            s.images_total += job_unit_count(&jobs->jobs[j], u);
        }
    }
    // Every rank learns whether setup worked before any work starts (HPL's pattern).
    int ok = !rc && !setup_failed;
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!ok) {
        if (rc) LOG(LOG_ERROR, "%s", disa_errmsg());
        *status = rc == DISA_EINVAL ? 2 : 1;
        goto out;
    }
    char blas[512];
    LOG(LOG_INFO, "%d jobs, %d units (%lld images) to do on %d ranks; %s", jobs->n, s.queue_len,
        (long long)s.images_total, size, cpu_blas_describe(blas, sizeof blas));

    // Polling order of rank 0: generate a unit while the queue has one (answering
    // messages from the poll hook), otherwise block on the next message until every
    // worker said BYE. Units that a departing worker held come back to the queue.
    while (!s.fatal && (s.active_workers > 0 || (!s.shutdown && s.queue_next < s.queue_len))) {
        if (!s.shutdown && s.queue_next < s.queue_len) {
            int k = s.queue_next++;
            unit_report r;
            int urc = unit_run(ur, s.queue_job[k], s.queue_unit[k], sched_poll, &s, &r);
            if (urc == DISA_ECANCELED) continue;
            if (urc) {
                LOG(LOG_ERROR, "unit %d of %s: %s", s.queue_unit[k], jobs->jobs[s.queue_job[k]].name, disa_errmsg());
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            if (record(&s, &r) != 0) {
                LOG(LOG_ERROR, "%s", disa_errmsg());
                s.fatal = 1;
                begin_shutdown(&s);
            }
            if (g_stop) begin_shutdown(&s);
        } else {
            // Wait for the next message, but not blindly: the watchdog needs to run while
            // rank 0 has nothing of its own to compute.
            MPI_Status stt;
            int flag = 0;
            MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &stt);
            if (flag) {
                handle(&s, &stt);
            } else {
                watchdog(&s);
                nanosleep(&(struct timespec){0, 2000000}, NULL);  // 2 ms: no busy core
            }
            if (g_stop) begin_shutdown(&s);
        }
    }
    double wall = clock_now() - s.t_start;
    progress(&s, 1);
    if (!o->quiet) summary_print_header();
    int complete = 1;
    job_metrics *mts = calloc((size_t)jobs->n, sizeof(job_metrics));
    job_row *rows = calloc((size_t)jobs->n, sizeof(job_row));
    if (!mts || !rows) {
        free(mts);
        free(rows);
        rc = disa_err(DISA_ENOMEM, "out of memory");
        goto out;
    }
    for (int j = 0; j < jobs->n; j++) {
        job_metrics mt = {0};
        int done = s.ledgers[j].n_done == job_units(&jobs->jobs[j]);
        complete &= done;
        // Metrics cover the whole job, so only a complete one gets them.
        if (done && !s.fatal && score_job(&mt, &jobs->jobs[j], unit_runner_featnet(ur, j), unit_runner_model(ur, j)->cfg.class_num) != 0) {
            LOG(LOG_ERROR, "%s: metrics: %s", jobs->jobs[j].name, disa_errmsg());
            s.fatal = 1;
        }
        if (summary_job(&rows[j], &jobs->jobs[j], j, s.reports, s.n_reports, &s.ledgers[j], &mt, size, o->quiet) != 0)
            LOG(LOG_ERROR, "%s", disa_errmsg());
        mts[j] = mt;
        flops_image fi;
        const job *jb = &jobs->jobs[j];
        if (flops_per_image(&fi, &unit_runner_model(ur, j)->cfg, &jb->p, jb->eval_bsz, unit_runner_vae(ur, j) ? &unit_runner_vae(ur, j)->cfg : NULL,
                            0) == 0)
            rows[j].flops = fi.total;
    }
    if (jobs->n > 1 && !o->quiet) summary_print_comparison(jobs, mts, rows);
    free(mts);
    free(rows);
    if (s.fatal) {
        *status = 1;
    } else if (!complete) {
        LOG(LOG_WARN, "stopped%s with %lld of %lld images of this run done; the run is resumable: run the same "
            "command again", g_stop ? " by signal" : "", (long long)s.images_done, (long long)s.images_total);
        *status = 0;
        rc = DISA_ECANCELED;
    } else {
        LOG(LOG_INFO, "done: %lld images in %.1f s", (long long)s.images_done, wall);
    }
out:
    for (int j = 0; s.ledgers && j < jobs->n; j++)
        if (s.ledgers[j].done) ledger_close(&s.ledgers[j]);
    free(s.ledgers);
    free(s.bye);
    free(s.aborted);
    free(s.inflight);
    free(s.rank_images);
    free(s.last_heard);
    free(s.queue_job);
    free(s.queue_unit);
    free(s.reports);
    return rc;
}

int gen_run(const job_list *jobs, const gen_opts *o) {
    int rank, size, status = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm node;
    int node_ranks;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &node_ranks);
    MPI_Comm_free(&node);
    int threads = o->threads > 0 ? o->threads : gen_default_threads(node_ranks);
    blas_set_threads(threads);
    if (rank == 0) LOG(LOG_INFO, "%d ranks, %d on this node, %d BLAS threads per rank", size, node_ranks, threads);
    unit_runner ur;
    int rc = unit_runner_init(&ur, jobs, rank);
    if (rc) LOG(LOG_ERROR, "loading models: %s", disa_errmsg());
    // All ranks must have their models before any work: a rank that failed tells the rest.
    int ok = rc == 0, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (rank == 0) {
        rc = gen_scheduler(&ur, size, o, !all_ok, &status);
        if (!all_ok) status = 1;
    } else {
        int go;
        MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (go) rc = gen_worker(&ur);
        else status = 1;
    }
    unit_runner_free(&ur);
    if (status) return status == 2 ? DISA_EINVAL : DISA_EIO;
    return rc == DISA_ECANCELED ? DISA_ECANCELED : rc;
}
