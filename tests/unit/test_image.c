// Unit tests of src/io/image.c, png.c, npz.c and grid.c: pixel conversion, file names,
// PNG round trips with tEXt, PNGs written by PIL, damaged PNGs (every truncation, bit
// flips), writes that fail leaving no file under the final name, .npz round trips, .npz
// files written by numpy (stored and deflated), the ADM sample batch, contact sheets.
// Third-party files come from tools/golden/vae.py (tests/data/; DISA_TEST_DATA overrides).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/err.h"
#include "disa/image.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpdir.h"

static const char *data_dir(void) {
    const char *d = getenv("DISA_TEST_DATA");
    return d ? d : "tests/data";
}

// A fresh empty folder under g_dir.
static void subdir(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", g_dir, name);
    mkdir(out, 0755);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

// Number of entries of `dir` whose name contains `needle` (temporary files left behind).
static int count_names(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) n += strstr(de->d_name, needle) != NULL;
    if (d) closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n ? *n : 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

// Pixel pattern of a test image: distinct per (seed, y, x, ch).
static uint8_t pat(int seed, int y, int x, int ch) { return (uint8_t)(seed * 53 + y * 17 + x * 7 + ch * 101); }

static uint8_t *pattern(int seed, int w, int h, int c) {
    uint8_t *p = malloc((size_t)w * h * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) p[((size_t)y * w + x) * c + ch] = pat(seed, y, x, ch);
    return p;
}

static void write_pattern(const char *path, int seed, int w, int h, int c, const char *cls) {
    uint8_t *p = pattern(seed, w, h, c);
    image_kv kv[] = {{"class", cls}};
    assert_int_equal(png_write_u8(path, p, w, h, c, kv, cls ? 1 : 0), 0);
    free(p);
}

// ----------------------------------------------------------------------------
// pixels and names

static void test_to_u8(void **state) {
    (void)state;
    // x[b=0..1][c=0..2][h=0][w=0..1] -> out[b][h][w][c]
    float x[12] = {-1.0f, 1.0f, 0.0f, 2.0f, -3.0f, NAN, INFINITY, -INFINITY, 0.5f, -0.5f, 1e-8f, -0.0f};
    uint8_t u[12];
    image_to_u8(u, x, 2, 3, 1, 2);
    // (0+1)/2*255 = 127.5 exactly: half to even gives 128. 0.5 -> 191.25 -> 191;
    // -0.5 -> 63.75 -> 64.
    // NaN -> 0, +-inf clip, 1e-8 vanishes next to 1 in float32. (vae_image_to_u8 golden
    // checks the half-way cases against numpy exhaustively.)
    const uint8_t want[12] = {0, 128, 0, 255, 255, 0, 255, 191, 128, 0, 64, 128};
    assert_memory_equal(u, want, 12);
}

static void test_names(void **state) {
    (void)state;
    char b[64];
    assert_int_equal(image_name(b, sizeof b, "out", 42), 0);
    assert_string_equal(b, "out/00042.png");
    assert_int_equal(image_name(b, sizeof b, "out/", 123456), 0);
    assert_string_equal(b, "out/123456.png");
    assert_int_equal(image_name(b, sizeof b, "out", -1), DISA_EINVAL);
    assert_int_equal(image_name(b, 8, "out", 1), DISA_EINVAL);
    assert_int_equal(image_name_index("00042.png"), 42);
    assert_int_equal(image_name_index("00000.png"), 0);
    assert_int_equal(image_name_index("123456.png"), 123456);
    assert_int_equal(image_name_index("000042.png"), -1);
    assert_int_equal(image_name_index("0042.png"), -1);
    assert_int_equal(image_name_index("00042.png.tmp.17"), -1);
    assert_int_equal(image_name_index("00042.PNG"), -1);
    assert_int_equal(image_name_index("grid.png"), -1);

    char d[256], p[300];
    subdir(d, sizeof d, "names");
    const char *files[] = {"00003.png", "00001.png", "123456.png", "junk.txt", "000002.png", "00004.png.tmp.5"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", d, files[i]);
        spit(p, "x", 1);
    }
    image_entry *e;
    size_t n;
    assert_int_equal(image_dir_list(d, &e, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(e[0].index, 1);
    assert_int_equal(e[1].index, 3);
    assert_int_equal(e[2].index, 123456);
    snprintf(p, sizeof p, "%s/00003.png", d);
    assert_string_equal(e[1].path, p);
    image_dir_free(e, n);
    snprintf(p, sizeof p, "%s/nope", d);
    assert_int_equal(image_dir_list(p, &e, &n), DISA_ENOTFOUND);
    assert_non_null(strstr(disa_errmsg(), "nope: cannot open folder"));
}

// ----------------------------------------------------------------------------
// PNG

static void roundtrip(int w, int h, int c) {
    char d[256], path[300];
    subdir(d, sizeof d, c == 3 ? "rt_rgb" : "rt_gray");
    snprintf(path, sizeof path, "%s/00007.png", d);
    uint8_t *p = pattern(c, w, h, c);
    image_kv kv[] = {{"job", "demo job"}, {"index", "7"}, {"class", "207"}, {"seed", "1"},
                     {"steps", "DiSA 50->5 linear, K=64"}};
    assert_int_equal(png_write_u8(path, p, w, h, c, kv, 5), 0);
    assert_int_equal(count_names(d, ".tmp"), 0);
    image_u8 im;
    assert_int_equal(png_read_u8(&im, path), 0);
    assert_int_equal(im.w, w);
    assert_int_equal(im.h, h);
    assert_int_equal(im.c, c);
    assert_int_equal(im.bit_depth, 8);
    assert_memory_equal(im.data, p, (size_t)w * h * c);
    assert_int_equal(im.n_text, 5);
    for (int i = 0; i < 5; i++) assert_string_equal(image_text(&im, kv[i].key), kv[i].value);
    assert_null(image_text(&im, "nope"));
    int64_t cls;
    assert_int_equal(image_class(&im, path, &cls), 0);
    assert_int_equal(cls, 207);
    image_u8_free(&im);
    // The header probe sees size, channels and recipe without decoding pixels.
    assert_int_equal(png_probe(&im, path), 0);
    assert_null(im.data);
    assert_int_equal(im.w, w);
    assert_int_equal(im.c, c);
    assert_string_equal(image_text(&im, "steps"), kv[4].value);
    image_u8_free(&im);
    assert_int_equal(png_verify(path, w, h, c), 0);
    assert_int_equal(png_verify(path, w + 1, h, c), DISA_ESHAPE);
    assert_non_null(strstr(disa_errmsg(), "expected"));
    free(p);
}

static void test_png_roundtrip(void **state) {
    (void)state;
    roundtrip(37, 21, 3);
    roundtrip(300, 200, 1);
    char path[300];
    snprintf(path, sizeof path, "%s/x.png", g_dir);
    uint8_t px[4] = {0};
    image_kv bad[] = {{"", "v"}};
    assert_int_equal(png_write_u8(path, px, 2, 2, 1, bad, 1), DISA_EINVAL);
    image_kv bad2[] = {{" lead", "v"}};
    assert_int_equal(png_write_u8(path, px, 2, 2, 1, bad2, 1), DISA_EINVAL);
    assert_int_equal(png_write_u8(path, px, 2, 2, 2, NULL, 0), DISA_EINVAL);
    assert_int_equal(png_write_u8(path, px, 0, 2, 1, NULL, 0), DISA_EINVAL);
    assert_false(exists(path));
}

// A row function that fails half-way, as a decode or disk error would.
static int failing_row(void *ctx, int y, uint8_t *row) {
    memset(row, 7, 3 * 4);
    if (y == *(int *)ctx) return disa_err(DISA_EIO, "row %d: simulated failure", y);
    return 0;
}

static void test_png_write_failures(void **state) {
    (void)state;
    char d[256], file[300], path[512];
    subdir(d, sizeof d, "wfail");
    // A parent that is a regular file: nothing can be created.
    snprintf(file, sizeof file, "%s/plainfile", d);
    spit(file, "x", 1);
    snprintf(path, sizeof path, "%s/00000.png", file);
    uint8_t px[12] = {0};
    assert_int_equal(png_write_u8(path, px, 2, 2, 3, NULL, 0), DISA_EIO);
    assert_non_null(strstr(disa_errmsg(), "cannot create"));
    assert_false(exists(path));
    // A parent that does not exist.
    snprintf(path, sizeof path, "%s/no/such/00000.png", d);
    assert_int_equal(png_write_u8(path, px, 2, 2, 3, NULL, 0), DISA_EIO);
    // Failure half-way: the final name never appears and no temporary stays.
    snprintf(path, sizeof path, "%s/00001.png", d);
    int fail_at = 2;
    assert_int_equal(png_write_stream(path, 4, 5, 3, NULL, 0, failing_row, &fail_at), DISA_EIO);
    assert_non_null(strstr(disa_errmsg(), "simulated failure"));
    assert_false(exists(path));
    assert_int_equal(count_names(d, ".tmp"), 0);
    // A failed rewrite leaves the complete earlier file in place.
    write_pattern(path, 1, 4, 5, 3, "3");
    assert_int_equal(png_write_stream(path, 4, 5, 3, NULL, 0, failing_row, &fail_at), DISA_EIO);
    assert_int_equal(png_verify(path, 4, 5, 3), 0);
    image_u8 im;
    assert_int_equal(png_read_u8(&im, path), 0);
    assert_int_equal(im.data[0], pat(1, 0, 0, 0));
    image_u8_free(&im);
    assert_int_equal(count_names(d, ".tmp"), 0);
}

static void test_png_damaged(void **state) {
    (void)state;
    char d[256], good[300], bad[300];
    subdir(d, sizeof d, "damaged");
    snprintf(good, sizeof good, "%s/good.png", d);
    snprintf(bad, sizeof bad, "%s/bad.png", d);
    write_pattern(good, 5, 9, 7, 3, "1");
    size_t n;
    unsigned char *b = slurp(good, &n);
    image_u8 im;
    // Every truncation is an error with a message, never a crash or a success.
    for (size_t k = 0; k < n; k++) {
        spit(bad, b, k);
        int rc = png_read_u8(&im, bad);
        if (rc == 0) fail_msg("a PNG truncated to %zu of %zu bytes was accepted", k, n);
        assert_null(im.data);
        if (k >= 8 && k < n - 12) assert_non_null(strstr(disa_errmsg(), "truncated"));
        assert_int_not_equal(png_verify(bad, 9, 7, 3), 0);
    }
    spit(bad, b, 5);
    assert_int_equal(png_read_u8(&im, bad), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "not a PNG file"));
    spit(bad, "GIF89a this is not a png", 24);
    assert_int_equal(png_read_u8(&im, bad), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "bad signature"));
    // Single bit flips anywhere: decoding may fail or (in an ignorable place) succeed,
    // but must not crash; a flip inside the image data is caught by its CRC.
    int caught = 0;
    for (size_t k = 8; k < n; k++) {
        b[k] ^= 0x10;
        spit(bad, b, n);
        int rc = png_read_u8(&im, bad);
        caught += rc != 0;
        if (rc == 0) image_u8_free(&im);
        b[k] ^= 0x10;
    }
    assert_true(caught > (int)(n - 8) / 2);
    free(b);
    snprintf(bad, sizeof bad, "%s/missing.png", d);
    assert_int_equal(png_read_u8(&im, bad), DISA_ENOTFOUND);
    assert_int_equal(png_verify(bad, 1, 1, 1), DISA_ENOTFOUND);
}

// PNGs written by PIL (tools/golden/vae.py data_files): pixels, text, conversions.
static void test_png_thirdparty(void **state) {
    (void)state;
    char p[512];
    image_u8 im;
    snprintf(p, sizeof p, "%s/png/00002.png", data_dir());
    assert_int_equal(png_read_u8(&im, p), 0);
    assert_int_equal(im.w, 8);
    assert_int_equal(im.h, 6);
    assert_int_equal(im.c, 3);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 8; x++)
            for (int c = 0; c < 3; c++)
                assert_int_equal(im.data[(y * 8 + x) * 3 + c], (2 * 37 + y * 11 + x * 5 + c * 3) % 256);
    assert_string_equal(image_text(&im, "class"), "3");
    assert_string_equal(image_text(&im, "index"), "2");
    image_u8_free(&im);
    // 16-bit gray is scaled to 8 bits: v * 3000 / 257, rounded.
    snprintf(p, sizeof p, "%s/png_misc/gray16.png", data_dir());
    assert_int_equal(png_read_u8(&im, p), 0);
    assert_int_equal(im.bit_depth, 16);
    assert_int_equal(im.c, 1);
    assert_int_equal(im.w, 5);
    for (int i = 0; i < 20; i++) assert_true(fabs(im.data[i] - i * 3000 / 257.0) <= 0.5 + 1e-9);
    image_u8_free(&im);
    // Palette to RGB.
    snprintf(p, sizeof p, "%s/png_misc/palette.png", data_dir());
    assert_int_equal(png_read_u8(&im, p), 0);
    assert_int_equal(im.c, 3);
    const uint8_t pal[4][3] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    for (int i = 0; i < 12; i++) assert_memory_equal(im.data + 3 * i, pal[i % 4], 3);
    image_u8_free(&im);
    // RGBA loses its alpha.
    snprintf(p, sizeof p, "%s/png_misc/rgba.png", data_dir());
    assert_int_equal(png_read_u8(&im, p), 0);
    assert_int_equal(im.c, 3);
    assert_int_equal(im.data[0], 10);
    assert_int_equal(im.data[4], 20);
    assert_int_equal(im.data[17], 30);
    image_u8_free(&im);
}

