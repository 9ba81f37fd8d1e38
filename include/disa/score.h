// score.h: the metrics of a finished job, merged from its feature shards (folder.h) in
// index order, so a resumed run gives the numbers of an uninterrupted one (DESIGN §9).
#ifndef DISA_SCORE_H
#define DISA_SCORE_H
#include <stdint.h>

#include "disa/job.h"
#include "disa/metrics.h"

typedef struct job_metrics {
    int have, have_fid, have_prc, have_acc;
    int64_t n;
    double fid, fid_sqrtm, is_mean, is_std, is_adm, precision, recall, accuracy, seconds;
} job_metrics;

// FID (both forms), IS (torch-fidelity and ADM), precision/recall when the reference
// holds features, and class accuracy when the feature net is a classifier over the
// model's class_num classes; statistics in float64. f == NULL (no feature net): *m is
// zeroed and nothing is read. Errors (a missing or damaged shard, the reference) name
// the file.
int score_job(job_metrics *m, const job *j, const featnet *f, int class_num);

#endif
