// grid.c: contact sheets of a results folder (build/bin/disa-grid).
//
// No PyTorch counterpart (torchvision.utils.make_grid is the nearest: cells in a
// row-major grid with padding); here rows can also be classes, read from each PNG's
// tEXt "class". The sheet is streamed to png_write_stream one scanline at a time, so
// only the images of the current grid row are decoded and held.
#include "disa/image.h"
#include "disa/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *grid_rows_by_name(grid_rows_by r) {
    return r == GRID_ROWS_BY_INDEX ? "index" : r == GRID_ROWS_BY_CLASS ? "class" : "?";
}

int grid_rows_by_parse(const char *s, grid_rows_by *out) {
    if (strcmp(s, "index") == 0) *out = GRID_ROWS_BY_INDEX;
    else if (strcmp(s, "class") == 0) *out = GRID_ROWS_BY_CLASS;
    else return disa_err(DISA_EINVAL, "rows-by must be \"index\" or \"class\", got \"%s\"", s);
    return 0;
}

void grid_params_init(grid_params *p) {
    p->cols = 10;
    p->rows_by = GRID_ROWS_BY_INDEX;
    p->max = 100;
    p->sep = 2;
    p->sep_value = 255;
}

typedef struct {
    const image_entry *e;
    int64_t cls;
} labeled;

static int cmp_labeled(const void *a, const void *b) {
    const labeled *x = a, *y = b;
    if (x->cls != y->cls) return x->cls < y->cls ? -1 : 1;
    return x->e->index < y->e->index ? -1 : x->e->index > y->e->index;
}

typedef struct {
    const char **cell;  // [rows * cols] image paths, NULL = empty cell
    int rows, cols, cw, ch, c, sep;
    uint8_t sep_value;
    uint8_t *cache;     // [cols, ch, cw, c] the decoded images of grid row `loaded`
    int loaded;
} sheet;

// Decode the images of grid row r into the cache, converted to the sheet's channels.
static int sheet_load(sheet *s, int r) {
    size_t cell_bytes = (size_t)s->cw * s->ch * s->c;
    for (int k = 0; k < s->cols; k++) {
        const char *path = s->cell[(size_t)r * s->cols + k];
        if (!path) continue;
        image_u8 im;
        int rc = png_read_u8(&im, path);
        if (rc) return rc;
        if (im.w != s->cw || im.h != s->ch) {
            rc = disa_err(DISA_ESHAPE, "%s: image is %d x %d, the sheet's cells are %d x %d", path, im.w, im.h, s->cw,
                          s->ch);
            image_u8_free(&im);
            return rc;
        }
        uint8_t *dst = s->cache + (size_t)k * cell_bytes;
        if (im.c == s->c) {
            memcpy(dst, im.data, cell_bytes);
        } else {  // gray cell on an RGB sheet
            size_t np = (size_t)s->cw * s->ch;
            for (size_t p = 0; p < np; p++) dst[3 * p] = dst[3 * p + 1] = dst[3 * p + 2] = im.data[p];
        }
        image_u8_free(&im);
    }
    s->loaded = r;
    return 0;
}

static int sheet_row(void *ctx, int y, uint8_t *row /*[W*c]*/) {
    sheet *s = ctx;
    int pitch = s->ch + s->sep, r = y / pitch, yy = y % pitch;
    size_t width = (size_t)(s->cols * s->cw + (s->cols - 1) * s->sep) * s->c;
    memset(row, s->sep_value, width);
    if (yy >= s->ch) return 0;  // separator line
    if (r != s->loaded) {
        int rc = sheet_load(s, r);
        if (rc) return rc;
    }
    size_t cell_bytes = (size_t)s->cw * s->ch * s->c, line = (size_t)s->cw * s->c;
    for (int k = 0; k < s->cols; k++) {
        if (!s->cell[(size_t)r * s->cols + k]) continue;
        memcpy(row + (size_t)k * (s->cw + s->sep) * s->c, s->cache + (size_t)k * cell_bytes + (size_t)yy * line, line);
    }
    return 0;
}

