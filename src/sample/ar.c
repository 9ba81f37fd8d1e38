// ar.c: MAR's AR loop with DiSA step annealing.
// Mirrors Qinyu-Allen-Zhao/DiSA MAR_DiSA models/mar.py: MAR.sample_tokens and
// models/diffloss.py: DiffLoss.sample / SimpleMLPAdaLN.forward_with_cfg (DESIGN §5-7).
#include "disa/sampler.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/head.h"
#include "disa/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sample_params_steps_at(const sample_params *p, const int *table, int s) {
    return p->sampler == GD_SAMPLER_DEFAULT ? p->upper : table[s];
}

// ----------------------------------------------------------------------------
// sampler

size_t sampler_scratch_bytes(const mar_model *m, int max_batch, int cfg) {
    const mar_config *c = &m->cfg;
    int B2 = cfg ? 2 * max_batch : max_batch;
    size_t rows = (size_t)B2 * c->seq_len;
    // mar_forward and diffloss_forward at the most rows a step can have, then what run()
    // takes: z [rows, dec], ce [rows, w], te [w], x and out [rows, C] and [rows, 2C], eps,
    // var and noise [rows, C] (generous: they need only half the rows with CFG), orders and
    // pred [B, L] ints, known [B, L] bytes, and alignment slack.
    return mar_forward_scratch_bytes(c, B2) + diffloss_scratch_bytes(&m->head, (int)rows) +
           sizeof(float) * (rows * c->dec_dim + rows * m->head.w + rows * 2 * c->token_dim * 2 +
                            rows * c->token_dim * 3 + m->head.w) +
           sizeof(int) * (size_t)max_batch * c->seq_len * 3 + (size_t)max_batch * c->seq_len + 64 * 64;
}

mask_step mar_mask_step(int L, int K, int step, int n_unknown) {
    mask_step ms;
    // Mask schedule (MaskGIT cosine): float64 like numpy, then the clamp.
    double ratio = cos(M_PI / 2.0 * (step + 1) / K);
    ms.mask_len = (int)floor(L * ratio);
    if (ms.mask_len > n_unknown - 1) ms.mask_len = n_unknown - 1;
    if (ms.mask_len < 1) ms.mask_len = 1;
    // The unknown set is always a prefix of the order: predict order[mask_len..n_unknown)
    // now (all of the remaining ones at the last step).
    ms.lo = step >= K - 1 ? 0 : ms.mask_len;
    ms.n_pred = n_unknown - ms.lo;
    return ms;
}

int head_work_alloc(head_work *w, arena *a, const diffloss_net *h, int R, int cfg) {
    int R2 = cfg ? 2 * R : R, C = h->C;
    w->te = arena_floats(a, (size_t)h->w);
    w->out = arena_floats(a, (size_t)R2 * 2 * C);
    w->eps = arena_floats(a, (size_t)R * C);
    w->var = arena_floats(a, (size_t)R * C);
    return w->te && w->out && w->eps && w->var ? 0 : DISA_ENOMEM;
}

// A NaN or Inf in a step's output would make black images with no error (an untrained or
// diverged model overflowing, not a damaged file: those are refused at load). Stop the
// run instead, naming the step and the tensor; the caller adds the unit. Costs one pass
// over R x C floats per diffusion step.
static int check_finite(const float *x, size_t n, int row_len, int step, const char *what, int timestep) {
    size_t at = tensor_first_nonfinite(x, n);
    if (at == n) return 0;
    char when[48] = "";
    if (timestep >= 0) snprintf(when, sizeof when, " at diffusion timestep %d", timestep);
    return disa_err(DISA_ERANGE, "AR step %d: %s holds %s%s (row %zu, value %zu): the model's activations overflowed",
                    step, what, x[at] != x[at] ? "NaN" : "Inf", when, at / (size_t)row_len, at % (size_t)row_len);
}

