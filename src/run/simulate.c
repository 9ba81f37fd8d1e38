// simulate.c: the simulated unit of disa-gen --simulate (include/disa/simulate.h) and
// its settings.
#include "disa/simulate.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/rng.h"
#include "disa/unit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Streams of a simulation, apart from every stream a real run draws from.
enum { SIM_PURPOSE_TIME = 0x51A0, SIM_PURPOSE_FEATURES = 0x51A1 };

// A number in [lo, hi] that is the whole of `text`; -1 otherwise.
static int number(const char *text, double lo, double hi, double *out) {
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

int sim_parse(sim_spec *s, const char *text) {
    memset(s, 0, sizeof *s);
    char buf[64];
    if (strlen(text) >= sizeof buf) goto bad;
    snprintf(buf, sizeof buf, "%s", text);
    char *colon = strchr(buf, ':');
    if (colon) {
        *colon = '\0';
        if (number(colon + 1, 0, 0.9, &s->spread) != 0) goto bad;
    }
    if (strncmp(buf, "flops", 5) == 0) {
        if (buf[5] == '@' && number(buf + 6, 0.001, 1e6, &s->gflops) != 0) goto bad;
        if (buf[5] != '@' && buf[5] != '\0') goto bad;
    } else if (number(buf, 1e-6, 1e6, &s->s_per_image) != 0) {
        goto bad;
    }
    s->on = 1;
    return 0;
bad:
    memset(s, 0, sizeof *s);
    return disa_err(DISA_EINVAL, "--simulate must be SECONDS[:SPREAD] (seconds per image in 1e-6..1e6) or "
                    "flops[@GFLOPS][:SPREAD] (the FLOP model at GFLOPS per rank, measured when absent), SPREAD in "
                    "0..0.9; got '%s'", text);
}

const char *sim_str(const sim_spec *s, char *buf, int n) {
    if (!s->on) snprintf(buf, (size_t)n, "off");
    else if (s->s_per_image > 0) snprintf(buf, (size_t)n, "%.9g:%.9g", s->s_per_image, s->spread);
    else snprintf(buf, (size_t)n, "flops@%.9g:%.9g", s->gflops, s->spread);
    return buf;
}

double sim_unit_seconds(const sim_spec *s, double s_image, uint64_t seed, int unit, int unit_count) {
    rng_stream r;
    rng_init(&r, seed, (uint32_t)unit, SIM_PURPOSE_TIME);
    double v = 2 * rng_uniform(&r) - 1;
    return unit_count * s_image * (1 + s->spread * v);
}

// ----------------------------------------------------------------------------
// the simulated unit

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

// The wait of the unit, in slices with the poll hook between them. Progress is the time
// spent sleeping (an oversleep counts, as a slow step of a real sampler would); the time
// the poll hook takes does not, so answering messages delays the unit.
static int wait_unit(double seconds, int slices, double min_slice, sample_poll_fn poll, void *poll_ctx) {
    double slice = seconds / (slices > 0 ? slices : 1), left = seconds;
    if (slice < min_slice) slice = min_slice;
    while (left > 0) {
        double t0 = clock_now();
        sleep_s(left < slice ? left : slice);
        left -= clock_now() - t0;
        if (poll && poll(poll_ctx)) return DISA_ECANCELED;
    }
    return 0;
}

int unit_simulate(unit_runner *ur, int j, int u, sample_poll_fn poll, void *poll_ctx, unit_report *r) {
    const job *jb = &ur->jobs->jobs[j];
    const unit_job *uj = &ur->job[j];
    int first = job_unit_first(jb, u), B = job_unit_count(jb, u), rc;
    double t0 = clock_now();
    double seconds = sim_unit_seconds(&jb->sim, uj->sim_s_image, jb->seed, u, B);
    // Rank 0 answers the other ranks from its poll hook, as finely as the real sampler
    // would; the others only look for an ABORT there.
    double min_slice = ur->rank == 0 ? 0 : 0.05;
    if ((rc = wait_unit(seconds, uj->sim_polls, min_slice, poll, poll_ctx)) != 0) return rc;
    double t1 = clock_now();
    r->t_other = t1 - t0;
    // What the FLOP model says this unit would have computed.
    r->flops_transformer = (uint64_t)(B * uj->sim_flops.transformer);
    r->flops_head = (uint64_t)(B * uj->sim_flops.head);
    r->tokens = (uint64_t)B * (uint64_t)uj->info.token_dims[0];
    r->head_row_steps = (uint64_t)(r->tokens * uj->sim_flops.nfe_per_token);
    if (uj->feat) {
        int labels[JOB_MAX_EVAL_BSZ];
        const featnet *f = uj->feat;
        for (int b = 0; b < B; b++) {
            rng_stream s;
            rng_init(&s, jb->seed, (uint32_t)(first + b), SIM_PURPOSE_FEATURES);
            rng_normals(&s, ur->feat_buf + (size_t)b * f->feat_dim, (size_t)f->feat_dim);
            rng_normals(&s, ur->logit_buf + (size_t)b * f->n_logits, (size_t)f->n_logits);
            labels[b] = job_label(jb, first + b, uj->info.class_num);
        }
        if ((rc = unit_write_shard(ur, j, u, labels, B)) != 0) return rc;
    }
    r->t_features = clock_now() - t1;
    return 0;
}
