// disa-sample: sample images of one class on this process (no MPI), any model family.
//
//   disa-sample --model FILE --class N [--seed S] [--num_images B] [--out DIR] [--vae FILE] [--threads T]
//               [the family's sampling flags, e.g. MAR's --num_iter K --cfg X
//                --cfg_schedule linear|constant --temperature T
//                --diff_sampler default|DiSA|DDIM|DPM_Solver|DPM_Solver++ --dpm_order 1|2|3
//                --diff_upper_steps U --diff_lower_steps L
//                --diff_annealing_strategy linear|cosine|two-stage|constant|adaptive
//                --diff_budget B --diff_adaptive_signal cfg|var|eps, or xAR's --cfg X
//                --flow_upper_steps U --flow_lower_steps L --num_steps N
//                --flow_sampler euler_maruyama|euler, or FlowAR's --flow_upper_steps U
//                --flow_lower_steps L --cfg X --guidance G] [--precision fp32|bf16|auto]
//
// Image i (0..B-1) draws from the Philox streams of (seed, i). Writes DIR/tokens.npy
// (the sampler's output, MAR: [B, seq, token_dim]) and the images DIR/00000.png ...
// (pixel-space models directly, KL-16 models through --vae), and prints per-phase
// timing, FLOPs and NFE per token.
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/cpu.h"
#include "disa/decode.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/flags.h"
#include "disa/folder.h"
#include "disa/npy.h"
#include "disa/path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int usage(FILE *f) {
    return flag_usage(f,
            "usage: disa-sample --model FILE --class N [--seed S] [--num_images B] [--out DIR] [--vae FILE] [--threads T]\n"
            "       [--num_iter K] [--cfg X] [--cfg_schedule linear|constant] [--temperature T]\n"
            "       [--diff_sampler default|DiSA|DDIM|DPM_Solver|DPM_Solver++] [--dpm_order 1|2|3]\n"
            "       [--diff_upper_steps U] [--diff_lower_steps L]\n"
            "       [--diff_annealing_strategy linear|cosine|two-stage|constant|adaptive] [--diff_budget B]\n"
            "       [--diff_adaptive_signal cfg|var|eps] [--precision fp32|bf16|auto]\n"
            "       xAR models: [--cfg X] [--flow_upper_steps U] [--flow_lower_steps L] [--num_steps N]\n"
            "       [--flow_sampler euler_maruyama|euler] [--precision fp32|auto]\n"
            "       FlowAR models: [--flow_upper_steps U] [--flow_lower_steps L] [--cfg X] [--guidance G]\n"
            "       [--precision fp32|auto]\n");
}

static int is_own_flag(const char *flag) {
    static const char *const names[] = {"model", "out", "vae", "class", "seed", "num_images", "threads", NULL};
    return flag_in(flag, names) || family_is_sampling_key(flag);
}

typedef struct opts {
    const char *model, *out, *vae;
    long long cls, seed, nimg, threads;
    const char *samp_key[64], *samp_val[64];  // sampling flags, applied once the family is known
    int n_samp;
} opts;

