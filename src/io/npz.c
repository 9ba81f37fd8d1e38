// npz.c: .npz archives with libzip: a streaming writer (numpy.savez layout) and a reader.
//
// The sample batch of OpenAI's guided-diffusion evaluator (evaluations/evaluator.py reads
// arr_0 of the batch .npz; MAR/DiSA's FID runs use it) holds 50,000 x 256 x 256 x 3 bytes,
// about 9.8 GB. libzip writes an entry from a zip_source_function callback, pulling 8 KB
// at a time (zip_close -> copy_source) with the CRC computed on the fly, so the array is
// never in memory: this file produces those bytes on demand, decoding one PNG at a time.
// Given the size up front (ZIP_SOURCE_STAT) and ZIP_CM_STORE, libzip writes ZIP64 size
// fields exactly when an entry or offset passes 4 GiB, which Python's zipfile (and so
// numpy.load) reads. Entries are stored, not deflated, as numpy.savez does.
#include "disa/image.h"
#include "disa/err.h"
#include "disa/path.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

// A fixed entry time (2000-01-01), so the same arrays always give the same bytes.
#define NPZ_MTIME ((time_t)946684800)

// ----------------------------------------------------------------------------
// writer

typedef struct {
    const npz_entry *e;
    char hdr[256];
    size_t hdr_len;
    uint64_t total, pos;    // bytes of the .npy member, bytes produced so far
    zip_error_t zerr;
    int rc;                 // a failing fill's DISA_E* code (its message is current)
} npz_src;

static uint64_t entry_bytes(const npz_entry *e) {
    uint64_t n = npy_dtype_size(e->dtype);
    for (int i = 0; i < e->ndim; i++) n *= (uint64_t)e->shape[i];
    return n;
}

static zip_int64_t src_read(npz_src *s, uint8_t *d /*[len]*/, zip_uint64_t len) {
    if (len > s->total - s->pos) len = s->total - s->pos;
    zip_uint64_t done = 0;
    while (done < len) {
        size_t n;
        if (s->pos < s->hdr_len) {
            n = s->hdr_len - (size_t)s->pos;
            if (n > len - done) n = (size_t)(len - done);
            memcpy(d + done, s->hdr + s->pos, n);
        } else {
            uint64_t off = s->pos - s->hdr_len;
            n = (size_t)(len - done);
            if (s->e->data) {
                memcpy(d + done, (const uint8_t *)s->e->data + off, n);
            } else {
                int r = s->e->fill(s->e->ctx, d + done, off, n);
                if (r) {
                    s->rc = r;
                    zip_error_set(&s->zerr, ZIP_ER_READ, EIO);
                    return -1;
                }
            }
        }
        done += n;
        s->pos += n;
    }
    return (zip_int64_t)done;
}

