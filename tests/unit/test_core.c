// Unit tests of src/core: errors, arena, Philox RNG, tensor views, dgen, BLAS wrapper,
// the OpenBLAS core-type decision and idle-thread timeout.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/arena.h"
#include "disa/blas.h"
#include "disa/cpu.h"
#include "disa/dgen.h"
#include "disa/err.h"
#include "disa/par.h"
#include "disa/rng.h"
#include "disa/tensor.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void test_err_message(void **state) {
    (void)state;
    int rc = disa_err(DISA_EINVAL, "%s: 'lower' must be >= 1, got %d", "jobs/x.json", 0);
    assert_int_equal(rc, DISA_EINVAL);
    assert_string_equal(disa_errmsg(), "jobs/x.json: 'lower' must be >= 1, got 0");
    disa_err_wrap(rc, "loading %s: ", "m.safetensors");
    assert_string_equal(disa_errmsg(), "loading m.safetensors: jobs/x.json: 'lower' must be >= 1, got 0");
    assert_string_equal(disa_strerror(DISA_ESHAPE), "shape mismatch");
    disa_err_clear();
    assert_string_equal(disa_errmsg(), "");
}

static void test_arena(void **state) {
    (void)state;
    arena a;
    assert_int_equal(arena_init(&a, 1024, "scratch"), 0);
    char *p = arena_alloc(&a, 10);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    size_t m = arena_mark(&a);
    float *q = arena_floats(&a, 100);
    assert_non_null(q);
    assert_int_equal((uintptr_t)q % 64, 0);
    assert_int_equal((char *)q - p, 64);
    arena_reset(&a, m);
    float *r = arena_floats(&a, 100);
    assert_ptr_equal(q, r);  // reset hands the same memory out again
    assert_null(arena_alloc(&a, 2000));
    assert_non_null(strstr(disa_errmsg(), "arena 'scratch': need 2000 bytes at"));
    assert_non_null(strstr(disa_errmsg(), "of 1024 available"));
    assert_null(arena_alloc(&a, (size_t)-8));  // overflow guard
    assert_int_equal(a.peak, 64 + 400);
    arena_free(&a);
}

// Known-answer vectors of Random123 (kat_vectors, philox4x32_10).
static void test_philox_kat(void **state) {
    (void)state;
    uint32_t out[4];
    const uint32_t c0[4] = {0, 0, 0, 0}, k0[2] = {0, 0};
    philox4x32_10(out, c0, k0);
    assert_int_equal(out[0], 0x6627e8d5u);
    assert_int_equal(out[1], 0xe169c58du);
    assert_int_equal(out[2], 0xbc57ac4cu);
    assert_int_equal(out[3], 0x9b00dbd8u);
    const uint32_t c1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, k1[2] = {0xffffffffu, 0xffffffffu};
    philox4x32_10(out, c1, k1);
    assert_int_equal(out[0], 0x408f276du);
    assert_int_equal(out[1], 0x41c83b0eu);
    assert_int_equal(out[2], 0xa20bc7c6u);
    assert_int_equal(out[3], 0x6d5451fdu);
    const uint32_t c2[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, k2[2] = {0xa4093822u, 0x299f31d0u};
    philox4x32_10(out, c2, k2);
    assert_int_equal(out[0], 0xd16cfe09u);
    assert_int_equal(out[1], 0x94fdccebu);
    assert_int_equal(out[2], 0x5001e420u);
    assert_int_equal(out[3], 0x24126ea1u);
}

static void test_rng_streams(void **state) {
    (void)state;
    rng_stream a, b, c;
    rng_init(&a, 42, 7, RNG_PURPOSE_NOISE);
    rng_init(&b, 42, 7, RNG_PURPOSE_NOISE);
    rng_init(&c, 42, 8, RNG_PURPOSE_NOISE);
    int same_c = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = rng_u32(&a), y = rng_u32(&b), z = rng_u32(&c);
        assert_int_equal(x, y);  // same key + index + purpose: same stream
        same_c += x == z;
    }
    assert_true(same_c < 3);  // another image index: another stream
    // The first word of a stream is word 0 of block 0 of the raw bijection.
    rng_init(&a, 0x0000000100000002ull, 3, 4);
    uint32_t out[4], ctr[4] = {0, 0, 3, 4}, key[2] = {2, 1};
    philox4x32_10(out, ctr, key);
    assert_int_equal(rng_u32(&a), out[0]);
    assert_int_equal(rng_u32(&a), out[1]);
}

