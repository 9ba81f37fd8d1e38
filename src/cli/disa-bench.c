// disa-bench: the analytic FLOP table of a sampling configuration and speed measurements
// against it (DESIGN §10; tools/bench.sh runs the whole set as `make bench`).
//
//   disa-bench --model PRESET|FILE [the model family's sampling flags: MAR's main_mar.py
//                --num_iter K --cfg X --diff_sampler ..., xAR's eval.py --cfg X
//                --flow_upper_steps U --flow_lower_steps L ...]
//              [--batch B] [--baseline_sampler default|DiSA|DDIM --baseline_steps N --baseline_iter K]
//              [--steps]                      per-AR-step FLOP schedule
//              [--sgemm [--sgemm_n N --sgemm_reps R]]   sgemm peak (median), OpenBLAS core
//              [--bf16_peak]                  the bf16 matmul peak (oneDNN, N^3 and the model's
//                                             Linear shapes), its ISA
//              [--peak GFLOPS]                the peak to quote percentages against
//              [--run [--run_iter K] [--per-step]]     time sampler_run at a reduced K
//              [--run [--run_flow_upper_steps U --run_flow_lower_steps L]]  xAR: at fewer flow steps
//              [--extrapolate [--t_points N --t_reps R]]  per-step timing at the target K
//              [--vae FILE] [--features FILE] [--threads N] [--json FILE]
//
// Without --sgemm/--bf16_peak/--run/--extrapolate it prints the per-image FLOP table only (a preset
// name needs no weights). --run and --extrapolate need a model file (disa-mkmodel).
//
// Extrapolation (include/disa/bench.h): a full K = 64 run of MAR-B at batch 32 takes
// hours here, so the target schedule (--num_iter, the sampler's mask schedule) is timed
// step shape by step shape with the engine's own forwards: mar_forward at --t_points
// known-token counts spread over the schedule, and one diffusion step of the head
// (mar_head_step) at every distinct head row count the schedule has, times its distinct
// diffusion steps. Per image = sum over steps / B.
//
// xAR models (presets xar_base, xar_large, xar_huge): K is the model's groups and every
// flow step is a network call, so --extrapolate times each call shape of the schedule
// (the first call of each AR step and a later one) and sums the flow-step schedules of
// the config and of the baseline (constant --baseline_steps, default 50) from them;
// --run runs the real sampler, at fewer flow steps with --run_flow_*_steps, and is then
// compared with the extrapolation of its own schedule.
//
// The program is one function per mode and family, each printing its lines and its JSON
// member; the family of the model picks the set (k_measures).
//
// A FlowAR model (preset flowar_small|flowar_large|flowar_huge, or a disa-flowar-1 file)
// takes the FlowAR section at the end instead:
//   disa-bench --model PRESET|FILE [--flow_upper_steps U --flow_lower_steps L --cfg X --guidance G]
//              [--baseline_steps N] [--batch B] [--run] [--sgemm ...] [--peak GFLOPS] [--threads N] [--json F]
// the per-scale FLOP table of the setting and of the baseline (N flow steps at every
// scale, default U: the official sampler before DiSA), and with --run (a model file)
// both sampled for real: FlowAR has five scales, so whole runs fit where MAR's 64 AR
// steps need the extrapolation.
#include "disa/bench.h"
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/flags.h"
#include "disa/flops.h"
#include "disa/flowar_sample.h"
#include "disa/inception.h"
#include "disa/mar.h"
#include "disa/sampler.h"
#include "disa/vae.h"
#include "disa/xar.h"
#include "disa/xar_sample.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f) {
    return flag_usage(f,
            "usage: disa-bench --model PRESET|FILE [the family's sampling flags] [--batch B]\n"
            "       [--baseline_sampler S --baseline_steps N --baseline_iter K] [--steps]\n"
            "       [--sgemm [--sgemm_n N] [--sgemm_reps R]] [--bf16_peak] [--peak GFLOPS]\n"
            "       [--run [--run_iter K | --run_flow_upper_steps U --run_flow_lower_steps L] [--per-step]]\n"
            "       [--extrapolate [--t_points N] [--t_reps R]] [--bf16_check]\n"
            "       [--vae FILE] [--features FILE] [--threads N] [--json FILE]\n"
            "       FlowAR models (flowar_small|flowar_large|flowar_huge or a disa-flowar-1 file): [--flow_upper_steps U]\n"
            "       [--flow_lower_steps L] [--cfg X] [--guidance G] [--baseline_steps N] [--batch B] [--run] (their own\n"
            "       set: disa-bench --model flowar_small --help)\n");
}

// The flags value_flag takes, so an unknown flag is named before its value is looked for.
static int is_valued_flag(const char *f) {
    static const char *const names[] = {"model", "vae", "features", "json", "batch", "sgemm_n", "sgemm_reps",
                                        "run_iter", "run_flow_upper_steps", "run_flow_lower_steps", "t_points",
                                        "t_reps", "threads", "baseline_sampler",
                                        "baseline_steps", "baseline_iter", "peak", NULL};
    return flag_in(f, names) || family_is_sampling_key(f);
}

// ----------------------------------------------------------------------------
// flags

typedef struct opts {
    const char *model, *vae, *features, *json;
    sample_params p, base;   // MAR's settings and its baseline
    xar_params xp, xbase;    // xAR's
    int batch, steps, sgemm, sgemm_n, sgemm_reps, run, run_iter, per_step, extrap, t_points, t_reps, threads;
    int bf16_check, bf16_peak, run_upper, run_lower;
    double bf16_n3;  // the bf16 N^3 median, once measured
    double peak;
    const char *bsampler, *bsteps, *biter;       // --baseline_sampler, --baseline_steps, --baseline_iter
    const char *samp_key[64], *samp_val[64];     // sampling flags, applied once the family is known
    int n_samp;
} opts;

// The flags that take a value: 0, DISA_ENOTFOUND for a flag it does not know, or
// DISA_EINVAL with a message.
static int value_flag(opts *o, const char *f, const char *v) {
    if (!strcmp(f, "model")) o->model = v;
    else if (!strcmp(f, "vae")) o->vae = v;
    else if (!strcmp(f, "features")) o->features = v;
    else if (!strcmp(f, "json")) o->json = v;
    else if (!strcmp(f, "batch")) return flag_int32(f, v, 1, 4096, &o->batch);
    else if (!strcmp(f, "sgemm_n")) return flag_int32(f, v, 64, 16384, &o->sgemm_n);
    else if (!strcmp(f, "sgemm_reps")) return flag_int32(f, v, 1, 64, &o->sgemm_reps);
    else if (!strcmp(f, "run_iter")) return flag_int32(f, v, 1, 1024, &o->run_iter);
    else if (!strcmp(f, "run_flow_upper_steps")) return flag_int32(f, v, 1, 1000, &o->run_upper);
    else if (!strcmp(f, "run_flow_lower_steps")) return flag_int32(f, v, 1, 1000, &o->run_lower);
    else if (!strcmp(f, "t_points")) return flag_int32(f, v, 1, 16, &o->t_points);
    else if (!strcmp(f, "t_reps")) return flag_int32(f, v, 1, 64, &o->t_reps);
    else if (!strcmp(f, "threads")) return flag_int32(f, v, 1, 1024, &o->threads);
    else if (!strcmp(f, "baseline_sampler")) o->bsampler = v;
    else if (!strcmp(f, "baseline_steps")) o->bsteps = v;
    else if (!strcmp(f, "baseline_iter")) o->biter = v;
    else if (!strcmp(f, "peak")) {
        char *end;
        o->peak = strtod(v, &end);
        if (*end || o->peak <= 0) return disa_err(DISA_EINVAL, "--peak must be a positive GFLOPS value, got '%s'", v);
    } else {
        return DISA_ENOTFOUND;
    }
    return 0;
}

static int parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 1, o->sgemm_n = 2048, o->sgemm_reps = 7, o->t_points = 3, o->t_reps = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (flag_is_help(a)) {
            usage(stdout);
            return FLAG_HELP;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "disa-bench: unexpected argument '%s'\n", a);
            return usage(stderr);
        }
        const char *f = a + 2, *v = NULL;
        if (!strcmp(f, "steps")) { o->steps = 1; continue; }
        if (!strcmp(f, "sgemm")) { o->sgemm = 1; continue; }
        if (!strcmp(f, "run")) { o->run = 1; continue; }
        if (!strcmp(f, "per-step")) { o->per_step = 1; continue; }
        if (!strcmp(f, "extrapolate")) { o->extrap = 1; continue; }
        if (!strcmp(f, "bf16_check")) { o->bf16_check = 1; continue; }
        if (!strcmp(f, "bf16_peak")) { o->bf16_peak = 1; continue; }
        if (!is_valued_flag(f)) {
            fprintf(stderr, "disa-bench: unknown flag '%s' (disa-bench --help lists them)\n", a);
            return 2;
        }
        if (flag_value(argc, argv, &i, f, &v) != 0) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 2;
        }
        int rc = value_flag(o, f, v);
        if (rc == DISA_ENOTFOUND) {  // a sampling key (is_valued_flag): applied once the family is known
            if (o->n_samp == 64) {
                fprintf(stderr, "disa-bench: too many sampling flags\n");
                return 2;
            }
            o->samp_key[o->n_samp] = f;
            o->samp_val[o->n_samp++] = v;
            rc = 0;
        }
        if (rc) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 2;
        }
    }
    if (!o->model && !o->sgemm && !o->bf16_peak) {
        char names[256];
        fprintf(stderr, "disa-bench: --model is required (a preset: %s, or a file)\n",
                family_presets_str(names, sizeof names));
        return usage(stderr);
    }
    return 0;
}

