// safetensors.c: validating mmap reader and atomic writer (include/disa/safetensors.h).
// The checks mirror huggingface/safetensors (Rust): SafeTensors::read_metadata/validate.
#include "disa/safetensors.h"
#include "disa/arena.h"
#include "disa/err.h"
#include "disa/json.h"
#include "disa/tensor.h"
#include "disa/vec.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; size_t size; } g_dtypes[ST_DTYPE_COUNT] = {
    [ST_F64] = {"F64", 8},   [ST_F32] = {"F32", 4},   [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I64] = {"I64", 8},   [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2},   [ST_I8] = {"I8", 1},     [ST_U64] = {"U64", 8},
    [ST_U32] = {"U32", 4},   [ST_U16] = {"U16", 2},   [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *st_dtype_name(st_dtype d) { return d < ST_DTYPE_COUNT ? g_dtypes[d].name : "?"; }
size_t st_dtype_size(st_dtype d) { return d < ST_DTYPE_COUNT ? g_dtypes[d].size : 0; }

int st_dtype_parse(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, g_dtypes[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    return DISA_EFORMAT;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);  // inf / nan
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        // Subnormal half: normalise the mantissa.
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float st_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// ----------------------------------------------------------------------------
// reader

static void st_reset(st_file *f) {
    for (int i = 0; i < f->n; i++) {
        free(f->tensors[i].name);
        free(f->tensors[i].converted);
    }
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->mapped && f->map) munmap(f->map, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

void st_close(st_file *f) { st_reset(f); }

static int cmp_by_offset(const void *a, const void *b) {
    const st_tensor *x = a, *y = b;
    const char *bx = x->data, *by = y->data;
    return bx < by ? -1 : bx > by ? 1 : 0;
}

// Read a JSON number that must be a non-negative integer representable exactly.
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_meta(st_file *f, const cJSON *meta, const char *label) {
    if (!cJSON_IsObject(meta))
        return disa_err(DISA_EFORMAT, "%s: '__metadata__' must be an object of strings", label);
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = calloc((size_t)n + 1, sizeof(char *));
    f->meta_vals = calloc((size_t)n + 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_vals) return disa_err(DISA_ENOMEM, "%s: out of memory", label);
    const cJSON *it;
    cJSON_ArrayForEach(it, meta) {
        if (!cJSON_IsString(it))
            return disa_err(DISA_EFORMAT, "%s: __metadata__ value of '%s' must be a string", label,
                            it->string);
        f->meta_keys[f->n_meta] = strdup(it->string);
        f->meta_vals[f->n_meta] = strdup(it->valuestring);
        f->n_meta++;
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_vals[f->n_meta - 1])
            return disa_err(DISA_ENOMEM, "%s: out of memory", label);
    }
    return 0;
}

static int parse_entry(st_tensor *t, const cJSON *e, const char *base, uint64_t data_len,
                       uint64_t *begin, const char *label) {
    const char *nm = e->string;
    if (!cJSON_IsObject(e))
        return disa_err(DISA_EFORMAT, "%s: tensor '%s': entry must be an object", label, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return disa_err(DISA_EFORMAT, "%s: tensor '%s': missing string 'dtype'", label, nm);
    if (st_dtype_parse(dt->valuestring, &t->dtype) != 0)
        return disa_err(DISA_EFORMAT,
                        "%s: tensor '%s': unknown dtype '%s' (known: F64 F32 F16 BF16 I64 I32 "
                        "I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2)", label, nm, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return disa_err(DISA_EFORMAT, "%s: tensor '%s': missing array 'shape'", label, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAXDIM)
        return disa_err(DISA_EFORMAT, "%s: tensor '%s': %d dimensions, at most %d supported", label,
                        nm, nd, ST_MAXDIM);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(cJSON_GetArrayItem(sh, i), &d) != 0)
            return disa_err(DISA_EFORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                            label, nm, i);
        // Overflow guard: a lying header could name a shape whose product wraps around.
        if (d != 0 && numel > UINT64_MAX / d)
            return disa_err(DISA_EFORMAT, "%s: tensor '%s': shape overflows", label, nm);
        numel *= d;
        t->shape[i] = (int64_t)d;
    }
    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        json_u64(cJSON_GetArrayItem(off, 0), &b) != 0 || json_u64(cJSON_GetArrayItem(off, 1), &en) != 0)
        return disa_err(DISA_EFORMAT, "%s: tensor '%s': 'data_offsets' must be [begin, end]", label, nm);
    if (en < b)
        return disa_err(DISA_EFORMAT, "%s: tensor '%s': data_offsets end %llu < begin %llu", label, nm,
                        (unsigned long long)en, (unsigned long long)b);
    if (en > data_len)
        return disa_err(DISA_EFORMAT, "%s: tensor '%s': data_offsets end %llu is past the data (%llu bytes); "
                        "the file may be truncated", label, nm, (unsigned long long)en,
                        (unsigned long long)data_len);
    size_t es = st_dtype_size(t->dtype);
    if (numel > UINT64_MAX / es || numel * es != en - b) {
        char s[128];
        shape_str(s, sizeof s, nd, t->shape);
        return disa_err(DISA_EFORMAT, "%s: tensor '%s': shape %s x %s is %llu bytes but data_offsets span %llu",
                        label, nm, s, dt->valuestring, (unsigned long long)(numel * es),
                        (unsigned long long)(en - b));
    }
    t->data = base + b;
    t->nbytes = (size_t)(en - b);
    *begin = b;
    return 0;
}

int st_parse(st_file *f, const void *buf, size_t size, const char *label) {
    memset(f, 0, sizeof *f);
    const unsigned char *p = buf;
    cJSON *root = NULL;
    int rc;
    if (size < 8) {
        rc = disa_err(DISA_EFORMAT, "%s: %zu bytes, too short for a safetensors file (8-byte header length)",
                      label, size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > ST_MAX_HEADER) {
        rc = disa_err(DISA_EFORMAT, "%s: header length %llu exceeds the %u-byte limit", label,
                      (unsigned long long)hlen, ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        rc = disa_err(DISA_EFORMAT, "%s: header length %llu but only %zu bytes follow; the file is truncated",
                      label, (unsigned long long)hlen, size - 8);
        goto fail;
    }
    if (hlen < 2 || p[8] != '{') {
        rc = disa_err(DISA_EFORMAT, "%s: header does not start with a JSON object", label);
        goto fail;
    }
    // Header arrays are shapes and offsets; the one big object is the tensor list.
    char where[1100];
    snprintf(where, sizeof where, "%s: header", label);
    if ((rc = json_parse_strict(&root, (const char *)p + 8, (size_t)hlen, 1u << 20, where)) != 0) goto fail;
    if (!cJSON_IsObject(root)) {
        rc = disa_err(DISA_EFORMAT, "%s: header is not a JSON object", label);
        goto fail;
    }
    const char *base = (const char *)p + 8 + hlen;
    uint64_t data_len = size - 8 - hlen;
    int count = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)count + 1, sizeof(st_tensor));
    if (!f->tensors) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory for %d tensors", label, count);
        goto fail;
    }
    const cJSON *e;
    int have_meta = 0;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (have_meta++) {
                rc = disa_err(DISA_EFORMAT, "%s: '__metadata__' appears twice", label);
                goto fail;
            }
            if ((rc = parse_meta(f, e, label)) != 0) goto fail;
            continue;
        }
        st_tensor *t = &f->tensors[f->n];
        uint64_t b;
        if ((rc = parse_entry(t, e, base, data_len, &b, label)) != 0) goto fail;
        t->name = strdup(e->string);
        if (!t->name) {
            rc = disa_err(DISA_ENOMEM, "%s: out of memory", label);
            goto fail;
        }
        f->n++;
    }
    // Names unique: cJSON keeps duplicate keys, the format forbids them.
    for (int i = 0; i < f->n; i++)
        for (int j = i + 1; j < f->n; j++)
            if (strcmp(f->tensors[i].name, f->tensors[j].name) == 0) {
                rc = disa_err(DISA_EFORMAT, "%s: tensor '%s' appears twice in the header", label,
                              f->tensors[i].name);
                goto fail;
            }
    // Offsets contiguous from 0 to the end of the file: check on a sorted copy so the
    // header order (kept for listing) is not changed.
    if (f->n > 0) {
        st_tensor *s = malloc(sizeof(st_tensor) * (size_t)f->n);
        if (!s) {
            rc = disa_err(DISA_ENOMEM, "%s: out of memory", label);
            goto fail;
        }
        memcpy(s, f->tensors, sizeof(st_tensor) * (size_t)f->n);
        qsort(s, (size_t)f->n, sizeof *s, cmp_by_offset);
        const char *expect = base;
        for (int i = 0; i < f->n; i++) {
            if ((const char *)s[i].data != expect) {
                rc = disa_err(DISA_EFORMAT, "%s: tensor '%s' starts at data offset %td, expected %td "
                              "(offsets must be contiguous, without gaps or overlaps)", label, s[i].name,
                              (const char *)s[i].data - base, expect - base);
                free(s);
                goto fail;
            }
            expect += s[i].nbytes;
        }
        free(s);
        if ((uint64_t)(expect - base) != data_len) {
            rc = disa_err(DISA_EFORMAT, "%s: tensors end at data offset %td but the file has %llu data bytes "
                          "(trailing bytes)", label, expect - base, (unsigned long long)data_len);
            goto fail;
        }
    } else if (data_len != 0) {
        rc = disa_err(DISA_EFORMAT, "%s: no tensors but %llu data bytes", label, (unsigned long long)data_len);
        goto fail;
    }
    cJSON_Delete(root);
    f->map = (void *)buf;
    f->size = size;
    f->path = strdup(label);
    return 0;
