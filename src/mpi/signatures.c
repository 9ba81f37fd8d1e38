// signatures.c: every rank's machine signature of every job, gathered on rank 0
// (include/disa/provenance.h; roles.h).
#include "roles.h"

#include "disa/log.h"

#include <mpi.h>
#include <stdlib.h>

machine_sig *signatures_gather(const job_list *jobs, int rank, int size) {
    size_t n = (size_t)(jobs->n > 0 ? jobs->n : 1);
    machine_sig *mine = calloc(n, sizeof *mine);
    machine_sig *got = rank == 0 ? calloc(n * (size_t)size, sizeof *got) : NULL;
    machine_sig *all = rank == 0 ? calloc(n * (size_t)size, sizeof *all) : NULL;
    if (!mine || (rank == 0 && (!got || !all))) {
        LOG(LOG_ERROR, "machine signatures: out of memory");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    // Per job: the precision (and with it the bf16 ISA) is the job's.
    for (int j = 0; j < jobs->n; j++) machine_sig_local(&mine[j], jobs->jobs[j].precision);
    int bytes = (int)(n * sizeof *mine);
    MPI_Gather(mine, bytes, MPI_BYTE, got, bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(mine);
    if (rank != 0) return NULL;
    // got is [rank][job]; the folders want one job's ranks side by side.
    for (int r = 0; r < size; r++)
        for (size_t j = 0; j < n; j++) all[j * (size_t)size + (size_t)r] = got[(size_t)r * n + j];
    free(got);
    return all;
}
