// bf16.h: bfloat16 compute through oneDNN (matmul, batched matmul, convolution), the
// precision a model is prepared for, and the round-to-nearest-even conversion.
//
// Mixed precision as autocast does it: matmul and convolution inputs are bf16, products
// accumulate in fp32, and what follows a product (bias, GELU, SiLU, a gate, the residual
// add) runs as a oneDNN post-op on the fp32 accumulator before the result is written,
// in fp32 or bf16 as the next consumer wants it.
//
// oneDNN (libdnnl.so.2) is loaded with dlopen on first use, so fp32 runs never load it
// nor its OpenMP runtime. Weights are packed once (bf16_linear_init, bf16_conv_init) into
// the layout oneDNN picks for them; a bf16_cache keeps the primitives made for each
// shape. Neither is safe to use from two threads at once: a prepared model serves one
// sampling thread (disa runs a rank per core, one sampler at a time).
#ifndef DISA_BF16_H
#define DISA_BF16_H
#include <stddef.h>
#include <stdint.h>

// Precision of the matmuls of a prepared model (--precision, job sampling.precision).
typedef enum { PRECISION_FP32, PRECISION_BF16, PRECISION_AUTO, PRECISION_COUNT } precision_kind;
const char *precision_name(precision_kind p);
// "fp32", "bf16" or "auto": 0, else DISA_EINVAL naming the accepted values.
int precision_parse(const char *s, precision_kind *out);
// AUTO becomes BF16 when bf16_available() and FP32 otherwise; the others stay. `why`
// (may be NULL) gets one line saying what was picked and why.
precision_kind precision_resolve(precision_kind p, char *why, int n);

// 0 when bf16 can run here (oneDNN loads and reports AVX512_BF16 or AMX), else
// DISA_EINVAL with the message "--precision bf16: <reason>". Loads oneDNN once.
int bf16_available(void);
// oneDNN's name for the instruction set it uses ("avx512_core_bf16", "avx512_core_amx"),
// and its version ("2.6.3"); "none" before / without a successful bf16_available().
const char *bf16_isa(void);
const char *bf16_version(void);
// oneDNN's thread count (OpenMP), once loaded; blas_set_threads calls it.
void bf16_set_threads(int n);

// Round to nearest even; NaN stays a quiet NaN of the same sign; denormals are kept.
void bf16_from_f32(uint16_t *dst /*[n]*/, const float *src /*[n]*/, size_t n);
void bf16_to_f32(float *dst /*[n]*/, const uint16_t *src /*[n]*/, size_t n);
// x rounded to bf16 and widened back, for tests and reference kernels.
float bf16_round(float x);
// The bits of one value, inlined where a loop converts as it writes.
static inline __attribute__((always_inline)) uint16_t bf16_bits(float x) {
    uint32_t u;
    __builtin_memcpy(&u, &x, sizeof u);
    uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? (u >> 16) | 0x40u : r);
}

// ----------------------------------------------------------------------------
// Primitive cache: oneDNN primitives by shape (row count, strides, post-ops), least
// recently used evicted beyond `capacity`. Owned by a prepared model.
typedef struct bf16_cache bf16_cache;
// NULL when out of memory (message set).
bf16_cache *bf16_cache_new(int capacity);
void bf16_cache_delete(bf16_cache *c);
// Primitives created since the cache was made (a steady state creates none).
long bf16_cache_created(const bf16_cache *c);

// ----------------------------------------------------------------------------
// A Linear layer y = x W^T + b with W [N, K] (PyTorch layout) packed once.
typedef struct bf16_linear {
    int K, N;
    void *w;      // packed bf16 weights (aligned_alloc), layout in md
    void *md;     // oneDNN memory descriptor of w
    float *bias;  // [N] fp32 copy, or NULL
} bf16_linear;

// What follows the product (on the fp32 accumulator, bias already added).
typedef enum {
    BF16_EPI_NONE,           // y = x W^T + b
    BF16_EPI_GELU,           // y = gelu_erf(x W^T + b)
    BF16_EPI_SILU,           // y = silu(x W^T + b)
    BF16_EPI_RESIDUAL,       // y += x W^T + b              (y fp32)
    BF16_EPI_GATE_RESIDUAL,  // y += gate * (x W^T + b)     (y fp32, gate fp32 [M, N])
    BF16_EPI_COUNT
} bf16_epilogue;

// Pack W [N, K] (row stride K) and copy bias [N] (may be NULL). 0, DISA_ENOMEM, or
// DISA_EINVAL when oneDNN refuses the shape (message names it); l is untouched on failure.
int bf16_linear_init(bf16_linear *l, const float *W, const float *bias, int K, int N);
void bf16_linear_free(bf16_linear *l);

// y [M, N] (fp32, or bf16 when y_bf16) = epi(x [M, K] bf16 . W^T + b). gate is read by
// BF16_EPI_GATE_RESIDUAL only. Counts 2MNK FLOPs (blas_flops). 0, or a DISA_E* code
// with a message when a primitive cannot be made (out of memory, unsupported shape).
int bf16_linear_forward(bf16_cache *c, const bf16_linear *l, void *y, int y_bf16, const uint16_t *x,
                        const float *gate, int M, bf16_epilogue epi);

// ----------------------------------------------------------------------------
// Batched strided matmul, the attention products: for b < batch,
//   d[b] (M x N) = scale * a[b] (M x K) . w[b] (K x N)
// with every operand a strided view: element (b, i, j) of a at a + b*sa[0] + i*sa[1] +
// j*sa[2] (elements, not bytes), likewise w and d. a and w are bf16; d is fp32 or bf16.
typedef struct bf16_view {
    void *p;
    int64_t s[3];
} bf16_view;
int bf16_bmm(bf16_cache *c, bf16_view d, int d_bf16, bf16_view a, bf16_view w, int batch, int M, int K, int N,
             float scale);

// ----------------------------------------------------------------------------
// A 2-D convolution (groups 1, dilation 1, zero padding) on NHWC activations: bf16
// input, fp32 output, weights [Cout, Cin, kh, kw] (PyTorch layout) packed once for an
// input of H x W.
typedef struct bf16_conv {
    int Cin, Cout, kh, kw, sh, sw, ph, pw, H, W, OH, OW;
    void *w, *md;
    float *bias;
} bf16_conv;
int bf16_conv_init(bf16_conv *cv, const float *W, const float *bias, int Cin, int Cout, int kh, int kw, int sh,
                   int sw, int ph, int pw, int H, int Wd);
void bf16_conv_free(bf16_conv *cv);
// y [N, OH, OW, Cout] fp32 = conv(x [N, H, W, Cin] bf16) + b, or y += that with
// residual. Counts 2 * N*OH*OW * Cout*Cin*kh*kw FLOPs.
int bf16_conv_forward(bf16_cache *c, const bf16_conv *cv, float *y, const uint16_t *x, int N, int residual);

#endif
