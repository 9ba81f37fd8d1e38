// png.c: 8-bit gray/RGB PNG writer and reader over libpng, with tEXt recipes.
//
// The official pipeline writes its samples with cv2.imwrite (LTH14/mar engine_mar.py);
// here libpng writes the same pixels (RGB order in the file either way). libpng reports
// errors by longjmp: every libpng call sits in a *_body function whose only state lives
// in a job struct reached through a pointer, so nothing a longjmp could clobber is read
// after it, and the caller frees whatever the body allocated.
#include "disa/image.h"
#include "disa/err.h"
#include "disa/path.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Largest side accepted when reading; PNG allows 2^31-1 but nothing here makes images
// that large, and the limit stops a hostile header from asking for gigabytes.
#define PNG_MAX_SIDE (1 << 20)
// Largest decompressed ancillary chunk (zTXt, iCCP) read; our tEXt recipes are < 1 kB.
#define PNG_MAX_CHUNK (8u << 20)
// Headroom over the file size for libpng's own allocations when reading (row buffers of
// up to PNG_MAX_SIDE x 8 bytes, its structs): see rd_malloc.
#define PNG_MEM_HEADROOM ((size_t)32 << 20)

typedef struct {
    FILE *fp;
    char msg[256];  // libpng's error text, copied before the longjmp
} png_job;

static void on_error(png_structp png, png_const_charp msg) {
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    // Warnings (an ancillary chunk with a bad CRC, an odd gamma) do not stop decoding.
    (void)png;
    (void)msg;
}

const char *image_text(const image_u8 *im, const char *key) {
    for (int i = 0; i < im->n_text; i++)
        if (strcmp(im->key[i], key) == 0) return im->value[i];
    return NULL;
}

void image_u8_free(image_u8 *im) {
    for (int i = 0; i < im->n_text; i++) {
        free(im->key[i]);
        free(im->value[i]);
    }
    free(im->key);
    free(im->value);
    free(im->data);
    memset(im, 0, sizeof *im);
}

// ----------------------------------------------------------------------------
// writer

typedef struct {
    png_job base;
    int w, h, c;
    png_text *text;
    int n_text;
    png_row_fn fn;
    void *ctx;
    uint8_t *row;
    int rc;         // the row function's failure
} wr_job;

// 0 done, 1 the row function failed (j->rc), -1 libpng error (j->base.msg).
static int write_body(png_structp png, png_infop info, wr_job *j) {
    if (setjmp(png_jmpbuf(png))) return -1;
    png_init_io(png, j->base.fp);
    png_set_IHDR(png, info, (png_uint_32)j->w, (png_uint_32)j->h, 8,
                 j->c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (j->n_text) png_set_text(png, info, j->text, j->n_text);
    png_write_info(png, info);
    for (int y = 0; y < j->h; y++) {
        if ((j->rc = j->fn(j->ctx, y, j->row)) != 0) return 1;
        png_write_row(png, j->row);
    }
    png_write_end(png, info);
    return 0;
}

// PNG keywords: 1-79 Latin-1 printable characters, no leading, trailing or double spaces
// (PNG spec 11.3.4.2); kept to ASCII here.
static int key_ok(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 32 || k[i] > 126 || (k[i] == ' ' && k[i + 1] == ' ')) return 0;
    return 1;
}

// fsync a folder, so renames into it survive a crash. Filesystems that cannot sync a
// directory (EINVAL) are accepted.
static int sync_folder(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    return r == 0 || e == EINVAL ? 0 : -1;
}

// The folder holding `path`.
static int sync_parent(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    return sync_folder(dirname(buf));
}

int png_sync_dir(const char *dir) {
    return sync_folder(dir) == 0 ? 0 : disa_err(DISA_EIO, "%s: syncing the folder failed: %s", dir, strerror(errno));
}

