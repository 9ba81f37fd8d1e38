// npy.c: .npy reader/writer (include/disa/npy.h), following numpy/lib/format.py.
#include "disa/npy.h"
#include "disa/err.h"
#include "disa/path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct { const char *descr; size_t size; } g_npy[NPY_DTYPE_COUNT] = {
    [NPY_F32] = {"<f4", 4}, [NPY_F64] = {"<f8", 8}, [NPY_U8] = {"|u1", 1},
    [NPY_I64] = {"<i8", 8}, [NPY_I32] = {"<i4", 4},
};

const char *npy_dtype_descr(npy_dtype d) { return d < NPY_DTYPE_COUNT ? g_npy[d].descr : "?"; }
size_t npy_dtype_size(npy_dtype d) { return d < NPY_DTYPE_COUNT ? g_npy[d].size : 0; }

size_t npy_header(char *buf, size_t cap, npy_dtype dt, int ndim, const int64_t *shape) {
    char dict[200], sh[160] = "";
    size_t u = 0;
    for (int i = 0; i < ndim; i++)
        u += (size_t)snprintf(sh + u, sizeof sh - u, "%lld%s", (long long)shape[i], ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     npy_dtype_descr(dt), sh);
    // magic(6) + version(2) + len(2) + dict + padding spaces + '\n', total a multiple of 64.
    size_t total = (10 + (size_t)n + 1 + 63) / 64 * 64;
    if (total > cap) return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    size_t hl = total - 10;
    buf[8] = (char)(hl & 0xff);
    buf[9] = (char)(hl >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
    buf[total - 1] = '\n';
    return total;
}

int npy_write(const char *path, npy_dtype dt, int ndim, const int64_t *shape, const void *data) {
    char hdr[256], tmp[4096];
    size_t hl = npy_header(hdr, sizeof hdr, dt, ndim, shape);
    if (!hl) return disa_err(DISA_EINVAL, "%s: shape too long for an npy header", path);
    size_t n = npy_dtype_size(dt);
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return disa_err(DISA_EINVAL, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return disa_err(DISA_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fwrite(hdr, 1, hl, f) != hl || (n && fwrite(data, 1, n, f) != n);
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad) {
        int e = errno;
        unlink(tmp);
        return disa_err(DISA_EIO, "%s: write failed: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return disa_err(DISA_EIO, "%s: rename failed: %s", path, strerror(e));
    }
    return 0;
}

// Find `'key':` in the header dict and return the text after it (spaces skipped).
static const char *dict_value(const char *h, const char *key) {
    const char *p = strstr(h, key);
    if (!p) return NULL;
    p += strlen(key);
    while (*p == ' ' || *p == ':') p++;
    return p;
}

int npy_prefix_size(const void *buf, size_t size, size_t *total) {
    const unsigned char *b = buf;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0) return DISA_EFORMAT;
    if (b[6] == 1) {
        *total = 10 + (b[8] | (size_t)b[9] << 8);
        return 0;
    }
    if ((b[6] == 2 || b[6] == 3) && size >= 12) {
        *total = 12 + (b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24);
        return 0;
    }
    return DISA_EFORMAT;
}

int npy_parse_header(npy_array *a, size_t *data_off, const void *buf, size_t size, const char *label) {
    memset(a, 0, sizeof *a);
    const unsigned char *b = buf;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return disa_err(DISA_EFORMAT, "%s: not an .npy file (bad magic)", label);
    size_t hl, off;
    if (b[6] == 1) {
        hl = b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if ((b[6] == 2 || b[6] == 3) && size >= 12) {
        hl = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        return disa_err(DISA_EFORMAT, "%s: unsupported .npy version %d.%d", label, b[6], b[7]);
    }
    if (hl > size - off || hl > 1 << 20) return disa_err(DISA_EFORMAT, "%s: header length %zu past the end", label, hl);
    char *h = malloc(hl + 1);
    if (!h) return disa_err(DISA_ENOMEM, "%s: out of memory", label);
    memcpy(h, b + off, hl);
    h[hl] = '\0';
    int rc = 0;
    const char *d = dict_value(h, "'descr'"), *fo = dict_value(h, "'fortran_order'"), *sh = dict_value(h, "'shape'");
    if (!d || !fo || !sh || *sh != '(') {
        rc = disa_err(DISA_EFORMAT, "%s: header lacks descr/fortran_order/shape", label);
        goto out;
    }
    if (strncmp(fo, "False", 5) != 0) {
        rc = disa_err(DISA_EFORMAT, "%s: Fortran-ordered arrays are not supported", label);
        goto out;
    }
    int found = 0;
    for (int i = 0; i < NPY_DTYPE_COUNT; i++) {
        char q[16];
        snprintf(q, sizeof q, "'%s'", g_npy[i].descr);
        // numpy writes uint8 as '|u1'; accept '<u1' too.
        if (strncmp(d, q, strlen(q)) == 0 || (i == NPY_U8 && strncmp(d, "'<u1'", 5) == 0)) {
            a->dtype = (npy_dtype)i;
            found = 1;
        }
    }
    if (!found) {
        char got[24] = "";
        sscanf(d, "%23[^,]", got);
        rc = disa_err(DISA_EFORMAT, "%s: dtype %s not supported (float32, float64, uint8, int32, int64)", label, got);
        goto out;
    }
    const char *p = sh + 1;
    size_t numel = 1;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || a->ndim == 8) {
            rc = disa_err(DISA_EFORMAT, "%s: bad shape in header", label);
            goto out;
        }
        if (v && numel > SIZE_MAX / (size_t)v) {
            rc = disa_err(DISA_EFORMAT, "%s: shape overflows", label);
            goto out;
        }
        a->shape[a->ndim++] = v;
        numel *= (size_t)v;
        p = end;
    }
    size_t es = g_npy[a->dtype].size;
    if (numel > SIZE_MAX / es) {
        rc = disa_err(DISA_EFORMAT, "%s: shape overflows", label);
        goto out;
    }
    a->nbytes = numel * es;
    *data_off = off + hl;
out:
    free(h);
    return rc;
}

int npy_parse(npy_array *a, const void *buf, size_t size, const char *label) {
    size_t off;
    int rc = npy_parse_header(a, &off, buf, size, label);
    if (rc) return rc;
    if (a->nbytes != size - off)
        return disa_err(DISA_EFORMAT, "%s: shape needs %zu bytes of data, file has %zu", label, a->nbytes, size - off);
    a->data = malloc(a->nbytes ? a->nbytes : 1);
    if (!a->data) return disa_err(DISA_ENOMEM, "%s: out of memory for %zu bytes", label, a->nbytes);
    memcpy(a->data, (const unsigned char *)buf + off, a->nbytes);
    return 0;
}

int npy_read(npy_array *a, const char *path) {
    memset(a, 0, sizeof *a);
    FILE *f;
    int rc0 = path_fopen_regular(&f, path);
    if (rc0) return rc0;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(sz > 0 ? (size_t)sz : 1);
    if (!buf || (sz > 0 && fread(buf, 1, (size_t)sz, f) != (size_t)sz)) {
        free(buf);
        fclose(f);
        return disa_err(DISA_EIO, "%s: read failed", path);
    }
    fclose(f);
    int rc = npy_parse(a, buf, (size_t)(sz > 0 ? sz : 0), path);
    free(buf);
    return rc;
}

void npy_free(npy_array *a) {
    free(a->data);
    a->data = NULL;
}
