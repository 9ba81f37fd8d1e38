// bf16.c: bfloat16 matmuls and convolutions through oneDNN (include/disa/bf16.h).
//
// Debian's OpenBLAS 0.3.21 has no bf16 GEMM; oneDNN 2.6 (libdnnl2) runs bf16 matmuls with
// AVX512_BF16 (brgemm kernels, "brg:avx512_core_bf16") or AMX ("avx512_core_amx").
// oneDNN is loaded with dlopen on first use: fp32 runs never load it nor its OpenMP
// runtime, and OMP_WAIT_POLICY can still be set before libgomp starts.
//
// Weights are converted and reordered once into the layout the primitive asks for when
// its weights are `any` (blocked; packing beats the plain layout by 1.75x on MAR-B's head
// at batch 1); the primitives of every later shape are made for that same layout, so a
// forward never reorders. Primitives are kept per shape in a bf16_cache (row counts of
// MAR's AR steps vary with the known-token count).
#include "disa/bf16.h"
#include "disa/blas.h"

#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disa/err.h"
#include "disa/par.h"
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
    X(dnnl_convolution_forward_desc_init, dnnl_status_t,                                                      \
      (dnnl_convolution_desc_t *, dnnl_prop_kind_t, dnnl_alg_kind_t, const dnnl_memory_desc_t *,              \
       const dnnl_memory_desc_t *, const dnnl_memory_desc_t *, const dnnl_memory_desc_t *, const dnnl_dims_t, \
       const dnnl_dims_t, const dnnl_dims_t))                                                                 \
    X(dnnl_primitive_attr_create, dnnl_status_t, (dnnl_primitive_attr_t *))                                   \
    X(dnnl_primitive_attr_destroy, dnnl_status_t, (dnnl_primitive_attr_t))                                   \
    X(dnnl_primitive_attr_set_post_ops, dnnl_status_t, (dnnl_primitive_attr_t, const_dnnl_post_ops_t))        \
    X(dnnl_primitive_attr_set_output_scales, dnnl_status_t, (dnnl_primitive_attr_t, dnnl_dim_t, int, const float *)) \
    X(dnnl_post_ops_create, dnnl_status_t, (dnnl_post_ops_t *))                                               \
    X(dnnl_post_ops_destroy, dnnl_status_t, (dnnl_post_ops_t))                                                \
    X(dnnl_post_ops_append_sum, dnnl_status_t, (dnnl_post_ops_t, float))                                      \
    X(dnnl_post_ops_append_eltwise, dnnl_status_t, (dnnl_post_ops_t, float, dnnl_alg_kind_t, float, float))   \
    X(dnnl_post_ops_append_binary, dnnl_status_t, (dnnl_post_ops_t, dnnl_alg_kind_t, const dnnl_memory_desc_t *)) \
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
    X(dnnl_version, const dnnl_version_t *, (void))                                                           \
    X(dnnl_primitive_desc_query_md, const dnnl_memory_desc_t *, (const_dnnl_primitive_desc_t, dnnl_query_t, int)) \
    X(dnnl_memory_desc_get_size, size_t, (const dnnl_memory_desc_t *))                                        \
    X(dnnl_reorder_primitive_desc_create, dnnl_status_t,                                                      \
      (dnnl_primitive_desc_t *, const dnnl_memory_desc_t *, dnnl_engine_t, const dnnl_memory_desc_t *,        \
       dnnl_engine_t, const_dnnl_primitive_attr_t))

