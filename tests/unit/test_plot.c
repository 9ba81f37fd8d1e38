// Unit tests of src/io/plot.c: an enlarged labelled image keeps every pixel block exact,
// a scatter writes its PNG and its script, a missing gnuplot is reported with the script
// kept, and nothing is left under a temporary name.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/err.h"
#include "disa/image.h"
#include "disa/plot.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmpdir.h"

// Files in g_dir whose name contains `part`.
static int count_files(const char *part) {
    DIR *d = opendir(g_dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, part) != NULL;
    if (d) closedir(d);
    return n;
}

static void test_labelled_image_exact(void **state) {
    (void)state;
    if (plot_available() != 0) skip();
    enum { W = 7, H = 6, S = 4 };
    uint8_t pix[H * W * 3];
    for (int i = 0; i < H * W * 3; i++) pix[i] = (uint8_t)(i * 37 + 11);
    char out[256];
    snprintf(out, sizeof out, "%s/grid.png", g_dir);
    const char *labels[] = {"top", "bottom"};
    assert_int_equal(plot_labelled_image(out, pix, W, H, 3, S, labels, 2, "t"), 0);
    image_u8 im;
    assert_int_equal(png_read_u8(&im, out), 0);
    assert_int_equal(im.c, 3);
    // The image sits at (110, 40), each source pixel an exact S x S block.
    assert_true(im.w >= 110 + W * S && im.h >= 40 + H * S);
    int bad = 0;
    for (int y = 0; y < H * S; y++)
        for (int x = 0; x < W * S; x++)
            for (int k = 0; k < 3; k++)
                bad += im.data[((size_t)(40 + y) * im.w + 110 + x) * 3 + k] != pix[((y / S) * W + x / S) * 3 + k];
    image_u8_free(&im);
    assert_int_equal(bad, 0);
    assert_int_equal(count_files(".tmp."), 0);
    assert_int_equal(count_files(".frame."), 0);
    assert_int_equal(count_files(".gp"), 0);
    // Gray input is drawn as gray.
    uint8_t gray[4] = {0, 80, 160, 255};
    assert_int_equal(plot_labelled_image(out, gray, 2, 2, 1, 3, NULL, 0, ""), 0);
    assert_int_equal(png_read_u8(&im, out), 0);
    assert_int_equal(im.data[((size_t)(40 + 4) * im.w + 110 + 4) * 3 + 1], 255);
    image_u8_free(&im);
}

static void test_scatter(void **state) {
    (void)state;
    if (plot_available() != 0) skip();
    plot_point pts[] = {{0.21, 99.3, "clipped-100", 1}, {0.15, 113.1, "disa-50-5 \"linear\"", 0},
                        {NAN, 5.0, "left out", 0}};
    // The second panel's y spans more than a factor of 5: a log axis; the first's does not (the
    // left-out point's 5.0 does not count).
    plot_point wide[] = {{0.38, 597.9, "default", 1}, {0.21, 80.7, "clipped", 0}};
    plot_panel p[2] = {{"FID", "s / image", "FID", pts, 3}, {"FID", "s / image", "FID", wide, 2}};
    char out[256], gp[256];
    snprintf(out, sizeof out, "%s/comparison.png", g_dir);
    snprintf(gp, sizeof gp, "%s/comparison.gp", g_dir);
    assert_int_equal(plot_scatter(out, "sweep 'demo'", p, 2), 0);
    image_u8 im;
    assert_int_equal(png_read_u8(&im, out), 0);
    assert_int_equal(im.w, 1280);
    assert_int_equal(im.h, 440);
    image_u8_free(&im);
    // The script keeps the data for a user to redraw, without the NaN point.
    FILE *f = fopen(gp, "r");
    assert_non_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "0.21 99.3 1 \"clipped-100\""));
    assert_non_null(strstr(buf, "0.15 113.1 0 \"disa-50-5 'linear'\""));
    assert_non_null(strstr(buf, "NaN NaN 0 \"left out\""));  // kept, so markers match across panels
    char *un = strstr(buf, "unset logscale y"), *lg = strstr(buf, "\nset logscale y");
    assert_true(un != NULL && lg != NULL && un < lg);
    assert_null(strstr(lg + 2, "set logscale y"));
    assert_int_equal(count_files(".tmp."), 0);
    assert_int_equal(plot_scatter(out, "x", p, 0), DISA_EINVAL);
}

static void test_no_gnuplot(void **state) {
    (void)state;
    char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", g_dir, 1);
    plot_point pt = {1, 2, "a", 0};
    plot_panel p = {"t", "x", "y", &pt, 1};
    char out[256];
    snprintf(out, sizeof out, "%s/none.png", g_dir);
    int rc = plot_scatter(out, "t", &p, 1);
    int avail = plot_available();
    if (old) setenv("PATH", old, 1);
    free(old);
    assert_int_equal(rc, DISA_ENOTFOUND);
    assert_int_equal(avail, DISA_ENOTFOUND);
    assert_non_null(strstr(disa_errmsg(), "gnuplot-nox"));
    assert_int_equal(count_files("none.gp"), 1);
    assert_int_equal(count_files("none.png"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labelled_image_exact),
        cmocka_unit_test(test_scatter),
        cmocka_unit_test(test_no_gnuplot),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
