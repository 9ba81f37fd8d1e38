// replay.c: runs every committed fuzz corpus file through its target without libFuzzer
// (build/tests/test_fuzz_replay, part of `make test` and `make asan`). One cmocka test
// per target; a file that crashes, trips a sanitizer or hangs is a regression.
//
//   build/tests/test_fuzz_replay [FILE...]   (no arguments: every tests/fuzz/<target>/*;
//                                            with files: each goes to the target named
//                                            by its folder)
#include "fuzz.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disa/err.h"
#include "disa/image.h"
#include "disa/job.h"
#include "disa/npy.h"

typedef struct {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} target;

static const target k_targets[] = {
    {"safetensors", fuzz_safetensors}, {"job", fuzz_job}, {"npy", fuzz_npy}, {"png", fuzz_png}};

// Reads all of `path`; malloc'd (at least 1 byte), NULL on failure.
static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

static int replay_file(const target *t, const char *path) {
    size_t n;
    uint8_t *buf = read_all(path, &n);
    if (!buf) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 1;
    }
    t->fn(buf, n);
    free(buf);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_corpus(void **state) {
    const target *t = *state;
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/%s", t->name);
    DIR *d = opendir(dir);
    assert_non_null(d);  // run from the repository root
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) names = realloc(names, sizeof *names * (size_t)(cap = cap ? cap * 2 : 64));
        assert_non_null(names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        bad += replay_file(t, path);
        free(names[i]);
    }
    free(names);
    printf("replay %s: %d corpus files\n", t->name, n);
    assert_true(n > 0);
    assert_int_equal(bad, 0);
}

// Regressions whose symptom is not a crash in a plain build (there a 2.3 GB malloc just
// succeeds): the exact refusal is checked.
static void test_regressions(void **state) {
    (void)state;
    // A 1.4 kB npz whose arr_0.npy claims 2,315,256,032 bytes from 173 deflated ones:
    // refused before allocating (src/io/npz.c), found by fuzz_npy.
    npy_array a;
    int rc = npz_read(&a, "tests/fuzz/npy/regress_npz_huge_size.npz", "arr_0");
    assert_int_equal(rc, DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "2315256032 bytes recorded, at most 178600 possible"));
    assert_int_equal(npz_read(&a, "tests/fuzz/npy/regress_npz_huge_size.npz", "mu"), 0);  // the rest still reads
    npy_free(&a);
    // The same entry with a compressed size of 171 MB in an 814-byte archive and an
    // unknown compression method.
    rc = npz_read(&a, "tests/fuzz/npy/regress_npz_bad_method.npz", "arr_0");
    assert_int_equal(rc, DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "Compression method not supported"));
    // "num_images": 8.9e85 was cast to long before the range check (undefined; on x86
    // it became "must be an integer"), found by fuzz_job. The file the fuzzer made also
    // holds a NUL byte, which the strict JSON policy now refuses first; the range check
    // itself is row huge_number of tests/bad_inputs.md.
    job_list l = {0};
    rc = job_load(&l, "tests/fuzz/job/regress_num_images_1e85.json", NULL, 0);
    assert_int_equal(rc, DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "NUL byte at offset 227"));
    job_list_free(&l);
}

int main(int argc, char **argv) {
    if (argc > 1) {  // explicit files: the folder names the target
        int bad = 0;
        for (int i = 1; i < argc; i++) {
            const target *t = NULL;
            for (size_t k = 0; k < sizeof k_targets / sizeof *k_targets; k++) {
                char pre[64];
                snprintf(pre, sizeof pre, "/%s/", k_targets[k].name);
                if (strstr(argv[i], pre) || strncmp(argv[i], pre + 1, strlen(pre) - 1) == 0) t = &k_targets[k];
            }
            if (!t) {
                fprintf(stderr, "replay: %s: no target folder (safetensors, job, npy, png) in the path\n", argv[i]);
                return 2;
            }
            bad += replay_file(t, argv[i]);
        }
        return bad ? 1 : 0;
    }
    struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_corpus, (void *)&k_targets[0]),
        cmocka_unit_test_prestate(test_corpus, (void *)&k_targets[1]),
        cmocka_unit_test_prestate(test_corpus, (void *)&k_targets[2]),
        cmocka_unit_test_prestate(test_corpus, (void *)&k_targets[3]),
        cmocka_unit_test(test_regressions),
    };
    return cmocka_run_group_tests_name("fuzz_replay", tests, NULL, NULL);
}