static struct {
    int state;  // 0 not tried, 1 ready, -1 unavailable (why says why)
    char why[256], isa[32], version[32];
    void *lib;
#define X(name, ret, args) ret(*name) args;
    DNNL_FUNCS(X)
#undef X
    void (*omp_set_num_threads)(int);
    dnnl_engine_t eng;
    dnnl_stream_t strm;
} D;

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
    snprintf(D.isa, sizeof D.isa, "none");
    snprintf(D.version, sizeof D.version, "none");
    if (getenv("DISA_TEST_NO_BF16")) {  // tests of the refusal on CPUs with bf16
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
    const dnnl_version_t *v = D.dnnl_version();
    snprintf(D.version, sizeof D.version, "%d.%d.%d", v->major, v->minor, v->patch);
    dnnl_cpu_isa_t isa = D.dnnl_get_effective_cpu_isa();
    // AMX's mask contains AVX512_BF16's: both pass.
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) != (unsigned)dnnl_cpu_isa_avx512_core_bf16) {
        snprintf(D.why, sizeof D.why, "this CPU has no AVX512_BF16 or AMX (oneDNN %s reports ISA %s, mask 0x%x)",
                 D.version, isa_name(isa), (unsigned)isa);
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

int bf16_available(void) {
    if (load() < 0) return disa_err(DISA_EINVAL, "--precision bf16: %s", D.why);
    return 0;
}

const char *bf16_isa(void) { return D.state == 1 ? D.isa : "none"; }
const char *bf16_version(void) { return D.state ? D.version : "none"; }

void bf16_set_threads(int n) {
    if (D.state == 1 && D.omp_set_num_threads) D.omp_set_num_threads(n);
}

static const char *const precision_names[PRECISION_COUNT] = {"fp32", "bf16", "auto"};

const char *precision_name(precision_kind p) {
    return (unsigned)p < PRECISION_COUNT ? precision_names[p] : "?";
}

int precision_parse(const char *s, precision_kind *out) {
    for (int i = 0; i < PRECISION_COUNT; i++)
        if (strcmp(s, precision_names[i]) == 0) {
            *out = (precision_kind)i;
            return 0;
        }
    return disa_err(DISA_EINVAL, "--precision must be fp32, bf16 or auto, got '%s'", s);
}

precision_kind precision_resolve(precision_kind p, char *why, int n) {
    if (p != PRECISION_AUTO) {
        if (why) snprintf(why, (size_t)n, "%s (asked for)", precision_name(p));
        return p;
    }
    if (load() == 1) {
        if (why) snprintf(why, (size_t)n, "bf16 (oneDNN %s, ISA %s)", D.version, D.isa);
        return PRECISION_BF16;
    }
    if (why) snprintf(why, (size_t)n, "fp32 (bf16 cannot run: %s)", D.why);
    return PRECISION_FP32;
}

// ----------------------------------------------------------------------------
// Round to nearest even; NaN stays a (quiet) NaN instead of carrying into the exponent.
// Written out rather than with VCVTNEPS2BF16, which flushes denormal inputs to zero.

DISA_VEC
static void from_f32_run(void *out, const void *in, size_t n) {
    uint16_t *dst = out;
    const float *src = in;
    for (size_t i = 0; i < n; i++) dst[i] = bf16_bits(src[i]);
}

void bf16_from_f32(uint16_t *dst, const float *src, size_t n) {
    par_map(dst, sizeof *dst, src, sizeof *src, n, 32, from_f32_run);
}

DISA_VEC
void bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, sizeof u);
    }
}

float bf16_round(float x) {
    uint32_t u = (uint32_t)bf16_bits(x) << 16;
    memcpy(&x, &u, sizeof u);
    return x;
}

// ----------------------------------------------------------------------------
// Primitive cache

enum { OP_LINEAR = 1, OP_BMM, OP_CONV };
enum { ARG_SRC, ARG_WEI, ARG_BIAS, ARG_DST, ARG_GATE, N_ARGS };

// Everything a primitive depends on; zeroed before filling, so memcmp compares it.
typedef struct op_key {
    int op, epi, d_bf16, bias;
    int64_t dims[13];
    float scale;
} op_key;

typedef struct entry {
    op_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t mem[N_ARGS];
    uint64_t used;
} entry;

struct bf16_cache {
    entry *e;
    int n, cap;
    uint64_t tick;
    long created;
};

// What a key computes, for messages (made only when something failed).
static const char *describe(const op_key *k, char *buf, size_t n) {
    const int64_t *d = k->dims;
    if (k->op == OP_LINEAR)
        snprintf(buf, n, "a Linear of %lld rows, %lld -> %lld, epilogue %d", (long long)d[0], (long long)d[1],
                 (long long)d[2], k->epi);
    else if (k->op == OP_BMM)
        snprintf(buf, n, "a batched matmul %lld x (%lld x %lld . %lld x %lld)", (long long)d[0], (long long)d[1],
                 (long long)d[2], (long long)d[2], (long long)d[3]);
    else
        snprintf(buf, n, "a %lldx%lld convolution %lld -> %lld on %lld x %lldx%lld", (long long)d[3], (long long)d[4],
                 (long long)d[1], (long long)d[2], (long long)d[0], (long long)d[9], (long long)d[10]);
    return buf;
}

