// Unit tests of src/model/vae.c: config parsing and its messages, the loader (every
// missing, mis-shaped and unexpected tensor listed; encoder tensors of a full checkpoint
// ignored), scratch sizing, batch independence of vae_decode, and arena overflow.
// Numerical parity with PyTorch is the golden cases' job (tests/golden/vae_*).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/dgen.h"
#include "disa/err.h"
#include "disa/safetensors.h"
#include "disa/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmpdir.h"

#define TINY "{\"format\": \"disa-vae-1\", \"embed_dim\": 2, \"ch\": 8, \"ch_mult\": [1, 2], " \
             "\"num_res_blocks\": 1, \"num_groups\": 4}"

static void expect_bad_config(const char *json, int code, const char *needle) {
    vae_config c;
    int rc = vae_config_parse(&c, json, "m.safetensors");
    if (rc != code || !strstr(disa_errmsg(), needle))
        fail_msg("config %s: rc %d, message '%s', wanted %d and '%s'", json, rc, disa_errmsg(), code, needle);
}

static void test_config(void **state) {
    (void)state;
    vae_config c, k;
    vae_config_kl16(&k);
    assert_int_equal(vae_config_parse(&c, "{\"format\": \"disa-vae-1\", \"embed_dim\": 16, \"z_channels\": 16, "
                                          "\"ch\": 128, \"ch_mult\": [1, 1, 2, 2, 4], \"num_res_blocks\": 2, "
                                          "\"out_ch\": 3, \"resolution\": 256}", "m"), 0);
    assert_memory_equal(&c, &k, sizeof c);
    assert_int_equal(vae_upscale(&c), 16);
    assert_int_equal(vae_config_parse(&c, TINY, "m"), 0);
    assert_int_equal(c.z_channels, 2);  // defaults to embed_dim
    assert_int_equal(c.n_levels, 2);
    assert_float_equal(c.latent_scale, 0.2325f, 0);
    expect_bad_config(NULL, DISA_EFORMAT, "convert_vae.py");
    expect_bad_config("[1]", DISA_EFORMAT, "not a JSON object");
    expect_bad_config("{\"format\": \"disa-mar-1\"}", DISA_EFORMAT, "disa-vae-1");
    expect_bad_config("{\"format\": \"disa-vae-1\", \"embed_dim\": 16, \"ch_mult\": [1], \"num_res_blocks\": 2}",
                      DISA_EFORMAT, "m.safetensors: config: 'ch' is missing");
    expect_bad_config("{\"format\": \"disa-vae-1\", \"embed_dim\": 16, \"ch\": 100, \"ch_mult\": [1], "
                      "\"num_res_blocks\": 2}", DISA_ERANGE, "= 100 is not a multiple of num_groups 32");
    expect_bad_config("{\"format\": \"disa-vae-1\", \"embed_dim\": 16, \"ch\": 32, \"ch_mult\": [], "
                      "\"num_res_blocks\": 2}", DISA_EFORMAT, "'ch_mult' must be an array of 1..8");
    expect_bad_config("{\"format\": \"disa-vae-1\", \"embed_dim\": 16, \"ch\": 32, \"ch_mult\": [1, 1.5], "
                      "\"num_res_blocks\": 2}", DISA_ERANGE, "'ch_mult'[1]");
    expect_bad_config("{\"format\": \"disa-vae-1\", \"embed_dim\": 0, \"ch\": 32, \"ch_mult\": [1], "
                      "\"num_res_blocks\": 2}", DISA_ERANGE, "'embed_dim' must be in 1..4096, got 0");
    expect_bad_config("{\"format\": \"disa-vae-1\", \"embed_dim\": 4, \"ch\": 32, \"ch_mult\": [1], "
                      "\"num_res_blocks\": 2, \"attn_resolutions\": [16]}", DISA_EFORMAT, "attn_resolutions");
    expect_bad_config("{\"format\": \"disa-vae-1\", \"embed_dim\": 4, \"ch\": 32, \"ch_mult\": [1], "
                      "\"num_res_blocks\": 2, \"latent_scale\": 0}", DISA_ERANGE, "'latent_scale'");
}

static void test_sizes(void **state) {
    (void)state;
    vae_config k;
    vae_config_kl16(&k);
    // KL-16 at 16x16: about 0.25 TFLOP (DESIGN §10: "VAE ~0.2 TFLOP") and three 32 MB
    // feature maps plus a fourth region for the 16 MB im2col band (fp32) or two bf16
    // maps (bf16); the batch does not change the scratch.
    double f = vae_decode_flops(&k, 16, 16);
    assert_true(f > 2.4e11 && f < 2.6e11);
    size_t s1 = vae_decode_scratch_bytes(&k, 1, 16, 16), s8 = vae_decode_scratch_bytes(&k, 8, 16, 16);
    assert_int_equal(s1, s8);
    assert_true(s1 > (size_t)4 * 128 * 256 * 256 * 4 && s1 < (size_t)160 << 20);
    assert_int_equal(vae_decode_scratch_bytes(&k, 1, 0, 16), 0);
}

// Write a model file with the table of `json`, generated weights, optionally dropping,
// reshaping or adding tensors.
typedef struct {
    const char *drop1, *drop2, *reshape, *extra;
    int no_config;
} tamper;

