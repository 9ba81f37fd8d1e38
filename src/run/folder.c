// folder.c: a job's output folder: creation, stale temporaries, --restart, and the
// setup that makes a folder ready to resume (include/disa/folder.h).
#include "disa/folder.h"
#include "disa/err.h"
#include "disa/path.h"
#include "disa/image.h"
#include "disa/log.h"
#include "disa/record.h"
#include "disa/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int folder_mkdir(const char *path) {
    char tmp[JOB_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return disa_err(DISA_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return disa_err(DISA_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    return 0;
}

void folder_shard_path(char *buf, size_t n, const job *jb, int u) {
    snprintf(buf, n, "%s/features/%06d.safetensors", jb->output_dir, u);
}

static int is_our_file(const char *name) {
    size_t n = strlen(name), d = 0;
    while (d < n && name[d] >= '0' && name[d] <= '9') d++;
    if (d >= 5 && strcmp(name + d, ".png") == 0) return 1;
    if (d >= 5 && strncmp(name + d, ".png.tmp", 8) == 0) return 1;  // also NNNNN.png.tmp.PID
    return strcmp(name, "manifest") == 0 || strcmp(name, "run.json") == 0 || strcmp(name, "summary.json") == 0 ||
           strcmp(name, "run.json.tmp") == 0 || strcmp(name, "summary.json.tmp") == 0;
}

// A temporary file a killed rank left behind: NNNNN.png.tmp.PID (png_write_u8),
// NNNNNN.safetensors.tmp (feature shards), run.json.tmp, summary.json.tmp,
// manifest.tmp. Only ever renamed into place by the process that made it, so once the
// folder is set up for a new run (before any unit is handed out) none can still be in
// use (found by tests/e2e/faults.sh: they piled up over kill -9 / resume cycles).
static int is_stale_tmp(const char *name) {
    size_t n = strlen(name), d = 0;
    while (d < n && name[d] >= '0' && name[d] <= '9') d++;
    if (d >= 5 && (strncmp(name + d, ".png.tmp", 8) == 0 || strcmp(name + d, ".safetensors.tmp") == 0)) return 1;
    return strcmp(name, "run.json.tmp") == 0 || strcmp(name, "summary.json.tmp") == 0 ||
           strcmp(name, "manifest.tmp") == 0;
}

// Removes the files of `dir` that `match` names; returns how many, or -1 when the folder
// cannot be listed (errno tells why; a missing folder has nothing to remove).
static int remove_matching(const char *dir, int (*match)(const char *name)) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (!match(e->d_name)) continue;
        char p[JOB_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) == 0) n++;
    }
    closedir(d);
    return n;
}

static int remove_stale_tmp(const char *dir) {
    int n = remove_matching(dir, is_stale_tmp);
    return n > 0 ? n : 0;
}

static int clear_run(const char *dir) {
    int n = remove_matching(dir, is_our_file);
    if (n < 0) return errno == ENOENT ? 0 : disa_err(DISA_EIO, "%s: cannot list: %s", dir, strerror(errno));
    LOG(LOG_INFO, "%s: --restart removed %d files of the previous run", dir, n);
    return 0;
}

// Feature shards of the units the ledger lists: one that does not open or has the wrong
// shape is forgotten, so the unit is computed again.
static void verify_shards(ledger *l, const job *jb, int feat_dim) {
    for (int u = 0; u < job_units(jb); u++) {
        if (!l->done[u]) continue;
        char path[JOB_PATH_MAX + 64];
        folder_shard_path(path, sizeof path, jb, u);
        st_file st;
        const float *p;
        int64_t want[2] = {job_unit_count(jb, u), feat_dim};
        int bad = st_open(&st, path) != 0;
        if (!bad) {
            bad = st_get_f32(&st, "feat", 2, want, &p) != 0;
            st_close(&st);
        }
        if (bad) {
            LOG(LOG_WARN, "%s: unit %d is in the ledger but its feature shard is unusable (%s); recomputing",
                jb->name, u, disa_errmsg());
            ledger_forget(l, u);
        }
    }
}

