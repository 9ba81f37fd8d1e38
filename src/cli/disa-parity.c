// disa-parity: run golden parity files (tests/golden/README.md) against the C code.
//
//   disa-parity [-v] [--bf16] FILE...
//
// Each file names an op; the adapter for it (tests/parity/parity_<area>.c) runs the C
// implementation and compares every out.* tensor. Exit status 0 when all pass, 1 when
// any check fails, 2 for bad usage or unreadable files.
//
// --bf16 runs the model ops whose adapters support it (mar_forward, diffloss_net,
// vae_decode) with the model prepared for bf16 (bf16.h) against the same fp32 PyTorch
// outputs, with the tolerance max |got - want| <= BF16_RTOL * max |want| per tensor
// (the golden's `bf16_rtol` metadata when present); other ops are skipped.
#include "parity.h"
#include "disa/arena.h"
#include "disa/cpu.h"
#include "disa/dgen.h"
#include "disa/err.h"
#include "disa/flags.h"
#include "disa/safetensors.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pcase {
    st_file st;
    const char *path;
    cJSON *config, *param_gen;
    double atol, rtol;
    int failures;
    void **allocs;
    int n_allocs, cap_allocs;
    int verbose;
    int bf16, bf16_asked;
};

// Inputs and weights rounded to bf16 carry 2^-9 relative error each, and each layer adds
// its own: the golden models show 0.4-1.4% of their largest output value (2026-12-02),
// so 3% keeps a margin of 2x and more while a wrong epilogue or layout (errors of the
// order of the values) fails.
#define BF16_RTOL 0.03

int pc_bf16(pcase *c) {
    c->bf16_asked = 1;
    return c->bf16;
}

static void *pc_track(pcase *c, void *p) {
    if (!p) return NULL;
    if (mem_grow(&c->allocs, &c->cap_allocs, c->n_allocs, sizeof *c->allocs, 16)) {
        free(p);
        return NULL;
    }
    c->allocs[c->n_allocs++] = p;
    return p;
}

float *pc_alloc(pcase *c, size_t n) { return pc_track(c, calloc(n ? n : 1, sizeof(float))); }

int pc_fail(pcase *c, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("  ERROR %s\n", msg);
    c->failures++;
    return 1;
}

const cJSON *pc_config(pcase *c) { return c->config; }

int pc_int(pcase *c, const char *key, int def, int def_ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->config, key);
    if (cJSON_IsNumber(v)) return v->valueint;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    if (!def_ok) pc_fail(c, "config key '%s' missing or not a number", key);
    return def;
}

double pc_num(pcase *c, const char *key, double def, int def_ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->config, key);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (!def_ok) pc_fail(c, "config key '%s' missing or not a number", key);
    return def;
}

static const float *gen_param(pcase *c, const char *name, int *ndim, int64_t shape[8]) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(c->param_gen, name);
    if (!g) return NULL;
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(g, "seed");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(g, "scale");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(g, "shape");
    if (!cJSON_IsNumber(seed) || !cJSON_IsNumber(scale) || !cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > 8) {
        pc_fail(c, "param_gen entry '%s' needs numeric seed, scale and a shape array", name);
        return NULL;
    }
    int nd = cJSON_GetArraySize(sh);
    int64_t loc[8];
    size_t n = 1;
    for (int i = 0; i < nd; i++) {
        loc[i] = (int64_t)cJSON_GetArrayItem(sh, i)->valuedouble;
        n *= (size_t)loc[i];
    }
    float *p = pc_alloc(c, n);
    if (!p) return NULL;
    dgen_fill(p, n, (uint64_t)seed->valuedouble, scale->valuedouble);
    // Optional "offset": x_i = float32(offset + dgen_i) in float64 (README: param_gen),
    // for parameters that must stay positive (BatchNorm running_var).
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(g, "offset");
    if (cJSON_IsNumber(off))
        for (size_t i = 0; i < n; i++) p[i] = (float)(off->valuedouble + (double)p[i]);
    if (ndim) *ndim = nd;
    if (shape) memcpy(shape, loc, sizeof(int64_t) * (size_t)nd);
    return p;
}

