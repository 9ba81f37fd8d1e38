// ledger.c: the append-only resume ledger (include/disa/ledger.h).
#include "disa/ledger.h"
#include "disa/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The lines of buf[size] into l->done and l->sig; *good: the length of the whole lines
// (a torn tail is not one).
static int parse_lines(ledger *l, char *buf, size_t size, size_t *good) {
    int lineno = 0;
    *good = 0;
    for (size_t pos = 0; pos < size;) {
        char *nl = memchr(buf + pos, '\n', size - pos);
        if (!nl) break;  // torn tail
        *nl = '\0';
        lineno++;
        int u, f, c, s = -1, n = 0, ns = 0;
        const char *line = buf + pos;
        if (sscanf(line, "unit %d first %d count %d%n", &u, &f, &c, &n) != 3 ||
            (line[n] != '\0' && (sscanf(line + n, " sig %d%n", &s, &ns) != 1 || line[n + ns] != '\0' || s < 0)))
            return disa_err(DISA_EFORMAT, "%s:%d: not a ledger line: '%.60s'", l->path, lineno, line);
        if (u < 0 || u >= l->n_units)
            return disa_err(DISA_EFORMAT, "%s:%d: unit %d outside this run's 0..%d (another run's ledger?)", l->path,
                            lineno, u, l->n_units - 1);
        if (!l->done[u]) l->n_done++;
        l->done[u] = 1;
        l->sig[u] = s;  // a later line for the same unit (recomputed) supersedes
        pos = (size_t)(nl - buf) + 1;
        *good = pos;
    }
    return 0;
}

static int alloc(ledger *l, const char *dir, int n_units) {
    memset(l, 0, sizeof *l);
    l->fd = -1;
    snprintf(l->path, sizeof l->path, "%s/manifest", dir);
    l->n_units = n_units;
    l->done = calloc((size_t)n_units + 1, 1);
    l->sig = malloc(sizeof(int) * ((size_t)n_units + 1));
    l->pending = malloc(sizeof(int) * ((size_t)n_units + 1));
    if (!l->done || !l->sig || !l->pending) {
        ledger_close(l);
        return disa_err(DISA_ENOMEM, "%s: out of memory", l->path);
    }
    for (int u = 0; u < n_units; u++) l->sig[u] = -1;
    return 0;
}

// Reads the whole file of fd and parses it; *good as in parse_lines.
static int read_fd(ledger *l, int fd, size_t *good) {
    struct stat sb;
    fstat(fd, &sb);
    size_t size = (size_t)sb.st_size;
    char *buf = malloc(size + 1);
    if (!buf || (size && pread(fd, buf, size, 0) != (ssize_t)size)) {
        free(buf);
        return disa_err(DISA_EIO, "%s: cannot read", l->path);
    }
    buf[size] = '\0';
    int rc = parse_lines(l, buf, size, good);
    free(buf);
    return rc;
}

int ledger_open(ledger *l, const char *dir, int n_units) {
    int rc = alloc(l, dir, n_units);
    if (rc) return rc;
    int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = disa_err(DISA_EIO, "%s: cannot open: %s", l->path, strerror(errno));
        ledger_close(l);
        return rc;
    }
    size_t good;
    struct stat sb;
    if ((rc = read_fd(l, fd, &good)) == 0 && fstat(fd, &sb) == 0 && good < (size_t)sb.st_size &&
        ftruncate(fd, (off_t)good) != 0)
        rc = disa_err(DISA_EIO, "%s: cannot cut the torn last line: %s", l->path, strerror(errno));
    if (rc) {
        close(fd);
        ledger_close(l);
        return rc;
    }
    lseek(fd, 0, SEEK_END);
    l->fd = fd;
    return 0;
}

int ledger_read(ledger *l, const char *dir, int n_units) {
    int rc = alloc(l, dir, n_units);
    if (rc) return rc;
    int fd = open(l->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        rc = disa_err(DISA_EIO, "%s: cannot open: %s", l->path, strerror(errno));
        ledger_close(l);
        return rc;
    }
    size_t good;
    rc = read_fd(l, fd, &good);
    close(fd);
    if (rc) ledger_close(l);
    return rc;
}

int ledger_append(ledger *l, int unit, int first, int count, int sig) {
    int rc = ledger_write(l, unit, first, count, sig);
    return rc ? rc : ledger_sync(l);
}

int ledger_write(ledger *l, int unit, int first, int count, int sig) {
    if (unit < 0 || unit >= l->n_units) return disa_err(DISA_EINTERNAL, "ledger: unit %d out of range", unit);
    if (l->done[unit]) return 0;
    for (int k = 0; k < l->n_pending; k++)
        if (l->pending[k] == unit) return 0;
    char line[112];
    int n = sig >= 0 ? snprintf(line, sizeof line, "unit %d first %d count %d sig %d\n", unit, first, count, sig)
                     : snprintf(line, sizeof line, "unit %d first %d count %d\n", unit, first, count);
    // One write per line: O_APPEND-like since only rank 0 writes and the offset is at the end.
    ssize_t w = write(l->fd, line, (size_t)n);
    if (w != n)
        return disa_err(DISA_EIO, "%s: cannot record unit %d: %s", l->path, unit, strerror(errno ? errno : EIO));
    l->sig[unit] = sig;
    l->pending[l->n_pending++] = unit;
    return 0;
}

int ledger_sync(ledger *l) {
    if (l->n_pending == 0) return 0;
    if (fsync(l->fd) != 0)
        return disa_err(DISA_EIO, "%s: cannot record units (fsync): %s", l->path, strerror(errno ? errno : EIO));
    for (int k = 0; k < l->n_pending; k++) {
        l->done[l->pending[k]] = 1;
        l->n_done++;
    }
    l->n_pending = 0;
    return 0;
}

void ledger_forget(ledger *l, int unit) {
    if (unit >= 0 && unit < l->n_units && l->done[unit]) {
        l->done[unit] = 0;
        l->sig[unit] = -1;
        l->n_done--;
    }
}

void ledger_close(ledger *l) {
    if (l->fd >= 0) close(l->fd);
    free(l->done);
    free(l->sig);
    free(l->pending);
    l->done = NULL;
    l->sig = NULL;
    l->pending = NULL;
    l->fd = -1;
}
