// test_flowar.c: unit tests of FlowAR's config and loader (src/model/flowar.c,
// flowhead.c), its sampling settings, schedules and time grid, and the FLOP model
// (src/sample/flowar_sample.c, flowar_flops.c), which must equal what a real
// flowar_sampler_run on a small generated model counts.
//
// Expected numbers come from the official code: parameter counts of the presets from
// tools/flowarref (models/flowar.py layout: 171.7M, 586.9M, 1913.3M), the step schedules
// from FlowAR_DiSA's sample_tokens expression, time-grid values from torch 1.13's
// linspace. The parity goldens (tests/golden/flowar_*) check the numerics.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disa/blas.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/flowar.h"
#include "disa/flowar_sample.h"
#include "tmpdir.h"

static void assert_msg_has(const char *needle) {
    if (!strstr(disa_errmsg(), needle)) fail_msg("error message '%s' lacks '%s'", disa_errmsg(), needle);
}

// A tiny model: encoder and decoder of 32 wide with 2 heads, scales 1, 2, 4, 8, 16.
#define TINY(cross, w, d)                                                                                          \
    "{\"format\":\"disa-flowar-1\",\"img_size\":256,\"vae_stride\":16,\"patch_size\":1,\"vae_embed_dim\":16,"       \
    "\"encoder_embed_dim\":32,\"encoder_depth\":2,\"encoder_num_heads\":2,\"decoder_embed_dim\":32,"                 \
    "\"decoder_depth\":1,\"decoder_num_heads\":2,\"mlp_ratio\":4.0,\"buffer_size\":0,\"class_num\":10,"             \
    "\"diffloss_d\":" #d ",\"diffloss_w\":" #w ",\"scale\":[1,2,4,8,16],\"cross\":" #cross ",\"tokenizer\":\"kl16\"}"

// ----------------------------------------------------------------------------
// config

// Parameters of a config as the official module counts them (buffers excluded).
static double params_of(const flowar_config *c) {
    flowar_model m;
    memset(&m, 0, sizeof m);
    m.cfg = *c;
    st_bind_entry *tab;
    char *names;
    int n;
    assert_int_equal(flowar_tensor_table(&m, &tab, &names, &n), 0);
    double total = 0;
    for (int i = 0; i < n; i++) {
        if (strstr(tab[i].name, "rope.freqs")) continue;
        double k = 1;
        for (int d = 0; d < tab[i].ndim; d++) k *= (double)tab[i].shape[d];
        total += k;
    }
    free(tab);
    free(names);
    flowar_release(&m);
    return total;
}

static void test_presets(void **state) {
    (void)state;
    flowar_config c;
    assert_int_equal(flowar_config_preset(&c, "flowar_small"), 0);
    assert_int_equal(c.seq_len, 341);
    assert_int_equal(c.n_scales, 5);
    assert_int_equal(c.start[4], 85);
    assert_int_equal(c.enc_hidden, 2048);   // int(768 * 4 * 2 / 3.)
    assert_int_equal(c.head_hidden, 2730);  // int(1024 * 4 * 2 / 3.)
    assert_int_equal(c.head_heads, 16);
    assert_false(c.cross);
    assert_true(params_of(&c) == 171718072.0);
    assert_int_equal(flowar_config_preset(&c, "flowar_large"), 0);
    assert_true(c.cross);
    assert_true(params_of(&c) == 586862912.0);
    assert_int_equal(flowar_config_preset(&c, "flowar_huge"), 0);
    assert_int_equal(c.enc_hidden, 4096);
    assert_int_equal(c.head_heads, 24);
    assert_true(params_of(&c) == 1913316880.0);
    // The JSON round trip keeps every field.
    char json[1024];
    flowar_config d;
    assert_int_equal(flowar_config_parse(&d, flowar_config_to_json(&c, json, sizeof json), "round trip"), 0);
    assert_memory_equal(&c, &d, sizeof c);
    assert_int_equal(flowar_config_preset(&c, "mar_base"), DISA_EINVAL);
    assert_msg_has("flowar_small, flowar_large, flowar_huge");
}

