// tmpdir.h: a fresh temporary folder per unit-test group (cmocka group setup/teardown).
#ifndef DISA_TEST_TMPDIR_H
#define DISA_TEST_TMPDIR_H

// The folder of the running group, valid between tmpdir_setup and tmpdir_teardown.
extern char g_dir[64];
int tmpdir_setup(void **state);
int tmpdir_teardown(void **state);
// Where temporary files go: $TMPDIR, else the system's temporary folder.
const char *tmp_root(void);

#endif
