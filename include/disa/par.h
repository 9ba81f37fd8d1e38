// par.h: row-parallel loops for the element-wise work between matmuls.
//
// OpenBLAS and oneDNN run the GEMMs on every thread of a rank; LayerNorm, GELU, softmax
// and the conversions between them would otherwise run on the calling thread alone while
// the other cores wait. par_for splits a range of rows into one contiguous chunk per
// thread; each row is computed by the same code whichever thread runs it, so results are
// bit-identical to the serial loop for any thread count. The helpers are pthreads that
// sleep between loops (no spinning against the GEMM threads) and no OpenMP is involved,
// so fp32 runs stay free of it.
#ifndef DISA_PAR_H
#define DISA_PAR_H
#include <stddef.h>

// fn(ctx, lo, hi) handles rows [lo, hi).
typedef void (*par_fn)(void *ctx, size_t lo, size_t hi);

// Run fn over [0, n): the caller takes the first chunk, up to par_threads() - 1 helpers
// the others; returns when all are done. Chunks hold at least `grain` rows, so small
// ranges (and calls from inside a chunk) run on the caller alone. Cannot fail: without
// helpers (none could be started) the caller runs everything.
void par_for(size_t n, size_t grain, par_fn fn, void *ctx);

// Flat element-wise loops run in blocks of PAR_BLOCK elements, so chunk boundaries
// fall inside what the serial loop's vector body covers and only the last chunk has the
// serial loop's tail: the same code handles every element either way.
enum { PAR_BLOCK = 1024 };
static inline size_t par_blocks(size_t n) { return (n + PAR_BLOCK - 1) / PAR_BLOCK; }
// Element range [*a, *b) of blocks [lo, hi) of an n-element array.
static inline void par_block_range(size_t n, size_t lo, size_t hi, size_t *a, size_t *b) {
    *a = lo * PAR_BLOCK;
    *b = hi * PAR_BLOCK < n ? hi * PAR_BLOCK : n;
}
// The common flat loop, out[i] from in[i]: run(out + a, in + a, b - a) (element offsets,
// out_size and in_size bytes per element) on ranges [a, b) of [0, n) over the threads,
// in blocks as above, at least `grain` blocks per chunk.
typedef void (*par_map_fn)(void *out, const void *in, size_t n);
void par_map(void *out, size_t out_size, const void *in, size_t in_size, size_t n, size_t grain, par_map_fn run);
// Rows per chunk at least, for rows of c values: ~32k values, what a helper's wake-up
// (tens of microseconds) is worth.
static inline size_t par_row_grain(size_t c) { return c >= 32768 ? 1 : 32768 / (c ? c : 1); }

// Threads par_for may use (the caller included); blas_set_threads sets it with the
// GEMM thread count. Helpers start on first use.
void par_set_threads(int n);
int par_threads(void);

#endif
