// generator.h: the distributed generator behind disa-gen (src/mpi).
//
// Rank 0 plans every job (units = fixed index ranges of eval_bsz images), keeps the
// resume ledger and also generates (scheduler.c); the other ranks ask for units and report
// each finished one (worker.c). What a unit is and does needs no MPI (src/run).
#ifndef DISA_GENERATOR_H
#define DISA_GENERATOR_H
#include <stdint.h>

#include "disa/job.h"

typedef struct generator_opts {
    int threads;            // BLAS threads per rank; 0 = the documented default rule
    int restart;            // discard an existing run of another configuration
    double progress_every;  // seconds between progress lines when not on a terminal
    int bar;                // 1: a live progress bar on stderr (a terminal, or --progress bar)
    double unit_timeout;    // watchdog: > 0 seconds a worker holding a unit may stay silent;
                            // 0 = automatic (10x the slowest unit so far, at least 600 s); < 0 off
    int quiet;
} generator_opts;

// Rank 0 parses and validates (status 0, or the exit status of a bad command line); every
// rank learns the verdict, and when it is 0 rank 0's options, log level and jobs
// (HPL's pattern); a job's precision "auto" then becomes bf16 if every rank can run it,
// else fp32, and a job whose settings do not run at what it became makes the verdict 2
// (rank 0 prints the message). Collective; returns the verdict.
int generator_share(job_list *jobs, generator_opts *o, int status);

// Run every job of `jobs` (the same list on every rank). Collective over
// MPI_COMM_WORLD. Returns 0 when all images exist, DISA_ECANCELED after a graceful stop
// (signal; the run is resumable), another code on failure (message already logged).
int generator_run(const job_list *jobs, const generator_opts *o);

// Request a graceful stop (async-signal-safe).
void generator_request_stop(int sig);

#endif