int mar_head_step(const diffloss_net *h, arena *a, const head_work *w, float *x, const float *ce, const float *noise,
                  const gd_tables *tb, int i, const head_step_opts *o, int R) {
    const int C = h->C, R2 = o->cfg ? 2 * R : R;
    if (o->cfg) memcpy(x + (size_t)R * C, x, sizeof(float) * (size_t)R * C);
    int rc = diffloss_time(h, w->te, (float)tb->timestep_map[i]);
    if (!rc) rc = diffloss_forward(h, a, w->out, x, w->te, ce, R2);
    if (rc) return rc;
    // eps (guided) and the learned variance of the conditional half.
    head_split_out(w->eps, w->var, w->out, R, C, o->cfg, o->cfg_scale);
    if (o->sampler == GD_SAMPLER_DDIM)
        gd_ddim_step(x, w->eps, tb, i, R, C);
    else
        gd_ddpm_step(x, w->eps, w->var, noise, tb, i, o->temperature, R, C);
    return 0;
}

int sampler_init(sampler *s, const mar_model *m, const sample_params *p, int max_batch) {
    memset(s, 0, sizeof *s);
    int rc = sample_params_check(p);
    if (rc) return rc;
    if (max_batch < 1) return disa_err(DISA_ERANGE, "batch size must be >= 1, got %d", max_batch);
    precision_kind want = precision_resolve(p->precision, NULL, 0);
    if (m->precision != want)
        return disa_err(DISA_EINVAL, "sampler: the sampling asks for %s but the model is prepared for %s (mar_prepare)",
                        precision_name(want), precision_name(m->precision));
    if ((rc = sample_params_check_precision(p, want, p->precision == PRECISION_AUTO)) != 0) return rc;
    s->m = m;
    s->p = *p;
    s->p.precision = want;
    s->max_batch = max_batch;
    const int K = p->num_iter, dpm = gd_sampler_is_dpm(p->sampler);
    const int adaptive = p->adaptive && p->sampler != GD_SAMPLER_DEFAULT;
    s->p.adaptive = adaptive;  // "default" ignores the strategy
    s->steps = calloc((size_t)K, sizeof(int));
    s->tables = calloc((size_t)p->upper + 1, sizeof(gd_tables));
    s->plans = dpm ? calloc((size_t)p->upper + 1, sizeof(dpm_plan)) : NULL;
    s->astate = adaptive ? calloc((size_t)max_batch, sizeof(adapt_state)) : NULL;
    if (!s->steps || !s->tables || (dpm && !s->plans) || (adaptive && !s->astate)) {
        rc = disa_err(DISA_ENOMEM, "sampler: out of memory");
        goto fail;
    }
    if (p->sampler == GD_SAMPLER_DEFAULT || adaptive) {
        for (int i = 0; i < K; i++) s->steps[i] = p->upper;
    } else if ((rc = disa_steps_for(s->steps, K, p->upper, p->lower, p->strategy)) != 0) {
        goto fail;
    }
    if (dpm && (rc = dpm_schedule_init(&s->dpm)) != 0) goto fail;
    // Adaptive may give any count in lower..upper to a token; the others use their schedule's.
    for (int i = 0; i < (adaptive ? p->upper - p->lower + 1 : K); i++) {
        int n = adaptive ? p->lower + i : s->steps[i];
        int evals;
        if (dpm) {
            if (s->plans[n].steps == 0 && (rc = dpm_plan_init(&s->plans[n], &s->dpm, n, p->dpm_order,
                                                             p->sampler == GD_SAMPLER_DPM_PP ? DPM_SOLVER_PP : DPM_SOLVER)) != 0)
                goto fail;
            evals = n;
        } else {
            if (s->tables[n].n == 0 && (rc = gd_tables_init(&s->tables[n], n, p->sampler)) != 0) goto fail;
            evals = s->tables[n].n;
        }
        if (evals > s->max_steps) s->max_steps = evals;
    }
    if (adaptive) {
        // The first evaluation measures the signal before the count is known: it must be the
        // same for every count (checked by sample_params_check; asserted here).
        float t0 = dpm ? s->plans[p->upper].t_input[0] : (float)s->tables[p->upper].timestep_map[s->tables[p->upper].n - 1];
        for (int n = p->lower; n <= p->upper; n++) {
            float tn = dpm ? s->plans[n].t_input[0] : (float)s->tables[n].timestep_map[s->tables[n].n - 1];
            if (tn != t0) {
                rc = disa_err(DISA_EINTERNAL, "adaptive: %d steps start at time %g, %d steps at %g", n, tn, p->upper, t0);
                goto fail;
            }
        }
        s->n_blocks = dpm ? 0 : s->max_steps;
    }
    size_t bytes = sampler_scratch_bytes(m, max_batch, p->cfg != 1.0);
    if (dpm || adaptive) bytes += head_rows_scratch_bytes(s, max_batch * m->cfg.seq_len);
    if ((rc = arena_init(&s->scratch, bytes, "sampler scratch")) != 0) goto fail;
    return 0;
fail:
    sampler_free(s);
    return rc;
}

