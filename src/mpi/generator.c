// generator.c: disa-gen's ranks: threads, models, then each its role
// (include/disa/generator.h).
//
// Roles (libcircle/HPL style): rank 0 runs the scheduler (scheduler.c), which also
// generates, and every other rank runs the worker loop (worker.c); their messages are
// in msg.h. Loading can fail on some ranks only (a missing file on one node, a CPU
// without bf16): every rank's result goes through an all-true reduction before rank 0
// prepares the folders, and rank 0's verdict is broadcast before any unit is handed out.
#include "disa/generator.h"
#include "lazy.h"
#include "roles.h"
#include "msg.h"

#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/log.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

volatile sig_atomic_t generator_stop_requested;

void generator_request_stop(int sig) { generator_stop_requested = sig ? sig : 1; }

// Rank 0's job list to every rank: structs, then each explicit label list.
static void bcast_jobs(job_list *jobs, int rank) {
    MPI_Bcast(&jobs->n, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank != 0) jobs->jobs = calloc((size_t)jobs->n, sizeof(job));
    MPI_Bcast(jobs->jobs, (int)(sizeof(job) * (size_t)jobs->n), MPI_BYTE, 0, MPI_COMM_WORLD);
    for (int j = 0; j < jobs->n; j++) {
        job *jb = &jobs->jobs[j];
        int has = jb->labels != NULL;
        MPI_Bcast(&has, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (!has) continue;
        if (rank != 0) jb->labels = malloc(sizeof(int) * (size_t)(jb->n_labels ? jb->n_labels : 1));
        MPI_Bcast(jb->labels, jb->n_labels, MPI_INT, 0, MPI_COMM_WORLD);
    }
}

// sampling.precision "auto": bf16 only when every rank can run it (the nodes of a cluster
// job may differ), so the images of one run never mix precisions; the jobs then carry
// the precision used, which run.json and the run identity record. A job whose settings
// do not run in bf16 is then refused (every rank decides alike): 0, or 2 after rank 0
// printed the message. A family that runs in fp32 only takes fp32 without asking the ranks.
static int resolve_auto_precision(job_list *jobs, int rank) {
    int any = 0;
    for (int j = 0; j < jobs->n; j++) {
        job *jb = &jobs->jobs[j];
        if (jb->precision != PRECISION_AUTO) continue;
        if (job_family(jb)->fp32_only) jb->precision = PRECISION_FP32;
        else any = 1;
    }
    if (!any) return 0;
    char why[512];
    int can = precision_resolve(PRECISION_AUTO, why, sizeof why) == PRECISION_BF16, all = 0;
    MPI_Allreduce(&can, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (can && !all) snprintf(why, sizeof why, "fp32 (another rank cannot run bf16; see its disa-info)");
    if (rank == 0 || !can) LOG(LOG_INFO, "--precision auto: %s", why);
    for (int j = 0; j < jobs->n; j++) {
        job *jb = &jobs->jobs[j];
        if (jb->precision != PRECISION_AUTO) continue;
        jb->precision = all ? PRECISION_BF16 : PRECISION_FP32;
        if (family_precision_check(job_family(jb), &jb->params, jb->precision, 1) != 0) {
            if (rank == 0) fprintf(stderr, "disa-gen: %s: %s\n", jb->name, disa_errmsg());
            return 2;
        }
    }
    return 0;
}

int generator_share(job_list *jobs, generator_opts *o, int status) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    lazy_bcast(&status, 1, MPI_INT);  // the other ranks wait while rank 0 reads the jobs
    if (status) return status;
    MPI_Bcast(o, sizeof *o, MPI_BYTE, 0, MPI_COMM_WORLD);
    log_level lv = log_get_level();
    MPI_Bcast(&lv, sizeof lv, MPI_BYTE, 0, MPI_COMM_WORLD);
    log_set_level(lv);
    bcast_jobs(jobs, rank);
    return resolve_auto_precision(jobs, rank);
}

// What opening the models cost every rank (seconds until all had them; the slowest
// rank's own opening; memory after it): with many ranks per node they share the page
// cache of the mmapped weights, and what is private to each rank is multiplied.
static void log_open_cost(double t_open, int rank, int size) {
    uint64_t hwm, pss;
    unit_memory_kb(&hwm, &pss);
    double mine[3] = {t_open, (double)hwm / 1024, (double)pss / 1024}, mx[3], sum[3];
    lazy_allreduce(mine, mx, 3, MPI_DOUBLE, MPI_MAX);
    lazy_allreduce(mine, sum, 3, MPI_DOUBLE, MPI_SUM);
    if (rank == 0)
        LOG(LOG_INFO, "models open on %d ranks: %.2f s (mean %.2f s per rank); RSS per rank max %.0f MiB, PSS max "
            "%.0f MiB, PSS of all ranks %.0f MiB", size, mx[0], sum[0] / size, mx[1], mx[2], sum[2]);
}

int generator_run(const job_list *jobs, const generator_opts *o) {
    int rank, size, status = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm node;
    int node_ranks;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &node_ranks);
    MPI_Comm_free(&node);
    int threads = o->threads > 0 ? o->threads : cpu_default_threads(node_ranks);
    blas_set_threads(threads);
    if (rank == 0) LOG(LOG_INFO, "%d ranks, %d on this node, %d BLAS threads per rank", size, node_ranks, threads);
    unit_runner ur;
    double t0 = clock_now();
    int rc = unit_runner_init(&ur, jobs, rank);
    if (rc) LOG(LOG_ERROR, "loading models: %s", disa_errmsg());
    // All ranks must have their models before any work: a rank that failed tells the rest,
    // and every rank exits with the worst status (2 when a file given was bad).
    int mine = disa_exit_status(rc), worst;
    lazy_allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX);
    log_open_cost(clock_now() - t0, rank, size);
    machine_sig *sigs = signatures_gather(jobs, rank, size);
    if (rank == 0) {
        rc = scheduler_run(&ur, size, o, worst != 0, sigs, &status);
        if (worst) status = worst;
        free(sigs);
    } else {
        int go;
        lazy_bcast(&go, 1, MPI_INT);  // while rank 0 prepares the folders
        if (go == 1) rc = worker_run(&ur);
        else status = worst > -go ? worst : -go;
    }
    unit_runner_free(&ur);
    if (status) return status == 2 ? DISA_EINVAL : DISA_EIO;
    return rc == DISA_ECANCELED ? DISA_ECANCELED : rc;
}
