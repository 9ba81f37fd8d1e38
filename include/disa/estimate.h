// estimate.h: what a job will cost before it runs (disa-gen --estimate).
//
// The FLOP model gives the work per image of each phase exactly (family.h, decode.h);
// what it takes on a CPU is measured by a short calibration of the real pipeline on this
// machine: the job's sampler on its first unit (the same images the run makes), cut off
// after a time budget, then decoding, PNG writing (in a temporary folder beside the
// output folder, removed again) and features of two images. Each phase's FLOPs
// divided by its measured rate gives seconds per image here; the work is linear in the
// number of images, and the time is taken as inversely proportional to the cores (the
// measured rate per core times the cores), which holds for disa's rank-per-core layout
// up to the scheduling tail (docs/scaling.md) and the machine's memory bandwidth.
#ifndef DISA_ESTIMATE_H
#define DISA_ESTIMATE_H

#include "disa/unit.h"

typedef struct estimate {
    int precision;                    // PRECISION_FP32 / PRECISION_BF16: what the calibration ran
    int threads;                      // BLAS threads of the calibration (this machine's cores)
    double flops_sample;              // FLOP model per image: transformer + head
    double flops_decode, flops_feat;  // per image, as decoder_run and the feature net count them
    double gflops_sample, gflops_decode, gflops_feat;  // measured on this machine
    double s_sample, s_decode, s_feat;                  // seconds per image here, from the two above
    double s_io;                      // writing its PNG (atomically, as a run does), measured
    double s_image;                   // their sum
    double calib_seconds;             // wall time the calibration took
    int calib_complete;               // the sampler finished its unit within the budget
    double flops_measured;            // what the calibration's sampler counted (blas.h)
} estimate;

// Calibrate job j of ur (opened by unit_runner_init) at `precision` (FP32 or BF16; the
// job's model and decoder are prepared for it, shared ones too), spending about
// budget_s seconds in the sampler. Writes nothing to disk. 0, or an error (message set).
int estimate_job(estimate *e, unit_runner *ur, int j, int precision, double budget_s);

// One line per phase and a summary for `images` images on each of the `n_cores` core
// counts (the machine's own first), to stdout.
void estimate_print(const estimate *e, const job *jb, int64_t images, const int *cores, int n_cores);

#endif
