// testmodel.h: a small random-weight MAR written to a file, for unit tests that run the
// sampler (disa-mkmodel's generator: dgen, Xavier-range Linear weights).
#ifndef DISA_TEST_TESTMODEL_H
#define DISA_TEST_TESTMODEL_H
#include <stdint.h>

// Write the model of disa-mar-1 config `json` with generator seed `seed` to `path`.
// Returns 0, or -1 (the config does not parse or the file cannot be written).
int testmodel_write(const char *path, const char *json, uint64_t seed);

#endif
