// metrics.h: FID, Inception Score and improved precision/recall on feature vectors
// (DESIGN §9), and the feature net they run on: the FID Inception or a sequential CNN
// (the embedded Fashion-MNIST classifier, include/disa/seqcnn.h).
//
// Conventions of the community tools reproduced here (LTH14's torch-fidelity fork
// 0.4.0-beta, which MAR and DiSA report with; pytorch-fid; the ADM evaluator):
// - statistics: mu = mean, sigma = unbiased covariance (numpy.cov, ddof 1); kept as
//   float64 running sums so shards and ranks merge and no one holds all features;
// - FID "eig" (torch-fidelity): |mu1-mu2|^2 + tr s1 + tr s2
//       - 2 sum_i Re sqrt(complex(lambda_i(s1 s2)))          (numpy.linalg.eigvals);
// - FID "sqrtm" (pytorch-fid, ADM evaluator): the same with tr Re sqrtm(s1 s2) by
//   scipy.linalg.sqrtm, retried on (s1 + eps I)(s2 + eps I), eps = 1e-6, when the
//   first square root is not finite; an imaginary diagonal above 1e-3 is an error;
// - IS (torch-fidelity): bias-free logits in sorted file order, permuted by
//   numpy RandomState(2020).permutation(N), 10 splits [i N / 10, (i+1) N / 10),
//   float64 softmax, exp(mean KL(p || mean p)) per split, mean and population std;
// - IS (ADM evaluator): contiguous splits of 5,000 in input order, no shuffle, mean only;
// - precision/recall (Kynkaanniemi et al. 2019) with k = 3 as torch-fidelity's
//   metric_prc and the ADM ManifoldEstimator (nhood 3, no radius clamping): the radius
//   of a point is its distance to the 3rd nearest other point of its own set;
//   precision = share of generated points inside some reference ball, recall = share
//   of reference points inside some generated ball (d <= r counts as inside).
#ifndef DISA_METRICS_H
#define DISA_METRICS_H
#include <stddef.h>
#include <stdint.h>

#include "disa/arena.h"
#include "disa/inception.h"
#include "disa/safetensors.h"
#include "disa/seqcnn.h"

// ----------------------------------------------------------------------------
// Feature statistics: count, sum and sum of outer products, all float64.

typedef struct fstats {
    int dim;
    int64_t n;        // features added
    double *sum;      // [dim]; one allocation holds sum, sxx and buf
    double *sxx;      // [dim, dim] sum of x x^T; only the upper triangle (j >= i) is kept
    double *buf;      // [FSTATS_CHUNK, dim] widening buffer for fstats_add
} fstats;

// Allocate zeroed sums for `dim`-d features. DISA_EINVAL for dim < 1, DISA_ENOMEM.
int fstats_init(fstats *s, int dim);
void fstats_free(fstats *s);
// Add n features x[n, dim] (float32, as the feature nets produce them). Cannot fail.
void fstats_add(fstats *s, const float *x, int n);
// dst += src (same dim, else DISA_ESHAPE): shards merged in any order give the same
// statistics up to float64 rounding.
int fstats_merge(fstats *dst, const fstats *src);
// mu[dim] and the full symmetric sigma[dim, dim] (row-major, ddof 1, as numpy.cov).
// DISA_ERANGE when fewer than 2 features were added.
int fstats_mu_sigma(const fstats *s, double *mu, double *sigma);

// ----------------------------------------------------------------------------
// The sums behind the accumulators below, for adding the shares of several processes
// element by element (an MPI reduction, src/mpi/reduce.c) without reaching into their
// fields: afterwards the accumulator holds what one process adding every input would,
// up to the order of the float64 additions (as fstats_merge / isc_acc_merge).

typedef enum { SPAN_F64, SPAN_I64, SPAN_F32, SPAN_KIND_COUNT } span_kind;
typedef struct metric_span {
    span_kind kind;
    void *data;
    size_t count;   // elements
    size_t row;     // elements per reduction message (count is a multiple)
} metric_span;

#define FSTATS_SPANS 3
// n, sum and sxx of s into out[FSTATS_SPANS].
void fstats_spans(fstats *s, metric_span *out);

// ----------------------------------------------------------------------------
// Frechet distance between N(mu1, s1) and N(mu2, s2), d-dimensional, row-major float64.

// torch-fidelity's form (eigenvalues of s1 s2). DISA_ENOMEM, or DISA_EINTERNAL when
// LAPACK dgeev does not converge (message names the info code).
int fid_eig(double *fid, const double *mu1, const double *s1, const double *mu2,
            const double *s2, int d);

typedef struct fid_sqrtm_info {
    int offset_used;     // 1 when the first sqrtm was not finite and eps was added
    int complex_schur;   // the Schur form was complex (2x2 blocks or negative eigenvalues)
    double max_imag_diag;// largest |Im| on the diagonal of the square root (0 when real)
} fid_sqrtm_info;

