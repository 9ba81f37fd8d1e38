// disa-stats: FID reference statistics and FID / IS / precision-recall of image sets,
// with the FID Inception-v3 or a disa-classifier-1 CNN as feature net (DESIGN §9).
//
//   disa-stats SOURCE --out REF.npz [--features] [common options]
//       reference statistics: mu, sigma (float64, ddof 1), n; with --features also the
//       features (float32 [N, D]) and logits, as precision/recall references need them
//   disa-stats --fid SOURCE --ref REF.npz [--prc] [common options]
//       FID of SOURCE against REF in torch-fidelity's eigenvalue form and in the sqrtm form
//       of pytorch-fid / the ADM evaluator, the Inception Score both ways, and with --prc
//       precision / recall against REF's stored features
//   disa-stats --export-png DIR SOURCE [--limit N]     write SOURCE's images as PNGs
//   disa-stats --make-random-inception OUT [--seed S]  random-weight Inception (tests, timing)
//
// SOURCE is a folder of PNGs (all *.png, in file-name order as torch-fidelity sorts
// them), an ADM sample batch .npz (arr_0 uint8 [N, H, W, 3], streamed), or an IDX image
// file (.gz allowed; Fashion-MNIST). Common options: --net FILE (default
// $DISA_INCEPTION or models/inception-v3-compat.safetensors), --limit N, --threads T,
// --splits K (IS, 10), --adm-split S (5000).
//
// Distributed like disa-gen: `mpirun -np N disa-stats ...` gives rank r the blocks of
// `batch` consecutive images with (i / batch) % N == r; the float64 sums (statistics,
// IS splits) and the kept features are reduced to rank 0, which writes and prints. Sums
// in another order can change the last bits of FID (~1e-12 relative), nothing more.
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/featpass.h"
#include "disa/flags.h"
#include "disa/path.h"
#include "disa/imgsrc.h"
#include "disa/inception.h"
#include "disa/metrics.h"
#include "disa/refstats.h"
#include "disa/world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_rank, g_size = 1;

// This rank's share of the pass over src, then every share added up on rank 0.
static int shared_pass(featpass *p, featnet *f, const char *src, int64_t limit, int keep, int splits, int adm_split) {
    featpass_opts o = {.limit = limit, .keep = keep, .splits = splits, .adm_split = adm_split, .share = g_rank,
                       .shares = g_size, .verbose = g_rank == 0};
    return world_reduce_featpass(p, f, featpass_run(p, f, src, &o));
}

static int usage(FILE *f) {
    return flag_usage(f,
            "usage: disa-stats SOURCE --out REF.npz [--features] [options]\n"
            "       disa-stats --fid SOURCE --ref REF.npz [--prc] [options]\n"
            "       disa-stats --export-png DIR SOURCE [--limit N]\n"
            "       disa-stats --make-random-inception OUT.safetensors [--seed S]\n"
            "SOURCE: folder of PNGs | ADM sample batch .npz (arr_0) | IDX images file (.gz ok)\n"
            "options: --net FILE (Inception safetensors or disa-classifier-1; default $DISA_INCEPTION or\n"
            "         models/inception-v3-compat.safetensors) --limit N --threads T --splits K (10)\n"
            "         --adm-split S (5000)\n");
}

// ----------------------------------------------------------------------------
// modes

static int write_stats(const char *out, featpass *p, const featnet *f, int features) {
    int D = f->feat_dim, rc;
    double *mu = malloc(sizeof(double) * D), *sigma = malloc(sizeof(double) * (size_t)D * D);
    if (!mu || !sigma) {
        free(mu);
        free(sigma);
        return disa_err(DISA_ENOMEM, "out of memory");
    }
    if ((rc = fstats_mu_sigma(&p->st, mu, sigma)) == 0)
        rc = refstats_write(out, mu, sigma, D, p->n, features ? p->feat : NULL, p->logits, f->n_logits);
    free(mu);
    free(sigma);
    return rc;
}

