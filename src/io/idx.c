// idx.c: IDX files (the MNIST / Fashion-MNIST container), optionally gzip-compressed.
// Format (yann.lecun.com/exdb/mnist): bytes 0, 0, type (0x08 = unsigned byte), ndim;
// ndim big-endian uint32 sizes; the data in C order.
//
// ".gz" files (as Debian's dataset-fashion-mnist ships them) are read with zlib.
#include "disa/idx.h"
#include "disa/err.h"
#include "disa/path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

// Read everything from fd into a growing buffer. Returns 0 or DISA_EIO / DISA_ENOMEM.
static int slurp(int fd, uint8_t **out, size_t *n, const char *path) {
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
    for (;;) {
        if (len == cap) {
            uint8_t *nb = cap > ((size_t)1 << 34) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return disa_err(DISA_ENOMEM, "%s: out of memory reading %zu bytes", path, cap * 2);
            }
            buf = nb, cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(buf);
            return disa_err(DISA_EIO, "%s: read failed: %s", path, strerror(errno));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    *out = buf;
    *n = len;
    return 0;
}

static int read_plain(const char *path, uint8_t **buf, size_t *n) {
    FILE *f;
    int rc = path_fopen_regular(&f, path);
    if (rc) return rc;
    rc = slurp(fileno(f), buf, n, path);
    fclose(f);
    return rc;
}

static int read_gzip(const char *path, uint8_t **buf, size_t *n) {
    int rc0 = path_check_regular(path);  // gzopen would block on a FIFO
    if (rc0) return rc0;
    gzFile g = gzopen(path, "rb");
    if (!g) return disa_err(errno == ENOENT ? DISA_ENOTFOUND : DISA_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, len = 0;
    uint8_t *b = malloc(cap);
    int rc = b ? 0 : disa_err(DISA_ENOMEM, "%s: out of memory", path);
    while (!rc) {
        if (len == cap) {
            uint8_t *nb = cap > ((size_t)1 << 34) ? NULL : realloc(b, cap * 2);
            if (!nb) {
                rc = disa_err(DISA_ENOMEM, "%s: out of memory reading %zu bytes", path, cap * 2);
                break;
            }
            b = nb, cap *= 2;
        }
        unsigned want = cap - len > (1u << 30) ? (1u << 30) : (unsigned)(cap - len);
        int r = gzread(g, b + len, want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(g, &zerr);
            rc = disa_err(DISA_EFORMAT, "%s: damaged gzip data: %s", path, msg);
        } else if (r == 0) {
            break;
        } else {
            len += (size_t)r;
        }
    }
    // A truncated archive reads as a short stream; zlib reports it on close.
    int zc = gzclose_r(g);
    if (!rc && zc != Z_OK) rc = disa_err(DISA_EFORMAT, "%s: gzip data ends early (truncated archive)", path);
    if (rc) {
        free(b);
        return rc;
    }
    *buf = b;
    *n = len;
    return 0;
}

int idx_read(idx_array *a, const char *path) {
    memset(a, 0, sizeof *a);
    uint8_t *buf = NULL;
    size_t n = 0, len = strlen(path);
    int rc = len > 3 && strcmp(path + len - 3, ".gz") == 0 ? read_gzip(path, &buf, &n) : read_plain(path, &buf, &n);
    if (rc) return rc;
    if (n < 4 || buf[0] != 0 || buf[1] != 0) {
        rc = disa_err(DISA_EFORMAT, "%s: not an IDX file (bad magic)", path);
        goto fail;
    }
    if (buf[2] != 0x08) {
        rc = disa_err(DISA_EFORMAT, "%s: IDX data type 0x%02x not supported (only unsigned byte, 0x08)", path, buf[2]);
        goto fail;
    }
    int nd = buf[3];
    if (nd < 1 || nd > 4 || n < 4 + 4 * (size_t)nd) {
        rc = disa_err(DISA_EFORMAT, "%s: IDX with %d dimensions (1..4 supported) or truncated header", path, nd);
        goto fail;
    }
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        const uint8_t *p = buf + 4 + 4 * i;
        a->shape[i] = ((int64_t)p[0] << 24) | ((int64_t)p[1] << 16) | ((int64_t)p[2] << 8) | p[3];
        // Guard the product: IDX sizes are uint32, the file cannot exceed what we read.
        if (a->shape[i] > 0 && total > n / (size_t)a->shape[i] + 1) {
            rc = disa_err(DISA_EFORMAT, "%s: IDX sizes exceed the file", path);
            goto fail;
        }
        total *= (size_t)a->shape[i];
    }
    size_t off = 4 + 4 * (size_t)nd;
    if (n - off != total) {
        rc = disa_err(DISA_EFORMAT, "%s: IDX header promises %zu bytes of data, the file has %zu", path, total, n - off);
        goto fail;
    }
    a->ndim = nd;
    a->n = total;
    a->data = malloc(total ? total : 1);
    if (!a->data) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy(a->data, buf + off, total);
fail:
    free(buf);
    return rc;
}

void idx_free(idx_array *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}
