// Unit tests of src/metrics: MT19937 and numpy's legacy permutation against values
// printed by numpy 1.24, feature statistics (shard merging, numpy.cov definition),
// self-FID, Inception Score edge cases, precision/recall on hand-made sets, the IDX
// reader and the sequential-CNN config checks.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/err.h"
#include "disa/idx.h"
#include "disa/image.h"
#include "disa/metrics.h"
#include "disa/mt19937.h"
#include "disa/refstats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tmpdir.h"

// ----------------------------------------------------------------------------
// numpy RandomState

// np.random.RandomState(s).randint(0, 2**32, size=k, dtype=np.uint32)
static void test_mt_draws(void **state) {
    (void)state;
    mt19937 r;
    mt19937_seed(&r, 5489);  // the reference implementation's default seed
    const uint32_t want5489[3] = {3499211612u, 581869302u, 3890346734u};
    for (int i = 0; i < 3; i++) assert_int_equal(mt19937_next_u32(&r), want5489[i]);
    mt19937_seed(&r, 2020);
    const uint32_t want2020[5] = {4236026720u, 639299976u, 3751189827u, 2669525622u, 2189340355u};
    for (int i = 0; i < 5; i++) assert_int_equal(mt19937_next_u32(&r), want2020[i]);
    mt19937_seed(&r, 4294967295u);
    assert_int_equal(mt19937_next_u32(&r), 419326371u);
    assert_int_equal(mt19937_next_u32(&r), 479346978u);
}

// np.random.RandomState(s).permutation(n)
static void test_mt_permutation(void **state) {
    (void)state;
    int64_t p[10];
    mt19937_permutation(p, 10, 2020);
    const int64_t w10[10] = {2, 4, 9, 1, 5, 7, 6, 3, 8, 0};
    for (int i = 0; i < 10; i++) assert_int_equal(p[i], w10[i]);
    mt19937_permutation(p, 7, 0);
    const int64_t w7[7] = {6, 2, 1, 3, 0, 5, 4};
    for (int i = 0; i < 7; i++) assert_int_equal(p[i], w7[i]);
    mt19937_permutation(p, 1, 2020);
    assert_int_equal(p[0], 0);
    // The 50,000-image case of torch-fidelity's IS: ends and a checksum of all entries.
    int64_t *q = malloc(50000 * sizeof(int64_t));
    assert_non_null(q);
    mt19937_permutation(q, 50000, 2020);
    const int64_t head[8] = {24397, 39273, 6546, 13504, 49765, 31361, 27741, 47758};
    const int64_t tail[8] = {20039, 32387, 1661, 18523, 44739, 47734, 40259, 41824};
    uint64_t sum = 0;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(q[i], head[i]);
        assert_int_equal(q[50000 - 8 + i], tail[i]);
    }
    for (int64_t i = 0; i < 50000; i++) sum += (uint64_t)i * (uint64_t)q[i];
    assert_true(sum == 31221568855262ull);  // sum(arange(50000) * perm) in numpy
    free(q);
}

// ----------------------------------------------------------------------------
// statistics and FID

static float *features(int n, int d, uint64_t seed) {
    float *x = malloc(sizeof(float) * (size_t)n * d);
    assert_non_null(x);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < (size_t)n * d; i++) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        double u = (double)((s * 0x2545F4914F6CDD1Dull) >> 40) / (double)(1 << 24);
        // Correlated columns: each one leans on its left neighbour.
        x[i] = (float)(u + (i % d ? 0.5 * x[i - 1] : 0.0));
    }
    return x;
}

