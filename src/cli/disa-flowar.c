// disa-flowar: sample FlowAR token latents on this process (no MPI), time them and
// compare with the FLOP model.
//
//   disa-flowar (--model FILE | --preset flowar_small|flowar_large|flowar_huge | --config JSON) [--class N]
//               [--seed S] [--num_images B] [--threads T] [--out DIR] [--flops] [--write FILE]
//               [--flow_upper_steps U] [--flow_lower_steps L] [--cfg X] [--guidance G]
//               [--precision fp32|bf16]
//
// --preset builds the official shape with generated weights in memory (FlowAR-H needs
// 7.7 GB), --config any disa-flowar-1 shape; --write FILE saves that model instead of
// sampling. Bad flags and a model file of another family exit with status 2, a missing
// or damaged model file with 1, each with one message. Image i draws from the
// Philox streams of (seed, i); --class -1 samples unconditionally, the default gives
// image i class i mod class_num. --flops prints the FLOP model per image and exits.
// Writes DIR/tokens.npy [B, 16, h, w] (the latent the KL-16 decoder takes) and prints
// per-phase timing, measured and predicted FLOPs and evaluations per token.
#include "disa/blas.h"
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/flowar_sample.h"
#include "disa/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int usage(void) {
    fprintf(stderr,
            "usage: disa-flowar (--model FILE | --preset flowar_small|flowar_large|flowar_huge | --config JSON) [--class N]\n"
            "       [--seed S]"
            " [--num_images B] [--threads T] [--out DIR] [--flops] [--write FILE]\n"
            "       [--flow_upper_steps U] [--flow_lower_steps L] [--cfg X] [--guidance G] [--precision fp32|bf16]\n");
    return 2;
}

static int int_flag(const char *flag, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "disa-flowar: --%s must be an integer in %ld..%ld, got '%s'\n", flag, lo, hi, v);
        return 2;
    }
    *out = x;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// The FLOP model per image for B images under p.
