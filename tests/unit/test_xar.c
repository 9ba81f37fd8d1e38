// Unit tests of xAR's config, settings and schedule (src/model/xar.c,
// src/sample/xar_sample.c): the values of the official formulas, the messages of bad
// input, and, on a small random-weight model written to disk, that the FLOP model
// equals what the sampler counts, that the per-image streams make runs repeatable and
// independent of the batch, and that the loader names what is wrong with a file.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/mar.h"
#include "disa/safetensors.h"
#include "disa/xar.h"
#include "disa/xar_sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tmpdir.h"

static char g_xdir[64];
static char g_model[128], g_mar[128], g_bad[128];

// 6 x 6 tokens of 4 in 9 groups; encoder and decoder differ in depth and head count.
#define CONFIG "{\"format\":\"disa-xar-1\",\"img_size\":12,\"vae_stride\":1,\"patch_size\":2,\"vae_embed_dim\":1," \
               "\"encoder_embed_dim\":32,\"encoder_depth\":2,\"encoder_num_heads\":2,\"decoder_embed_dim\":32," \
               "\"decoder_depth\":1,\"decoder_num_heads\":4,\"mlp_ratio\":4.0,\"class_num\":10,\"clusters\":9," \
               "\"tokenizer\":\"patch\",\"norm_eps\":1e-6}"

static int write_xar(const char *path, const char *config, int drop_last, int bad_shape) {
    xar_model m;
    memset(&m, 0, sizeof m);
    if (xar_config_parse(&m.cfg, config, "test") != 0) return -1;
    st_bind_entry *tab;
    char *names;
    int n;
    if (xar_tensor_table(&m, &tab, &names, &n) != 0) return -1;
    if (bad_shape) tab[0].shape[1] += 1;  // class_emb.weight one column too wide
    char json[1024];
    int rc = st_write_generated(tab, n - drop_last, 91, xar_config_to_json(&m.cfg, json, sizeof json), path, NULL);
    free(tab);
    free(names);
    xar_model_free_tables(&m);
    return rc;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_xdir, sizeof g_xdir, "%s/disa-xar-XXXXXX", tmp_root());
    if (!mkdtemp(g_xdir)) return -1;
    snprintf(g_model, sizeof g_model, "%s/x.safetensors", g_xdir);
    snprintf(g_bad, sizeof g_bad, "%s/bad.safetensors", g_xdir);
    snprintf(g_mar, sizeof g_mar, "%s/mar.safetensors", g_xdir);
    if (write_xar(g_model, CONFIG, 0, 0) || write_xar(g_bad, CONFIG, 1, 1)) return -1;
    // A MAR file, to be refused by the xAR loader.
    mar_model m;
    memset(&m, 0, sizeof m);
    if (mar_config_preset(&m.cfg, "mar_base") != 0) return -1;
    const char *mar_json = "{\"format\":\"disa-mar-1\",\"img_size\":16,\"vae_stride\":4,\"patch_size\":1,"
                           "\"vae_embed_dim\":4,\"encoder_embed_dim\":8,\"encoder_depth\":1,\"encoder_num_heads\":2,"
                           "\"decoder_embed_dim\":8,\"decoder_depth\":1,\"decoder_num_heads\":2,\"buffer_size\":2,"
                           "\"class_num\":3,\"diffloss_d\":1,\"diffloss_w\":8,\"tokenizer\":\"patch\"}";
    if (mar_config_parse(&m.cfg, mar_json, "test") != 0) return -1;
    st_bind_entry *tab;
    char *names;
    int n;
    if (mar_tensor_table(&m, &tab, &names, &n) != 0) return -1;
    int rc = st_write_generated(tab, n, 5, mar_json, g_mar, NULL);
    free(tab);
    free(names);
    free(m.enc);
    free(m.dec);
    free(m.head.blocks);
    return rc ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_xdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void assert_msg(const char *frag) {
    if (!strstr(disa_errmsg(), frag)) fail_msg("message '%s' lacks '%s'", disa_errmsg(), frag);
}

// ----------------------------------------------------------------------------
// config