// The sampling flags under family f into a params blob and the shared precision, auto
// resolved and the precision checked against the settings. 2 after a message.
static int sampling_from_flags(const opts *o, const family *f, family_params *fp, int *precision) {
    f->params_init(fp);
    *precision = PRECISION_FP32;
    for (int k = 0; k < o->n_samp; k++)
        if (family_sampling_set(f, fp, precision, o->samp_key[k], o->samp_val[k]) != 0) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 2;
        }
    const int asked_auto = *precision == PRECISION_AUTO;
    *precision = family_precision_resolve(f, *precision, NULL, 0);
    if (family_precision_check(f, fp, *precision, asked_auto) != 0) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    return 0;
}

// MAR: the settings and the baseline, the same settings with its own sampler, step
// count and K. 2 after a message.
static int mar_settings(opts *o, const family *f) {
    if (o->run_upper || o->run_lower) {
        fprintf(stderr, "disa-bench: --run_flow_%s_steps does not apply to mar models (--run_iter K sets --run's AR "
                        "steps)\n", o->run_upper ? "upper" : "lower");
        return 2;
    }
    if (!o->run_iter) o->run_iter = 4;
    family_params fp;
    int precision, rc = sampling_from_flags(o, f, &fp, &precision);
    if (rc) return rc;
    memcpy(&o->p, fp.bytes, sizeof o->p);
    o->p.precision = precision;
    o->base = o->p;
    char nit[16];
    snprintf(nit, sizeof nit, "%d", o->p.num_iter);
    const char *bsteps = o->bsteps ? o->bsteps : "100";
    if (sample_params_set(&o->base, "diff_sampler", o->bsampler ? o->bsampler : "default") ||
        sample_params_set(&o->base, "diff_upper_steps", bsteps) ||
        sample_params_set(&o->base, "diff_lower_steps", bsteps) ||
        sample_params_set(&o->base, "num_iter", o->biter ? o->biter : nit) || sample_params_check(&o->base) ||
        sample_params_check(&o->p)) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// what the modes share

static FILE *g_json;
#define J(...) do { if (g_json) fprintf(g_json, __VA_ARGS__); } while (0)

static void pct_line(const char *what, double gflops, double peak) {
    if (peak > 0) printf("  %-34s %8.1f GFLOPS  %5.1f%% of peak\n", what, gflops, 100 * gflops / peak);
    else printf("  %-34s %8.1f GFLOPS\n", what, gflops);
}

typedef struct bench {
    opts o;
    mar_model m;          // a preset's config only, or a file with its weights
    int have_weights;
    const mar_config *c;
    int B, K, cfg;
    flops_step *schedule;    // [K] this config's schedule
    flops_step *base_schedule;   // [o.base.num_iter] the baseline's
    flops_sample fs;      // this config's totals
    double sp_sample;     // predicted sampling speedup over the baseline
} bench;

// A mode's failure: the message, exit status 1.
static int failed(void) {
    fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
    return 1;
}

// ----------------------------------------------------------------------------
// the batch of a real sampler run (every family's --run)

typedef struct step_rec {
    int step, n_pred, n_steps;  // n_pred: MAR's tokens predicted (0 for xAR)
    double cfg, t_tr, t_head;   // cfg: xAR's guidance scale
    uint64_t f_tr, f_head;
} step_rec;

// Images 0..B-1 with labels k % classes and room for the sampler's tokens; the stats
// the run adds to, and per AR step what the step added (from the sampler's trace hook).
typedef struct run_batch {
    int B;
    uint32_t *index;
    int *labels;
    float *tokens;
    sample_stats st, last;  // last: st when the previous AR step ended
    step_rec rec[1024];
    int n;
} run_batch;

static void batch_delete(run_batch *r) {
    if (!r) return;
    free(r->index);
    free(r->labels);
    free(r->tokens);
    free(r);
}

// NULL with a message when out of memory.
static run_batch *batch_new(int B, int classes, size_t token_floats) {
    run_batch *r = calloc(1, sizeof *r);
    if (r) {
        r->B = B;
        r->index = malloc(sizeof(uint32_t) * (size_t)B);
        r->labels = malloc(sizeof(int) * (size_t)B);
        r->tokens = malloc(sizeof(float) * (size_t)B * token_floats);
    }
    if (!r || !r->index || !r->labels || !r->tokens) {
        batch_delete(r);
        disa_err(DISA_ENOMEM, "out of memory");
        return NULL;
    }
    for (int k = 0; k < B; k++) r->index[k] = (uint32_t)k, r->labels[k] = k % classes;
    return r;
}

// The AR step that just ended: its shape and what it added to the stats.
static void batch_step(run_batch *r, int step, int n_pred, int n_steps, double cfg) {
    if (r->n >= 1024) return;
    step_rec *q = &r->rec[r->n++];
    q->step = step, q->n_pred = n_pred, q->n_steps = n_steps, q->cfg = cfg;
    q->t_tr = r->st.t_transformer - r->last.t_transformer;
    q->t_head = r->st.t_head - r->last.t_head;
    q->f_tr = r->st.flops_transformer - r->last.flops_transformer;
    q->f_head = r->st.flops_head - r->last.flops_head;
    r->last = r->st;
}

// ----------------------------------------------------------------------------
// --sgemm

// A peak's repeats: closing its line "(r1 r2 ...)" and its JSON member "all": [...]}.
static void peak_reps(const double *all, int reps) {
    for (int r = 0; r < reps; r++) {
        printf("%s%.0f", r ? " " : "", all[r]);
        J("%s%.2f", r ? ", " : "", all[r]);
    }
    printf(")\n");
    J("]}");
}

static void mode_sgemm(opts *o) {
    double all[64];
    double g = bench_sgemm_peak(o->sgemm_n, o->sgemm_reps, all);
    printf("sgemm %d^3, %d threads, %d reps: median %.1f GFLOPS (", o->sgemm_n, blas_get_threads(), o->sgemm_reps, g);
    J(",\n  \"sgemm\": {\"n\": %d, \"reps\": %d, \"median_gflops\": %.2f, \"all\": [", o->sgemm_n, o->sgemm_reps, g);
    peak_reps(all, o->sgemm_reps);
    if (o->peak == 0) o->peak = g;
}

// ----------------------------------------------------------------------------
// --bf16_peak: what the bf16 shares are quoted against, measured with the primitive the
// bf16 model's Linears run (packed weights, fp32 output); oneDNN runs --threads threads.

static int mode_bf16_peak(opts *o) {
    if (bf16_available() != 0) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    double all[64];
    int n = o->sgemm_n;
    double g = bench_bf16_peak(n, n, n, o->sgemm_reps, all);
    if (g <= 0) return failed();
    printf("bf16 matmul %d^3 (oneDNN %s, ISA %s), %d threads, %d reps: median %.1f GFLOPS (", n, bf16_version(),
           bf16_isa(), blas_get_threads(), o->sgemm_reps, g);
    J(",\n  \"bf16_peak\": {\"isa\": \"%s\", \"onednn\": \"%s\", \"threads\": %d, \"n\": %d, \"reps\": %d, "
      "\"median_gflops\": %.2f, \"all\": [", bf16_isa(), bf16_version(), blas_get_threads(), n, o->sgemm_reps, g);
    peak_reps(all, o->sgemm_reps);
    if (o->peak == 0) o->peak = g;
    o->bf16_n3 = g;
    return 0;
}

// The Linear shapes of one AR step of this model in bf16, each timed like the peak: the
// transformer's (the decoder's width) and the head's, at the rows of a full decoder pass
// of this batch with CFG (buffer and all tokens), capped at 16384 rows so that the
// operands stay within a few hundred MB.
static int mode_bf16_shapes(const bench *b) {
    const mar_config *c = b->c;
    const int D = c->dec_dim, H = c->dec_hidden, w = c->diffloss_w;
    long rows = (long)(b->cfg ? 2 * b->B : b->B) * (c->buffer_size + c->seq_len);
    const int M = rows < 16384 ? (int)rows : 16384;
    const struct { const char *name; int N, K; } sh[] = {
        {"attn.qkv", 3 * D, D}, {"attn.proj", D, D}, {"mlp.fc1", H, D}, {"mlp.fc2", D, H},
        {"head res block fc", w, w}, {"head adaLN", 3 * w, w},
    };
    printf("bf16 matmul at this model's Linear shapes, %d rows (median of %d):\n", M, b->o.sgemm_reps);
    J(",\n  \"bf16_shapes\": [");
    double best = b->o.bf16_n3;
    const char *best_name = "N^3";
    for (size_t i = 0; i < sizeof sh / sizeof *sh; i++) {
        double all[64];
        double g = bench_bf16_peak(M, sh[i].N, sh[i].K, b->o.sgemm_reps, all);
        if (g <= 0) return failed();
        if (g > best) best = g, best_name = sh[i].name;
        printf("  %-18s %5d x %5d x %5d  %8.1f GFLOPS", sh[i].name, M, sh[i].N, sh[i].K, g);
        if (b->o.peak > 0) printf("  %5.1f%% of peak", 100 * g / b->o.peak);
        printf("\n");
        J("%s{\"name\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"median_gflops\": %.2f}", i ? ", " : "",
          sh[i].name, M, sh[i].N, sh[i].K, g);
    }
    J("]");
    // The peak the bf16 shares are quoted against: the best median the primitive reached
    // in this run, at N^3 or at one of the model's own shapes (at 2 threads N^3 alone
    // alternates between two speeds from rep to rep on some CPUs).
    printf("bf16 matmul peak (best median of N^3 and these shapes): %.1f GFLOPS (%s)\n", best, best_name);
    J(",\n  \"bf16_peak_best\": {\"gflops\": %.2f, \"at\": \"%s\"}", best, best_name);
    return 0;
}

// ----------------------------------------------------------------------------
// the model and the FLOP table (always)

// A preset config, or a file (weights needed for --run, --extrapolate, --bf16_check).
static int open_model(bench *b) {
    const opts *o = &b->o;
    if (mar_config_preset(&b->m.cfg, o->model) != 0) {
        if (mar_open(&b->m, o->model) != 0) {
            char names[256];
            fprintf(stderr, "disa-bench: --model: not a preset (%s) and %s\n", family_presets_str(names, sizeof names),
                    disa_errmsg());
            return 2;
        }
        b->have_weights = 1;
        // The timed passes run in the sampling precision; --bf16_check opens its own pair.
        if (mar_prepare(&b->m, o->p.precision) != 0) return failed();
    }
    b->c = &b->m.cfg;
    if ((o->run || o->extrap || o->bf16_check) && !b->have_weights) {
        fprintf(stderr, "disa-bench: --run, --extrapolate and --bf16_check need a model file (build/bin/disa-mkmodel --preset %s "
                        "--out FILE)\n", o->model);
        return 2;
    }
    b->B = o->batch, b->K = o->p.num_iter, b->cfg = o->p.cfg != 1.0;
    return 0;
}

// Per image FLOPs of this config and the baseline (with KL-16 decode and Inception
// features), the predicted speedups, and both per-AR-step schedules for the modes below.
static int mode_flop_table(bench *b) {
    const opts *o = &b->o;
    const mar_config *c = b->c;
    const int B = b->B, K = b->K;
    char ps[512];
    vae_config vc;
    vae_config_kl16(&vc);
    flops_image fi, fb;
    if (flops_per_image(&fi, c, &o->p, B, &vc, 1) || flops_per_image(&fb, c, &o->base, B, &vc, 1)) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    printf("model %s: enc %dx%d, dec %dx%d, heads %d, head %dx%d, seq %d x %d\n", o->model, c->enc_depth, c->enc_dim,
           c->dec_depth, c->dec_dim, c->enc_heads, c->diffloss_d, c->diffloss_w, c->seq_len, c->token_dim);
    printf("per image (batch %d), GFLOP:   %-14s %-14s\n", B, "this config", "baseline");
    printf("  config                     %s\n", sample_params_str(&o->p, ps, sizeof ps));
    printf("  baseline                   %s\n", sample_params_str(&o->base, ps, sizeof ps));
    printf("  AR steps (passes)          %14d %14d\n", fi.ar_steps, fb.ar_steps);
    printf("  diffusion NFE per token    %14.2f %14.2f\n", fi.nfe_per_token, fb.nfe_per_token);
    printf("  transformer                %14.1f %14.1f\n", fi.transformer / 1e9, fb.transformer / 1e9);
    printf("  diffusion head             %14.1f %14.1f\n", fi.head / 1e9, fb.head / 1e9);
    printf("  KL-16 decode               %14.1f %14.1f\n", fi.decode / 1e9, fb.decode / 1e9);
    printf("  Inception features         %14.1f %14.1f\n", fi.features / 1e9, fb.features / 1e9);
    printf("  total                      %14.1f %14.1f\n", fi.total / 1e9, fb.total / 1e9);
    b->sp_sample = (fb.transformer + fb.head) / (fi.transformer + fi.head);
    double sp_total = fb.total / fi.total;
    printf("predicted speedup vs baseline (equal GFLOPS): sampling %.3fx, end to end %.3fx; head alone %.2fx\n",
           b->sp_sample, sp_total, fb.head / fi.head);
    J(",\n  \"model\": \"%s\", \"batch\": %d, \"config\": \"%s\"", o->model, B, sample_params_str(&o->p, ps, sizeof ps));
    J(",\n  \"baseline\": \"%s\"", sample_params_str(&o->base, ps, sizeof ps));
    J(",\n  \"flops_per_image\": {\"transformer\": %.6e, \"head\": %.6e, \"decode\": %.6e, \"features\": %.6e, "
      "\"total\": %.6e, \"nfe_per_token\": %.4f, \"ar_steps\": %d}", fi.transformer, fi.head, fi.decode, fi.features,
      fi.total, fi.nfe_per_token, fi.ar_steps);
    J(",\n  \"baseline_flops_per_image\": {\"transformer\": %.6e, \"head\": %.6e, \"decode\": %.6e, \"features\": "
      "%.6e, \"total\": %.6e, \"nfe_per_token\": %.4f, \"ar_steps\": %d}", fb.transformer, fb.head, fb.decode,
      fb.features, fb.total, fb.nfe_per_token, fb.ar_steps);
    J(",\n  \"predicted_speedup\": {\"sampling\": %.4f, \"end_to_end\": %.4f, \"head\": %.4f}", b->sp_sample, sp_total,
      fb.head / fi.head);

    b->schedule = calloc((size_t)K, sizeof *b->schedule);
    b->base_schedule = calloc((size_t)o->base.num_iter, sizeof *b->base_schedule);
    flops_sample fbs;
    if (!b->schedule || !b->base_schedule || flops_sample_run(&b->fs, b->schedule, c, &o->p, B) ||
        flops_sample_run(&fbs, b->base_schedule, c, &o->base, B))
        return failed();
    return 0;
}

// --steps: this config's schedule AR step by AR step.
static void mode_steps(const bench *b) {
    printf("step  n_known  n_pred  rows  diff_steps  transformer_GFLOP  head_GFLOP   (batch %d)\n", b->B);
    for (int s = 0; s < b->K; s++) {
        const flops_step *st = &b->schedule[s];
        printf("%4d  %7d  %6d  %4d  %10d  %17.2f  %10.3f\n", s, st->n_known, st->n_pred, st->rows, st->diff_steps,
               st->transformer / 1e9, st->head / 1e9);
    }
}

// ----------------------------------------------------------------------------
// --bf16_check

static int mode_bf16_check(bench *b) {
    if (bf16_available() != 0) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    // The model twice: one prepared for fp32, one for bf16 (the file is mapped once).
    mar_model m[2];
    arena a;
    double ez, ee, ev;
    int rc = mar_open(&m[0], b->o.model);
    if (!rc && (rc = mar_open(&m[1], b->o.model)) != 0) mar_close(&m[0]);
    if (rc) return failed();
    if (mar_prepare(&m[1], PRECISION_BF16) || arena_init(&a, bench_scratch_bytes(&b->m, b->B, b->cfg), "bf16 check") ||
        bench_bf16_check(&m[0], &m[1], &a, b->B, b->cfg, &ez, &ee, &ev))
        rc = failed();
    mar_close(&m[0]);
    mar_close(&m[1]);
    if (rc) return rc;
    arena_free(&a);
    printf("bf16 vs fp32, one evaluation (batch %d, half the tokens known): transformer z normwise error %.3g; "
           "diffusion head eps %.3g, variance channels %.3g\n", b->B, ez, ee, ev);
    J(",\n  \"bf16_check\": {\"batch\": %d, \"z\": %.4g, \"eps\": %.4g, \"var\": %.4g}", b->B, ez, ee, ev);
    return 0;
}

// ----------------------------------------------------------------------------
// --run: the real sampler at a reduced K, with per-AR-step deltas from the trace hook

// sampler.h's trace hook.
static void on_trace(void *ctx, int step, int mask_len, int n_steps, int n_pred, float cfg, const float *tokens) {
    batch_step(ctx, step, n_pred, n_steps, cfg);
}

static void print_run(const bench *b, const run_batch *rb, const sample_params *rp, double wall) {
    const opts *o = &b->o;
    const sample_stats *st = &rb->st;
    char ps[512];
    flops_sample pr;
    flops_sample_run(&pr, NULL, b->c, rp, b->B);
    double gt = st->flops_transformer / st->t_transformer / 1e9, gh = st->flops_head / st->t_head / 1e9;
    printf("run: sampler_run, batch %d, %s: wall %.2f s (%.3f s/image)\n", b->B, sample_params_str(rp, ps, sizeof ps),
           wall, wall / b->B);
    printf("  transformer %.2f s, %.1f GFLOP (model %s), head %.2f s, %.1f GFLOP (model %s), other %.3f s\n",
           st->t_transformer, st->flops_transformer / 1e9, st->flops_transformer == pr.transformer ? "equal" : "DIFFERS",
           st->t_head, st->flops_head / 1e9, st->flops_head == pr.head ? "equal" : "DIFFERS", st->t_other);
    pct_line("transformer", gt, o->peak);
    pct_line("diffusion head", gh, o->peak);
    pct_line("sampling (FLOP-weighted)", (st->flops_transformer + st->flops_head) / wall / 1e9, o->peak);
    J(",\n  \"run\": {\"num_iter\": %d, \"wall_s\": %.4f, \"t_transformer\": %.4f, \"t_head\": %.4f, \"t_other\": %.4f, "
      "\"flops_transformer\": %llu, \"flops_head\": %llu, \"model_equal\": %s, \"gflops_transformer\": %.2f, "
      "\"gflops_head\": %.2f, \"steps\": [", o->run_iter, wall, st->t_transformer, st->t_head, st->t_other,
      (unsigned long long)st->flops_transformer, (unsigned long long)st->flops_head,
      st->flops_transformer == pr.transformer && st->flops_head == pr.head ? "true" : "false", gt, gh);
    if (o->per_step) printf("  step  n_pred  diff_steps  transformer_s  head_s  s/diff_step  GFLOPS_tr  GFLOPS_head\n");
    for (int i = 0; i < rb->n; i++) {
        const step_rec *r = &rb->rec[i];
        double g1 = r->t_tr > 0 ? r->f_tr / r->t_tr / 1e9 : 0, g2 = r->t_head > 0 ? r->f_head / r->t_head / 1e9 : 0;
        if (o->per_step)
            printf("  %4d  %6d  %10d  %13.3f  %6.3f  %11.4f  %9.1f  %11.1f\n", r->step, r->n_pred, r->n_steps, r->t_tr,
                   r->t_head, r->t_head / r->n_steps, g1, g2);
        J("%s\n    {\"step\": %d, \"n_pred\": %d, \"diff_steps\": %d, \"t_transformer\": %.4f, \"t_head\": %.4f, "
          "\"gflops_transformer\": %.2f, \"gflops_head\": %.2f}", i ? "," : "", r->step, r->n_pred, r->n_steps,
          r->t_tr, r->t_head, g1, g2);
    }
    J("], \"head_row_steps\": %llu}", (unsigned long long)st->head_row_steps);
}

static int mode_run(bench *b) {
    const int B = b->B;
    const mar_config *c = b->c;
    sample_params rp = b->o.p;
    char buf[32];
    snprintf(buf, sizeof buf, "%d", b->o.run_iter);
    sample_params_set(&rp, "num_iter", buf);
    sampler s;
    ar_rng_philox rng;
    run_batch *rb = batch_new(B, c->class_num, (size_t)c->seq_len * c->token_dim);
    if (!rb || sampler_init(&s, &b->m, &rp, B) || ar_rng_philox_init(&rng, 1, rb->index, B)) return failed();
    s.trace = on_trace, s.trace_ctx = rb;
    double t0 = clock_now();
    if (sampler_run(&s, &rng.base, rb->labels, B, rb->tokens, &rb->st) != 0) {
        fprintf(stderr, "disa-bench: sampling failed: %s\n", disa_errmsg());
        return 1;
    }
    print_run(b, rb, &rp, clock_now() - t0);
    sampler_free(&s);
    ar_rng_philox_free(&rng);
    batch_delete(rb);
    return 0;
}

// ----------------------------------------------------------------------------
// --extrapolate: step-shape timing at the target K

// The transformer at t_points steps spread over the executed steps of the target.
static int time_transformer_points(const bench *b, arena *a, bench_point *tp, int *ntp) {
    const opts *o = &b->o;
    int exec[1024], ne = 0;
    for (int s = 0; s < b->K && ne < 1024; s++)
        if (b->schedule[s].rows) exec[ne++] = s;
    *ntp = o->t_points < ne ? o->t_points : ne;
    printf("extrapolate to K %d, batch %d: transformer passes (median of %d)\n", b->K, b->B, o->t_reps);
    J(",\n  \"extrapolate\": {\"num_iter\": %d, \"t_points\": [", b->K);
    for (int i = 0; i < *ntp; i++) {
        int s = exec[*ntp == 1 ? ne / 2 : (int)((long long)i * (ne - 1) / (*ntp - 1))];
        const flops_step *st = &b->schedule[s];
        tp[i].n_known = st->n_known;
        int rc = bench_time_transformer(&b->m, a, b->B, b->cfg, st->n_known, st->n_pred, o->t_reps, &tp[i].sec,
                                        &tp[i].flops);
        if (rc) return rc;
        tp[i].gflops = tp[i].flops / tp[i].sec / 1e9;
        printf("  step %2d  n_known %3d: %8.3f s per AR step, %8.1f GFLOP (model %s), %7.1f GFLOPS%s", s,
               tp[i].n_known, tp[i].sec, tp[i].flops / 1e9, tp[i].flops == st->transformer ? "equal" : "DIFFERS",
               tp[i].gflops, o->peak > 0 ? "" : "\n");
        if (o->peak > 0) printf(" %5.1f%% of peak\n", 100 * tp[i].gflops / o->peak);
        J("%s\n    {\"step\": %d, \"n_known\": %d, \"n_pred\": %d, \"s\": %.4f, \"flops\": %llu, \"gflops\": %.2f}",
          i ? "," : "", s, tp[i].n_known, st->n_pred, tp[i].sec, (unsigned long long)tp[i].flops, tp[i].gflops);
    }
    J("],\n    \"head_points\": [");
    return 0;
}

// The head at every distinct row count of both schedules.
static int time_head_points(const bench *b, arena *a, bench_head_point *hp, int cap, int *nhp) {
    const opts *o = &b->o;
    gd_tables tb;
    int rc = gd_tables_init(&tb, 50, GD_SAMPLER_DISA);
    if (rc) return rc;
    *nhp = 0;
    printf("  head, one diffusion step (median over >= 3 steps or 0.3 s):\n");
    for (int pass = 0; pass < 2 && !rc; pass++) {
        const flops_step *sc = pass ? b->base_schedule : b->schedule;
        int k = pass ? o->base.num_iter : b->K;
        for (int s = 0; s < k && !rc; s++) {
            if (!sc[s].rows || bench_find_head(hp, *nhp, sc[s].rows) || *nhp >= cap) continue;
            bench_head_point *h = &hp[(*nhp)++];
            h->rows = sc[s].rows;
            if ((rc = bench_time_head(&b->m, a, &tb, h->rows, b->cfg, &h->sec_step, &h->sec_cond, &h->flops)) != 0)
                break;
            h->gflops = h->flops / h->sec_step / 1e9;
            printf("    rows %5d: %9.5f s per diffusion step, %7.1f GFLOPS (model %s)%s", h->rows, h->sec_step,
                   h->gflops, h->flops == flops_head_step(b->c, h->rows) ? "equal" : "DIFFERS", o->peak > 0 ? "" : "\n");
            if (o->peak > 0) printf(" %5.1f%% of peak\n", 100 * h->gflops / o->peak);
            J("%s\n      {\"rows\": %d, \"s_per_diff_step\": %.6f, \"s_cond\": %.6f, \"gflops\": %.2f}",
              *nhp > 1 ? "," : "", h->rows, h->sec_step, h->sec_cond, h->gflops);
        }
    }
    gd_tables_free(&tb);
    return rc;
}

static void print_extrapolation(const bench *b, const bench_extrap *e, const bench_extrap *eb) {
    const opts *o = &b->o;
    const int B = b->B, ar_steps = b->fs.ar_steps;
    double ti = (e->t_tr + e->t_head) / B, tbi = (eb->t_tr + eb->t_head) / B;
    double g_i = (e->f_tr + e->f_head) / (e->t_tr + e->t_head) / 1e9;
    double g_b = (eb->f_tr + eb->f_head) / (eb->t_tr + eb->t_head) / 1e9;
    double g_late = e->t_head_late > 0 ? e->f_head_late / e->t_head_late / 1e9 : 0;
    printf("  per image, K %d, batch %d      transformer s   head s   total s   GFLOPS\n", b->K, B);
    printf("    %-26s %13.2f %8.2f %9.2f %8.1f\n", "this config", e->t_tr / B, e->t_head / B, ti, g_i);
    printf("    %-26s %13.2f %8.2f %9.2f %8.1f\n", "baseline", eb->t_tr / B, eb->t_head / B, tbi, g_b);
    printf("  per batch: %.3f s per AR step (transformer, mean), %.5f s per diffusion step (head, mean)\n",
           e->t_tr / ar_steps, e->t_head / (double)e->diff_steps);
    printf("  DiSA speedup vs baseline: measured (extrapolated) %.3fx, predicted by FLOPs %.3fx\n", tbi / ti,
           b->sp_sample);
    pct_line("sampling, this config", g_i, o->peak);
    pct_line("head, this config", (double)e->f_head / e->t_head / 1e9, o->peak);
    pct_line("head, late half of the steps", g_late, o->peak);
    J("],\n    \"per_image\": {\"t_transformer\": %.4f, \"t_head\": %.4f, \"t_total\": %.4f, \"gflops\": %.2f, "
      "\"gflops_head\": %.2f, \"gflops_head_late\": %.2f, \"gflops_transformer\": %.2f, \"ar_steps\": %d, "
      "\"diff_steps\": %ld, \"s_per_ar_step\": %.4f, \"s_per_diff_step\": %.6f},", e->t_tr / B, e->t_head / B, ti, g_i,
      (double)e->f_head / e->t_head / 1e9, g_late, (double)e->f_tr / e->t_tr / 1e9, ar_steps, e->diff_steps,
      e->t_tr / ar_steps, e->t_head / (double)e->diff_steps);
    J("\n    \"baseline_per_image\": {\"t_transformer\": %.4f, \"t_head\": %.4f, \"t_total\": %.4f, \"gflops\": %.2f, "
      "\"gflops_head\": %.2f, \"s_per_diff_step\": %.6f},", eb->t_tr / B, eb->t_head / B, tbi, g_b,
      (double)eb->f_head / eb->t_head / 1e9, eb->t_head / (double)eb->diff_steps);
    J("\n    \"speedup_measured\": %.4f, \"speedup_predicted\": %.4f,", tbi / ti, b->sp_sample);
}

// The two schedules step by step, so another implementation (tools/bench_torch.py) can be
// timed at the same shapes and summed the same way. transformer_full: the pass with a
// full last decoder block, as an implementation without the row restriction computes it.
static void json_schedules(const bench *b) {
    for (int pass = 0; pass < 2; pass++) {
        const flops_step *sc = pass ? b->base_schedule : b->schedule;
        int k = pass ? b->o.base.num_iter : b->K;
        J("\n    \"%s\": [", pass ? "baseline_schedule" : "schedule");
        int first = 1;
        for (int st = 0; st < k; st++) {
            if (!sc[st].rows) continue;
            J("%s\n      {\"step\": %d, \"n_known\": %d, \"n_pred\": %d, \"rows\": %d, \"diff_steps\": %d, "
              "\"transformer\": %llu, \"transformer_full\": %llu, \"head\": %llu}",
              first ? "" : ",", sc[st].step, sc[st].n_known, sc[st].n_pred, sc[st].rows, sc[st].diff_steps,
              (unsigned long long)sc[st].transformer,
              (unsigned long long)flops_transformer_pass(b->c, b->B, b->cfg, sc[st].n_known, 0),
              (unsigned long long)sc[st].head);
            first = 0;
        }
        J("]%s", pass ? "}" : ",");
    }
}

static int mode_extrapolate(bench *b) {
    // The step shapes are timed in the precision the model is prepared for (open_model).
    arena a;
    static bench_head_point hp[2048];
    bench_point tp[16];
    int ntp, nhp, rc = arena_init(&a, bench_scratch_bytes(&b->m, b->B, b->cfg), "bench scratch");
    double tw;
    uint64_t fw;
    // Warm-up: page in the weights and the arena, start the BLAS threads.
    if (!rc) rc = bench_time_transformer(&b->m, &a, 1, b->cfg, 0, 1, 1, &tw, &fw);
    if (!rc) rc = time_transformer_points(b, &a, tp, &ntp);
    if (!rc) rc = time_head_points(b, &a, hp, 2048, &nhp);
    if (!rc) {
        bench_extrap e, eb;
        bench_extrapolate(&e, b->schedule, b->K, tp, ntp, hp, nhp);
        bench_extrapolate(&eb, b->base_schedule, b->o.base.num_iter, tp, ntp, hp, nhp);
        print_extrapolation(b, &e, &eb);
        json_schedules(b);
    }
    arena_free(&a);
    return rc ? failed() : 0;
}

// ----------------------------------------------------------------------------
// --vae, --features: decode and feature net per image (any family; h: the latent's side)

static int mode_decode(const opts *o, int h) {
    vae_model v;
    if (vae_open(&v, o->vae)) return failed();
    int H = h * vae_upscale(&v.cfg);
    if (vae_prepare(&v, o->p.precision, h, h)) return failed();  // the decoder runs in the sampling precision (xAR: fp32)
    arena a;
    float *lat = malloc(sizeof(float) * (size_t)v.cfg.embed_dim * h * h);
    float *img = malloc(sizeof(float) * (size_t)v.cfg.out_ch * H * H);
    if (!lat || !img || arena_init(&a, vae_decode_scratch_bytes(&v.cfg, 1, h, h), "decode")) return 1;
    bench_fill_normal(lat, (size_t)v.cfg.embed_dim * h * h, 7);
    double t[8];
    uint64_t f = 0;
    vae_decode(&v, &a, img, lat, 1, h, h);  // warm-up
    for (int r = 0; r < 3; r++) {
        uint64_t f0 = blas_flops();
        double t0 = clock_now();
        if (vae_decode(&v, &a, img, lat, 1, h, h)) return 1;
        t[r] = clock_now() - t0;
        f = blas_flops() - f0;
    }
    double s = bench_median(t, 3), pred = vae_decode_flops(&v.cfg, h, h);
    printf("KL-16 decode (%s): %.3f s per image (median of 3), %.1f GFLOP (vae_decode_flops %.1f)\n",
           precision_name(o->p.precision), s, f / 1e9, pred / 1e9);
    pct_line("decode", f / s / 1e9, o->peak);
    J(",\n  \"decode\": {\"s_per_image\": %.4f, \"flops\": %llu, \"flops_model\": %.0f, \"gflops\": %.2f}", s,
      (unsigned long long)f, pred, f / s / 1e9);
    arena_free(&a);
    free(lat);
    free(img);
    vae_close(&v);
    return 0;
}

static int mode_features(const opts *o) {
    inception_model *inc = calloc(1, sizeof *inc);
    if (!inc || inception_open(inc, o->features)) return failed();
    int S = 256;
    uint8_t *img = malloc((size_t)3 * S * S);
    float feat[INCEPTION_FEAT], logits[INCEPTION_LOGITS];
    arena a;
    if (!img || arena_init(&a, inception_scratch_bytes(), "inception")) return 1;
    for (int i = 0; i < 3 * S * S; i++) img[i] = (uint8_t)(i * 37 % 251);
    inception_forward(inc, &a, feat, logits, img, 1, S, S);  // warm-up
    double t[8];
    uint64_t f = 0;
    for (int r = 0; r < 3; r++) {
        uint64_t f0 = blas_flops();
        double t0 = clock_now();
        if (inception_forward(inc, &a, feat, logits, img, 1, S, S)) return 1;
        t[r] = clock_now() - t0;
        f = blas_flops() - f0;
    }
    double s = bench_median(t, 3);
    uint64_t pred = inception_flops(1);
    printf("Inception features: %.3f s per %dx%d image (median of 3), %.2f GFLOP (model %s)\n", s, S, S, f / 1e9,
           f == pred ? "equal" : "DIFFERS");
    pct_line("features", f / s / 1e9, o->peak);
    J(",\n  \"features\": {\"s_per_image\": %.4f, \"flops\": %llu, \"flops_model\": %llu, \"gflops\": %.2f}", s,
      (unsigned long long)f, (unsigned long long)pred, f / s / 1e9);
    arena_free(&a);
    free(img);
    inception_close(inc);
    free(inc);
    return 0;
}

// ----------------------------------------------------------------------------

// The modes a model enables, in the order their lines and JSON members appear.
static int model_modes(bench *b) {
    const opts *o = &b->o;
    int rc = open_model(b);
    if (!rc) rc = mode_flop_table(b);
    if (!rc && o->steps) mode_steps(b);
    if (!rc && o->bf16_peak) rc = mode_bf16_shapes(b);
    if (!rc && o->bf16_check) rc = mode_bf16_check(b);
    if (!rc && o->run) rc = mode_run(b);
    if (!rc && o->extrap) rc = mode_extrapolate(b);
    if (!rc && o->vae) rc = mode_decode(o, b->c->seq_h * b->c->patch_size);
    if (!rc && o->features) rc = mode_features(o);
    free(b->schedule);
    free(b->base_schedule);
    if (b->have_weights) {
        mar_close(&b->m);
    } else {
        free(b->m.enc);
        free(b->m.dec);
        free(b->m.head.blocks);
    }
    return rc;
}

// ----------------------------------------------------------------------------
// xAR: its AR steps are the model's groups (K = clusters, 4 in the official models), each
// a number of flow steps that are whole network calls, and DiSA anneals that number. The
// baseline is a constant count (--baseline_steps, default 50: the count DiSA's README
// replaces); the run and the extrapolation keep the configured guidance.

typedef struct xbench {
    const opts *o;
    const family *fam;
    void *model;           // an xar_model: a preset's config only, or a file with its weights
    const xar_config *c;
    int have_weights, B;
    xar_params run;        // --run's schedule: the config's, or --run_flow_{upper,lower}_steps
    xar_flops f, fb;       // this config's and the baseline's schedule over one batch
    double sp_sample;      // predicted sampling speedup over the baseline
    double run_wall;       // --run's seconds per batch (0: not run)
} xbench;

static int xar_settings(opts *o, const family *f) {
    family_params fp;
    int precision, rc = sampling_from_flags(o, f, &fp, &precision);
    if (rc) return rc;
    memcpy(&o->xp, fp.bytes, sizeof o->xp);
    const char *mar_only = o->bsampler ? "--baseline_sampler" : o->biter ? "--baseline_iter" : o->run_iter ? "--run_iter"
                         : o->bf16_check ? "--bf16_check" : NULL;
    if (mar_only) {
        fprintf(stderr, "disa-bench: %s does not apply to xar models (their AR steps are the model's groups and their "
                        "baseline is a constant number of flow steps: --baseline_steps N)\n", mar_only);
        return 2;
    }
    long long n = 50;
    if ((o->bsteps && flag_int("baseline_steps", o->bsteps, 1, 1000, &n) != 0) || xar_params_check(&o->xp)) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    o->xbase = o->xp;
    o->xbase.upper = o->xbase.lower = (int)n;
    return 0;
}

static int xar_open_model(xbench *x) {
    const opts *o = x->o;
    if (x->fam->preset(&x->model, o->model) != 0) {
        if (x->fam->open(&x->model, o->model) != 0) {
            fprintf(stderr, "disa-bench: --model: %s\n", disa_errmsg());
            return 2;
        }
        x->have_weights = 1;
    }
    x->c = &((const xar_model *)x->model)->cfg;
    x->B = o->batch;
    if ((o->run || o->extrap) && !x->have_weights) {
        fprintf(stderr, "disa-bench: --run and --extrapolate need a model file (build/bin/disa-mkmodel --preset %s "
                        "--out FILE)\n", o->model);
        return 2;
    }
    x->run = o->xp;
    if (o->run_upper) x->run.upper = o->run_upper;
    if (o->run_lower) x->run.lower = o->run_lower;
    if (x->run.upper < x->run.lower) {
        fprintf(stderr, "disa-bench: --run: %d flow steps at the first group and %d at the last: the first must not be "
                        "fewer (--run_flow_upper_steps, --run_flow_lower_steps)\n", x->run.upper, x->run.lower);
        return 2;
    }
    return 0;
}

// Per image FLOPs of this config and the baseline (with KL-16 decode and Inception
// features) and the predicted speedups.
static int xar_flop_table(xbench *x) {
    const opts *o = x->o;
    const xar_config *c = x->c;
    const int B = x->B;
    if (xar_flops_run(&x->f, c, &o->xp, B) || xar_flops_run(&x->fb, c, &o->xbase, B)) return failed();
    double dec = 0, feat = (double)inception_flops(1);
    if (c->tokenizer == TOKENIZER_KL16) {
        vae_config vc;
        vae_config_kl16(&vc);
        dec = vae_decode_flops(&vc, c->seq_h * c->patch_size, c->seq_h * c->patch_size);
    }
    double ti = (double)x->f.transformer / B, tb = (double)x->fb.transformer / B;
    double nfe = (double)x->f.row_steps / x->f.tokens, nfe_b = (double)x->fb.row_steps / x->fb.tokens;
    char ps[512], pb[512], desc[256];
    xar_params_str(&o->xp, ps, sizeof ps);
    xar_params_str(&o->xbase, pb, sizeof pb);
    printf("model %s (xar): %s\n", o->model, x->fam->describe(x->model, desc, sizeof desc));
    printf("per image (batch %d), GFLOP:   %-14s %-14s\n", B, "this config", "baseline");
    printf("  config                     %s\n", ps);
    printf("  baseline                   %s\n", pb);
    printf("  AR steps (groups)          %14d %14d\n", x->f.ar_steps, x->fb.ar_steps);
    printf("  network calls per batch    %14llu %14llu\n", (unsigned long long)x->f.calls, (unsigned long long)x->fb.calls);
    printf("  flow steps per token       %14.2f %14.2f\n", nfe, nfe_b);
    printf("  transformer (flow)         %14.1f %14.1f\n", ti / 1e9, tb / 1e9);
    printf("  KL-16 decode               %14.1f %14.1f\n", dec / 1e9, dec / 1e9);
    printf("  Inception features         %14.1f %14.1f\n", feat / 1e9, feat / 1e9);
    printf("  total                      %14.1f %14.1f\n", (ti + dec + feat) / 1e9, (tb + dec + feat) / 1e9);
    x->sp_sample = tb / ti;
    double sp_total = (tb + dec + feat) / (ti + dec + feat);
    printf("predicted speedup vs baseline (equal GFLOPS): sampling %.3fx, end to end %.3fx\n", x->sp_sample, sp_total);
    J(",\n  \"family\": \"xar\", \"model\": \"%s\", \"batch\": %d, \"config\": \"%s\", \"baseline\": \"%s\"", o->model, B,
      ps, pb);
    J(",\n  \"flops_per_image\": {\"transformer\": %.6e, \"head\": 0, \"decode\": %.6e, \"features\": %.6e, "
      "\"total\": %.6e, \"nfe_per_token\": %.4f, \"ar_steps\": %d, \"calls\": %llu}", ti, dec, feat, ti + dec + feat,
      nfe, x->f.ar_steps, (unsigned long long)x->f.calls);
    J(",\n  \"baseline_flops_per_image\": {\"transformer\": %.6e, \"head\": 0, \"decode\": %.6e, \"features\": %.6e, "
      "\"total\": %.6e, \"nfe_per_token\": %.4f, \"ar_steps\": %d, \"calls\": %llu}", tb, dec, feat, tb + dec + feat,
      nfe_b, x->fb.ar_steps, (unsigned long long)x->fb.calls);
    J(",\n  \"predicted_speedup\": {\"sampling\": %.4f, \"end_to_end\": %.4f}", x->sp_sample, sp_total);
    return 0;
}

// FLOPs of AR step s of a batch of B under p: its first call and n - 1 more.
static uint64_t xar_step_flops(const xar_config *c, const xar_params *p, int B, int s) {
    int N = xar_seqs_at(p, c->clusters, s, B), G = c->group;
    return xar_flops_call(c, N, s > 0 ? 2 * G : G, s) +
           (uint64_t)(xar_steps_at(p, c->clusters, s) - 1) * xar_flops_call(c, N, G, s);
}

// --steps: this config's schedule AR step by AR step, with the baseline's flow steps.
static void xar_steps_table(const xbench *x) {
    const xar_params *p = &x->o->xp;
    printf("step  flow_steps  baseline_steps  cfg_scale  sequences  GFLOP   (batch %d)\n", x->B);
    for (int s = 0; s < x->c->clusters; s++)
        printf("%4d  %10d  %14d  %9.4f  %9d  %7.1f\n", s, xar_steps_at(p, x->c->clusters, s),
               xar_steps_at(&x->o->xbase, x->c->clusters, s), xar_cfg_at(p, x->c->clusters, s),
               xar_seqs_at(p, x->c->clusters, s, x->B), xar_step_flops(x->c, p, x->B, s) / 1e9);
}

// --run: the real sampler over one batch, per AR step from the trace hook (xar_sample.h).
static void on_xar_trace(void *ctx, int step, int n_steps, double cfg, const float *z) {
    if (step < 64) batch_step(ctx, step, 0, n_steps, cfg);
}

static int xar_run(xbench *x) {
    const opts *o = x->o;
    const int B = x->B;
    xar_sampler s;
    xar_rng_philox rng;
    run_batch *rb = batch_new(B, x->c->class_num, (size_t)x->c->seq_len * x->c->token_dim);
    if (!rb || xar_sampler_init(&s, x->model, &x->run, B) || xar_rng_philox_init(&rng, 1, rb->index, B))
        return failed();
    s.trace = on_xar_trace, s.trace_ctx = rb;
    double t0 = clock_now();
    if (xar_sampler_run(&s, &rng.base, rb->labels, B, rb->tokens, &rb->st) != 0) {
        fprintf(stderr, "disa-bench: sampling failed: %s\n", disa_errmsg());
        return 1;
    }
    const sample_stats *st = &rb->st;
    double wall = clock_now() - t0, g = st->flops_transformer / st->t_transformer / 1e9;
    xar_flops pr;
    xar_flops_run(&pr, x->c, &x->run, B);
    char ps[512];
    printf("run: xar_sampler_run, batch %d, %s: wall %.2f s (%.3f s/image)\n", B, xar_params_str(&x->run, ps, sizeof ps),
           wall, wall / B);
    printf("  network %.2f s, %.1f GFLOP (model %s), other %.3f s\n", st->t_transformer, st->flops_transformer / 1e9,
           st->flops_transformer == pr.transformer ? "equal" : "DIFFERS", st->t_other);
    pct_line("network (flow steps)", g, o->peak);
    J(",\n  \"run\": {\"flow_upper_steps\": %d, \"flow_lower_steps\": %d, \"wall_s\": %.4f, \"t_transformer\": %.4f, "
      "\"t_other\": %.4f, \"flops_transformer\": %llu, \"model_equal\": %s, \"gflops_transformer\": %.2f, \"steps\": [",
      x->run.upper, x->run.lower, wall, st->t_transformer, st->t_other, (unsigned long long)st->flops_transformer,
      st->flops_transformer == pr.transformer ? "true" : "false", g);
    if (o->per_step) printf("  step  flow_steps  cfg_scale  seconds  s/flow_step  GFLOPS\n");
    for (int i = 0; i < rb->n; i++) {
        const step_rec *r = &rb->rec[i];
        double gi = r->t_tr > 0 ? r->f_tr / r->t_tr / 1e9 : 0;
        if (o->per_step)
            printf("  %4d  %10d  %9.4f  %7.3f  %11.4f  %6.1f\n", i, r->n_steps, r->cfg, r->t_tr, r->t_tr / r->n_steps,
                   gi);
        J("%s\n    {\"step\": %d, \"flow_steps\": %d, \"cfg\": %.6f, \"t\": %.4f, \"flops\": %llu, \"gflops\": %.2f}",
          i ? "," : "", i, r->n_steps, r->cfg, r->t_tr, (unsigned long long)r->f_tr, gi);
    }
    J("]}");
    x->run_wall = wall;
    xar_sampler_free(&s);
    xar_rng_philox_free(&rng);
    batch_delete(rb);
    return 0;
}

// --extrapolate: every call shape of the schedule timed (the first call of each AR step
// and a later one), the config's and the baseline's schedules summed from them.
static int xar_extrapolate(xbench *x) {
    const opts *o = x->o;
    const xar_config *c = x->c;
    const int B = x->B, K = c->clusters, reps = o->t_reps;
    if (K > 64) {
        fprintf(stderr, "disa-bench: --extrapolate: the model has %d groups, at most 64 are timed\n", K);
        return 2;
    }
    double tf[64], tr[64];
    uint64_t ff[64], fr[64];
    int rc = 0;
    printf("extrapolate, batch %d: one network call of each shape (median of %d)\n", B, reps);
    J(",\n  \"extrapolate\": {\"reps\": %d, \"calls\": [", reps);
    for (int s = 0; s < K && !rc; s++) {
        int N = xar_seqs_at(&o->xp, K, s, B);
        for (int first = 1; first >= 0 && !rc; first--) {
            double *t = first ? &tf[s] : &tr[s];
            uint64_t *f = first ? &ff[s] : &fr[s];
            int R = first && s > 0 ? 2 * c->group : c->group;
            if ((rc = xar_bench_time_call(x->model, N, s, first, reps, t, f)) != 0) break;
            double g = *f / *t / 1e9;
            printf("  step %d %-5s %4d sequences x %3d rows: %8.4f s, %8.1f GFLOP (model %s), %7.1f GFLOPS", s,
                   first ? "first" : "later", N, R, *t, *f / 1e9, *f == xar_flops_call(c, N, R, s) ? "equal" : "DIFFERS",
                   g);
            if (o->peak > 0) printf(" %5.1f%% of peak", 100 * g / o->peak);
            printf("\n");
            J("%s\n    {\"step\": %d, \"first\": %s, \"sequences\": %d, \"rows\": %d, \"s\": %.6f, \"flops\": %llu, "
              "\"gflops\": %.2f}", s || !first ? "," : "", s, first ? "true" : "false", N, R, *t,
              (unsigned long long)*f, g);
        }
    }
    if (rc) return failed();
    double ti = xar_bench_schedule(c, &o->xp, tf, tr) / B, tb = xar_bench_schedule(c, &o->xbase, tf, tr) / B;
    double gi = x->f.transformer / B / ti / 1e9, gb = x->fb.transformer / B / tb / 1e9;
    printf("  per image, batch %d              seconds   GFLOPS\n", B);
    printf("    %-28s %9.2f %8.1f\n", "this config", ti, gi);
    printf("    %-28s %9.2f %8.1f\n", "baseline", tb, gb);
    printf("  DiSA speedup vs baseline: measured (extrapolated) %.3fx, predicted by FLOPs %.3fx\n", tb / ti,
           x->sp_sample);
    pct_line("sampling, this config", gi, o->peak);
    pct_line("sampling, baseline", gb, o->peak);
    J("],\n    \"per_image\": {\"t_total\": %.4f, \"gflops\": %.2f}, \"baseline_per_image\": {\"t_total\": %.4f, "
      "\"gflops\": %.2f},\n    \"speedup_measured\": %.4f, \"speedup_predicted\": %.4f", ti, gi, tb, gb, tb / ti,
      x->sp_sample);
    if (x->run_wall > 0) {
        // The real run against the sum of its shapes: how far the extrapolation is to be trusted.
        double te = xar_bench_schedule(c, &x->run, tf, tr);
        printf("  --run's schedule: extrapolated %.2f s per batch, measured %.2f s (measured / extrapolated %.3f)\n", te,
               x->run_wall, x->run_wall / te);
        J(",\n    \"run_check\": {\"extrapolated_s\": %.4f, \"measured_s\": %.4f}", te, x->run_wall);
    }
    J("}");
    return 0;
}

static int xar_modes(const opts *o, const family *fam) {
    xbench x = {.o = o, .fam = fam};
    int rc = xar_open_model(&x);
    if (!rc) rc = xar_flop_table(&x);
    if (!rc && o->steps) xar_steps_table(&x);
    if (!rc && o->run) rc = xar_run(&x);
    if (!rc && o->extrap) rc = xar_extrapolate(&x);
    if (!rc && o->vae) rc = mode_decode(o, x.c->seq_h * x.c->patch_size);
    if (!rc && o->features) rc = mode_features(o);
    if (x.model) fam->close(x.model);
    return rc;
}

// ----------------------------------------------------------------------------

// What this program measures of each family: its settings from the flags, its modes.
static int mar_modes(const opts *o, const family *fam) {
    static bench b;
    b.o = *o;
    return model_modes(&b);
}

static const struct {
    const char *family;
    int (*settings)(opts *o, const family *f);
    int (*modes)(const opts *o, const family *f);
} k_measures[] = {{"mar", mar_settings, mar_modes}, {"xar", xar_settings, xar_modes}};

static int flowar_bench(int argc, char **argv);

// The --model value, if any, without parsing the rest.
static const char *model_arg(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--model") == 0) return argv[i + 1];
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--model=", 8) == 0) return argv[i] + 8;
    return NULL;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    // FlowAR's section parses its own flags (see the top of this file).
    const char *mp = model_arg(argc, argv);
    if (mp) {
        const family *mf = family_for_preset(mp);
        if (!mf) mf = family_for_file(mp);
        if (strcmp(mf->name, "flowar") == 0) return flowar_bench(argc, argv);
    }
    static opts opt;
    opts *o = &opt;
    int rc = parse(argc, argv, o);
    if (rc) return rc == FLAG_HELP ? 0 : rc;
    if (o->threads) blas_set_threads(o->threads);
    // The family of the preset or file, whose settings the sampling flags are.
    const family *fam = NULL;
    int fi = -1;
    if (o->model) {
        fam = family_for_preset(o->model);
        if (!fam) fam = family_for_file(o->model);
        for (int i = 0; i < (int)(sizeof k_measures / sizeof *k_measures); i++)
            if (strcmp(k_measures[i].family, fam->name) == 0) fi = i;
        if (fi < 0) {
            fprintf(stderr, "disa-bench: --model: %s is a %s model, which this program does not measure\n", o->model,
                    fam->name);
            return 2;
        }
        if ((rc = k_measures[fi].settings(o, fam)) != 0) return rc;
    }
    if (o->p.precision == PRECISION_BF16 && bf16_available() != 0) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    char buf[512];
    printf("disa-bench: %s\n", cpu_blas_describe(buf, sizeof buf));
    if (o->json && !(g_json = fopen(o->json, "w"))) {
        fprintf(stderr, "disa-bench: %s: cannot create: %s\n", o->json, strerror(errno));
        return 1;
    }
    J("{\n  \"blas_core\": \"%s\", \"blas_threads\": %d", blas_corename(), blas_get_threads());
    if (o->sgemm) mode_sgemm(o);
    if (o->bf16_peak && (rc = mode_bf16_peak(o)) != 0) return rc;
    if (o->peak > 0) J(",\n  \"peak_gflops\": %.2f", o->peak);
    if (fam && (rc = k_measures[fi].modes(o, fam)) != 0) return rc;
    J("\n}\n");
    if (g_json && fclose(g_json) != 0) {
        fprintf(stderr, "disa-bench: %s: write failed\n", o->json);
        return 1;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// FlowAR: the per-scale FLOP table and whole runs of the setting and its baseline

typedef struct fbench {
    const char *model, *json;
    flowar_params p, base;
    int precision;  // the shared key; FlowAR refuses bf16 (its family's params_check_precision)
    int batch, run, threads;
    opts sg;  // --sgemm and --peak, as MAR's mode_sgemm reads them
} fbench;

static int fb_usage(FILE *f) {
    fprintf(f, "usage: disa-bench --model flowar_small|flowar_large|flowar_huge|FILE [--flow_upper_steps U]\n"
                    "       [--flow_lower_steps L] [--cfg X] [--guidance G] [--precision fp32|bf16] [--baseline_steps N]\n"
                    "       [--batch B] [--run] [--sgemm [--sgemm_n N] [--sgemm_reps R]] [--peak GFLOPS] [--threads N]\n"
                    "       [--json FILE]\n");
    return f == stdout ? FLAG_HELP : 2;
}

static int fb_parse(int argc, char **argv, fbench *o) {
    memset(o, 0, sizeof *o);
    flowar_params_init(&o->p);
    o->batch = 1, o->sg.sgemm_n = 2048, o->sg.sgemm_reps = 7;
    const char *bsteps = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *f = a + 2, *v = NULL;
        if (flag_is_help(a)) return fb_usage(stdout);
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "disa-bench: unexpected argument '%s'\n", a);
            return fb_usage(stderr);
        }
        if (!strcmp(f, "run")) { o->run = 1; continue; }
        if (!strcmp(f, "sgemm")) { o->sg.sgemm = 1; continue; }
        if (!strcmp(f, "steps") || !strcmp(f, "per-step") || !strcmp(f, "extrapolate") || !strcmp(f, "bf16_check")) {
            fprintf(stderr, "disa-bench: --%s measures MAR's AR steps; for FlowAR models use --run\n", f);
            return 2;
        }
        char name[64];
        const char *eqv = NULL;
        flag_split(a, 1, name, sizeof name, &eqv);
        // Unknown before its value is looked for, so a last unknown flag is named as such.
        static const char *const own[] = {"model", "json", "batch", "threads", "sgemm_n", "sgemm_reps",
                                          "baseline_steps", "peak", NULL};
        if (!flag_in(name, own) && !family_is_sampling_key(name)) {
            fprintf(stderr, "disa-bench: unknown flag '%s' for a FlowAR model (disa-bench --model %s --help lists them)\n",
                    a, model_arg(argc, argv));
            return 2;
        }
        if (flag_value(argc, argv, &i, name, &v) != 0) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 2;
        }
        int r = 0;
        if (!strcmp(name, "model")) o->model = v;
        else if (!strcmp(name, "json")) o->json = v;
        else if (!strcmp(name, "batch")) r = flag_int32(name, v, 1, 4096, &o->batch);
        else if (!strcmp(name, "threads")) r = flag_int32(name, v, 1, 1024, &o->threads);
        else if (!strcmp(name, "sgemm_n")) r = flag_int32(name, v, 64, 16384, &o->sg.sgemm_n);
        else if (!strcmp(name, "sgemm_reps")) r = flag_int32(name, v, 1, 64, &o->sg.sgemm_reps);
        else if (!strcmp(name, "baseline_steps")) bsteps = v;
        else {
            r = !strcmp(name, "peak") ? flag_num("peak", v, 1e-3, 1e9, &o->sg.peak)
                                      : family_precision_set(&o->precision, name, v);
            if (r == DISA_ENOTFOUND) r = flowar_params_set(&o->p, name, v);
            if (r == DISA_ENOTFOUND) r = disa_err(DISA_EINVAL, "'--%s' does not apply to flowar models", name);
        }
        if (r) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 2;
        }
    }
    // The baseline: N flow steps at every scale (no annealing), N = --baseline_steps or
    // the setting's upper count (the official sampler before DiSA: --num_step).
    o->base = o->p;
    char nb[16];
    snprintf(nb, sizeof nb, "%d", o->p.upper);
    if (flowar_params_set(&o->base, "flow_upper_steps", bsteps ? bsteps : nb) ||
        flowar_params_set(&o->base, "flow_lower_steps", bsteps ? bsteps : nb) || flowar_params_check(&o->p) ||
        flowar_params_check(&o->base)) {
        fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
        return 2;
    }
    return 0;
}

