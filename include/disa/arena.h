// arena.h: bump allocator for activations.
//
// Three lifetimes exist in the engine: mmap'd weights, a run arena sized once from the
// config, and a scratch arena reset with arena_mark/arena_reset at every AR step. Hot
// loops allocate only from arenas, never with malloc.
#ifndef DISA_ARENA_H
#define DISA_ARENA_H
#include <stddef.h>

typedef struct arena {
    char *base;
    size_t cap;   // bytes available
    size_t used;  // bytes handed out (including alignment padding)
    size_t peak;  // high-water mark, for sizing reports
    const char *name;
} arena;

// Reserve `cap` bytes. Fails with DISA_ENOMEM naming the arena and the size.
int arena_init(arena *a, size_t cap, const char *name);
void arena_free(arena *a);

// 64-byte aligned block, valid until arena_reset below it or arena_free. Returns NULL on
// overflow and records "arena 'NAME': need X bytes at FILE:LINE, Y of Z available".
void *arena_alloc_at(arena *a, size_t bytes, const char *file, int line);
#define arena_alloc(a, n) arena_alloc_at((a), (n), __FILE__, __LINE__)
#define arena_floats(a, n) ((float *)arena_alloc_at((a), (size_t)(n) * sizeof(float), __FILE__, __LINE__))

size_t arena_mark(const arena *a);
void arena_reset(arena *a, size_t mark);

// ----------------------------------------------------------------------------
// Heap buffers outside the hot loops: tables that grow as they are filled (reports,
// signatures, tensors to write) and scratch that grows to the largest batch seen.
// Both take the address of the caller's pointer (T **, passed as void *) and leave the
// message to the caller, who knows what the memory was for.

// Room for element n of the array *pp of `size`-byte elements, capacity *cap: when n
// reaches *cap the array doubles (to `first` elements from empty), contents kept.
// 0, or DISA_ENOMEM with the array and *cap unchanged.
int mem_grow(void *pp, int *cap, int n, size_t size, int first);
// At least `need` bytes at *pp, capacity *cap bytes: a smaller buffer is freed and a
// new one allocated, contents not kept. 0, or DISA_ENOMEM with *pp NULL and *cap 0.
int mem_reserve(void *pp, size_t *cap, size_t need);

#endif
