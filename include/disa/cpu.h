// cpu.h: CPU features, the OpenBLAS environment fixes and the default thread count.
//
// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) detects some recent CPUs as a generic core such
// as "Prescott" and then runs sgemm about 5x slower, and its idle worker threads spin for
// ~0.1 s after each call. OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_THREAD_TIMEOUT only
// when the library is loaded, so the fix re-executes the program once with them set.
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

// OPENBLAS_THREAD_TIMEOUT every program starts with when the user set none: OpenBLAS's
// idle worker threads spin 2^20 cycles, not 2^28, before they sleep (cpu.c says why).
#define CPU_BLAS_THREAD_TIMEOUT "20"

// Call first thing in main(), before MPI_Init and before any thread starts. OpenBLAS reads
// its environment only when it is loaded, so when the user has not set OPENBLAS_CORETYPE
// and the detected core needs the fix, or has not set OPENBLAS_THREAD_TIMEOUT, this sets
// them and re-executes /proc/self/exe with the same argv (once: the variables and a marker
// prevent loops). Returns when no re-exec is needed or it failed (then logs why).
// The env variable DISA_TEST_BLAS_CORENAME replaces the detected name, for tests.
void cpu_blas_fix(char **argv);

// OPENBLAS_THREAD_TIMEOUT as OpenBLAS read it when it was loaded (NULL: unset, OpenBLAS's
// own 28), and whether cpu_blas_fix set it (1) or the user did (0).
const char *cpu_blas_thread_timeout(int *set_by_disa);

// One line naming the core in use, the thread count and how the core was chosen
// ("detected", "set by OPENBLAS_CORETYPE", "forced by disa (detected X)"), into buf.
const char *cpu_blas_describe(char *buf, int n);

// The BLAS thread count of one rank: SLURM_CPUS_PER_TASK / SRUN_CPUS_PER_TASK when set,
// else the CPUs this process may run on when that is fewer than the online CPUs (a
// binding gave each rank its own set), else online CPUs / ranks on this node; at least 1.
int cpu_default_threads(int ranks_on_node);

#endif