// pytorch-fid / ADM evaluator form (scipy.linalg.sqrtm, blocked Schur method, blocks
// of 64, eps retry). info may be NULL. DISA_ERANGE when the imaginary diagonal exceeds
// 1e-3 (their "Imaginary component" error) or the result stays non-finite;
// DISA_EINTERNAL when LAPACK fails; DISA_ENOMEM.
int fid_sqrtm(double *fid, fid_sqrtm_info *info, const double *mu1, const double *s1,
              const double *mu2, const double *s2, int d, double eps);

// ----------------------------------------------------------------------------
// Inception Score, streamed: each logit row is routed to its split by its index in the
// sorted input order, so rows may arrive in any order and shards merge.

typedef struct isc_acc {
    int C, splits;
    int64_t N;          // total rows expected
    int *split_of;      // [N] split of each input index
    int64_t *count;     // [splits] rows seen per split; one block holds count, size, ent, psum
    int64_t *size;      // [splits] rows each split must get
    double *ent;        // [splits] sum over rows of sum_c p log p
    double *psum;       // [splits, C] sum over rows of p
} isc_acc;

// torch-fidelity layout: `splits` splits of the permutation RandomState(seed)
// .permutation(N) when shuffle != 0, else of the input order. DISA_EINVAL for N <
// splits or splits < 1; DISA_ENOMEM.
int isc_acc_init_tf(isc_acc *a, int C, int64_t N, int splits, int shuffle, uint32_t seed);
// ADM evaluator layout: contiguous splits of split_size rows (the last one shorter).
int isc_acc_init_adm(isc_acc *a, int C, int64_t N, int split_size);
void isc_acc_free(isc_acc *a);
// Add rows logits[n, C] whose input indices are idx[n] (NULL: first, first+1, ...).
// DISA_ERANGE for an index outside [0, N).
int isc_acc_add(isc_acc *a, const float *logits, const int64_t *idx, int64_t first, int n);
int isc_acc_merge(isc_acc *dst, const isc_acc *src);
#define ISC_ACC_SPANS 3
// count, ent and psum of a into out[ISC_ACC_SPANS] (see metric_span above).
void isc_acc_spans(isc_acc *a, metric_span *out);
// Mean and population std over the splits (std may be NULL). DISA_ERANGE when some
// split did not get all its rows (message names it).
int isc_acc_result(const isc_acc *a, double *mean, double *std);

// One-shot helpers over all N rows in input order.
int isc_tf(double *mean, double *std, const float *logits, int64_t N, int C, int splits,
           int shuffle, uint32_t seed);
int isc_adm(double *mean, const float *logits, int64_t N, int C, int split_size);

// ----------------------------------------------------------------------------
// Improved precision / recall, k-NN manifolds. ref[Nr, D] are the real (reference)
// features, gen[Ng, D] the generated ones; k < min(Nr, Ng). Squared distances are
// |x|^2 + |y|^2 - 2 x.y with the norms in float64 and x.y by sgemm, clamped at 0.
// Memory: O((Nr + Ng) k) plus blocks of PRC_BLOCK x PRC_BLOCK floats.
// DISA_EINVAL, DISA_ENOMEM.
int prc_compute(double *precision, double *recall, const float *ref, int64_t Nr,
                const float *gen, int64_t Ng, int D, int k);

// ----------------------------------------------------------------------------
// Feature net selection: the FID Inception (any safetensors with its tensor names) or a
// "disa-classifier-1" sequential CNN, chosen by the file's contents.

typedef enum { FEATNET_INCEPTION, FEATNET_SEQCNN, FEATNET_KIND_COUNT } featnet_kind;
const char *featnet_kind_name(featnet_kind k);  // "inception-v3-compat", "sequential-cnn"

typedef struct featnet {
    featnet_kind kind;
    inception_model inc;
    seqcnn cnn;
    int feat_dim, n_logits;   // 2048 / 1008 for Inception (logits bias-free)
    int in_c, in_h, in_w;     // the net's input; in_h = in_w = 0: any size (resized)
    int batch;                // images per forward call
    arena scratch;
    uint8_t *buf;             // [batch, in_c, H, W] conversion buffer
    size_t buf_cap;
    int shape_only;           // featnet_open_shape: dimensions without weights
} featnet;

// Open `path`: a file whose config metadata has format "disa-classifier-1" is a
// sequential CNN, anything else must bind as the Inception. Errors name the path.
int featnet_open(featnet *f, const char *path);
// The kind and dimensions of `path` without the Inception's weights (its folded copy is
// private to each process): for disa-gen --simulate. A classifier is opened whole (it
// is small). featnet_run on an Inception opened this way fails with DISA_EINTERNAL.
int featnet_open_shape(featnet *f, const char *path);
void featnet_close(featnet *f);
// feat[n, feat_dim] and logits[n, n_logits] (either may be NULL) of n images hwc[n, H,
// W, C] (C = 1, 2, 3 or 4, as PNG decoders give them). For Inception, gray is
// replicated and alpha dropped (PIL convert('RGB')); for a 1-channel CNN, RGB becomes
// PIL's convert('L') luma, and H x W must be the net's input size (DISA_ESHAPE).
int featnet_run(featnet *f, float *feat, float *logits, const uint8_t *hwc, int n, int H, int W, int C);

#endif
