// json.h: one strict JSON policy for job files, model configs and safetensors headers.
//
// cJSON (Debian's libcjson 1.7.15) parses; it accepts things a file we trust must not
// hold, so a lexical pass before it and a walk after it refuse them:
//   - bytes that are not UTF-8 (overlong forms, surrogates, > U+10FFFF) and raw NUL bytes:
//     cJSON copies them into strings, and run.json/summary.json would then not be UTF-8;
//   - the escape \u0000 and unpaired surrogate escapes: cJSON would cut the string at the
//     NUL ("DiSA\u0000junk" read as "DiSA") or write an invalid code point;
//   - arrays longer than a caller's bound, counted before cJSON builds them (each element
//     is a ~64-byte node: a 50 MB array of numbers would take 1.5 GB);
//   - anything but whitespace after the value (cJSON stops at the end of the value);
//   - a key twice in one object (cJSON keeps both and lookups return the first).
// Types are the caller's business: json_get_* below refuse a number given as a string.
#ifndef DISA_JSON_H
#define DISA_JSON_H
#include <stddef.h>

#include <cJSON.h>

// Parse text[0..len) under the policy above. max_array bounds every array's length.
// On success *out is the caller's to cJSON_Delete. Errors (DISA_EFORMAT, DISA_ERANGE,
// DISA_ENOMEM) name `label` and, where there is one, the byte offset and the key.
int json_parse_strict(cJSON **out, const char *text, size_t len, size_t max_array, const char *label);

// Every key of object `o` must be in `known` (NULL-terminated): DISA_EINVAL naming the first
// other key as "LABEL: unknown key 'WHERE.k' (known: a b c)", WHERE omitted when "".
int json_check_keys(const cJSON *o, const char *const *known, const char *label, const char *where);

// Read a whole regular file of at most max_bytes into a NUL-terminated buffer (the
// caller's to free). The size is checked with fstat before anything is read, and FIFOs,
// devices and directories are refused without blocking. DISA_ENOTFOUND, DISA_EIO,
// DISA_ERANGE (too big, with the limit in the message), DISA_ENOMEM.
int json_read_file(char **text, size_t *len, const char *path, size_t max_bytes);

#endif
