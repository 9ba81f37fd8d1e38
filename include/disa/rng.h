// rng.h: counter-based Philox4x32-10 streams.
//
// Each image owns its stream, keyed by (run seed, image index, purpose), so image i
// draws the same numbers whatever the number of ranks or the other images in its batch.
// Layout: key = run seed (2 x 32 bit); counter = [block lo, block hi, index, purpose].
#ifndef DISA_RNG_H
#define DISA_RNG_H
#include <stddef.h>
#include <stdint.h>

// Draws of one image are split by purpose so that adding a draw to one phase never
// shifts the numbers of another.
typedef enum {
    RNG_PURPOSE_ORDER = 1,   // token order permutation
    RNG_PURPOSE_NOISE = 2,   // diffusion initial and per-step noise
    RNG_PURPOSE_TEST = 255,
} rng_purpose;

typedef struct rng_stream {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4];
    int have;         // unread words left in buf (taken from buf[4 - have])
    int has_spare;    // Box-Muller produces pairs; the second is kept here
    float spare;
} rng_stream;

// The raw bijection (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3").
void philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

void rng_init(rng_stream *r, uint64_t seed, uint32_t index, uint32_t purpose);
uint32_t rng_u32(rng_stream *r);
// Uniform in [0, 1) with 53 random bits.
double rng_uniform(rng_stream *r);
// Uniform integer in [0, n), unbiased (rejection), n >= 1.
uint32_t rng_below(rng_stream *r, uint32_t n);
// Standard normal (Box-Muller in double, rounded to float).
float rng_normal(rng_stream *r);
void rng_normals(rng_stream *r, float *out, size_t n);
// out = a uniformly random permutation of 0..n-1 (Fisher-Yates).
void rng_permutation(rng_stream *r, int *out, int n);

#endif
