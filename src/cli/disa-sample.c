// disa-sample: sample MAR token latents for one class on this process (no MPI).
//
//   disa-sample --model FILE --class N [--seed S] [--num_images B] [--out DIR] [--vae FILE] [--threads T]
//               [--num_iter K --cfg X --cfg_schedule linear|constant --temperature T
//                --diff_sampler default|DiSA|DDIM --diff_upper_steps U --diff_lower_steps L
//                --diff_annealing_strategy linear|cosine|two-stage|constant --precision fp32|bf16]
//
// Image i (0..B-1) draws from the Philox streams of (seed, i). Writes DIR/tokens.npy
// [B, seq, token_dim] and the images DIR/00000.png ... (pixel-space models directly,
// KL-16 models through --vae), and prints per-phase timing, FLOPs and NFE per token.
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/image.h"
#include "disa/mar.h"
#include "disa/npy.h"
#include "disa/sampler.h"
#include "disa/vae.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int usage(void) {
    fprintf(stderr,
            "usage: disa-sample --model FILE --class N [--seed S] [--num_images B] [--out DIR] [--vae FILE] [--threads T]\n"
            "       [--num_iter K] [--cfg X] [--cfg_schedule linear|constant] [--temperature T]\n"
            "       [--diff_sampler default|DiSA|DDIM] [--diff_upper_steps U] [--diff_lower_steps L]\n"
            "       [--diff_annealing_strategy linear|cosine|two-stage|constant] [--precision fp32|bf16]\n");
    return 2;
}

static int int_flag(const char *flag, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "disa-sample: --%s must be an integer in %ld..%ld, got '%s'\n", flag, lo, hi, v);
        return 2;
    }
    *out = x;
    return 0;
}

