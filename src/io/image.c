// image.c: float image to uint8 pixels, and the naming of results folders.
// Mirrors LTH14/mar engine_mar.py evaluate(): the (x + 1) / 2, * 255, np.clip, np.round,
// astype(uint8) chain, and the '{}.png'.format(str(img_id).zfill(5)) file names.
#include "disa/image.h"
#include "disa/err.h"
#include "disa/path.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// pixels

void image_to_u8(uint8_t *out /*[B,H,W,C]*/, const float *x /*[B,C,H,W] in [-1,1]*/,
                 int B, int C, int H, int W) {
    size_t HW = (size_t)H * W;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C * HW;
        uint8_t *ob = out + (size_t)b * C * HW;
        for (int ch = 0; ch < C; ch++) {
            const float *xc = xb + (size_t)ch * HW;
            for (size_t p = 0; p < HW; p++) {
                // Each step rounded to float32 as torch and numpy do it; volatile-free
                // because no step is a multiply-add the compiler could fuse.
                float v = (xc[p] + 1.0f) / 2.0f;
                v = v * 255.0f;
                uint8_t u;
                if (!(v > 0.0f)) u = 0;  // also NaN
                else if (v >= 255.0f) u = 255;
                else u = (uint8_t)nearbyintf(v);  // default rounding mode: half to even, as np.round
                ob[p * C + ch] = u;
            }
        }
    }
}

int image_class(const image_u8 *im, const char *path, int64_t *cls) {
    const char *v = image_text(im, "class");
    if (!v) return disa_err(DISA_ENOTFOUND, "%s: no 'class' text chunk (not written by disa-gen?)", path);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < -1)
        return disa_err(DISA_EFORMAT, "%s: 'class' text is \"%s\", not an integer >= -1", path, v);
    *cls = x;
    return 0;
}

// ----------------------------------------------------------------------------
// names

int image_name(char *buf, size_t n, const char *dir, int64_t index) {
    if (index < 0) return disa_err(DISA_EINVAL, "image index %lld is negative", (long long)index);
    size_t dl = strlen(dir);
    const char *slash = dl && dir[dl - 1] == '/' ? "" : "/";
    int k = snprintf(buf, n, "%s%s%05lld.png", dir, slash, (long long)index);
    if (k < 0 || (size_t)k >= n) return disa_err(DISA_EINVAL, "%s: image path too long", dir);
    return 0;
}

int64_t image_name_index(const char *base) {
    size_t nd = 0;
    while (base[nd] >= '0' && base[nd] <= '9') nd++;
    if (nd < 5 || nd > 18 || strcmp(base + nd, ".png") != 0) return -1;
    // Canonical only: zero padding to exactly five digits, no more ("000042.png" is not
    // image 42), so one index has one name and a folder cannot hold it twice.
    if (nd > 5 && base[0] == '0') return -1;
    int64_t v = 0;
    for (size_t i = 0; i < nd; i++) v = v * 10 + (base[i] - '0');
    return v;
}

static int cmp_entry(const void *a, const void *b) {
    int64_t x = ((const image_entry *)a)->index, y = ((const image_entry *)b)->index;
    return x < y ? -1 : x > y;
}

void image_dir_free(image_entry *e, size_t n) {
    for (size_t i = 0; e && i < n; i++) free(e[i].path);
    free(e);
}

int image_dir_list(const char *dir, image_entry **out, size_t *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return disa_err(errno == ENOENT ? DISA_ENOTFOUND : DISA_EIO, "%s: cannot open folder: %s", dir,
                        strerror(errno));
    image_entry *e = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        int64_t idx = image_name_index(de->d_name);
        if (idx < 0) continue;
        if (cnt == cap) {
            size_t nc = cap ? 2 * cap : 256;
            image_entry *ne = realloc(e, nc * sizeof *ne);
            if (!ne) {
                rc = disa_err(DISA_ENOMEM, "%s: out of memory listing images", dir);
                goto fail;
            }
            e = ne;
            cap = nc;
        }
        char path[4096];
        if ((rc = image_name(path, sizeof path, dir, idx)) != 0) goto fail;
        // A folder or FIFO under an image's name is a broken results folder: say so here,
        // the same way in every program, instead of blocking on it or skipping it.
        if ((rc = path_check_regular(path)) != 0) goto fail;
        e[cnt].index = idx;
        e[cnt].path = strdup(path);
        if (!e[cnt].path) {
            rc = disa_err(DISA_ENOMEM, "%s: out of memory listing images", dir);
            goto fail;
        }
        cnt++;
        errno = 0;
    }
    if (errno) {
        rc = disa_err(DISA_EIO, "%s: cannot read folder: %s", dir, strerror(errno));
        goto fail;
    }
    closedir(d);
    if (cnt) qsort(e, cnt, sizeof *e, cmp_entry);
    *out = e;
    *n = cnt;
    return 0;
fail:
    closedir(d);
    image_dir_free(e, cnt);
    return rc;
}