// Per image: the FLOP table of a setting, printed one line per scale; totals into *f.
static void fb_table(const flowar_config *c, const flowar_params *p, int B, const char *what, flowar_flops *f) {
    flowar_flops_scale per[FLOWAR_MAX_SCALES];
    char ps[256];
    flowar_flops_run(f, per, c, p, B);
    printf("%s: %s\n  scale  tokens  steps  evaluations  guided  transformer GFLOP  head GFLOP\n", what,
           flowar_params_str(p, ps, sizeof ps));
    for (int s = 0; s < c->n_scales; s++)
        printf("  %5d  %6d  %5d  %11d  %6d  %17.2f  %10.2f\n", s, c->scale[s] * c->scale[s], per[s].n_steps,
               per[s].nfe, per[s].n_guided, per[s].transformer / 1e9 / B, per[s].head / 1e9 / B);
    printf("  total per image: transformer %.1f GFLOP, head %.1f GFLOP, %.2f evaluations per token\n",
           f->transformer / 1e9 / B, f->head / 1e9 / B, (double)f->head_row_steps / (double)f->tokens);
}

// One whole run of B images under p: prints the line, writes the JSON member, *wall.
static int fb_run(const flowar_model *m, const flowar_params *p, int B, double peak, const char *key, const char *label,
                  double *wall) {
    flowar_sampler s;
    ar_rng_philox rng;
    run_batch *rb = batch_new(B, m->cfg.class_num, (size_t)m->cfg.seq_h * m->cfg.seq_h * m->cfg.token_dim);
    if (!rb) return DISA_ENOMEM;
    int rc = flowar_sampler_init(&s, m, p, B);
    if (!rc && (rc = ar_rng_philox_init(&rng, 1, rb->index, B)) != 0) flowar_sampler_free(&s);
    if (rc) goto out;
    const sample_stats *st = &rb->st;
    double t0 = clock_now();
    rc = flowar_sampler_run(&s, &rng.base, rb->labels, B, rb->tokens, &rb->st);
    *wall = clock_now() - t0;
    flowar_sampler_free(&s);
    ar_rng_philox_free(&rng);
    if (rc) goto out;
    flowar_flops f;
    flowar_flops_run(&f, NULL, &m->cfg, p, B);
    int equal = st->flops_transformer == f.transformer && st->flops_head == f.head;
    double gt = st->flops_transformer / st->t_transformer / 1e9, gh = st->flops_head / st->t_head / 1e9;
    double g = (st->flops_transformer + st->flops_head) / *wall / 1e9;
    char ps[256];
    printf("run, %s (batch %d, %s): %.2f s per image; transformer %.2f s, head %.2f s, other %.2f s per batch; "
           "FLOPs counted %s the model\n", label, B, flowar_params_str(p, ps, sizeof ps), *wall / B, st->t_transformer,
           st->t_head, st->t_other, equal ? "equal to" : "DIFFER from");
    pct_line("transformer", gt, peak);
    pct_line("flow head", gh, peak);
    pct_line("sampling (FLOP-weighted)", g, peak);
    J(",\n  \"%s\": {\"wall_s\": %.4f, \"s_per_image\": %.4f, \"t_transformer\": %.4f, \"t_head\": %.4f, "
      "\"t_other\": %.4f, \"flops_transformer\": %llu, \"flops_head\": %llu, \"model_equal\": %s, "
      "\"gflops_transformer\": %.2f, \"gflops_head\": %.2f, \"gflops\": %.2f}", key, *wall, *wall / B,
      st->t_transformer, st->t_head, st->t_other, (unsigned long long)st->flops_transformer,
      (unsigned long long)st->flops_head, equal ? "true" : "false", gt, gh, g);
out:
    batch_delete(rb);
    return rc;
}

