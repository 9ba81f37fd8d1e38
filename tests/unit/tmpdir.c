// tmpdir.c: see tmpdir.h. Linked into every unit test.
#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char g_dir[64];

const char *tmp_root(void) {
    const char *t = getenv("TMPDIR");
    return t && *t && strlen(t) < 40 ? t : "/tmp";
}

int tmpdir_setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/disa-unit-XXXXXX", tmp_root());
    return mkdtemp(g_dir) ? 0 : -1;
}

int tmpdir_teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}
