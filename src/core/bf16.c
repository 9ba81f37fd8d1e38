// bf16.c: opt-in bfloat16 Linear layers through oneDNN's matmul.
//
// Debian's OpenBLAS 0.3.21 has no bf16 GEMM. oneDNN 2.6 (libdnnl2) runs a bf16 matmul
// with AVX512_BF16 at 2.1-2.4x OpenBLAS's fp32 sgemm on the Linear shapes of MAR
// (measured on an EPYC with AVX512_BF16, conversion of the activations included).
//
// oneDNN is loaded with dlopen on first use: fp32 runs (the default) never load it nor
// its OpenMP runtime, and OMP_WAIT_POLICY can still be set before libgomp starts.
// Weights are converted to bf16 once per tensor, reordered into the blocked layout
// oneDNN's matmul prefers (MAR-B, 1 thread, batch 1: head 45 -> 79 GFLOPS against
// the plain layout) and kept (keyed by the fp32 pointer, dropped by blas_bf16_forget
// when a model closes); activations are rounded per call;
// products accumulate in fp32 and the output and bias stay fp32. The caches are
// process-wide and unlocked: one thread per process samples (disa runs a rank per core).
#include "disa/blas.h"
#include "bf16.h"

#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disa/err.h"
#include "disa/vec.h"

#define DNNL_FUNCS(X)                                                                                         \
    X(dnnl_engine_create, dnnl_status_t, (dnnl_engine_t *, dnnl_engine_kind_t, size_t))                       \
    X(dnnl_stream_create, dnnl_status_t, (dnnl_stream_t *, dnnl_engine_t, unsigned))                          \
    X(dnnl_memory_desc_init_by_tag, dnnl_status_t,                                                            \
      (dnnl_memory_desc_t *, int, const dnnl_dims_t, dnnl_data_type_t, dnnl_format_tag_t))                    \
    X(dnnl_memory_desc_init_by_strides, dnnl_status_t,                                                        \
      (dnnl_memory_desc_t *, int, const dnnl_dims_t, dnnl_data_type_t, const dnnl_dims_t))                    \
    X(dnnl_matmul_desc_init, dnnl_status_t,                                                                   \
      (dnnl_matmul_desc_t *, const dnnl_memory_desc_t *, const dnnl_memory_desc_t *,                          \
       const dnnl_memory_desc_t *, const dnnl_memory_desc_t *))                                               \
    X(dnnl_primitive_desc_create, dnnl_status_t,                                                              \
      (dnnl_primitive_desc_t *, const_dnnl_op_desc_t, const_dnnl_primitive_attr_t, dnnl_engine_t,             \
       const_dnnl_primitive_desc_t))                                                                          \
    X(dnnl_primitive_desc_destroy, dnnl_status_t, (dnnl_primitive_desc_t))                                    \
    X(dnnl_primitive_create, dnnl_status_t, (dnnl_primitive_t *, const_dnnl_primitive_desc_t))                \
    X(dnnl_primitive_destroy, dnnl_status_t, (dnnl_primitive_t))                                              \
    X(dnnl_memory_create, dnnl_status_t, (dnnl_memory_t *, const dnnl_memory_desc_t *, dnnl_engine_t, void *)) \
    X(dnnl_memory_destroy, dnnl_status_t, (dnnl_memory_t))                                                    \
    X(dnnl_memory_set_data_handle, dnnl_status_t, (dnnl_memory_t, void *))                                    \
    X(dnnl_primitive_execute, dnnl_status_t, (const_dnnl_primitive_t, dnnl_stream_t, int, const dnnl_exec_arg_t *)) \
    X(dnnl_stream_wait, dnnl_status_t, (dnnl_stream_t))                                                       \
    X(dnnl_get_effective_cpu_isa, dnnl_cpu_isa_t, (void))                                                     \
    X(dnnl_primitive_desc_query_md, const dnnl_memory_desc_t *, (const_dnnl_primitive_desc_t, dnnl_query_t, int)) \
    X(dnnl_memory_desc_get_size, size_t, (const dnnl_memory_desc_t *))                                        \
    X(dnnl_reorder_primitive_desc_create, dnnl_status_t,                                                      \
      (dnnl_primitive_desc_t *, const dnnl_memory_desc_t *, dnnl_engine_t, const dnnl_memory_desc_t *,        \
       dnnl_engine_t, const_dnnl_primitive_attr_t))