static void test_stats_merge_equals_oneshot(void **state) {
    (void)state;
    const int n = 301, d = 37;
    float *x = features(n, d, 1);
    fstats one, a, b, c;
    assert_int_equal(fstats_init(&one, d), 0);
    assert_int_equal(fstats_init(&a, d), 0);
    assert_int_equal(fstats_init(&b, d), 0);
    assert_int_equal(fstats_init(&c, d), 0);
    fstats_add(&one, x, n);
    fstats_add(&a, x, 100);                               // shards of 100, 1 and 200 rows
    fstats_add(&b, x + (size_t)100 * d, 1);
    fstats_add(&c, x + (size_t)101 * d, 200);
    assert_int_equal(fstats_merge(&c, &a), 0);            // merged in another order
    assert_int_equal(fstats_merge(&c, &b), 0);
    double *m1 = malloc(sizeof(double) * d), *s1 = malloc(sizeof(double) * d * d);
    double *m2 = malloc(sizeof(double) * d), *s2 = malloc(sizeof(double) * d * d);
    assert_int_equal(fstats_mu_sigma(&one, m1, s1), 0);
    assert_int_equal(fstats_mu_sigma(&c, m2, s2), 0);
    assert_int_equal(c.n, n);
    for (int i = 0; i < d; i++) assert_true(fabs(m1[i] - m2[i]) <= 1e-13 * fabs(m1[i]));
    for (int i = 0; i < d * d; i++) assert_true(fabs(s1[i] - s2[i]) <= 1e-12 * fabs(s1[0]));
    // numpy.cov by definition (two-pass, ddof 1) on the same float32 data.
    for (int i = 0; i < d; i += 5) {
        for (int j = 0; j < d; j += 3) {
            double cov = 0;
            for (int r = 0; r < n; r++) cov += ((double)x[r * d + i] - m1[i]) * ((double)x[r * d + j] - m1[j]);
            cov /= n - 1;
            assert_true(fabs(cov - s1[i * d + j]) <= 1e-12 * fabs(s1[i * d + i]));
            assert_true(s1[i * d + j] == s1[j * d + i]);  // exactly symmetric
        }
    }
    fstats bad;
    assert_int_equal(fstats_init(&bad, d + 1), 0);
    assert_int_equal(fstats_merge(&bad, &one), DISA_ESHAPE);
    fstats_free(&bad);
    fstats_free(&one), fstats_free(&a), fstats_free(&b), fstats_free(&c);
    free(m1), free(s1), free(m2), free(s2), free(x);
    fstats one_row;
    assert_int_equal(fstats_init(&one_row, 3), 0);
    float r3[3] = {1, 2, 3};
    fstats_add(&one_row, r3, 1);
    double mu[3], sg[9];
    assert_int_equal(fstats_mu_sigma(&one_row, mu, sg), DISA_ERANGE);
    fstats_free(&one_row);
}

static void test_fid_self_zero(void **state) {
    (void)state;
    const int n = 400, d = 64;
    float *x = features(n, d, 7);
    fstats s;
    assert_int_equal(fstats_init(&s, d), 0);
    fstats_add(&s, x, n);
    double *mu = malloc(sizeof(double) * d), *sg = malloc(sizeof(double) * d * d);
    assert_int_equal(fstats_mu_sigma(&s, mu, sg), 0);
    double fe = 1, fs = 1;
    fid_sqrtm_info info;
    assert_int_equal(fid_eig(&fe, mu, sg, mu, sg, d), 0);
    assert_int_equal(fid_sqrtm(&fs, &info, mu, sg, mu, sg, d, 1e-6), 0);
    assert_true(fabs(fe) < 1e-6);
    assert_true(fabs(fs) < 1e-6);
    assert_int_equal(info.offset_used, 0);
    // A shifted mean adds exactly |shift|^2.
    double *mu2 = malloc(sizeof(double) * d);
    for (int i = 0; i < d; i++) mu2[i] = mu[i] + (i == 3 ? 0.5 : 0.0);
    assert_int_equal(fid_eig(&fe, mu, sg, mu2, sg, d), 0);
    assert_true(fabs(fe - 0.25) < 1e-6);
    // Diagonal covariances: FID = sum (sqrt a - sqrt b)^2 in closed form.
    double A[4] = {4, 0, 0, 9}, Bm[4] = {1, 0, 0, 16}, z[2] = {0, 0};
    assert_int_equal(fid_eig(&fe, z, A, z, Bm, 2), 0);
    assert_int_equal(fid_sqrtm(&fs, NULL, z, A, z, Bm, 2, 1e-6), 0);
    assert_true(fabs(fe - 2.0) < 1e-12 && fabs(fs - 2.0) < 1e-12);  // (2-1)^2 + (3-4)^2
    fstats_free(&s);
    free(mu), free(sg), free(mu2), free(x);
}

