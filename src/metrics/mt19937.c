// mt19937.c: MT19937 and numpy's legacy RandomState.permutation, bit for bit.
// Mirrors numpy/random/src/mt19937 (mt19937_seed, mt19937_gen, mt19937_next32),
// numpy/random/src/distributions: random_interval, and mtrand.pyx: RandomState.shuffle
// (the 1-d fast path: for i = n-1 .. 1, swap x[i] with x[random_interval(i)]).
#include "disa/mt19937.h"

#define MT_N 624
#define MT_M 397

void mt19937_seed(mt19937 *r, uint32_t seed) {
    // init_genrand: the same recurrence numpy's legacy integer seeding uses.
    r->mt[0] = seed;
    for (int i = 1; i < MT_N; i++) {
        uint32_t p = r->mt[i - 1];
        r->mt[i] = 1812433253u * (p ^ (p >> 30)) + (uint32_t)i;
    }
    r->pos = MT_N;  // the first draw regenerates the whole state
}

static void mt_generate(mt19937 *r) {
    uint32_t *mt = r->mt;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % MT_N] & 0x7fffffffu);
        uint32_t v = mt[(i + MT_M) % MT_N] ^ (y >> 1);
        if (y & 1u) v ^= 0x9908b0dfu;
        mt[i] = v;
    }
    r->pos = 0;
}

uint32_t mt19937_next_u32(mt19937 *r) {
    if (r->pos >= MT_N) mt_generate(r);
    uint32_t y = r->mt[r->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t mt19937_interval(mt19937 *r, uint64_t max) {
    if (max == 0) return 0;
    uint64_t mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask |= mask >> 32;
    uint64_t v;
    if (max <= 0xffffffffu) {
        do v = mt19937_next_u32(r) & mask; while (v > max);
    } else {
        // numpy's next_uint64 for MT19937 joins two draws, the first as the high word.
        do {
            uint64_t hi = mt19937_next_u32(r);
            v = ((hi << 32) | mt19937_next_u32(r)) & mask;
        } while (v > max);
    }
    return v;
}

void mt19937_permutation(int64_t *perm, int64_t n, uint32_t seed) {
    mt19937 r;
    mt19937_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i >= 1; i--) {
        int64_t j = (int64_t)mt19937_interval(&r, (uint64_t)i);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
