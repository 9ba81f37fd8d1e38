// featpass.c: a feature net over an image source (include/disa/featpass.h).
#include "disa/featpass.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/imgsrc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Images gathered for one featnet_run: equal sizes, consecutive indices from `first`.
typedef struct batch {
    uint8_t *pix;
    size_t cap;
    int n, h, w, c;
    int64_t first;
    float *feat, *logits;   // the net's output for the batch
} batch;

static int accumulators_init(featpass *p, const featnet *f, const featpass_opts *o) {
    int rc = fstats_init(&p->st, f->feat_dim);
    if (rc) return rc;
    p->have_is = p->n >= o->splits;
    if (p->have_is && ((rc = isc_acc_init_tf(&p->is_tf, f->n_logits, p->n, o->splits, 1, 2020)) != 0 ||
                       (rc = isc_acc_init_adm(&p->is_adm, f->n_logits, p->n, o->adm_split)) != 0))
        return rc;
    if (o->keep) {
        p->feat = calloc((size_t)f->feat_dim * p->n, sizeof(float));
        p->logits = calloc((size_t)f->n_logits * p->n, sizeof(float));
    }
    if (o->keep && (!p->feat || !p->logits))
        return disa_err(DISA_ENOMEM, "out of memory for the features of %lld images", (long long)p->n);
    return 0;
}

// Run the net on the gathered images and add them to every accumulator.
static int flush(featpass *p, featnet *f, batch *b, const char *path) {
    int rc = featnet_run(f, b->feat, b->logits, b->pix, b->n, b->h, b->w, b->c);
    if (rc) return disa_err_wrap(rc, "%s, image %lld: ", path, (long long)b->first);
    fstats_add(&p->st, b->feat, b->n);
    if (p->have_is) {
        isc_acc_add(&p->is_tf, b->logits, NULL, b->first, b->n);
        isc_acc_add(&p->is_adm, b->logits, NULL, b->first, b->n);
    }
    if (p->feat) {
        memcpy(p->feat + (size_t)b->first * f->feat_dim, b->feat, sizeof(float) * (size_t)b->n * f->feat_dim);
        memcpy(p->logits + (size_t)b->first * f->n_logits, b->logits, sizeof(float) * (size_t)b->n * f->n_logits);
    }
    b->n = 0;
    return 0;
}

// Image i (h x w x c) becomes the next of the batch; a new batch starts at `first` = i.
static int gather(batch *b, const featnet *f, const uint8_t *pix, int64_t i, int h, int w, int c) {
    size_t sz = (size_t)h * w * c;
    if (b->n == 0) {
        b->h = h, b->w = w, b->c = c, b->first = i;
        if (mem_reserve(&b->pix, &b->cap, sz * f->batch))
            return disa_err(DISA_ENOMEM, "out of memory for a batch of %dx%d images", h, w);
    }
    memcpy(b->pix + (size_t)b->n * sz, pix, sz);
    b->n++;
    return 0;
}

int featpass_run(featpass *p, featnet *f, const char *path, const featpass_opts *o) {
    memset(p, 0, sizeof *p);
    imgsrc s;
    batch b = {0};
    int rc = imgsrc_open(&s, path);
    if (rc) goto out;
    p->n = o->limit > 0 && o->limit < s.n ? o->limit : s.n;
    if ((rc = accumulators_init(p, f, o)) != 0) goto out;
    b.feat = malloc(sizeof(float) * (size_t)f->feat_dim * f->batch);
    b.logits = malloc(sizeof(float) * (size_t)f->n_logits * f->batch);
    if (!b.feat || !b.logits) {
        rc = disa_err(DISA_ENOMEM, "out of memory for the features of %lld images", (long long)p->n);
        goto out;
    }
    double t0 = clock_now();
    // Images are gathered into batches of equal size (the CNN runs 64 at a time); a
    // batch ends at another share's block, at a size change and at the end.
    for (int64_t i = 0; i <= p->n && rc == 0; i++) {
        const uint8_t *pix = NULL;
        int h = 0, w = 0, c = 0;
        int mine = i < p->n && (i / f->batch) % o->shares == o->share;
        if (mine && (rc = imgsrc_get(&s, i, &pix, &h, &w, &c)) != 0) break;
        if (b.n > 0 && (i == p->n || !mine || b.n == f->batch || h != b.h || w != b.w || c != b.c) &&
            (rc = flush(p, f, &b, path)) != 0)
            break;
        if (i == p->n || !mine) continue;
        if ((rc = gather(&b, f, pix, i, h, w, c)) != 0) break;
        if ((i + 1) % 1000 == 0 && o->verbose)
            fprintf(stderr, "disa-stats: %lld / %lld images\n", (long long)i + 1, (long long)p->n);
    }
    p->seconds = clock_now() - t0;
out:
    free(b.pix);
    free(b.feat);
    free(b.logits);
    imgsrc_close(&s);
    return rc;
}

void featpass_free(featpass *p) {
    fstats_free(&p->st);
    if (p->have_is) {
        isc_acc_free(&p->is_tf);
        isc_acc_free(&p->is_adm);
    }
    free(p->feat);
    free(p->logits);
    memset(p, 0, sizeof *p);
}

int featpass_spans(featpass *p, const featnet *f, metric_span *out) {
    int n = 0;
    fstats_spans(&p->st, out);
    n += FSTATS_SPANS;
    if (p->have_is) {
        isc_acc_spans(&p->is_tf, out + n);
        n += ISC_ACC_SPANS;
        isc_acc_spans(&p->is_adm, out + n);
        n += ISC_ACC_SPANS;
    }
    // Kept features: each share filled its own rows and left the rest zero.
    if (p->feat) {
        out[n++] = (metric_span){SPAN_F32, p->feat, (size_t)p->n * f->feat_dim, (size_t)f->feat_dim};
        out[n++] = (metric_span){SPAN_F32, p->logits, (size_t)p->n * f->n_logits, (size_t)f->n_logits};
    }
    return n;
}
