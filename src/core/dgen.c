// dgen.c: deterministic parameter generator; mirrors tools/stio.py: dgen bit for bit.
#include "disa/dgen.h"

void dgen_fill(float *out, size_t n, uint64_t seed, double scale) {
    uint64_t base = seed * 0xD1B54A32D192ED03ull;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = base + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
        z ^= z >> 30;
        z *= 0xBF58476D1CE4E5B9ull;
        z ^= z >> 27;
        z *= 0x94D049BB133111EBull;
        z ^= z >> 31;
        double u = (double)(z >> 40) / (double)(1u << 24);
        out[i] = (float)(scale * (2.0 * u - 1.0));
    }
}