// ----------------------------------------------------------------------------
// npz

static int fill_f64(void *ctx, uint8_t *dst, uint64_t off, size_t n) {
    // Bytes of the doubles 0.5 * i, produced piecewise as the writer asks for them; a
    // non-zero *ctx makes the source fail with that code.
    int fail = *(int *)ctx;
    if (fail) return disa_err(fail, "source broke at byte %llu", (unsigned long long)off);
    for (size_t k = 0; k < n; k++) {
        uint64_t o = off + k;
        double v = 0.5 * (double)(o / 8);
        dst[k] = ((uint8_t *)&v)[o % 8];
    }
    return 0;
}

static void test_npz_roundtrip(void **state) {
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/rt.npz", g_dir);
    uint8_t *u8 = pattern(9, 5, 4, 3);
    int64_t lab[4] = {3, -1, 999, 0};
    int ok = 0;
    npz_entry e[3] = {
        {.name = "arr_0", .dtype = NPY_U8, .ndim = 4, .shape = {1, 4, 5, 3}, .data = u8},
        {.name = "arr_1", .dtype = NPY_I64, .ndim = 1, .shape = {4}, .data = lab},
        {.name = "mu", .dtype = NPY_F64, .ndim = 2, .shape = {100, 3}, .fill = fill_f64, .ctx = &ok},
    };
    assert_int_equal(npz_write(path, e, 3), 0);
    npy_array a;
    assert_int_equal(npz_read(&a, path, "arr_0"), 0);
    assert_int_equal(a.dtype, NPY_U8);
    assert_int_equal(a.ndim, 4);
    assert_int_equal(a.shape[2], 5);
    assert_memory_equal(a.data, u8, 60);
    npy_free(&a);
    assert_int_equal(npz_read(&a, path, "arr_1.npy"), 0);
    assert_int_equal(a.dtype, NPY_I64);
    assert_memory_equal(a.data, lab, sizeof lab);
    npy_free(&a);
    assert_int_equal(npz_read(&a, path, "mu"), 0);
    assert_int_equal(a.dtype, NPY_F64);
    assert_int_equal(a.shape[0], 100);
    for (int i = 0; i < 300; i++) assert_true(((double *)a.data)[i] == 0.5 * i);
    npy_free(&a);
    assert_int_equal(npz_read(&a, path, "sigma"), DISA_ENOTFOUND);
    assert_non_null(strstr(disa_errmsg(), "entries: arr_0.npy, arr_1.npy, mu.npy"));
    free(u8);
    assert_int_equal(count_names(g_dir, "rt.npz.tmp"), 0);
}

