// log.h: one LOG macro, every line stamped "[time] [rank] [file:line] LEVEL".
#ifndef DISA_LOG_H
#define DISA_LOG_H

typedef enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_LEVEL_COUNT } log_level;

void log_set_level(log_level lv);
log_level log_get_level(void);
// Rank shown in every line; -1 (default) prints no rank (single-process tools).
void log_set_rank(int rank);
// Parse "error|warn|info|debug"; returns 0 or DISA_EINVAL.
int log_level_parse(const char *s, log_level *out);
const char *log_level_name(log_level lv);

void log_write(log_level lv, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG(lv, ...)                                                   \
    do {                                                               \
        if ((lv) <= log_get_level()) log_write((lv), __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

#endif
