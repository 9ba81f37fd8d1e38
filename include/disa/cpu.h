// cpu.h: CPU features, the OpenBLAS core-type fix and the default thread count.
//
// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) detects some recent CPUs as a generic core such
// as "Prescott" and then runs sgemm about 5x slower. OpenBLAS reads OPENBLAS_CORETYPE only
// when the library is loaded, so the fix re-executes the program once with it set.
#ifndef DISA_CPU_H
#define DISA_CPU_H

typedef struct cpu_features {
    int avx, avx2, fma, avx512f, avx512dq, avx512bw, avx512vl, avx512bf16;
    int amx_bf16;  // AMX tiles with bf16 (the OS must also grant tile state: oneDNN asks for it)
} cpu_features;

// Fill from cpuid and xgetbv (a feature counts only when the OS saves its registers).
void cpu_detect(cpu_features *f);

// The OPENBLAS_CORETYPE to force for a detected core name, or NULL to keep it: only a
// pre-AVX2 core name on a CPU that has AVX2+FMA is replaced (SkylakeX with AVX-512
// F/DQ/BW/VL, else Haswell).
const char *cpu_blas_coretype_for(const char *corename, const cpu_features *f);

// Call first thing in main(), before MPI_Init and before any thread starts. When the user
// has not set OPENBLAS_CORETYPE and the detected core needs the fix, re-executes
// /proc/self/exe with the same argv and OPENBLAS_CORETYPE set (once: a marker variable
// prevents loops). Returns when no re-exec is needed or it failed (then logs a warning).
// The env variable DISA_TEST_BLAS_CORENAME replaces the detected name, for tests.
void cpu_blas_fix(char **argv);

// One line naming the core in use, the thread count and how the core was chosen
// ("detected", "set by OPENBLAS_CORETYPE", "forced by disa (detected X)"), into buf.
const char *cpu_blas_describe(char *buf, int n);

// The BLAS thread count of one rank: SLURM_CPUS_PER_TASK / SRUN_CPUS_PER_TASK when set,
// else the CPUs this process may run on when that is fewer than the online CPUs (a
// binding gave each rank its own set), else online CPUs / ranks on this node; at least 1.
int cpu_default_threads(int ranks_on_node);

#endif
