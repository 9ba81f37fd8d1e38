// record.c: run.json, the record of what a run folder holds (include/disa/record.h).
#include "disa/record.h"
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/err.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef DISA_BUILD_ID
#define DISA_BUILD_ID "unknown"
#endif

int file_digest(const char *path, char out[17]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return disa_err(DISA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    fstat(fd, &sb);
    size_t size = (size_t)sb.st_size;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ size;
    if (size) {
        const unsigned char *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return disa_err(DISA_EIO, "%s: mmap failed: %s", path, strerror(errno));
        }
        // Word-wise multiply-xorshift: reads a multi-GB checkpoint at memory speed.
        size_t i = 0;
        for (; i + 8 <= size; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
            h ^= h >> 29;
        }
        for (; i < size; i++) h = (h ^ p[i]) * 0x94D049BB133111EBull;
        h ^= h >> 31;
        munmap((void *)p, size);
    }
    close(fd);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return 0;
}

static cJSON *identity_object(const char *identity) {
    cJSON *o = cJSON_CreateObject();
    const char *p = identity;
    while (o && *p) {
        const char *eq = strchr(p, '='), *nl = strchr(p, '\n');
        if (!eq || !nl || eq > nl) break;
        char key[128], val[1024];
        snprintf(key, sizeof key, "%.*s", (int)(eq - p), p);
        snprintf(val, sizeof val, "%.*s", (int)(nl - eq - 1), eq + 1);
        cJSON_AddStringToObject(o, key, val);
        p = nl + 1;
    }
    return o;
}

