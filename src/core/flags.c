// flags.c: command-line flags and their values (include/disa/flags.h).
#include "disa/flags.h"
#include "disa/err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int flag_split(const char *arg, int split_eq, char *name, size_t n, const char **value) {
    *value = NULL;
    if (strncmp(arg, "--", 2) != 0) return 0;
    const char *eq = split_eq ? strchr(arg, '=') : NULL;
    if (eq) {
        snprintf(name, n, "%.*s", (int)(eq - arg - 2), arg + 2);
        *value = eq + 1;
    } else {
        snprintf(name, n, "%s", arg + 2);
    }
    return 1;
}

int flag_value(int argc, char **argv, int *i, const char *name, const char **value) {
    if (*value) return 0;
    if (*i + 1 >= argc) return disa_err(DISA_EINVAL, "--%s needs a value", name);
    // "--output_dir --num_images 8" is a forgotten value, not a folder named
    // "--num_images": a value that starts with "--" is taken only as --name=--value.
    if (strncmp(argv[*i + 1], "--", 2) == 0)
        return disa_err(DISA_EINVAL, "--%s needs a value, got the flag '%s' (write --%s=%s if that is the value)",
                        name, argv[*i + 1], name, argv[*i + 1]);
    *value = argv[++*i];
    return 0;
}

int flag_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int flag_usage(FILE *f, const char *text) {
    fputs(text, f);
    return f == stdout ? 0 : 2;
}

int flag_in(const char *name, const char *const *names) {
    for (int k = 0; names[k]; k++)
        if (strcmp(name, names[k]) == 0) return 1;
    return 0;
}

int flag_int(const char *name, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return disa_err(DISA_EINVAL, "--%s must be an integer in %lld..%lld, got '%s'", name, lo, hi, v);
    *out = x;
    return 0;
}

int flag_int32(const char *name, const char *v, int lo, int hi, int *out) {
    long long x;
    int rc = flag_int(name, v, lo, hi, &x);
    if (!rc) *out = (int)x;
    return rc;
}

int flag_u64(const char *name, const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        return disa_err(DISA_EINVAL, "--%s must be a non-negative integer, got '%s'", name, v);
    *out = x;
    return 0;
}

int flag_num(const char *name, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        return disa_err(DISA_EINVAL, "--%s must be a number in [%g, %g], got '%s'", name, lo, hi, v);
    *out = x;
    return 0;
}

// ----------------------------------------------------------------------------
// enum names

const char *flag_enum_name(const char *const *names, int n, int k) { return k >= 0 && k < n ? names[k] : "?"; }

static int name_matches(const char *s, const char *name, int match) {
    for (; *s && *name; s++, name++) {
        int a = (unsigned char)*s, b = (unsigned char)*name;
        if (match & FLAG_ICASE) a = tolower(a), b = tolower(b);
        if ((match & FLAG_DASH) && a == '_') a = '-';
        if (a != b) return 0;
    }
    return *s == *name;
}

int flag_enum_parse(int *out, const char *s, const char *const *names, int n, int match, const char *what) {
    for (int k = 0; s && k < n; k++)
        if (name_matches(s, names[k], match)) {
            *out = k;
            return 0;
        }
    char list[512];
    size_t used = 0;
    list[0] = 0;
    for (int k = 0; k < n && used < sizeof list; k++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k == 0 ? "" : k == n - 1 ? " or " : ", ",
                                 names[k]);
    return disa_err(DISA_EINVAL, "unknown %s '%s' (expected %s)", what, s ? s : "(null)", list);
}
