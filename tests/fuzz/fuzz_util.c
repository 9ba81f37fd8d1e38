// fuzz_util.c: the temporary-file helper shared by the fuzz targets (tests/fuzz/fuzz.h).
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *fuzz_tmpfile(const char *tag, const char *ext, const uint8_t *data, size_t size) {
    static char path[256];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/disa-fuzz-%s-%ld%s", dir && *dir ? dir : "/tmp", tag, (long)getpid(), ext);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    if (fclose(f) != 0 || w != size) return NULL;
    return path;
}
