// npy.h: NumPy .npy files (format version 1.0/2.0), little-endian, C order.
#ifndef DISA_NPY_H
#define DISA_NPY_H
#include <stddef.h>
#include <stdint.h>

typedef enum { NPY_F32, NPY_F64, NPY_U8, NPY_I64, NPY_I32, NPY_DTYPE_COUNT } npy_dtype;
const char *npy_dtype_descr(npy_dtype d);  // "<f4", "<f8", "|u1", "<i8", "<i4"
size_t npy_dtype_size(npy_dtype d);

typedef struct npy_array {
    npy_dtype dtype;
    int ndim;
    int64_t shape[8];
    void *data;       // malloc'd, owned by the array
    size_t nbytes;
} npy_array;

// Serialise the .npy header for (dtype, shape) into buf (at most 256 bytes for <= 8 dims);
// returns its length (a multiple of 64, as numpy writes it).
size_t npy_header(char *buf, size_t cap, npy_dtype dt, int ndim, const int64_t *shape);
// Write path.tmp and rename: a crash never leaves a partial file at `path`.
int npy_write(const char *path, npy_dtype dt, int ndim, const int64_t *shape, const void *data);
// Bytes of the magic, version, length fields and header dict at the start of buf (at
// least 12 bytes of it): 0, or DISA_EFORMAT (no message) when buf is not an .npy start.
int npy_prefix_size(const void *buf, size_t size, size_t *total);
// Parse the header at the start of buf (which holds at least the whole header): dtype,
// ndim, shape and nbytes into *a (data NULL), the data's offset into *data_off; for
// reading the data in pieces (a stream). `label` names it in errors.
int npy_parse_header(npy_array *a, size_t *data_off, const void *buf, size_t size, const char *label);
// Parse an in-memory .npy; data copied into a fresh allocation. `label` names it in errors.
int npy_parse(npy_array *a, const void *buf, size_t size, const char *label);
int npy_read(npy_array *a, const char *path);
void npy_free(npy_array *a);

#endif
