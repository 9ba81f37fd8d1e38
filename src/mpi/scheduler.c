// scheduler.c: rank 0 of disa-gen: the queue of units, the ledger, the answers to the
// workers (msg.h), the watchdog; it also generates units itself (include/disa/generator.h).
//
// Polling order of rank 0. While the queue has a unit, rank 0 runs it; the sampler's
// poll hook (after every transformer block and diffusion step) answers every pending
// message, then fsyncs the ledger lines of the units they reported (commit), so a
// worker waits at most one block for its next unit. With the queue empty it does the
// same between sleeps of 2 ms (running the watchdog) until every worker said BYE.
// Units a departing worker held come back to the queue.
//
// Why no unit is lost or duplicated. A unit enters the ledger only when rank 0 holds
// its DONE report (the worker wrote and fsync'd its PNGs and shard before sending it)
// or finished it itself; the ledger line is fsync'd before the unit counts (one fsync
// for the lines of all reports taken in one sweep over the pending messages; a crash
// before it loses those lines, and their units are computed again). Any other
// unit, assigned or not, is absent from the ledger and is computed by the next run.
// PNGs and shards are written under temporary names and renamed, so a half-written file
// never carries a final name, and rewriting a unit replaces its files whole; on resume
// every unit of the ledger is verified (folder.h) before it counts. Each unit is queued
// once per run: requeued only when the worker holding it said BYE without its DONE.
// Message matching at exit is argued in worker.c.
#include "lazy.h"
#include "roles.h"
#include "msg.h"

#include "disa/arena.h"
#include "disa/clock.h"
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/folder.h"
#include "disa/ledger.h"
#include "disa/log.h"
#include "disa/progress.h"
#include "disa/summary.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct unit_ref {
    int job, unit;  // -1, -1: none
} unit_ref;

// What rank 0 knows of one worker.
typedef struct worker_state {
    unsigned char bye;      // BYE received
    unsigned char aborted;  // ABORT sent
    unit_ref held[2];       // units assigned to it: one running, one prefetched
    double last_heard;      // when its last message arrived
} worker_state;

typedef struct scheduler {
    unit_runner *ur;
    const job_list *jobs;
    const generator_opts *o;
    int size;
    ledger *ledgers;        // [n jobs]
    provenance *prov;       // [n jobs] each folder's machine signatures
    const machine_sig *sigs;// [n jobs][size] each rank's signature per job
    unit_ref *queue;        // [queue_cap] units to do, in order; [queue_next, queue_len) remain
    int queue_len, queue_next;
    int active_workers;     // workers that have not said BYE
    worker_state *workers;  // [size] indexed by rank (rank 0's entry unused)
    double slowest_unit;    // longest t_total of a finished unit, for the watchdog
    int shutdown;           // no more units are handed out
    int fatal;              // a unit could not be recorded, or metrics failed
    unit_report *reports;   // finished units of this invocation; [n_committed, n_reports) await commit()
    int n_reports, cap_reports, n_committed;
    progress prog;
    // What rank 0's own work costs (summary.h, run_stats): messages handled and the
    // seconds spent on them, ledger lines and fsyncs, its own units.
    double t_serve;         // when serving began, on the clock of reports[].t_done
    long long messages, ledger_lines, ledger_syncs;
    double t_answer, t_ledger, t_own;
} scheduler;

// ----------------------------------------------------------------------------
// bookkeeping

static void queue_push(scheduler *s, unit_ref u) { s->queue[s->queue_len++] = u; }

// A finished unit: its ledger line written and its report kept; it counts (ledger,
// summary, progress) once commit() has fsync'd the line.
static int record(scheduler *s, const unit_report *r) {
    const job *jb = &s->jobs->jobs[r->job];
    double t0 = clock_now();
    int rc = ledger_write(&s->ledgers[r->job], r->unit, job_unit_first(jb, r->unit), r->count,
                          s->prov[r->job].rank_sig[r->rank]);
    s->t_ledger += clock_now() - t0;
    if (rc) return rc;
    s->ledger_lines++;
    if (mem_grow(&s->reports, &s->cap_reports, s->n_reports, sizeof *s->reports, 256))
        return disa_err(DISA_ENOMEM, "out of memory");
    s->reports[s->n_reports] = *r;
    s->reports[s->n_reports++].t_done = clock_now() - s->prog.t_start;
    return 0;
}