// ----------------------------------------------------------------------------
// Inception Score

static void test_isc_edges(void **state) {
    (void)state;
    // Uniform predictions: every KL is 0, IS = 1 with std 0.
    float u[20 * 4] = {0};
    double m, s;
    assert_int_equal(isc_tf(&m, &s, u, 20, 4, 10, 1, 2020), 0);
    assert_true(fabs(m - 1.0) < 1e-12 && fabs(s) < 1e-12);
    // Confident, balanced over C classes in every split: IS = C.
    float x[40 * 4];
    for (int i = 0; i < 40; i++)
        for (int c = 0; c < 4; c++) x[i * 4 + c] = c == i % 4 ? 60.0f : 0.0f;
    assert_int_equal(isc_tf(&m, &s, x, 40, 4, 10, 0, 2020), 0);
    assert_true(fabs(m - 4.0) < 1e-9);
    assert_int_equal(isc_adm(&m, x, 40, 4, 16), 0);  // splits of 16, 16 and 8 rows: all balanced
    assert_true(fabs(m - 4.0) < 1e-9);
    // Fewer rows than splits, and a split that misses rows.
    assert_int_equal(isc_tf(&m, &s, x, 5, 4, 10, 1, 2020), DISA_EINVAL);
    isc_acc a;
    assert_int_equal(isc_acc_init_tf(&a, 4, 40, 10, 1, 2020), 0);
    assert_int_equal(isc_acc_add(&a, x, NULL, 0, 39), 0);
    assert_int_equal(isc_acc_result(&a, &m, &s), DISA_ERANGE);
    int64_t bad = 40;
    assert_int_equal(isc_acc_add(&a, x, &bad, 0, 1), DISA_ERANGE);
    isc_acc_free(&a);
}

// ----------------------------------------------------------------------------
// precision / recall

static void test_prc_hand_made(void **state) {
    (void)state;
    // Reference: 5 points on a line, spacing 1 (k = 1 radius 1). Generated: one at 2.5
    // (inside), one at 10 (outside). Generated radii (k = 1): both 7.5, so every
    // reference point is inside the ball of 2.5.
    float ref[5] = {0, 1, 2, 3, 4}, gen[2] = {2.5f, 10.0f};
    double p, r;
    assert_int_equal(prc_compute(&p, &r, ref, 5, gen, 2, 1, 1), 0);
    assert_true(p == 0.5 && r == 1.0);
    // Identical sets: precision = recall = 1 (every point is inside its own ball).
    assert_int_equal(prc_compute(&p, &r, ref, 5, ref, 5, 1, 3), 0);
    assert_true(p == 1.0 && r == 1.0);
    assert_int_equal(prc_compute(&p, &r, ref, 5, gen, 2, 1, 3), DISA_EINVAL);  // k >= set size
}

// ----------------------------------------------------------------------------
// reference statistics files: one dtype policy (float64, or float32 widened exactly)

static void test_refstats_dtypes(void **state) {
    (void)state;
    char path[160];
    snprintf(path, sizeof path, "%s/disa-test-ref-%d.npz", tmp_root(), (int)getpid());
    const double mu64[2] = {0.1, -2.5}, sg64[4] = {1.0, 0.25, 0.25, 3.0};
    const float mu32[2] = {0.1f, -2.5f}, sg32[4] = {1.0f, 0.25f, 0.25f, 3.0f};
    const int64_t mui[2] = {1, 2};
    double *mu, *sigma;
    // float64 as written by refstats_write, read back bit for bit.
    assert_int_equal(refstats_write(path, mu64, sg64, 2, 7, NULL, NULL, 0), 0);
    assert_int_equal(refstats_read(path, 2, &mu, &sigma), 0);
    assert_true(mu[0] == 0.1 && mu[1] == -2.5 && sigma[1] == 0.25 && sigma[3] == 3.0);
    free(mu);
    free(sigma);
    assert_int_equal(refstats_read(path, 3, &mu, &sigma), DISA_ESHAPE);  // another feature width
    assert_non_null(strstr(disa_errmsg(), "'mu' must be a vector of size 3"));
    assert_null(mu);
    // float32 widened: the float32 values exactly, not the decimal ones.
    npz_entry e[2] = {{.name = "mu", .dtype = NPY_F32, .ndim = 1, .shape = {2}, .data = mu32},
                      {.name = "sigma", .dtype = NPY_F32, .ndim = 2, .shape = {2, 2}, .data = sg32}};
    assert_int_equal(npz_write(path, e, 2), 0);
    assert_int_equal(refstats_read(path, 2, &mu, &sigma), 0);
    assert_true(mu[0] == (double)0.1f && mu[0] != 0.1 && sigma[3] == 3.0);
    free(mu);
    free(sigma);
    assert_int_equal(refstats_check(path, 2), 0);
    // Integers are refused, naming the array.
    e[0].dtype = NPY_I64;
    e[0].data = mui;
    assert_int_equal(npz_write(path, e, 2), 0);
    assert_int_equal(refstats_check(path, 2), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "'mu' must be float32 or float64"));
    unlink(path);
}