static struct {
    int state;  // 0 not tried, 1 ready, -1 unavailable (why says why)
    char why[256];
    char isa[32];  // oneDNN's name of the ISA its kernels use, once ready
    void *lib;
#define X(name, ret, args) ret(*name) args;
    DNNL_FUNCS(X)
#undef X
    void (*omp_set_num_threads)(int);
    dnnl_engine_t eng;
    dnnl_stream_t strm;
} D;

// oneDNN's own names (dnnl_cpu_isa_t without the prefix), as its verbose mode prints them.
static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    default: return "other";
    }
}

static int load(void) {
    if (D.state) return D.state;
    D.state = -1;
    if (getenv("DISA_TEST_NO_BF16")) {  // tests of the refusal on CPUs without bf16
        snprintf(D.why, sizeof D.why, "this CPU has no AVX512_BF16 (DISA_TEST_NO_BF16 is set)");
        return -1;
    }
    // libgomp reads this when it loads (now): idle OpenMP threads must sleep, not spin on
    // the cores OpenBLAS and the other ranks use. A user's setting wins.
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    D.lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!D.lib) {
        snprintf(D.why, sizeof D.why, "oneDNN is not installed (libdnnl.so.2, Debian package libdnnl2): %s", dlerror());
        return -1;
    }
#define X(name, ret, args)                                                                     \
    if (!(*(void **)&D.name = dlsym(D.lib, #name))) {                                          \
        snprintf(D.why, sizeof D.why, "libdnnl.so.2 lacks %s (oneDNN 2.x expected)", #name);   \
        return -1;                                                                             \
    }
    DNNL_FUNCS(X)
#undef X
    *(void **)&D.omp_set_num_threads = dlsym(D.lib, "omp_set_num_threads");
    dnnl_cpu_isa_t isa = D.dnnl_get_effective_cpu_isa();
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) != (unsigned)dnnl_cpu_isa_avx512_core_bf16) {
        snprintf(D.why, sizeof D.why, "this CPU has no AVX512_BF16 (oneDNN's ISA mask 0x%x)", (unsigned)isa);
        return -1;
    }
    snprintf(D.isa, sizeof D.isa, "%s", isa_name(isa));
    if (D.dnnl_engine_create(&D.eng, dnnl_cpu, 0) != dnnl_success ||
        D.dnnl_stream_create(&D.strm, D.eng, dnnl_stream_default_flags) != dnnl_success) {
        snprintf(D.why, sizeof D.why, "oneDNN: cannot create a CPU engine");
        return -1;
    }
    if (D.omp_set_num_threads) D.omp_set_num_threads(blas_get_threads());
    D.state = 1;
    return 1;
}

int blas_bf16_available(void) {
    if (load() < 0) return disa_err(DISA_EINVAL, "--precision bf16: %s", D.why);
    return 0;
}

const char *blas_bf16_isa(void) { return D.state == 1 ? D.isa : "none"; }

// ----------------------------------------------------------------------------
// Round to nearest even; NaN stays a (quiet) NaN instead of carrying into the exponent.
DISA_VEC
static void to_bf16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
        dst[i] = (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? (u >> 16) | 0x40u : r);
    }
}

// Weights: fp32 pointer -> bf16 copy in the layout oneDNN's matmul prefers (blocked,
// chosen for a 256-row product), or W's own [N, K] layout read as a strided [K, N]
// matrix where that cannot be made. Open addressing over a power-of-two table.
typedef struct wentry {
    const float *W;
    size_t n;
    void *wb;
    int blocked;
    dnnl_memory_desc_t md;
} wentry;
static wentry *g_w;
static size_t g_wcap, g_wn;

static size_t hash_ptr(const void *p, size_t cap) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static int strided_md(dnnl_memory_desc_t *md, int K, int N) {
    dnnl_dims_t ws = {K, N}, wstr = {1, K};
    return D.dnnl_memory_desc_init_by_strides(md, 2, ws, dnnl_bf16, wstr) == dnnl_success ? 0 : -1;
}

