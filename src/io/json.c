// json.c: the strict JSON policy around cJSON (include/disa/json.h).
#include "disa/json.h"
#include "disa/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Deeper nesting than any file of ours needs; cJSON's own limit is 1000.
enum { JSON_MAX_DEPTH = 256 };

// Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one (RFC 3629:
// shortest form only, no surrogates, at most U+10FFFF).
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) k = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) k = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) k = 4, cp = c & 0x07;
    else return 0;
    if (k > n) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

static int hex4(const unsigned char *s, size_t n, unsigned *out) {
    if (n < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

// The lexical pass: encoding, string contents, nesting and array lengths, before cJSON
// allocates anything. Malformed JSON that is none of these is left for cJSON to report.
static int lex_check(const unsigned char *s, size_t len, size_t max_array, const char *label) {
    size_t count[JSON_MAX_DEPTH];  // elements so far in each open array or object
    size_t start[JSON_MAX_DEPTH];  // their offsets
    char kind[JSON_MAX_DEPTH];     // '[' or '{'
    int depth = 0;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c == 0) return disa_err(DISA_EFORMAT, "%s: NUL byte at offset %zu", label, i);
        if (c >= 0x80) {
            size_t k = utf8_len(s + i, len - i);
            if (!k) return disa_err(DISA_EFORMAT, "%s: invalid UTF-8 at byte offset %zu", label, i);
            i += k;
            continue;
        }
        if (c == '"') {
            size_t s0 = i++;
            for (;;) {
                if (i >= len) return disa_err(DISA_EFORMAT, "%s: string at offset %zu is not closed", label, s0);
                unsigned d = s[i];
                if (d == '"') break;
                if (d == 0) return disa_err(DISA_EFORMAT, "%s: NUL byte at offset %zu", label, i);
                if (d < 0x20)
                    return disa_err(DISA_EFORMAT, "%s: control character 0x%02x inside the string at offset %zu "
                                    "(write it as an escape)", label, d, s0);
                if (d >= 0x80) {
                    size_t k = utf8_len(s + i, len - i);
                    if (!k) return disa_err(DISA_EFORMAT, "%s: invalid UTF-8 at byte offset %zu", label, i);
                    i += k;
                    continue;
                }
                if (d == '\\' && i + 1 < len && s[i + 1] == 'u') {
                    unsigned u, lo;
                    if (hex4(s + i + 2, len - i - 2, &u) != 0) {
                        i += 2;  // cJSON reports the malformed escape
                        continue;
                    }
                    if (u == 0)
                        return disa_err(DISA_EFORMAT, "%s: the string at offset %zu contains \\u0000 (NUL is not "
                                        "allowed in strings)", label, s0);
                    if (u >= 0xDC00 && u <= 0xDFFF)
                        return disa_err(DISA_EFORMAT, "%s: unpaired surrogate \\u%04x in the string at offset %zu",
                                        label, u, s0);
                    if (u >= 0xD800 && u <= 0xDBFF) {
                        if (!(i + 11 < len && s[i + 6] == '\\' && s[i + 7] == 'u' &&
                              hex4(s + i + 8, len - i - 8, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF))
                            return disa_err(DISA_EFORMAT, "%s: unpaired surrogate \\u%04x in the string at offset %zu",
                                            label, u, s0);
                        i += 12;
                        continue;
                    }
                    i += 6;
                    continue;
                }
                i += d == '\\' ? 2 : 1;
            }
            i++;
            if (depth > 0 && count[depth - 1] == 0) count[depth - 1] = 1;
            continue;
        }
        if (c == '[' || c == '{') {
            if (depth > 0 && count[depth - 1] == 0) count[depth - 1] = 1;
            if (depth == JSON_MAX_DEPTH)
                return disa_err(DISA_EFORMAT, "%s: nesting deeper than %d levels at offset %zu", label, JSON_MAX_DEPTH, i);
            kind[depth] = (char)c;
            start[depth] = i;
            count[depth++] = 0;
        } else if (c == ']' || c == '}') {
            if (depth > 0) depth--;
        } else if (c == ',') {
            if (depth > 0 && ++count[depth - 1] > max_array)
                return disa_err(DISA_ERANGE, "%s: an %s at offset %zu has more than %zu elements", label,
                                kind[depth - 1] == '[' ? "array" : "object", start[depth - 1], max_array);
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            // A number, true/false/null or a stray character: it makes the container non-empty.
            if (depth > 0 && count[depth - 1] == 0) count[depth - 1] = 1;
        }
        i++;
    }
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// A key twice in one object, searched through the whole tree. Objects of many keys are
// sorted (a quadratic scan of a hostile object could take hours).
static int dup_check(const cJSON *o, const char *label, const char *path) {
    if (cJSON_IsObject(o)) {
        int n = cJSON_GetArraySize(o);
        const char *dup = NULL;
        if (n <= 32) {
            for (const cJSON *a = o->child; a && !dup; a = a->next)
                for (const cJSON *b = a->next; b; b = b->next)
                    if (strcmp(a->string, b->string) == 0) {
                        dup = a->string;
                        break;
                    }
        } else {
            const char **names = malloc(sizeof(char *) * (size_t)n);
            if (!names) return disa_err(DISA_ENOMEM, "%s: out of memory checking keys", label);
            int k = 0;
            for (const cJSON *a = o->child; a; a = a->next) names[k++] = a->string;
            qsort(names, (size_t)k, sizeof *names, cmp_name);
            for (int i = 1; i < k && !dup; i++)
                if (strcmp(names[i - 1], names[i]) == 0) dup = names[i];
            int rc = dup ? disa_err(DISA_EFORMAT, "%s: key '%s%s%s' appears twice", label, path, *path ? "." : "", dup)
                         : 0;
            free(names);
            if (rc) return rc;
        }
        if (dup) return disa_err(DISA_EFORMAT, "%s: key '%s%s%s' appears twice", label, path, *path ? "." : "", dup);
    }
    for (const cJSON *c = o->child; c; c = c->next) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c)) continue;
        char sub[256];
        if (cJSON_IsObject(o)) snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", c->string);
        else snprintf(sub, sizeof sub, "%s[]", path);
        int rc = dup_check(c, label, sub);
        if (rc) return rc;
    }
    return 0;
}

