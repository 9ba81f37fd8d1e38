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

int ledger_open(ledger *l, const char *dir, int n_units) {
    memset(l, 0, sizeof *l);
    l->fd = -1;
    snprintf(l->path, sizeof l->path, "%s/manifest", dir);
    l->n_units = n_units;
    l->done = calloc((size_t)n_units + 1, 1);
    l->pending = malloc(sizeof(int) * ((size_t)n_units + 1));
    if (!l->done || !l->pending) {
        free(l->done);
        free(l->pending);
        return disa_err(DISA_ENOMEM, "%s: out of memory", l->path);
    }
    int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(l->done);
        free(l->pending);
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
        free(l->pending);
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
        free(l->pending);
        return rc;
    }
    if (good < size && ftruncate(fd, (off_t)good) != 0) {
        close(fd);
        free(l->done);
        free(l->pending);
        return disa_err(DISA_EIO, "%s: cannot cut the torn last line: %s", l->path, strerror(errno));
    }
    lseek(fd, 0, SEEK_END);
    l->fd = fd;
    return 0;
}

int ledger_append(ledger *l, int unit, int first, int count) {
    int rc = ledger_write(l, unit, first, count);
    return rc ? rc : ledger_sync(l);
}

int ledger_write(ledger *l, int unit, int first, int count) {
    if (unit < 0 || unit >= l->n_units) return disa_err(DISA_EINTERNAL, "ledger: unit %d out of range", unit);
    if (l->done[unit]) return 0;
    for (int k = 0; k < l->n_pending; k++)
        if (l->pending[k] == unit) return 0;
    char line[96];
    int n = snprintf(line, sizeof line, "unit %d first %d count %d\n", unit, first, count);
    // One write per line: O_APPEND-like since only rank 0 writes and the offset is at the end.
    ssize_t w = write(l->fd, line, (size_t)n);
    if (w != n)
        return disa_err(DISA_EIO, "%s: cannot record unit %d: %s", l->path, unit, strerror(errno ? errno : EIO));
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
        l->n_done--;
    }
}

void ledger_close(ledger *l) {
    if (l->fd >= 0) close(l->fd);
    free(l->done);
    free(l->pending);
    l->done = NULL;
    l->pending = NULL;
    l->fd = -1;
}
