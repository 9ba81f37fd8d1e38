// arena.c: bump allocator (include/disa/arena.h).
#include "disa/arena.h"
#include "disa/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_ALIGN 64  // cache line; also satisfies AVX-512 aligned loads

// A large arena holds the activations every GEMM packs and every element-wise pass streams
// (hundreds of MiB for MAR-B at batch 64): on 2 MiB pages those take far fewer TLB misses
// (MAR-B's transformer at batch 64 ran ~2.5% faster). Transparent huge pages in "madvise"
// mode, Debian's default, go only to ranges that ask; where THP is off the advice is
// ignored. Values do not depend on it.
enum { HUGE_MIN = 4 << 20, HUGE_ALIGN = 2 << 20 };

int arena_init(arena *a, size_t cap, const char *name) {
    memset(a, 0, sizeof *a);
    a->name = name ? name : "arena";
    if (cap == 0) return 0;
    size_t align = cap >= HUGE_MIN ? HUGE_ALIGN : ARENA_ALIGN;
    if (posix_memalign((void **)&a->base, align, cap) != 0)
        return disa_err(DISA_ENOMEM, "arena '%s': cannot reserve %zu bytes (%.1f MiB)", a->name,
                        cap, cap / 1048576.0);
    if (align == HUGE_ALIGN) (void)madvise(a->base, cap & ~(size_t)(HUGE_ALIGN - 1), MADV_HUGEPAGE);
    a->cap = cap;
    return 0;
}

void arena_free(arena *a) {
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

void *arena_alloc_at(arena *a, size_t bytes, const char *file, int line) {
    size_t start = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    // Overflow guard: `bytes` may come from a product of sizes read from a file.
    if (start < a->used || bytes > a->cap || start > a->cap - bytes) {
        disa_err(DISA_ENOMEM, "arena '%s': need %zu bytes at %s:%d, %zu of %zu available", a->name,
                 bytes, file, line, a->cap > a->used ? a->cap - a->used : 0, a->cap);
        return NULL;
    }
    a->used = start + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + start;
}

size_t arena_mark(const arena *a) { return a->used; }

void arena_reset(arena *a, size_t mark) {
    if (mark <= a->used) a->used = mark;
}

// ----------------------------------------------------------------------------
// heap buffers (the caller's pointer is read and written through memcpy: it is a T *,
// not a void *)

int mem_grow(void *pp, int *cap, int n, size_t size, int first) {
    if (n < *cap) return 0;
    int c = *cap ? 2 * *cap : first;
    void *p;
    memcpy(&p, pp, sizeof p);
    void *q = realloc(p, size * (size_t)c);
    if (!q) return DISA_ENOMEM;
    memcpy(pp, &q, sizeof q);
    *cap = c;
    return 0;
}

int mem_reserve(void *pp, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    void *p;
    memcpy(&p, pp, sizeof p);
    free(p);
    p = malloc(need);
    memcpy(pp, &p, sizeof p);
    *cap = p ? need : 0;
    return p ? 0 : DISA_ENOMEM;
}