static void test_rng_normal_moments(void **state) {
    (void)state;
    rng_stream r;
    rng_init(&r, 1, 0, RNG_PURPOSE_TEST);
    const int n = 200000;
    double s = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        s += x;
        s2 += x * x;
        s4 += x * x * x * x;
    }
    double mean = s / n, var = s2 / n - mean * mean, kurt = s4 / n;
    // Standard errors at n = 2e5: mean 0.0022, variance 0.0032, 4th moment 0.022.
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.015);
    assert_true(fabs(kurt - 3.0) < 0.1);
    double u = 0;
    for (int i = 0; i < n; i++) u += rng_uniform(&r);
    assert_true(fabs(u / n - 0.5) < 0.003);
}

static void test_rng_permutation(void **state) {
    (void)state;
    rng_stream r;
    rng_init(&r, 5, 1, RNG_PURPOSE_ORDER);
    int perm[256], seen[256] = {0}, fixed = 0;
    rng_permutation(&r, perm, 256);
    for (int i = 0; i < 256; i++) {
        assert_true(perm[i] >= 0 && perm[i] < 256);
        seen[perm[i]]++;
        fixed += perm[i] == i;
    }
    for (int i = 0; i < 256; i++) assert_int_equal(seen[i], 1);
    assert_true(fixed < 8);  // expected 1 fixed point; 8 has probability < 1e-5
    // rng_below is uniform: chi-square over 6 bins.
    int bins[6] = {0};
    for (int i = 0; i < 60000; i++) bins[rng_below(&r, 6)]++;
    double chi = 0;
    for (int i = 0; i < 6; i++) chi += (bins[i] - 10000.0) * (bins[i] - 10000.0) / 10000.0;
    assert_true(chi < 20.5);  // p = 0.001 at 5 degrees of freedom
}

static void test_tensor(void **state) {
    (void)state;
    float buf[24];
    for (int i = 0; i < 24; i++) buf[i] = (float)i;
    int64_t shape[3] = {2, 3, 4};
    tensor t = tensor_view(buf, 3, shape);
    assert_int_equal(tensor_numel(&t), 24);
    assert_int_equal(t.stride[0], 12);
    assert_int_equal(t.stride[2], 1);
    assert_true(tensor_is_contiguous(&t));
    int64_t idx[3] = {1, 2, 3};
    assert_true(*tensor_at(&t, idx) == 23.0f);
    tensor n = tensor_narrow(t, 1, 1, 2);
    int64_t i0[3] = {0, 0, 0};
    assert_true(*tensor_at(&n, i0) == 4.0f);
    assert_false(tensor_is_contiguous(&n));
    char s[64];
    assert_string_equal(shape_str(s, sizeof s, 3, shape), "[2, 3, 4]");
    assert_string_equal(shape_str(s, sizeof s, 0, shape), "[]");
}

static void test_dgen(void **state) {
    (void)state;
    float x[4];
    dgen_fill(x, 4, 7, 0.5);
    // Values printed by tools/stio.py: dgen(7, (4,), 0.5).
    assert_float_equal(x[0], -0.43435556f, 1e-8);
    assert_float_equal(x[1], 0.09658813f, 1e-8);
    assert_float_equal(x[2], 0.09190607f, 1e-8);
    assert_float_equal(x[3], -0.0996955f, 1e-8);
}

