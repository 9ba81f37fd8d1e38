// err.c: per-thread error message behind disa_err (include/disa/err.h).
#include "disa/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[2048];

int disa_err(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return code;
}

int disa_err_wrap(int code, const char *fmt, ...) {
    char prefix[1024], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    size_t n = strlen(prefix);
    if (n >= sizeof g_msg) n = sizeof g_msg - 1;
    memcpy(g_msg, prefix, n);
    // Truncate the older text rather than the new context if the two do not fit.
    size_t m = strlen(old);
    if (m > sizeof g_msg - 1 - n) m = sizeof g_msg - 1 - n;
    memcpy(g_msg + n, old, m);
    g_msg[n + m] = '\0';
    return code;
}

const char *disa_errmsg(void) { return g_msg; }

void disa_err_clear(void) { g_msg[0] = '\0'; }

int disa_exit_status(int code) {
    switch (code) {
    case DISA_OK: return 0;
    case DISA_EINVAL: case DISA_EFORMAT: case DISA_ESHAPE: case DISA_ENOTFOUND: case DISA_ERANGE: return 2;
    default: return 1;
    }
}

const char *disa_strerror(int code) {
    switch (code) {
    case DISA_OK: return "ok";
    case DISA_EINVAL: return "invalid argument";
    case DISA_EIO: return "I/O error";
    case DISA_ENOMEM: return "out of memory";
    case DISA_EFORMAT: return "malformed file";
    case DISA_ESHAPE: return "shape mismatch";
    case DISA_ENOTFOUND: return "not found";
    case DISA_ERANGE: return "out of range";
    case DISA_EMPI: return "MPI error";
    case DISA_EINTERNAL: return "internal error";
    case DISA_ECANCELED: return "canceled";
    default: return "unknown error";
    }
}
