// Unit tests of src/io/json.c: the strict JSON policy (encoding, NUL, surrogates, array
// bounds before parsing, trailing text, duplicate keys) and the bounded file reader.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/err.h"
#include "disa/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpdir.h"

// Parses `text` (its strlen) with an array bound of 8; returns the status, message in msg.
static int parse(const char *text, char *msg, size_t n) {
    cJSON *o = NULL;
    int rc = json_parse_strict(&o, text, strlen(text), 8, "t.json");
    snprintf(msg, n, "%s", rc ? disa_errmsg() : "");
    cJSON_Delete(o);
    return rc;
}

static void expect_refused(const char *text, int code, const char *fragment) {
    char msg[2048];
    int rc = parse(text, msg, sizeof msg);
    if (rc != code || !strstr(msg, fragment))
        fail_msg("'%s': got status %d message '%s', expected %d with '%s'", text, rc, msg, code, fragment);
}

static void test_accepts_valid(void **state) {
    (void)state;
    char msg[2048];
    const char *ok[] = {
        "{}", " {\"a\": [1, 2, 3], \"b\": {\"c\": \"\\u00e9t\\u00e9\"}}\n", "[1,2,3,4,5,6,7,8]",
        "{\"n\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", "{\"s\": \"\\ud83d\\ude00\"}", "[[], {}, [[]]]",
        "{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}}",  // the same key in two objects is fine
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (parse(ok[i], msg, sizeof msg) != 0) fail_msg("'%s' refused: %s", ok[i], msg);
    cJSON *o = NULL;
    const char *emoji = "{\"s\": \"\\ud83d\\ude00\"}";
    assert_int_equal(json_parse_strict(&o, emoji, strlen(emoji), 8, "t"), 0);
    assert_string_equal(cJSON_GetObjectItem(o, "s")->valuestring, "\xf0\x9f\x98\x80");
    cJSON_Delete(o);
}

static void test_refuses(void **state) {
    (void)state;
    expect_refused("{\"a\": 1, \"a\": 2}", DISA_EFORMAT, "key 'a' appears twice");
    expect_refused("{\"s\": {\"k\": 1, \"k\": 1}}", DISA_EFORMAT, "key 's.k' appears twice");
    expect_refused("{\"a\": 1}}}}", DISA_EFORMAT, "text after the JSON value at byte offset 8");
    expect_refused("{\"a\": 1} x", DISA_EFORMAT, "text after the JSON value");
    expect_refused("{\"d\": \"DiSA\\u0000junk\"}", DISA_EFORMAT, "\\u0000");
    expect_refused("{\"d\": \"\\udc00\"}", DISA_EFORMAT, "unpaired surrogate");
    expect_refused("{\"d\": \"\\ud800x\"}", DISA_EFORMAT, "unpaired surrogate");
    expect_refused("{\"n\": \"\xff\"}", DISA_EFORMAT, "invalid UTF-8 at byte offset 7");
    expect_refused("{\"n\": \"\xc0\xaf\"}", DISA_EFORMAT, "invalid UTF-8");          // overlong '/'
    expect_refused("{\"n\": \"\xed\xa0\x80\"}", DISA_EFORMAT, "invalid UTF-8");      // encoded surrogate
    expect_refused("{\"n\": \"\xf4\x90\x80\x80\"}", DISA_EFORMAT, "invalid UTF-8");  // > U+10FFFF
    expect_refused("{\"n\": \"a\tb\"}", DISA_EFORMAT, "control character 0x09");
    expect_refused("[1,2,3,4,5,6,7,8,9]", DISA_ERANGE, "more than 8 elements");
    expect_refused("{\"l\": [[1,2,3,4,5,6,7,8,9]]}", DISA_ERANGE, "array at offset 7 has more than 8");
    expect_refused("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9}", DISA_ERANGE, "object");
    expect_refused("{\"a\": tru}", DISA_EFORMAT, "not valid JSON");
    // A raw NUL inside the given length.
    cJSON *o = NULL;
    assert_int_equal(json_parse_strict(&o, "{\"a\":\"x\0y\"}", 11, 8, "t"), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "NUL byte at offset 7"));
    assert_null(o);
}

// Many duplicate-free keys go through the sorted path; one repeat among them is found.
static void test_large_object(void **state) {
    (void)state;
    size_t cap = 200 * 16 + 16;
    char *t = malloc(cap), *p = t;
    p += sprintf(p, "{");
    for (int i = 0; i < 200; i++) p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i, i);
    sprintf(p, "}");
    cJSON *o = NULL;
    assert_int_equal(json_parse_strict(&o, t, strlen(t), 1000, "t"), 0);
    cJSON_Delete(o);
    p[-3] = '\0';  // drop the last member "k199":199 -> replace with a repeat of k7
    char *q = strrchr(t, ',');
    sprintf(q, ",\"k7\":1}");
    assert_int_equal(json_parse_strict(&o, t, strlen(t), 1000, "t"), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "key 'k7' appears twice"));
    free(t);
}

static void test_read_file(void **state) {
    (void)state;
    char path[256], fifo[256];
    snprintf(path, sizeof path, "%s/a.json", g_dir);
    FILE *f = fopen(path, "w");
    fputs("{\"x\": 1}\n", f);
    fclose(f);
    char *text;
    size_t len;
    assert_int_equal(json_read_file(&text, &len, path, 64), 0);
    assert_int_equal(len, 9);
    assert_string_equal(text, "{\"x\": 1}\n");
    free(text);
    assert_int_equal(json_read_file(&text, &len, path, 8), DISA_ERANGE);
    assert_non_null(strstr(disa_errmsg(), "9 bytes, larger than the 8-byte limit"));
    assert_null(text);
    // A FIFO with no writer: refused at once instead of blocking in open().
    snprintf(fifo, sizeof fifo, "%s/p.json", g_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(json_read_file(&text, &len, fifo, 64), DISA_EIO);
    assert_non_null(strstr(disa_errmsg(), "not a regular file"));
    assert_int_equal(json_read_file(&text, &len, g_dir, 64), DISA_EIO);
    snprintf(path, sizeof path, "%s/missing.json", g_dir);
    assert_int_equal(json_read_file(&text, &len, path, 64), DISA_ENOTFOUND);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_valid),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_large_object),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
