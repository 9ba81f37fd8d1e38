// Unit tests of src/io/safetensors.c: round trip, dtype conversion, shape checks, and
// rejection of truncated, bit-flipped and lying files without crashing.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/err.h"
#include "disa/rng.h"
#include "disa/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmpdir.h"

// A file image from a header string and `ndata` data bytes (value i & 0xff).
static unsigned char *image(const char *hdr, size_t ndata, size_t *size) {
    size_t hl = strlen(hdr);
    *size = 8 + hl + ndata;
    unsigned char *b = malloc(*size);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < ndata; i++) b[8 + hl + i] = (unsigned char)i;
    return b;
}

// Expect st_parse to fail with a message containing `needle`.
static void expect_reject(const char *hdr, size_t ndata, const char *needle) {
    size_t n;
    unsigned char *b = image(hdr, ndata, &n);
    st_file f;
    int rc = st_parse(&f, b, n, "case");
    if (rc == 0 || !strstr(disa_errmsg(), needle))
        fail_msg("header %s: rc %d, message '%s', wanted '%s'", hdr, rc, disa_errmsg(), needle);
    free(b);
}

static void test_round_trip(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/rt.safetensors", g_dir);
    float a[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    uint16_t h[3] = {0x3c00, 0xc000, 0x0001};  // F16: 1, -2, smallest subnormal
    uint16_t bf[2] = {0x3f80, 0x4049};         // BF16: 1, 3.140625
    int64_t ia[2] = {42, -1};
    st_writer *w = st_writer_new();
    assert_non_null(w);
    assert_int_equal(st_writer_add(w, "a.weight", ST_F32, 2, (int64_t[]){2, 3}, a), 0);
    assert_int_equal(st_writer_add(w, "h", ST_F16, 1, (int64_t[]){3}, h), 0);
    assert_int_equal(st_writer_add(w, "bf", ST_BF16, 1, (int64_t[]){2}, bf), 0);
    assert_int_equal(st_writer_add(w, "idx", ST_I64, 1, (int64_t[]){2}, ia), 0);
    assert_int_not_equal(st_writer_add(w, "h", ST_F32, 1, (int64_t[]){1}, a), 0);  // duplicate
    assert_int_equal(st_writer_meta(w, "config", "{\"width\": 3}"), 0);
    assert_int_equal(st_writer_write(w, path), 0);
    st_writer_delete(w);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0);  // no temporary left behind

    st_file f;
    assert_int_equal(st_open(&f, path), 0);
    assert_int_equal(f.n, 4);
    assert_string_equal(st_meta(&f, "config"), "{\"width\": 3}");
    assert_null(st_meta(&f, "nope"));
    const float *p;
    assert_int_equal(st_get_f32(&f, "a.weight", 2, (int64_t[]){2, 3}, &p), 0);
    assert_memory_equal(p, a, sizeof a);
    // F32 aligned data is used in place: the pointer lies inside the mapping.
    assert_true((const char *)p >= (const char *)f.map && (const char *)p < (const char *)f.map + f.size);
    assert_int_equal(st_get_f32(&f, "h", 1, (int64_t[]){-1}, &p), 0);
    assert_float_equal(p[0], 1.0f, 0);
    assert_float_equal(p[1], -2.0f, 0);
    assert_float_equal(p[2], 5.9604645e-8f, 1e-14);
    assert_int_equal(st_get_f32(&f, "bf", -1, NULL, &p), 0);
    assert_float_equal(p[1], 3.140625f, 0);
    // Errors name the tensor and both shapes.
    assert_int_equal(st_get_f32(&f, "a.weight", 2, (int64_t[]){3, 2}, &p), DISA_ESHAPE);
    assert_non_null(strstr(disa_errmsg(), "tensor 'a.weight': got [2, 3], expected [3, 2]"));
    assert_int_equal(st_get_f32(&f, "missing.bias", 1, (int64_t[]){3}, &p), DISA_ENOTFOUND);
    assert_non_null(strstr(disa_errmsg(), "tensor 'missing.bias' is missing"));
    assert_int_equal(st_get_f32(&f, "idx", -1, NULL, &p), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "dtype I64"));
    // The binding table lists every problem at once.
    const float *w1, *w2, *w3;
    st_bind_entry tab[] = {
        {"a.weight", &w1, 2, {2, 3}}, {"x.weight", &w2, 1, {4}}, {"h", &w3, 1, {4}}};
    assert_int_not_equal(st_bind(&f, tab, 3), 0);
    assert_non_null(strstr(disa_errmsg(), "2 of 3 tensors missing or mis-shaped"));
    assert_non_null(strstr(disa_errmsg(), "'x.weight' is missing"));
    assert_non_null(strstr(disa_errmsg(), "tensor 'h': got [3], expected [4]"));
    st_close(&f);
}