static void test_npz_numpy(void **state) {
    (void)state;
    const char *files[] = {"numpy_stored.npz", "numpy_deflated.npz"};
    for (int f = 0; f < 2; f++) {
        char p[512];
        snprintf(p, sizeof p, "%s/npz/%s", data_dir(), files[f]);
        npy_array mu, sg, ar;
        assert_int_equal(npz_read(&mu, p, "mu"), 0);
        assert_int_equal(npz_read(&sg, p, "sigma"), 0);
        assert_int_equal(npz_read(&ar, p, "arr_0"), 0);
        assert_int_equal(mu.dtype, NPY_F64);
        assert_int_equal(mu.shape[0], 8);
        assert_int_equal(sg.ndim, 2);
        const double *m = mu.data, *s = sg.data;
        for (int i = 0; i < 8; i++) {
            assert_true(m[i] == i / 4.0 - 1);
            for (int j = 0; j < 8; j++) assert_true(s[i * 8 + j] == m[i] * m[j] + (i == j));
        }
        assert_int_equal(ar.dtype, NPY_U8);
        for (int i = 0; i < 96; i++) assert_int_equal(((uint8_t *)ar.data)[i], (i * 7) % 256);
        npy_free(&mu);
        npy_free(&sg);
        npy_free(&ar);
    }
    // A flipped byte inside the deflated-or-stored data fails the CRC, not silently.
    char src[512], dst[300];
    snprintf(src, sizeof src, "%s/npz/numpy_stored.npz", data_dir());
    snprintf(dst, sizeof dst, "%s/flipped.npz", g_dir);
    size_t n;
    unsigned char *b = slurp(src, &n);
    // The first "mu.npy" is the name in its local header; the entry's data follows the
    // name and the extra field (whose length sits just before the name), then 128
    // bytes of .npy header and the 8 doubles. Flip a byte of the last double.
    unsigned char *hit = memmem(b, n, "mu.npy", 6);
    assert_non_null(hit);
    size_t extra = hit[-2] | (size_t)hit[-1] << 8;
    hit[6 + extra + 128 + 60] ^= 0x01;
    spit(dst, b, n);
    npy_array a;
    assert_int_equal(npz_read(&a, dst, "mu"), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "damaged"));
    // Truncations: an error, never a crash.
    for (size_t k = 0; k < n; k += 7) {
        spit(dst, b, k);
        assert_int_not_equal(npz_read(&a, dst, "sigma"), 0);
    }
    free(b);
    snprintf(dst, sizeof dst, "%s/none.npz", g_dir);
    assert_int_equal(npz_read(&a, dst, "mu"), DISA_ENOTFOUND);
}