static int print_flops(const flowar_config *c, const flowar_params *p, int B) {
    flowar_flops f;
    flowar_flops_scale per[FLOWAR_MAX_SCALES];
    if (flowar_flops_run(&f, per, c, p, B) != 0) return 1;
    char ps[256];
    printf("FLOP model, %s, batch %d (GFLOP per image)\n", flowar_params_str(p, ps, sizeof ps), B);
    printf("scale  tokens  steps  evals  guided  transformer      head\n");
    for (int s = 0; s < c->n_scales; s++)
        printf("%5d  %6d  %5d  %5d  %6d  %11.2f  %8.2f\n", s, c->scale[s] * c->scale[s], per[s].n_steps, per[s].nfe,
               per[s].n_guided, per[s].transformer / 1e9 / B, per[s].head / 1e9 / B);
    printf("total                              %11.2f  %8.2f   = %.2f GFLOP per image, %.2f evaluations per token\n",
           f.transformer / 1e9 / B, f.head / 1e9 / B, (f.transformer + f.head) / 1e9 / B,
           (double)f.head_row_steps / (double)f.tokens);
    return 0;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    const char *model = NULL, *preset = NULL, *config = NULL, *out = NULL, *write = NULL;
    long cls = -2, seed = 1, nimg = 1, threads = 0;
    int flops_only = 0;
    flowar_params p;
    flowar_params_init(&p);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "disa-flowar: unexpected argument '%s'\n", a);
            return usage();
        }
        if (strcmp(a, "--flops") == 0) {
            flops_only = 1;
            continue;
        }
        char flag[64];
        const char *val;
        const char *eq = strchr(a, '=');
        if (eq) {
            snprintf(flag, sizeof flag, "%.*s", (int)(eq - a - 2), a + 2);
            val = eq + 1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "disa-flowar: %s needs a value\n", a);
                return 2;
            }
            snprintf(flag, sizeof flag, "%s", a + 2);
            val = argv[++i];
        }
        int rc = 0;
        if (strcmp(flag, "model") == 0) model = val;
        else if (strcmp(flag, "preset") == 0) preset = val;
        else if (strcmp(flag, "config") == 0) config = val;
        else if (strcmp(flag, "out") == 0) out = val;
        else if (strcmp(flag, "write") == 0) write = val;
        else if (strcmp(flag, "class") == 0) rc = int_flag(flag, val, -1, 999, &cls);
        else if (strcmp(flag, "seed") == 0) rc = int_flag(flag, val, 0, 2147483647L, &seed);
        else if (strcmp(flag, "num_images") == 0) rc = int_flag(flag, val, 1, 4096, &nimg);
        else if (strcmp(flag, "threads") == 0) rc = int_flag(flag, val, 1, 1024, &threads);
        else {
            int r = flowar_params_set(&p, flag, val);
            if (r == DISA_ENOTFOUND) {
                fprintf(stderr, "disa-flowar: unknown flag '--%s' (FlowAR's sampling flags are --flow_upper_steps, "
                        "--flow_lower_steps, --cfg, --guidance, --precision)\n", flag);
                return usage();
            }
            if (r) {
                fprintf(stderr, "disa-flowar: %s\n", disa_errmsg());
                return 2;
            }
        }
        if (rc) return rc;
    }
    if (!!model + !!preset + !!config != 1) {
        fprintf(stderr, "disa-flowar: give one of --model, --preset and --config\n");
        return usage();
    }
    if (flowar_params_check(&p) != 0) {
        fprintf(stderr, "disa-flowar: %s\n", disa_errmsg());
        return 2;
    }
    flowar_config cfg;
    if ((preset && flowar_config_preset(&cfg, preset) != 0) ||
        (config && flowar_config_parse(&cfg, config, "--config") != 0)) {
        fprintf(stderr, "disa-flowar: %s\n", disa_errmsg());
        return 2;
    }
    const char *name = model ? model : preset ? preset : "--config";
    if (write) {
        if (model) {
            fprintf(stderr, "disa-flowar: --write needs --preset or --config\n");
            return 2;
        }
        size_t n = 0;
        if (flowar_write_generated(&cfg, (uint64_t)seed, write, &n) != 0) {
            fprintf(stderr, "disa-flowar: %s\n", disa_errmsg());
            return 1;
        }
        printf("disa-flowar: wrote %s: %s with generated weights, %.1f M values\n", write, name, n / 1e6);
        return 0;
    }
    if (threads > 0) blas_set_threads((int)threads);
    if (p.precision == BLAS_BF16 && blas_bf16_available() != 0) {
        fprintf(stderr, "disa-flowar: %s\n", disa_errmsg());
        return 2;
    }
    if (flops_only && !model) return print_flops(&cfg, &p, (int)nimg) ? 1 : 0;
    flowar_model m;
    double tl = now_s();
    int orc = model ? flowar_open(&m, model) : 0;
    if (orc) {
        fprintf(stderr, "disa-flowar: %s\n", disa_errmsg());
        // A file of another model family is a bad argument (2); a missing or damaged
        // model file is found while loading (1), as disa-sample reports it.
        return orc == DISA_EINVAL ? 2 : 1;
    }
    if (!model && flowar_generate(&m, &cfg, (uint64_t)seed) != 0) {
        fprintf(stderr, "disa-flowar: %s\n", disa_errmsg());
        return 1;
    }
    tl = now_s() - tl;
    const flowar_config *c = &m.cfg;
    if (flops_only) {
        int r = print_flops(c, &p, (int)nimg);
        flowar_close(&m);
        return r;
    }
    if (cls >= c->class_num) {
        fprintf(stderr, "disa-flowar: --class must be in -1..%d for this model, got %ld\n", c->class_num - 1, cls);
        flowar_close(&m);
        return 2;
    }
    const int B = (int)nimg, L = c->seq_h * c->seq_h, C = c->token_dim;
    int rc = 1;
    flowar_sampler s;
    ar_rng_philox rng;
    int *labels = malloc(sizeof(int) * (size_t)B);
    uint32_t *index = malloc(sizeof(uint32_t) * (size_t)B);
    float *tokens = malloc(sizeof(float) * (size_t)B * L * C), *latent = malloc(sizeof(float) * (size_t)B * L * C);
    if (!labels || !index || !tokens || !latent) {
        fprintf(stderr, "disa-flowar: out of memory\n");
        return 1;
    }
    for (int b = 0; b < B; b++) {
        labels[b] = cls == -2 ? b % c->class_num : (int)cls;
        index[b] = (uint32_t)b;
    }
    memset(&s, 0, sizeof s);
    memset(&rng, 0, sizeof rng);
    if (flowar_sampler_init(&s, &m, &p, B) != 0 || ar_rng_philox_init(&rng, (uint64_t)seed, index, B) != 0) {
        fprintf(stderr, "disa-flowar: %s\n", disa_errmsg());
        goto done;
    }
    char ps[256], blas[512];
    fprintf(stderr, "disa-flowar: %s\n", cpu_blas_describe(blas, sizeof blas));
    fprintf(stderr, "disa-flowar: %s (%s %.1f s): scales %d, %d tokens, transformer %dx%d/%dx%d, head %dx%d %s; %s\n",
            name, model ? "loaded" : "generated", tl, c->n_scales, c->seq_len, c->enc_depth,
            c->enc_dim, c->dec_depth, c->dec_dim, c->diffloss_d, c->diffloss_w, c->cross ? "cross" : "attn-mlp",
            flowar_params_str(&p, ps, sizeof ps));
    sample_stats st = {0};
    double t0 = now_s();
    if (flowar_sampler_run(&s, &rng.base, labels, B, tokens, &st) != 0) {
        fprintf(stderr, "disa-flowar: sampling failed: %s\n", disa_errmsg());
        goto done;
    }
    double wall = now_s() - t0;
    if (out) {
        if (mkdir(out, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "disa-flowar: %s: cannot create folder: %s\n", out, strerror(errno));
            goto done;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/tokens.npy", out);
        mar_unpatchify(latent, tokens, B, c->seq_h, c->vae_embed_dim, c->patch_size);
        int64_t shape[4] = {B, c->vae_embed_dim, c->seq_h * c->patch_size, c->seq_h * c->patch_size};
        if (npy_write(path, NPY_F32, 4, shape, latent) != 0) {
            fprintf(stderr, "disa-flowar: %s\n", disa_errmsg());
            goto done;
        }
        fprintf(stderr, "disa-flowar: wrote %s\n", path);
    }
    flowar_flops f;
    if (flowar_flops_run(&f, NULL, c, &p, B) != 0) goto done;
    double gt = st.t_transformer > 0 ? st.flops_transformer / st.t_transformer / 1e9 : 0;
    double gh = st.t_head > 0 ? st.flops_head / st.t_head / 1e9 : 0;
    printf("images %d  wall %.3f s  (%.3f s/image)  threads %d\n", B, wall, wall / B, blas_get_threads());
    printf("phase        seconds   share   GFLOP      predicted  GFLOPS\n");
    printf("transformer  %8.3f  %5.1f%%  %9.1f  %9.1f  %7.1f\n", st.t_transformer, 100 * st.t_transformer / wall,
           st.flops_transformer / 1e9, f.transformer / 1e9, gt);
    printf("flow head    %8.3f  %5.1f%%  %9.1f  %9.1f  %7.1f\n", st.t_head, 100 * st.t_head / wall,
           st.flops_head / 1e9, f.head / 1e9, gh);
    printf("other        %8.3f  %5.1f%%\n", st.t_other, 100 * st.t_other / wall);
    printf("scales %d; flow evaluations per token %.2f (%llu tokens)\n", st.ar_steps,
           st.tokens ? (double)st.head_row_steps / st.tokens : 0.0, (unsigned long long)st.tokens);
    rc = 0;
done:
    flowar_sampler_free(&s);
    ar_rng_philox_free(&rng);
    free(labels);
    free(index);
    free(tokens);
    free(latent);
    flowar_close(&m);
    return rc;
}
