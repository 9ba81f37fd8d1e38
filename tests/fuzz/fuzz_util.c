// fuzz_util.c: the temporary-file helper shared by the fuzz targets (tests/fuzz/fuzz.h).
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_path[256];

// One file per process, rewritten for every input; removed when the process exits so
// fuzzing and replay runs leave nothing behind.
static void remove_tmpfile(void) {
    if (g_path[0]) unlink(g_path);
}

const char *fuzz_tmpfile(const char *tag, const char *ext, const uint8_t *data, size_t size) {
    char next[sizeof g_path];
    const char *dir = getenv("TMPDIR");
    if (!g_path[0]) atexit(remove_tmpfile);
    snprintf(next, sizeof next, "%s/disa-fuzz-%s-%ld%s", dir && *dir ? dir : "/tmp", tag, (long)getpid(), ext);
    // A replay run switches between targets' names: drop the previous file first.
    if (g_path[0] && strcmp(g_path, next) != 0) unlink(g_path);
    memcpy(g_path, next, sizeof g_path);
    const char *path = g_path;
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    if (fclose(f) != 0 || w != size) return NULL;
    return path;
}
