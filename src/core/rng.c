// rng.c: Philox4x32-10 (include/disa/rng.h).
#include "disa/rng.h"

#include <math.h>
#include <string.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u  // golden ratio
#define PHILOX_W1 0xBB67AE85u  // sqrt(3) - 1

void philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void rng_init(rng_stream *r, uint64_t seed, uint32_t index, uint32_t purpose) {
    memset(r, 0, sizeof *r);
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[2] = index;
    r->ctr[3] = purpose;
}

uint32_t rng_u32(rng_stream *r) {
    if (r->have == 0) {
        philox4x32_10(r->buf, r->ctr, r->key);
        // 64-bit block counter in ctr[0..1]: 2^66 words per stream.
        if (++r->ctr[0] == 0) r->ctr[1]++;
        r->have = 4;
    }
    return r->buf[4 - r->have--];
}

double rng_uniform(rng_stream *r) {
    uint64_t hi = rng_u32(r) >> 5, lo = rng_u32(r) >> 6;  // 27 + 26 bits
    return (double)(hi * 67108864ull + lo) * (1.0 / 9007199254740992.0);
}

uint32_t rng_below(rng_stream *r, uint32_t n) {
    // Reject the top partial range so every residue is equally likely.
    uint32_t limit = (uint32_t)(-n) % n;  // = 2^32 mod n
    for (;;) {
        uint32_t x = rng_u32(r);
        uint64_t m = (uint64_t)x * n;
        if ((uint32_t)m >= limit) return (uint32_t)(m >> 32);
    }
}

float rng_normal(rng_stream *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    // 1 - u lies in (0, 1], so the log is finite.
    double u1 = 1.0 - rng_uniform(r), u2 = rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    r->spare = (float)(rad * sin(th));
    r->has_spare = 1;
    return (float)(rad * cos(th));
}

void rng_normals(rng_stream *r, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = rng_normal(r);
}

void rng_permutation(rng_stream *r, int *out, int n) {
    for (int i = 0; i < n; i++) out[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint32_t)(i + 1));
        int t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}