// Reorder the strided bf16 weights into the layout a matmul of 256 rows asks for.
// Returns the new buffer (its descriptor in *md), or NULL to keep the strided one.
static void *to_blocked(const uint16_t *ws, int K, int N, dnnl_memory_desc_t *md) {
    dnnl_memory_desc_t xd, wany, yd, wstr;
    dnnl_dims_t xs = {256, K}, wsz = {K, N}, ys = {256, N};
    if (D.dnnl_memory_desc_init_by_tag(&xd, 2, xs, dnnl_bf16, dnnl_ab) ||
        D.dnnl_memory_desc_init_by_tag(&wany, 2, wsz, dnnl_bf16, dnnl_format_tag_any) ||
        D.dnnl_memory_desc_init_by_tag(&yd, 2, ys, dnnl_f32, dnnl_ab) || strided_md(&wstr, K, N))
        return NULL;
    dnnl_matmul_desc_t mdesc;
    dnnl_primitive_desc_t pd, rpd;
    if (D.dnnl_matmul_desc_init(&mdesc, &xd, &wany, NULL, &yd) || D.dnnl_primitive_desc_create(&pd, &mdesc, NULL, D.eng, NULL))
        return NULL;
    const dnnl_memory_desc_t *q = D.dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (q) *md = *q;
    D.dnnl_primitive_desc_destroy(pd);
    if (!q) return NULL;
    size_t bytes = D.dnnl_memory_desc_get_size(md);
    void *wb = bytes ? aligned_alloc(64, (bytes + 63) / 64 * 64) : NULL;
    if (!wb) return NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t src = NULL, dst = NULL;
    int bad = D.dnnl_reorder_primitive_desc_create(&rpd, &wstr, D.eng, md, D.eng, NULL) != dnnl_success;
    if (!bad) {
        bad = D.dnnl_primitive_create(&r, rpd) != dnnl_success;
        D.dnnl_primitive_desc_destroy(rpd);
    }
    bad = bad || D.dnnl_memory_create(&src, &wstr, D.eng, (void *)ws) || D.dnnl_memory_create(&dst, md, D.eng, wb);
    if (!bad) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
        bad = D.dnnl_primitive_execute(r, D.strm, 2, a) || D.dnnl_stream_wait(D.strm);
    }
    if (r) D.dnnl_primitive_destroy(r);
    if (src) D.dnnl_memory_destroy(src);
    if (dst) D.dnnl_memory_destroy(dst);
    if (bad) {
        free(wb);
        return NULL;
    }
    return wb;
}

static const wentry *weights(const float *W, int K, int N) {
    size_t n = (size_t)N * K;
    if (g_wcap) {
        for (size_t i = hash_ptr(W, g_wcap);; i = (i + 1) & (g_wcap - 1)) {
            if (!g_w[i].W) break;
            if (g_w[i].W == W && g_w[i].n == n) return &g_w[i];
        }
    }
    if (2 * (g_wn + 1) > g_wcap) {
        size_t cap = g_wcap ? 2 * g_wcap : 1024;
        wentry *t = calloc(cap, sizeof *t);
        if (!t) return NULL;
        for (size_t j = 0; j < g_wcap; j++) {
            if (!g_w[j].W) continue;
            size_t i = hash_ptr(g_w[j].W, cap);
            while (t[i].W) i = (i + 1) & (cap - 1);
            t[i] = g_w[j];
        }
        free(g_w);
        g_w = t, g_wcap = cap;
    }
    wentry e = {W, n, NULL, 0, {0}};
    uint16_t *ws = aligned_alloc(64, (n * sizeof *ws + 63) / 64 * 64);
    if (!ws) return NULL;
    to_bf16(ws, W, n);
    if ((e.wb = to_blocked(ws, K, N, &e.md)) != NULL) {
        e.blocked = 1;
        free(ws);
    } else if (strided_md(&e.md, K, N) == 0) {
        e.wb = ws;
    } else {
        free(ws);
        return NULL;
    }
    size_t i = hash_ptr(W, g_wcap);
    while (g_w[i].W) i = (i + 1) & (g_wcap - 1);
    g_w[i] = e;
    g_wn++;
    return &g_w[i];
}

// Matmul primitives by shape, with their memory objects (data handles set per call).
typedef struct pentry {
    int M, K, N, bias, blocked;
    dnnl_primitive_t prim;
    dnnl_memory_t x, w, b, y;
} pentry;
enum { PCAP = 512 };
static pentry g_p[PCAP];

