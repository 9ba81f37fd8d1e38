// record.h: the run record of one output folder, <dir>/run.json.
//
// run.json holds the resolved settings, the model digests, the build, the BLAS core, the
// world size, the folder's table of machine signatures and each rank's entry in it
// (provenance.h), and an "identity": the key=value lines of everything that determines
// the images (job_identity). A folder holding a run of another identity is refused, so
// a resumed run never mixes images of two configurations.
#ifndef DISA_RECORD_H
#define DISA_RECORD_H

#include "disa/job.h"
#include "disa/provenance.h"

// 16 hex digits of a 64-bit digest of the whole file (fast, not cryptographic).
int file_digest(const char *path, char out[17]);

// run.json: write <dir>/run.json atomically from an identity text ("key=value\n" lines)
// and extra JSON fields (an object's members without braces, may be "").
int runinfo_write(const char *dir, const char *identity, const char *extra_json);
// Compare the identity stored in <dir>/run.json with `identity`. Returns 0 when equal or
// when no run.json exists (*exists = 0); DISA_EINVAL listing the differing keys
// ("cfg: 2.9 in the folder, 3 now", keys of only one side too) otherwise, or saying
// that a simulation (simulated=1, simulate.h) and a real run do not share a folder.
int runinfo_check(const char *dir, const char *identity, int *exists);
// Append the machine signatures <dir>/run.json lists ("signatures") to p's table: none when
// the file or the member is absent (a new folder, or one written before signatures were
// recorded). DISA_EINVAL / DISA_EFORMAT naming the file when they cannot be read.
int runinfo_signatures(const char *dir, provenance *p);

// The identity of job j (job_identity with the digests of its model and decoder files).
int record_identity(const job *j, char *buf, int n);
// Write <output_dir>/run.json for job j: identity plus job, files, sampling, world
// size (pv->world_size), BLAS core, the signatures of pv, build id, the time written (UTC)
// and, for a simulation, "simulated".
int record_write(const job *j, const char *identity, const provenance *pv);

#endif
