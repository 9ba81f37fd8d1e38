// log.c: leveled log lines "[2026-11-26 22:10:03.123] [r0] [file.c:42] INFO msg" on stderr.
#include "disa/log.h"
#include "disa/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static log_level g_level = LOG_INFO;
static int g_rank = -1;
static const char *const g_names[LOG_LEVEL_COUNT] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_set_level(log_level lv) { g_level = lv; }
log_level log_get_level(void) { return g_level; }
void log_set_rank(int rank) { g_rank = rank; }

const char *log_level_name(log_level lv) {
    return (lv >= 0 && lv < LOG_LEVEL_COUNT) ? g_names[lv] : "?";
}

int log_level_parse(const char *s, log_level *out) {
    for (int i = 0; i < LOG_LEVEL_COUNT; i++) {
        if (strcasecmp(s, g_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return disa_err(DISA_EINVAL, "log level must be one of error|warn|info|debug, got '%s'", s);
}

void log_write(log_level lv, const char *file, int line, const char *fmt, ...) {
    char stamp[32], msg[4096], rank[16] = "";
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    if (g_rank >= 0) snprintf(rank, sizeof rank, " [r%d]", g_rank);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    // One fprintf per line so lines from threads and ranks sharing a terminal do not interleave.
    fprintf(stderr, "[%s.%03d]%s [%s:%d] %s %s\n", stamp, (int)(tv.tv_usec / 1000), rank, base,
            line, g_names[lv], msg);
}
