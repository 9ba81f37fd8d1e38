// safetensors.h: mmap reader that validates everything before use, and an atomic writer.
//
// Format: 8-byte little-endian header length N, N bytes of JSON mapping tensor name ->
// {dtype, shape, data_offsets: [begin, end]} (plus an optional "__metadata__" object of
// string -> string), then the raw little-endian data. Offsets are relative to the byte
// after the header. The checks follow the reference Rust implementation: N <= 100 MB,
// valid JSON, known dtype, numel * dtype size == end - begin, offsets contiguous from 0
// and the last one ending exactly at the end of the file, names unique.
#ifndef DISA_SAFETENSORS_H
#define DISA_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_HEADER (100u * 1000u * 1000u)
#define ST_MAXDIM 8

typedef enum {
    ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U64, ST_U32, ST_U16,
    ST_U8, ST_BOOL, ST_F8_E4M3, ST_F8_E5M2, ST_DTYPE_COUNT
} st_dtype;

const char *st_dtype_name(st_dtype d);
// Returns 0 and sets *out, or DISA_EFORMAT for an unknown name.
int st_dtype_parse(const char *s, st_dtype *out);
size_t st_dtype_size(st_dtype d);

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAXDIM];
    const void *data;   // into the mapping
    size_t nbytes;
    float *converted;   // float32 copy (F16/BF16 or misaligned F32), made on first use
} st_tensor;

typedef struct st_file {
    char *path;
    void *map;          // whole file, PROT_READ, or a caller buffer for st_parse
    size_t size;
    int mapped;
    st_tensor *tensors; // in header order
    int n;
    char **meta_keys, **meta_vals;
    int n_meta;
} st_file;

// Map and validate `path`. On failure nothing stays open and the message names the
// file and the problem (e.g. "x.safetensors: tensor 'a.weight': shape [3, 4] x F32 is
// 48 bytes but data_offsets span 40").
int st_open(st_file *f, const char *path);
// Validate an in-memory image (the buffer must outlive f); `label` names it in errors.
int st_parse(st_file *f, const void *buf, size_t size, const char *label);
void st_close(st_file *f);

const st_tensor *st_find(const st_file *f, const char *name);
// Metadata value or NULL.
const char *st_meta(const st_file *f, const char *key);

// Float32 data of `name`, checking its shape (ndim dims, -1 = any size; ndim < 0 skips
// the check). F32 aligned data is used in place (zero copy); F16/BF16 are converted once
// and owned by f. Errors name the tensor and its expected and actual shape or dtype.
int st_get_f32(st_file *f, const char *name, int ndim, const int64_t *shape, const float **out);

// Binding table: every entry is looked up; all missing tensors and all shape mismatches
// are listed in one message before failing.
typedef struct st_bind_entry {
    const char *name;
    const float **dst;
    int ndim;
    int64_t shape[ST_MAXDIM];
} st_bind_entry;
// Every bound tensor must also be finite: the first NaN/Inf is named with its index.
int st_bind(st_file *f, st_bind_entry *tab, int n);
// Tensors of f that no entry of tab binds and no prefix in `ignore` (NULL-terminated, may
// be NULL) covers: a config that describes a smaller model than the file holds, or a file
// of another layout. All of them (the first dozen by name) in one DISA_EFORMAT message
// ending with `hint` (what to check).
int st_check_unexpected(const st_file *f, const st_bind_entry *tab, int n, const char *const *ignore,
                        const char *hint);

// A binding table under construction, for loaders whose names carry indices
// ("decoder_blocks.%d.attn.qkv.weight"). Entries and names live in two allocations the
// caller takes over (e, names) or releases with st_table_free.
typedef struct st_table {
    st_bind_entry *e;
    int n, cap;
    int overflow;      // more entries or longer names than reserved: a miscount, a bug
    char *names;
    size_t used, names_cap;
} st_table;
// Room for `cap` entries of names up to 127 characters. DISA_ENOMEM.
int st_table_init(st_table *t, int cap);
void st_table_add(st_table *t, const float **dst, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void st_table_free(st_table *t);

// Write `path` with every tensor of `tab` (names and shapes) filled by the deterministic
// generator (dgen.h), seeded from `seed` and the tensor's position: 2-D ".weight" in the
// Xavier range, 4-D (conv) weights within +-sqrt(3 / fan_in), norm gains (1-D ".weight"
// named "norm" or "_ln") near 1, everything else within +-0.02, so activations keep
// realistic magnitudes through deep stacks. `config_json` becomes the "config" metadata.
// For tests and benchmarks of full-size shapes without real checkpoints. *params (may be
// NULL) receives the number of values written.
int st_write_generated(const st_bind_entry *tab, int n, uint64_t seed, const char *config_json, const char *path,
                       size_t *params);

// Writer. Tensors are referenced, not copied: their data must live until st_writer_write.
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
int st_writer_add(st_writer *w, const char *name, st_dtype dt, int ndim, const int64_t *shape,
                  const void *data);
int st_writer_meta(st_writer *w, const char *key, const char *value);
// Writes path.tmp, fsyncs, renames to path: a crash never leaves a partial file at path.
int st_writer_write(st_writer *w, const char *path);
void st_writer_delete(st_writer *w);

// IEEE half / bfloat16 to float.
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);

#endif
