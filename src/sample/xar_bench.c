// xar_bench.c: xAR's network call shapes timed, and a flow-step schedule extrapolated
// from them (include/disa/xar_sample.h; disa-bench --extrapolate for xAR models).
#include "disa/bench.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/err.h"
#include "disa/xar_sample.h"

#include <string.h>

int xar_seqs_at(const xar_params *p, int clusters, int s, int B) {
    // As the sampler: the unconditional sequences run only where the scale exceeds 1.
    return xar_cfg_at(p, clusters, s) > 1.0 ? 2 * B : B;
}

int xar_bench_time_call(const xar_model *m, int N, int step, int first, int reps, double *sec, uint64_t *flops) {
    const xar_config *c = &m->cfg;
    const int G = c->group, C = c->token_dim, R = first && step > 0 ? 2 * G : G;
    if (step < 0 || step >= c->clusters || reps < 1 || reps > 64)
        return disa_err(DISA_EINVAL, "xar_bench_time_call: step %d of %d, %d repeats", step, c->clusters, reps);
    xar_kv kv;
    arena a;
    int rc = xar_kv_init(&kv, c, N);
    if (rc) return rc;
    size_t in_bytes = sizeof(float) * ((size_t)N * R * C + (size_t)N * G * C) + sizeof(int) * (size_t)N + 4 * 64;
    if ((rc = arena_init(&a, xar_forward_scratch_bytes(c, N, R) + in_bytes, "xAR bench scratch")) != 0) {
        xar_kv_free(&kv);
        return rc;
    }
    // Zeros: keys and values of no particular size, and every page touched before timing.
    memset(kv.data, 0, xar_kv_bytes(c, N));
    float *x = arena_floats(&a, (size_t)N * R * C), *v = arena_floats(&a, (size_t)N * G * C);
    int *labels = arena_alloc(&a, sizeof(int) * (size_t)N);
    size_t base = arena_mark(&a);
    bench_fill_normal(x, (size_t)N * R * C, 5);
    for (int n = 0; n < N; n++) labels[n] = n % (c->class_num + 1);  // some unconditional
    int tidx[2] = {0, 500};
    const int *t = R == 2 * G ? tidx : tidx + 1;
    double times[65];
    for (int r = 0; r <= reps && !rc; r++) {  // r = 0: warm-up (threads, pages)
        arena_reset(&a, base);
        kv.rows = (step + 1) * G - R;
        uint64_t f0 = blas_flops();
        double t0 = clock_now();
        rc = xar_forward(m, &kv, &a, v, x, R, labels, t, step, first, N, NULL, NULL);
        times[r] = clock_now() - t0;
        *flops = blas_flops() - f0;
    }
    *sec = rc ? 0 : bench_median(times + 1, reps);
    arena_free(&a);
    xar_kv_free(&kv);
    return rc;
}

double xar_bench_schedule(const xar_config *c, const xar_params *p, const double *t_first, const double *t_rest) {
    double t = 0;
    for (int s = 0; s < c->clusters; s++) t += t_first[s] + (xar_steps_at(p, c->clusters, s) - 1) * t_rest[s];
    return t;
}
