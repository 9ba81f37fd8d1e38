// vec.h: compile a hot element-wise function for several x86-64 levels.
//
// The default build targets plain x86-64 (SSE2) so one binary runs on every node of a
// cluster. The loops that run once per activation value (GELU, SiLU, softmax,
// LayerNorm/GroupNorm) are written branch-free and lane-wise so the compiler can
// vectorise them; DISA_VEC makes GCC emit an AVX-512 (x86-64-v4), an AVX2+FMA
// (x86-64-v3) and a baseline copy and pick one when the program loads (ifunc). Other
// compilers and sanitizer builds get the single baseline copy.
#ifndef DISA_VEC_H
#define DISA_VEC_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(DISA_NO_CLONES)
#define DISA_VEC __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DISA_VEC
#endif

#endif
