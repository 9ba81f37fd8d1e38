// ar_rng.c: where the AR loop's randomness comes from (include/disa/sampler.h): per-image
// Philox streams in production, a recorded tape in parity tests.
#include "disa/err.h"
#include "disa/sampler.h"

#include <stdlib.h>
#include <string.h>

static int philox_orders(ar_rng *base, int *orders, int B, int L) {
    ar_rng_philox *r = (ar_rng_philox *)base;
    if (B > r->B) return disa_err(DISA_EINTERNAL, "rng: %d images, streams for %d", B, r->B);
    for (int b = 0; b < B; b++) rng_permutation(&r->order[b], orders + (size_t)b * L, L);
    return 0;
}

static int philox_normals(ar_rng *base, float *out, int B, int rows, int C) {
    ar_rng_philox *r = (ar_rng_philox *)base;
    if (B > r->B) return disa_err(DISA_EINTERNAL, "rng: %d images, streams for %d", B, r->B);
    for (int b = 0; b < B; b++) rng_normals(&r->noise[b], out + (size_t)b * rows * C, (size_t)rows * C);
    return 0;
}

int ar_rng_philox_init(ar_rng_philox *r, uint64_t seed, const uint32_t *index, int B) {
    memset(r, 0, sizeof *r);
    r->base.orders = philox_orders;
    r->base.normals = philox_normals;
    r->B = B;
    r->order = calloc((size_t)B, sizeof(rng_stream));
    r->noise = calloc((size_t)B, sizeof(rng_stream));
    if (!r->order || !r->noise) {
        ar_rng_philox_free(r);
        return disa_err(DISA_ENOMEM, "rng: out of memory for %d streams", B);
    }
    for (int b = 0; b < B; b++) {
        rng_init(&r->order[b], seed, index[b], RNG_PURPOSE_ORDER);
        rng_init(&r->noise[b], seed, index[b], RNG_PURPOSE_NOISE);
    }
    return 0;
}

void ar_rng_philox_free(ar_rng_philox *r) {
    free(r->order);
    free(r->noise);
    r->order = r->noise = NULL;
}

static int tape_orders(ar_rng *base, int *orders, int B, int L) {
    ar_rng_tape *r = (ar_rng_tape *)base;
    if (B != r->B || L != r->L)
        return disa_err(DISA_EINVAL, "tape: orders recorded for [%d, %d], the loop asked for [%d, %d]", r->B,
                        r->L, B, L);
    for (size_t i = 0; i < (size_t)B * L; i++) orders[i] = (int)r->orders[i];
    return 0;
}

static int tape_normals(ar_rng *base, float *out, int B, int rows, int C) {
    ar_rng_tape *r = (ar_rng_tape *)base;
    if (B != r->B) return disa_err(DISA_EINVAL, "tape: recorded for %d images, the loop has %d", r->B, B);
    int64_t n = (int64_t)rows * C;
    for (int b = 0; b < B; b++) {
        if (r->pos[b] + n > r->T)
            return disa_err(DISA_EINVAL, "tape: image %d needs values %lld..%lld but only %lld were recorded", b,
                            (long long)r->pos[b], (long long)(r->pos[b] + n - 1), (long long)r->T);
        memcpy(out + (size_t)b * n, r->tape + (size_t)b * r->T + r->pos[b], sizeof(float) * (size_t)n);
        r->pos[b] += n;
    }
    return 0;
}

int ar_rng_tape_init(ar_rng_tape *r, const int64_t *orders, const float *tape, int B, int L, int64_t T) {
    memset(r, 0, sizeof *r);
    r->base.orders = tape_orders;
    r->base.normals = tape_normals;
    r->orders = orders;
    r->tape = tape;
    r->B = B;
    r->L = L;
    r->T = T;
    r->pos = calloc((size_t)(B > 0 ? B : 1), sizeof(int64_t));
    return r->pos ? 0 : disa_err(DISA_ENOMEM, "tape: out of memory");
}

void ar_rng_tape_free(ar_rng_tape *r) {
    free(r->pos);
    r->pos = NULL;
}