// Decode the tokens (patch unpatchify or KL-16) and write DIR/%05d.png for each image.
static int write_images(const char *dir, const mar_model *m, const char *vae_path, const float *tokens, int B,
                        int cls, uint64_t seed, const sample_params *p) {
    const mar_config *c = &m->cfg;
    if (c->tokenizer == TOKENIZER_KL16 && !vae_path) {
        fprintf(stderr, "disa-sample: KL-16 model: give --vae FILE to write PNGs (tokens.npy written)\n");
        return 0;
    }
    int hs = c->seq_h * c->patch_size, rc = 0, H, C;
    vae_model v;
    int have_vae = 0;
    if (c->tokenizer == TOKENIZER_KL16) {
        if ((rc = vae_open(&v, vae_path)) != 0) return rc;
        have_vae = 1;
        H = hs * vae_upscale(&v.cfg);
        C = v.cfg.out_ch;
    } else {
        H = c->img_size;
        C = c->vae_embed_dim;
    }
    float *lat = malloc(sizeof(float) * (size_t)B * c->vae_embed_dim * hs * hs);
    float *img = malloc(sizeof(float) * (size_t)B * C * H * H);
    uint8_t *pix = malloc((size_t)B * C * H * H);
    arena a = {0};
    if (!lat || !img || !pix) rc = disa_err(DISA_ENOMEM, "out of memory for images");
    if (!rc) mar_unpatchify(have_vae ? lat : img, tokens, B, c->seq_h, c->vae_embed_dim, c->patch_size);
    if (!rc && have_vae) {
        rc = arena_init(&a, vae_decode_scratch_bytes(&v.cfg, B, hs, hs), "decode");
        if (!rc) rc = vae_decode(&v, &a, img, lat, B, hs, hs);
    }
    if (!rc) image_to_u8(pix, img, B, C, H, H);
    char ps[512], idx[16], cl[16], sd[32], path[4200];
    sample_params_str(p, ps, sizeof ps);
    snprintf(cl, sizeof cl, "%d", cls);
    snprintf(sd, sizeof sd, "%llu", (unsigned long long)seed);
    for (int b = 0; !rc && b < B; b++) {
        snprintf(idx, sizeof idx, "%d", b);
        snprintf(path, sizeof path, "%s/%05d.png", dir, b);
        const image_kv kv[] = {{"index", idx}, {"class", cl}, {"seed", sd}, {"sampling", ps}};
        rc = png_write_u8(path, pix + (size_t)b * H * H * C, H, H, C, kv, 4);
    }
    if (!rc) fprintf(stderr, "disa-sample: wrote %d PNGs (%dx%dx%d) to %s\n", B, H, H, C, dir);
    arena_free(&a);
    free(lat);
    free(img);
    free(pix);
    if (have_vae) vae_close(&v);
    return rc;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    const char *model = NULL, *out = NULL, *vae_path = NULL;
    long cls = -2, seed = 1, nimg = 1, threads = 0;
    sample_params p;
    sample_params_init(&p);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "disa-sample: unexpected argument '%s'\n", a);
            return usage();
        }
        char flag[64];
        const char *val;
        const char *eq = strchr(a, '=');
        if (eq) {
            snprintf(flag, sizeof flag, "%.*s", (int)(eq - a - 2), a + 2);
            val = eq + 1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "disa-sample: %s needs a value\n", a);
                return 2;
            }
            snprintf(flag, sizeof flag, "%s", a + 2);
            val = argv[++i];
        }
        int rc = 0;
        if (strcmp(flag, "model") == 0) model = val;
        else if (strcmp(flag, "out") == 0) out = val;
        else if (strcmp(flag, "vae") == 0) vae_path = val;
        else if (strcmp(flag, "class") == 0) rc = int_flag(flag, val, -1, 1000000, &cls);
        else if (strcmp(flag, "seed") == 0) rc = int_flag(flag, val, 0, 2147483647L, &seed);
        else if (strcmp(flag, "num_images") == 0) rc = int_flag(flag, val, 1, 4096, &nimg);
        else if (strcmp(flag, "threads") == 0) rc = int_flag(flag, val, 1, 1024, &threads);
        else {
            int r = sample_params_set(&p, flag, val);
            if (r == DISA_ENOTFOUND) {
                fprintf(stderr, "disa-sample: unknown flag '--%s'\n", flag);
                return usage();
            }
            if (r) {
                fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
                return 2;
            }
        }
        if (rc) return rc;
    }
    if (!model || cls == -2) {
        fprintf(stderr, "disa-sample: --model and --class are required\n");
        return usage();
    }
    if (sample_params_check(&p) != 0) {
        fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
        return 2;
    }
    if (threads > 0) blas_set_threads((int)threads);
    if (p.precision == BLAS_BF16 && blas_bf16_available() != 0) {
        fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
        return 2;
    }
    mar_model m;
    if (mar_open(&m, model) != 0) {
        fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
        return 1;
    }
    const mar_config *c = &m.cfg;
    if (cls >= c->class_num) {
        fprintf(stderr, "disa-sample: --class must be in -1..%d for this model, got %ld\n", c->class_num - 1, cls);
        mar_close(&m);
        return 2;
    }
    if (vae_path && c->tokenizer == TOKENIZER_KL16) {  // a bad --vae fails now, not after the sampling
        vae_model v;
        if (vae_open(&v, vae_path) != 0) {
            fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
            mar_close(&m);
            return 1;
        }
        vae_close(&v);
    }
    int B = (int)nimg, rc = 1;
    sampler s;
    ar_rng_philox rng;
    int *labels = malloc(sizeof(int) * (size_t)B);
    uint32_t *index = malloc(sizeof(uint32_t) * (size_t)B);
    float *tokens = malloc(sizeof(float) * (size_t)B * c->seq_len * c->token_dim);
    if (!labels || !index || !tokens) {
        fprintf(stderr, "disa-sample: out of memory\n");
        return 1;
    }
    for (int b = 0; b < B; b++) {
        labels[b] = (int)cls;
        index[b] = (uint32_t)b;
    }
    if (sampler_init(&s, &m, &p, B) != 0 || ar_rng_philox_init(&rng, (uint64_t)seed, index, B) != 0) {
        fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
        return 1;
    }
    char ps[512], blas[512];
    fprintf(stderr, "disa-sample: %s\n", cpu_blas_describe(blas, sizeof blas));
    fprintf(stderr, "disa-sample: %s: seq %d x %d, enc %dx%d, dec %dx%d, head %dx%d; %s\n", model, c->seq_len,
            c->token_dim, c->enc_depth, c->enc_dim, c->dec_depth, c->dec_dim, c->diffloss_d, c->diffloss_w,
            sample_params_str(&p, ps, sizeof ps));
    sample_stats st = {0};
    double t0 = clock_now();
    if (sampler_run(&s, &rng.base, labels, B, tokens, &st) != 0) {
        fprintf(stderr, "disa-sample: sampling failed: %s\n", disa_errmsg());
        goto done;
    }
    double wall = clock_now() - t0;
    if (out) {
        if (mkdir(out, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "disa-sample: %s: cannot create folder: %s\n", out, strerror(errno));
            goto done;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/tokens.npy", out);
        int64_t shape[3] = {B, c->seq_len, c->token_dim};
        if (npy_write(path, NPY_F32, 3, shape, tokens) != 0) {
            fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
            goto done;
        }
        fprintf(stderr, "disa-sample: wrote %s\n", path);
        if (write_images(out, &m, vae_path, tokens, B, (int)cls, (uint64_t)seed, &p) != 0) {
            fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
            goto done;
        }
    }
    double gt = st.t_transformer > 0 ? st.flops_transformer / st.t_transformer / 1e9 : 0;
    double gh = st.t_head > 0 ? st.flops_head / st.t_head / 1e9 : 0;
    printf("images %d  wall %.3f s  (%.3f s/image)\n", B, wall, wall / B);
    printf("phase        seconds   share   GFLOP     GFLOPS\n");
    printf("transformer  %8.3f  %5.1f%%  %9.1f  %7.1f\n", st.t_transformer, 100 * st.t_transformer / wall,
           st.flops_transformer / 1e9, gt);
    printf("diff. head   %8.3f  %5.1f%%  %9.1f  %7.1f\n", st.t_head, 100 * st.t_head / wall, st.flops_head / 1e9, gh);
    printf("other        %8.3f  %5.1f%%\n", st.t_other, 100 * st.t_other / wall);
    printf("AR steps %d, %.3f s per AR step; diffusion NFE per token %.2f (%llu tokens)\n", st.ar_steps,
           wall / (st.ar_steps ? st.ar_steps : 1), st.tokens ? (double)st.head_row_steps / st.tokens : 0.0,
           (unsigned long long)st.tokens);
    rc = 0;
done:
    sampler_free(&s);
    ar_rng_philox_free(&rng);
    free(labels);
    free(index);
    free(tokens);
    mar_close(&m);
    return rc;
}