void sampler_free(sampler *s) {
    if (s->tables)
        for (int n = 0; n <= s->p.upper; n++)
            if (s->tables[n].n) gd_tables_free(&s->tables[n]);
    if (s->plans)
        for (int n = 0; n <= s->p.upper; n++) dpm_plan_free(&s->plans[n]);
    free(s->plans);
    dpm_schedule_free(&s->dpm);
    free(s->astate);
    free(s->tables);
    free(s->steps);
    arena_free(&s->scratch);
    memset(s, 0, sizeof *s);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int run(sampler *s, ar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st);

// The model may be shared: it must still be prepared for this sampler's precision.
int sampler_run(sampler *s, ar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st) {
    if (s->m->precision != s->p.precision)
        return disa_err(DISA_EINVAL, "sampler: made for %s, but its model is now prepared for %s",
                        precision_name(s->p.precision), precision_name(s->m->precision));
    return run(s, rng, labels, B, tokens, st);
}

static int run(sampler *s, ar_rng *rng, const int *labels, int B, float *tokens, sample_stats *st) {
    const mar_model *m = s->m;
    const mar_config *c = &m->cfg;
    const sample_params *p = &s->p;
    const int L = c->seq_len, C = c->token_dim, D = c->dec_dim, W = m->head.w, K = p->num_iter;
    const int cfg = p->cfg != 1.0;
    if (B < 1 || B > s->max_batch) return disa_err(DISA_ERANGE, "batch of %d images, sampler prepared for 1..%d",
                                                   B, s->max_batch);
    for (int b = 0; b < B; b++)
        if (labels[b] >= c->class_num)
            return disa_err(DISA_ERANGE, "class label %d out of range 0..%d", labels[b], c->class_num - 1);
    arena *a = &s->scratch;
    arena_reset(a, 0);
    int rc = 0;
    double t0 = clock_now();
    int *orders = arena_alloc(a, sizeof(int) * (size_t)B * L);
    int *pred = arena_alloc(a, sizeof(int) * (size_t)B * L);
    unsigned char *known = arena_alloc(a, (size_t)B * L);
    if (!orders || !pred || !known) return DISA_ENOMEM;
    memset(tokens, 0, sizeof(float) * (size_t)B * L * C);
    memset(known, 0, (size_t)B * L);
    if ((rc = rng->orders(rng, orders, B, L)) != 0) return rc;
    for (int b = 0; s->astate && b < B; b++) adapt_state_reset(&s->astate[b]);
    int n_unknown = L;
    size_t base = arena_mark(a);
    st->t_other += clock_now() - t0;

    for (int step = 0; step < K; step++) {
        arena_reset(a, base);
        double ts = clock_now();
        mask_step ms = mar_mask_step(L, K, step, n_unknown);
        int mask_len = ms.mask_len, lo = ms.lo, n_pred = ms.n_pred;
        if (n_pred <= 0) {
            n_unknown = mask_len;
            continue;
        }
        for (int b = 0; b < B; b++) {
            int *pr = pred + (size_t)b * n_pred;
            memcpy(pr, orders + (size_t)b * L + lo, sizeof(int) * n_pred);
            qsort(pr, (size_t)n_pred, sizeof(int), cmp_int);
        }
        // CFG scale of this step (Muse's linear schedule), float32 like the torch tensor math.
        float cfg_iter = (float)p->cfg;
        if (cfg && p->cfg_linear)
            cfg_iter = 1.0f + (float)(p->cfg - 1.0) * (float)(L - mask_len) / (float)L;

        int B2 = cfg ? 2 * B : B, R = B * n_pred, R2 = B2 * n_pred;
        float *z = arena_floats(a, (size_t)R2 * D);
        if (!z) return DISA_ENOMEM;
        uint64_t f0 = blas_flops();
        double t1 = clock_now();
        st->t_other += t1 - ts;
        rc = mar_forward(m, a, z, tokens, known, L - n_unknown, labels, cfg, pred, n_pred, B, s->poll, s->poll_ctx);
        if (rc) return rc;
        if ((rc = check_finite(z, (size_t)R2 * D, D, step, "the transformer's output z", -1)) != 0) return rc;
        double t2 = clock_now();
        st->t_transformer += t2 - t1;
        st->flops_transformer += blas_flops() - f0;

        // Diffusion head over all rows of all images at once.
        f0 = blas_flops();
        float *ce = arena_floats(a, (size_t)R2 * W);
        float *x = arena_floats(a, (size_t)R2 * C);  // [x; x] for CFG
        float *noise = arena_floats(a, (size_t)R * C);
        head_work hw;
        if (!ce || !x || !noise || head_work_alloc(&hw, a, &m->head, R, cfg) != 0) return DISA_ENOMEM;
        if ((rc = diffloss_cond(&m->head, a, ce, z, R2)) != 0) return rc;
        int n_evals;
        if (gd_sampler_is_dpm(p->sampler) || p->adaptive) {
            // A step count per row (the DPM plans, adaptive's choices): head.c.
            if ((rc = head_rows_run(s, rng, x, ce, B, n_pred, step, cfg, cfg_iter, &n_evals, st)) != 0) return rc;
            if ((rc = check_finite(x, (size_t)R * C, C, step, "the diffusion head's sample x", -1)) != 0) return rc;
        } else {
            const gd_tables *tb = &s->tables[sample_params_steps_at(p, s->steps, step)];
            n_evals = tb->n;
            if ((rc = rng->normals(rng, x, B, n_pred, C)) != 0) return rc;
            const head_step_opts ho = {.sampler = p->sampler, .temperature = (float)p->temperature, .cfg = cfg,
                                       .cfg_scale = cfg_iter};
            for (int i = tb->n - 1; i >= 0; i--) {
                // The official loop draws noise at every step, the last one included (the
                // network draws none, so drawing before it keeps the streams' order).
                if ((rc = rng->normals(rng, noise, B, n_pred, C)) != 0) return rc;
                if ((rc = mar_head_step(&m->head, a, &hw, x, ce, noise, tb, i, &ho, R)) != 0) return rc;
                rc = check_finite(x, (size_t)R * C, C, step, "the diffusion head's sample x", tb->timestep_map[i]);
                if (rc) return rc;
                if (s->poll && s->poll(s->poll_ctx)) return DISA_ECANCELED;
            }
            st->head_row_steps += (uint64_t)R * tb->n;
        }
        double t3 = clock_now();
        st->t_head += t3 - t2;
        st->flops_head += blas_flops() - f0;
        st->tokens += (uint64_t)R;

        for (int b = 0; b < B; b++)
            for (int j = 0; j < n_pred; j++) {
                int pos = pred[(size_t)b * n_pred + j];
                memcpy(tokens + ((size_t)b * L + pos) * C, x + ((size_t)b * n_pred + j) * C, sizeof(float) * C);
                known[(size_t)b * L + pos] = 1;
            }
        n_unknown = lo;
        st->ar_steps++;
        if (s->trace) s->trace(s->trace_ctx, step, mask_len, n_evals, n_pred, cfg_iter, tokens);
        st->t_other += clock_now() - t3;
    }
    arena_reset(a, 0);
    return 0;
}