static void write_model(const char *path, const char *json, const tamper *t) {
    vae_model m;
    memset(&m, 0, sizeof m);
    assert_int_equal(vae_config_parse(&m.cfg, json, "test"), 0);
    st_bind_entry *tab;
    char *names;
    int n;
    assert_int_equal(vae_tensor_table(&m, &tab, &names, &n), 0);
    st_writer *w = st_writer_new();
    float **bufs = calloc((size_t)n + 1, sizeof *bufs);
    for (int i = 0; i < n; i++) {
        if (t && ((t->drop1 && !strcmp(tab[i].name, t->drop1)) || (t->drop2 && !strcmp(tab[i].name, t->drop2))))
            continue;
        int64_t shape[8];
        memcpy(shape, tab[i].shape, sizeof shape);
        if (t && t->reshape && !strcmp(tab[i].name, t->reshape)) shape[0] += 1;
        size_t numel = 1;
        for (int d = 0; d < tab[i].ndim; d++) numel *= (size_t)shape[d];
        bufs[i] = malloc(numel * sizeof(float));
        // Gains in (-1, 1) for norms, fan-in scaled conv weights, small biases.
        int is_bias = strstr(tab[i].name, ".bias") != NULL;
        double scale = tab[i].ndim == 4 ? sqrt(3.0 / (double)(shape[1] * shape[2] * shape[3]))
                       : is_bias ? 0.05 : 1.0;
        dgen_fill(bufs[i], numel, 100 + (uint64_t)i, scale);
        assert_int_equal(st_writer_add(w, tab[i].name, ST_F32, tab[i].ndim, shape, bufs[i]), 0);
    }
    float extra[4] = {0};
    if (t && t->extra) assert_int_equal(st_writer_add(w, t->extra, ST_F32, 1, (int64_t[]){4}, extra), 0);
    if (!(t && t->no_config)) assert_int_equal(st_writer_meta(w, "config", json), 0);
    assert_int_equal(st_writer_write(w, path), 0);
    st_writer_delete(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(tab);
    free(names);
    vae_close(&m);
}

static void test_open_errors(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", g_dir);
    vae_model m;
    tamper t = {.drop1 = "decoder.mid.attn_1.q.bias", .drop2 = "decoder.up.0.block.0.nin_shortcut.weight"};
    write_model(path, TINY, &t);
    assert_int_equal(vae_open(&m, path), DISA_ENOTFOUND);
    assert_non_null(strstr(disa_errmsg(), "2 of 70 tensors missing or mis-shaped"));
    assert_non_null(strstr(disa_errmsg(), "'decoder.mid.attn_1.q.bias' is missing"));
    assert_non_null(strstr(disa_errmsg(), "'decoder.up.0.block.0.nin_shortcut.weight' is missing"));
    tamper r = {.reshape = "decoder.conv_out.weight"};
    write_model(path, TINY, &r);
    assert_int_equal(vae_open(&m, path), DISA_ESHAPE);
    assert_non_null(strstr(disa_errmsg(), "tensor 'decoder.conv_out.weight': got [4, 8, 3, 3], expected [3, 8, 3, 3]"));
    // A block the config does not describe: the config is probably wrong.
    tamper x = {.extra = "decoder.up.1.block.2.norm1.weight"};
    write_model(path, TINY, &x);
    assert_int_equal(vae_open(&m, path), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "unexpected tensor 'decoder.up.1.block.2.norm1.weight'"));
    // The encoder half of a full checkpoint is ignored.
    tamper enc = {.extra = "encoder.conv_in.bias"};
    write_model(path, TINY, &enc);
    assert_int_equal(vae_open(&m, path), 0);
    vae_close(&m);
    tamper nc = {.no_config = 1};
    write_model(path, TINY, &nc);
    assert_int_equal(vae_open(&m, path), DISA_EFORMAT);
    assert_non_null(strstr(disa_errmsg(), "no 'config' metadata"));
    snprintf(path, sizeof path, "%s/none.safetensors", g_dir);
    assert_int_equal(vae_open(&m, path), DISA_ENOTFOUND);
}

static void test_decode(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/d.safetensors", g_dir);
    write_model(path, TINY, NULL);
    vae_model m;
    assert_int_equal(vae_open(&m, path), 0);
    int B = 3, h = 2, w = 3, up = vae_upscale(&m.cfg);
    size_t in_n = (size_t)m.cfg.embed_dim * h * w, out_n = (size_t)3 * h * up * w * up;
    float *tok = malloc(B * in_n * sizeof(float)), *img = malloc(B * out_n * sizeof(float));
    float *one = malloc(out_n * sizeof(float));
    dgen_fill(tok, B * in_n, 7, 1.0);
    arena a;
    size_t need = vae_decode_scratch_bytes(&m.cfg, B, h, w);
    assert_int_equal(arena_init(&a, need, "scratch"), 0);
    assert_int_equal(vae_decode(&m, &a, img, tok, B, h, w), 0);
    assert_int_equal(a.used, 0);  // scratch released
    assert_true(a.peak <= need);
    double sum = 0;
    for (size_t i = 0; i < B * out_n; i++) {
        assert_true(isfinite(img[i]));
        sum += fabs(img[i]);
    }
    assert_true(sum > 0);
    // Image b does not depend on the others in its batch: bit-identical when alone.
    for (int b = 0; b < B; b++) {
        assert_int_equal(vae_decode(&m, &a, one, tok + b * in_n, 1, h, w), 0);
        assert_memory_equal(one, img + b * out_n, out_n * sizeof(float));
    }
    // Too little scratch: an error with the size needed, not a crash.
    arena small;
    assert_int_equal(arena_init(&small, need / 2, "small"), 0);
    assert_int_equal(vae_decode(&m, &small, img, tok, 1, h, w), DISA_ENOMEM);
    assert_non_null(strstr(disa_errmsg(), "vae_decode_scratch_bytes"));
    assert_int_equal(small.used, 0);
    assert_int_equal(vae_decode(&m, &a, img, tok, 1, 0, w), DISA_EINVAL);
    arena_free(&small);
    arena_free(&a);
    free(tok);
    free(img);
    free(one);
    vae_close(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