bf16_cache *bf16_cache_new(int capacity) {
    bf16_cache *c = calloc(1, sizeof *c);
    if (c) c->e = calloc((size_t)(capacity > 0 ? capacity : 1), sizeof(entry));
    if (!c || !c->e) {
        free(c);
        disa_err(DISA_ENOMEM, "bf16: out of memory for a primitive cache of %d", capacity);
        return NULL;
    }
    c->cap = capacity > 0 ? capacity : 1;
    return c;
}

static void entry_clear(entry *e) {
    if (e->prim) D.dnnl_primitive_destroy(e->prim);
    for (int i = 0; i < N_ARGS; i++)
        if (e->mem[i]) D.dnnl_memory_destroy(e->mem[i]);
    memset(e, 0, sizeof *e);
}

void bf16_cache_delete(bf16_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) entry_clear(&c->e[i]);
    free(c->e);
    free(c);
}

long bf16_cache_created(const bf16_cache *c) { return c ? c->created : 0; }

// The descriptors of one primitive to make: op descriptor, post-ops, memory descs per arg.
typedef struct recipe {
    union {
        dnnl_matmul_desc_t mm;
        dnnl_convolution_desc_t conv;
    } op;
    dnnl_memory_desc_t md[N_ARGS];
    int has[N_ARGS];
    int epi;
    float scale;
} recipe;

static entry *lookup(bf16_cache *c, const op_key *k) {
    for (int i = 0; i < c->n; i++)
        if (memcmp(&c->e[i].key, k, sizeof *k) == 0) {
            c->e[i].used = ++c->tick;
            return &c->e[i];
        }
    return NULL;
}

// A new entry for key k from recipe r (its op descriptor already initialised). Evicts
// the least recently used entry when full. NULL with a message naming the op on failure.
static entry *make(bf16_cache *c, const op_key *k, recipe *r) {
    entry *e;
    if (c->n < c->cap) {
        e = &c->e[c->n++];
    } else {
        e = &c->e[0];
        for (int i = 1; i < c->n; i++)
            if (c->e[i].used < e->used) e = &c->e[i];
        entry_clear(e);
    }
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int bad = D.dnnl_primitive_attr_create(&attr) != dnnl_success || D.dnnl_post_ops_create(&po) != dnnl_success;
    if (!bad && r->scale != 1.0f) bad = D.dnnl_primitive_attr_set_output_scales(attr, 1, 0, &r->scale) != dnnl_success;
    switch (bad ? -1 : r->epi) {
    case BF16_EPI_GELU: bad = D.dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f); break;
    // swish(x) = x sigmoid(alpha x): alpha 1 is SiLU.
    case BF16_EPI_SILU: bad = D.dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_swish, 1.0f, 0.0f); break;
    case BF16_EPI_RESIDUAL: bad = D.dnnl_post_ops_append_sum(po, 1.0f); break;
    case BF16_EPI_GATE_RESIDUAL:
        // The gate multiplies the biased product, then the sum adds the old y.
        bad = D.dnnl_post_ops_append_binary(po, dnnl_binary_mul, &r->md[ARG_GATE]) ||
              D.dnnl_post_ops_append_sum(po, 1.0f);
        break;
    default: break;
    }
    if (!bad) bad = D.dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success;
    if (!bad) bad = D.dnnl_primitive_desc_create(&pd, &r->op, attr, D.eng, NULL) != dnnl_success;
    if (!bad) bad = D.dnnl_primitive_create(&e->prim, pd) != dnnl_success;
    if (pd) D.dnnl_primitive_desc_destroy(pd);
    if (po) D.dnnl_post_ops_destroy(po);
    if (attr) D.dnnl_primitive_attr_destroy(attr);
    for (int i = 0; !bad && i < N_ARGS; i++)
        if (r->has[i]) bad = D.dnnl_memory_create(&e->mem[i], &r->md[i], D.eng, DNNL_MEMORY_NONE) != dnnl_success;
    if (bad) {
        entry_clear(e);
        if (e == &c->e[c->n - 1]) c->n--;  // the slot stays for the next make
        char what[128];
        disa_err(DISA_EINVAL, "bf16: oneDNN cannot make a primitive for %s (out of memory, or a shape it "
                 "does not support)", describe(k, what, sizeof what));
        return NULL;
    }
    e->key = *k;
    e->used = ++c->tick;
    c->created++;
    return e;
}

