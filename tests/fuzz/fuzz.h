// fuzz.h: one entry point per fuzz target, built two ways.
//
// With libFuzzer (make fuzz, tests/fuzz/run.sh) each tests/fuzz/fuzz_<name>.c is its own
// program and FUZZ_TARGET defines LLVMFuzzerTestOneInput. With -DFUZZ_REPLAY (make all)
// every target becomes fuzz_<name>() and tests/fuzz/replay.c feeds each committed corpus
// file tests/fuzz/<name>/* to it, so crashes found once stay fixed in `make test`.
#ifndef DISA_FUZZ_H
#define DISA_FUZZ_H
#include <stddef.h>
#include <stdint.h>

#ifdef FUZZ_REPLAY
#define FUZZ_TARGET(name) int fuzz_##name(const uint8_t *data, size_t size)
#else
#define FUZZ_TARGET(name) int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#endif

int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_job(const uint8_t *data, size_t size);
int fuzz_npy(const uint8_t *data, size_t size);
int fuzz_png(const uint8_t *data, size_t size);

// Write `data` to a per-process temporary file with suffix `ext` (the readers under test
// take paths) and return its path (static storage), or NULL when it cannot be written.
const char *fuzz_tmpfile(const char *tag, const char *ext, const uint8_t *data, size_t size);

#endif