// The dims of t into *ndim and shape (either may be NULL).
static void tensor_dims(const st_tensor *t, int *ndim, int64_t shape[8]) {
    if (ndim) *ndim = t->ndim;
    if (shape) memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
}

const float *pc_f32(pcase *c, const char *name, int *ndim, int64_t shape[8]) {
    const st_tensor *t = st_find(&c->st, name);
    if (!t) return gen_param(c, name, ndim, shape);
    const float *p;
    if (st_get_f32(&c->st, name, -1, NULL, &p) != 0) {
        pc_fail(c, "%s", disa_errmsg());
        return NULL;
    }
    tensor_dims(t, ndim, shape);
    return p;
}

// A copy of tensor `name` of dtype dt (the mapping may be unaligned for 8-byte values),
// owned by the case; NULL when absent, or after a message when of another dtype.
static const void *pc_copy(pcase *c, const char *name, st_dtype dt, int *ndim, int64_t shape[8]) {
    const st_tensor *t = st_find(&c->st, name);
    if (!t) return NULL;
    if (t->dtype != dt) {
        pc_fail(c, "tensor '%s' has dtype %s, expected %s", name, st_dtype_name(t->dtype), st_dtype_name(dt));
        return NULL;
    }
    void *p = pc_track(c, malloc(t->nbytes ? t->nbytes : 8));
    if (!p) return NULL;
    memcpy(p, t->data, t->nbytes);
    tensor_dims(t, ndim, shape);
    return p;
}

const int64_t *pc_i64(pcase *c, const char *name, int *ndim, int64_t shape[8]) {
    return pc_copy(c, name, ST_I64, ndim, shape);
}

const double *pc_f64(pcase *c, const char *name, int *ndim, int64_t shape[8]) {
    return pc_copy(c, name, ST_F64, ndim, shape);
}

const float *pc_need(pcase *c, const char *name, int ndim, const int64_t *shape) {
    int nd;
    int64_t sh[8];
    const float *p = pc_f32(c, name, &nd, sh);
    if (!p) {
        if (c->failures == 0) pc_fail(c, "required tensor '%s' is missing", name);
        return NULL;
    }
    int ok = nd == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || shape[i] == sh[i];
    if (!ok) {
        pc_fail(c, "tensor '%s' has %d dims [%lld, ...], expected %d dims", name, nd,
                nd > 0 ? (long long)sh[0] : 0LL, ndim);
        return NULL;
    }
    return p;
}

static const st_tensor *want_tensor(pcase *c, const char *name, char *full, size_t n) {
    snprintf(full, n, "out.%s", name);
    const st_tensor *t = st_find(&c->st, full);
    if (!t) pc_fail(c, "golden has no tensor '%s'", full);
    return t;
}

// The golden out.NAME (its name into full) holding n values of dtype dt, or NULL after
// a message.
static const st_tensor *want_values(pcase *c, const char *name, char *full, size_t nfull, st_dtype dt, size_t n) {
    const st_tensor *t = want_tensor(c, name, full, nfull);
    if (!t) return NULL;
    if (t->dtype != dt) {
        pc_fail(c, "%s has dtype %s, expected %s", full, st_dtype_name(t->dtype), st_dtype_name(dt));
        return NULL;
    }
    size_t wn = t->nbytes / st_dtype_size(dt);
    if (wn != n) {
        pc_fail(c, "%s: C produced %zu values, golden has %zu", full, n, wn);
        return NULL;
    }
    return t;
}

// got against want, n values: OK when no value is non-finite where want's is finite and
// the max abs error is within atol + rtol * max|want|. The line with max abs and rel
// error; on failure (or verbose) the first five pairs and the worst one, with `digits`
// significant digits. 1 on failure (counted), else 0.
static int report(pcase *c, const char *full, const double *got, const double *want, size_t n, int digits) {
    double max_abs = 0, max_want = 0;
    size_t worst = 0, nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        if (!isfinite(got[i]) && isfinite(want[i])) nonfinite++;
        if (d > max_abs || isnan(d)) {
            max_abs = isnan(d) ? INFINITY : d;
            worst = i;
        }
        if (fabs(want[i]) > max_want) max_want = fabs(want[i]);
    }
    double rel = max_want > 0 ? max_abs / max_want : max_abs;
    int ok = !nonfinite && max_abs <= c->atol + c->rtol * max_want;
    printf("  %-32s n=%-8zu max_abs=%.3e max_rel=%.3e  %s\n", full, n, max_abs, rel, ok ? "OK" : "NOT OK");
    if (!ok || c->verbose) {
        for (size_t i = 0; i < n && i < 5; i++)
            printf("    [%zu] got % .*g want % .*g\n", i, digits, got[i], digits, want[i]);
        printf("    worst [%zu] got % .*g want % .*g (tolerance atol %.1e + rtol %.1e * %.3e)\n", worst, digits,
               got[worst], digits, want[worst], c->atol, c->rtol, max_want);
    }
    if (!ok) c->failures++;
    return !ok;
}