// Run e with data pointers ptr[ARG_*] (NULL: argument absent).
static int run(entry *e, void *const ptr[N_ARGS]) {
    static const int tag[N_ARGS] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST,
                                    DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1};
    dnnl_exec_arg_t args[N_ARGS];
    int n = 0;
    for (int i = 0; i < N_ARGS; i++) {
        if (!e->mem[i]) continue;
        D.dnnl_memory_set_data_handle(e->mem[i], ptr[i]);
        args[n].arg = tag[i];
        args[n++].memory = e->mem[i];
    }
    if (D.dnnl_primitive_execute(e->prim, D.strm, n, args) != dnnl_success || D.dnnl_stream_wait(D.strm) != dnnl_success) {
        char what[128];
        return disa_err(DISA_EINTERNAL, "bf16: oneDNN failed to run %s", describe(&e->key, what, sizeof what));
    }
    return 0;
}

// The error of a forward whose descriptors oneDNN refused (before any primitive).
static int refused(const op_key *k) {
    char what[128];
    return disa_err(DISA_EINVAL, "bf16: oneDNN refused the descriptors of %s", describe(k, what, sizeof what));
}

static int md_tag(dnnl_memory_desc_t *md, int nd, const int64_t *dims, dnnl_data_type_t t, dnnl_format_tag_t tag) {
    dnnl_dims_t d;
    for (int i = 0; i < nd; i++) d[i] = dims[i];
    return D.dnnl_memory_desc_init_by_tag(md, nd, d, t, tag) != dnnl_success;
}

static int md_strides(dnnl_memory_desc_t *md, int nd, const int64_t *dims, dnnl_data_type_t t, const int64_t *s) {
    dnnl_dims_t d, st;
    for (int i = 0; i < nd; i++) d[i] = dims[i], st[i] = s[i];
    return D.dnnl_memory_desc_init_by_strides(md, nd, d, t, st) != dnnl_success;
}

// ----------------------------------------------------------------------------
// Packing: src (plain bf16, descriptor sd) reordered into the weights layout that a
// primitive made from `op` with `any` weights chooses. Returns the buffer (its descriptor
// in *md, heap-allocated), or NULL with a message.

static void *pack(const void *op, const dnnl_memory_desc_t *sd, const void *src, void **md, const char *what) {
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t ms = NULL, mdst = NULL;
    void *buf = NULL;
    dnnl_memory_desc_t *wmd = malloc(sizeof *wmd);
    int bad = !wmd || D.dnnl_primitive_desc_create(&pd, op, NULL, D.eng, NULL) != dnnl_success;
    const dnnl_memory_desc_t *q = bad ? NULL : D.dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    bad = bad || !q;
    if (!bad) {
        *wmd = *q;
        size_t bytes = D.dnnl_memory_desc_get_size(wmd);
        bad = !bytes || !(buf = aligned_alloc(64, (bytes + 63) / 64 * 64));
    }
    bad = bad || D.dnnl_reorder_primitive_desc_create(&rpd, sd, D.eng, wmd, D.eng, NULL) != dnnl_success ||
          D.dnnl_primitive_create(&r, rpd) != dnnl_success ||
          D.dnnl_memory_create(&ms, sd, D.eng, (void *)src) != dnnl_success ||
          D.dnnl_memory_create(&mdst, wmd, D.eng, buf) != dnnl_success;
    if (!bad) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, mdst}};
        bad = D.dnnl_primitive_execute(r, D.strm, 2, a) != dnnl_success || D.dnnl_stream_wait(D.strm) != dnnl_success;
    }
    if (pd) D.dnnl_primitive_desc_destroy(pd);
    if (rpd) D.dnnl_primitive_desc_destroy(rpd);
    if (r) D.dnnl_primitive_destroy(r);
    if (ms) D.dnnl_memory_destroy(ms);
    if (mdst) D.dnnl_memory_destroy(mdst);
    if (bad) {
        free(buf);
        free(wmd);
        disa_err(DISA_ENOMEM, "bf16: cannot pack the weights of %s (out of memory, or oneDNN refused the shape)", what);
        return NULL;
    }
    *md = wmd;
    return buf;
}

