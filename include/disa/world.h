// world.h: the MPI world as the programs see it (src/mpi/world.c), so that only
// src/mpi includes <mpi.h>.
#ifndef DISA_WORLD_H
#define DISA_WORLD_H
#include <stddef.h>

#include "disa/featpass.h"

// MPI_Init (after cpu_blas_fix, which may re-execute the program) and the rank and
// size of MPI_COMM_WORLD; log lines carry the rank from then on.
void world_init(int *argc, char ***argv, int *rank, int *size);
void world_finalize(void);

// An all-true reduction: 1 on every rank when ok is non-zero on every rank. A check that
// can fail on some ranks only goes through it before the ranks go on together.
int world_all_ok(int ok);
// n bytes of rank 0's buf to every rank.
void world_bcast(void *buf, size_t n);

// The shares of a featpass (featpass.h) of every rank added up on rank 0, after an
// all-true reduction of rc (no rank waits for one that failed). Returns rc on a rank
// that failed, DISA_EIO ("another rank failed") on the others, else 0; then rank 0
// holds the whole pass.
int world_reduce_featpass(featpass *p, const featnet *f, int rc);

#endif
