// provenance.h: which node, CPU and kernels made each unit of a run folder.
//
// A machine signature is what one rank ran a job on: host, CPU model, BLAS library and
// core, the precision of the prepared model, oneDNN's ISA when it ran in bf16,
// and the BLAS threads. Rank 0 gathers every rank's signature of every job at the start
// (src/mpi); a job's folder keeps the table of the distinct signatures it has seen in
// run.json ("signatures"; indices stay valid across resumes, new ones are appended) and
// every ledger line names the signature of the rank that made the unit (" sig S",
// ledger.h). The summary counts the images of each signature over the whole ledger.
//
// What changes the bits of an image (the "kernels"): the BLAS library version, its core
// (OpenBLAS picks its kernels by core), the precision, oneDNN's ISA in bf16, and the
// thread count where the kernels round differently per thread count. OpenBLAS 0.3.21's
// Haswell and Zen sgemm do (measured here on MAR's Linear shapes); its SkylakeX sgemm,
// which Cooperlake shares, gave the same bits at 1 and 2 threads on every shape tried,
// so threads do not count there in fp32. bf16 counts threads: oneDNN may split a
// matmul's reduction between them. Host and CPU model do not change the bits (the same
// core on two CPU models runs the same kernels).
//
// Hardware counts the CPU model besides the kernels: what require_uniform_hardware
// demands to be equal between the ranks, and between the ranks now and the units the
// ledger already holds.
#ifndef DISA_PROVENANCE_H
#define DISA_PROVENANCE_H
#include <stdint.h>

#include "disa/job.h"
#include "disa/ledger.h"

struct cJSON;

// Fixed-size and free of pointers: ranks send it to rank 0 as bytes.
typedef struct machine_sig {
    char host[64];       // gethostname()
    char cpu[96];        // /proc/cpuinfo "model name"
    char blas[32];       // blas_version(): "OpenBLAS 0.3.21"
    char blas_core[32];  // blas_corename(): "SkylakeX", "Haswell", ...
    char precision[8];   // of the prepared model: "fp32" or "bf16"
    char bf16_isa[32];   // bf16_isa() in bf16, "none" in fp32
    int32_t threads;     // BLAS threads of the rank
    int32_t unused;      // zero: the size stays a multiple of 8
} machine_sig;

// This process's signature for a job of `precision` (PRECISION_FP32 / PRECISION_BF16); in bf16
// after bf16_available() succeeded, so the ISA is known.
void machine_sig_local(machine_sig *s, int precision);
int machine_sig_equal(const machine_sig *a, const machine_sig *b);
// Non-zero when a and b run different kernels (above); `what` (may be NULL) gets the
// differing fields, a's value first: "OpenBLAS core Haswell vs SkylakeX; threads 1 vs 2".
int machine_sig_kernels_differ(const machine_sig *a, const machine_sig *b, char *what, int n);
// The same, counting the CPU model too.
int machine_sig_hardware_differ(const machine_sig *a, const machine_sig *b, char *what, int n);
// The kernels in short: "Haswell/fp32/1 thread", "SkylakeX/fp32" (threads do not count),
// "SkylakeX/bf16 avx512_core_bf16/2 threads"; with_blas prefixes the BLAS version.
const char *machine_sig_kernels(const machine_sig *s, int with_blas, char *buf, int n);
// All of it: "vm, AMD EPYC, OpenBLAS 0.3.21 Haswell, fp32, 1 thread".
const char *machine_sig_str(const machine_sig *s, char *buf, int n);

// The signatures of one job's folder.
typedef struct provenance {
    machine_sig *sig;  // [n] the table: indices as in run.json and the ledger
    int n, cap;
    int *rank_sig;     // [world_size] table index of each rank's signature in this run
    int world_size;
} provenance;

void provenance_init(provenance *p);
void provenance_free(provenance *p);
// Index of s in the table, appended when new; DISA_ENOMEM.
int provenance_add(provenance *p, const machine_sig *s);
// The table from run.json's "signatures" array (`path` names the file in messages).
// DISA_EINVAL naming the entry and field when it is not a table of signatures.
int provenance_from_json(provenance *p, const struct cJSON *arr, const char *path);
// "signatures" (the table) and "rank_signatures" (each rank's index) into object o.
int provenance_to_json(struct cJSON *o, const provenance *p);
// One signature's fields as members of o (strings, threads as a number).
void machine_sig_to_json(struct cJSON *o, const machine_sig *s);

// The ranks of this run, ranks[world_size] (one job's column of the gathered
// signatures): each added to the table, rank_sig set. Logs the signatures that are new
// to the folder. DISA_ENOMEM.
int provenance_set_ranks(provenance *p, const machine_sig *ranks, int world_size, const char *job_name);

// One info line when the ranks of this run run different kernels, or kernels other than
// those of units ledger l already holds: their images will not be bitwise reproducible
// across them (the summary counts them when the run ends).
void provenance_log_kernels(const provenance *p, const ledger *l, const char *name);

// require_uniform_hardware for job `name`: the ranks' hardware must be equal, and equal
// to that of every unit ledger l holds (l may be NULL: a fresh folder; p's table is
// run.json's as found). DISA_EINVAL naming the ranks or units and what differs. Units
// recorded without a signature cannot be checked: a warning says how many.
int provenance_check_uniform(const provenance *p, const machine_sig *ranks, int world_size, const ledger *l,
                             const char *name);

// Images of job jb per signature of p's table over the units ledger l holds: images[p->n]
// (caller's), *unknown: images of units without a (valid) signature.
void provenance_count(const provenance *p, const ledger *l, const job *jb, int64_t *images, int64_t *unknown);
// When the units l holds were made with more than one set of kernels: 1, and the
// warning in buf: "images 0-12,799 on SkylakeX/fp32, 12,800-49,999 on Haswell/fp32/2
// threads: not bitwise reproducible across them". Else 0 and buf "".
int provenance_mixed(const provenance *p, const ledger *l, const job *jb, char *buf, int n);

#endif