static float *copy_bias(const float *b, int n) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (p) memcpy(p, b, sizeof(float) * (size_t)n);
    return p;
}

// What a packed Linear or convolution owns: the weights, their descriptor, the bias copy.
static void packed_free(void *w, void *md, float *bias) {
    free(w);
    free(md);
    free(bias);
}

// ----------------------------------------------------------------------------
// Linear

// The row count the packed layout is chosen for; primitives for any other row count are
// made for the same layout.
enum { PACK_ROWS = 256 };

int bf16_linear_init(bf16_linear *l, const float *W, const float *bias, int K, int N) {
    if (load() < 0) return disa_err(DISA_EINVAL, "--precision bf16: %s", D.why);
    char what[64];
    snprintf(what, sizeof what, "a %dx%d Linear", N, K);
    size_t n = (size_t)N * K;
    uint16_t *wb = malloc(n * sizeof *wb);
    float *b = bias ? copy_bias(bias, N) : NULL;
    if (!wb || (bias && !b)) {
        free(wb);
        free(b);
        return disa_err(DISA_ENOMEM, "bf16: out of memory for %s", what);
    }
    bf16_from_f32(wb, W, n);
    // W [N, K] read as the [K, N] matrix the matmul multiplies by.
    dnnl_memory_desc_t xd, wany, yd, wsrc;
    int64_t xs[2] = {PACK_ROWS, K}, ws[2] = {K, N}, ys[2] = {PACK_ROWS, N}, wst[2] = {1, K};
    dnnl_matmul_desc_t op;
    void *md = NULL, *packed = NULL;
    if (!md_tag(&xd, 2, xs, dnnl_bf16, dnnl_ab) && !md_tag(&wany, 2, ws, dnnl_bf16, dnnl_format_tag_any) &&
        !md_tag(&yd, 2, ys, dnnl_f32, dnnl_ab) && !md_strides(&wsrc, 2, ws, dnnl_bf16, wst) &&
        D.dnnl_matmul_desc_init(&op, &xd, &wany, NULL, &yd) == dnnl_success)
        packed = pack(&op, &wsrc, wb, &md, what);
    else
        disa_err(DISA_EINVAL, "bf16: oneDNN refused the descriptors of %s", what);
    free(wb);
    if (!packed) {
        free(b);
        return DISA_EINVAL;
    }
    l->K = K, l->N = N, l->w = packed, l->md = md, l->bias = b;
    return 0;
}

void bf16_linear_free(bf16_linear *l) {
    packed_free(l->w, l->md, l->bias);
    memset(l, 0, sizeof *l);
}

int bf16_linear_forward(bf16_cache *c, const bf16_linear *l, void *y, int y_bf16, const uint16_t *x,
                        const float *gate, int M, bf16_epilogue epi) {
    if (M <= 0) return 0;
    op_key k;
    memset(&k, 0, sizeof k);
    k.op = OP_LINEAR, k.epi = epi, k.d_bf16 = y_bf16, k.bias = l->bias != NULL;
    k.dims[0] = M, k.dims[1] = l->K, k.dims[2] = l->N;
    entry *e = lookup(c, &k);
    if (!e) {
        recipe r;
        memset(&r, 0, sizeof r);
        int64_t xs[2] = {M, l->K}, bs[2] = {1, l->N}, ys[2] = {M, l->N};
        r.md[ARG_WEI] = *(const dnnl_memory_desc_t *)l->md;
        r.has[ARG_SRC] = r.has[ARG_WEI] = r.has[ARG_DST] = 1;
        r.has[ARG_BIAS] = k.bias;
        r.has[ARG_GATE] = epi == BF16_EPI_GATE_RESIDUAL;
        r.epi = epi, r.scale = 1.0f;
        if (md_tag(&r.md[ARG_SRC], 2, xs, dnnl_bf16, dnnl_ab) || md_tag(&r.md[ARG_BIAS], 2, bs, dnnl_f32, dnnl_ab) ||
            md_tag(&r.md[ARG_DST], 2, ys, y_bf16 ? dnnl_bf16 : dnnl_f32, dnnl_ab) ||
            md_tag(&r.md[ARG_GATE], 2, ys, dnnl_f32, dnnl_ab) ||
            D.dnnl_matmul_desc_init(&r.op.mm, &r.md[ARG_SRC], &r.md[ARG_WEI], k.bias ? &r.md[ARG_BIAS] : NULL,
                                    &r.md[ARG_DST]) != dnnl_success)
            return refused(&k);
        if (!(e = make(c, &k, &r))) return DISA_EINVAL;
    }
    void *ptr[N_ARGS] = {(void *)x, l->w, l->bias, y, (void *)gate};
    int rc = run(e, ptr);
    if (!rc) blas_flops_add(2ull * (uint64_t)M * (uint64_t)l->K * (uint64_t)l->N);
    return rc;
}