static int flowar_bench(int argc, char **argv) {
    fbench o;
    int rc = fb_parse(argc, argv, &o);
    if (rc) return rc == FLAG_HELP ? 0 : rc;
    if (o.threads) blas_set_threads(o.threads);
    {
        const family *f = family_for_preset("flowar_small");
        const int asked_auto = o.precision == PRECISION_AUTO;
        o.precision = family_precision_resolve(f, o.precision, NULL, 0);
        family_params fp;
        memcpy(fp.bytes, &o.p, sizeof o.p);
        if (family_precision_check(f, &fp, o.precision, asked_auto) != 0) {
            fprintf(stderr, "disa-bench: %s\n", disa_errmsg());
            return 2;
        }
    }
    flowar_model m;
    memset(&m, 0, sizeof m);
    int have_weights = 0;
    if (flowar_config_preset(&m.cfg, o.model) != 0) {
        if ((rc = flowar_open(&m, o.model)) != 0) {
            fprintf(stderr, "disa-bench: --model: %s\n", disa_errmsg());
            return rc == DISA_EINVAL ? 2 : 1;
        }
        have_weights = 1;
    }
    if (o.run && !have_weights) {
        fprintf(stderr, "disa-bench: --run needs a model file (build/bin/disa-mkmodel --preset %s --out FILE)\n",
                o.model);
        return 2;
    }
    char buf[512];
    printf("disa-bench: %s\n", cpu_blas_describe(buf, sizeof buf));
    if (o.json && !(g_json = fopen(o.json, "w"))) {
        fprintf(stderr, "disa-bench: %s: cannot create: %s\n", o.json, strerror(errno));
        flowar_close(&m);
        return 1;
    }
    J("{\n  \"family\": \"flowar\", \"blas_core\": \"%s\", \"blas_threads\": %d", blas_corename(), blas_get_threads());
    if (o.sg.sgemm) mode_sgemm(&o.sg);
    if (o.sg.peak > 0) J(",\n  \"peak_gflops\": %.2f", o.sg.peak);
    const flowar_config *c = &m.cfg;
    const int B = o.batch;
    printf("model %s: scales %d (%d tokens), transformer %dx%d / %dx%d, %d heads, flow head %dx%d %s\n", o.model,
           c->n_scales, c->seq_len, c->enc_depth, c->enc_dim, c->dec_depth, c->dec_dim, c->enc_heads, c->diffloss_d,
           c->diffloss_w, c->cross ? "attn-crossattn-mlp" : "attn-mlp");
    flowar_flops fi, fb;
    fb_table(c, &o.p, B, "this config", &fi);
    fb_table(c, &o.base, B, "baseline", &fb);
    double sp = (double)(fb.transformer + fb.head) / (double)(fi.transformer + fi.head);
    printf("predicted speedup vs baseline (equal GFLOPS): sampling %.3fx; head alone %.2fx\n", sp,
           (double)fb.head / (double)fi.head);
    char ps[256], pb[256];
    J(",\n  \"model\": \"%s\", \"batch\": %d, \"config\": \"%s\", \"baseline\": \"%s\"", o.model, B,
      flowar_params_str(&o.p, ps, sizeof ps), flowar_params_str(&o.base, pb, sizeof pb));
    J(",\n  \"flops_per_image\": {\"transformer\": %.6e, \"head\": %.6e, \"total\": %.6e, \"nfe_per_token\": %.4f, "
      "\"scales\": %d}", fi.transformer / (double)B, fi.head / (double)B, (fi.transformer + fi.head) / (double)B,
      (double)fi.head_row_steps / (double)fi.tokens, fi.scales);
    J(",\n  \"baseline_flops_per_image\": {\"transformer\": %.6e, \"head\": %.6e, \"total\": %.6e, "
      "\"nfe_per_token\": %.4f, \"scales\": %d}", fb.transformer / (double)B, fb.head / (double)B,
      (fb.transformer + fb.head) / (double)B, (double)fb.head_row_steps / (double)fb.tokens, fb.scales);
    J(",\n  \"predicted_speedup\": {\"sampling\": %.4f, \"head\": %.4f}", sp, (double)fb.head / (double)fi.head);
    if (o.run) {
        double w, wb;
        if ((rc = fb_run(&m, &o.p, B, o.sg.peak, "run", "this config", &w)) != 0 ||
            (rc = fb_run(&m, &o.base, B, o.sg.peak, "baseline_run", "baseline", &wb)) != 0) {
            fprintf(stderr, "disa-bench: sampling failed: %s\n", disa_errmsg());
            flowar_close(&m);
            return 1;
        }
        printf("DiSA speedup vs baseline: measured %.3fx, predicted by FLOPs %.3fx\n", wb / w, sp);
        J(",\n  \"speedup_measured\": %.4f", wb / w);
    }
    J("\n}\n");
    flowar_close(&m);
    if (g_json && fclose(g_json) != 0) {
        fprintf(stderr, "disa-bench: %s: write failed\n", o.json);
        return 1;
    }
    return 0;
}