static void pentry_free(pentry *e) {
    if (!e->prim) return;
    D.dnnl_primitive_destroy(e->prim);
    D.dnnl_memory_destroy(e->x), D.dnnl_memory_destroy(e->w), D.dnnl_memory_destroy(e->y);
    if (e->b) D.dnnl_memory_destroy(e->b);
    memset(e, 0, sizeof *e);
}

static pentry *prim(int M, int K, int N, int bias, const wentry *w) {
    size_t h = ((size_t)M * 2654435761u ^ (size_t)K * 40503u ^ (size_t)N * 9176u ^ (size_t)bias ^
                (size_t)w->blocked * 7919u) % PCAP;
    pentry *e = &g_p[h];
    if (e->prim && e->M == M && e->K == K && e->N == N && e->bias == bias && e->blocked == w->blocked) return e;
    pentry_free(e);  // a direct-mapped cache: the evicted shape is rebuilt if it returns
    dnnl_memory_desc_t xd, bd, yd;
    dnnl_dims_t xs = {M, K}, bs = {1, N}, ys = {M, N};
    if (D.dnnl_memory_desc_init_by_tag(&xd, 2, xs, dnnl_bf16, dnnl_ab) ||
        D.dnnl_memory_desc_init_by_tag(&bd, 2, bs, dnnl_f32, dnnl_ab) || D.dnnl_memory_desc_init_by_tag(&yd, 2, ys, dnnl_f32, dnnl_ab))
        return NULL;
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    if (D.dnnl_matmul_desc_init(&md, &xd, &w->md, bias ? &bd : NULL, &yd)) return NULL;
    if (D.dnnl_primitive_desc_create(&pd, &md, NULL, D.eng, NULL)) return NULL;
    int bad = D.dnnl_primitive_create(&e->prim, pd) != dnnl_success;
    D.dnnl_primitive_desc_destroy(pd);
    if (bad) {
        e->prim = NULL;
        return NULL;
    }
    bad = D.dnnl_memory_create(&e->x, &xd, D.eng, DNNL_MEMORY_NONE) || D.dnnl_memory_create(&e->w, &w->md, D.eng, DNNL_MEMORY_NONE) ||
          D.dnnl_memory_create(&e->y, &yd, D.eng, DNNL_MEMORY_NONE) ||
          (bias && D.dnnl_memory_create(&e->b, &bd, D.eng, DNNL_MEMORY_NONE));
    e->M = M, e->K = K, e->N = N, e->bias = bias, e->blocked = w->blocked;
    if (bad) {
        pentry_free(e);
        return NULL;
    }
    return e;
}

static _Thread_local uint16_t *g_xb;
static _Thread_local size_t g_xb_cap;

int blas_bf16_linear(float *y, const float *x, const float *W, const float *bias, int M, int K, int N) {
    if (D.state != 1) return -1;
    size_t nx = (size_t)M * K;
    if (nx > g_xb_cap) {
        uint16_t *p = aligned_alloc(64, (nx * sizeof *p + 63) / 64 * 64);
        if (!p) return -1;
        free(g_xb);
        g_xb = p, g_xb_cap = nx;
    }
    const wentry *wt = weights(W, K, N);
    pentry *e = wt ? prim(M, K, N, bias != NULL, wt) : NULL;
    if (!e) return -1;
    to_bf16(g_xb, x, nx);
    D.dnnl_memory_set_data_handle(e->x, g_xb);
    D.dnnl_memory_set_data_handle(e->w, wt->wb);
    D.dnnl_memory_set_data_handle(e->y, y);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->x}, {DNNL_ARG_WEIGHTS, e->w}, {DNNL_ARG_DST, e->y}, {DNNL_ARG_BIAS, e->b}};
    if (bias) D.dnnl_memory_set_data_handle(e->b, (void *)bias);
    if (D.dnnl_primitive_execute(e->prim, D.strm, bias ? 4 : 3, args) != dnnl_success) return -1;
    if (D.dnnl_stream_wait(D.strm) != dnnl_success) return -1;
    return 0;
}

void blas_bf16_set_threads(int n) {
    if (D.state == 1 && D.omp_set_num_threads) D.omp_set_num_threads(n);
}

void blas_bf16_forget(void) {
    for (size_t i = 0; i < g_wcap; i++) free(g_w[i].wb);
    free(g_w);
    g_w = NULL, g_wcap = g_wn = 0;
}