static void test_npz_write_failures(void **state) {
    (void)state;
    char d[256], file[300], path[512];
    subdir(d, sizeof d, "npzfail");
    int64_t lab[2] = {1, 2};
    npz_entry e[1] = {{.name = "arr_1", .dtype = NPY_I64, .ndim = 1, .shape = {2}, .data = lab}};
    snprintf(file, sizeof file, "%s/plainfile", d);
    spit(file, "x", 1);
    snprintf(path, sizeof path, "%s/out.npz", file);
    assert_int_equal(npz_write(path, e, 1), DISA_EIO);
    assert_false(exists(path));
    // A streaming source failing part-way: its message comes back, nothing is left.
    int bad = DISA_EFORMAT;
    npz_entry f[2] = {e[0], {.name = "mu", .dtype = NPY_F64, .ndim = 1, .shape = {5000}, .fill = fill_f64, .ctx = &bad}};
    snprintf(path, sizeof path, "%s/out.npz", d);
    assert_int_equal(npz_write(path, f, 2), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "source broke"));
    assert_false(exists(path));
    assert_int_equal(count_names(d, "out.npz"), 0);
    // A failed rewrite keeps the earlier archive.
    assert_int_equal(npz_write(path, e, 1), 0);
    assert_int_equal(npz_write(path, f, 2), DISA_EFORMAT);
    npy_array a;
    assert_int_equal(npz_read(&a, path, "arr_1"), 0);
    npy_free(&a);
    assert_int_equal(npz_read(&a, path, "mu"), DISA_ENOTFOUND);
    assert_int_equal(count_names(d, ".tmp"), 0);
}