// ----------------------------------------------------------------------------
// Batched strided matmul

int bf16_bmm(bf16_cache *c, bf16_view d, int d_bf16, bf16_view a, bf16_view w, int batch, int M, int K, int N,
             float scale) {
    if (batch <= 0 || M <= 0 || N <= 0) return 0;
    op_key k;
    memset(&k, 0, sizeof k);
    k.op = OP_BMM, k.d_bf16 = d_bf16, k.scale = scale;
    int64_t dims[4] = {batch, M, K, N};
    memcpy(k.dims, dims, sizeof dims);
    memcpy(k.dims + 4, a.s, sizeof a.s);
    memcpy(k.dims + 7, w.s, sizeof w.s);
    memcpy(k.dims + 10, d.s, sizeof d.s);
    entry *e = lookup(c, &k);
    if (!e) {
        recipe r;
        memset(&r, 0, sizeof r);
        int64_t ad[3] = {batch, M, K}, wd[3] = {batch, K, N}, dd[3] = {batch, M, N};
        r.has[ARG_SRC] = r.has[ARG_WEI] = r.has[ARG_DST] = 1;
        r.epi = BF16_EPI_NONE, r.scale = scale;
        if (md_strides(&r.md[ARG_SRC], 3, ad, dnnl_bf16, a.s) || md_strides(&r.md[ARG_WEI], 3, wd, dnnl_bf16, w.s) ||
            md_strides(&r.md[ARG_DST], 3, dd, d_bf16 ? dnnl_bf16 : dnnl_f32, d.s) ||
            D.dnnl_matmul_desc_init(&r.op.mm, &r.md[ARG_SRC], &r.md[ARG_WEI], NULL, &r.md[ARG_DST]) != dnnl_success)
            return refused(&k);
        if (!(e = make(c, &k, &r))) return DISA_EINVAL;
    }
    void *ptr[N_ARGS] = {a.p, w.p, NULL, d.p, NULL};
    int rc = run(e, ptr);
    if (!rc) blas_flops_add(2ull * (uint64_t)batch * (uint64_t)M * (uint64_t)K * (uint64_t)N);
    return rc;
}

// ----------------------------------------------------------------------------
// Convolution (NHWC activations)

// The op descriptor of cv for a batch of N; x and y NHWC, weights as given.
static int conv_desc(recipe *r, const bf16_conv *cv, int N, const dnnl_memory_desc_t *wmd) {
    int64_t xs[4] = {N, cv->Cin, cv->H, cv->W}, ys[4] = {N, cv->Cout, cv->OH, cv->OW}, bs[1] = {cv->Cout};
    dnnl_dims_t st = {cv->sh, cv->sw}, pl = {cv->ph, cv->pw}, pr;
    // Right padding so the output extent matches floor((in + 2 pad - k) / stride) + 1.
    pr[0] = (cv->OH - 1) * cv->sh + cv->kh - cv->H - cv->ph;
    pr[1] = (cv->OW - 1) * cv->sw + cv->kw - cv->W - cv->pw;
    r->md[ARG_WEI] = *wmd;
    return md_tag(&r->md[ARG_SRC], 4, xs, dnnl_bf16, dnnl_nhwc) || md_tag(&r->md[ARG_DST], 4, ys, dnnl_f32, dnnl_nhwc) ||
           md_tag(&r->md[ARG_BIAS], 1, bs, dnnl_f32, dnnl_a) ||
           D.dnnl_convolution_forward_desc_init(&r->op.conv, dnnl_forward_inference, dnnl_convolution_direct,
                                                &r->md[ARG_SRC], &r->md[ARG_WEI], cv->bias ? &r->md[ARG_BIAS] : NULL,
                                                &r->md[ARG_DST], st, pl, pr) != dnnl_success;
}

