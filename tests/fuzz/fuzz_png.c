// fuzz_png.c: the PNG readers (src/io/png.c) on a temporary file holding the bytes:
// png_probe (header and text chunks), png_read_u8 (full decode with conversions to 8-bit
// gray/RGB), image_class on its text, and png_verify as the resume check calls it.
#include "fuzz.h"

#include "disa/err.h"
#include "disa/image.h"

FUZZ_TARGET(png) {
    const char *path = fuzz_tmpfile("png", ".png", data, size);
    if (!path) return 0;
    image_u8 im;
    if (png_probe(&im, path) == 0) image_u8_free(&im);
    if (png_read_u8(&im, path) == 0) {
        int64_t cls;
        (void)image_class(&im, path, &cls);
        volatile uint8_t s = im.data[(size_t)im.w * im.h * im.c - 1];
        (void)s;
        (void)png_verify(path, im.w, im.h, im.c);
        image_u8_free(&im);
    }
    disa_err_clear();
    return 0;
}
