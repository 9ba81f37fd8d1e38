// progress.h: rank 0's progress report of a run: images done of the total, images/s,
// ETA and per-rank rates, as a live bar on stderr or as log lines.
#ifndef DISA_PROGRESS_H
#define DISA_PROGRESS_H
#include <stdint.h>

typedef struct progress {
    double t_start, last;  // clock_now() at the start and at the last report
    double every;          // seconds between plain lines
    int bar, quiet;        // bar: redraw a bar (at most 4 times a second); quiet: nothing
    int64_t done, total;   // images
    int ranks;
    int *rank_images;      // [ranks] images each rank finished
} progress;

// DISA_ENOMEM; progress_free is safe either way.
int progress_init(progress *p, int ranks, int bar, double every, int quiet);
void progress_free(progress *p);
// Count `images` finished by `rank` and report when the last report is old enough.
void progress_add(progress *p, int rank, int images);
// Report now (force, ends the bar's line) or when due.
void progress_report(progress *p, int force);

#endif