static void bad_config(const char *from, const char *to, int code, const char *needle) {
    char json[1024];
    const char *base = TINY(false, 64, 2);
    const char *at = strstr(base, from);
    assert_non_null(at);
    snprintf(json, sizeof json, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    flowar_config c;
    assert_int_equal(flowar_config_parse(&c, json, "x.safetensors"), code);
    assert_msg_has("x.safetensors");
    assert_msg_has(needle);
}

static void test_config_errors(void **state) {
    (void)state;
    flowar_config c;
    assert_int_equal(flowar_config_parse(&c, TINY(false, 64, 2), "tiny"), 0);
    bad_config("\"disa-flowar-1\"", "\"disa-mar-1\"", DISA_EINVAL, "\"disa-mar-1\", not \"disa-flowar-1\": not a FlowAR");
    bad_config("\"buffer_size\":0", "\"buffer_size\":64", DISA_ERANGE, "'buffer_size' must be 0");
    bad_config("\"decoder_embed_dim\":32", "\"decoder_embed_dim\":48", DISA_ERANGE, "must equal encoder_embed_dim");
    bad_config("\"encoder_num_heads\":2", "\"encoder_num_heads\":3", DISA_ERANGE, "multiples of 4");
    bad_config("\"diffloss_w\":64", "\"diffloss_w\":32", DISA_ERANGE, "'diffloss_w' 32 must be >= 64");
    bad_config("[1,2,4,8,16]", "[1,2,4,8]", DISA_ERANGE, "the last scale 8 must be");
    bad_config("[1,2,4,8,16]", "[16]", DISA_EFORMAT, "'scale' must be a list of 2..16");
    bad_config("[1,2,4,8,16]", "[1,2.5,16]", DISA_ERANGE, "'scale'[1] must be an integer");
    bad_config("\"vae_embed_dim\":16", "\"vae_embed_dim\":8", DISA_ERANGE, "sampler draws 16");
    bad_config("\"cross\":false", "\"cross\":1", DISA_EFORMAT, "'cross' must be true or false");
    bad_config("\"class_num\":10", "\"class_num\":1001", DISA_ERANGE, "'class_num' must be in 1..1000");
    bad_config("\"tokenizer\":\"kl16\"", "\"tokenizer\":\"patch\"", DISA_EFORMAT, "'tokenizer' must be \"kl16\"");
    bad_config("\"mlp_ratio\":4.0", "\"mlp_ratio\":4.0,\"num_iter\":64", DISA_EINVAL, "unknown key 'num_iter'");
    bad_config("\"mlp_ratio\":4.0", "\"mlp_ratio\":4.0,\"norm_eps\":0", DISA_ERANGE, "'norm_eps' must be a number in (0, 1)");
    bad_config("\"mlp_ratio\":4.0", "\"mlp_ratio\":\"4\"", DISA_ERANGE, "'mlp_ratio' must be a number");
    assert_int_equal(flowar_config_parse(&c, NULL, "m.safetensors"), DISA_EFORMAT);
    assert_msg_has("tools/convert_flowar.py");
}

// ----------------------------------------------------------------------------
// settings and schedules

static void test_params(void **state) {
    (void)state;
    flowar_params p;
    flowar_params_init(&p);
    assert_int_equal(p.upper, 50);
    assert_int_equal(p.lower, 15);
    assert_true(p.guidance == 0.9 && p.cfg == 1.0);
    assert_int_equal(flowar_params_check(&p), 0);
    assert_int_equal(flowar_params_set(&p, "flow_upper_steps", "25"), 0);
    assert_int_equal(flowar_params_set(&p, "cfg", "4.2"), 0);
    char buf[160];
    assert_string_equal(flowar_params_str(&p, buf, sizeof buf),
                        "flow_upper_steps=25 flow_lower_steps=15 cfg=4.2 guidance=0.9");
    assert_int_equal(flowar_params_set(&p, "num_iter", "64"), DISA_ENOTFOUND);  // MAR's flag
    assert_int_equal(flowar_params_set(&p, "flow_lower_steps", "1"), DISA_EINVAL);
    assert_msg_has("--flow_lower_steps must be an integer in 2..1000, got '1'");
    assert_int_equal(flowar_params_set(&p, "guidance", "1.5"), DISA_EINVAL);
    assert_msg_has("--guidance must be a number in [0, 1], got '1.5'");
    assert_int_equal(flowar_params_set(&p, "cfg", "x"), DISA_EINVAL);
    assert_int_equal(flowar_params_set(&p, "precision", "fp32"), DISA_ENOTFOUND);  // the family's shared key
    p.upper = 10;
    assert_int_equal(flowar_params_check(&p), DISA_ERANGE);
    assert_msg_has("--flow_upper_steps must be in 15..1000 (>= --flow_lower_steps), got 10");
    flowar_params_init(&p);
    p.lower = 1;
    assert_int_equal(flowar_params_check(&p), DISA_ERANGE);
    assert_msg_has("one step leaves the noise");
    flowar_params_init(&p);
    p.cfg = 0.5;
    assert_int_equal(flowar_params_check(&p), DISA_ERANGE);
    assert_msg_has("--cfg must be in [1, 100]");
}

static void test_schedules(void **state) {
    (void)state;
    flowar_params p;
    flowar_params_init(&p);
    // DiSA's FlowAR-S/L setting 25 -> 15 and FlowAR-H's 50 -> 15 over 5 scales.
    const int s_l[5] = {25, 22, 20, 17, 15}, h[5] = {50, 41, 32, 23, 15};
    p.upper = 25;
    for (int s = 0; s < 5; s++) assert_int_equal(flowar_steps_at(&p, s, 5), s_l[s]);
    p.upper = 50;
    for (int s = 0; s < 5; s++) assert_int_equal(flowar_steps_at(&p, s, 5), h[s]);
    p.upper = p.lower = 25;
    for (int s = 0; s < 5; s++) assert_int_equal(flowar_steps_at(&p, s, 5), 25);
    // CFG ramps from 1 at the first scale to cfg at the last.
    p.cfg = 4.2;
    const double cfg[5] = {1.0, 1.8, 2.6, 3.4000000000000004, 4.2};
    for (int s = 0; s < 5; s++) assert_true(fabs(flowar_cfg_at(&p, s, 5) - cfg[s]) <= 1e-15);
    assert_true(flowar_cfg_at(&p, 0, 5) == 1.0);

    // Time grids: odd counts lose a step, 50 is uniform.
    double t[1002];
    assert_int_equal(flowar_time_grid(t, 25), 25);
    assert_true(t[0] == 1.0 && t[11] == 0.3 && t[12] == 0.25 && t[24] == 0.0);
    assert_int_equal(flowar_time_grid(t, 15), 15);
    assert_int_equal(flowar_time_grid(t, 2), 3);
    assert_true(t[0] == 1.0 && t[1] == 0.25 && t[2] == 0.0);
    assert_int_equal(flowar_time_grid(t, 50), 51);
    // torch.linspace values that a plain start + step * i would miss by an ulp.
    assert_true(t[7] == 0x1.b851eb851eb86p-1);   // 0.8600000000000001
    assert_true(t[10] == 0x1.9999999999999p-1);  // 0.7999999999999999
    flowar_linspace(t, 0.25, 0.0, 13);
    assert_true(t[6] == 0x1.0000000000001p-3);   // 0.12500000000000003
    flowar_linspace(t, 1.0, 0.3, 20);
    assert_true(t[16] == 0x1.a46102b1da461p-2);  // 0.4105263157894737
    flowar_linspace(t, 1.0, 0.3, 12);
    assert_true(t[7] == 0x1.1bed61bed61bfp-1);   // 0.5545454545454546
    // Guidance from t <= 0.9: the first two steps of 25 (t = 1, 0.936) run unguided.
    int n = flowar_time_grid(t, 25);
    assert_int_equal(flowar_guided_steps(t, n, 4.2, 0.9), 22);
    assert_int_equal(flowar_guided_steps(t, n, 1.0, 0.9), 0);
    assert_int_equal(flowar_guided_steps(t, n, 2.0, 1.0), 24);
    // The head's time index truncates the float32 product: 0.7 -> 700, not 699.
    assert_int_equal(flowhead_time_index(0.7), 700);
    assert_int_equal(flowhead_time_index(1.0), 1000);
    assert_int_equal(flowhead_time_index(0.0), 0);
}

// ----------------------------------------------------------------------------
// models on disk, runs, FLOPs

typedef struct trace_log {
    int n, n_steps[16], nfe[16], n_guided[16];
} trace_log;

static void on_trace(void *ctx, int s, int n_steps, int nfe, int n_guided, double cfg, const float *tok) {
    trace_log *t = ctx;
    if (t->n >= 16) return;
    t->n_steps[t->n] = n_steps;
    t->nfe[t->n] = nfe;
    t->n_guided[t->n] = n_guided;
    t->n++;
}

// Write a generated model, open it, run the sampler and compare every counter with the
// FLOP model; returns the tokens' checksum so callers can compare runs.
static double run_case(const char *json, const flowar_params *p, int B, int check_flops) {
    flowar_config c;
    assert_int_equal(flowar_config_parse(&c, json, "test"), 0);
    char path[160];
    snprintf(path, sizeof path, "%s/m.safetensors", g_dir);
    size_t params = 0;
    assert_int_equal(flowar_write_generated(&c, 7, path, &params), 0);
    assert_true(params > 0);
    flowar_model m;
    if (flowar_open(&m, path) != 0) fail_msg("flowar_open: %s", disa_errmsg());
    flowar_sampler s;
    assert_int_equal(flowar_sampler_init(&s, &m, p, B), 0);
    trace_log tl = {0};
    s.trace = on_trace;
    s.trace_ctx = &tl;
    ar_rng_philox rng;
    uint32_t index[4] = {0, 1, 2, 3};
    int labels[4] = {3, -1, 9, 0};
    assert_int_equal(ar_rng_philox_init(&rng, 11, index, B), 0);
    float *tokens = malloc(sizeof(float) * (size_t)B * 256 * 16);
    assert_non_null(tokens);
    sample_stats st = {0};
    if (flowar_sampler_run(&s, &rng.base, labels, B, tokens, &st) != 0) fail_msg("run: %s", disa_errmsg());
    flowar_flops f;
    flowar_flops_scale per[16];
    assert_int_equal(flowar_flops_run(&f, per, &m.cfg, p, B), 0);
    if (check_flops) {
        print_message("transformer measured %llu predicted %llu; head measured %llu predicted %llu\n",
                      (unsigned long long)st.flops_transformer, (unsigned long long)f.transformer,
                      (unsigned long long)st.flops_head, (unsigned long long)f.head);
        assert_true(st.flops_transformer > 0 && st.flops_head > 0);
        assert_int_equal(st.flops_transformer, f.transformer);
        assert_int_equal(st.flops_head, f.head);
        assert_int_equal(st.head_row_steps, f.head_row_steps);
        assert_int_equal(st.tokens, f.tokens);
        assert_int_equal(st.ar_steps, f.scales);
        assert_int_equal(tl.n, m.cfg.n_scales);
        for (int i = 0; i < tl.n; i++) {
            assert_int_equal(tl.n_steps[i], per[i].n_steps);
            assert_int_equal(tl.nfe[i], per[i].nfe);
            assert_int_equal(tl.n_guided[i], per[i].n_guided);
        }
    }
    double sum = 0;
    int finite = 1;
    for (size_t k = 0; k < (size_t)B * 256 * 16; k++) {
        sum += fabs(tokens[k]);
        finite &= isfinite(tokens[k]);
    }
    assert_true(finite && sum > 0);
    free(tokens);
    ar_rng_philox_free(&rng);
    flowar_sampler_free(&s);
    flowar_close(&m);
    return sum;
}

static void test_flops_equal(void **state) {
    (void)state;
    flowar_params p;
    flowar_params_init(&p);
    p.upper = 7;
    p.lower = 3;
    p.cfg = 3.0;
    run_case(TINY(false, 64, 2), &p, 3, 1);
    run_case(TINY(true, 128, 2), &p, 2, 1);
    p.cfg = 1.0;
    run_case(TINY(true, 128, 1), &p, 2, 1);
    // guidance 0: no step is guided, the unconditional condition is never computed.
    p.cfg = 2.0;
    p.guidance = 0.0;
    run_case(TINY(false, 64, 1), &p, 1, 1);
}

// The Philox streams are keyed by image index: the same seed and labels give the same
// tokens run after run; another seed gives others.
static void test_repeatable(void **state) {
    (void)state;
    flowar_params p;
    flowar_params_init(&p);
    p.upper = 4;
    p.lower = 2;
    p.cfg = 2.0;
    double a = run_case(TINY(false, 64, 1), &p, 2, 0), b = run_case(TINY(false, 64, 1), &p, 2, 0);
    assert_true(a == b);
}

static void test_bad_inputs(void **state) {
    (void)state;
    flowar_model m;
    // A MAR file is refused, naming what it is.
    assert_int_equal(flowar_open(&m, "models/tiny-test.safetensors"), DISA_EINVAL);
    assert_msg_has("models/tiny-test.safetensors: config 'format' is \"disa-mar-1\"");
    assert_int_not_equal(flowar_open(&m, "no/such/file.safetensors"), 0);
    assert_msg_has("no/such/file.safetensors");

    flowar_config c;
    assert_int_equal(flowar_config_parse(&c, TINY(false, 64, 1), "tiny"), 0);
    assert_int_equal(flowar_generate(&m, &c, 3), 0);
    flowar_params p;
    flowar_params_init(&p);
    p.upper = p.lower = 2;
    flowar_sampler s;
    assert_int_equal(flowar_sampler_init(&s, &m, &p, 1), 0);
    ar_rng_philox rng;
    uint32_t index[2] = {0, 1};
    assert_int_equal(ar_rng_philox_init(&rng, 1, index, 2), 0);
    float tokens[2 * 256 * 16];
    sample_stats st = {0};
    int labels[2] = {10, 0};
    assert_int_equal(flowar_sampler_run(&s, &rng.base, labels, 1, tokens, &st), DISA_ERANGE);
    assert_msg_has("class label 10 out of range 0..9");
    assert_int_equal(flowar_sampler_run(&s, &rng.base, labels, 2, tokens, &st), DISA_ERANGE);
    assert_msg_has("batch of 2 images, sampler prepared for 1..1");

    // Activations that overflow stop the run naming the scale and the tensor: an Inf
    // reaching the transformer's output z, then a NaN from the head's last layer (one
    // channel's bias; the next Euler step's input projection spreads it to all).
    const size_t npos = (size_t)m.cfg.seq_len * m.cfg.dec_dim;
    float *pos = malloc(sizeof(float) * npos), flin_b[16];
    assert_non_null(pos);
    const float *saved_pos = m.diff_pos, *saved_flin_b = m.head.flin_b;
    memcpy(pos, saved_pos, sizeof(float) * npos);
    pos[5] = INFINITY;
    m.diff_pos = pos;
    assert_int_equal(flowar_sampler_run(&s, &rng.base, labels + 1, 1, tokens, &st), DISA_ERANGE);
    assert_msg_has("scale 0 (1x1): the transformer's output z holds Inf (row 0, value 5)");
    m.diff_pos = saved_pos;
    memcpy(flin_b, saved_flin_b, sizeof flin_b);
    flin_b[2] = NAN;
    m.head.flin_b = flin_b;
    assert_int_equal(flowar_sampler_run(&s, &rng.base, labels + 1, 1, tokens, &st), DISA_ERANGE);
    assert_msg_has("scale 0 (1x1): the flow head's sample holds NaN (row 0, value 0)");
    m.head.flin_b = saved_flin_b;
    assert_int_equal(flowar_sampler_run(&s, &rng.base, labels + 1, 1, tokens, &st), 0);
    free(pos);
    flowar_sampler_free(&s);
    p.lower = 1;
    assert_int_equal(flowar_sampler_init(&s, &m, &p, 1), DISA_ERANGE);
    assert_msg_has("--flow_lower_steps");

    // RoPE frequencies are computed: a block whose buffer differs is refused by name.
    float odd[4];
    memcpy(odd, m.enc[0].freqs, sizeof odd);
    odd[1] *= 2;
    m.enc[1].freqs = odd;
    assert_int_equal(flowar_prepare(&m, "f.safetensors"), DISA_EFORMAT);
    assert_msg_has("f.safetensors: tensor 'encoder_blocks.1.attn.rope.freqs' differs from block 0's");
    ar_rng_philox_free(&rng);
    flowar_close(&m);
}

// A file whose config describes fewer blocks than it holds is refused, naming the
// tensors no binding covers.
static void test_unexpected_tensors(void **state) {
    (void)state;
    flowar_config c;
    assert_int_equal(flowar_config_parse(&c, TINY(false, 64, 2), "tiny"), 0);
    char big[160], small[160], json[1024];
    snprintf(big, sizeof big, "%s/big.safetensors", g_dir);
    snprintf(small, sizeof small, "%s/small.safetensors", g_dir);
    assert_int_equal(flowar_write_generated(&c, 5, big, NULL), 0);
    st_file f;
    assert_int_equal(st_open(&f, big), 0);
    c.diffloss_d = 1;  // the same tensors under a config with one head block fewer
    st_writer *w = st_writer_new();
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        assert_int_equal(st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data), 0);
    }
    assert_int_equal(st_writer_meta(w, "config", flowar_config_to_json(&c, json, sizeof json)), 0);
    assert_int_equal(st_writer_write(w, small), 0);
    st_writer_delete(w);
    st_close(&f);
    flowar_model m;
    assert_int_equal(flowar_open(&m, small), DISA_EFORMAT);
    assert_msg_has("flownet.res_blocks.1.");
    assert_msg_has("diffloss_d");
}

