// tmpdir.c: see tmpdir.h. Linked into every unit test.
#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char g_dir[64];

int tmpdir_setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/disa-unit-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

int tmpdir_teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}
