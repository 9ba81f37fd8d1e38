// folder.h: the output folder of a job and what a run leaves in it.
//
//   NNNNN.png                   the images (png_write_u8 writes NNNNN.png.tmp.PID first)
//   features/NNNNNN.safetensors the feature shard of each unit (written as .tmp first)
//   manifest                    the resume ledger (ledger.h)
//   run.json, summary.json      the run record (record.h) and the summary (summary.h)
//
// Preparing a folder for a run refuses one holding another configuration (unless
// restarting), writes run.json, removes the temporaries a killed process left, opens
// the ledger and verifies every unit it lists, so a unit counts as done only when its
// files are whole.
#ifndef DISA_FOLDER_H
#define DISA_FOLDER_H
#include <stddef.h>

#include "disa/job.h"
#include "disa/ledger.h"

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

// Prepare job j's folder (see above) for a world of world_size ranks; `restart`
// removes a previous run's files first. On success *l is the open ledger with the
// verified units marked done (close with ledger_close). Errors: DISA_EINVAL (another
// configuration; the message says how to proceed), DISA_EIO, DISA_EFORMAT, DISA_ENOMEM.
int folder_prepare(ledger *l, const job *j, int world_size, int restart, const folder_expect *e);

#endif