static int write_stream(const char *path, int w, int h, int c, const image_kv *kv, int n_kv, png_row_fn fn,
                        void *ctx, int sync_dir) {
    if (w < 1 || h < 1 || w > PNG_MAX_SIDE * 16 || h > PNG_MAX_SIDE * 16 || (c != 1 && c != 3) || n_kv < 0)
        return disa_err(DISA_EINVAL, "%s: cannot write a %d x %d x %d PNG (sides >= 1, 1 or 3 channels)", path, w,
                        h, c);
    for (int i = 0; i < n_kv; i++)
        if (!kv[i].key || !kv[i].value || !key_ok(kv[i].key))
            return disa_err(DISA_EINVAL, "%s: bad PNG text key '%s' (1-79 printable characters)", path,
                            kv[i].key ? kv[i].key : "(null)");
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return disa_err(DISA_EINVAL, "%s: path too long", path);
    wr_job j = {.w = w, .h = h, .c = c, .n_text = n_kv, .fn = fn, .ctx = ctx};
    png_structp png = NULL;
    png_infop info = NULL;
    int rc = 0;
    j.base.fp = fopen(tmp, "wb");
    if (!j.base.fp) {
        rc = disa_err(DISA_EIO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    j.row = malloc((size_t)w * c);
    j.text = n_kv ? calloc((size_t)n_kv, sizeof(png_text)) : NULL;
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &j.base, on_error, on_warning);
    info = png ? png_create_info_struct(png) : NULL;
    if (!j.row || (n_kv && !j.text) || !png || !info) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory for the PNG writer", path);
        goto fail;
    }
    for (int i = 0; i < n_kv; i++) {
        // libpng takes non-const pointers but only reads them.
        j.text[i].compression = PNG_TEXT_COMPRESSION_NONE;
        j.text[i].key = (char *)kv[i].key;
        j.text[i].text = (char *)kv[i].value;
    }
    int r = write_body(png, info, &j);
    if (r > 0) {
        rc = j.rc;
        goto fail;
    }
    if (r < 0) {
        rc = disa_err(DISA_EIO, "%s: PNG write failed: %s", path, j.base.msg);
        goto fail;
    }
    png_destroy_write_struct(&png, &info);
    FILE *fp = j.base.fp;
    j.base.fp = NULL;
    int e = 0;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) e = errno;
    if (fclose(fp) != 0 && !e) e = errno;
    if (e) {
        rc = disa_err(DISA_EIO, "%s: write failed: %s", path, strerror(e));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        rc = disa_err(DISA_EIO, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (sync_dir && sync_parent(path) != 0) {
        // The file is complete under its final name; only its durability is in doubt.
        rc = disa_err(DISA_EIO, "%s: written, but syncing its folder failed: %s", path, strerror(errno));
    }
    free(j.row);
    free(j.text);
    return rc;
fail:
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    if (j.base.fp) fclose(j.base.fp);
    unlink(tmp);
    free(j.row);
    free(j.text);
    return rc;
}

typedef struct {
    const uint8_t *pix;
    size_t stride;
} mem_rows;

static int mem_row(void *ctx, int y, uint8_t *row /*[w*c]*/) {
    const mem_rows *m = ctx;
    memcpy(row, m->pix + (size_t)y * m->stride, m->stride);
    return 0;
}

int png_write_stream(const char *path, int w, int h, int c, const image_kv *kv, int n_kv, png_row_fn fn,
                     void *ctx) {
    return write_stream(path, w, h, c, kv, n_kv, fn, ctx, 1);
}

int png_write_u8(const char *path, const uint8_t *pix /*[h,w,c]*/, int w, int h, int c,
                 const image_kv *kv, int n_kv) {
    mem_rows m = {pix, (size_t)w * (c > 0 ? c : 0)};
    return write_stream(path, w, h, c, kv, n_kv, mem_row, &m, 1);
}

int png_write_u8_unsynced_dir(const char *path, const uint8_t *pix /*[h,w,c]*/, int w, int h, int c,
                              const image_kv *kv, int n_kv) {
    mem_rows m = {pix, (size_t)w * (c > 0 ? c : 0)};
    return write_stream(path, w, h, c, kv, n_kv, mem_row, &m, 0);
}

// ----------------------------------------------------------------------------
// reader

typedef struct {
    png_job base;
    image_u8 *im;
    int full;           // decode the pixels (else stop after the header)
    png_bytep *rows;    // row pointers into im->data
    int rc;             // a failure of ours (allocation) inside the body
    size_t mem_cap;     // largest single allocation libpng may make: file size + headroom
} rd_job;

// libpng buffers an ancillary chunk whole at the length the file claims, before reading
// it: a 93-byte file can ask for 2 GB (found by tests/fuzz/fuzz_png.c). No chunk can be
// longer than the file, so larger requests fail (libpng then skips the chunk and meets
// the end of the file, a clean "truncated" error).
static png_voidp rd_malloc(png_structp png, png_alloc_size_t n) {
    const rd_job *j = png_get_mem_ptr(png);
    return n > j->mem_cap ? NULL : malloc(n);
}

static void rd_free(png_structp png, png_voidp p) {
    (void)png;
    free(p);
}

static void read_fn(png_structp png, png_bytep data /*[n]*/, size_t n) {
    rd_job *j = png_get_io_ptr(png);
    if (fread(data, 1, n, j->base.fp) != n)
        png_error(png, ferror(j->base.fp) ? "read error" : "unexpected end of file (truncated)");
}

// Copy the text chunks libpng holds so far into im (replacing earlier copies).
static int take_text(png_structp png, png_infop info, image_u8 *im) {
    png_textp t = NULL;
    int n = 0;
    png_get_text(png, info, &t, &n);
    for (int i = 0; i < im->n_text; i++) {
        free(im->key[i]);
        free(im->value[i]);
    }
    free(im->key);
    free(im->value);
    im->key = im->value = NULL;
    im->n_text = 0;
    if (n <= 0) return 0;
    im->key = calloc((size_t)n, sizeof(char *));
    im->value = calloc((size_t)n, sizeof(char *));
    if (!im->key || !im->value) return -1;
    for (int i = 0; i < n; i++) {
        im->key[i] = strdup(t[i].key ? t[i].key : "");
        im->value[i] = strdup(t[i].text ? t[i].text : "");
        im->n_text = i + 1;
        if (!im->key[i] || !im->value[i]) return -1;
    }
    return 0;
}

// 0 done, 1 our failure (j->rc), -1 libpng error (j->base.msg).
static int read_body(png_structp png, png_infop info, rd_job *j) {
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_read_fn(png, j, read_fn);
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, PNG_MAX_SIDE, PNG_MAX_SIDE);
    png_set_chunk_malloc_max(png, PNG_MAX_CHUNK);  // decompressed chunks; see also rd_malloc
    png_read_info(png, info);
    image_u8 *im = j->im;
    int ct = png_get_color_type(png, info);
    im->w = (int)png_get_image_width(png, info);
    im->h = (int)png_get_image_height(png, info);
    im->bit_depth = png_get_bit_depth(png, info);
    // Everything becomes 8-bit gray or RGB (see image.h for the conversions).
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && im->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (im->bit_depth == 16) png_set_scale_16(png);
    if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    im->c = png_get_channels(png, info);
    if ((im->c != 1 && im->c != 3) || png_get_rowbytes(png, info) != (size_t)im->w * im->c)
        png_error(png, "unsupported pixel layout after conversion");
    if (!j->full) {
        if (take_text(png, info, im)) {
            j->rc = DISA_ENOMEM;
            return 1;
        }
        return 0;
    }
    size_t stride = (size_t)im->w * im->c;
    im->data = malloc(stride * (size_t)im->h);
    j->rows = malloc(sizeof(png_bytep) * (size_t)im->h);
    if (!im->data || !j->rows) {
        j->rc = DISA_ENOMEM;
        return 1;
    }
    for (int y = 0; y < im->h; y++) j->rows[y] = im->data + (size_t)y * stride;
    png_read_image(png, j->rows);
    // Reads through IEND, checking every remaining CRC, and collects text placed after
    // the image data too.
    png_read_end(png, info);
    if (take_text(png, info, im)) {
        j->rc = DISA_ENOMEM;
        return 1;
    }
    return 0;
}