int runinfo_write(const char *dir, const char *identity, const char *extra_json) {
    char path[1200], tmp[1210];
    snprintf(path, sizeof path, "%s/run.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    size_t need = strlen(extra_json) + 64;
    char *wrapped = malloc(need);
    if (!wrapped) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
    snprintf(wrapped, need, "{%s}", extra_json);
    cJSON *root = cJSON_Parse(wrapped);
    free(wrapped);
    if (!root) return disa_err(DISA_EINTERNAL, "%s: extra fields are not valid JSON", path);
    cJSON_AddItemToObject(root, "identity", identity_object(identity));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
    FILE *f = fopen(tmp, "w");
    int rc = 0;
    if (!f) rc = disa_err(DISA_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    else {
        int bad = fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        if (bad || rename(tmp, path) != 0) {
            rc = disa_err(DISA_EIO, "%s: write failed: %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    free(text);
    return rc;
}

// <dir>/run.json parsed into *root (NULL when it is not JSON); *exists = 0 and *root NULL
// when there is no such file. path[n] gets its name.
static int runinfo_read(const char *dir, char *path, size_t n, cJSON **root, int *exists) {
    snprintf(path, n, "%s/run.json", dir);
    *root = NULL;
    *exists = 0;
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : disa_err(DISA_EIO, "%s: cannot read: %s", path, strerror(errno));
    *exists = 1;
    // Sized by the file: the signature table grows with the nodes a run has seen.
    struct stat sb;
    size_t cap = fstat(fileno(f), &sb) == 0 && sb.st_size > 0 ? (size_t)sb.st_size + 1 : 1 << 20;
    char *buf = malloc(cap);
    size_t len = buf ? fread(buf, 1, cap - 1, f) : 0;
    fclose(f);
    if (!buf) return disa_err(DISA_ENOMEM, "out of memory");
    buf[len] = '\0';
    *root = cJSON_Parse(buf);
    free(buf);
    return 0;
}

int runinfo_check(const char *dir, const char *identity, int *exists) {
    char path[1200];
    cJSON *root;
    int rc = runinfo_read(dir, path, sizeof path, &root, exists);
    if (rc || !*exists) return rc;
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(root, "identity");
    if (!cJSON_IsObject(old)) {
        cJSON_Delete(root);
        return disa_err(DISA_EFORMAT, "%s: no 'identity' object: not a disa run folder (use --restart to overwrite "
                        "or choose another --output_dir)", path);
    }
    cJSON *now = identity_object(identity);
    // A simulation (simulate.h) and a real run never share a folder: the one has no
    // images, the other's would be mixed with random features.
    int sim_old = cJSON_GetObjectItemCaseSensitive(old, "simulated") != NULL;
    int sim_now = cJSON_GetObjectItemCaseSensitive(now, "simulated") != NULL;
    char diff[2048] = "";
    size_t used = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, now) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(old, it->string);
        const char *ov = cJSON_IsString(o) ? o->valuestring : "(absent)";
        if (strcmp(ov, it->valuestring) != 0 && used < sizeof diff)
            used += (size_t)snprintf(diff + used, sizeof diff - used, "%s%s: '%s' in the folder, '%s' now",
                                     used ? "; " : "", it->string, ov, it->valuestring);
    }
    // Keys the folder has and this run lacks differ too.
    cJSON_ArrayForEach(it, old) {
        if (cJSON_GetObjectItemCaseSensitive(now, it->string) || used >= sizeof diff) continue;
        used += (size_t)snprintf(diff + used, sizeof diff - used, "%s%s: '%s' in the folder, (absent) now",
                                 used ? "; " : "", it->string, cJSON_IsString(it) ? it->valuestring : "?");
    }
    cJSON_Delete(now);
    cJSON_Delete(root);
    if (sim_old != sim_now)
        return disa_err(DISA_EINVAL, "%s holds %s; %s does not resume it: rerun with --restart to discard it, or "
                        "choose another --output_dir", dir, sim_old ? "a simulated run (disa-gen --simulate: no images)"
                        : "a real run", sim_now ? "a simulation" : "a real run");
    if (used)
        return disa_err(DISA_EINVAL, "%s holds a run with another configuration (%s); rerun with --restart to "
                        "discard it, or choose another --output_dir", dir, diff);
    return 0;
}

int runinfo_signatures(const char *dir, provenance *p) {
    char path[1200];
    cJSON *root;
    int exists;
    int rc = runinfo_read(dir, path, sizeof path, &root, &exists);
    if (rc || !root) return rc;  // not JSON: the identity check refuses the folder
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "signatures");
    if (arr) rc = provenance_from_json(p, arr, path);
    cJSON_Delete(root);
    return rc;
}

int record_identity(const job *jb, char *buf, int n) {
    char mh[17], vh[17] = "none";
    int rc;
    if ((rc = file_digest(jb->model, mh)) != 0) return rc;
    if (jb->vae[0] && (rc = file_digest(jb->vae, vh)) != 0) return rc;
    return job_identity(jb, mh, vh, buf, n);
}

int record_write(const job *jb, const char *identity, const provenance *pv) {
    char ps[512];
    time_t now = time(NULL);
    struct tm tm;
    char when[64];
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    // cJSON escapes the paths; run.json takes the members without the braces.
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", jb->name);
    cJSON_AddStringToObject(o, "job_file", jb->file);
    cJSON_AddStringToObject(o, "model", jb->model);
    cJSON_AddStringToObject(o, "vae", jb->vae);
    cJSON_AddStringToObject(o, "sampling", job_sampling_str(jb, ps, sizeof ps));
    // The precision used (auto was resolved before), and for bf16 the oneDNN that ran it.
    cJSON_AddStringToObject(o, "precision", precision_name((precision_kind)jb->precision));
    if (jb->precision == PRECISION_BF16) {
        char dnn[96];
        snprintf(dnn, sizeof dnn, "oneDNN %s, ISA %s", bf16_version(), bf16_isa());
        cJSON_AddStringToObject(o, "bf16", dnn);
    }
    cJSON_AddNumberToObject(o, "world_size", pv->world_size);
    cJSON_AddStringToObject(o, "blas_core", blas_corename());
    if (provenance_to_json(o, pv) != 0) {
        cJSON_Delete(o);
        return DISA_ENOMEM;
    }
    cJSON_AddStringToObject(o, "build", DISA_BUILD_ID);
    cJSON_AddStringToObject(o, "written", when);
    if (jb->sim.on) {
        char sim[64], note[160];
        snprintf(note, sizeof note, "disa-gen --simulate %s: no images; feature rows are random",
                 sim_str(&jb->sim, sim, sizeof sim));
        cJSON_AddStringToObject(o, "simulated", note);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return disa_err(DISA_ENOMEM, "out of memory");
    size_t tl = strlen(text);
    text[tl - 1] = '\0';
    int rc = runinfo_write(jb->output_dir, identity, text + 1);
    free(text);
    return rc;
}
