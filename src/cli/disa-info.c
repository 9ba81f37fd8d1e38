// disa-info: what this build and machine offer: CPU features, OpenBLAS core and threads,
// and the precision --precision auto would pick here, with the reason.
//
//   disa-info            one process
//   disa-info --mpi      under mpirun/srun: each rank reports after MPI_Init, which shows
//                        that the OpenBLAS core-type re-exec happened before MPI started.
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/cpu.h"
#include "disa/flags.h"
#include "disa/world.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    int use_mpi = argc > 1 && strcmp(argv[1], "--mpi") == 0;
    if (argc > 1 && flag_is_help(argv[1])) {
        printf("usage: disa-info [--mpi]   (CPU features, the BLAS core and threads; per rank under mpirun with --mpi)\n");
        return 0;
    }
    if (argc > 2 || (argc > 1 && !use_mpi)) {
        fprintf(stderr, "disa-info: unknown argument '%s' (usage: disa-info [--mpi])\n", argv[argc > 2 ? 2 : 1]);
        return 2;
    }
    int rank = 0, size = 1;
    if (use_mpi) {
        world_init(&argc, &argv, &rank, &size);
    }
    cpu_features f;
    cpu_detect(&f);
    char blas[512];
    cpu_blas_describe(blas, sizeof blas);
    printf("rank %d/%d: %s\n", rank, size, blas);
    int by_disa = 0;
    const char *spin = cpu_blas_thread_timeout(&by_disa);
    if (rank == 0 && spin)
        printf("OpenBLAS idle threads: spin 2^%s cycles, then sleep (OPENBLAS_THREAD_TIMEOUT=%s, %s)\n", spin, spin,
               by_disa ? "disa's default" : "set by you");
    if (rank == 0)
        printf("cpu: avx %d avx2 %d fma %d avx512f %d avx512dq %d avx512bw %d avx512vl %d avx512bf16 %d amx_bf16 %d\n",
               f.avx, f.avx2, f.fma, f.avx512f, f.avx512dq, f.avx512bw, f.avx512vl, f.avx512bf16, f.amx_bf16);
    char why[512];
    precision_resolve(PRECISION_AUTO, why, sizeof why);
    // Only MAR has a bf16 path; xAR and FlowAR resolve auto to fp32 whatever the CPU.
    printf("rank %d/%d: precision auto: %s (MAR; xAR and FlowAR run fp32)\n", rank, size, why);
    if (use_mpi) world_finalize();
    return 0;
}
