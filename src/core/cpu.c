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

void cpu_blas_fix(char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) return;  // the user's choice always wins
    if (getenv(FIX_MARKER)) return;           // already re-executed once
    const char *detected = getenv("DISA_TEST_BLAS_CORENAME");
    if (!detected) detected = blas_corename();
    cpu_features f;
    cpu_detect(&f);
    const char *want = cpu_blas_coretype_for(detected, &f);
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv(FIX_MARKER, detected, 1);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    // Still here: exec failed. Keep running on the slow core rather than abort.
    LOG(LOG_WARN, "OpenBLAS uses the generic core '%s'; re-running with OPENBLAS_CORETYPE=%s "
        "failed. Set OPENBLAS_CORETYPE=%s yourself for ~5x faster sgemm", detected, want, want);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(FIX_MARKER);
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
