// parity_vae.c: golden adapters for the KL-16 decoder and the float -> uint8 image
// conversion (tools/golden/vae.py; tests/golden/README.md, section VAE).
//
// vae_decode binds the case's param.<state_dict name> tensors (stored or param_gen)
// through vae_tensor_table, exactly as vae_open binds a converted checkpoint, or, when
// the config names a "model" file, opens it with vae_open (tools/convert_vae.py's
// self-test). It compares the float image under the case tolerance and then the pixels:
// image_to_u8 of the C image against image_to_u8 of the golden image, which must agree
// on at least `u8_min_equal` of them (a float error can legitimately move a value across
// a rounding edge, so exact equality of every pixel is not required).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "disa/arena.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/image.h"
#include "disa/vae.h"
#include "parity.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Point every table entry at param.<name>; all problems are reported before failing.
static int bind_params(pcase *c, vae_model *m) {
    st_bind_entry *tab;
    char *names;
    int n, bad = 0;
    if (vae_tensor_table(m, &tab, &names, &n) != 0) return pc_fail(c, "%s", disa_errmsg());
    for (int i = 0; i < n; i++) {
        char full[256];
        snprintf(full, sizeof full, "param.%s", tab[i].name);
        int nd;
        int64_t sh[8];
        const float *p = pc_f32(c, full, &nd, sh);
        int ok = p && nd == tab[i].ndim;
        for (int k = 0; ok && k < nd; k++) ok = sh[k] == tab[i].shape[k];
        if (!ok) {
            pc_fail(c, "%s: %s", full, p ? "shape differs from the config's" : "missing");
            bad++;
        }
        *tab[i].dst = p;
    }
    free(tab);
    free(names);
    return bad;
}

static int golden_has_u8(pcase *c) { return pc_i64(c, "out.u8", NULL, NULL) != NULL; }

static int op_vae_decode(pcase *c) {
    static const int64_t any4[4] = {-1, -1, -1, -1};
    int nd;
    int64_t sh[8];
    const float *tok = pc_need(c, "in.tokens", 4, any4);
    if (!tok) return 1;
    pc_f32(c, "in.tokens", &nd, sh);
    int B = (int)sh[0], E = (int)sh[1], h = (int)sh[2], w = (int)sh[3];

    vae_model m;
    memset(&m, 0, sizeof m);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(pc_config(c), "model");
    if (cJSON_IsString(model)) {
        if (vae_open(&m, model->valuestring) != 0) return pc_fail(c, "%s", disa_errmsg());
    } else {
        const cJSON *vc = cJSON_GetObjectItemCaseSensitive(pc_config(c), "vae");
        char *json = vc ? cJSON_PrintUnformatted(vc) : NULL;
        int rc = vae_config_parse(&m.cfg, json, "golden config 'vae'");
        free(json);
        if (rc) return pc_fail(c, "%s", disa_errmsg());
        if (bind_params(c, &m)) {
            vae_close(&m);
            return 1;
        }
    }
    const vae_config *cfg = &m.cfg;
    if (E != cfg->embed_dim) {
        vae_close(&m);
        return pc_fail(c, "in.tokens has %d channels, the config's embed_dim is %d", E, cfg->embed_dim);
    }
    int bf16 = pc_bf16(c);
    if (bf16 && vae_prepare(&m, PRECISION_BF16, h, w) != 0) {
        vae_close(&m);
        return pc_fail(c, "%s", disa_errmsg());
    }
    int H = h * vae_upscale(cfg), W = w * vae_upscale(cfg), C = cfg->out_ch;
    size_t n = (size_t)B * C * H * W;
    float *img = pc_alloc(c, n);
    arena a = {0};
    int fails = 0;
    if (!img || arena_init(&a, vae_decode_scratch_bytes(cfg, B, h, w), "vae scratch") != 0) {
        vae_close(&m);
        return pc_fail(c, "out of memory");
    }
    blas_flops_reset();
    double t0 = now_s();
    if (vae_decode(&m, &a, img, tok, B, h, w) != 0) {
        fails += pc_fail(c, "vae_decode: %s", disa_errmsg());
        goto out;
    }
    double dt = now_s() - t0;
    printf("  decode %d x %dx%dx%d -> %dx%dx%d: %.3f s (%.3f s/image), %.1f GFLOP/image, %.1f GFLOPS, "
           "arena peak %.1f MB, OpenBLAS %s\n",
           B, E, h, w, C, H, W, dt, dt / B, vae_decode_flops(cfg, h, w) * 1e-9,
           (double)blas_flops() / dt * 1e-9, a.peak / 1048576.0, blas_corename());
    fails += pc_check(c, "img", img, n);

    // Pixels: C conversion of the C image against the same conversion of the golden image.
    const float *want = pc_f32(c, "out.img", NULL, NULL);
    uint8_t *u_got = malloc(n), *u_want = malloc(n);
    if (!want || !u_got || !u_want) {
        free(u_got);
        free(u_want);
        fails += pc_fail(c, "out of memory");
        goto out;
    }
    image_to_u8(u_got, img, B, C, H, W);
    image_to_u8(u_want, want, B, C, H, W);
    size_t eq = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)u_got[i] - (int)u_want[i]);
        eq += d == 0;
        if ((size_t)d > worst) worst = (size_t)d;
    }
    double frac = (double)eq / (double)n, need = pc_num(c, "u8_min_equal", 0.999, 1);
    int ok = frac >= need || bf16;  // bf16 pixels are held to the image's tolerance only
    printf("  %-32s n=%-8zu equal=%.5f%% (need >= %.3f%%) max |diff|=%zu  %s\n", "uint8 pixels", n, 100 * frac,
           100 * need, worst, ok ? "OK" : "NOT OK");
    if (!ok) fails += pc_fail(c, "only %zu of %zu uint8 pixels agree", eq, n);
    // Where the golden carries numpy's own pixels, the C conversion of the golden image
    // must reproduce them exactly.
    int64_t *wide = golden_has_u8(c) ? malloc(n * sizeof(int64_t)) : NULL;
    if (wide) {
        for (size_t i = 0; i < n; i++) wide[i] = u_want[i];
        fails += pc_check_i64(c, "u8", wide, n);
        free(wide);
    }
    free(u_got);
    free(u_want);
out:
    arena_free(&a);
    vae_close(&m);
    return fails;
}

// engine_mar.py's conversion, bit for bit against numpy's result (out.u8, I64, NHWC).
static int op_image_to_u8(pcase *c) {
    static const int64_t any4[4] = {-1, -1, -1, -1};
    int nd;
    int64_t sh[8];
    const float *x = pc_need(c, "in.x", 4, any4);
    if (!x) return 1;
    pc_f32(c, "in.x", &nd, sh);
    int B = (int)sh[0], C = (int)sh[1], H = (int)sh[2], W = (int)sh[3];
    size_t n = (size_t)B * C * H * W;
    uint8_t *u = malloc(n);
    int64_t *wide = malloc(n * sizeof(int64_t));
    if (!u || !wide) {
        free(u);
        free(wide);
        return pc_fail(c, "out of memory");
    }
    image_to_u8(u, x, B, C, H, W);
    for (size_t i = 0; i < n; i++) wide[i] = u[i];
    int r = pc_check_i64(c, "u8", wide, n);
    free(u);
    free(wide);
    return r;
}

const parity_op parity_ops_vae[] = {
    {"vae_decode", op_vae_decode},
    {"image_to_u8", op_image_to_u8},
    {NULL, NULL},
};
