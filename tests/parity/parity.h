// parity.h: the interface between disa-parity and the per-area op adapters.
//
// A golden file (tests/golden/README.md) names an op; the runner finds the adapter in
// the tables below, which reads inputs/params/config from the case, runs the C code,
// and compares each output with pc_check / pc_check_i64.
#ifndef DISA_PARITY_H
#define DISA_PARITY_H
#include <stddef.h>
#include <stdint.h>
#include <cJSON.h>

typedef struct pcase pcase;

// Float32 view of tensor `name` ("in.x", "param.weight", "out.y"): F16/BF16 widened,
// param_gen entries generated. Returns NULL when absent (adapters treat optional
// tensors that way); *ndim and shape[0..ndim-1] are filled when non-NULL.
// The data stays valid until the case ends.
const float *pc_f32(pcase *c, const char *name, int *ndim, int64_t shape[8]);
// Same for I64 tensors.
const int64_t *pc_i64(pcase *c, const char *name, int *ndim, int64_t shape[8]);
// Same for F64 tensors (a copy, valid until the case ends).
const double *pc_f64(pcase *c, const char *name, int *ndim, int64_t shape[8]);
// Like pc_f32 but a missing tensor, or a shape other than the one given (ndim dims,
// -1 = any), is an error reported by the runner; returns NULL then.
const float *pc_need(pcase *c, const char *name, int ndim, const int64_t *shape);

// The parsed `config` object (never NULL; an empty object when absent).
const cJSON *pc_config(pcase *c);
// Integer/number config values; a missing key without default (def_ok=0) is an error.
int pc_int(pcase *c, const char *key, int def, int def_ok);
double pc_num(pcase *c, const char *key, double def, int def_ok);

// Zeroed float scratch freed when the case ends; NULL on allocation failure.
float *pc_alloc(pcase *c, size_t n);

// Compare got[0..n-1] with out.<name> under the case tolerance; prints one line.
// Returns 0 on pass, 1 on failure (also when the golden tensor is missing or its
// element count differs from n).
int pc_check(pcase *c, const char *name, const float *got, size_t n);
int pc_check_i64(pcase *c, const char *name, const int64_t *got, size_t n);
// Compare got[0..n-1] with the F64 tensor out.<name>, as pc_check does in float.
int pc_check_f64(pcase *c, const char *name, const double *got, size_t n);

// 1 when the runner checks bf16 forms (disa-parity --bf16): the adapter then prepares its
// model for bf16 and the runner compares with the bf16 tolerance. An adapter that never
// asks is reported as fp32-only (SKIP) in that mode.
int pc_bf16(pcase *c);

// Mark the case failed with a message (bad golden, C call returned an error).
int pc_fail(pcase *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// An adapter returns the number of failed checks (0 = pass).
typedef int (*parity_fn)(pcase *c);
typedef struct { const char *op; parity_fn fn; } parity_op;

// Each area ends its table with {NULL, NULL}.
extern const parity_op parity_ops_core[];
extern const parity_op parity_ops_nn[];
extern const parity_op parity_ops_sample[];
extern const parity_op parity_ops_model[];
extern const parity_op parity_ops_vae[];
extern const parity_op parity_ops_metrics[];
extern const parity_op parity_ops_xar[];
extern const parity_op parity_ops_flowar[];

#endif
