// job.h: job specs (jobs/*.json), flag overrides, sweeps, and the image plan.
//
// A job file names the model files, the sampling settings under the flag names of the
// model's family (family.h; MAR: main_mar.py's), the output folder and optional variants
// (a sweep run by one command into sibling folders). Parsing validates everything before anything is written; each
// problem gets one message naming the file, the field and the value.
#ifndef DISA_JOB_H
#define DISA_JOB_H
#include <stdint.h>

#include "disa/family.h"
#include "disa/simulate.h"

#define JOB_MAX_VARIANTS 32
#define JOB_MAX_IMAGES 10000000
// Images per work unit at most: the unit pipeline keeps per-image arrays of this size.
#define JOB_MAX_EVAL_BSZ 4096
// A job file holds settings and at most a label list: its size is checked before it is
// read, and no array in it may be longer than JOB_MAX_LABELS (counted before parsing,
// include/disa/json.h), which bounds the parser's memory at ~130 MB. Longer runs use
// the official plan ("labels": "official").
#define JOB_MAX_FILE_BYTES (8u << 20)
#define JOB_MAX_LABELS 2000000
#define JOB_PATH_MAX 1024

typedef struct job {
    char file[JOB_PATH_MAX];       // the job file it came from
    char name[128];                // job name, "/variant" appended for sweeps
    char model[JOB_PATH_MAX];      // MAR safetensors
    char vae[JOB_PATH_MAX];        // KL-16 decoder safetensors, "" for patch tokenizers
    char features[JOB_PATH_MAX];   // feature network for metrics, "" for none
    char reference[JOB_PATH_MAX];  // reference statistics npz, "" for none
    char output_dir[JOB_PATH_MAX]; // where images, ledger and summary go
    int num_images;
    int eval_bsz;                  // images per work unit
    uint64_t seed;
    int *labels;                   // [num_images], owned; NULL = official plan
    int n_labels;
    int png;                       // write PNGs (false: features only)
    int require_uniform_hardware;  // refuse ranks of differing hardware, or of hardware other
                                   // than the folder's recorded units (provenance.h)
    int family;                    // the model's family: family_at(family)
    int precision;                 // the shared sampling key: a precision_kind (bf16.h); disa-gen resolves auto
    family_params params;          // the family's own sampling settings
    sim_spec sim;                  // disa-gen --simulate (simulate.h); sim.on = 0 for a real run
} job;

typedef struct job_list {
    job *jobs;
    int n;
} job_list;

// One --flag value pair given on the command line (flag without dashes).
typedef struct job_override {
    const char *flag, *value;
} job_override;

// Parse `path`, apply overrides (they win over the file and over every variant), expand
// variants. Appends to `out`. Checks that model/vae files exist and are readable.
// Returns 0, or DISA_EINVAL/ERANGE/ENOTFOUND/EFORMAT with "PATH: 'field' ..." messages.
int job_load(job_list *out, const char *path, const job_override *ov, int n_ov);
void job_list_free(job_list *l);

// Keep only the variants named `variant` (a SLURM array task runs one of them); the
// others are freed. DISA_ENOTFOUND listing the variant names when none matches.
int job_list_keep_variant(job_list *l, const char *variant);
// Two jobs writing one folder would overwrite each other's images and ledger:
// DISA_EINVAL naming both.
int job_list_check_outputs(const job_list *l);

// True when `flag` is one disa-gen accepts as a job override.
int job_is_override_flag(const char *flag);

// The family of the job's model, and its sampling settings as text ("num_iter=64 ...",
// the recipe in PNGs, run.json and the identity).
const family *job_family(const job *j);
const char *job_sampling_str(const job *j, char *buf, int n);

// Class of image i: the explicit list, or MAR's official order floor(i / (N / classes)).
int job_label(const job *j, int i, int class_num);
// Number of work units: ceil(num_images / eval_bsz). Unit u holds images
// [u * eval_bsz, min((u + 1) * eval_bsz, num_images)).
int job_units(const job *j);
int job_unit_first(const job *j, int u);
int job_unit_count(const job *j, int u);

// Canonical "key=value\n" lines of everything that determines the images (not the
// output folder, not the world size): stored in run.json and compared on resume. A
// simulated job (simulate.h) adds simulated=1.
// Writes at most n bytes into buf; model_hash/vae_hash are the files' digests.
int job_identity(const job *j, const char *model_hash, const char *vae_hash, char *buf, int n);

#endif
