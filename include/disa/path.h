// path.h: paths the user names - checked before any work, compared by what they point to,
// opened only when they are regular files.
#ifndef DISA_PATH_H
#define DISA_PATH_H
#include <stddef.h>
#include <stdio.h>

// Whether `path` can be made into (or already is) a writable folder (is_dir = 1) or a
// file (is_dir = 0, an existing one must be a regular file): the deepest existing
// ancestor must be a searchable, writable folder, every missing component at most
// NAME_MAX bytes. Nothing is created. DISA_EINVAL with "WHAT: PATH: ..." saying which
// ancestor or component is at fault (`what` names the flag or job field, e.g.
// "'output_dir'" or "--out").
int path_check_writable(const char *path, int is_dir, const char *what);

// A canonical form for comparisons: the realpath of the deepest existing ancestor with
// the missing components appended ("." and empty components dropped, ".." applied), so
// "out", "out/" and "./x/../out" compare equal. DISA_ERANGE when it does not fit in n.
int path_canonical(char *out, size_t n, const char *path);

// Open `path` for reading only if it is a regular file: a FIFO, device or folder named
// like an input is refused at once (opened with O_NONBLOCK, so a FIFO cannot block).
// DISA_ENOTFOUND, DISA_EINVAL ("not a regular file"), DISA_EIO. The FILE* is the caller's.
int path_fopen_regular(FILE **f, const char *path);

// The same test without opening, for readers that open the file themselves (libzip):
// 0 for a regular file, else DISA_ENOTFOUND / DISA_EINVAL "PATH: not a regular file".
int path_check_regular(const char *path);

#endif