static int fid_mode(const char *src, const char *ref, featnet *f, int64_t limit, int prc, int splits, int adm_split) {
    featpass p;
    int D = f->feat_dim, rc;
    double *mu = NULL, *sigma = NULL, *rmu = NULL, *rsigma = NULL;
    npy_array rfeat = {0};
    if ((rc = shared_pass(&p, f, src, limit, prc, splits, adm_split)) != 0) goto fail;
    if (g_rank != 0) goto fail;  // rank 0 holds the totals and reports
    printf("images     %lld from %s (%s, %d-d features), %.3f s/image\n", (long long)p.n, src,
           featnet_kind_name(f->kind), D, p.seconds / (double)p.n);
    if ((rc = refstats_read(ref, D, &rmu, &rsigma)) != 0) goto fail;
    mu = malloc(sizeof(double) * D);
    sigma = malloc(sizeof(double) * (size_t)D * D);
    if (!mu || !sigma) {
        rc = disa_err(DISA_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = fstats_mu_sigma(&p.st, mu, sigma)) != 0) goto fail;
    double fe, fs, t0 = clock_now();
    fid_sqrtm_info info;
    if ((rc = fid_eig(&fe, mu, sigma, rmu, rsigma, D)) != 0) goto fail;
    double t1 = clock_now();
    if ((rc = fid_sqrtm(&fs, &info, mu, sigma, rmu, rsigma, D, 1e-6)) != 0) goto fail;
    double t2 = clock_now();
    printf("FID        %.6f  (torch-fidelity eigenvalue form, %.2f s)\n", fe, t1 - t0);
    printf("FID_sqrtm  %.6f  (pytorch-fid / ADM evaluator sqrtm form%s, %.2f s)\n", fs,
           info.offset_used ? ", eps 1e-6 retry" : "", t2 - t1);
    if (p.have_is) {
        double m, s, a;
        if ((rc = isc_acc_result(&p.is_tf, &m, &s)) != 0 || (rc = isc_acc_result(&p.is_adm, &a, NULL)) != 0) goto fail;
        printf("IS         %.6f +- %.6f  (torch-fidelity: %d splits, RandomState(2020) shuffle)\n", m, s, splits);
        printf("IS_adm     %.6f  (ADM evaluator: splits of %d)\n", a, adm_split);
    } else {
        printf("IS         skipped (%lld images < %d splits)\n", (long long)p.n, splits);
    }
    if (prc) {
        if ((rc = refstats_features(&rfeat, ref, D)) != 0) {
            if (rc != DISA_ESHAPE) disa_err_wrap(rc, "--prc needs reference features (make REF with --features): ");
            goto fail;
        }
        double pr, rc2;
        if ((rc = prc_compute(&pr, &rc2, rfeat.data, rfeat.shape[0], p.feat, p.n, D, 3)) != 0) goto fail;
        printf("precision  %.6f  recall %.6f  (k = 3, %lld reference features)\n", pr, rc2, (long long)rfeat.shape[0]);
    }
fail:
    npy_free(&rfeat);
    free(mu);
    free(sigma);
    free(rmu);
    free(rsigma);
    featpass_free(&p);
    return rc;
}

// ----------------------------------------------------------------------------

static int parse_int(const char *flag, const char *v, long long lo, long long hi, long long *out) {
    if (flag_int(flag + 2, v, lo, hi, out) == 0) return 0;  // flag with its dashes
    fprintf(stderr, "disa-stats: %s\n", disa_errmsg());
    return 2;
}

static int run_main(int argc, char **argv);

static int finish(int status) {
    world_finalize();
    return status;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);  // before MPI_Init: it may re-execute the program
    world_init(&argc, &argv, &g_rank, &g_size);
    int status = run_main(argc, argv);
    return finish(status);
}