fail:
    cJSON_Delete(root);
    st_reset(f);
    return rc;
}

int st_open(st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return disa_err(errno == ENOENT ? DISA_ENOTFOUND : DISA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return disa_err(DISA_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return disa_err(DISA_EFORMAT, "%s: %zu bytes, too short for a safetensors file (8-byte header length)",
                        path, size);
    }
    // MAP_PRIVATE read-only: ranks on one node share the page cache copy of the weights.
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return disa_err(DISA_EIO, "%s: mmap failed: %s", path, strerror(errno));
    int rc = st_parse(f, map, size, path);
    if (rc != 0) {
        munmap(map, size);
        return rc;
    }
    f->mapped = 1;
    return 0;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

static int shape_matches(const st_tensor *t, int ndim, const int64_t *shape) {
    if (ndim < 0) return 1;
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) return 0;
    return 1;
}

int st_get_f32(st_file *f, const char *name, int ndim, const int64_t *shape, const float **out) {
    *out = NULL;
    st_tensor *t = (st_tensor *)st_find(f, name);
    if (!t) return disa_err(DISA_ENOTFOUND, "%s: tensor '%s' is missing", f->path, name);
    if (!shape_matches(t, ndim, shape)) {
        char g[128], w[128];
        return disa_err(DISA_ESHAPE, "%s: tensor '%s': got %s, expected %s", f->path, name,
                        shape_str(g, sizeof g, t->ndim, t->shape), shape_str(w, sizeof w, ndim, shape));
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return disa_err(DISA_EFORMAT, "%s: tensor '%s' has dtype %s; float tensors must be F32, F16 or BF16",
                        f->path, name, st_dtype_name(t->dtype));
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return 0;
    }
    if (!t->converted) {
        size_t n = t->nbytes / st_dtype_size(t->dtype);
        t->converted = malloc(n ? n * sizeof(float) : 1);
        if (!t->converted) return disa_err(DISA_ENOMEM, "%s: tensor '%s': out of memory converting %zu values",
                                           f->path, name, n);
        const unsigned char *src = t->data;
        for (size_t i = 0; i < n; i++) {
            if (t->dtype == ST_F32) {
                memcpy(&t->converted[i], src + 4 * i, 4);
            } else {
                uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
                t->converted[i] = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
            }
        }
    }
    *out = t->converted;
    return 0;
}

int st_bind(st_file *f, st_bind_entry *tab, int n) {
    char msg[8192];
    size_t used = 0;
    int bad = 0, nonfinite = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        int r = st_get_f32(f, tab[i].name, tab[i].ndim, tab[i].shape, tab[i].dst);
        if (r == 0) {
            // A NaN or Inf weight makes every image that touches it black without an error
            // (a damaged download, a diverged checkpoint): refuse it where it is.
            const st_tensor *t = st_find(f, tab[i].name);
            size_t cnt = t->nbytes / st_dtype_size(t->dtype), at = tensor_first_nonfinite(*tab[i].dst, cnt);
            if (at < cnt) {
                float v = (*tab[i].dst)[at];
                nonfinite++;
                r = disa_err(DISA_EFORMAT, "%s: tensor '%s' holds %s at index %zu of %zu (a damaged or diverged "
                             "checkpoint)", f->path, tab[i].name, v != v ? "NaN" : v > 0 ? "+Inf" : "-Inf", at, cnt);
            }
        }
        if (r != 0) {
            if (!rc) rc = r;
            bad++;
            // The first dozen problems in full; a wrong config usually shows in all of them.
            if (bad <= 12 && used < sizeof msg)
                used += (size_t)snprintf(msg + used, sizeof msg - used, "\n  %s", disa_errmsg());
        }
    }
    if (!bad) return 0;
    if (bad > 12 && used < sizeof msg)
        snprintf(msg + used, sizeof msg - used, "\n  ... and %d more", bad - 12);
    return disa_err(rc, "%s: %d of %d tensors %s:%s", f->path, bad, n,
                    nonfinite == bad ? "not finite" : nonfinite ? "missing, mis-shaped or not finite" : "missing or mis-shaped",
                    msg);
}