static void test_presets(void **state) {
    (void)state;
    xar_config c;
    assert_int_equal(xar_config_preset(&c, "xar_base"), 0);
    assert_int_equal(c.seq_len, 256);
    assert_int_equal(c.group, 64);
    assert_int_equal(c.cluster_h, 2);
    assert_int_equal(c.enc_hidden, 2048);  // int(768 * 4 * 2 / 3.)
    assert_int_equal(c.token_dim, 16);
    assert_int_equal(xar_config_preset(&c, "xar_large"), 0);
    assert_int_equal(c.enc_hidden, 2730);  // 2730.67 truncated
    assert_int_equal(c.enc_depth, 16);
    assert_int_equal(xar_config_preset(&c, "xar_huge"), 0);
    assert_int_equal(c.enc_hidden, 3413);
    assert_int_equal(c.enc_dim / c.enc_heads, 80);
    assert_int_equal(xar_config_preset(&c, "mar_base"), DISA_EINVAL);
    assert_msg("xar_base, xar_large, xar_huge");
    // The JSON round trip gives the same config.
    xar_config d;
    char json[1024];
    assert_int_equal(xar_config_preset(&c, "xar_huge"), 0);
    assert_int_equal(xar_config_parse(&d, xar_config_to_json(&c, json, sizeof json), "rt"), 0);
    assert_memory_equal(&c, &d, sizeof c);
}