static void test_blas(void **state) {
    (void)state;
    // y = x W^T + b on a hand-checked case, then transposed variants against loops.
    const float x[2 * 3] = {1, 2, 3, 4, 5, 6}, W[2 * 3] = {1, 0, -1, 2, 1, 0}, b[2] = {0.5f, -1};
    float y[4];
    blas_flops_reset();
    blas_linear(y, x, W, b, 2, 3, 2);
    assert_float_equal(y[0], 1 - 3 + 0.5f, 0);
    assert_float_equal(y[1], 2 + 2 - 1, 0);
    assert_float_equal(y[2], 4 - 6 + 0.5f, 0);
    assert_float_equal(y[3], 8 + 5 - 1, 0);
    assert_int_equal(blas_flops(), 2 * 2 * 2 * 3);
    enum { M = 5, N = 7, K = 9 };
    float A[K * M], B[N * K], C[M * N];
    dgen_fill(A, K * M, 1, 1.0);
    dgen_fill(B, N * K, 2, 1.0);
    for (int ta = 0; ta < 2; ta++) {
        blas_sgemm(ta, 1, M, N, K, 2.0f, A, ta ? M : K, B, K, 0.0f, C, N);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)(ta ? A[k * M + i] : A[i * K + k]) * B[j * K + k];
                assert_float_equal(C[i * N + j], 2 * s, 1e-5);
            }
    }
    float C2[4] = {1, 2, 3, 4};
    blas_sgemm(0, 0, 2, 2, 0, 1.0f, A, 1, B, 2, 0.0f, C2, 2);  // empty sum with beta 0: zeros
    for (int i = 0; i < 4; i++) assert_float_equal(C2[i], 0, 0);
}

static void test_coretype_decision(void **state) {
    (void)state;
    cpu_features avx512 = {1, 1, 1, 1, 1, 1, 1, 0, 0}, avx2 = {1, 1, 1, 0, 0, 0, 0, 0, 0}, old = {1, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_string_equal(cpu_blas_coretype_for("Prescott", &avx512), "SkylakeX");
    assert_string_equal(cpu_blas_coretype_for("prescott", &avx2), "Haswell");
    assert_string_equal(cpu_blas_coretype_for("Nehalem", &avx2), "Haswell");
    assert_null(cpu_blas_coretype_for("Prescott", &old));    // no AVX2: generic is right
    assert_null(cpu_blas_coretype_for("SkylakeX", &avx512)); // already a good core
    assert_null(cpu_blas_coretype_for("Cooperlake", &avx512));
    assert_null(cpu_blas_coretype_for("Zen", &avx2));
    assert_null(cpu_blas_coretype_for(NULL, &avx2));
}

// par_for: every index exactly once, in contiguous chunks of at least `grain`, for
// several thread counts; a loop inside a chunk runs serially on that thread.
typedef struct par_rec {
    unsigned char *hits;
    int chunks, nested_ok;
    size_t min_chunk;
    pthread_mutex_t mu;
} par_rec;

static void inner(void *ctx, size_t lo, size_t hi) {
    size_t *count = ctx;
    *count += hi - lo;  // serial: no other thread touches it
}

static void mark(void *ctx, size_t lo, size_t hi) {
    par_rec *r = ctx;
    for (size_t i = lo; i < hi; i++) r->hits[i]++;
    size_t count = 0;
    par_for(1000, 1, inner, &count);
    pthread_mutex_lock(&r->mu);
    r->chunks++;
    if (hi - lo < r->min_chunk) r->min_chunk = hi - lo;
    r->nested_ok &= count == 1000;
    pthread_mutex_unlock(&r->mu);
}

static void test_par_for(void **state) {
    (void)state;
    int saved = par_threads();
    const size_t ns[] = {0, 1, 7, 100, 4099, 100000};
    for (int t = 1; t <= 5; t++) {
        par_set_threads(t);
        assert_int_equal(par_threads(), t);
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
            size_t n = ns[k], grain = 3;
            par_rec r = {calloc(n + 1, 1), 0, 1, (size_t)-1, PTHREAD_MUTEX_INITIALIZER};
            assert_non_null(r.hits);
            par_for(n, grain, mark, &r);
            for (size_t i = 0; i < n; i++) assert_int_equal(r.hits[i], 1);
            int want = n / grain < (size_t)t ? (int)(n / grain) : t;
            assert_int_equal(r.chunks, want < 2 ? 1 : want);
            if (r.chunks > 1) assert_true(r.min_chunk >= grain);
            assert_true(r.nested_ok);
            free(r.hits);
        }
    }
    par_set_threads(saved);
}

