// lazy.h: waiting for MPI without spinning; private to src/mpi (world.c).
//
// Open MPI's blocking calls poll the network in a loop (yielding the core at best when
// oversubscribed). A rank waiting for its next unit, for rank 0's verdict or for the
// others at the end has nothing to do for milliseconds to hours; spinning there takes a
// core from the ranks that compute (hyperthreads, a shared node, or the hundreds of
// oversubscribed ranks of disa-gen --simulate). These waits test, then sleep: 50 us
// at first, doubling to 10 ms, so a message that arrives after a long wait is seen at
// most 10 ms late.
#ifndef DISA_MPI_LAZY_H
#define DISA_MPI_LAZY_H
#include <mpi.h>

// MPI_Wait, sleeping between tests.
void lazy_wait(MPI_Request *req);
// MPI_Probe, sleeping between probes.
void lazy_probe(int source, int tag, MPI_Status *st);
// MPI_Bcast from rank 0 and MPI_Allreduce, waited for lazily (every rank must use the
// lazy form of a collective: a blocking and a non-blocking call do not match).
void lazy_bcast(void *buf, int count, MPI_Datatype type);
void lazy_allreduce(const void *in, void *out, int count, MPI_Datatype type, MPI_Op op);

#endif