static void test_half_conversion(void **state) {
    (void)state;
    assert_float_equal(st_f16_to_f32(0x7bff), 65504.0f, 0);
    assert_float_equal(st_f16_to_f32(0x0400), 6.1035156e-5f, 0);
    assert_float_equal(st_f16_to_f32(0x3555), 0.33325195f, 0);
    assert_true(st_f16_to_f32(0x7c00) > 1e38f);
    assert_true(st_f16_to_f32(0x7e00) != st_f16_to_f32(0x7e00));  // NaN
    uint32_t negzero;
    float z = st_f16_to_f32(0x8000);
    memcpy(&negzero, &z, 4);
    assert_int_equal(negzero, 0x80000000u);
    assert_float_equal(st_f16_to_f32(0x03ff), 6.0975552e-5f, 1e-12);  // largest subnormal
}

static void test_lying_headers(void **state) {
    (void)state;
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, "span 12");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "trailing");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "truncated");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "contiguous");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "contiguous");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice");
    expect_reject("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'Q4'");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                  "\"data_offsets\":[0,4]}}", 4, "overflows");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "end 4 < begin 8");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    expect_reject("{\"a\":[1,2]}", 0, "must be an object");
    expect_reject("{\"__metadata__\":{\"k\":1}}", 0, "must be a string");
    expect_reject("{\"__metadata__\":[]}", 0, "object of strings");
    expect_reject("[1,2,3]", 0, "JSON object");
    expect_reject("{\"a\":{\"dtype\":\"F32\",", 0, "not valid JSON");
    expect_reject("{}", 4, "no tensors but 4 data bytes");
    // The strict JSON policy (src/io/json.c) applies to the header.
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}}}}", 4,
                  "case: header: text after the JSON value");
    expect_reject("{\"__metadata__\":{\"k\":\"\xff\"}}", 0, "invalid UTF-8");
    expect_reject("{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", 0, "\\u0000");
    // Header length beyond the limit or beyond the file.
    unsigned char b[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    st_file f;
    assert_int_equal(st_parse(&f, b, sizeof b, "big"), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "exceeds"));
    unsigned char c[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_int_equal(st_parse(&f, c, sizeof c, "short"), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "truncated"));
    assert_int_equal(st_parse(&f, c, 5, "tiny"), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "too short"));
    // An empty but valid file.
    size_t n;
    unsigned char *e = image("{}", 0, &n);
    assert_int_equal(st_parse(&f, e, n, "empty"), 0);
    assert_int_equal(f.n, 0);
    st_close(&f);
    free(e);
}

// st_bind refuses NaN/Inf weights by name and index; st_check_unexpected names the
// tensors no binding covers, except under the ignored prefixes.
static void test_bind_checks(void **state) {
    (void)state;
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
                      "\"enc.x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}";
    size_t n;
    unsigned char *img = image(hdr, 20, &n);
    float v[5] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
    unsigned char *data = img + n - 20;
    memcpy(data, v, sizeof v);
    st_file f;
    const float *a, *b;
    st_bind_entry tab[] = {{"a", &a, 1, {3}}, {"b", &b, 1, {1}}};
    assert_int_equal(st_parse(&f, img, n, "m.st"), 0);
    assert_int_equal(st_bind(&f, tab, 2), 0);
    assert_float_equal(a[2], 3.0f, 0);
    // One tensor outside the table: named, unless its prefix is ignored.
    assert_int_equal(st_check_unexpected(&f, tab, 2, NULL, "hint"), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "m.st: 1 tensor the config does not describe (hint):\n  unexpected tensor 'enc.x'"));
    const char *const ign[] = {"enc.", NULL};
    assert_int_equal(st_check_unexpected(&f, tab, 2, ign, "hint"), 0);
    st_close(&f);
    // A NaN in a, an Inf in b: both named with their index.
    v[1] = NAN;
    v[3] = -INFINITY;
    memcpy(data, v, sizeof v);
    assert_int_equal(st_parse(&f, img, n, "m.st"), 0);
    assert_int_equal(st_bind(&f, tab, 2), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "m.st: 2 of 2 tensors not finite"));
    assert_non_null(strstr(disa_errmsg(), "tensor 'a' holds NaN at index 1 of 3"));
    assert_non_null(strstr(disa_errmsg(), "tensor 'b' holds -Inf at index 0 of 1"));
    st_close(&f);
    free(img);
}

