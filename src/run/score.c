// score.c: a job's metrics from its feature shards (include/disa/score.h).
#include "disa/score.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/folder.h"
#include "disa/refstats.h"
#include "disa/safetensors.h"

#include <stdlib.h>
#include <string.h>

// The accumulators one pass over the shards fills.
typedef struct shard_sums {
    fstats fs;
    isc_acc tf, adm;
    int tf_ok;         // torch-fidelity's IS needs at least its 10 splits of images
    int64_t correct;   // images whose top logit is their label (classifier feature nets)
    float *gen_feat;   // [N, D] all features, kept only when the reference has features
} shard_sums;

static int add_shards(shard_sums *s, const job *jb, int D, int NL, int classes) {
    int rc = 0;
    for (int u = 0; !rc && u < job_units(jb); u++) {
        char path[JOB_PATH_MAX + 64];
        folder_shard_path(path, sizeof path, jb, u);
        st_file st;
        const float *feat, *logits;
        int B = job_unit_count(jb, u);
        if ((rc = st_open(&st, path)) != 0) break;
        const st_tensor *lab = st_find(&st, "label");
        if ((rc = st_get_f32(&st, "feat", 2, (int64_t[]){B, D}, &feat)) == 0 &&
            (rc = st_get_f32(&st, "logits", 2, (int64_t[]){B, NL}, &logits)) == 0) {
            int64_t first = job_unit_first(jb, u);
            fstats_add(&s->fs, feat, B);
            if (s->tf_ok) rc = isc_acc_add(&s->tf, logits, NULL, first, B);
            if (!rc) rc = isc_acc_add(&s->adm, logits, NULL, first, B);
            if (s->gen_feat) memcpy(s->gen_feat + (size_t)first * D, feat, sizeof(float) * (size_t)B * D);
            for (int b = 0; NL == classes && lab && b < B; b++) {
                int64_t want;
                memcpy(&want, (const char *)lab->data + 8 * b, 8);
                int best = 0;
                for (int k = 1; k < NL; k++)
                    if (logits[(size_t)b * NL + k] > logits[(size_t)b * NL + best]) best = k;
                s->correct += best == want;
            }
        }
        st_close(&st);
    }
    return rc;
}

// FID against the reference statistics and, when it holds features, precision/recall.
static int score_reference(job_metrics *m, const shard_sums *s, const job *jb, const npy_array *ref_feat, int D) {
    int64_t N = jb->num_images;
    double *rmu = NULL, *rsg = NULL;
    double *gmu = malloc(sizeof(double) * D), *gsg = malloc(sizeof(double) * (size_t)D * D);
    int rc = 0;
    if (!gmu || !gsg) rc = disa_err(DISA_ENOMEM, "out of memory for %d-d statistics", D);
    if (!rc) rc = refstats_read(jb->reference, D, &rmu, &rsg);
    if (!rc) rc = fstats_mu_sigma(&s->fs, gmu, gsg);
    if (!rc) rc = fid_eig(&m->fid, gmu, gsg, rmu, rsg, D);
    fid_sqrtm_info info;
    if (!rc) rc = fid_sqrtm(&m->fid_sqrtm, &info, gmu, gsg, rmu, rsg, D, 1e-6);
    m->have_fid = rc == 0;
    free(rmu);
    free(rsg);
    free(gmu);
    free(gsg);
    if (!rc && s->gen_feat && ref_feat->data && ref_feat->shape[0] > 3 && N > 3) {
        rc = prc_compute(&m->precision, &m->recall, ref_feat->data, ref_feat->shape[0], s->gen_feat, N, D, 3);
        m->have_prc = rc == 0;
    }
    return rc;
}

int score_job(job_metrics *m, const job *jb, const featnet *f, int classes) {
    memset(m, 0, sizeof *m);
    if (!f) return 0;
    double t0 = clock_now();
    int D = f->feat_dim, NL = f->n_logits, rc = 0;
    int64_t N = jb->num_images;
    shard_sums s;
    memset(&s, 0, sizeof s);
    s.tf_ok = N >= 10;
    if ((rc = fstats_init(&s.fs, D)) != 0) return rc;
    if (s.tf_ok && (rc = isc_acc_init_tf(&s.tf, NL, N, 10, 1, 2020)) != 0) goto out_fs;
    if ((rc = isc_acc_init_adm(&s.adm, NL, N, 5000)) != 0) goto out_tf;
    npy_array ref_feat = {0};
    int have_ref_feat = jb->reference[0] && refstats_features(&ref_feat, jb->reference, D) == 0;
    s.gen_feat = have_ref_feat ? malloc(sizeof(float) * (size_t)N * D) : NULL;
    if ((rc = add_shards(&s, jb, D, NL, classes)) != 0) goto out;
    m->have = 1;
    m->n = N;
    if (s.tf_ok && (rc = isc_acc_result(&s.tf, &m->is_mean, &m->is_std)) != 0) goto out;
    if ((rc = isc_acc_result(&s.adm, &m->is_adm, NULL)) != 0) goto out;
    if (NL == classes) {
        m->have_acc = 1;
        m->accuracy = (double)s.correct / (double)N;
    }
    if (jb->reference[0]) rc = score_reference(m, &s, jb, &ref_feat, D);
out:
    free(s.gen_feat);
    npy_free(&ref_feat);
    isc_acc_free(&s.adm);
out_tf:
    if (s.tf_ok) isc_acc_free(&s.tf);
out_fs:
    fstats_free(&s.fs);
    m->seconds = clock_now() - t0;
    return rc;
}
