// head.c: the diffusion head of one AR step with a step count per row (include/disa/head.h).
//
// Mirrors MAR_DiSA models/diffloss.py DiffLoss.sample for the DPM samplers (dpm.h) and,
// per row, GaussianDiffusion.p_sample_loop for DiSA under the adaptive strategy
// (adaptive.h); the guided eps is SimpleMLPAdaLN.forward_with_cfg's, as in ar.c.
#include "disa/head.h"

#include "disa/blas.h"
#include "disa/err.h"

#include <stdlib.h>
#include <string.h>

// Network evaluations of a row with `n` requested steps.
static int evals_of(const sampler *s, int n) {
    return gd_sampler_is_dpm(s->p.sampler) ? n : s->tables[n].n;
}

// Network time of evaluation j of a row with n requested steps: DPM's t_j * 1000, or the
// original timestep of spaced index n_distinct - 1 - j.
static float time_of(const sampler *s, int n, int j) {
    if (gd_sampler_is_dpm(s->p.sampler)) return s->plans[n].t_input[j];
    const gd_tables *t = &s->tables[n];
    return (float)t->timestep_map[t->n - 1 - j];
}

void head_split_out(float *eps, float *var, const float *out, int R, int C, int cfg, float cfg_iter) {
    for (int r = 0; r < R; r++) {
        const float *oc = out + (size_t)r * 2 * C;
        const float *ou = cfg ? out + (size_t)(R + r) * 2 * C : oc;
        for (int k = 0; k < C; k++) {
            eps[(size_t)r * C + k] = cfg ? ou[k] + cfg_iter * (oc[k] - ou[k]) : oc[k];
            var[(size_t)r * C + k] = oc[C + k];
        }
    }
}

size_t head_rows_scratch_bytes(const sampler *s, int rows) {
    const int C = s->m->cfg.token_dim, W = s->m->head.w;
    size_t R = (size_t)rows, R2 = 2 * R, G = (size_t)(s->p.upper - s->p.lower + 2);
    size_t floats = R * C * 8 + R2 * C * 3 + G * W + W + R;  // x eps var noise(2) hist(3), xin out, te, row, g
    size_t ints = R * 3 + R2 + 3 * R;                          // n it perm, te_row, sort keys
    return sizeof(float) * floats + sizeof(int) * ints + 16 * 64;
}

typedef struct row_key {
    int evals, n, idx;
} row_key;

// Most evaluations first, then the larger count, then the original order: rows of one
// count are contiguous and the running ones a prefix.
static int cmp_key(const void *pa, const void *pb) {
    const row_key *a = pa, *b = pb;
    if (a->evals != b->evals) return b->evals - a->evals;
    if (a->n != b->n) return b->n - a->n;
    return a->idx - b->idx;
}

// Reorder rows of v [R, k] so that new row i is old row perm[i], in place, following the
// cycles of perm with one row of scratch; done[] is R bytes of scratch.
static void permute_rows(float *v, int k, const int *perm, int R, float *row, unsigned char *done) {
    memset(done, 0, (size_t)R);
    size_t bytes = sizeof(float) * (size_t)k;
    for (int i = 0; i < R; i++) {
        if (done[i] || perm[i] == i) continue;
        memcpy(row, v + (size_t)i * k, bytes);
        int cur = i;
        for (;;) {
            int src = perm[cur];
            done[cur] = 1;
            if (src == i) {
                memcpy(v + (size_t)cur * k, row, bytes);
                break;
            }
            memcpy(v + (size_t)cur * k, v + (size_t)src * k, bytes);
            cur = src;
        }
    }
}