// ----------------------------------------------------------------------------
// IDX and the sequential CNN config

static void test_idx(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/disa-test-idx-XXXXXX", tmp_root());
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const uint8_t file[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    assert_int_equal(write(fd, file, sizeof file), (int)sizeof file);
    close(fd);
    idx_array a;
    assert_int_equal(idx_read(&a, path), 0);
    assert_int_equal(a.ndim, 3);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[2], 3);
    assert_int_equal(a.data[11], 12);
    idx_free(&a);
    FILE *f = fopen(path, "wb");
    fwrite(file, 1, sizeof file - 1, f);  // one byte short
    fclose(f);
    assert_int_equal(idx_read(&a, path), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "promises 12 bytes"));
    unlink(path);
    assert_int_equal(idx_read(&a, "/nonexistent/x.idx"), DISA_ENOTFOUND);
    // The real test set, through gzip, when installed.
    if (access("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", R_OK) == 0) {
        assert_int_equal(idx_read(&a, "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"), 0);
        assert_int_equal(a.ndim, 1);
        assert_int_equal(a.shape[0], 10000);
        assert_int_equal(a.data[0], 9);  // the first test item is an ankle boot
        idx_free(&a);
    }
}

static void test_seqcnn_config(void **state) {
    (void)state;
    seqcnn m;
    const char *ok =
        "{\"format\":\"disa-classifier-1\",\"input\":{\"channels\":1,\"height\":28,\"width\":28},\"layers\":["
        "{\"type\":\"conv2d\",\"name\":\"features.0\",\"cin\":1,\"cout\":4,\"k\":3,\"stride\":1,\"pad\":1},"
        "{\"type\":\"relu\"},{\"type\":\"maxpool2d\",\"k\":2,\"stride\":2},{\"type\":\"flatten\"},"
        "{\"type\":\"linear\",\"name\":\"fc\",\"in\":784,\"out\":10}],\"feature_layer\":3}";
    assert_int_equal(seqcnn_config_parse(&m, ok, "t"), 0);
    assert_int_equal(m.feat_dim, 784);
    assert_int_equal(m.n_classes, 10);
    assert_string_equal(m.layers[4].wname, "fc.weight");
    free(m.layers);
    // A linear layer whose input does not match the flattened size is named.
    char bad[1024];
    snprintf(bad, sizeof bad, "%s", ok);
    char *p = strstr(bad, "784");
    memcpy(p, "785", 3);
    assert_int_equal(seqcnn_config_parse(&m, bad, "t.safetensors"), DISA_ESHAPE);
    assert_non_null(strstr(disa_errmsg(), "layers[4] linear: in 785 does not match the 784"));
    assert_int_equal(seqcnn_config_parse(&m, "{\"format\":\"x\"}", "t"), DISA_EFORMAT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_draws),         cmocka_unit_test(test_mt_permutation),
        cmocka_unit_test(test_stats_merge_equals_oneshot), cmocka_unit_test(test_fid_self_zero),
        cmocka_unit_test(test_isc_edges),        cmocka_unit_test(test_prc_hand_made),
        cmocka_unit_test(test_idx),              cmocka_unit_test(test_seqcnn_config),
        cmocka_unit_test(test_refstats_dtypes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
