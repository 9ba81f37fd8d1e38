// dgen.h: the deterministic parameter generator shared with tools/stio.py (dgen).
// Definition in tests/golden/README.md; both sides produce bit-identical float32.
#ifndef DISA_DGEN_H
#define DISA_DGEN_H
#include <stddef.h>
#include <stdint.h>

// out[i] = float32(scale * (2 u_i - 1)), i = 0..n-1, u_i from (seed, i).
void dgen_fill(float *out, size_t n, uint64_t seed, double scale);

#endif
