// world.c: MPI for the programs: start, stop, agreement, broadcast and the reduction
// of shared statistics (include/disa/world.h).
#include "disa/world.h"
#include "disa/err.h"
#include "disa/log.h"
#include "lazy.h"

#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <time.h>

// ----------------------------------------------------------------------------
// lazy waits (lazy.h)

// The next pause of a lazy wait: 50 us, doubling to 10 ms.
static void pause_next(long *ns) {
    nanosleep(&(struct timespec){0, *ns}, NULL);
    *ns = *ns < 5000000 ? 2 * *ns : 10000000;
}

void lazy_wait(MPI_Request *req) {
    int done = 0;
    for (long ns = 50000;; pause_next(&ns)) {
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return;
    }
}

void lazy_probe(int source, int tag, MPI_Status *st) {
    int flag = 0;
    for (long ns = 50000;; pause_next(&ns)) {
        MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, st);
        if (flag) return;
    }
}

void lazy_bcast(void *buf, int count, MPI_Datatype type) {
    MPI_Request r;
    MPI_Ibcast(buf, count, type, 0, MPI_COMM_WORLD, &r);
    lazy_wait(&r);
}

void lazy_allreduce(const void *in, void *out, int count, MPI_Datatype type, MPI_Op op) {
    MPI_Request r;
    MPI_Iallreduce(in, out, count, type, op, MPI_COMM_WORLD, &r);
    lazy_wait(&r);
}

// ----------------------------------------------------------------------------
// the world

void world_init(int *argc, char ***argv, int *rank, int *size) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    log_set_rank(*rank);
}

// Ranks reach the end at different times (rank 0 last, after the summary); MPI_Finalize
// waits for the others with a short sleep between polls that hundreds of ranks turn
// into a busy machine, so they meet in a lazy barrier first.
void world_finalize(void) {
    MPI_Request r;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    lazy_wait(&r);
    MPI_Finalize();
}

int world_all_ok(int ok) {
    int all;
    ok = ok != 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return all;
}

void world_bcast(void *buf, size_t n) {
    for (size_t off = 0; off < n;) {  // an int count per call
        size_t k = n - off < INT_MAX ? n - off : INT_MAX;
        MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
        off += k;
    }
}

// Rank 0 ends with the sums; the other ranks' shares are no longer needed then.
static void sum_to_root(const metric_span *sp) {
    static const MPI_Datatype types[SPAN_KIND_COUNT] = {[SPAN_F64] = MPI_DOUBLE, [SPAN_I64] = MPI_INT64_T,
                                                        [SPAN_F32] = MPI_FLOAT};
    static const size_t sizes[SPAN_KIND_COUNT] = {[SPAN_F64] = 8, [SPAN_I64] = 8, [SPAN_F32] = 4};
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (size_t off = 0; off < sp->count; off += sp->row) {
        char *at = (char *)sp->data + off * sizes[sp->kind];
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : at, at, (int)sp->row, types[sp->kind], MPI_SUM, 0, MPI_COMM_WORLD);
    }
}

int world_reduce_featpass(featpass *p, const featnet *f, int rc) {
    // Every rank must agree before the reductions, or a failed rank leaves the rest waiting.
    if (!world_all_ok(rc == 0)) return rc ? rc : disa_err(DISA_EIO, "another rank failed (see its message)");
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1) return 0;
    metric_span spans[FEATPASS_SPANS];
    int n = featpass_spans(p, f, spans);
    for (int k = 0; k < n; k++) sum_to_root(&spans[k]);
    return 0;
}