int json_parse_strict(cJSON **out, const char *text, size_t len, size_t max_array, const char *label) {
    *out = NULL;
    int rc = lex_check((const unsigned char *)text, len, max_array, label);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : len;
        return disa_err(DISA_EFORMAT, "%s: not valid JSON (at byte offset %zu)", label, off);
    }
    for (const char *p = end; p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return disa_err(DISA_EFORMAT, "%s: text after the JSON value at byte offset %td", label, p - text);
        }
    if ((rc = dup_check(root, label, "")) != 0) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return 0;
}

int json_check_keys(const cJSON *o, const char *const *known, const char *label, const char *where) {
    for (const cJSON *it = o ? o->child : NULL; it; it = it->next) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++) ok = strcmp(it->string, known[i]) == 0;
        if (ok) continue;
        char list[1024];
        size_t used = 0;
        for (int i = 0; known[i] && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? " " : "", known[i]);
        return disa_err(DISA_EINVAL, "%s: unknown key '%s%s%s' (known: %s)", label, where, *where ? "." : "",
                        it->string, list);
    }
    return 0;
}

int json_read_file(char **text, size_t *len, const char *path, size_t max_bytes) {
    *text = NULL;
    *len = 0;
    // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return disa_err(errno == ENOENT ? DISA_ENOTFOUND : DISA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return disa_err(DISA_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        close(fd);
        return disa_err(DISA_ERANGE, "%s: %lld bytes, larger than the %zu-byte limit for this file", path,
                        (long long)sb.st_size, max_bytes);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return disa_err(DISA_ENOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    if (got != n) {
        free(buf);
        return disa_err(DISA_EIO, "%s: read %zu of %zu bytes (the file changed while being read?)", path, got, n);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}