int st_check_unexpected(const st_file *f, const st_bind_entry *tab, int n, const char *const *ignore,
                        const char *hint) {
    char msg[2048];
    size_t used = 0;
    int bad = 0;
    for (int i = 0; i < f->n; i++) {
        const char *name = f->tensors[i].name;
        int skip = 0;
        for (int k = 0; ignore && ignore[k] && !skip; k++) skip = strncmp(name, ignore[k], strlen(ignore[k])) == 0;
        for (int j = 0; j < n && !skip; j++) skip = strcmp(tab[j].name, name) == 0;
        if (skip) continue;
        if (bad++ < 12 && used < sizeof msg)
            used += (size_t)snprintf(msg + used, sizeof msg - used, "\n  unexpected tensor '%s'", name);
    }
    if (!bad) return 0;
    if (bad > 12 && used < sizeof msg) snprintf(msg + used, sizeof msg - used, "\n  ... and %d more", bad - 12);
    return disa_err(DISA_EFORMAT, "%s: %d tensor%s the config does not describe (%s):%s", f->path, bad,
                    bad == 1 ? "" : "s", hint, msg);
}

int st_table_init(st_table *t, int cap) {
    memset(t, 0, sizeof *t);
    t->cap = cap;
    t->names_cap = (size_t)cap * 128;
    t->e = calloc((size_t)(cap > 0 ? cap : 1), sizeof(st_bind_entry));
    t->names = malloc(t->names_cap ? t->names_cap : 1);
    if (!t->e || !t->names) {
        st_table_free(t);
        return disa_err(DISA_ENOMEM, "binding table: out of memory for %d tensors", cap);
    }
    return 0;
}