// Flags into o. Returns 0, FLAG_HELP, or 2 after printing one message.
static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.cls = -2, .seed = 1, .nimg = 1};
    static char names[64][64];
    for (int i = 1; i < argc; i++) {
        char *flag = names[o->n_samp < 64 ? o->n_samp : 63];
        const char *val;
        if (flag_is_help(argv[i])) {
            usage(stdout);
            return FLAG_HELP;
        }
        if (!flag_split(argv[i], 1, flag, 64, &val)) {
            fprintf(stderr, "disa-sample: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        }
        if (!is_own_flag(flag)) {
            fprintf(stderr, "disa-sample: unknown flag '--%s' (disa-sample --help lists them)\n", flag);
            return 2;
        }
        int rc = flag_value(argc, argv, &i, flag, &val);
        if (!rc) {
            if (strcmp(flag, "model") == 0) o->model = val;
            else if (strcmp(flag, "out") == 0) o->out = val;
            else if (strcmp(flag, "vae") == 0) o->vae = val;
            else if (strcmp(flag, "class") == 0) rc = flag_int(flag, val, -1, 1000000, &o->cls);
            else if (strcmp(flag, "seed") == 0) rc = flag_int(flag, val, 0, 2147483647L, &o->seed);
            else if (strcmp(flag, "num_images") == 0) rc = flag_int(flag, val, 1, 4096, &o->nimg);
            else if (strcmp(flag, "threads") == 0) rc = flag_int(flag, val, 1, 1024, &o->threads);
            else if (o->n_samp == 64) {
                rc = disa_err(DISA_EINVAL, "too many flags");
            } else {
                o->samp_key[o->n_samp] = flag;
                o->samp_val[o->n_samp++] = val;
            }
        }
        if (rc) {
            fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
            return 2;
        }
    }
    if (!o->model || o->cls == -2) {
        fprintf(stderr, "disa-sample: --model and --class are required\n");
        return usage(stderr);
    }
    return 0;
}

// The sampling flags under the model's family, checked. Returns 0, or 2 after a message.
static int sampling_from_flags(const opts *o, const family *fam, family_params *p, int *precision, char *why,
                               int nwhy) {
    fam->params_init(p);
    *precision = PRECISION_FP32;
    for (int k = 0; k < o->n_samp; k++) {
        int rc = family_sampling_set(fam, p, precision, o->samp_key[k], o->samp_val[k]);
        if (rc == DISA_ENOTFOUND) rc = disa_err(DISA_EINVAL, "unknown flag '--%s'", o->samp_key[k]);
        if (rc) {
            fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
            return 2;
        }
    }
    // auto becomes bf16 or fp32 here, so what runs is what the log line names.
    const int asked_auto = *precision == PRECISION_AUTO;
    *precision = family_precision_resolve(fam, *precision, why, nwhy);
    if (fam->params_check(p) != 0 || family_precision_check(fam, p, *precision, asked_auto) != 0 ||
        (*precision == PRECISION_BF16 && bf16_available() != 0)) {
        fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
        return 2;
    }
    return 0;
}

// DIR/tokens.npy and, when the model can be decoded here, DIR/NNNNN.png.
static int write_outputs(const opts *o, const family *fam, const void *model, const vae_model *vae,
                         const float *tokens, const int *labels, const char *sampling) {
    family_info fi;
    fam->info(model, &fi);
    int B = (int)o->nimg, rc;
    if ((rc = folder_mkdir(o->out)) != 0) return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokens.npy", o->out);
    int64_t shape[3] = {B, fi.token_dims[0], fi.token_dims[1]};
    if ((rc = npy_write(path, NPY_F32, 3, shape, tokens)) != 0) return rc;
    fprintf(stderr, "disa-sample: wrote %s\n", path);
    if (fi.latent == LATENT_KL16 && !vae) {
        fprintf(stderr, "disa-sample: KL-16 model: give --vae FILE to write PNGs (tokens.npy written)\n");
        return 0;
    }
    int H, W, C;
    size_t scratch, img;
    decode_geometry(&fi, vae, &H, &W, &C);
    decode_sizes(&fi, vae, B, &scratch, &img);
    float *latent = malloc(sizeof(float) * (size_t)B * fi.C * fi.H * fi.W);
    uint8_t *pix = malloc((size_t)B * C * H * W);
    decoder d;
    rc = decoder_init(&d, scratch, img);
    if (!rc && (!latent || !pix)) rc = disa_err(DISA_ENOMEM, "out of memory for images");
    if (!rc) fam->to_latent(model, latent, tokens, B);
    if (!rc) rc = decoder_run(&d, pix, latent, B, &fi, vae, NULL);
    png_recipe rec = {NULL, sampling, (uint64_t)o->seed};
    if (!rc) rc = decode_write_pngs(o->out, pix, B, H, W, C, 0, labels, &rec);
    if (!rc) fprintf(stderr, "disa-sample: wrote %d PNGs (%dx%dx%d) to %s\n", B, H, W, C, o->out);
    decoder_free(&d);
    free(latent);
    free(pix);
    return rc;
}

static void print_stats(const sample_stats *st, int B, double wall) {
    double gt = st->t_transformer > 0 ? st->flops_transformer / st->t_transformer / 1e9 : 0;
    double gh = st->t_head > 0 ? st->flops_head / st->t_head / 1e9 : 0;
    printf("images %d  wall %.3f s  (%.3f s/image)\n", B, wall, wall / B);
    printf("phase        seconds   share   GFLOP     GFLOPS\n");
    printf("transformer  %8.3f  %5.1f%%  %9.1f  %7.1f\n", st->t_transformer, 100 * st->t_transformer / wall,
           st->flops_transformer / 1e9, gt);
    printf("diff. head   %8.3f  %5.1f%%  %9.1f  %7.1f\n", st->t_head, 100 * st->t_head / wall, st->flops_head / 1e9, gh);
    printf("other        %8.3f  %5.1f%%\n", st->t_other, 100 * st->t_other / wall);
    printf("AR steps %d, %.3f s per AR step; head steps per token (diffusion or flow) %.2f (%llu tokens)\n", st->ar_steps,
           wall / (st->ar_steps ? st->ar_steps : 1), st->tokens ? (double)st->head_row_steps / st->tokens : 0.0,
           (unsigned long long)st->tokens);
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    opts o;
    int status = parse(argc, argv, &o);
    if (status) return status == FLAG_HELP ? 0 : status;
    const family *fam = family_for_file(o.model);
    family_params params;
    int precision;
    char why[512];
    if ((status = sampling_from_flags(&o, fam, &params, &precision, why, sizeof why)) != 0) return status;
    if (o.threads > 0) blas_set_threads((int)o.threads);
    void *model = NULL, *sampler = NULL;
    vae_model vae = {0};
    int have_vae = 0, B = (int)o.nimg;
    family_info fi;
    // Where the outputs go is checked before anything is loaded or sampled.
    int rc = o.out ? path_check_writable(o.out, 1, "--out") : 0;
    if (!rc) rc = fam->open(&model, o.model);
    if (!rc && (rc = fam->prepare(model, precision)) != 0) fam->close(model);
    if (rc) {
        fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
        return disa_exit_status(rc);
    }
    fam->info(model, &fi);
    status = 1;
    int *labels = malloc(sizeof(int) * (size_t)B);
    uint32_t *index = malloc(sizeof(uint32_t) * (size_t)B);
    float *tokens = malloc(sizeof(float) * (size_t)B * fi.token_dims[0] * fi.token_dims[1]);
    if (o.cls >= fi.class_num) {
        fprintf(stderr, "disa-sample: --class must be in -1..%d for this model, got %lld\n", fi.class_num - 1, o.cls);
        status = 2;
        goto done;
    }
    // A bad --vae fails now, not after the sampling. The decoder runs in the sampling's
    // precision.
    if (o.vae && fi.latent == LATENT_KL16 && (rc = vae_open(&vae, o.vae)) != 0) {
        status = disa_exit_status(rc);
        goto fail;
    }
    have_vae = o.vae && fi.latent == LATENT_KL16;
    if (have_vae && (rc = vae_prepare(&vae, (precision_kind)precision, fi.H, fi.W)) != 0) {
        status = disa_exit_status(rc);
        goto fail;
    }
    if (!labels || !index || !tokens) {
        disa_err(DISA_ENOMEM, "out of memory");
        goto fail;
    }
    for (int b = 0; b < B; b++) {
        labels[b] = (int)o.cls;
        index[b] = (uint32_t)b;
    }
    if (fam->sampler_new(&sampler, model, &params, precision, B) != 0) goto fail;
    char ps[512], desc[256], blas[512];
    family_sampling_str(fam, &params, precision, ps, sizeof ps);
    fprintf(stderr, "disa-sample: %s; precision %s\n", cpu_blas_describe(blas, sizeof blas), why);
    fprintf(stderr, "disa-sample: %s: %s; %s\n", o.model, fam->describe(model, desc, sizeof desc), ps);
    sample_stats st = {0};
    double t0 = clock_now();
    if (fam->sampler_run(sampler, tokens, labels, (uint64_t)o.seed, index, B, &st, NULL, NULL) != 0) {
        fprintf(stderr, "disa-sample: sampling failed: %s\n", disa_errmsg());
        goto done;
    }
    double wall = clock_now() - t0;
    if (o.out && write_outputs(&o, fam, model, have_vae ? &vae : NULL, tokens, labels, ps) != 0) goto fail;
    print_stats(&st, B, wall);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "disa-sample: %s\n", disa_errmsg());
done:
    if (sampler) fam->sampler_delete(sampler);
    if (have_vae) vae_close(&vae);
    fam->close(model);
    free(labels);
    free(index);
    free(tokens);
    return status;
}