static void send_empty(int dest, msg_tag tag) {
    empty_msg m = {0};
    MPI_Send(&m, sizeof m, MPI_BYTE, dest, tag, MPI_COMM_WORLD);
}

static void begin_shutdown(scheduler *s) {
    if (s->shutdown) return;
    s->shutdown = 1;
    for (int w = 1; w < s->size; w++)
        if (!s->workers[w].bye && !s->workers[w].aborted) {
            send_empty(w, TAG_ABORT);
            s->workers[w].aborted = 1;
        }
}

static void record_or_stop(scheduler *s, const unit_report *r) {
    if (record(s, r) == 0) return;
    LOG(LOG_ERROR, "%s", disa_errmsg());
    s->fatal = 1;
    begin_shutdown(s);
}

// One fsync per ledger covers every unit recorded since the last commit (a sweep over
// the pending messages); then they count. At one fsync per unit, rank 0 of a big run
// spent most of its time in fsync (docs/scaling.md). A failed fsync counts none of them.
static void commit(scheduler *s) {
    if (s->n_committed == s->n_reports) return;
    double t0 = clock_now();
    int rc = 0;
    for (int j = 0; j < s->jobs->n; j++) {
        if (s->ledgers[j].n_pending == 0) continue;
        s->ledger_syncs++;
        if (!rc) rc = ledger_sync(&s->ledgers[j]);
    }
    s->t_ledger += clock_now() - t0;
    s->t_answer += clock_now() - t0;
    if (rc) {
        LOG(LOG_ERROR, "%s", disa_errmsg());
        s->n_reports = s->n_committed;
        s->fatal = 1;
        begin_shutdown(s);
        return;
    }
    for (; s->n_committed < s->n_reports; s->n_committed++)
        progress_add(&s->prog, s->reports[s->n_committed].rank, s->reports[s->n_committed].count);
}

// ----------------------------------------------------------------------------
// messages