void st_table_add(st_table *t, const float **dst, int ndim, const int64_t *shape, const char *fmt, ...) {
    if (t->n == t->cap || t->names_cap - t->used < 128 || ndim > ST_MAXDIM) {
        t->overflow = 1;
        return;
    }
    st_bind_entry *e = &t->e[t->n++];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->names + t->used, 128, fmt, ap);
    va_end(ap);
    if (k >= 128) t->overflow = 1;
    e->name = t->names + t->used;
    t->used += (size_t)(k < 128 ? k : 127) + 1;
    e->dst = dst;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
}

void st_table_free(st_table *t) {
    free(t->e);
    free(t->names);
    t->e = NULL;
    t->names = NULL;
}

// ----------------------------------------------------------------------------
// writer

typedef struct { char *name; st_dtype dt; int ndim; int64_t shape[ST_MAXDIM]; const void *data; size_t nbytes; } wt;

struct st_writer {
    wt *t;
    int n, cap;
    cJSON *meta;
};

st_writer *st_writer_new(void) {
    st_writer *w = calloc(1, sizeof *w);
    if (w) w->meta = cJSON_CreateObject();
    if (!w || !w->meta) {
        free(w);
        disa_err(DISA_ENOMEM, "safetensors writer: out of memory");
        return NULL;
    }
    return w;
}

