// folder.h: the output folder of a job and what a run leaves in it.
//
//   NNNNN.png                   the images (png_write_u8 writes NNNNN.png.tmp.PID first)
//   features/NNNNNN.safetensors the feature shard of each unit (written as .tmp first)
//   manifest                    the resume ledger (ledger.h)
//   run.json, summary.json      the run record (record.h) and the summary (summary.h)
//
// Preparing a folder for a run refuses one holding another configuration (unless
// restarting), and with require_uniform_hardware one whose units were made on other
// hardware than the ranks now or ranks that differ (provenance.h), writes run.json with
// the folder's machine signatures, removes the temporaries a killed process left, opens
// the ledger and verifies every unit it lists, so a unit counts as done only when its
// files are whole.
#ifndef DISA_FOLDER_H
#define DISA_FOLDER_H
#include <stddef.h>

#include "disa/job.h"
#include "disa/ledger.h"
#include "disa/provenance.h"

// mkdir -p. DISA_EIO naming the component that could not be made.
int folder_mkdir(const char *path);

// The feature shard of unit u: DIR/features/NNNNNN.safetensors ("feat" [B, D], "logits"
// [B, n_logits], "index" and "label" int64 [B]).
void folder_shard_path(char *buf, size_t n, const job *j, int u);

// What a finished unit's files must look like: PNGs of H x W x C, feature shards of
// feat_dim features per image (0: the job writes none).
typedef struct folder_expect {
    int H, W, C;
    int feat_dim;
} folder_expect;

// Whether job j's folder can take this run, without touching it: output_dir writable (or
// creatable), and holding no run of another configuration unless restarting. Every job of
// a run is checked before any folder is prepared, so a refused run leaves nothing behind.
// DISA_EINVAL naming 'output_dir' or the differing settings, DISA_EFORMAT, DISA_EIO.
int folder_check(const job *j, int restart);
// With j->require_uniform_hardware, whether the ranks of this run, whose signatures for
// job j are ranks[world_size], may run it, without touching the folder: their hardware
// must be equal, and unless restarting equal to that of every unit the folder's ledger
// holds (provenance.h). 0 without the option. DISA_EINVAL naming the ranks or units and
// what differs, DISA_EFORMAT, DISA_EIO, DISA_ENOMEM.
int folder_check_hardware(const job *j, const machine_sig *ranks, int world_size, int restart);

// Prepare job j's folder (see above) for a world of world_size ranks whose signatures
// for this job are ranks[world_size]; `restart` removes a previous run's files first. On
// success *l is the open ledger with the verified units marked done (close with
// ledger_close) and *pv the folder's signature table with each rank's index. Free pv
// with provenance_free whatever the result. Errors: DISA_EINVAL (another configuration,
// or hardware require_uniform_hardware refuses; the message says how to proceed; nothing
// written), DISA_EIO, DISA_EFORMAT, DISA_ENOMEM.
int folder_prepare(ledger *l, provenance *pv, const job *j, const machine_sig *ranks, int world_size, int restart,
                   const folder_expect *e);

#endif