int pc_check(pcase *c, const char *name, const float *got, size_t n) {
    char full[256];
    const st_tensor *t = want_tensor(c, name, full, sizeof full);
    if (!t) return 1;
    const float *want;
    if (st_get_f32(&c->st, full, -1, NULL, &want) != 0) return pc_fail(c, "%s", disa_errmsg());
    size_t wn = t->nbytes / st_dtype_size(t->dtype);
    if (wn != n) return pc_fail(c, "%s: C produced %zu values, golden has %zu", full, n, wn);
    // Both widened to double (exactly) for the one comparison.
    size_t bytes = sizeof(double) * (n ? n : 1);
    double *g = pc_track(c, malloc(bytes)), *w = pc_track(c, malloc(bytes));
    if (!g || !w) return pc_fail(c, "%s: out of memory", full);
    for (size_t i = 0; i < n; i++) g[i] = got[i], w[i] = want[i];
    return report(c, full, g, w, n, 9);
}

int pc_check_f64(pcase *c, const char *name, const double *got, size_t n) {
    char full[256];
    const st_tensor *t = want_values(c, name, full, sizeof full, ST_F64, n);
    double *w = t ? pc_track(c, malloc(t->nbytes ? t->nbytes : 8)) : NULL;  // copy: the mapping may be unaligned
    if (!w) return t ? pc_fail(c, "%s: out of memory", full) : 1;
    memcpy(w, t->data, t->nbytes);
    return report(c, full, got, w, n, 17);
}

int pc_check_i64(pcase *c, const char *name, const int64_t *got, size_t n) {
    char full[256];
    const st_tensor *t = want_values(c, name, full, sizeof full, ST_I64, n);
    if (!t) return 1;
    size_t bad = 0, first = 0;
    const unsigned char *w = t->data;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, w + 8 * i, 8);
        if (v != got[i] && bad++ == 0) first = i;
    }
    printf("  %-32s n=%-8zu mismatches=%zu  %s\n", full, n, bad, bad ? "NOT OK" : "OK");
    if (bad) {
        int64_t v;
        memcpy(&v, w + 8 * first, 8);
        printf("    first mismatch [%zu] got %lld want %lld\n", first, (long long)got[first], (long long)v);
        c->failures++;
    }
    return bad != 0;
}

// ----------------------------------------------------------------------------
// the runner's own op: the deterministic generator, bit for bit

static int op_dgen(pcase *c) {
    int nd;
    int64_t sh[8];
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(c->config, "seed");
    if (!cJSON_IsNumber(g)) return pc_fail(c, "config needs 'seed'");
    const float *want = pc_f32(c, "out.x", &nd, sh);
    if (!want) return pc_fail(c, "golden has no out.x");
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)sh[i];
    float *got = pc_alloc(c, n);
    if (!got) return pc_fail(c, "out of memory");
    dgen_fill(got, n, (uint64_t)g->valuedouble, pc_num(c, "scale", 1.0, 0));
    return pc_check(c, "x", got, n);
}

const parity_op parity_ops_core[] = {{"dgen", op_dgen}, {NULL, NULL}};

static parity_fn find_op(const char *op) {
    const parity_op *tables[] = {parity_ops_core, parity_ops_nn, parity_ops_sample, parity_ops_model,
                                 parity_ops_vae, parity_ops_metrics, parity_ops_xar, parity_ops_flowar};
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
        for (const parity_op *p = tables[t]; p->op; p++)
            if (strcmp(p->op, op) == 0) return p->fn;
    return NULL;
}