static void test_bad_configs(void **state) {
    (void)state;
    xar_config c;
    struct { const char *from, *to, *msg; } cases[] = {
        {"\"disa-xar-1\"", "\"disa-mar-1\"", "config 'format' must be \"disa-xar-1\", got \"disa-mar-1\""},
        {"\"decoder_embed_dim\":32", "\"decoder_embed_dim\":48", "must be equal"},
        {"\"encoder_num_heads\":2", "\"encoder_num_heads\":16", "must be whole multiples of 4"},
        {"\"clusters\":9", "\"clusters\":8", "'clusters' must be a square >= 4"},
        {"\"clusters\":9", "\"clusters\":1", "'clusters' must be a square >= 4"},
        {"\"clusters\":9", "\"clusters\":16", "whose root divides the 6 x 6 token grid, got 16"},
        {"\"class_num\":10,", "", "'class_num' is missing"},
        {"\"tokenizer\":\"patch\"", "\"tokenizer\":\"vq\"", "'tokenizer' must be"},
        {"\"img_size\":12", "\"img_size\":13", "not a multiple of vae_stride*patch_size"},
        {"\"clusters\":9", "\"clusters\":9,\"buffer_size\":64", "unknown key 'buffer_size'"},
        {"\"norm_eps\":1e-6", "\"norm_eps\":0", "'norm_eps' must be a number in (0, 1)"},
        {"\"mlp_ratio\":4.0", "\"mlp_ratio\":\"4\"", "'mlp_ratio' must be a number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char json[1024];
        const char *at = strstr(CONFIG, cases[i].from);
        assert_non_null(at);
        snprintf(json, sizeof json, "%.*s%s%s", (int)(at - CONFIG), CONFIG, cases[i].to, at + strlen(cases[i].from));
        if (xar_config_parse(&c, json, "cfg.json") >= 0) fail_msg("accepted: %s", json);
        assert_msg("cfg.json: ");
        assert_msg(cases[i].msg);
    }
    assert_int_equal(xar_config_parse(&c, NULL, "m.safetensors"), DISA_EFORMAT);
    assert_msg("tools/convert_xar.py");
}

// ----------------------------------------------------------------------------
// settings and schedule

static void test_params(void **state) {
    (void)state;
    xar_params p;
    xar_params_init(&p);
    assert_int_equal(p.upper, 50);  // xAR_DiSA eval.py defaults
    assert_int_equal(p.lower, 15);
    assert_true(p.cfg == 1.0);
    assert_int_equal(p.sampler, XAR_SAMPLER_EULER_MARUYAMA);
    assert_int_equal(xar_params_check(&p), 0);
    assert_int_equal(xar_params_set(&p, "num_steps", "40"), 0);
    assert_int_equal(p.upper, 40);
    assert_int_equal(p.lower, 40);
    assert_int_equal(xar_params_set(&p, "flow_upper_steps", "50"), 0);
    assert_int_equal(xar_params_set(&p, "cfg", "2.7"), 0);
    assert_int_equal(xar_params_set(&p, "cfg_schedule", "linear"), 0);
    assert_int_equal(xar_params_set(&p, "flow_sampler", "euler"), 0);
    char buf[256];
    assert_string_equal(xar_params_str(&p, buf, sizeof buf),
                        "flow_upper_steps=50 flow_lower_steps=40 cfg=2.7 cfg_schedule=linear flow_sampler=euler");
    // Bad values: one message naming the flag and what is accepted.
    assert_int_equal(xar_params_set(&p, "cfg_schedule", "constant"), DISA_EINVAL);
    assert_msg("--cfg_schedule must be linear for xAR");
    assert_int_equal(xar_params_set(&p, "flow_lower_steps", "0"), DISA_EINVAL);
    assert_msg("--flow_lower_steps must be an integer in 1..1000, got '0'");
    assert_int_equal(xar_params_set(&p, "flow_upper_steps", "1001"), DISA_EINVAL);
    assert_int_equal(xar_params_set(&p, "cfg", "0.5"), DISA_EINVAL);
    assert_msg("--cfg must be a number in [1, 100]");
    assert_int_equal(xar_params_set(&p, "flow_sampler", "heun"), DISA_EINVAL);
    assert_msg("euler_maruyama or euler");
    assert_int_equal(xar_params_set(&p, "diff_sampler", "DiSA"), DISA_ENOTFOUND);
    assert_int_equal(xar_params_set(&p, "num_iter", "64"), DISA_ENOTFOUND);
    // upper below lower is refused by the check.
    assert_int_equal(xar_params_set(&p, "flow_upper_steps", "10"), 0);
    assert_int_equal(xar_params_check(&p), DISA_ERANGE);
    assert_msg("--flow_upper_steps must be in 40..1000 (>= --flow_lower_steps), got 10");
}

static void test_schedule(void **state) {
    (void)state;
    // Values of the official int((u - s) / u * (upper - lower) + lower), from Python.
    struct { int upper, lower, K; int want[9]; } cases[] = {
        {50, 15, 4, {50, 38, 26, 15}},          // the DiSA xAR setting
        {100, 1, 4, {100, 67, 34, 1}},
        {50, 15, 9, {50, 45, 41, 36, 32, 28, 23, 19, 15}},
        {40, 40, 4, {40, 40, 40, 40}},          // the constant baseline
        {7, 2, 9, {7, 6, 5, 5, 4, 3, 3, 2, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        xar_params p;
        xar_params_init(&p);
        p.upper = cases[i].upper;
        p.lower = cases[i].lower;
        for (int s = 0; s < cases[i].K; s++) assert_int_equal(xar_steps_at(&p, cases[i].K, s), cases[i].want[s]);
    }
    xar_params p;
    xar_params_init(&p);
    p.cfg = 2.7;
    const double want[4] = {1.0, 1.5666666666666669, 2.1333333333333337, 2.7};
    for (int s = 0; s < 4; s++) assert_true(xar_cfg_at(&p, 4, s) == want[s]);
}

static void test_time_index(void **state) {
    (void)state;
    // int(float32(t) * 1000) in float32 (torch); t = 0.251 gives 250 where the double
    // product would give 251.
    const double t[] = {1.0, 0.04, 0.5, 0.9804081632653061, 0.001, 0.0, 0.251, 0.253, 0.502, 0.506, 0.511};
    const int want[] = {1000, 40, 500, 980, 1, 0, 250, 252, 501, 505, 510};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) assert_int_equal(xar_time_index(t[i]), want[i]);
    double g[52];
    xar_time_grid(g, XAR_SAMPLER_EULER_MARUYAMA, 50);
    assert_true(g[0] == 1.0 && g[49] == 0.04 && g[50] == 0.0);
    xar_time_grid(g, XAR_SAMPLER_EULER, 50);
    assert_true(g[0] == 1.0 && g[25] == 0.5 && g[50] == 0.0);
    xar_time_grid(g, XAR_SAMPLER_EULER_MARUYAMA, 1);
    assert_true(g[0] == 1.0 && g[1] == 0.0);
}

static void test_raster_order(void **state) {
    (void)state;
    xar_config c;
    assert_int_equal(xar_config_preset(&c, "xar_base"), 0);
    // Group 0 is the top-left 8 x 8 quadrant, group 1 top-right, 2 bottom-left, 3 bottom-right.
    assert_int_equal(xar_raster_pos(&c, 0), 0);
    assert_int_equal(xar_raster_pos(&c, 9), 16 + 1);
    assert_int_equal(xar_raster_pos(&c, 64), 8);
    assert_int_equal(xar_raster_pos(&c, 128), 8 * 16);
    assert_int_equal(xar_raster_pos(&c, 255), 255);
    // A permutation.
    unsigned char seen[256] = {0};
    for (int p = 0; p < 256; p++) seen[xar_raster_pos(&c, p)]++;
    for (int p = 0; p < 256; p++) assert_int_equal(seen[p], 1);
}

// ----------------------------------------------------------------------------
// on a model file

static void run(const xar_model *m, const xar_params *p, int B, const uint32_t *index, const int *labels,
                float *tokens, sample_stats *st) {
    xar_sampler s;
    assert_int_equal(xar_sampler_init(&s, m, p, B), 0);
    xar_rng_philox rng;
    assert_int_equal(xar_rng_philox_init(&rng, 42, index, B), 0);
    assert_int_equal(xar_sampler_run(&s, &rng.base, labels, B, tokens, st), 0);
    xar_rng_philox_free(&rng);
    xar_sampler_free(&s);
}

static void check_flops(const xar_model *m, const xar_params *p, int B, const char *label) {
    uint32_t index[4] = {0, 1, 2, 3};
    int labels[4] = {3, -1, 9, 0};
    const xar_config *c = &m->cfg;
    float *tokens = malloc(sizeof(float) * (size_t)B * c->seq_len * c->token_dim);
    assert_non_null(tokens);
    sample_stats st = {0};
    run(m, p, B, index, labels, tokens, &st);
    xar_flops f;
    assert_int_equal(xar_flops_run(&f, c, p, B), 0);
    print_message("%s: measured %llu predicted %llu FLOPs\n", label, (unsigned long long)st.flops_transformer,
                  (unsigned long long)f.transformer);
    assert_true(f.transformer > 0);
    assert_int_equal(st.flops_transformer, f.transformer);
    assert_int_equal(st.head_row_steps, f.row_steps);
    assert_int_equal(st.tokens, f.tokens);
    assert_int_equal(st.ar_steps, f.ar_steps);
    assert_int_equal(f.tokens, (uint64_t)B * c->seq_len);
    for (size_t i = 0; i < (size_t)B * c->seq_len * c->token_dim; i++) assert_true(isfinite(tokens[i]));
    free(tokens);
}

static void test_flops_equal_count(void **state) {
    (void)state;
    xar_model m;
    assert_int_equal(xar_open(&m, g_model), 0);
    xar_params p;
    xar_params_init(&p);
    p.upper = 6;
    p.lower = 2;
    p.cfg = 2.5;
    check_flops(&m, &p, 3, "euler_maruyama 6->2 cfg 2.5 B 3");
    p.cfg = 1.0;
    check_flops(&m, &p, 2, "euler_maruyama 6->2 no cfg B 2");
    p.sampler = XAR_SAMPLER_EULER;
    p.upper = p.lower = 3;
    p.cfg = 4.0;
    check_flops(&m, &p, 1, "euler 3 cfg 4 B 1");
    // Guidance doubles the sequences from the second group on: more FLOPs, not 2x.
    xar_flops g, u;
    p.sampler = XAR_SAMPLER_EULER_MARUYAMA;
    p.upper = 50;
    p.lower = 15;
    assert_int_equal(xar_flops_run(&g, &m.cfg, &p, 1), 0);
    p.cfg = 1.0;
    assert_int_equal(xar_flops_run(&u, &m.cfg, &p, 1), 0);
    assert_true(g.transformer > u.transformer && g.transformer < 2 * u.transformer);
    xar_close(&m);
}

static void test_streams_per_image(void **state) {
    (void)state;
    xar_model m;
    assert_int_equal(xar_open(&m, g_model), 0);
    blas_set_threads(1);
    xar_params p;
    xar_params_init(&p);
    p.upper = 5;
    p.lower = 3;
    p.cfg = 2.0;
    const int n = m.cfg.seq_len * m.cfg.token_dim;
    float *a = malloc(sizeof(float) * 3 * n), *b = malloc(sizeof(float) * 3 * n), *one = malloc(sizeof(float) * n);
    assert_true(a && b && one);
    uint32_t index[3] = {7, 8, 9};
    int labels[3] = {1, 2, -1};
    sample_stats st = {0};
    run(&m, &p, 3, index, labels, a, &st);
    run(&m, &p, 3, index, labels, b, &st);
    assert_memory_equal(a, b, sizeof(float) * 3 * n);  // repeatable
    // Image 8 alone draws the same noise: its tokens agree with the batched run up to
    // GEMM blocking.
    run(&m, &p, 1, index + 1, labels + 1, one, &st);
    double mx = 0, mw = 0;
    for (int i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)one[i] - a[n + i]));
        mw = fmax(mw, fabs((double)a[n + i]));
    }
    print_message("image 8 alone vs in a batch of 3: normwise %.2e\n", mx / mw);
    assert_true(mx <= 1e-4 * mw);
    // Another image index draws other noise.
    uint32_t other = 10;
    run(&m, &p, 1, &other, labels + 1, one, &st);
    mx = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, fabs((double)one[i] - a[n + i]));
    assert_true(mx > 1e-2 * mw);
    free(a);
    free(b);
    free(one);
    xar_close(&m);
}

