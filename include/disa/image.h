// image.h: decoder output to pixels, PNG files (libpng), result folders, contact sheets
// and the ADM sample-batch .npz (libzip).
//
// A results folder holds one PNG per image, named by its index zero-padded to at least
// five digits ("00042.png", "123456.png"), as LTH14/mar engine_mar.py names them; every
// PNG is written under a temporary name in the same folder, fsynced and renamed, so a
// final name always holds a complete image. disa PNGs carry tEXt pairs with the recipe
// (job, index, class, seed, steps; STYLE §13).
#ifndef DISA_IMAGE_H
#define DISA_IMAGE_H
#include <stddef.h>
#include <stdint.h>

#include "disa/npy.h"

// ----------------------------------------------------------------------------
// pixels

// The official conversion of a decoded image (engine_mar.py evaluate, DESIGN §8), for the
// VAE and for pixel-space (patch tokenizer) models alike: v = (x + 1) / 2 in float32 (the
// torch step), v * 255 in float32, clipped to [0, 255], rounded half to even (np.round),
// cast to uint8; NaN gives 0. Output is channel-last, as PNG rows are.
void image_to_u8(uint8_t *out /*[B,H,W,C]*/, const float *x /*[B,C,H,W] in [-1,1]*/,
                 int B, int C, int H, int W);

// ----------------------------------------------------------------------------
// result folders

// "DIR/%05lld.png" into buf. DISA_EINVAL for a negative index or a name longer than n.
int image_name(char *buf, size_t n, const char *dir, int64_t index);
// The index of a canonical image file name ("00042.png" -> 42), or -1 for any other
// name (too few digits, extra leading zeros, other suffix, temporary files).
int64_t image_name_index(const char *base);

typedef struct image_entry {
    int64_t index;
    char *path;       // DIR/NAME, malloc'd
} image_entry;

// The canonical image files of `dir`, sorted by index; *out is malloc'd (free with
// image_dir_free), *n may be 0. Fails with DISA_ENOTFOUND / DISA_EIO naming the folder.
int image_dir_list(const char *dir, image_entry **out, size_t *n);
void image_dir_free(image_entry *e, size_t n);

// ----------------------------------------------------------------------------
// PNG (8-bit gray or RGB)

typedef struct image_kv {
    const char *key;    // tEXt keyword: 1..79 printable ASCII characters
    const char *value;  // any text without NUL
} image_kv;

typedef struct image_u8 {
    int w, h, c;        // c = 1 (gray) or 3 (RGB) after conversion
    int bit_depth;      // as stored in the file (16-bit and 1/2/4-bit files are converted to 8)
    uint8_t *data;      // [h, w, c], malloc'd; NULL after png_probe
    int n_text;
    char **key, **value; // text chunks (tEXt, zTXt, iTXt), malloc'd
} image_u8;

// Value of text key `key`, or NULL.
const char *image_text(const image_u8 *im, const char *key);
// The "class" text as an integer (-1 = unconditional is allowed): 0, DISA_ENOTFOUND (no
// such key) or DISA_EFORMAT (not an integer); `path` names the file in the message.
int image_class(const image_u8 *im, const char *path, int64_t *cls);
void image_u8_free(image_u8 *im);

// Write an 8-bit PNG (c = 1 gray, c = 3 RGB) with the given tEXt pairs (may be NULL/0).
// The file is written as PATH.tmp.PID in the same folder, fsynced, renamed to `path`,
// and the folder is fsynced; on any failure the temporary file is removed and `path`
// is untouched. Errors: DISA_EINVAL (sizes, bad key), DISA_EIO (create/write/rename).
int png_write_u8(const char *path, const uint8_t *pix /*[h,w,c]*/, int w, int h, int c,
                 const image_kv *kv, int n_kv);

// png_write_u8 for a batch of images in one folder: everything but the folder's fsync,
// which the caller does once for the batch with png_sync_dir before relying on any of the
// names (a crash before it may lose the renames, never leave a partial file under them).
int png_write_u8_unsynced_dir(const char *path, const uint8_t *pix /*[h,w,c]*/, int w, int h, int c,
                              const image_kv *kv, int n_kv);
// fsync the folder `dir` (filesystems that cannot sync a folder are accepted). DISA_EIO.
int png_sync_dir(const char *dir);

// The same, with rows produced on demand so an image never needs to sit in memory:
// fn(ctx, y, row) fills row y (w*c bytes), y = 0..h-1 in order, and returns 0 or a
// negative DISA_E* code (with its message set), which aborts the write.
typedef int (*png_row_fn)(void *ctx, int y, uint8_t *row /*[w*c]*/);
int png_write_stream(const char *path, int w, int h, int c, const image_kv *kv, int n_kv,
                     png_row_fn fn, void *ctx);

