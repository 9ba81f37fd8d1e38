// idx.h: IDX files, the MNIST / Fashion-MNIST container.
#ifndef DISA_IDX_H
#define DISA_IDX_H
#include <stddef.h>
#include <stdint.h>

// IDX files (MNIST / Fashion-MNIST): magic 0 0 type ndim, big-endian int32 dims, data.
// A name ending in ".gz" is decompressed with zlib while it is read.

typedef struct idx_array {
    int ndim;
    int64_t shape[4];
    uint8_t *data;            // malloc'd, owned
    size_t n;
} idx_array;

// Only unsigned-byte data (type 0x08) with 1..4 dims. DISA_EIO, DISA_EFORMAT, DISA_ENOMEM.
int idx_read(idx_array *a, const char *path);
void idx_free(idx_array *a);

#endif