// --precision bf16 is refused for xAR at the parameter check, with one message naming the
// way out; "auto" resolves to fp32 for it; fp32 passes; the seam's prepare and sampler
// refuse bf16 too, so no path runs xAR in bf16.
static void test_bf16_refused(void **state) {
    (void)state;
    const family *f = family_for_preset("xar_base");
    assert_non_null(f);
    assert_int_equal(f->fp32_only, 1);
    family_params p;
    int precision = PRECISION_FP32;
    f->params_init(&p);
    assert_int_equal(family_sampling_set(f, &p, &precision, "precision", "bf16"), 0);
    assert_int_equal(precision, PRECISION_BF16);
    assert_int_equal(family_precision_check(f, &p, PRECISION_BF16, 0), DISA_EINVAL);
    assert_string_equal(disa_errmsg(),
                        "--precision bf16 runs MAR models; xAR runs in fp32 for now: give --precision fp32");
    assert_int_equal(family_precision_check(f, &p, PRECISION_FP32, 0), 0);
    char why[256];
    assert_int_equal(family_precision_resolve(f, PRECISION_AUTO, why, sizeof why), PRECISION_FP32);
    assert_string_equal(why, "fp32 (xar models run in fp32 for now)");
    assert_int_equal(family_precision_resolve(f, PRECISION_FP32, NULL, 0), PRECISION_FP32);
    assert_int_equal(family_precision_resolve(f, PRECISION_BF16, NULL, 0), PRECISION_BF16);  // then refused above
    // MAR's auto is not fp32-only: it follows the machine.
    const family *mar = family_for_preset("mar_base");
    assert_non_null(mar);
    assert_int_equal(family_precision_resolve(mar, PRECISION_AUTO, NULL, 0),
                     (int)precision_resolve(PRECISION_AUTO, NULL, 0));
    // The model file: prepare and the sampler refuse bf16, fp32 runs.
    void *m = NULL;
    assert_int_equal(f->open(&m, g_model), 0);
    assert_int_equal(f->prepare(m, PRECISION_BF16), DISA_EINVAL);
    assert_non_null(strstr(disa_errmsg(), "xAR runs in fp32 for now"));
    void *s = NULL;
    assert_int_equal(f->sampler_new(&s, m, &p, PRECISION_BF16, 1), DISA_EINVAL);
    assert_null(s);
    assert_int_equal(f->prepare(m, PRECISION_FP32), 0);
    assert_int_equal(f->sampler_new(&s, m, &p, PRECISION_FP32, 1), 0);
    assert_non_null(s);
    f->sampler_delete(s);
    f->close(m);
}

