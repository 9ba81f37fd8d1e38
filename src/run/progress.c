// progress.c: rank 0's progress bar and lines (include/disa/progress.h).
#include "disa/progress.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int progress_init(progress *p, int ranks, int bar, double every, int quiet) {
    memset(p, 0, sizeof *p);
    p->t_start = p->last = clock_now();
    p->bar = bar;
    p->every = every;
    p->quiet = quiet;
    p->ranks = ranks;
    p->rank_images = calloc((size_t)ranks, sizeof(int));
    return p->rank_images ? 0 : disa_err(DISA_ENOMEM, "out of memory");
}

void progress_free(progress *p) {
    free(p->rank_images);
    p->rank_images = NULL;
}

void progress_add(progress *p, int rank, int images) {
    p->done += images;
    p->rank_images[rank] += images;
    progress_report(p, 0);
}

void progress_report(progress *p, int force) {
    double t = clock_now();
    // A bar redraws at most 4 times a second; plain lines come every `every` s.
    double every = p->bar ? 0.25 : p->every;
    if (p->quiet || (!force && t - p->last < every)) return;
    p->last = t;
    double el = t - p->t_start, rate = el > 0 ? p->done / el : 0;
    int64_t left = p->total - p->done;
    double eta = rate > 0 ? left / rate : 0;
    if (p->bar) {
        char bar[33];
        int fill = p->total > 0 ? (int)(32 * p->done / p->total) : 32;
        for (int k = 0; k < 32; k++) bar[k] = k < fill ? '#' : '.';
        bar[32] = '\0';
        fprintf(stderr, "\r[%s] %lld/%lld images  %.2f img/s  ETA %02d:%02d:%02d ", bar, (long long)p->done,
                (long long)p->total, rate, (int)(eta / 3600), (int)(eta / 60) % 60, (int)eta % 60);
        for (int r = 0; r < p->ranks && r < 8; r++)
            fprintf(stderr, " r%d %.2f", r, el > 0 ? p->rank_images[r] / el : 0.0);
        fprintf(stderr, force ? "\n" : "   ");
        fflush(stderr);
        return;
    }
    char per[256] = "";
    size_t used = 0;
    for (int r = 0; r < p->ranks && used < sizeof per; r++)
        used += (size_t)snprintf(per + used, sizeof per - used, "%sr%d %.2f", r ? " " : "", r,
                                 el > 0 ? p->rank_images[r] / el : 0.0);
    LOG(LOG_INFO, "progress %lld/%lld images, %.3f images/s, ETA %.0f s, per rank images/s: %s", (long long)p->done,
        (long long)p->total, rate, eta, per);
}