// Every PNG of the units the ledger lists is decoded; a unit with one that does not is
// forgotten. Returns how many units were forgotten.
static int verify_pngs(ledger *l, const job *jb, int H, int W, int C) {
    int bad = 0;
    for (int u = 0; u < job_units(jb); u++) {
        if (!l->done[u]) continue;
        for (int i = job_unit_first(jb, u); i < job_unit_first(jb, u) + job_unit_count(jb, u); i++) {
            char path[JOB_PATH_MAX + 32];
            snprintf(path, sizeof path, "%s/%05d.png", jb->output_dir, i);
            if (png_verify(path, W, H, C) != 0) {
                LOG(LOG_WARN, "%s: unit %d is in the ledger but %s; recomputing the unit", jb->name, u, disa_errmsg());
                ledger_forget(l, u);
                bad++;
                break;
            }
        }
    }
    return bad;
}

int folder_check(const job *jb, int restart) {
    char ident[2048], what[256];
    int rc, exists;
    snprintf(what, sizeof what, "%s: 'output_dir'", jb->name);
    if ((rc = path_check_writable(jb->output_dir, 1, what)) != 0) return rc;
    if ((rc = record_identity(jb, ident, sizeof ident)) != 0) return rc;
    rc = runinfo_check(jb->output_dir, ident, &exists);
    if (restart || rc || !exists) return restart ? 0 : rc;
    // The signature table a resume extends: a bad one refuses the run before any folder
    // of it is touched.
    provenance pv;
    provenance_init(&pv);
    rc = runinfo_signatures(jb->output_dir, &pv);
    provenance_free(&pv);
    return rc;
}

// The ranks against each other and, on a resume, against the signatures of the units the
// ledger holds: run.json's table and the manifest, both only read.
int folder_check_hardware(const job *jb, const machine_sig *ranks, int world_size, int restart) {
    if (!jb->require_uniform_hardware) return 0;
    provenance pv;
    ledger peek;
    provenance_init(&pv);
    int rc = restart ? 0 : runinfo_signatures(jb->output_dir, &pv);
    if (!rc && !restart) rc = ledger_read(&peek, jb->output_dir, job_units(jb));
    if (!rc) {
        rc = provenance_check_uniform(&pv, ranks, world_size, restart ? NULL : &peek, jb->name);
        if (!restart) ledger_close(&peek);
    }
    provenance_free(&pv);
    return rc;
}

int folder_prepare(ledger *l, provenance *pv, const job *jb, const machine_sig *ranks, int world_size, int restart,
                   const folder_expect *e) {
    char ident[2048];
    int rc;
    provenance_init(pv);
    if ((rc = folder_check(jb, restart)) != 0) return rc;
    if ((rc = folder_check_hardware(jb, ranks, world_size, restart)) != 0) return rc;
    if ((rc = record_identity(jb, ident, sizeof ident)) != 0) return rc;
    // A resume keeps the folder's signature table: the ledger's indices point into it.
    if (!restart && (rc = runinfo_signatures(jb->output_dir, pv)) != 0) return rc;
    if (restart && (rc = clear_run(jb->output_dir)) != 0) return rc;
    if ((rc = folder_mkdir(jb->output_dir)) != 0) return rc;
    if ((rc = provenance_set_ranks(pv, ranks, world_size, jb->name)) != 0) return rc;
    if ((rc = record_write(jb, ident, pv)) != 0) return rc;
    int units = job_units(jb);
    int stale = remove_stale_tmp(jb->output_dir);
    if ((rc = ledger_open(l, jb->output_dir, units)) != 0) return rc;
    if (jb->features[0]) {
        char fd[JOB_PATH_MAX + 32];
        snprintf(fd, sizeof fd, "%s/features", jb->output_dir);
        if ((rc = folder_mkdir(fd)) != 0) return rc;
        stale += remove_stale_tmp(fd);
        verify_shards(l, jb, e->feat_dim);
    }
    if (stale) LOG(LOG_INFO, "%s: removed %d temporary files of an interrupted run", jb->name, stale);
    int bad = jb->png ? verify_pngs(l, jb, e->H, e->W, e->C) : 0;
    if (jb->png && l->n_done > 0)
        LOG(LOG_INFO, "%s: resuming: %d of %d units done and verified%s", jb->name, l->n_done, units,
            bad ? "" : " (all PNGs decode)");
    provenance_log_kernels(pv, l, jb->name);
    return 0;
}