static void on_request(scheduler *s, int src) {
    empty_msg m;
    MPI_Recv(&m, sizeof m, MPI_BYTE, src, TAG_REQUEST, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    reply_msg rep = {REPLY_STOP, 0, 0, 0};
    if (!s->shutdown && s->queue_next < s->queue_len) {
        unit_ref u = s->queue[s->queue_next++];
        rep = (reply_msg){REPLY_ASSIGN, u.job, u.unit, 0};
        unit_ref *h = s->workers[src].held;
        h[h[0].unit < 0 ? 0 : 1] = u;  // a worker holds at most two: one running, one prefetched
    }
    MPI_Send(&rep, sizeof rep, MPI_BYTE, src, TAG_REPLY, MPI_COMM_WORLD);
}

static void on_done(scheduler *s, int src) {
    unit_report r;
    MPI_Recv(&r, sizeof r, MPI_BYTE, src, TAG_DONE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    unit_ref *h = s->workers[src].held;
    for (int k = 0; k < 2; k++)
        if (h[k].job == r.job && h[k].unit == r.unit) h[k] = (unit_ref){-1, -1};
    if (h[0].unit < 0 && h[1].unit >= 0) {  // keep the pending one in the first slot
        h[0] = h[1];
        h[1] = (unit_ref){-1, -1};
    }
    if (r.t_total > s->slowest_unit) s->slowest_unit = r.t_total;
    record_or_stop(s, &r);
}

static void on_bye(scheduler *s, int src) {
    empty_msg m;
    MPI_Recv(&m, sizeof m, MPI_BYTE, src, TAG_BYE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    s->workers[src].bye = 1;
    s->active_workers--;
    // Units this worker held but did not finish go back to the queue (it stopped on
    // its own signal while the run goes on).
    unit_ref *h = s->workers[src].held;
    for (int k = 0; k < 2; k++)
        if (h[k].unit >= 0 && !s->ledgers[h[k].job].done[h[k].unit]) {
            queue_push(s, h[k]);
            h[k] = (unit_ref){-1, -1};
        }
    send_empty(src, TAG_FIN);
}

static void handle(scheduler *s, const MPI_Status *stt) {
    int src = stt->MPI_SOURCE;
    double t0 = clock_now();
    s->workers[src].last_heard = t0;
    switch (stt->MPI_TAG) {
    case TAG_REQUEST: on_request(s, src); break;
    case TAG_DONE: on_done(s, src); break;
    case TAG_BYE: on_bye(s, src); break;
    default:
        LOG(LOG_ERROR, "unexpected message tag %d from rank %d", stt->MPI_TAG, src);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    s->messages++;
    s->t_answer += clock_now() - t0;
}

// Watchdog. A healthy worker reports every unit it finishes and asks for the next as it
// starts one, so a worker holding a unit that has said nothing for far longer than any
// unit took is stuck: a hung node, a frozen process, a network that drops packets
// without closing the connection. MPI would wait for it forever; rank 0 aborts the job
// instead, naming the rank, and the ledger lets the next run resume. Automatic limit:
// 10x the slowest finished unit, at least 600 s, armed once every rank had time to
// finish a unit (model loading and warm-up make first units slow).
static void watchdog(scheduler *s) {
    double limit = s->o->unit_timeout;
    if (limit < 0) return;
    if (limit == 0) {
        if (s->n_reports < s->size) return;
        limit = 10 * s->slowest_unit > 600 ? 10 * s->slowest_unit : 600;
    }
    double t = clock_now();
    for (int w = 1; w < s->size; w++) {
        const worker_state *ws = &s->workers[w];
        const unit_ref *h = ws->held;
        if (ws->bye || h[0].unit < 0 || t - ws->last_heard <= limit) continue;
        LOG(LOG_ERROR, "rank %d has sent nothing for %.0f s while holding unit %d of %s (limit %.0f s); aborting "
            "the job: run the same command again to resume from the ledger", w, t - ws->last_heard, h[0].unit,
            s->jobs->jobs[h[0].job].name, limit);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
}

// Poll hook of rank 0's own sampling: answer everything pending, then report a stop.
static int scheduler_poll(void *ctx) {
    scheduler *s = ctx;
    int flag;
    MPI_Status stt;
    for (;;) {
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &stt);
        if (!flag) break;
        handle(s, &stt);
    }
    commit(s);
    watchdog(s);
    if (generator_stop_requested) begin_shutdown(s);
    return s->shutdown;
}

// ----------------------------------------------------------------------------
// the run

static int scheduler_init(scheduler *s, unit_runner *ur, int size, const generator_opts *o, const machine_sig *sigs) {
    const job_list *jobs = ur->jobs;
    memset(s, 0, sizeof *s);
    s->ur = ur;
    s->jobs = jobs;
    s->o = o;
    s->size = size;
    s->active_workers = size - 1;
    int total_units = 0;
    for (int j = 0; j < jobs->n; j++) total_units += job_units(&jobs->jobs[j]);
    // Each unit is queued once and requeued at most once per BYE (two held units each).
    s->queue = malloc(sizeof(unit_ref) * (size_t)(total_units + 2 * size));
    s->ledgers = calloc((size_t)jobs->n, sizeof(ledger));
    s->prov = calloc((size_t)jobs->n, sizeof(provenance));
    s->sigs = sigs;
    s->workers = calloc((size_t)size, sizeof(worker_state));
    int rc = progress_init(&s->prog, size, o->bar, o->progress_every, o->quiet);
    if (!rc && (!s->queue || !s->ledgers || !s->prov || !s->workers))
        rc = disa_err(DISA_ENOMEM, "out of memory");
    for (int w = 0; !rc && w < size; w++) {
        s->workers[w].held[0] = s->workers[w].held[1] = (unit_ref){-1, -1};
        s->workers[w].last_heard = clock_now();
    }
    return rc;
}

static void scheduler_free(scheduler *s) {
    for (int j = 0; s->ledgers && j < s->jobs->n; j++)
        if (s->ledgers[j].done) ledger_close(&s->ledgers[j]);
    free(s->ledgers);
    for (int j = 0; s->prov && j < s->jobs->n; j++) provenance_free(&s->prov[j]);
    free(s->prov);
    free(s->queue);
    free(s->workers);
    free(s->reports);
    progress_free(&s->prog);
}

// Every job's folder ready (folder.h) and its units not yet in the ledger queued.
static int plan(scheduler *s) {
    const job_list *jobs = s->jobs;
    // All refusals first: a sweep whose third folder holds another run creates nothing.
    for (int j = 0; j < jobs->n; j++) {
        int rc = folder_check(&jobs->jobs[j], s->o->restart);
        if (!rc) rc = folder_check_hardware(&jobs->jobs[j], s->sigs + (size_t)j * (size_t)s->size, s->size, s->o->restart);
        if (rc) return rc;
    }
    for (int j = 0; j < jobs->n; j++) {
        const job *jb = &jobs->jobs[j];
        const featnet *f = s->ur->job[j].feat;
        folder_expect e = {.feat_dim = f ? f->feat_dim : 0};
        unit_runner_geometry(s->ur, j, &e.H, &e.W, &e.C);
        int rc = folder_prepare(&s->ledgers[j], &s->prov[j], jb, s->sigs + (size_t)j * (size_t)s->size, s->size,
                                s->o->restart, &e);
        if (rc) return rc;
        for (int u = 0; u < job_units(jb); u++) {
            if (s->ledgers[j].done[u]) continue;
            queue_push(s, (unit_ref){j, u});
            s->prog.total += job_unit_count(jb, u);
        }
    }
    return 0;
}

// The loop (see the polling order above).
static void serve(scheduler *s) {
    s->t_serve = clock_now() - s->prog.t_start;
    while (!s->fatal && (s->active_workers > 0 || (!s->shutdown && s->queue_next < s->queue_len))) {
        if (!s->shutdown && s->queue_next < s->queue_len) {
            unit_ref u = s->queue[s->queue_next++];
            unit_report r;
            double t0 = clock_now();
            int rc = unit_run(s->ur, u.job, u.unit, scheduler_poll, s, &r);
            s->t_own += clock_now() - t0;
            if (rc == DISA_ECANCELED) continue;
            if (rc) {
                LOG(LOG_ERROR, "unit %d of %s: %s", u.unit, s->jobs->jobs[u.job].name, disa_errmsg());
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            record_or_stop(s, &r);
            commit(s);
        } else {
            // Wait for the next messages, but not blindly: the watchdog needs to run while
            // rank 0 has nothing of its own to compute.
            MPI_Status stt;
            int flag = 0, n = 0;
            for (;;) {
                MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &stt);
                if (!flag) break;
                handle(s, &stt);
                n++;
            }
            commit(s);
            if (n == 0) {
                watchdog(s);
                nanosleep(&(struct timespec){0, 2000000}, NULL);  // 2 ms: no busy core
            }
        }
        if (generator_stop_requested) begin_shutdown(s);
    }
    commit(s);
}

// Before any unit is handed out: how the units fill the ranks. With U units of about
// equal time on N ranks, the last of ceil(U/N) rounds holds U - N (ceil(U/N) - 1) units
// and the rest of the ranks wait for it: busy U / (N ceil(U/N)) of the run at best
// (docs/scaling.md). Fewer units than ranks leaves ranks without work at all.
static void warn_rounds(const scheduler *s) {
    int U = s->queue_len, N = s->size;
    if (U == 0) return;
    int rounds = (U + N - 1) / N;
    double best = (double)U / ((double)N * rounds);
    if (U < N) {
        LOG(LOG_WARN, "only %d unit%s for %d ranks: %d rank%s will get no unit and the run uses at most %.0f%% of "
            "them. Run on at most %d rank%s, or choose a smaller eval_bsz (a different run: its folder and identity "
            "change, and so may the last bits of its images)", U, U == 1 ? "" : "s", N, N - U, N - U == 1 ? "" : "s",
            100 * best, U, U == 1 ? "" : "s");
    } else if (!s->o->quiet) {
        LOG(LOG_INFO, "%d units on %d ranks: %d rounds, the last with %d units; with equal unit times the ranks are busy "
            "at most %.1f%% of the run", U, N, rounds, U - N * (rounds - 1), 100 * best);
    }
}

// The scheduler's part of the run's statistics (summary.h).
static void run_stats_of(run_stats *rs, const scheduler *s) {
    memset(rs, 0, sizeof *rs);
    run_stats_occupancy(rs, s->reports, s->n_reports, s->size, s->t_serve);
    double wall = clock_now() - s->prog.t_start - s->t_serve;
    rs->messages = (double)s->messages;
    rs->messages_per_s = wall > 0 ? s->messages / wall : 0;
    rs->rank0_answer = wall > 0 ? s->t_answer / wall : 0;
    rs->rank0_units = wall > 0 ? s->t_own / wall : 0;
    rs->ledger_lines = (double)s->ledger_lines;
    rs->ledger_syncs = (double)s->ledger_syncs;
    rs->ledger_s = s->t_ledger;
    uint64_t hwm, pss;
    unit_memory_kb(&hwm, &pss);
    rs->rank0_rss_mib = hwm / 1024.0;
}

int scheduler_run(unit_runner *ur, int size, const generator_opts *o, int setup_failed, const machine_sig *sigs,
                  int *status) {
    const job_list *jobs = ur->jobs;
    scheduler s;
    int rc = scheduler_init(&s, ur, size, o, sigs);
    if (!rc && !setup_failed) rc = plan(&s);
    // Every rank learns whether setup worked before any work starts (HPL's pattern): 1 to
    // go on, else minus the exit status rank 0 will return, so all ranks return the same.
    int go = !rc && !setup_failed ? 1 : -(rc ? disa_exit_status(rc) : 1);
    lazy_bcast(&go, 1, MPI_INT);
    if (go != 1) {
        if (rc) LOG(LOG_ERROR, "%s", disa_errmsg());
        if (rc) *status = disa_exit_status(rc);
        goto out;
    }
    char blas[512];
    LOG(LOG_INFO, "%d jobs, %d units (%lld images) to do on %d ranks; %s", jobs->n, s.queue_len,
        (long long)s.prog.total, size, cpu_blas_describe(blas, sizeof blas));
    warn_rounds(&s);
    serve(&s);
    double wall = clock_now() - s.prog.t_start;
    progress_report(&s.prog, 1);
    run_stats rs;
    run_stats_of(&rs, &s);
    int complete;
    double t_sum = clock_now();
    if (summary_run(&complete, ur, s.ledgers, s.prov, s.reports, s.n_reports, size, &rs, o->quiet, s.fatal) != 0) s.fatal = 1;
    LOG(LOG_INFO, "scheduler: %.0f messages (%.1f/s), rank 0 answering %.2f%% of %.1f s and in its own units %.1f%%; "
        "ledger %.0f lines, %.0f fsyncs, %.3f s; ranks busy %.1f%%, idle at start %.1f%%, between units %.1f%%, in "
        "the tail %.1f%%; first unit after %.3f s (median, max %.3f s); rank 0 peak RSS %.0f MiB; summary %.2f s",
        rs.messages, rs.messages_per_s, 100 * rs.rank0_answer, rs.wall, 100 * rs.rank0_units, rs.ledger_lines,
        rs.ledger_syncs, rs.ledger_s, 100 * rs.busy, 100 * rs.idle_start, 100 * rs.idle_steady, 100 * rs.idle_tail,
        rs.first_unit_p50, rs.first_unit_max, rs.rank0_rss_mib, clock_now() - t_sum);
    if (s.fatal) {
        *status = 1;
    } else if (!complete) {
        LOG(LOG_WARN, "stopped%s with %lld of %lld images of this run done; the run is resumable: run the same "
            "command again", generator_stop_requested ? " by signal" : "", (long long)s.prog.done, (long long)s.prog.total);
        *status = 0;
        rc = DISA_ECANCELED;
    } else {
        LOG(LOG_INFO, "done: %lld images in %.1f s", (long long)s.prog.done, wall);
    }
out:
    scheduler_free(&s);
    return rc;
}
