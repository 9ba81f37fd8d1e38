// roles.h: the two roles of disa-gen's ranks (generator.c starts them); private to src/mpi.
#ifndef DISA_MPI_ROLES_H
#define DISA_MPI_ROLES_H

#include "disa/generator.h"
#include "disa/provenance.h"
#include "disa/unit.h"

// Rank 0: prepare every job's folder, tell the workers whether to go (setup_failed: a
// rank could not load its models), hand out units and run some, and report. sigs: every
// rank's machine signature per job, [job][rank] (signatures_gather). *status: 0, 1
// (failure) or 2 (bad configuration, e.g. a folder of another run). Returns 0,
// DISA_ECANCELED (stopped resumably) or an error.
int scheduler_run(unit_runner *ur, int size, const generator_opts *o, int setup_failed, const machine_sig *sigs,
                  int *status);

// Every rank's signature for every job (after the models are loaded: bf16's ISA is known
// then), gathered on rank 0 as [job][rank], which owns the array; NULL on the other
// ranks. Collective.
machine_sig *signatures_gather(const job_list *jobs, int rank, int size);

// Every other rank: after rank 0's go, ask for units and run them until told to stop.
int worker_run(unit_runner *ur);

#endif
