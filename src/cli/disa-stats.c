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
#include "disa/dgen.h"
#include "disa/err.h"
#include "disa/idx.h"
#include "disa/image.h"
#include "disa/inception.h"
#include "disa/metrics.h"
#include "disa/npy.h"
#include "disa/refstats.h"
#include "disa/safetensors.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <mpi.h>
#include <zip.h>

static int g_rank, g_size = 1;

static int usage(void) {
    fprintf(stderr,
            "usage: disa-stats SOURCE --out REF.npz [--features] [options]\n"
            "       disa-stats --fid SOURCE --ref REF.npz [--prc] [options]\n"
            "       disa-stats --export-png DIR SOURCE [--limit N]\n"
            "       disa-stats --make-random-inception OUT.safetensors [--seed S]\n"
            "SOURCE: folder of PNGs | ADM sample batch .npz (arr_0) | IDX images file (.gz ok)\n"
            "options: --net FILE (Inception safetensors or disa-classifier-1; default $DISA_INCEPTION or\n"
            "         models/inception-v3-compat.safetensors) --limit N --threads T --splits K (10)\n"
            "         --adm-split S (5000)\n");
    return 2;
}

// ----------------------------------------------------------------------------
// image sources

typedef enum { SRC_DIR, SRC_NPZ, SRC_IDX } src_kind;

typedef struct source {
    src_kind kind;
    const char *path;
    int64_t n;
    // folder
    char **files;
    // npz (arr_0 streamed)
    zip_t *za;
    zip_file_t *zf;
    int h, w, c;
    int64_t next;   // next npz image index
    // idx
    idx_array idx;
    // current image
    image_u8 im;
    uint8_t *pix;   // [h, w, c] of the current image
} source;

static int has_suffix_ci(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    if (a < b) return 0;
    for (size_t i = 0; i < b; i++)
        if (tolower((unsigned char)s[a - b + i]) != suf[i]) return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int open_dir(source *s) {
    DIR *d = opendir(s->path);
    if (!d) return disa_err(DISA_ENOTFOUND, "%s: cannot open folder: %s", s->path, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !has_suffix_ci(e->d_name, ".png")) continue;
        if ((size_t)s->n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **nf = realloc(s->files, cap * sizeof(char *));
            if (!nf) {
                closedir(d);
                return disa_err(DISA_ENOMEM, "%s: out of memory listing files", s->path);
            }
            s->files = nf;
        }
        size_t len = strlen(s->path) + strlen(e->d_name) + 2;
        if (!(s->files[s->n] = malloc(len))) {
            closedir(d);
            return disa_err(DISA_ENOMEM, "%s: out of memory listing files", s->path);
        }
        snprintf(s->files[s->n++], len, "%s/%s", s->path, e->d_name);
    }
    closedir(d);
    // Before the sort: qsort(NULL, 0, ...) is undefined (UBSan, tests/bad_inputs.md).
    if (s->n == 0) return disa_err(DISA_ENOTFOUND, "%s: no .png files", s->path);
    // torch-fidelity sorts the paths as strings; byte order of UTF-8 is code point order.
    qsort(s->files, (size_t)s->n, sizeof(char *), cmp_str);
    return 0;
}

