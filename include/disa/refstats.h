// refstats.h: reference statistics files (.npz): mu [D] and sigma [D, D] of a feature
// net's features over a reference image set, optionally the features [N, D] and logits
// themselves (for precision/recall). MAR/DiSA's fid_stats/adm_in256_stats.npz, the
// pytorch-fid and torch-fidelity statistics files and disa-stats --out are all read.
//
// One dtype policy for mu and sigma, wherever they are read (disa-gen checks them before
// it samples, then at the end; disa-stats --fid): float64, or float32 widened exactly
// to float64, since the community tools write either (numpy's mean of float32 features
// is float32, its cov float64) and widening loses nothing. Any other dtype is refused.
#ifndef DISA_REFSTATS_H
#define DISA_REFSTATS_H
#include <stdint.h>

#include "disa/npy.h"

// mu [D] and sigma [D, D] of `path` as float64, malloc'd (*mu, *sigma are the caller's
// to free; NULL on failure). D is the feature net's width. Errors name the path and the
// array: DISA_ENOTFOUND/EFORMAT from the archive, DISA_ESHAPE for another size,
// DISA_EFORMAT for a dtype outside the policy, DISA_ENOMEM.
int refstats_read(const char *path, int D, double **mu, double **sigma);
// The same checks without keeping the arrays: a bad file stops a run before it samples.
int refstats_check(const char *path, int D);
// The stored features, float32 [N, D], into *a (npy_free it). DISA_ENOTFOUND when the
// file has none, DISA_ESHAPE for another dtype or width.
int refstats_features(npy_array *a, const char *path, int D);

// Write `path` (atomically): mu, sigma (float64) and n (int64 [1]); with feat != NULL
// also features float32 [n, D] and logits float32 [n, n_logits].
int refstats_write(const char *path, const double *mu, const double *sigma, int D, int64_t n, const float *feat,
                   const float *logits, int n_logits);

#endif