static void test_npz_images(void **state) {
    (void)state;
    char d[256], p[300], out[300];
    subdir(d, sizeof d, "batch");
    int idx[4] = {0, 1, 2, 5}, ch[4] = {3, 3, 1, 3};
    const char *cls[4] = {"4", "0", "999", "4"};
    for (int i = 0; i < 4; i++) {
        image_name(p, sizeof p, d, idx[i]);
        write_pattern(p, i, 6, 4, ch[i], cls[i]);
    }
    snprintf(out, sizeof out, "%s/batch.npz", g_dir);
    npz_images_report r;
    assert_int_equal(npz_write_images(out, d, 1, &r), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.gaps, 2);
    assert_int_equal(r.last, 5);
    npy_array a, l;
    assert_int_equal(npz_read(&a, out, "arr_0"), 0);
    assert_int_equal(npz_read(&l, out, "arr_1"), 0);
    assert_int_equal(a.shape[0], 4);
    assert_int_equal(a.shape[1], 4);
    assert_int_equal(a.shape[2], 6);
    assert_int_equal(a.shape[3], 3);
    const uint8_t *px = a.data;
    for (int i = 0; i < 4; i++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 6; x++)
                for (int c = 0; c < 3; c++)  // gray replicated to RGB
                    assert_int_equal(px[(((size_t)i * 4 + y) * 6 + x) * 3 + c], pat(i, y, x, ch[i] == 1 ? 0 : c));
    const int64_t want[4] = {4, 0, 999, 4};
    assert_memory_equal(l.data, want, sizeof want);
    npy_free(&a);
    npy_free(&l);
    assert_int_equal(npz_write_images(out, d, 0, &r), 0);
    assert_int_equal(npz_read(&l, out, "arr_1"), DISA_ENOTFOUND);
    // Failures leave nothing under the final name.
    snprintf(out, sizeof out, "%s/bad.npz", g_dir);
    image_name(p, sizeof p, d, 7);
    write_pattern(p, 7, 6, 4, 3, NULL);  // no class
    assert_int_equal(npz_write_images(out, d, 1, &r), DISA_ENOTFOUND);
    assert_non_null(strstr(disa_errmsg(), "00007.png: no 'class'"));
    assert_false(exists(out));
    write_pattern(p, 7, 5, 4, 3, "1");  // other size
    assert_int_equal(npz_write_images(out, d, 1, &r), DISA_ESHAPE);
    assert_false(exists(out));
    // Damaged after the header pass would accept it: the stream fails, nothing remains.
    write_pattern(p, 7, 6, 4, 3, "1");
    size_t n;
    unsigned char *b = slurp(p, &n);
    b[n - 20] ^= 0xff;  // inside the image data
    spit(p, b, n);
    free(b);
    assert_int_equal(npz_write_images(out, d, 1, &r), DISA_EFORMAT);
    assert_false(exists(out));
    assert_int_equal(count_names(g_dir, "bad.npz"), 0);
    subdir(p, sizeof p, "empty");
    assert_int_equal(npz_write_images(out, p, 1, &r), DISA_ENOTFOUND);
}

