// path.c: user-named paths (include/disa/path.h).
#include "disa/path.h"
#include "disa/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The longest existing prefix of path (at a '/' boundary) into anc; *rest points into
// path at the first missing component (or at its end). "" means the current folder.
static void existing_ancestor(const char *path, char *anc, size_t n, const char **rest) {
    size_t len = strlen(path);
    size_t cut = len;
    struct stat sb;
    for (;;) {
        snprintf(anc, n, "%.*s", (int)cut, path);
        if (cut == 0 || stat(anc, &sb) == 0) break;
        while (cut > 0 && path[cut - 1] != '/') cut--;     // drop the last component
        while (cut > 1 && path[cut - 1] == '/') cut--;     // and the slashes before it
        if (cut == 1 && path[0] == '/') {                   // the root always exists
            snprintf(anc, n, "/");
            break;
        }
    }
    *rest = path + cut;
    while (**rest == '/') (*rest)++;
}

// Whether a new entry can be made in the existing folder dir: by making one (a folder
// under a unique name) and removing it. access(W_OK) is not enough: it says yes to root
// in /proc and on read-only mounts.
static int probe_folder(const char *dir, const char *path, const char *what) {
    char probe[PATH_MAX];
    if (snprintf(probe, sizeof probe, "%s/.disa-probe-XXXXXX", dir) >= (int)sizeof probe)
        return disa_err(DISA_EINVAL, "%s: %s: the path is too long", what, path);
    if (!mkdtemp(probe)) return disa_err(DISA_EINVAL, "%s: %s: cannot write in %s: %s", what, path, dir, strerror(errno));
    rmdir(probe);
    return 0;
}

int path_check_writable(const char *path, int is_dir, const char *what) {
    if (!path[0]) return disa_err(DISA_EINVAL, "%s: the path is empty", what);
    if (strlen(path) >= PATH_MAX) return disa_err(DISA_EINVAL, "%s: the path is longer than %d bytes", what, PATH_MAX - 1);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (is_dir && !S_ISDIR(sb.st_mode)) return disa_err(DISA_EINVAL, "%s: %s exists and is not a folder", what, path);
        if (!is_dir && !S_ISREG(sb.st_mode))
            return disa_err(DISA_EINVAL, "%s: %s exists and is not a regular file", what, path);
        // A file is replaced through a temporary beside it: its folder must take new files.
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');
        if (is_dir) snprintf(dir, sizeof dir, "%s", path);
        else if (!slash) snprintf(dir, sizeof dir, ".");
        else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        return probe_folder(dir, path, what);
    }
    char anc[PATH_MAX];
    const char *rest;
    existing_ancestor(path, anc, sizeof anc, &rest);
    const char *a = anc[0] ? anc : ".";
    if (stat(a, &sb) != 0) return disa_err(DISA_EINVAL, "%s: %s: cannot be created: %s", what, path, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return disa_err(DISA_EINVAL, "%s: %s: cannot be created: %s is not a folder", what, path, a);
    // A file goes into a folder that exists; a folder is made with its missing parents.
    if (!is_dir && strchr(rest, '/'))
        return disa_err(DISA_EINVAL, "%s: %s: the folder %.*s does not exist", what, path, (int)(strrchr(path, '/') - path),
                        path);
    // Every component still to be made must be a name the file system takes.
    for (const char *p = rest; *p;) {
        size_t k = strcspn(p, "/");
        if (k > NAME_MAX)
            return disa_err(DISA_EINVAL, "%s: %s: the component '%.20s...' is %zu bytes, longer than %d", what, path, p,
                            k, NAME_MAX);
        p += k;
        while (*p == '/') p++;
    }
    return probe_folder(a, path, what);
}

int path_canonical(char *out, size_t n, const char *path) {
    char anc[PATH_MAX], real[PATH_MAX];
    const char *rest;
    existing_ancestor(path, anc, sizeof anc, &rest);
    if (!realpath(anc[0] ? anc : ".", real)) snprintf(real, sizeof real, "%s", anc);
    size_t len = strlen(real);
    if (len >= n) return disa_err(DISA_ERANGE, "%s: path too long", path);
    memcpy(out, real, len + 1);
    for (const char *p = rest; *p;) {
        size_t k = strcspn(p, "/");
        if (k == 2 && p[0] == '.' && p[1] == '.') {
            char *slash = strrchr(out, '/');
            if (slash && slash != out) *slash = '\0';
            else snprintf(out, n, "/");
        } else if (!(k == 1 && p[0] == '.') && k > 0) {
            size_t cur = strlen(out);
            int sep = cur > 0 && out[cur - 1] != '/';
            if (cur + sep + k >= n) return disa_err(DISA_ERANGE, "%s: path too long", path);
            if (sep) out[cur++] = '/';
            memcpy(out + cur, p, k);
            out[cur + k] = '\0';
        }
        p += k;
        while (*p == '/') p++;
    }
    return 0;
}

int path_fopen_regular(FILE **f, const char *path) {
    *f = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return disa_err(errno == ENOENT ? DISA_ENOTFOUND : DISA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return disa_err(DISA_EINVAL, "%s: not a regular file", path);
    }
    // Reads of a regular file never block; clear the flag so stdio sees a plain stream.
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *f = fdopen(fd, "rb");
    if (!*f) {
        close(fd);
        return disa_err(DISA_ENOMEM, "%s: cannot open a stream", path);
    }
    return 0;
}

int path_check_regular(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return disa_err(errno == ENOENT ? DISA_ENOTFOUND : DISA_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return disa_err(DISA_EINVAL, "%s: not a regular file", path);
    return 0;
}