// The .npy header of arr_0: '|u1', C order, shape (N, H, W, 3).
static int npz_header(source *s) {
    uint8_t pre[12];
    if (zip_fread(s->zf, pre, 10) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return disa_err(DISA_EFORMAT, "%s: arr_0.npy is not a .npy entry", s->path);
    size_t hl = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) {
        if (zip_fread(s->zf, pre + 10, 2) != 2) return disa_err(DISA_EFORMAT, "%s: truncated arr_0.npy", s->path);
        hl |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    if (hl > 1 << 16) return disa_err(DISA_EFORMAT, "%s: arr_0.npy header too long", s->path);
    char *h = calloc(hl + 1, 1);
    if (!h) return disa_err(DISA_ENOMEM, "out of memory");
    int rc = 0;
    if (zip_fread(s->zf, h, hl) != (zip_int64_t)hl) rc = disa_err(DISA_EFORMAT, "%s: truncated arr_0.npy header", s->path);
    const char *sh = strstr(h, "'shape':");
    long long N, H, W, C;
    if (!rc && (!strstr(h, "'descr': '|u1'") || !strstr(h, "'fortran_order': False") || !sh ||
                sscanf(sh + 8, " (%lld, %lld, %lld, %lld)", &N, &H, &W, &C) != 4 || N < 1 || H < 1 || W < 1 ||
                H > 1024 || W > 1024 || (C != 3 && C != 1)))
        rc = disa_err(DISA_EFORMAT, "%s: arr_0 must be uint8 [N, H, W, 3] in C order (an ADM sample batch); header: %s",
                      s->path, h);
    free(h);
    if (rc) return rc;
    s->n = N, s->h = (int)H, s->w = (int)W, s->c = (int)C;
    return 0;
}

static int source_open(source *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    struct stat st;
    if (stat(path, &st) != 0) return disa_err(DISA_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        s->kind = SRC_DIR;
        return open_dir(s);
    }
    if (has_suffix_ci(path, ".npz")) {
        s->kind = SRC_NPZ;
        int zerr = 0;
        if (!(s->za = zip_open(path, ZIP_RDONLY, &zerr))) return disa_err(DISA_EFORMAT, "%s: cannot open as .npz", path);
        if (!(s->zf = zip_fopen(s->za, "arr_0.npy", 0)))
            return disa_err(DISA_ENOTFOUND, "%s: no arr_0 (not an ADM sample batch)", path);
        int rc = npz_header(s);
        if (rc) return rc;
        s->pix = malloc((size_t)s->h * s->w * s->c);
        return s->pix ? 0 : disa_err(DISA_ENOMEM, "out of memory");
    }
    s->kind = SRC_IDX;
    int rc = idx_read(&s->idx, path);
    if (rc) return rc;
    if (s->idx.ndim != 3)
        return disa_err(DISA_EFORMAT, "%s: IDX images must be [N, H, W], got %d dims", path, s->idx.ndim);
    s->n = s->idx.shape[0], s->h = (int)s->idx.shape[1], s->w = (int)s->idx.shape[2], s->c = 1;
    return 0;
}

// Image i (called with i = 0, 1, 2, ... in order): *pix [h, w, c] valid until the next call.
static int source_get(source *s, int64_t i, const uint8_t **pix, int *h, int *w, int *c) {
    switch (s->kind) {
    case SRC_DIR: {
        image_u8_free(&s->im);
        int rc = png_read_u8(&s->im, s->files[i]);
        if (rc) return rc;
        *pix = s->im.data, *h = s->im.h, *w = s->im.w, *c = s->im.c;
        return 0;
    }
    case SRC_NPZ: {
        size_t n = (size_t)s->h * s->w * s->c;
        if (i != s->next || zip_fread(s->zf, s->pix, n) != (zip_int64_t)n)
            return disa_err(DISA_EFORMAT, "%s: arr_0 truncated at image %lld", s->path, (long long)i);
        s->next++;
        *pix = s->pix, *h = s->h, *w = s->w, *c = s->c;
        return 0;
    }
    case SRC_IDX:
        *pix = s->idx.data + (size_t)i * s->h * s->w, *h = s->h, *w = s->w, *c = 1;
        return 0;
    }
    return DISA_EINTERNAL;
}

static void source_close(source *s) {
    for (int64_t i = 0; s->files && i < s->n; i++) free(s->files[i]);
    free(s->files);
    if (s->zf) zip_fclose(s->zf);
    if (s->za) zip_discard(s->za);
    idx_free(&s->idx);
    image_u8_free(&s->im);
    free(s->pix);
    memset(s, 0, sizeof *s);
}

// ----------------------------------------------------------------------------
// one pass over a source: statistics, IS accumulators, optionally all features

typedef struct pass {
    int64_t n;
    fstats st;
    isc_acc is_tf, is_adm;
    int have_is;
    float *feat, *logits;   // [n, D], [n, C] when kept
    double seconds;
} pass;

static int run_pass(pass *p, featnet *f, const char *path, int64_t limit, int keep, int splits, int adm_split) {
    memset(p, 0, sizeof *p);
    source s;
    int rc = source_open(&s, path);
    if (rc) goto fail;
    p->n = limit > 0 && limit < s.n ? limit : s.n;
    if ((rc = fstats_init(&p->st, f->feat_dim)) != 0) goto fail;
    p->have_is = p->n >= splits;
    if (p->have_is && ((rc = isc_acc_init_tf(&p->is_tf, f->n_logits, p->n, splits, 1, 2020)) != 0 ||
                       (rc = isc_acc_init_adm(&p->is_adm, f->n_logits, p->n, adm_split)) != 0))
        goto fail;
    float *feat = malloc(sizeof(float) * (size_t)f->feat_dim * f->batch);
    float *logits = malloc(sizeof(float) * (size_t)f->n_logits * f->batch);
    uint8_t *batch = NULL;
    size_t batch_cap = 0;
    if (keep) {
        p->feat = calloc((size_t)f->feat_dim * p->n, sizeof(float));
        p->logits = calloc((size_t)f->n_logits * p->n, sizeof(float));
    }
    if (!feat || !logits || (keep && (!p->feat || !p->logits))) {
        free(feat);
        free(logits);
        rc = disa_err(DISA_ENOMEM, "out of memory for the features of %lld images", (long long)p->n);
        goto fail;
    }
    double t0 = clock_now();
    // Images are gathered into batches of equal size (the CNN runs 64 at a time).
    int bh = 0, bw = 0, bc = 0, nb = 0;
    int64_t first = 0;
    for (int64_t i = 0; i <= p->n && rc == 0; i++) {
        const uint8_t *pix = NULL;
        int h = 0, w = 0, c = 0;
        int mine = i < p->n && (i / f->batch) % g_size == g_rank;
        if (mine && (rc = source_get(&s, i, &pix, &h, &w, &c)) != 0) break;
        int flush = nb > 0 && (i == p->n || !mine || nb == f->batch || h != bh || w != bw || c != bc);
        if (flush) {
            if ((rc = featnet_run(f, feat, logits, batch, nb, bh, bw, bc)) != 0) {
                disa_err_wrap(rc, "%s, image %lld: ", path, (long long)first);
                break;
            }
            fstats_add(&p->st, feat, nb);
            if (p->have_is) {
                isc_acc_add(&p->is_tf, logits, NULL, first, nb);
                isc_acc_add(&p->is_adm, logits, NULL, first, nb);
            }
            if (keep) {
                memcpy(p->feat + (size_t)first * f->feat_dim, feat, sizeof(float) * (size_t)nb * f->feat_dim);
                memcpy(p->logits + (size_t)first * f->n_logits, logits, sizeof(float) * (size_t)nb * f->n_logits);
            }
            nb = 0;
        }
        if (i == p->n) break;
        if (!mine) continue;
        size_t sz = (size_t)h * w * c;
        if (nb == 0) {
            bh = h, bw = w, bc = c, first = i;
            if (sz * f->batch > batch_cap) {
                free(batch);
                batch_cap = sz * f->batch;
                if (!(batch = malloc(batch_cap))) {
                    rc = disa_err(DISA_ENOMEM, "out of memory for a batch of %dx%d images", h, w);
                    break;
                }
            }
        }
        memcpy(batch + (size_t)nb * sz, pix, sz);
        nb++;
        if ((i + 1) % 1000 == 0 && g_rank == 0)
            fprintf(stderr, "disa-stats: %lld / %lld images\n", (long long)i + 1, (long long)p->n);
    }
    p->seconds = clock_now() - t0;
    free(feat);
    free(logits);
    free(batch);
fail:
    source_close(&s);
    // Every rank must agree before the reductions, or a failed rank leaves the rest waiting.
    int ok = rc == 0, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (!all_ok) return rc ? rc : disa_err(DISA_EIO, "another rank failed (see its message)");
    if (g_size > 1) {
        // Rank 0 ends with the totals; the other ranks' shares are then no longer needed.
        int root = g_rank == 0;
        int64_t d = p->st.dim;
        MPI_Reduce(root ? MPI_IN_PLACE : &p->st.n, &p->st.n, 1, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        MPI_Reduce(root ? MPI_IN_PLACE : p->st.sum, p->st.sum, (int)d, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        for (int64_t r = 0; r < d; r++)  // row by row: d*d may exceed an int count
            MPI_Reduce(root ? MPI_IN_PLACE : p->st.sxx + r * d, p->st.sxx + r * d, (int)d, MPI_DOUBLE, MPI_SUM, 0,
                       MPI_COMM_WORLD);
        isc_acc *acc[2] = {&p->is_tf, &p->is_adm};
        for (int k = 0; p->have_is && k < 2; k++) {
            isc_acc *a = acc[k];
            MPI_Reduce(root ? MPI_IN_PLACE : a->count, a->count, a->splits, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
            MPI_Reduce(root ? MPI_IN_PLACE : a->ent, a->ent, a->splits, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
            for (int sp = 0; sp < a->splits; sp++)
                MPI_Reduce(root ? MPI_IN_PLACE : a->psum + (size_t)sp * a->C, a->psum + (size_t)sp * a->C, a->C,
                           MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        }
        // Kept features: each rank filled its own rows and left the rest zero.
        for (int64_t i = 0; keep && i < p->n; i++) {
            MPI_Reduce(root ? MPI_IN_PLACE : p->feat + i * f->feat_dim, p->feat + i * f->feat_dim, f->feat_dim,
                       MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
            MPI_Reduce(root ? MPI_IN_PLACE : p->logits + i * f->n_logits, p->logits + i * f->n_logits, f->n_logits,
                       MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
        }
    }
    return 0;
}

static void pass_free(pass *p) {
    fstats_free(&p->st);
    if (p->have_is) {
        isc_acc_free(&p->is_tf);
        isc_acc_free(&p->is_adm);
    }
    free(p->feat);
    free(p->logits);
    memset(p, 0, sizeof *p);
}

// ----------------------------------------------------------------------------
// modes

static int write_stats(const char *out, pass *p, const featnet *f, int features) {
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
    pass p;
    int D = f->feat_dim, rc;
    double *mu = NULL, *sigma = NULL, *rmu = NULL, *rsigma = NULL;
    npy_array rfeat = {0};
    if ((rc = run_pass(&p, f, src, limit, prc, splits, adm_split)) != 0) goto fail;
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
    pass_free(&p);
    return rc;
}

static int export_png(const char *dir, const char *src, int64_t limit) {
    source s;
    int rc = source_open(&s, src);
    if (rc) goto fail;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = disa_err(DISA_EIO, "%s: cannot create folder: %s", dir, strerror(errno));
        goto fail;
    }
    int64_t n = limit > 0 && limit < s.n ? limit : s.n;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        const uint8_t *pix;
        int h, w, c;
        char name[4096];
        if ((rc = source_get(&s, i, &pix, &h, &w, &c)) != 0) break;
        if ((rc = image_name(name, sizeof name, dir, i)) != 0) break;
        rc = png_write_u8(name, pix, w, h, c, NULL, 0);
    }
    if (rc == 0) printf("wrote %lld PNGs to %s\n", (long long)n, dir);
fail:
    source_close(&s);
    return rc;
}

// Random-weight Inception with the official tensor names (dgen, He-uniform convolutions,
// BatchNorm near identity), for tests and timing where the real weights are absent.
static int make_random_inception(const char *out, uint64_t seed) {
    inception_model m;
    memset(&m, 0, sizeof m);
    st_bind_entry *tab = NULL;
    char *names = NULL;
    int n, rc = inception_tensor_table(&m, &tab, &names, &n);
    if (rc) return rc;
    st_writer *w = st_writer_new();
    float **bufs = calloc((size_t)n, sizeof(float *));
    if (!w || !bufs) {
        rc = disa_err(DISA_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        size_t cnt = 1;
        for (int d = 0; d < tab[i].ndim; d++) cnt *= (size_t)tab[i].shape[d];
        if (!(bufs[i] = malloc(cnt * sizeof(float)))) {
            rc = disa_err(DISA_ENOMEM, "out of memory");
            break;
        }
        const char *nm = tab[i].name;
        size_t L = strlen(nm);
        double scale = 0.1, off = 0;
        if (tab[i].ndim == 4) scale = sqrt(6.0 / (double)(tab[i].shape[1] * tab[i].shape[2] * tab[i].shape[3]));
        else if (L > 9 && strcmp(nm + L - 9, "bn.weight") == 0) scale = 0.25, off = 1;
        else if (L > 14 && strcmp(nm + L - 14, "bn.running_var") == 0) scale = 0.5, off = 1;
        else if (strcmp(nm, "fc.weight") == 0) scale = sqrt(3.0 / 2048);
        dgen_fill(bufs[i], cnt, seed + (uint64_t)i, scale);
        for (size_t k = 0; off != 0 && k < cnt; k++) bufs[i][k] = (float)(off + bufs[i][k]);
        rc = st_writer_add(w, nm, ST_F32, tab[i].ndim, tab[i].shape, bufs[i]);
    }
    if (rc == 0) rc = st_writer_meta(w, "config", "{\"format\":\"disa-inception-1\",\"random\":true}");
    if (rc == 0) rc = st_writer_write(w, out);
    if (rc == 0) printf("wrote random-weight Inception (seed %llu) to %s\n", (unsigned long long)seed, out);
fail:
    for (int i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    st_writer_delete(w);
    free(tab);
    free(names);
    return rc;
}

// ----------------------------------------------------------------------------

static int parse_int(const char *flag, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "disa-stats: %s must be an integer in %lld..%lld, got '%s'\n", flag, lo, hi, v);
        return 2;
    }
    *out = x;
    return 0;
}

static int run_main(int argc, char **argv);

static int finish(int status) {
    MPI_Finalize();
    return status;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);  // before MPI_Init: it may re-execute the program
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    int status = run_main(argc, argv);
    return finish(status);
}

static int run_main(int argc, char **argv) {
    const char *src = NULL, *out = NULL, *fid = NULL, *ref = NULL, *net = NULL, *export_dir = NULL, *rand_out = NULL;
    long long limit = 0, threads = 0, splits = 10, adm_split = 5000, seed = 1;
    int features = 0, prc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_V() do { if (!v) { fprintf(stderr, "disa-stats: %s needs a value\n", a); return usage(); } i++; } while (0)
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
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return usage();
        else if (a[0] == '-') {
            fprintf(stderr, "disa-stats: unknown option '%s'\n", a);
            return usage();
        } else if (!src) src = a;
        else {
            fprintf(stderr, "disa-stats: more than one SOURCE ('%s', '%s')\n", src, a);
            return usage();
        }
#undef NEED_V
    }
    if (threads) blas_set_threads((int)threads);
    int rc;
    if (rand_out) rc = g_rank == 0 ? make_random_inception(rand_out, (uint64_t)seed) : 0;
    else if (export_dir) {
        if (!src) return usage();
        rc = g_rank == 0 ? export_png(export_dir, src, limit) : 0;
    } else {
        if (fid && src) {
            fprintf(stderr, "disa-stats: give the source either as --fid SOURCE or as SOURCE, not both\n");
            return usage();
        }
        if (!(fid ? ref : out) || !(fid || src)) return usage();
        if (!net) net = getenv("DISA_INCEPTION");
        if (!net) net = "models/inception-v3-compat.safetensors";
        featnet f;
        if ((rc = featnet_open(&f, net)) != 0) {
            fprintf(stderr, "disa-stats: %s\n---> HINT: pass --net FILE: the FID Inception converted with "
                    "tools/convert_inception.py, or models/fmnist-classifier.safetensors\n", disa_errmsg());
            return 1;
        }
        if (fid) rc = fid_mode(fid, ref, &f, limit, prc, (int)splits, (int)adm_split);
        else {
            pass p;
            rc = run_pass(&p, &f, src, limit, features, (int)splits, (int)adm_split);
            if (rc == 0 && g_rank == 0) rc = write_stats(out, &p, &f, features);
            if (rc == 0 && g_rank == 0)
                printf("wrote %s: mu, sigma of %lld images (%s, %d-d)%s, %.3f s/image\n", out, (long long)p.n,
                       featnet_kind_name(f.kind), f.feat_dim, features ? ", features, logits" : "",
                       p.seconds / (double)p.n);
            pass_free(&p);
        }
        featnet_close(&f);
    }
    if (rc) {
        fprintf(stderr, "disa-stats: %s\n", disa_errmsg());
        return 1;
    }
    return 0;
}
