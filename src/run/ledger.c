// ledger.c: append-only resume ledger and run.json (include/disa/ledger.h).
#include "disa/ledger.h"
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
#include <unistd.h>

int ledger_open(ledger *l, const char *dir, int n_units) {
    memset(l, 0, sizeof *l);
    l->fd = -1;
    snprintf(l->path, sizeof l->path, "%s/manifest", dir);
    l->n_units = n_units;
    l->done = calloc((size_t)n_units + 1, 1);
    if (!l->done) return disa_err(DISA_ENOMEM, "%s: out of memory", l->path);
    int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(l->done);
        return disa_err(DISA_EIO, "%s: cannot open: %s", l->path, strerror(errno));
    }
    struct stat sb;
    fstat(fd, &sb);
    size_t size = (size_t)sb.st_size, good = 0;
    char *buf = malloc(size + 1);
    if (!buf || (size && pread(fd, buf, size, 0) != (ssize_t)size)) {
        free(buf);
        close(fd);
        free(l->done);
        return disa_err(DISA_EIO, "%s: cannot read", l->path);
    }
    buf[size] = '\0';
    int lineno = 0, rc = 0;
    for (size_t pos = 0; pos < size;) {
        char *nl = memchr(buf + pos, '\n', size - pos);
        if (!nl) break;  // torn tail: cut below
        *nl = '\0';
        lineno++;
        int u, f, c, n = 0;
        if (sscanf(buf + pos, "unit %d first %d count %d%n", &u, &f, &c, &n) != 3 || buf[pos + n] != '\0') {
            rc = disa_err(DISA_EFORMAT, "%s:%d: not a ledger line: '%.60s'", l->path, lineno, buf + pos);
            break;
        }
        if (u < 0 || u >= n_units) {
            rc = disa_err(DISA_EFORMAT, "%s:%d: unit %d outside this run's 0..%d (another run's ledger?)", l->path,
                          lineno, u, n_units - 1);
            break;
        }
        if (!l->done[u]) l->n_done++;
        l->done[u] = 1;
        (void)f;
        (void)c;
        pos = (size_t)(nl - buf) + 1;
        good = pos;
    }
    free(buf);
    if (rc) {
        close(fd);
        free(l->done);
        return rc;
    }
    if (good < size && ftruncate(fd, (off_t)good) != 0) {
        close(fd);
        free(l->done);
        return disa_err(DISA_EIO, "%s: cannot cut the torn last line: %s", l->path, strerror(errno));
    }
    lseek(fd, 0, SEEK_END);
    l->fd = fd;
    return 0;
}

int ledger_append(ledger *l, int unit, int first, int count) {
    if (unit < 0 || unit >= l->n_units) return disa_err(DISA_EINTERNAL, "ledger: unit %d out of range", unit);
    if (l->done[unit]) return 0;
    char line[96];
    int n = snprintf(line, sizeof line, "unit %d first %d count %d\n", unit, first, count);
    // One write per line: O_APPEND-like since only rank 0 writes and the offset is at the end.
    ssize_t w = write(l->fd, line, (size_t)n);
    if (w != n || fsync(l->fd) != 0)
        return disa_err(DISA_EIO, "%s: cannot record unit %d: %s", l->path, unit, strerror(errno ? errno : EIO));
    l->done[unit] = 1;
    l->n_done++;
    return 0;
}

void ledger_forget(ledger *l, int unit) {
    if (unit >= 0 && unit < l->n_units && l->done[unit]) {
        l->done[unit] = 0;
        l->n_done--;
    }
}

void ledger_close(ledger *l) {
    if (l->fd >= 0) close(l->fd);
    free(l->done);
    l->done = NULL;
    l->fd = -1;
}

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

int runinfo_check(const char *dir, const char *identity, int *exists) {
    char path[1200];
    snprintf(path, sizeof path, "%s/run.json", dir);
    *exists = 0;
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : disa_err(DISA_EIO, "%s: cannot read: %s", path, strerror(errno));
    *exists = 1;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) return disa_err(DISA_ENOMEM, "out of memory");
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(root, "identity");
    if (!cJSON_IsObject(old)) {
        cJSON_Delete(root);
        return disa_err(DISA_EFORMAT, "%s: no 'identity' object: not a disa run folder (use --restart to overwrite "
                        "or choose another --output_dir)", path);
    }
    cJSON *now = identity_object(identity);
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
    cJSON_Delete(now);
    cJSON_Delete(root);
    if (used)
        return disa_err(DISA_EINVAL, "%s holds a run with another configuration (%s); rerun with --restart to "
                        "discard it, or choose another --output_dir", dir, diff);
    return 0;
}
