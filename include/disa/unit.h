// unit.h: the unit pipeline of a run: sample -> decode -> PNG -> features, one work unit
// (eval_bsz consecutive images of one job) at a time, on one process without MPI.
//
// A unit_runner holds what a rank needs to run units of any job of a run: the models,
// decoders and feature nets (opened once and shared between jobs naming the same
// file), a sampler per job made on first use, and buffers sized for the largest job. It reaches the models only through their family (family.h).
#ifndef DISA_UNIT_H
#define DISA_UNIT_H
#include <stdint.h>

#include "disa/decode.h"
#include "disa/family.h"
#include "disa/job.h"
#include "disa/metrics.h"
#include "disa/vae.h"

// Fixed-size per-unit report, sent from the rank that ran the unit to rank 0.
typedef struct unit_report {
    int32_t job, unit, rank, count;
    double t_total, t_transformer, t_head, t_other, t_decode, t_io, t_features, t_idle;
    uint64_t flops_transformer, flops_head, flops_decode, head_row_steps, tokens;
    uint64_t rss_peak_kb, pss_kb;  // VmHWM and proportional set size of the rank after the unit
    double t_done;                 // set by rank 0: seconds since the run started when recorded
} unit_report;

// What job j runs on: the models are shared with the jobs naming the same files.
typedef struct unit_job {
    const family *fam;
    void *model;               // the family's model; owned by the first job naming the file
    vae_model *vae;            // NULL for pixel-space models
    featnet *feat;             // NULL when the job computes no features
    family_info info;
    int owns_model, owns_vae, owns_feat;
    void *sampler;             // made on first use
    // A simulated job (simulate.h): the FLOP model per image, mean seconds per image and
    // the polls of a unit.
    sample_flops sim_flops;
    double sim_s_image;
    int sim_polls;
} unit_job;

typedef struct unit_runner {
    const job_list *jobs;
    int rank;
    unit_job *job;             // [jobs->n]
    float *tokens, *latent;    // per-unit buffers, sized for the largest job (one block,
                               // tokens the start of it)
    uint8_t *pix;
    float *feat_buf, *logit_buf; // features and logits of one unit
    decoder dec;               // sized for the largest job
} unit_runner;

// Open every model, decoder and feature net the jobs name (each file once), check bf16
// support of this CPU where a job asks for it, and size the buffers. For a simulated
// job only the shape of the feature net is read and nothing is sized for sampling. Rank 0 also checks
// each job's reference statistics, so a bad file stops the run before any sampling.
// Returns 0 or an error (message set); unit_runner_free is safe either way.
int unit_runner_init(unit_runner *u, const job_list *jobs, int rank);
void unit_runner_free(unit_runner *u);

// Peak resident set (VmHWM) and proportional set size (Pss) of this process in KiB.
void unit_memory_kb(uint64_t *hwm, uint64_t *pss);

// Height, width and channels of job j's PNGs.
void unit_runner_geometry(const unit_runner *u, int j, int *H, int *W, int *C);

// Sample, decode and write the PNGs (and the feature shard, folder.h) of unit u of job j.
// `poll` is called from inside the sampling (after every transformer block and head
// step); a non-zero return stops the unit with DISA_ECANCELED and nothing of it counts.
// A simulated job's unit is unit_simulate's instead.
// Returns 0, DISA_ECANCELED, or an error (message set).
int unit_run(unit_runner *ur, int j, int u, sample_poll_fn poll, void *poll_ctx, unit_report *r);

// The wait and the random feature shard that stand for unit u of a simulated job
// (simulate.h; fills the report's times and FLOP-model counts, r's other fields set by
// the caller). Same returns as unit_run.
int unit_simulate(unit_runner *ur, int j, int u, sample_poll_fn poll, void *poll_ctx, unit_report *r);
// The feature shard of unit u of job j (folder.h) from ur->feat_buf and ur->logit_buf
// (B rows each), written atomically. Errors name the file.
int unit_write_shard(unit_runner *ur, int j, int u, const int *labels, int B);

#endif