int grid_write(const char *out, const char *dir, const grid_params *p, grid_report *rep) {
    memset(rep, 0, sizeof *rep);
    if (p->cols < 1 || p->cols > 1000 || p->sep < 0 || p->sep > 64 || p->max < 0 ||
        p->rows_by >= GRID_ROWS_BY_COUNT)
        return disa_err(DISA_EINVAL, "grid: cols must be 1..1000 (got %d), separator 0..64 (got %d), max >= 0",
                        p->cols, p->sep);
    image_entry *e = NULL;
    size_t n = 0;
    labeled *lb = NULL;
    sheet s = {.cols = p->cols, .sep = p->sep, .sep_value = p->sep_value, .loaded = -1};
    int rc = image_dir_list(dir, &e, &n);
    if (rc) return rc;
    if (n == 0) {
        rc = disa_err(DISA_ENOTFOUND, "%s: no images (files named like 00000.png)", dir);
        goto fail;
    }
    size_t max = p->max > 0 && (uint64_t)p->max < n ? (size_t)p->max : n;
    size_t placed = 0;
    if (p->rows_by == GRID_ROWS_BY_INDEX) {
        s.rows = (int)((max + (size_t)p->cols - 1) / (size_t)p->cols);
        s.cell = calloc((size_t)s.rows * p->cols, sizeof *s.cell);
        if (!s.cell) {
            rc = disa_err(DISA_ENOMEM, "grid: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < max; i++) s.cell[i] = e[i].path;
        placed = max;
    } else {
        // Every file's class is needed to know the rows, so all headers are read (cheap:
        // png_probe stops before the image data).
        lb = malloc(n * sizeof *lb);
        if (!lb) {
            rc = disa_err(DISA_ENOMEM, "grid: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            image_u8 im;
            if ((rc = png_probe(&im, e[i].path)) != 0) goto fail;
            lb[i].e = &e[i];
            rc = image_class(&im, e[i].path, &lb[i].cls);
            image_u8_free(&im);
            if (rc) goto fail;
        }
        qsort(lb, n, sizeof *lb, cmp_labeled);
        // Two passes over the sorted list: count the rows, then fill the cells.
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                s.cell = calloc((size_t)s.rows * p->cols, sizeof *s.cell);
                if (!s.cell) {
                    rc = disa_err(DISA_ENOMEM, "grid: out of memory");
                    goto fail;
                }
            }
            int row = 0, col = 0;
            placed = 0;
            for (size_t i = 0; i < n && placed < max; i++) {
                if (i > 0 && lb[i].cls != lb[i - 1].cls && col > 0) {
                    row++;
                    col = 0;
                }
                if (col == p->cols) continue;  // this class's row is full
                if (pass == 1) s.cell[(size_t)row * p->cols + (size_t)col] = lb[i].e->path;
                if (pass == 1 && col == 0 && row < GRID_MAX_ROW_CLASSES) rep->row_class[row] = lb[i].cls;
                col++;
                placed++;
            }
            s.rows = row + (col > 0);
        }
    }
    // Cell size and channels from the images placed; all must agree in size.
    for (size_t i = 0; i < (size_t)s.rows * p->cols; i++) {
        if (!s.cell[i]) continue;
        image_u8 im;
        if ((rc = png_probe(&im, s.cell[i])) != 0) goto fail;
        if (!s.cw) {
            s.cw = im.w;
            s.ch = im.h;
        } else if (im.w != s.cw || im.h != s.ch) {
            rc = disa_err(DISA_ESHAPE, "%s: image is %d x %d, other images are %d x %d", s.cell[i], im.w, im.h, s.cw,
                          s.ch);
        }
        if (im.c > s.c) s.c = im.c;
        image_u8_free(&im);
        if (rc) goto fail;
    }
    int64_t W = (int64_t)s.cols * s.cw + (int64_t)(s.cols - 1) * s.sep;
    int64_t H = (int64_t)s.rows * s.ch + (int64_t)(s.rows - 1) * s.sep;
    if (W > (1 << 24) || H > (1 << 24)) {
        rc = disa_err(DISA_ERANGE, "grid: a %lld x %lld sheet is too large; lower --max or --cols", (long long)W,
                      (long long)H);
        goto fail;
    }
    s.cache = malloc((size_t)s.cols * s.cw * s.ch * s.c);
    if (!s.cache) {
        rc = disa_err(DISA_ENOMEM, "grid: out of memory for one row of %d cells", s.cols);
        goto fail;
    }
    char cols_s[16], n_s[24];
    snprintf(cols_s, sizeof cols_s, "%d", s.cols);
    snprintf(n_s, sizeof n_s, "%zu", placed);
    const image_kv kv[] = {{"source", dir}, {"rows_by", grid_rows_by_name(p->rows_by)}, {"cols", cols_s},
                           {"images", n_s}};
    if ((rc = png_write_stream(out, (int)W, (int)H, s.c, kv, 4, sheet_row, &s)) != 0) goto fail;
    rep->rows = s.rows;
    rep->cols = s.cols;
    rep->n = (int)placed;
    rep->width = (int)W;
    rep->height = (int)H;
    rep->channels = s.c;
fail:
    free(s.cache);
    free(s.cell);
    free(lb);
    image_dir_free(e, n);
    return rc;
}