static zip_int64_t src_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd) {
    npz_src *s = ud;
    switch (cmd) {
    case ZIP_SOURCE_OPEN:
        s->pos = 0;
        return 0;
    case ZIP_SOURCE_READ:
        return src_read(s, data, len);
    case ZIP_SOURCE_CLOSE:
    case ZIP_SOURCE_FREE:  // the npz_src belongs to npz_write
        return 0;
    case ZIP_SOURCE_STAT: {
        zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len, &s->zerr);
        if (!st) return -1;
        zip_stat_init(st);
        st->size = s->total;
        st->mtime = NPZ_MTIME;
        st->valid |= ZIP_STAT_SIZE | ZIP_STAT_MTIME;
        return sizeof *st;
    }
    case ZIP_SOURCE_ERROR:
        return zip_error_to_data(&s->zerr, data, len);
    case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE,
                                              ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
    default:
        zip_error_set(&s->zerr, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
}

// fsync a file or folder by path; folders that cannot be synced (EINVAL) are accepted.
static int sync_path(const char *path, int dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int r = fsync(fd), e = errno;
    close(fd);
    return r == 0 || (dir && e == EINVAL) ? 0 : -1;
}

int npz_write(const char *path, const npz_entry *e, int n) {
    char tmp[4200], parent[4200];
    if (n < 1) return disa_err(DISA_EINVAL, "%s: an .npz needs at least one array", path);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return disa_err(DISA_EINVAL, "%s: path too long", path);
    npz_src *src = calloc((size_t)n, sizeof *src);
    if (!src) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
    int rc = 0, zerr = 0;
    zip_t *za = NULL;
    for (int i = 0; i < n; i++) {
        if (!e[i].name || !*e[i].name || strlen(e[i].name) > 200 || (!e[i].data && !e[i].fill) ||
            e[i].ndim < 0 || e[i].ndim > 8 || e[i].dtype >= NPY_DTYPE_COUNT) {
            rc = disa_err(DISA_EINVAL, "%s: array %d ('%s') is malformed", path, i, e[i].name ? e[i].name : "");
            goto fail;
        }
        src[i].e = &e[i];
        src[i].hdr_len = npy_header(src[i].hdr, sizeof src[i].hdr, e[i].dtype, e[i].ndim, e[i].shape);
        src[i].total = src[i].hdr_len + entry_bytes(&e[i]);
        zip_error_init(&src[i].zerr);
    }
    za = zip_open(tmp, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        rc = disa_err(DISA_EIO, "%s: cannot create %s: %s", path, tmp, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        char name[224];
        snprintf(name, sizeof name, "%s.npy", e[i].name);
        zip_source_t *zs = zip_source_function(za, src_cb, &src[i]);
        zip_int64_t idx = zs ? zip_file_add(za, name, zs, ZIP_FL_ENC_UTF_8) : -1;
        if (idx < 0) {
            if (zs) zip_source_free(zs);
            rc = disa_err(DISA_EINVAL, "%s: cannot add '%s': %s", path, name, zip_strerror(za));
            goto fail;
        }
        if (zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0) != 0 ||
            zip_file_set_mtime(za, (zip_uint64_t)idx, NPZ_MTIME, 0) != 0) {
            rc = disa_err(DISA_EINTERNAL, "%s: libzip: %s", path, zip_strerror(za));
            goto fail;
        }
    }
    // All the data moves here: libzip writes TMP.XXXXXX and renames it to TMP.
    if (zip_close(za) != 0) {
        for (int i = 0; i < n && !rc; i++) rc = src[i].rc;
        if (rc) rc = disa_err_wrap(rc, "%s: ", path);
        else rc = disa_err(DISA_EIO, "%s: writing %s failed: %s", path, tmp, zip_strerror(za));
        zip_discard(za);
        za = NULL;
        goto fail;
    }
    za = NULL;
    if (sync_path(tmp, 0) != 0) {
        rc = disa_err(DISA_EIO, "%s: fsync of %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        rc = disa_err(DISA_EIO, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    snprintf(parent, sizeof parent, "%s", path);
    if (sync_path(dirname(parent), 1) != 0)
        rc = disa_err(DISA_EIO, "%s: written, but syncing its folder failed: %s", path, strerror(errno));
    for (int i = 0; i < n; i++) zip_error_fini(&src[i].zerr);
    free(src);
    return rc;
fail:
    if (za) zip_discard(za);
    unlink(tmp);
    for (int i = 0; i < n; i++) zip_error_fini(&src[i].zerr);
    free(src);
    return rc;
}

// ----------------------------------------------------------------------------
// reader

static int zip_open_error(const char *path, int zerr) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, zerr);
    int code = zerr == ZIP_ER_NOENT ? DISA_ENOTFOUND
             : zerr == ZIP_ER_NOZIP || zerr == ZIP_ER_INCONS ? DISA_EFORMAT : DISA_EIO;
    int rc = disa_err(code, "%s: cannot open as .npz: %s", path, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return rc;
}

int npz_read(npy_array *a, const char *path, const char *name) {
    memset(a, 0, sizeof *a);
    char key[256];
    size_t nl = strlen(name);
    int has_ext = nl > 4 && strcmp(name + nl - 4, ".npy") == 0;
    if ((size_t)snprintf(key, sizeof key, "%s%s", name, has_ext ? "" : ".npy") >= sizeof key)
        return disa_err(DISA_EINVAL, "%s: array name too long", path);
    int zerr = 0, rc = 0;
    int rc0 = path_check_regular(path);  // libzip would block on a FIFO
    if (rc0) return rc0;
    zip_t *za = zip_open(path, ZIP_RDONLY, &zerr);
    if (!za) return zip_open_error(path, zerr);
    uint8_t *buf = NULL;
    zip_file_t *zf = NULL;
    zip_int64_t idx = zip_name_locate(za, key, 0);
    if (idx < 0) {
        char have[1024] = "";
        size_t used = 0;
        zip_int64_t ne = zip_get_num_entries(za, 0);
        for (zip_int64_t i = 0; i < ne && used < sizeof have - 64; i++) {
            const char *nm = zip_get_name(za, (zip_uint64_t)i, 0);
            used += (size_t)snprintf(have + used, sizeof have - used, "%s%s", i ? ", " : "", nm ? nm : "?");
        }
        rc = disa_err(DISA_ENOTFOUND, "%s: no array '%s' (entries: %s)", path, key, ne ? have : "none");
        goto fail;
    }
    zip_stat_t st;
    if (zip_stat_index(za, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
        rc = disa_err(DISA_EFORMAT, "%s: '%s': no size in the archive: %s", path, key, zip_strerror(za));
        goto fail;
    }
    // Whole-entry reads are meant for statistics, not sample batches.
    if (st.size > ((uint64_t)1 << 34)) {
        rc = disa_err(DISA_ERANGE, "%s: '%s' is %llu bytes, too large to read whole", path, key,
                      (unsigned long long)st.size);
        goto fail;
    }
    // The recorded sizes are only claims: a damaged 1 kB archive can declare gigabytes.
    // The entry is opened first (an unsupported method fails here), its compressed size
    // must fit in the archive, and stored data cannot grow while deflate expands at most
    // 1032:1; anything beyond is refused before the allocation (found by fuzz_npy).
    zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (!zf) {
        rc = disa_err(DISA_EFORMAT, "%s: cannot read '%s': %s", path, key, zip_strerror(za));
        goto fail;
    }
    struct stat fst;
    uint64_t cap = stat(path, &fst) == 0 ? (uint64_t)fst.st_size : UINT64_MAX;
    if ((st.valid & ZIP_STAT_COMP_SIZE) && st.comp_size < cap) cap = st.comp_size;
    if (!((st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method == ZIP_CM_STORE))
        cap = cap > ((uint64_t)1 << 40) ? UINT64_MAX : cap * 1032 + 64;
    if (st.size > cap) {
        rc = disa_err(DISA_EFORMAT, "%s: '%s' is damaged: %llu bytes recorded, at most %llu possible", path, key,
                      (unsigned long long)st.size, (unsigned long long)cap);
        goto fail;
    }
    buf = malloc(st.size ? (size_t)st.size : 1);
    if (!buf) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory for '%s' (%llu bytes)", path, key, (unsigned long long)st.size);
        goto fail;
    }
    uint64_t got = 0;
    for (;;) {
        // Reading on to end of entry lets libzip compare the CRC; a mismatch fails here.
        uint8_t extra;
        zip_int64_t r = got < st.size ? zip_fread(zf, buf + got, st.size - got) : zip_fread(zf, &extra, 1);
        if (r < 0) {
            rc = disa_err(DISA_EFORMAT, "%s: '%s' is damaged: %s", path, key, zip_file_strerror(zf));
            goto fail;
        }
        if (r == 0) break;
        if (got >= st.size) {
            rc = disa_err(DISA_EFORMAT, "%s: '%s' holds more data than its recorded size", path, key);
            goto fail;
        }
        got += (uint64_t)r;
    }
    if (got != st.size) {
        rc = disa_err(DISA_EFORMAT, "%s: '%s' ends after %llu of %llu bytes", path, key, (unsigned long long)got,
                      (unsigned long long)st.size);
        goto fail;
    }
    char label[4400];
    snprintf(label, sizeof label, "%s:%s", path, key);
    rc = npy_parse(a, buf, (size_t)st.size, label);
fail:
    if (zf) zip_fclose(zf);
    zip_discard(za);
    free(buf);
    return rc;
}

// ----------------------------------------------------------------------------
// ADM sample batch from a results folder

typedef struct {
    const image_entry *e;
    size_t n;
    int h, w;
    size_t img_bytes;   // h * w * 3
    uint8_t *img;       // the RGB image `cur`
    size_t cur;         // index into e of the decoded image, or n when none
} png_stream;

// Decode image k into s->img as RGB.
static int stream_load(png_stream *s, size_t k) {
    image_u8 im;
    int rc = png_read_u8(&im, s->e[k].path);
    if (rc) return rc;
    if (im.w != s->w || im.h != s->h) {
        rc = disa_err(DISA_ESHAPE, "%s: image is %d x %d, the batch is %d x %d (from %s)", s->e[k].path, im.w,
                      im.h, s->w, s->h, s->e[0].path);
    } else if (im.c == 3) {
        memcpy(s->img, im.data, s->img_bytes);
    } else {
        // Gray replicated to RGB, as PIL's convert('RGB') does for "L" images.
        size_t np = (size_t)s->w * s->h;
        for (size_t p = 0; p < np; p++) s->img[3 * p] = s->img[3 * p + 1] = s->img[3 * p + 2] = im.data[p];
    }
    image_u8_free(&im);
    s->cur = rc ? s->n : k;
    return rc;
}

static int stream_fill(void *ctx, uint8_t *dst /*[n]*/, uint64_t off, size_t n) {
    png_stream *s = ctx;
    while (n) {
        size_t k = (size_t)(off / s->img_bytes), within = (size_t)(off % s->img_bytes);
        if (k >= s->n) return disa_err(DISA_EINTERNAL, "npz image stream read past the last image");
        if (k != s->cur) {
            int rc = stream_load(s, k);
            if (rc) return rc;
        }
        size_t m = s->img_bytes - within;
        if (m > n) m = n;
        memcpy(dst, s->img + within, m);
        dst += m;
        off += m;
        n -= m;
    }
    return 0;
}

int npz_write_images(const char *out, const char *dir, int labels, npz_images_report *rep) {
    image_entry *e = NULL;
    size_t n = 0;
    int64_t *lab = NULL;
    png_stream s = {0};
    memset(rep, 0, sizeof *rep);
    int rc = image_dir_list(dir, &e, &n);
    if (rc) return rc;
    if (n == 0) {
        rc = disa_err(DISA_ENOTFOUND, "%s: no images (files named like 00000.png)", dir);
        goto fail;
    }
    lab = labels ? malloc(n * sizeof *lab) : NULL;
    if (labels && !lab) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory for %zu labels", dir, n);
        goto fail;
    }
    // Header pass: sizes must agree and every label must be present before anything is
    // written, so a bad folder fails in seconds rather than after hours of streaming.
    for (size_t i = 0; i < n; i++) {
        image_u8 im;
        if ((rc = png_probe(&im, e[i].path)) != 0) goto fail;
        if (i == 0) {
            s.w = im.w;
            s.h = im.h;
        } else if (im.w != s.w || im.h != s.h) {
            rc = disa_err(DISA_ESHAPE, "%s: image is %d x %d, but %s is %d x %d", e[i].path, im.w, im.h, e[0].path,
                          s.w, s.h);
        }
        if (!rc && labels) rc = image_class(&im, e[i].path, &lab[i]);
        image_u8_free(&im);
        if (rc) goto fail;
    }
    s.e = e;
    s.n = n;
    s.cur = n;
    s.img_bytes = (size_t)s.w * s.h * 3;
    s.img = malloc(s.img_bytes);
    if (!s.img) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory", dir);
        goto fail;
    }
    npz_entry ent[2] = {
        {.name = "arr_0", .dtype = NPY_U8, .ndim = 4, .shape = {(int64_t)n, s.h, s.w, 3}, .fill = stream_fill,
         .ctx = &s},
        {.name = "arr_1", .dtype = NPY_I64, .ndim = 1, .shape = {(int64_t)n}, .data = lab},
    };
    if ((rc = npz_write(out, ent, labels ? 2 : 1)) != 0) goto fail;
    rep->n = (int64_t)n;
    rep->first = e[0].index;
    rep->last = e[n - 1].index;
    rep->gaps = rep->last - rep->first + 1 - rep->n;
    rep->h = s.h;
    rep->w = s.w;
    rep->labels = labels;
fail:
    free(s.img);
    free(lab);
    image_dir_free(e, n);
    return rc;
}