int head_rows_run(sampler *s, ar_rng *rng, float *xout, float *ce, int B, int P, int step, int cfg,
                  float cfg_iter, int *n_evals, sample_stats *st) {
    const mar_model *m = s->m;
    const sample_params *p = &s->p;
    const int C = m->cfg.token_dim, W = m->head.w, R = B * P, dpm = gd_sampler_is_dpm(p->sampler);
    arena *a = &s->scratch;
    size_t RC = (size_t)R * C;
    float *x = arena_floats(a, RC), *eps = arena_floats(a, RC), *var = arena_floats(a, RC);
    float *noise = arena_floats(a, 2 * RC), *hist = dpm ? arena_floats(a, 3 * RC) : NULL;
    float *xin = arena_floats(a, (size_t)(cfg ? 2 : 1) * RC), *out = arena_floats(a, (size_t)(cfg ? 2 : 1) * 2 * RC);
    float *te = arena_floats(a, (size_t)(p->upper - p->lower + 2) * W), *row = arena_floats(a, W > C ? W : C);
    float *g = arena_floats(a, R);
    int *n = arena_alloc(a, sizeof(int) * (size_t)R), *perm = arena_alloc(a, sizeof(int) * (size_t)R);
    int *evals = arena_alloc(a, sizeof(int) * (size_t)R), *te_row = arena_alloc(a, sizeof(int) * 2 * (size_t)R);
    row_key *keys = arena_alloc(a, sizeof(row_key) * (size_t)R);
    if (!x || !eps || !var || !noise || (dpm && !hist) || !xin || !out || !te || !row || !g || !n || !perm ||
        !evals || !te_row || !keys)
        return DISA_ENOMEM;
    int rc = rng->normals(rng, x, B, P, C);  // start noise, (image, row) order
    if (rc) return rc;
    const int n0 = p->adaptive ? p->upper : sample_params_steps_at(p, s->steps, step);
    for (int r = 0; r < R; r++) {
        n[r] = n0;
        evals[r] = evals_of(s, n0);
        perm[r] = r;
    }
    int A = R, ustart = R, j = 0, most = evals[0];
    for (;; j++) {
        while (A > 0 && evals[A - 1] <= j) A--;
        if (A == 0) break;
        // The unconditional condition rows follow the running conditional ones.
        if (cfg && ustart != A) {
            memmove(ce + (size_t)A * W, ce + (size_t)ustart * W, sizeof(float) * (size_t)A * W);
            ustart = A;
        }
        // One time embedding per run of rows at the same time (rows of one count are
        // contiguous; adaptive's first evaluation is at the same time for every count).
        int G = 0;
        float t_prev = 0;
        for (int r = 0; r < A; r++) {
            float t = time_of(s, n[r], j);
            if (G == 0 || t != t_prev) {
                if ((rc = diffloss_time(&m->head, te + (size_t)G * W, t)) != 0) return rc;
                G++;
                t_prev = t;
            }
            te_row[r] = G - 1;
            if (cfg) te_row[A + r] = G - 1;
        }
        size_t AC = (size_t)A * C;
        memcpy(xin, x, sizeof(float) * AC);
        if (cfg) memcpy(xin + AC, x, sizeof(float) * AC);
        if ((rc = diffloss_forward_te(&m->head, a, out, xin, te, te_row, ce, cfg ? 2 * A : A)) != 0) return rc;
        head_split_out(eps, var, out, A, C, cfg, cfg_iter);
        if (j == 0 && p->adaptive) {
            // All rows ran (A == R, original order): measure, choose per image, then sort.
            adapt_signal_rows(g, out, cfg ? out + (size_t)R * 2 * C : NULL, eps, R, C, p->signal);
            for (int b = 0; b < B; b++)
                adapt_choose(n + (size_t)b * P, g + (size_t)b * P, P, m->cfg.seq_len, p->lower, p->upper, p->budget,
                             &s->astate[b]);
            for (int r = 0; r < R; r++) keys[r] = (row_key){evals_of(s, n[r]), n[r], r};
            qsort(keys, (size_t)R, sizeof *keys, cmp_key);
            for (int r = 0; r < R; r++) {
                perm[r] = keys[r].idx;
                n[r] = keys[r].n;
                evals[r] = keys[r].evals;
            }
            most = evals[0];
            unsigned char *done = (unsigned char *)g;  // the signals are spent; R bytes fit in R floats
            permute_rows(x, C, perm, R, row, done);
            permute_rows(eps, C, perm, R, row, done);
            permute_rows(var, C, perm, R, row, done);
            permute_rows(ce, W, perm, R, row, done);
            if (cfg) permute_rows(ce + (size_t)R * W, W, perm, R, row, done);
        }
        // Update the running rows, one count (one table or plan) at a time.
        if (!dpm) {
            float *raw = noise + RC;
            if ((rc = rng->normals(rng, raw, B, P, C)) != 0) return rc;
            for (int r = 0; r < A; r++) memcpy(noise + (size_t)r * C, raw + (size_t)perm[r] * C, sizeof(float) * C);
        }
        float *mk = dpm ? hist + (size_t)(j % 3) * RC : NULL;
        if (dpm) memcpy(mk, eps, sizeof(float) * AC);
        for (int r0 = 0; r0 < A;) {
            int r1 = r0 + 1;
            while (r1 < A && n[r1] == n[r0]) r1++;
            size_t off = (size_t)r0 * C;
            int cnt = r1 - r0;
            if (dpm) {
                const dpm_plan *pl = &s->plans[n[r0]];
                const float *m1 = j >= 1 ? hist + (size_t)((j - 1) % 3) * RC + off : NULL;
                const float *m2 = j >= 2 ? hist + (size_t)((j - 2) % 3) * RC + off : NULL;
                dpm_model_value(mk + off, x + off, pl, j, cnt, C);
                dpm_update(x + off, mk + off, m1, m2, pl, j + 1, cnt, C);
            } else {
                const gd_tables *tb = &s->tables[n[r0]];
                gd_ddpm_step(x + off, eps + off, var + off, noise + off, tb, tb->n - 1 - j, (float)p->temperature,
                             cnt, C);
            }
            r0 = r1;
        }
        st->head_row_steps += (uint64_t)A;
        if (s->poll && s->poll(s->poll_ctx)) return DISA_ECANCELED;
    }
    // The rest of the noise blocks: the stream must not depend on the counts chosen.
    for (; !dpm && j < s->n_blocks; j++)
        if ((rc = rng->normals(rng, noise, B, P, C)) != 0) return rc;
    for (int r = 0; r < R; r++) memcpy(xout + (size_t)perm[r] * C, x + (size_t)r * C, sizeof(float) * C);
    *n_evals = most;
    return 0;
}