// A child forked after helpers started has none of them: its par_for must still finish
// (it starts its own) instead of waiting for the parent's.
static void test_par_for_after_fork(void **state) {
    (void)state;
    int saved = par_threads();
    par_set_threads(2);
    par_rec r = {calloc(100, 1), 0, 1, (size_t)-1, PTHREAD_MUTEX_INITIALIZER};
    assert_non_null(r.hits);
    par_for(100, 1, mark, &r);  // starts a helper in this process
    assert_int_equal(r.chunks, 2);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);  // a hang fails the test instead of stalling the suite
        par_rec c = {calloc(100, 1), 0, 1, (size_t)-1, PTHREAD_MUTEX_INITIALIZER};
        if (!c.hits) _exit(2);
        par_for(100, 1, mark, &c);
        int ok = c.chunks == 2;
        for (int i = 0; i < 100; i++) ok &= c.hits[i] == 1;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(r.hits);
    par_set_threads(saved);
}

// The probe run in a child (main's --idle-probe): a 2-thread sgemm, 20 ms of sleep, then
// the number of this process's other threads still running or runnable. OpenBLAS's idle
// workers spin on sched_yield (state R) until OPENBLAS_THREAD_TIMEOUT, then sleep (S):
// 2^20 cycles is ~1 ms even at a 1 GHz TSC, 2^28 is >= 60 ms below a 4.5 GHz one.
static int idle_probe(void) {
    blas_set_gemm_threads(2);
    enum { N = 384 };
    float *a = malloc(sizeof(float) * N * N * 3);
    if (!a) return 100;
    dgen_fill(a, (size_t)N * N * 2, 3, 1.0);
    blas_sgemm(0, 1, N, N, N, 1.0f, a, N, a + N * N, N, 0.0f, a + 2 * N * N, N);
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    long self = syscall(SYS_gettid);
    int running = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return 101;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || atol(e->d_name) == self) continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *st = strrchr(buf, ')');  // "tid (comm) S ...": comm may hold spaces
        if (st && st[1] == ' ' && st[2] == 'R') running++;
    }
    closedir(d);
    free(a);
    return running;
}

// Runs this binary's --idle-probe with OPENBLAS_THREAD_TIMEOUT set to `timeout` (NULL:
// unset, and the child goes through cpu_blas_fix first); returns its exit status.
static int run_probe(const char *timeout) {
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        if (timeout) setenv("OPENBLAS_THREAD_TIMEOUT", timeout, 1);
        else unsetenv("OPENBLAS_THREAD_TIMEOUT");
        unsetenv("DISA_BLAS_SPIN_SET");
        execl("/proc/self/exe", "test_core", timeout ? "--idle-probe" : "--idle-probe-fixed", (char *)NULL);
        _exit(102);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

// cpu_blas_fix makes OpenBLAS's idle workers sleep after 2^20 cycles, not spin 2^28 while
// the attention heads and element-wise loops need the cores. The 2^28 run shows the probe
// sees a spinning worker at all.
static void test_blas_idle_threads(void **state) {
    (void)state;
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) skip();  // OpenBLAS starts no worker on one CPU
    assert_string_equal(CPU_BLAS_THREAD_TIMEOUT, "20");
    assert_true(run_probe("28") >= 1);
    assert_int_equal(run_probe("20"), 0);
    assert_int_equal(run_probe(NULL), 0);  // through cpu_blas_fix's re-exec, named test_core
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--idle-probe")) return idle_probe();
    if (argc > 1 && !strcmp(argv[1], "--idle-probe-fixed")) {
        cpu_blas_fix(argv);
        int by_disa = 0;
        const char *t = cpu_blas_thread_timeout(&by_disa);
        if (!t || strcmp(t, CPU_BLAS_THREAD_TIMEOUT) || !by_disa) return 103;
        // Re-executed through /proc/self/exe, the process must still carry argv[0]'s name.
        char comm[32] = "";
        FILE *f = fopen("/proc/self/comm", "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
            fclose(f);
        }
        if (strcmp(comm, "test_core\n")) return 104;
        return idle_probe();
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_message),    cmocka_unit_test(test_arena),
        cmocka_unit_test(test_philox_kat),     cmocka_unit_test(test_rng_streams),
        cmocka_unit_test(test_rng_normal_moments), cmocka_unit_test(test_rng_permutation),
        cmocka_unit_test(test_tensor),         cmocka_unit_test(test_dgen),
        cmocka_unit_test(test_blas),           cmocka_unit_test(test_coretype_decision),
        cmocka_unit_test(test_par_for), cmocka_unit_test(test_par_for_after_fork),
        cmocka_unit_test(test_blas_idle_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
