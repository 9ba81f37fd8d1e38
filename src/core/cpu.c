// cpu.c: feature detection, the OpenBLAS core-type re-exec and the default thread count
// (include/disa/cpu.h).
#include "disa/cpu.h"
#include "disa/blas.h"
#include "disa/log.h"

#include <cpuid.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

#define FIX_MARKER "DISA_BLAS_FIXED_FROM"

static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

void cpu_detect(cpu_features *f) {
    memset(f, 0, sizeof *f);
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1;
    if (!osxsave) return;
    unsigned long long xcr0 = xgetbv0();
    int ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
    int zmm = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM
    f->avx = ymm && ((c >> 28) & 1);
    f->fma = ymm && ((c >> 12) & 1);
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f->avx2 = ymm && ((b >> 5) & 1);
        f->avx512f = zmm && ((b >> 16) & 1);
        f->avx512dq = zmm && ((b >> 17) & 1);
        f->avx512bw = zmm && ((b >> 30) & 1);
        f->avx512vl = zmm && ((b >> 31) & 1);
        // EDX bit 22 AMX-BF16, bit 24 AMX-TILE; XCR0 bits 17-18 hold the tile state.
        f->amx_bf16 = ((d >> 22) & 1) && ((d >> 24) & 1) && (xcr0 & 0x60000) == 0x60000;
    }
    if (f->avx512f && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f->avx512bf16 = (a >> 5) & 1;
}

const char *cpu_blas_coretype_for(const char *corename, const cpu_features *f) {
    // OpenBLAS core names whose kernels predate AVX2: using them on a newer CPU wastes it.
    static const char *const generic[] = {
        "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge", "Atom",
        "Katmai", "Coppermine", "Northwood", "Banias", "Athlon", "Opteron", "Opteron_SSE3",
        "Barcelona", "Bobcat", "Bulldozer", "Piledriver", "Steamroller", "Excavator",
        "Generic", "Unknown", NULL};
    if (!corename || !f->avx2 || !f->fma) return NULL;
    int is_generic = 0;
    for (int i = 0; generic[i]; i++)
        if (strcasecmp(corename, generic[i]) == 0) is_generic = 1;
    if (!is_generic) return NULL;
    if (f->avx512f && f->avx512dq && f->avx512bw && f->avx512vl) return "SkylakeX";
    return "Haswell";
}

// OpenBLAS's worker threads spin (sched_yield) for 2^28 TSC cycles, ~0.1 s, after each
// threaded call before they sleep. Between a transformer's GEMMs the same cores run the
// attention heads and the element-wise loops on par.h's threads, and a spinning worker
// takes turns with them: on MAR-B at batch 64 (2 threads) attention took 20% and GELU 40%
// longer than with workers that sleep after 2^20 cycles (~0.4 ms at 2.6 GHz), which still
// covers the microseconds between the diffusion head's back-to-back GEMMs. Like the core
// type, OpenBLAS reads OPENBLAS_THREAD_TIMEOUT only when it is loaded (the environment a
// library initialiser sees is the one the process started with), hence the same re-exec.
#define SPIN_MARKER "DISA_BLAS_SPIN_SET"

void cpu_blas_fix(char **argv) {
    // A program started through /proc/self/exe is named "exe" in top and ps -A: give it
    // back its own name.
    if ((getenv(FIX_MARKER) || getenv(SPIN_MARKER)) && argv && argv[0]) {
        char comm[17] = "";
        if (prctl(PR_GET_NAME, comm, 0, 0, 0) == 0 && !strcmp(comm, "exe")) {
            const char *slash = strrchr(argv[0], '/');
            prctl(PR_SET_NAME, slash ? slash + 1 : argv[0], 0, 0, 0);
        }
    }
    const char *want = NULL, *detected = NULL;
    // The user's core choice always wins, and the core is replaced at most once.
    if (!getenv("OPENBLAS_CORETYPE") && !getenv(FIX_MARKER)) {
        detected = getenv("DISA_TEST_BLAS_CORENAME");
        if (!detected) detected = blas_corename();
        cpu_features f;
        cpu_detect(&f);
        want = cpu_blas_coretype_for(detected, &f);
    }
    int spin = !getenv("OPENBLAS_THREAD_TIMEOUT");  // set in the re-executed process
    if (!want && !spin) return;
    if (want) {
        setenv("OPENBLAS_CORETYPE", want, 1);
        setenv(FIX_MARKER, detected, 1);
    }
    if (spin) {
        setenv("OPENBLAS_THREAD_TIMEOUT", CPU_BLAS_THREAD_TIMEOUT, 1);
        setenv(SPIN_MARKER, "1", 1);
    }
    fflush(NULL);
    execv("/proc/self/exe", argv);
    // Still here: exec failed. Keep running with what OpenBLAS chose rather than abort.
    if (want)
        LOG(LOG_WARN, "OpenBLAS uses the generic core '%s'; re-running with OPENBLAS_CORETYPE=%s "
            "failed. Set OPENBLAS_CORETYPE=%s yourself for ~5x faster sgemm", detected, want, want);
    else
        LOG(LOG_INFO, "re-running with OPENBLAS_THREAD_TIMEOUT=%s failed; OpenBLAS's idle threads spin "
            "2^28 cycles (set it yourself for a few %% more speed)", CPU_BLAS_THREAD_TIMEOUT);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(FIX_MARKER);
    unsetenv("OPENBLAS_THREAD_TIMEOUT");
    unsetenv(SPIN_MARKER);
}

const char *cpu_blas_thread_timeout(int *set_by_disa) {
    if (set_by_disa) *set_by_disa = getenv(SPIN_MARKER) != NULL;
    return getenv("OPENBLAS_THREAD_TIMEOUT");
}

const char *cpu_blas_describe(char *buf, int n) {
    const char *core = blas_corename(), *user = getenv("OPENBLAS_CORETYPE");
    const char *from = getenv(FIX_MARKER);
    if (from)
        snprintf(buf, n, "OpenBLAS core %s, %d threads (forced by disa: OpenBLAS detected %s; "
                 "set OPENBLAS_CORETYPE to choose)", core, blas_get_threads(), from);
    else if (user && strcasecmp(user, core) != 0)
        snprintf(buf, n, "OpenBLAS core %s, %d threads (OPENBLAS_CORETYPE=%s was not accepted by "
                 "OpenBLAS, which detected %s)", core, blas_get_threads(), user, core);
    else if (user)
        snprintf(buf, n, "OpenBLAS core %s, %d threads (set by OPENBLAS_CORETYPE)", core,
                 blas_get_threads());
    else
        snprintf(buf, n, "OpenBLAS core %s, %d threads (detected)", core, blas_get_threads());
    return buf;
}

int cpu_default_threads(int ranks_on_node) {
    const char *v = getenv("SRUN_CPUS_PER_TASK");
    if (!v || atoi(v) < 1) v = getenv("SLURM_CPUS_PER_TASK");
    if (v && atoi(v) >= 1) return atoi(v);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int mine = online > 0 ? (int)online : 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0) mine = CPU_COUNT(&set);
    if (online > 0 && mine < online) return mine > 0 ? mine : 1;
    int t = mine / (ranks_on_node > 0 ? ranks_on_node : 1);
    return t > 0 ? t : 1;
}
