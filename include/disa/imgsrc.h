// imgsrc.h: images from a folder of PNGs, an ADM sample batch .npz or an IDX file, one
// at a time in order, without holding them all (disa-stats reads 50,000-image sets).
//
// A folder gives all *.png in file-name order (as torch-fidelity sorts them); an .npz
// streams arr_0 (uint8 [N, H, W, 3] or [N, H, W, 1], C order) from the archive; any
// other file is read as IDX images [N, H, W] (.gz allowed; Fashion-MNIST).
#ifndef DISA_IMGSRC_H
#define DISA_IMGSRC_H
#include <stdint.h>

#include "disa/idx.h"
#include "disa/image.h"

typedef enum { IMGSRC_DIR, IMGSRC_NPZ, IMGSRC_IDX, IMGSRC_KIND_COUNT } imgsrc_kind;

typedef struct imgsrc {
    imgsrc_kind kind;
    const char *path;
    int64_t n;              // images in the source
    char **files;           // folder: [n] paths, sorted
    struct zip *za;         // npz: the archive (libzip)
    struct zip_file *zf;    // npz: its arr_0 entry
    int h, w, c;            // npz, idx: the size of every image
    int64_t next;           // npz: index of the next image in the stream
    idx_array idx;          // idx: all images
    image_u8 im;            // folder: the current image
    uint8_t *pix;           // npz: [h, w, c] of the current image
} imgsrc;

// Open `path` (kind by the above rules). Errors name the path: DISA_ENOTFOUND (missing,
// empty folder, no arr_0), DISA_EFORMAT, DISA_ENOMEM. imgsrc_close is safe either way.
int imgsrc_open(imgsrc *s, const char *path);
// Image i, asked for with i = 0, 1, 2, ... (a folder and IDX allow any order): *pix
// [h, w, c] valid until the next call or imgsrc_close. PNG errors name the file.
int imgsrc_get(imgsrc *s, int64_t i, const uint8_t **pix, int *h, int *w, int *c);
void imgsrc_close(imgsrc *s);

// Write the first `limit` images (all with limit <= 0) as DIR/NNNNN.png (dir is created);
// *written gets the count.
int imgsrc_export_png(const char *dir, const char *src, int64_t limit, int64_t *written);

#endif
