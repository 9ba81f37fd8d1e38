// imgsrc.c: image sources for statistics (include/disa/imgsrc.h).
#include "disa/imgsrc.h"
#include "disa/err.h"
#include "disa/path.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

static int has_suffix_ci(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    if (a < b) return 0;
    for (size_t i = 0; i < b; i++)
        if (tolower((unsigned char)s[a - b + i]) != suf[i]) return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int open_dir(imgsrc *s) {
    DIR *d = opendir(s->path);
    if (!d) return disa_err(DISA_ENOTFOUND, "%s: cannot open folder: %s", s->path, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !has_suffix_ci(e->d_name, ".png")) continue;
        if ((size_t)s->n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **nf = realloc(s->files, cap * sizeof(char *));
            if (!nf) {
                closedir(d);
                return disa_err(DISA_ENOMEM, "%s: out of memory listing files", s->path);
            }
            s->files = nf;
        }
        size_t len = strlen(s->path) + strlen(e->d_name) + 2;
        if (!(s->files[s->n] = malloc(len))) {
            closedir(d);
            return disa_err(DISA_ENOMEM, "%s: out of memory listing files", s->path);
        }
        snprintf(s->files[s->n], len, "%s/%s", s->path, e->d_name);
        int rc = path_check_regular(s->files[s->n++]);
        if (rc) {
            closedir(d);
            return rc;
        }
    }
    closedir(d);
    // Before the sort: qsort(NULL, 0, ...) is undefined (UBSan, tests/bad_inputs.md).
    if (s->n == 0) return disa_err(DISA_ENOTFOUND, "%s: no .png files", s->path);
    // torch-fidelity sorts the paths as strings; byte order of UTF-8 is code point order.
    qsort(s->files, (size_t)s->n, sizeof(char *), cmp_str);
    return 0;
}

// The .npy header of arr_0: '|u1', C order, shape (N, H, W, 3) or (N, H, W, 1).
static int npz_header(imgsrc *s) {
    uint8_t pre[12];
    size_t total;
    if (zip_fread(s->zf, pre, 10) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return disa_err(DISA_EFORMAT, "%s: arr_0.npy is not a .npy entry", s->path);
    size_t have = 10;
    if (pre[6] >= 2) {
        if (zip_fread(s->zf, pre + 10, 2) != 2) return disa_err(DISA_EFORMAT, "%s: truncated arr_0.npy", s->path);
        have = 12;
    }
    if (npy_prefix_size(pre, have, &total) != 0 || total > have + (1 << 16))
        return disa_err(DISA_EFORMAT, "%s: arr_0.npy header too long", s->path);
    uint8_t *h = calloc(total + 1, 1);
    if (!h) return disa_err(DISA_ENOMEM, "out of memory");
    memcpy(h, pre, have);
    int rc = 0;
    if (zip_fread(s->zf, h + have, total - have) != (zip_int64_t)(total - have))
        rc = disa_err(DISA_EFORMAT, "%s: truncated arr_0.npy header", s->path);
    npy_array a;
    size_t off;
    if (!rc && (npy_parse_header(&a, &off, h, total, s->path) != 0 || a.dtype != NPY_U8 || a.ndim != 4 ||
                a.shape[0] < 1 || a.shape[1] < 1 || a.shape[2] < 1 || a.shape[1] > 1024 || a.shape[2] > 1024 ||
                (a.shape[3] != 3 && a.shape[3] != 1)))
        rc = disa_err(DISA_EFORMAT, "%s: arr_0 must be uint8 [N, H, W, 3] in C order (an ADM sample batch); header: %s",
                      s->path, (const char *)h + have);
    if (!rc) s->n = a.shape[0], s->h = (int)a.shape[1], s->w = (int)a.shape[2], s->c = (int)a.shape[3];
    free(h);
    return rc;
}

int imgsrc_open(imgsrc *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    struct stat st;
    if (stat(path, &st) != 0) return disa_err(DISA_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        s->kind = IMGSRC_DIR;
        return open_dir(s);
    }
    if (has_suffix_ci(path, ".npz")) {
        s->kind = IMGSRC_NPZ;
        int zerr = 0;
        int rc = path_check_regular(path);
        if (rc) return rc;
        if (!(s->za = zip_open(path, ZIP_RDONLY, &zerr))) return disa_err(DISA_EFORMAT, "%s: cannot open as .npz", path);
        if (!(s->zf = zip_fopen(s->za, "arr_0.npy", 0)))
            return disa_err(DISA_ENOTFOUND, "%s: no arr_0 (not an ADM sample batch)", path);
        if ((rc = npz_header(s)) != 0) return rc;
        s->pix = malloc((size_t)s->h * s->w * s->c);
        return s->pix ? 0 : disa_err(DISA_ENOMEM, "out of memory");
    }
    s->kind = IMGSRC_IDX;
    int rc = idx_read(&s->idx, path);
    if (rc) return rc;
    if (s->idx.ndim != 3)
        return disa_err(DISA_EFORMAT, "%s: IDX images must be [N, H, W], got %d dims", path, s->idx.ndim);
    s->n = s->idx.shape[0], s->h = (int)s->idx.shape[1], s->w = (int)s->idx.shape[2], s->c = 1;
    return 0;
}

int imgsrc_get(imgsrc *s, int64_t i, const uint8_t **pix, int *h, int *w, int *c) {
    switch (s->kind) {
    case IMGSRC_DIR: {
        image_u8_free(&s->im);
        int rc = png_read_u8(&s->im, s->files[i]);
        if (rc) return rc;
        *pix = s->im.data, *h = s->im.h, *w = s->im.w, *c = s->im.c;
        return 0;
    }
    case IMGSRC_NPZ: {
        size_t n = (size_t)s->h * s->w * s->c;
        if (i != s->next || zip_fread(s->zf, s->pix, n) != (zip_int64_t)n)
            return disa_err(DISA_EFORMAT, "%s: arr_0 truncated at image %lld", s->path, (long long)i);
        s->next++;
        *pix = s->pix, *h = s->h, *w = s->w, *c = s->c;
        return 0;
    }
    case IMGSRC_IDX:
        *pix = s->idx.data + (size_t)i * s->h * s->w, *h = s->h, *w = s->w, *c = 1;
        return 0;
    case IMGSRC_KIND_COUNT:
        break;
    }
    return disa_err(DISA_EINTERNAL, "%s: no image source open", s->path);
}

void imgsrc_close(imgsrc *s) {
    for (int64_t i = 0; s->files && i < s->n; i++) free(s->files[i]);
    free(s->files);
    if (s->zf) zip_fclose(s->zf);
    if (s->za) zip_discard(s->za);
    idx_free(&s->idx);
    image_u8_free(&s->im);
    free(s->pix);
    memset(s, 0, sizeof *s);
}


int imgsrc_export_png(const char *dir, const char *src, int64_t limit, int64_t *written) {
    imgsrc s;
    *written = 0;
    int rc = imgsrc_open(&s, src);
    if (rc) goto fail;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = disa_err(DISA_EIO, "%s: cannot create folder: %s", dir, strerror(errno));
        goto fail;
    }
    int64_t n = limit > 0 && limit < s.n ? limit : s.n;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        const uint8_t *pix;
        int h, w, c;
        char name[4096];
        if ((rc = imgsrc_get(&s, i, &pix, &h, &w, &c)) != 0) break;
        if ((rc = image_name(name, sizeof name, dir, i)) != 0) break;
        rc = png_write_u8(name, pix, w, h, c, NULL, 0);
    }
    if (rc == 0) *written = n;
fail:
    imgsrc_close(&s);
    return rc;
}