static int read_png(image_u8 *im, const char *path, int full) {
    memset(im, 0, sizeof *im);
    rd_job j = {.im = im, .full = full};
    png_structp png = NULL;
    png_infop info = NULL;
    int rc = 0;
    if ((rc = path_fopen_regular(&j.base.fp, path)) != 0) return rc;
    unsigned char sig[8];
    size_t got = fread(sig, 1, 8, j.base.fp);
    if (got < 8 || png_sig_cmp(sig, 0, 8) != 0) {
        rc = disa_err(DISA_EFORMAT, "%s: not a PNG file (%s)", path,
                      got < 8 ? "shorter than the 8-byte signature" : "bad signature");
        goto fail;
    }
    struct stat fst;
    j.mem_cap = (fstat(fileno(j.base.fp), &fst) == 0 ? (size_t)fst.st_size : 0) + PNG_MEM_HEADROOM;
    png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &j.base, on_error, on_warning, &j, rd_malloc, rd_free);
    info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory for the PNG reader", path);
        goto fail;
    }
    int r = read_body(png, info, &j);
    if (r < 0) {
        rc = disa_err(DISA_EFORMAT, "%s: damaged or unsupported PNG: %s", path, j.base.msg);
        goto fail;
    }
    if (r > 0) {
        rc = disa_err(j.rc, "%s: out of memory decoding a %d x %d PNG", path, im->w, im->h);
        goto fail;
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(j.rows);
    fclose(j.base.fp);
    return 0;
fail:
    if (png) png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    free(j.rows);
    fclose(j.base.fp);
    image_u8_free(im);
    return rc;
}

int png_read_u8(image_u8 *im, const char *path) { return read_png(im, path, 1); }

int png_probe(image_u8 *im, const char *path) { return read_png(im, path, 0); }

int png_verify(const char *path, int w, int h, int c) {
    image_u8 im;
    int rc = read_png(&im, path, 1);
    if (rc) return rc;
    if (im.w != w || im.h != h || im.c != c)
        rc = disa_err(DISA_ESHAPE, "%s: image is %d x %d x %d, expected %d x %d x %d", path, im.w, im.h, im.c, w, h,
                      c);
    image_u8_free(&im);
    return rc;
}