// Decode a whole PNG into *im (zeroed first). Palette images become RGB, gray+alpha and
// RGBA lose the alpha channel (as PIL's convert('RGB') does), 16-bit samples are scaled
// to 8 bits, 1/2/4-bit gray expanded. Never crashes on bad input: libpng errors come
// back as DISA_EFORMAT with the path and the reason ("not a PNG file", "unexpected end
// of file (truncated)", "IDAT: CRC error", ...); a missing file is DISA_ENOTFOUND.
// On failure *im holds nothing to free.
int png_read_u8(image_u8 *im, const char *path);
// Header and text chunks before the image data only (size, channels after conversion,
// recipe); im->data stays NULL. Cheap: reads the first few hundred bytes.
int png_probe(image_u8 *im, const char *path);
// Fully decode `path` (every CRC and the zlib stream checked up to IEND) and check it is
// w x h with c channels: 0 when complete and as expected, DISA_ENOTFOUND, DISA_EFORMAT
// (damaged) or DISA_ESHAPE (other size), with a message. For the resume logic.
int png_verify(const char *path, int w, int h, int c);

// ----------------------------------------------------------------------------
// contact sheets (grid.c)

typedef enum { GRID_ROWS_BY_INDEX, GRID_ROWS_BY_CLASS, GRID_ROWS_BY_COUNT } grid_rows_by;
const char *grid_rows_by_name(grid_rows_by r);   // "index", "class"
int grid_rows_by_parse(const char *s, grid_rows_by *out);

typedef struct grid_params {
    int cols;              // cells per row (10)
    grid_rows_by rows_by;  // index: images in index order, row-major; class: one row per
                           // class (tEXt "class"), classes ascending, each row its first
                           // `cols` images by index
    int64_t max;           // at most this many images, taken in sheet order (100; 0 = all)
    int sep;               // separator width in pixels between cells (2)
    uint8_t sep_value;     // separator and empty-cell gray level (255)
} grid_params;
void grid_params_init(grid_params *p);

#define GRID_MAX_ROW_CLASSES 256
typedef struct grid_report {
    int rows, cols, n;     // sheet layout and images placed
    int width, height, channels;
    int64_t row_class[GRID_MAX_ROW_CLASSES];  // rows by class: the class of row r (r < 256)
} grid_report;

// Write a contact sheet of the images in `dir` to `out` (atomically, as png_write_stream).
// Cells are the images' size (all must match); the sheet is RGB if any image is, else
// gray. Memory: one row of cells. Fails with DISA_ENOTFOUND (no images), DISA_EFORMAT
// (unreadable image, missing "class" text in class mode), DISA_ESHAPE (size mismatch),
// DISA_EINVAL (params), DISA_EIO.
int grid_write(const char *out, const char *dir, const grid_params *p, grid_report *rep);

// ----------------------------------------------------------------------------
// .npz (npz.c): numpy's savez layout, one stored (uncompressed) ZIP entry NAME.npy per
// array, ZIP64 where sizes need it; written with libzip.

// Fill bytes [offset, offset + n) of an array's raw data (after the .npy header). Calls
// come in order with contiguous offsets. Returns 0 or a negative DISA_E* code.
typedef int (*npz_fill_fn)(void *ctx, uint8_t *dst, uint64_t offset, size_t n);

typedef struct npz_entry {
    const char *name;      // key without ".npy"
    npy_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data;      // the raw data in memory, or NULL to stream it from `fill`
    npz_fill_fn fill;
    void *ctx;
} npz_entry;

// Write `path` atomically (libzip builds PATH.tmp.PID, which is fsynced and renamed).
// Streams: memory use does not grow with the arrays' size. Errors name the path and,
// for a failing fill, carry its message.
int npz_write(const char *path, const npz_entry *e, int n);

// Read array `name` (with or without ".npy") of an .npz written by numpy (np.savez or
// np.savez_compressed) or npz_write; the entry is read whole into a->data (for
// statistics such as the FID reference mu/sigma, not for 10 GB sample batches).
// DISA_ENOTFOUND when absent (the message lists the keys present), DISA_EFORMAT for a
// damaged archive or entry (CRC) or an unsupported dtype.
int npz_read(npy_array *a, const char *path, const char *name);

typedef struct npz_images_report {
    int64_t n, first, last;  // images written and their index range
    int64_t gaps;            // indices missing between first and last
    int h, w;
    int labels;              // arr_1 written
} npz_images_report;

// The sample batch OpenAI's guided-diffusion evaluator reads: arr_0 uint8 [N, H, W, 3]
// from the PNGs of `dir` in index order (gray images replicated to RGB), and with
// `labels` arr_1 int64 [N] from each PNG's tEXt "class". Streams one image at a time.
// Fails with DISA_ENOTFOUND (no images), DISA_ESHAPE (sizes differ), DISA_EFORMAT
// (damaged PNG, missing or non-integer class), DISA_EIO.
int npz_write_images(const char *out, const char *dir, int labels, npz_images_report *rep);

#endif