int st_writer_add(st_writer *w, const char *name, st_dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (ndim < 0 || ndim > ST_MAXDIM) return disa_err(DISA_EINVAL, "tensor '%s': %d dimensions", name, ndim);
    if (strcmp(name, "__metadata__") == 0) return disa_err(DISA_EINVAL, "'__metadata__' is not a tensor name");
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) return disa_err(DISA_EINVAL, "tensor '%s' added twice", name);
    if (mem_grow(&w->t, &w->cap, w->n, sizeof *w->t, 16))
        return disa_err(DISA_ENOMEM, "safetensors writer: out of memory");
    wt *t = &w->t[w->n];
    t->name = strdup(name);
    if (!t->name) return disa_err(DISA_ENOMEM, "safetensors writer: out of memory");
    t->dt = dt;
    t->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    t->data = data;
    t->nbytes = numel * st_dtype_size(dt);
    w->n++;
    return 0;
}

int st_writer_meta(st_writer *w, const char *key, const char *value) {
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    if (!cJSON_AddStringToObject(w->meta, key, value))
        return disa_err(DISA_ENOMEM, "safetensors writer: out of memory");
    return 0;
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int st_writer_write(st_writer *w, const char *path) {
    int rc = 0, fd = -1;
    char *hdr = NULL, *tmp = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
    if (cJSON_GetArraySize(w->meta) > 0)
        cJSON_AddItemReferenceToObject(root, "__metadata__", w->meta);
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(root, w->t[i].name, e);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(w->t[i].dt));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < w->t[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)w->t[i].shape[d]));
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + w->t[i].nbytes)));
        off += w->t[i].nbytes;
    }
    hdr = cJSON_PrintUnformatted(root);
    if (!hdr) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;  // 8-byte aligned data
    tmp = malloc(strlen(path) + 8);
    if (!tmp) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    sprintf(tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = disa_err(DISA_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    int bad = write_all(fd, len8, 8) || write_all(fd, hdr, hl) || write_all(fd, spaces, padded - hl);
    for (int i = 0; i < w->n && !bad; i++) bad = write_all(fd, w->t[i].data, w->t[i].nbytes);
    if (bad || fsync(fd) != 0) {
        rc = disa_err(DISA_EIO, "%s: write failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = disa_err(DISA_EIO, "%s: close failed: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = disa_err(DISA_EIO, "%s: rename to %s failed: %s", tmp, path, strerror(errno));
        goto out;
    }
out:
    if (fd >= 0) close(fd);
    if (rc != 0 && tmp) unlink(tmp);
    free(tmp);
    free(hdr);
    cJSON_Delete(root);  // references to w->meta are not freed by this
    return rc;
}

void st_writer_delete(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    cJSON_Delete(w->meta);
    free(w);
}
