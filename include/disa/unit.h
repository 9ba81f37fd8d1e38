// unit.h: the unit pipeline of a run: sample -> decode -> PNG -> features, one work unit
// (eval_bsz consecutive images of one job) at a time, on one process without MPI.
//
// A unit_runner holds what a rank needs to run units of any job of a run: the models,
// decoders and feature nets (opened once and shared between jobs naming the same
// file), a sampler per job made on first use, and buffers sized for the largest job.
#ifndef DISA_UNIT_H
#define DISA_UNIT_H
#include <stdint.h>

#include "disa/job.h"
#include "disa/mar.h"
#include "disa/metrics.h"
#include "disa/sampler.h"
#include "disa/vae.h"

// Fixed-size per-unit report, sent from the rank that ran the unit to rank 0.
typedef struct unit_report {
    int32_t job, unit, rank, count;
    double t_total, t_transformer, t_head, t_other, t_decode, t_io, t_features, t_idle;
    uint64_t flops_transformer, flops_head, flops_decode, head_row_steps, tokens;
    uint64_t rss_peak_kb, pss_kb;  // VmHWM and proportional set size of the rank after the unit
    double t_done;                 // set by rank 0: seconds since the run started when recorded
} unit_report;

typedef struct unit_runner {
    const job_list *jobs;
    int rank;
    mar_model *mar;            // [n jobs]; entries of jobs sharing a file point to the first
    int *mar_owner;            // [n jobs] index of the job that opened the model
    vae_model *vae;
    int *vae_owner;            // -1: the job has no decoder (pixel-space model)
    featnet *feat;             // [n jobs] feature networks, shared like the models
    int *feat_owner;           // -1: the job computes no features
    float *feat_buf, *logit_buf; // features and logits of one unit
    sampler *samplers;         // [n jobs], made on first use
    unsigned char *sampler_ready;
    float *tokens, *img;       // per-unit buffers, sized for the largest job
    uint8_t *pix;
    arena decode;
} unit_runner;

// Open every model, decoder and feature net the jobs name (each file once), check bf16
// support of this CPU where a job asks for it, and size the buffers. Rank 0 also checks
// each job's reference statistics, so a bad file stops the run before any sampling.
// Returns 0 or an error (message set); unit_runner_free is safe either way.
int unit_runner_init(unit_runner *u, const job_list *jobs, int rank);
void unit_runner_free(unit_runner *u);

// The model, decoder (NULL for pixel-space models) and feature net (NULL when the job
// computes no features) of job j.
const mar_model *unit_runner_model(const unit_runner *u, int j);
const vae_model *unit_runner_vae(const unit_runner *u, int j);
const featnet *unit_runner_featnet(const unit_runner *u, int j);
// Height, width and channels of job j's PNGs.
void unit_runner_geometry(const unit_runner *u, int j, int *H, int *W, int *C);

// Sample, decode and write the PNGs (and the feature shard, folder.h) of unit u of job j. `poll`
// is called from inside the sampling (after every transformer block and diffusion
// step); a non-zero return stops the unit with DISA_ECANCELED and nothing of it counts.
// Returns 0, DISA_ECANCELED, or an error (message set).
int unit_run(unit_runner *ur, int j, int u, mar_poll_fn poll, void *poll_ctx, unit_report *r);

#endif