// Returns 0 pass, 1 check failure, 2 unreadable or malformed golden.
static int run_file(const char *path, int verbose, int bf16) {
    pcase c = {.path = path, .verbose = verbose, .bf16 = bf16};
    int rc = 2;
    if (st_open(&c.st, path) != 0) {
        printf("FAIL %s\n  ERROR %s\n", path, disa_errmsg());
        return 2;
    }
    const char *op = st_meta(&c.st, "op");
    const char *cfg = st_meta(&c.st, "config"), *pg = st_meta(&c.st, "param_gen");
    const char *atol = st_meta(&c.st, "atol"), *rtol = st_meta(&c.st, "rtol");
    if (!op || !atol || !rtol) {
        printf("FAIL %s\n  ERROR metadata must have 'op', 'atol' and 'rtol'\n", path);
        goto out;
    }
    c.atol = strtod(atol, NULL);
    c.rtol = strtod(rtol, NULL);
    if (bf16) {
        const char *br = st_meta(&c.st, "bf16_rtol");
        c.atol = 0.0;
        c.rtol = br ? strtod(br, NULL) : BF16_RTOL;
    }
    c.config = cJSON_Parse(cfg ? cfg : "{}");
    c.param_gen = cJSON_Parse(pg ? pg : "{}");
    if (!cJSON_IsObject(c.config) || !cJSON_IsObject(c.param_gen)) {
        printf("FAIL %s\n  ERROR 'config' and 'param_gen' must be JSON objects\n", path);
        goto out;
    }
    parity_fn fn = find_op(op);
    if (!fn) {
        printf("FAIL %s\n  ERROR unknown op '%s' (no adapter in tests/parity/)\n", path, op);
        goto out;
    }
    const char *desc = st_meta(&c.st, "description");
    printf("%s [%s]%s%s%s\n", path, op, bf16 ? " (bf16)" : "", desc ? " " : "", desc ? desc : "");
    fn(&c);
    if (bf16 && !c.bf16_asked) {
        printf("SKIP %s (op '%s' has no bf16 form)\n", path, op);
        rc = 3;
    } else if (c.failures) {
        const char *gen = st_meta(&c.st, "generator");
        printf("FAIL %s\n---> HINT: if the reference changed, regenerate the golden with "
               "`make goldens` (%s); otherwise the C op '%s' disagrees with PyTorch. Rerun with -v "
               "for the first values.\n", path, gen ? gen : "tools/golden/", op);
        rc = 1;
    } else {
        printf("PASS %s\n", path);
        rc = 0;
    }
out:
    for (int i = 0; i < c.n_allocs; i++) free(c.allocs[i]);
    free(c.allocs);
    cJSON_Delete(c.config);
    cJSON_Delete(c.param_gen);
    st_close(&c.st);
    return rc;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    int verbose = 0, bf16 = 0, first = 1;
    if (argc > 1 && flag_is_help(argv[1])) {
        printf("usage: disa-parity [-v] [--bf16] GOLDEN.safetensors...   (tests/golden/README.md)\n");
        return 0;
    }
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "-v") == 0) verbose = 1;
        else if (strcmp(argv[first], "--bf16") == 0) bf16 = 1;
        else break;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: disa-parity [-v] [--bf16] GOLDEN.safetensors...\n");
        return 2;
    }
    for (int i = first; i < argc; i++)
        if (argv[i][0] == '-') {
            fprintf(stderr, "disa-parity: unknown flag '%s' (usage: disa-parity [-v] [--bf16] GOLDEN.safetensors...)\n",
                    argv[i]);
            return 2;
        }
    int pass = 0, fail = 0, skip = 0, worst = 0;
    for (int i = first; i < argc; i++) {
        int r = run_file(argv[i], verbose, bf16);
        if (r == 3) {
            skip++;
            continue;
        }
        if (r == 0) pass++;
        else fail++;
        if (r > worst) worst = r;
    }
    printf("disa-parity: %d passed, %d failed%s\n", pass, fail, skip ? ", some skipped (fp32 only)" : "");
    if (skip) printf("disa-parity: %d skipped\n", skip);
    return worst;
}