// Every truncation of a valid file and many random bit flips: each either loads with
// consistent tensors or is rejected with a message; none may crash (ASan checks reads).
static void test_truncation_and_bitflips(void **state) {
    (void)state;
    const char *hdr = "{\"__metadata__\":{\"op\":\"x\"},\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],"
                      "\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,24]}}";
    size_t n;
    unsigned char *good = image(hdr, 24, &n);
    st_file f;
    assert_int_equal(st_parse(&f, good, n, "good"), 0);
    st_close(&f);
    for (size_t len = 0; len < n; len++) {
        unsigned char *b = malloc(len ? len : 1);
        memcpy(b, good, len);
        if (st_parse(&f, b, len, "trunc") == 0) fail_msg("truncated to %zu of %zu bytes was accepted", len, n);
        assert_true(strlen(disa_errmsg()) > 0);
        free(b);
    }
    rng_stream r;
    rng_init(&r, 99, 0, RNG_PURPOSE_TEST);
    int accepted = 0;
    for (int it = 0; it < 5000; it++) {
        unsigned char *b = malloc(n);
        memcpy(b, good, n);
        int flips = 1 + (int)rng_below(&r, 3);
        for (int k = 0; k < flips; k++) {
            // Flip inside the length field and header mostly: data flips are always valid.
            size_t pos = rng_below(&r, (uint32_t)(n - 24));
            b[pos] ^= (unsigned char)(1u << rng_below(&r, 8));
        }
        if (st_parse(&f, b, n, "flip") == 0) {
            accepted++;
            // Whatever was accepted must be self-consistent.
            for (int i = 0; i < f.n; i++) {
                const unsigned char *d = f.tensors[i].data;
                assert_true(d >= b + 8 && d + f.tensors[i].nbytes <= b + n);
                const float *p;
                if (st_get_f32(&f, f.tensors[i].name, -1, NULL, &p) == 0 && f.tensors[i].nbytes >= 4) {
                    volatile float v = p[0];
                    (void)v;
                }
            }
            st_close(&f);
        } else {
            assert_true(strlen(disa_errmsg()) > 0);
        }
        free(b);
    }
    // Flips in names and metadata values keep the file valid; most others break it.
    assert_true(accepted > 0 && accepted < 5000);
    free(good);
}

static void test_open_errors(void **state) {
    (void)state;
    st_file f;
    char path[256];
    snprintf(path, sizeof path, "%s/none.safetensors", g_dir);
    assert_int_equal(st_open(&f, path), DISA_ENOTFOUND);
    assert_non_null(strstr(disa_errmsg(), "none.safetensors: cannot open"));
    assert_int_equal(st_open(&f, g_dir), DISA_EIO);
    assert_non_null(strstr(disa_errmsg(), "not a regular file"));
    snprintf(path, sizeof path, "%s/short.safetensors", g_dir);
    FILE *fp = fopen(path, "wb");
    fputs("abc", fp);
    fclose(fp);
    assert_int_equal(st_open(&f, path), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "short.safetensors: 3 bytes"));
    // A writer into a folder that does not exist fails and names the file.
    st_writer *w = st_writer_new();
    float x = 1;
    st_writer_add(w, "x", ST_F32, 1, (int64_t[]){1}, &x);
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", g_dir);
    assert_int_equal(st_writer_write(w, path), DISA_EIO);
    assert_non_null(strstr(disa_errmsg(), "cannot create"));
    st_writer_delete(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_half_conversion),
        cmocka_unit_test(test_lying_headers), cmocka_unit_test(test_truncation_and_bitflips),
        cmocka_unit_test(test_open_errors), cmocka_unit_test(test_bind_checks),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
