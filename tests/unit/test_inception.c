// Unit tests of src/model/inception.c that need no weights: the tensor table (names,
// count, shapes), the TF1 resize's defining properties, the HWC -> CHW conversion, BN
// folding on a hand-made layer, and the loader's error listing.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/err.h"
#include "disa/inception.h"
#include "disa/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tmpdir.h"

static void test_table(void **state) {
    (void)state;
    inception_model m;
    memset(&m, 0, sizeof m);
    st_bind_entry *tab;
    char *names;
    int n;
    assert_int_equal(inception_tensor_table(&m, &tab, &names, &n), 0);
    assert_int_equal(n, 94 * 5 + 2);  // 94 BasicConv2d (conv + 4 BN tensors) + fc
    assert_string_equal(tab[0].name, "Conv2d_1a_3x3.conv.weight");
    assert_int_equal(tab[0].shape[0], 32);
    assert_int_equal(tab[0].shape[1], 3);
    assert_string_equal(tab[4].name, "Conv2d_1a_3x3.bn.running_var");
    assert_string_equal(tab[n - 2].name, "fc.weight");
    int found = 0;
    size_t params = 0;
    for (int i = 0; i < n; i++) {
        size_t c = 1;
        for (int d = 0; d < tab[i].ndim; d++) c *= (size_t)tab[i].shape[d];
        params += c;
        if (strcmp(tab[i].name, "Mixed_6b.branch7x7_2.conv.weight") == 0) {
            found = 1;  // channels_7x7 = 128, kernel (1, 7)
            assert_int_equal(tab[i].shape[0], 128);
            assert_int_equal(tab[i].shape[2], 1);
            assert_int_equal(tab[i].shape[3], 7);
        }
        for (int j = 0; j < i; j++) assert_string_not_equal(tab[i].name, tab[j].name);
    }
    assert_true(found);
    // The FID Inception has 23.9M weights plus BN statistics (pytorch-fid's file).
    assert_true(params > 23000000 && params < 24500000);
    assert_true(m.m7c.max_pool && !m.m7b.max_pool);
    free(tab);
    free(names);
}

static void test_resize(void **state) {
    (void)state;
    // 299 -> 299 is the identity (scale 1: lo = o, weight 0).
    const int S = 299;
    uint8_t *img = malloc((size_t)S * S);
    float *out = malloc(sizeof(float) * S * S);
    for (int i = 0; i < S * S; i++) img[i] = (uint8_t)(i * 7 + i / S);
    inception_resize_tf1(out, img, 1, S, S, S, S);
    for (int i = 0; i < S * S; i++) assert_true(out[i] == (float)img[i]);
    // A constant image stays constant; a 2x2 image upsampled to 4x4 samples the TF grid
    // dst * in / out = 0, 0.5, 1, 1.5 (clamped at the last pixel, no half-pixel shift).
    uint8_t c2[4] = {0, 100, 200, 40};
    float o4[16];
    inception_resize_tf1(o4, c2, 1, 2, 2, 4, 4);
    const float row0[4] = {0, 50, 100, 100}, col0[4] = {0, 100, 200, 200};
    for (int i = 0; i < 4; i++) {
        assert_true(o4[i] == row0[i]);
        assert_true(o4[i * 4] == col0[i]);
    }
    assert_true(o4[5] == 0.25f * (0 + 100 + 200 + 40));  // (0.5, 0.5): mean of the four
    memset(img, 77, (size_t)S * S);
    inception_resize_tf1(out, img, 1, 13, 17, 299, 299);
    for (int i = 0; i < S * S; i++) assert_true(out[i] == 77.0f);
    free(img);
    free(out);
}

static void test_hwc(void **state) {
    (void)state;
    uint8_t gray[4] = {1, 2, 3, 4}, rgba[8] = {1, 2, 3, 9, 4, 5, 6, 9}, out[12];
    inception_hwc_to_chw(out, gray, 2, 2, 1);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 4; p++) assert_int_equal(out[c * 4 + p], gray[p]);
    inception_hwc_to_chw(out, rgba, 1, 2, 4);  // alpha dropped
    const uint8_t want[6] = {1, 4, 2, 5, 3, 6};
    for (int i = 0; i < 6; i++) assert_int_equal(out[i], want[i]);
}

static void test_fold_and_errors(void **state) {
    (void)state;
    // Bind a table of zeros with running_var = 3 - 1e-3 and gamma = 2: s = 2 / sqrt(3).
    inception_model m;
    memset(&m, 0, sizeof m);
    st_bind_entry *tab;
    char *names;
    int n;
    assert_int_equal(inception_tensor_table(&m, &tab, &names, &n), 0);
    float *ones = malloc(sizeof(float) * 2100000), *gam = malloc(sizeof(float) * 2048), *var = malloc(sizeof(float) * 2048);
    for (int i = 0; i < 2100000; i++) ones[i] = 1.0f;  // >= the largest tensor (fc, 2.06M)
    for (int i = 0; i < 2048; i++) gam[i] = 2.0f, var[i] = 3.0f - 1e-3f;
    for (int i = 0; i < n; i++) {
        size_t L = strlen(tab[i].name);
        *tab[i].dst = L > 9 && strcmp(tab[i].name + L - 9, "bn.weight") == 0    ? gam
                      : L > 11 && strcmp(tab[i].name + L - 11, "running_var") == 0 ? var
                                                                                   : ones;
    }
    assert_int_equal(inception_fold(&m), 0);
    double s = 2.0 / sqrt((double)(3.0f - 1e-3f) + 1e-3);
    assert_true(fabs(m.c1a.fw[0] - s) < 1e-6);
    assert_true(fabs(m.c1a.fb[0] - (1.0 - 1.0 * s)) < 1e-6);  // beta - mean * s with both 1
    var[5] = -1.0f;
    assert_int_equal(inception_fold(&m), DISA_ERANGE);
    assert_non_null(strstr(disa_errmsg(), "Conv2d_1a_3x3.bn.running_var[5]"));
    free(m.folded);
    free(tab), free(names), free(ones), free(gam), free(var);

    // A file without the tensors: every missing one is counted in one message.
    char path[128];
    snprintf(path, sizeof path, "%s/disa-test-inc-XXXXXX", tmp_root());
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    st_writer *w = st_writer_new();
    float one = 1;
    int64_t sh[1] = {1};
    assert_int_equal(st_writer_add(w, "unrelated", ST_F32, 1, sh, &one), 0);
    assert_int_equal(st_writer_write(w, path), 0);
    st_writer_delete(w);
    assert_int_not_equal(inception_open(&m, path), 0);
    assert_non_null(strstr(disa_errmsg(), "472 tensors missing or mis-shaped"));
    assert_non_null(strstr(disa_errmsg(), "convert_inception.py"));
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_hwc),
        cmocka_unit_test(test_fold_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