// The call-shape timing counts what the FLOP model says a call of that shape costs, and
// a schedule sums its calls: the first of each AR step, then n - 1 later ones.
static void test_bench_shapes(void **state) {
    (void)state;
    xar_model m;
    assert_int_equal(xar_open(&m, g_model), 0);
    const xar_config *c = &m.cfg;
    for (int s = 0; s < c->clusters; s += 4)
        for (int first = 0; first <= 1; first++) {
            double sec;
            uint64_t f;
            assert_int_equal(xar_bench_time_call(&m, 3, s, first, 1, &sec, &f), 0);
            assert_true(sec > 0);
            assert_int_equal(f, xar_flops_call(c, 3, first && s > 0 ? 2 * c->group : c->group, s));
        }
    xar_params p;
    xar_params_init(&p);
    p.upper = 7;
    p.lower = 2;
    p.cfg = 3.0;
    double tf[9], tr[9], want = 0;
    for (int s = 0; s < 9; s++) {
        tf[s] = 1.0 + s;
        tr[s] = 0.5;
        want += tf[s] + 0.5 * (xar_steps_at(&p, 9, s) - 1);
    }
    assert_true(fabs(xar_bench_schedule(c, &p, tf, tr) - want) < 1e-12);
    assert_int_equal(xar_seqs_at(&p, 9, 0, 4), 4);  // scale 1 at the first group: no unconditional half
    assert_int_equal(xar_seqs_at(&p, 9, 1, 4), 8);
    xar_close(&m);
}