// Whole contents of a file (freed by the caller); *n its size.
static char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    rewind(fp);
    char *b = malloc(*n ? *n : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *n, fp), *n);
    fclose(fp);
    return b;
}

// The family table: its presets, a config JSON and random weights through the table
// (the file flowar_write_generated writes), found by the file's format, MAR's keys
// refused, a run through the table counting what its FLOP model predicts, the latent the
// KL-16 decoder takes.
static void test_family(void **state) {
    (void)state;
    flowar_config c;
    assert_int_equal(flowar_config_parse(&c, TINY(true, 128, 1), "tiny"), 0);
    char path[160], path2[160];
    snprintf(path, sizeof path, "%s/fam.safetensors", g_dir);
    snprintf(path2, sizeof path2, "%s/fam2.safetensors", g_dir);
    assert_int_equal(flowar_write_generated(&c, 9, path, NULL), 0);
    const family *f = family_for_file(path);
    assert_string_equal(f->name, "flowar");
    assert_true(family_for_config(TINY(true, 128, 1)) == f);
    assert_true(family_for_preset("flowar_huge") == f);
    assert_null(family_for_preset("flowar_tiny"));
    assert_string_equal(family_for_preset("mar_base")->name, "mar");
    assert_string_equal(f->presets[0], "flowar_small");
    assert_string_equal(f->presets[2], "flowar_huge");
    assert_null(f->presets[3]);
    void *cm;
    assert_int_equal(f->config(&cm, TINY(true, 128, 1), "tiny"), 0);
    size_t values = 0, n1, n2;
    assert_int_equal(f->write_random(cm, path2, 9, &values), 0);
    assert_true(values > 0);
    f->close(cm);
    char *b1 = slurp(path, &n1), *b2 = slurp(path2, &n2);
    assert_true(n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    assert_int_equal(f->config(&cm, "{\"format\":\"disa-mar-1\"}", "--config"), DISA_EINVAL);
    void *m;
    assert_int_equal(f->open(&m, path), 0);
    family_info fi;
    f->info(m, &fi);
    assert_int_equal(fi.class_num, 10);
    assert_int_equal(fi.latent, LATENT_KL16);
    assert_true(fi.C == 16 && fi.H == 16 && fi.W == 16 && fi.token_dims[0] == 256 && fi.token_dims[1] == 16);
    family_params p;
    int precision = PRECISION_FP32;
    f->params_init(&p);
    assert_int_equal(family_sampling_set(f, &p, &precision, "num_iter", "64"), DISA_EINVAL);
    assert_msg_has("'--num_iter' does not apply to flowar models");
    assert_int_equal(family_sampling_set(f, &p, &precision, "flow_upper_steps", "6"), 0);
    assert_int_equal(family_sampling_set(f, &p, &precision, "flow_lower_steps", "3"), 0);
    assert_int_equal(family_sampling_set(f, &p, &precision, "cfg", "2.5"), 0);
    assert_int_equal(f->params_check(&p), 0);
    char buf[256];
    assert_string_equal(family_sampling_str(f, &p, precision, buf, sizeof buf),
                        "flow_upper_steps=6 flow_lower_steps=3 cfg=2.5 guidance=0.9");
    // bf16 is refused at the parameter check, in prepare and in the sampler; auto is fp32.
    assert_int_equal(f->fp32_only, 1);
    assert_int_equal(family_precision_check(f, &p, PRECISION_BF16, 0), DISA_EINVAL);
    assert_string_equal(disa_errmsg(),
                        "--precision bf16 runs MAR models; FlowAR runs in fp32 for now: give --precision fp32");
    assert_int_equal(family_precision_check(f, &p, PRECISION_FP32, 0), 0);
    assert_int_equal(family_precision_resolve(f, PRECISION_AUTO, NULL, 0), PRECISION_FP32);
    assert_int_equal(f->prepare(m, PRECISION_BF16), DISA_EINVAL);
    void *s = NULL;
    assert_int_equal(f->sampler_new(&s, m, &p, PRECISION_BF16, 2), DISA_EINVAL);
    assert_null(s);
    assert_int_equal(f->prepare(m, precision), 0);
    assert_int_equal(f->sampler_new(&s, m, &p, precision, 2), 0);
    int labels[2] = {1, -1};
    uint32_t index[2] = {4, 5};
    float tokens[2 * 256 * 16], latent[2 * 16 * 16 * 16];
    sample_stats st = {0};
    assert_int_equal(f->sampler_run(s, tokens, labels, 7, index, 2, &st, NULL, NULL), 0);
    sample_flops sf;
    assert_int_equal(f->flops(&sf, m, &p, 2), 0);
    assert_true(sf.transformer * 2 == (double)st.flops_transformer && sf.head * 2 == (double)st.flops_head);
    assert_int_equal(sf.ar_steps, 5);
    f->to_latent(m, latent, tokens, 2);
    // unpatchify: image b's token (h, w), channel k -> latent [b, k, h, w]
    for (int k = 0; k < 16; k++)
        assert_true(latent[((size_t)(1 * 16 + k) * 16 + 3) * 16 + 5] == tokens[((size_t)1 * 256 + 3 * 16 + 5) * 16 + k]);
    f->sampler_delete(s);
    f->close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_flops_equal),
        cmocka_unit_test(test_repeatable),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_unexpected_tensors),
        cmocka_unit_test(test_family),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
