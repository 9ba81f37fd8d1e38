// summary.h: what a run reports when it ends: per job <output_dir>/summary.json and one
// row of the table rank 0 prints, and for several jobs (a sweep) the comparison table.
//
// The timings come from the unit reports of this invocation (a resumed run times only
// the units it computed); images_done and the images of each machine signature
// (provenance.h) count every unit the ledger holds.
#ifndef DISA_SUMMARY_H
#define DISA_SUMMARY_H

#include "disa/job.h"
#include "disa/ledger.h"
#include "disa/provenance.h"
#include "disa/score.h"
#include "disa/unit.h"

// Where a unit's seconds went (unit_report); summary.json names them phases_s.*.
typedef enum {
    PHASE_TRANSFORMER, PHASE_HEAD, PHASE_DECODE, PHASE_FEATURES, PHASE_IO, PHASE_IDLE, PHASE_OTHER, PHASE_COUNT
} phase;
const char *phase_name(phase p);  // "transformer", "diffusion_head", "decode", ...

// One row of the comparison table a sweep ends with.
typedef struct job_row {
    double s_img, img_s, steps, flops;  // compute s/image, images/s, NFE/token, model FLOPs/image
    int have;                           // s_img was measured (some unit of the job ran)
} job_row;

// What rank 0 measured of the whole invocation (every job): summary.json "scheduler".
// Shares are of ranks x wall; wall runs from the first unit handed out to the last
// report. A rank's units are [t_done - t_total, t_done] on rank 0's clock: its idle
// time before the first is "start", between units "steady", after the last (or all
// of it, for a rank that got no unit) "tail".
typedef struct run_stats {
    int ranks;
    double wall;
    double busy, idle_start, idle_steady, idle_tail;
    double first_unit_p50, first_unit_max;  // seconds until a rank's first unit started
    double messages, messages_per_s;        // handled by rank 0
    double rank0_answer;   // share of the wall rank 0 spent answering (messages, ledger)
    double rank0_units;    // share of the wall in its own units (answers inside included)
    double ledger_lines, ledger_syncs, ledger_s;  // lines, fsyncs, seconds writing both
    double rank0_rss_mib;  // peak resident set of rank 0 before the summary
} run_stats;

// The occupancy fields of rs (ranks, wall, busy, idle_*, first_unit_*) from the reports
// of this invocation, t_done relative to the same origin as t0, the time the first unit
// was handed out. The other fields are left alone.
void run_stats_occupancy(run_stats *rs, const unit_report *reports, int n_reports, int ranks, double t0);

// The header line of the per-job table (stdout).
void summary_print_header(void);
// Job jb's summary.json (written atomically) from the reports[n_reports] of this run
// that belong to job index j, the ledger l, the folder's signatures pv and the metrics
// mt; one table row on stdout, and a line per machine signature that made images, unless
// quiet; a warning (logged) when the ledger's units were made with different kernels; rs
// (may be NULL) becomes its "scheduler" member. Fills row (all but row->flops). DISA_EIO
// or DISA_ENOMEM naming the file.
int summary_job(job_row *row, const job *jb, int j, const unit_report *reports, int n_reports, const ledger *l,
                const provenance *pv, const job_metrics *mt, int world_size, const run_stats *rs, int quiet);
// A sweep's jobs side by side, speedups against the first (stdout).
void summary_print_comparison(const job_list *jobs, const job_metrics *mt, const job_row *row);

// What rank 0 reports when the units are done: for every job its metrics (a complete
// job only, since they cover all its images; none after a fatal error or a failed
// job's metrics), summary.json and table row (prov[j]: job j's machine signatures), and
// for several jobs the comparison with the FLOP model's speedups. *complete: every
// job's ledger holds all its units.
// Returns 0, or DISA_EIO when some job's metrics failed (logged, naming the job).
int summary_run(int *complete, const unit_runner *ur, const ledger *ledgers, const provenance *prov,
                const unit_report *reports, int n_reports, int world_size, const run_stats *rs, int quiet, int fatal);

#endif
