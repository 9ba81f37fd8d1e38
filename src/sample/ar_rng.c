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
    return ar_tape_read(out, r->tape, sizeof *r->tape, r->pos, B, r->T, (int64_t)rows * C);
}

int ar_rng_tape_init(ar_rng_tape *r, const int64_t *orders, const float *tape, int B, int L, int64_t T) {
    *r = (ar_rng_tape){.base = {tape_orders, tape_normals}, .orders = orders, .tape = tape, .B = B, .L = L, .T = T};
    return ar_tape_start(&r->pos, B);
}

void ar_rng_tape_free(ar_rng_tape *r) {
    free(r->pos);
    r->pos = NULL;
}


int ar_tape_start(int64_t **pos, int B) {
    *pos = calloc((size_t)(B > 0 ? B : 1), sizeof(int64_t));
    return *pos ? 0 : disa_err(DISA_ENOMEM, "tape: out of memory");
}

int ar_tape_read(void *out, const void *tape, size_t size, int64_t *pos, int B, int64_t T, int64_t n) {
    for (int b = 0; b < B; b++) {
        if (pos[b] + n > T)
            return disa_err(DISA_EINVAL, "tape: image %d needs values %lld..%lld but only %lld were recorded", b,
                            (long long)pos[b], (long long)(pos[b] + n - 1), (long long)T);
        memcpy((char *)out + (size_t)b * n * size, (const char *)tape + ((size_t)b * T + pos[b]) * size,
               size * (size_t)n);
        pos[b] += n;
    }
    return 0;
}
