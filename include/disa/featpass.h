// featpass.h: one pass of a feature net over an image source (imgsrc.h): the feature
// statistics, both Inception Score accumulators and, when asked, every feature and
// logit, for reference files and FID of image sets (disa-stats).
//
// A pass can be shared among processes: the images go in blocks of the feature net's
// batch, block k to share k % shares; each share fills its part (kept features of the
// other shares' images stay zero), and the parts add up element by element
// (featpass_spans, src/mpi/reduce.c) to the pass of one process, up to the order of
// the float64 additions.
#ifndef DISA_FEATPASS_H
#define DISA_FEATPASS_H
#include <stdint.h>

#include "disa/metrics.h"

typedef struct featpass {
    int64_t n;              // images of the pass (the source, or its first `limit`)
    fstats st;
    isc_acc is_tf, is_adm;  // torch-fidelity and ADM layouts
    int have_is;            // n >= splits
    float *feat, *logits;   // [n, feat_dim], [n, n_logits] when kept, else NULL
    double seconds;         // wall time of this share
} featpass;

typedef struct featpass_opts {
    int64_t limit;          // at most this many images (0 = all)
    int keep;               // keep every feature and logit (reference files, precision/recall)
    int splits, adm_split;  // IS: torch-fidelity's split count, ADM's split size
    int share, shares;      // this process's share of the blocks (0 of 1: all)
    int verbose;            // "N / M images" lines on stderr every 1000 images
} featpass_opts;

// Run share o->share of the pass over `path`. Errors name the source and the image.
// featpass_free is safe after a failure.
int featpass_run(featpass *p, featnet *f, const char *path, const featpass_opts *o);
void featpass_free(featpass *p);

// Every sum of the pass (statistics, IS accumulators, kept features and logits) as
// spans to add across the shares; returns how many (at most FEATPASS_SPANS).
#define FEATPASS_SPANS (FSTATS_SPANS + 2 * ISC_ACC_SPANS + 2)
int featpass_spans(featpass *p, const featnet *f, metric_span *out);

#endif