static int run_main(int argc, char **argv) {
    const char *src = NULL, *out = NULL, *fid = NULL, *ref = NULL, *net = NULL, *export_dir = NULL, *rand_out = NULL;
    long long limit = 0, threads = 0, splits = 10, adm_split = 5000, seed = 1;
    int features = 0, prc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
#define NEED_V() do { if (flag_value(argc, argv, &i, a + 2, &v)) { fprintf(stderr, "disa-stats: %s\n", disa_errmsg()); return 2; } } while (0)
        if (strcmp(a, "--out") == 0) { NEED_V(); out = v; }
        else if (strcmp(a, "--fid") == 0) { NEED_V(); fid = v; }
        else if (strcmp(a, "--ref") == 0) { NEED_V(); ref = v; }
        else if (strcmp(a, "--net") == 0) { NEED_V(); net = v; }
        else if (strcmp(a, "--export-png") == 0) { NEED_V(); export_dir = v; }
        else if (strcmp(a, "--make-random-inception") == 0) { NEED_V(); rand_out = v; }
        else if (strcmp(a, "--features") == 0) features = 1;
        else if (strcmp(a, "--prc") == 0) prc = 1;
        else if (strcmp(a, "--limit") == 0) { NEED_V(); if (parse_int(a, v, 1, 1LL << 40, &limit)) return 2; }
        else if (strcmp(a, "--threads") == 0) { NEED_V(); if (parse_int(a, v, 1, 1024, &threads)) return 2; }
        else if (strcmp(a, "--splits") == 0) { NEED_V(); if (parse_int(a, v, 1, 1000, &splits)) return 2; }
        else if (strcmp(a, "--adm-split") == 0) { NEED_V(); if (parse_int(a, v, 1, 1LL << 30, &adm_split)) return 2; }
        else if (strcmp(a, "--seed") == 0) { NEED_V(); if (parse_int(a, v, 0, 1LL << 53, &seed)) return 2; }
        else if (flag_is_help(a)) return usage(stdout);
        else if (a[0] == '-') {
            fprintf(stderr, "disa-stats: unknown flag '%s' (disa-stats --help lists them)\n", a);
            return 2;
        } else if (!src) src = a;
        else {
            fprintf(stderr, "disa-stats: more than one SOURCE ('%s', '%s')\n", src, a);
            return usage(stderr);
        }
#undef NEED_V
    }
    if (threads) blas_set_threads((int)threads);
    // Where the results go is checked before any image is read.
    int rc = rand_out ? path_check_writable(rand_out, 0, "--make-random-inception")
             : export_dir ? path_check_writable(export_dir, 1, "--export-png")
             : out ? path_check_writable(out, 0, "--out") : 0;
    if (rc) {
        fprintf(stderr, "disa-stats: %s\n", disa_errmsg());
        return 2;
    }
    if (rand_out) {
        rc = g_rank == 0 ? inception_write_random(rand_out, (uint64_t)seed) : 0;
        if (rc == 0 && g_rank == 0)
            printf("wrote random-weight Inception (seed %llu) to %s\n", (unsigned long long)seed, rand_out);
    }
    else if (export_dir) {
        if (!src) return usage(stderr);
        int64_t n = 0;
        rc = g_rank == 0 ? imgsrc_export_png(export_dir, src, limit, &n) : 0;
        if (rc == 0 && g_rank == 0) printf("wrote %lld PNGs to %s\n", (long long)n, export_dir);
    } else {
        if (fid && src) {
            fprintf(stderr, "disa-stats: give the source either as --fid SOURCE or as SOURCE, not both\n");
            return usage(stderr);
        }
        if (!(fid ? ref : out) || !(fid || src)) return usage(stderr);
        if (!net) net = getenv("DISA_INCEPTION");
        if (!net) net = "models/inception-v3-compat.safetensors";
        featnet f;
        if ((rc = featnet_open(&f, net)) != 0) {
            fprintf(stderr, "disa-stats: %s\n---> HINT: pass --net FILE: the FID Inception converted with "
                    "tools/convert_inception.py, or models/fmnist-classifier.safetensors\n", disa_errmsg());
            return disa_exit_status(rc);
        }
        if (fid) rc = fid_mode(fid, ref, &f, limit, prc, (int)splits, (int)adm_split);
        else {
            featpass p;
            rc = shared_pass(&p, &f, src, limit, features, (int)splits, (int)adm_split);
            if (rc == 0 && g_rank == 0) rc = write_stats(out, &p, &f, features);
            if (rc == 0 && g_rank == 0)
                printf("wrote %s: mu, sigma of %lld images (%s, %d-d)%s, %.3f s/image\n", out, (long long)p.n,
                       featnet_kind_name(f.kind), f.feat_dim, features ? ", features, logits" : "",
                       p.seconds / (double)p.n);
            featpass_free(&p);
        }
        featnet_close(&f);
    }
    if (rc) {
        fprintf(stderr, "disa-stats: %s\n", disa_errmsg());
        return disa_exit_status(rc);
    }
    return 0;
}