// ----------------------------------------------------------------------------
// grid

// A w x h image of one gray/RGB value per image, for telling cells apart.
static void write_solid(const char *dir, int index, int w, int h, int c, uint8_t v, const char *cls) {
    char p[300];
    image_name(p, sizeof p, dir, index);
    uint8_t *px = malloc((size_t)w * h * c);
    memset(px, v, (size_t)w * h * c);
    image_kv kv[] = {{"class", cls}};
    assert_int_equal(png_write_u8(p, px, w, h, c, kv, 1), 0);
    free(px);
}

static uint8_t at(const image_u8 *im, int x, int y, int c) { return im->data[((size_t)y * im->w + x) * im->c + c]; }

static void test_grid(void **state) {
    (void)state;
    char d[256], out[300];
    subdir(d, sizeof d, "gridsrc");
    // index: value, class
    write_solid(d, 0, 4, 3, 3, 10, "2");
    write_solid(d, 1, 4, 3, 3, 20, "0");
    write_solid(d, 2, 4, 3, 1, 30, "2");  // gray among RGB
    write_solid(d, 3, 4, 3, 3, 40, "2");
    write_solid(d, 4, 4, 3, 3, 50, "1");
    snprintf(out, sizeof out, "%s/grid.png", g_dir);
    grid_params gp;
    grid_params_init(&gp);
    gp.cols = 2;
    gp.sep = 1;
    grid_report r;
    assert_int_equal(grid_write(out, d, &gp, &r), 0);
    assert_int_equal(r.rows, 3);
    assert_int_equal(r.n, 5);
    image_u8 im;
    assert_int_equal(png_read_u8(&im, out), 0);
    assert_int_equal(im.w, 2 * 4 + 1);
    assert_int_equal(im.h, 3 * 3 + 2);
    assert_int_equal(im.c, 3);
    assert_int_equal(at(&im, 0, 0, 0), 10);
    assert_int_equal(at(&im, 5, 0, 1), 20);
    assert_int_equal(at(&im, 4, 0, 0), 255);   // vertical separator
    assert_int_equal(at(&im, 0, 3, 0), 255);   // horizontal separator
    assert_int_equal(at(&im, 3, 6, 2), 30);    // gray replicated
    assert_int_equal(at(&im, 8, 10, 0), 255);  // empty last cell
    image_u8_free(&im);
    // By class: rows 0 | 1 | 2, class 2 holding images 0, 2 (cols = 2 keeps the first two).
    gp.rows_by = GRID_ROWS_BY_CLASS;
    assert_int_equal(grid_write(out, d, &gp, &r), 0);
    assert_int_equal(r.rows, 3);
    assert_int_equal(r.n, 4);
    assert_int_equal(png_read_u8(&im, out), 0);
    assert_int_equal(at(&im, 0, 0, 0), 20);
    assert_int_equal(at(&im, 5, 0, 0), 255);  // class 0 has one image
    assert_int_equal(at(&im, 0, 4, 0), 50);
    assert_int_equal(at(&im, 0, 8, 0), 10);
    assert_int_equal(at(&im, 5, 8, 0), 30);
    image_u8_free(&im);
    gp.max = 2;
    assert_int_equal(grid_write(out, d, &gp, &r), 0);
    assert_int_equal(r.rows, 2);
    assert_int_equal(r.n, 2);
    // Errors: no class text in class mode, sizes differ, bad params; the sheet that
    // exists stays as it was.
    char p[300];
    image_name(p, sizeof p, d, 9);
    write_pattern(p, 1, 4, 3, 3, NULL);
    assert_int_equal(grid_write(out, d, &gp, &r), DISA_ENOTFOUND);
    write_solid(d, 9, 5, 3, 3, 60, "0");
    gp.rows_by = GRID_ROWS_BY_INDEX;
    gp.max = 0;
    assert_int_equal(grid_write(out, d, &gp, &r), DISA_ESHAPE);
    gp.cols = 0;
    assert_int_equal(grid_write(out, d, &gp, &r), DISA_EINVAL);
    assert_int_equal(png_verify(out, 9, 7, 3), 0);
    grid_rows_by rb;
    assert_int_equal(grid_rows_by_parse("class", &rb), 0);
    assert_int_equal(rb, GRID_ROWS_BY_CLASS);
    assert_int_equal(grid_rows_by_parse("label", &rb), DISA_EINVAL);
    assert_int_equal(count_names(g_dir, ".tmp"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_u8),         cmocka_unit_test(test_names),
        cmocka_unit_test(test_png_roundtrip), cmocka_unit_test(test_png_write_failures),
        cmocka_unit_test(test_png_damaged),   cmocka_unit_test(test_png_thirdparty),
        cmocka_unit_test(test_npz_roundtrip), cmocka_unit_test(test_npz_numpy),
        cmocka_unit_test(test_npz_write_failures), cmocka_unit_test(test_npz_images),
        cmocka_unit_test(test_grid),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
