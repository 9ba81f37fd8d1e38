// mt19937.h: the Mersenne Twister and numpy's legacy RandomState permutation.
//
// torch-fidelity's Inception Score shuffles the logits with
// numpy.random.RandomState(2020).permutation(N) before splitting them, so the split
// contents (and the score) depend on numpy's exact draws. This module reproduces them bit
// for bit: MT19937 seeded as RandomState(int) does (init_genrand), and the legacy
// shuffle (Fisher-Yates from the end, each index drawn by rejection on a bit mask).
#ifndef DISA_MT19937_H
#define DISA_MT19937_H
#include <stdint.h>

typedef struct mt19937 {
    uint32_t mt[624];
    int pos;
} mt19937;

// numpy.random.RandomState(seed) for an integer seed in [0, 2^32).
void mt19937_seed(mt19937 *r, uint32_t seed);
// Next 32-bit output (numpy: RandomState.randint(0, 2**32, dtype=np.uint32)).
uint32_t mt19937_next_u32(mt19937 *r);
// numpy's legacy random_interval(max): uniform integer in [0, max], by drawing 32-bit
// (max < 2^32) or 64-bit words masked to the smallest covering power of two minus one
// and rejecting values above max.
uint64_t mt19937_interval(mt19937 *r, uint64_t max);
// RandomState(seed).permutation(n) into perm[0..n-1] (arange then the legacy shuffle).
void mt19937_permutation(int64_t *perm, int64_t n, uint32_t seed);

#endif