int bf16_conv_init(bf16_conv *cv, const float *W, const float *bias, int Cin, int Cout, int kh, int kw, int sh,
                   int sw, int ph, int pw, int H, int Wd) {
    if (load() < 0) return disa_err(DISA_EINVAL, "--precision bf16: %s", D.why);
    bf16_conv t = {Cin, Cout, kh, kw, sh, sw, ph, pw, H, Wd, (H + 2 * ph - kh) / sh + 1, (Wd + 2 * pw - kw) / sw + 1,
                   NULL, NULL, NULL};
    char what[96];
    snprintf(what, sizeof what, "a %dx%d convolution %d -> %d on %dx%d", kh, kw, Cin, Cout, H, Wd);
    size_t n = (size_t)Cout * Cin * kh * kw;
    uint16_t *wb = malloc(n * sizeof *wb);
    t.bias = bias ? copy_bias(bias, Cout) : NULL;
    if (!wb || (bias && !t.bias)) {
        free(wb);
        free(t.bias);
        return disa_err(DISA_ENOMEM, "bf16: out of memory for %s", what);
    }
    bf16_from_f32(wb, W, n);
    dnnl_memory_desc_t wany, wsrc;
    int64_t ws[4] = {Cout, Cin, kh, kw};
    recipe r;
    memset(&r, 0, sizeof r);
    if (!md_tag(&wany, 4, ws, dnnl_bf16, dnnl_format_tag_any) && !md_tag(&wsrc, 4, ws, dnnl_bf16, dnnl_oihw) &&
        !conv_desc(&r, &t, 1, &wany))
        t.w = pack(&r.op.conv, &wsrc, wb, &t.md, what);
    else
        disa_err(DISA_EINVAL, "bf16: oneDNN refused the descriptors of %s", what);
    free(wb);
    if (!t.w) {
        free(t.bias);
        return DISA_EINVAL;
    }
    *cv = t;
    return 0;
}

void bf16_conv_free(bf16_conv *cv) {
    packed_free(cv->w, cv->md, cv->bias);
    memset(cv, 0, sizeof *cv);
}

int bf16_conv_forward(bf16_cache *c, const bf16_conv *cv, float *y, const uint16_t *x, int N, int residual) {
    op_key k;
    memset(&k, 0, sizeof k);
    k.op = OP_CONV, k.epi = residual ? BF16_EPI_RESIDUAL : BF16_EPI_NONE, k.bias = cv->bias != NULL;
    int64_t dims[11] = {N, cv->Cin, cv->Cout, cv->kh, cv->kw, cv->sh, cv->sw, cv->ph, cv->pw, cv->H, cv->W};
    memcpy(k.dims, dims, sizeof dims);
    entry *e = lookup(c, &k);
    if (!e) {
        recipe r;
        memset(&r, 0, sizeof r);
        r.has[ARG_SRC] = r.has[ARG_WEI] = r.has[ARG_DST] = 1;
        r.has[ARG_BIAS] = k.bias;
        r.epi = k.epi, r.scale = 1.0f;
        if (conv_desc(&r, cv, N, cv->md)) return refused(&k);
        if (!(e = make(c, &k, &r))) return DISA_EINVAL;
    }
    void *ptr[N_ARGS] = {(void *)x, cv->w, cv->bias, y, NULL};
    int rc = run(e, ptr);
    if (!rc)
        blas_flops_add(2ull * (uint64_t)N * cv->OH * cv->OW * (uint64_t)cv->Cout * cv->Cin * cv->kh * cv->kw);
    return rc;
}