static void test_bad_inputs(void **state) {
    (void)state;
    xar_model m;
    // A MAR file: refused with the format named.
    assert_true(xar_open(&m, g_mar) < 0);
    assert_msg("config 'format' must be \"disa-xar-1\", got \"disa-mar-1\"");
    // A file with a missing and a mis-shaped tensor: both named.
    assert_true(xar_open(&m, g_bad) < 0);
    assert_msg("pred.bias");
    assert_msg("class_emb.weight");
    // Labels out of range and a cache in the wrong state.
    assert_int_equal(xar_open(&m, g_model), 0);
    xar_params p;
    xar_params_init(&p);
    p.upper = p.lower = 2;
    xar_sampler s;
    assert_int_equal(xar_sampler_init(&s, &m, &p, 2), 0);
    xar_rng_philox rng;
    uint32_t index[2] = {0, 1};
    assert_int_equal(xar_rng_philox_init(&rng, 1, index, 2), 0);
    float *tokens = malloc(sizeof(float) * 2 * m.cfg.seq_len * m.cfg.token_dim);
    sample_stats st = {0};
    int labels[2] = {0, 10};
    assert_int_equal(xar_sampler_run(&s, &rng.base, labels, 2, tokens, &st), DISA_ERANGE);
    assert_msg("class label 10 out of range 0..9");
    assert_int_equal(xar_sampler_run(&s, &rng.base, labels, 3, tokens, &st), DISA_ERANGE);
    assert_msg("batch of 3 images, sampler prepared for 1..2");
    const int G = m.cfg.group, C = m.cfg.token_dim;
    float *x = calloc((size_t)2 * 2 * G * C, sizeof(float)), *v = calloc((size_t)2 * G * C, sizeof(float));
    int lab[2] = {0, 10}, tidx[2] = {0, 1000};
    s.kv.rows = 0;
    // AR step 1 with the clean group needs the cache to hold 0 rows: fine; step 2 not.
    assert_int_equal(xar_forward(&m, &s.kv, &s.scratch, v, x, 2 * G, lab, tidx, 2, 1, 2, NULL, NULL), DISA_EINVAL);
    assert_msg("needs the cache to hold 4 rows, it holds 0");
    assert_int_equal(xar_forward(&m, &s.kv, &s.scratch, v, x, 2 * G, lab, tidx, 0, 1, 2, NULL, NULL), DISA_EINVAL);
    lab[1] = 11;
    assert_int_equal(xar_forward(&m, &s.kv, &s.scratch, v, x, G, lab, tidx, 0, 1, 2, NULL, NULL), DISA_EINVAL);
    assert_msg("label 11 out of range 0..10 (10 = unconditional)");
    free(x);
    free(v);
    free(tokens);
    xar_rng_philox_free(&rng);
    xar_sampler_free(&s);
    xar_close(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),          cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_params),           cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_time_index),       cmocka_unit_test(test_raster_order),
        cmocka_unit_test(test_flops_equal_count), cmocka_unit_test(test_streams_per_image),
        cmocka_unit_test(test_bf16_refused),            cmocka_unit_test(test_bench_shapes),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
