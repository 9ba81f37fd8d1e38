// attention.c: the core of timm Attention.forward (timm/models/vision_transformer.py),
// between the qkv Linear and the proj Linear:
//
//   q, k, v = qkv.reshape(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)
//   x = softmax(q @ k^T * hd^-0.5) @ v;  x = x.transpose(1, 2).reshape(B, T, d)
//
// Done per (image, head) with two strided sgemms reading q, k, v in place from the qkv
// rows (no repacking), so all FLOPs are counted by blas.c. There is no mask: MAR removes
// or replaces masked tokens before the blocks (DESIGN §4). attention_kv_forward is the
// same core for xAR's queries against its key/value cache, where the block-causal mask
// over groups is a key prefix per group.
#include "disa/nn.h"

#include <math.h>

#include "disa/blas.h"
#include "disa/par.h"

// Heads run side by side on up to ATTN_SLOTS threads, each with a score matrix of its
// own: a head's two products are too small for OpenBLAS to split well across threads
// (it syncs its threads on every call), so one head per thread with single-threaded
// products keeps the cores busy. The slot count is fixed so the scratch a caller sizes
// does not depend on the thread count.
enum { ATTN_SLOTS = 16 };

static int attn_slots(int heads) { return heads < ATTN_SLOTS ? heads : ATTN_SLOTS; }

size_t attention_scratch_floats(int T, int d, int heads) {
    (void)d;
    return (size_t)T * (size_t)T * (size_t)attn_slots(heads);
}

// One (image, head) pair of attention_forward with its own T x T scores.
static void attn_pair(float *out, const float *qkv, float *scores, int b, int h, int T, int d, int heads) {
    int hd = d / heads;
    int ld = 3 * d;  // row stride of q, k and v inside qkv
    float scale = 1.0f / sqrtf((float)hd);
    const float *base = qkv + (size_t)b * T * ld;
    const float *q = base + (size_t)h * hd;          // [T,hd], stride 3d
    const float *k = base + d + (size_t)h * hd;      // [T,hd], stride 3d
    const float *v = base + 2 * d + (size_t)h * hd;  // [T,hd], stride 3d
    float *o = out + (size_t)b * T * d + (size_t)h * hd;  // [T,hd], stride d
    // scores[T,T] = scale * q k^T; the scale rides on alpha for free.
    blas_sgemm(0, 1, T, T, hd, scale, q, ld, k, ld, 0.0f, scores, T);
    softmax_forward(scores, scores, T, T);
    // o = P v, written straight into this head's column slice of out.
    blas_sgemm(0, 0, T, hd, T, 1.0f, scores, T, v, ld, 0.0f, o, d);
}

typedef struct attn_ctx {
    float *out, *scratch;
    const float *qkv;
    int B, T, d, heads, slots;
} attn_ctx;

// Slots [lo, hi): slot s takes its share of the B * heads pairs, in order, on its own
// score matrix.
static void attn_part(void *ctx, size_t lo, size_t hi) {
    const attn_ctx *c = ctx;
    size_t pairs = (size_t)c->B * c->heads, TT = (size_t)c->T * c->T;
    for (size_t s = lo; s < hi; s++)
        for (size_t p = pairs * s / c->slots; p < pairs * (s + 1) / c->slots; p++)
            attn_pair(c->out, c->qkv, c->scratch + s * TT, (int)(p / c->heads), (int)(p % c->heads), c->T, c->d,
                      c->heads);
}

void attention_forward(float *out /*[B*T,d]*/, const float *qkv /*[B*T,3d]*/,
                       float *scratch /*[attention_scratch_floats]*/, int B, int T, int d, int heads) {
    int threads = par_threads(), gemm_threads = blas_get_threads();
    int slots = attn_slots(heads);
    if (slots > threads) slots = threads;
    if (slots > B * heads) slots = B * heads;
    if (slots < 2 || gemm_threads < 2) {
        attn_ctx one = {out, scratch, qkv, B, T, d, heads, 1};
        attn_part(&one, 0, 1);
        return;
    }
    // Every element is the same dot product in the same order whichever thread computes
    // it; the helpers' GEMMs count their FLOPs on their own threads, so the caller's
    // count gets the exact total of the calls instead.
    uint64_t f0 = blas_flops();
    attn_ctx c = {out, scratch, qkv, B, T, d, heads, slots};
    blas_set_gemm_threads(1);
    par_for((size_t)slots, 1, attn_part, &c);
    blas_set_gemm_threads(gemm_threads);
    int hd = d / heads;
    blas_flops_reset();
    blas_flops_add(f0 + (uint64_t)B * heads * 4ull * (uint64_t)T * T * hd);
}

void attention_rows_forward(float *out /*[B*P,d]*/, const float *q, int ldq, const float *kv /*[B*T,2d]*/,
                            float *scratch /*[P*T]*/, int B, int P, int T, int d, int heads) {
    int hd = d / heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++) {
        const float *kb = kv + (size_t)b * T * 2 * d;
        for (int h = 0; h < heads; h++) {
            const float *qh = q + (size_t)b * P * ldq + (size_t)h * hd;
            const float *k = kb + (size_t)h * hd, *v = kb + d + (size_t)h * hd;
            float *o = out + (size_t)b * P * d + (size_t)h * hd;
            blas_sgemm(0, 1, P, T, hd, scale, qh, ldq, k, 2 * d, 0.0f, scratch, T);
            softmax_forward(scratch, scratch, P, T);
            blas_sgemm(0, 0, P, hd, T, 1.0f, scratch, T, v, 2 * d, 0.0f, o, d);
        }
    }
}

// ----------------------------------------------------------------------------
// bf16: per image, QK^T and PV as oneDNN batched matmuls with the heads as the batch
// dimension, each operand a strided view into the projection rows (no repacking), and
// the softmax in fp32 between them, rounding the probabilities to bf16 as it writes.

size_t attention_bf16_scratch_bytes(int P, int T, int heads) {
    // Scores [heads, P, T] fp32 and probabilities [heads, P, T] bf16, 64-byte aligned.
    size_t n = (size_t)heads * P * T;
    return (n * sizeof(float) + 63) / 64 * 64 + n * sizeof(uint16_t) + 64;
}

int attention_bf16_forward(bf16_cache *c, uint16_t *out /*[B*P,d]*/, const uint16_t *q, int ldq,
                           const uint16_t *k, const uint16_t *v, int ldkv, void *scratch, int B, int P, int T,
                           int d, int heads) {
    int hd = d / heads;
    float scale = 1.0f / sqrtf((float)hd);
    float *s = scratch;
    uint16_t *p = (uint16_t *)((char *)scratch + ((size_t)heads * P * T * sizeof(float) + 63) / 64 * 64);
    for (int b = 0; b < B; b++) {
        // s[h] = scale * q[h] k[h]^T: q[h] is P x hd (row stride ldq), k[h]^T is hd x T.
        bf16_view sv = {s, {(int64_t)P * T, T, 1}};
        bf16_view qv = {(void *)(q + (size_t)b * P * ldq), {hd, ldq, 1}};
        bf16_view kv = {(void *)(k + (size_t)b * T * ldkv), {hd, 1, ldkv}};
        int rc = bf16_bmm(c, sv, 0, qv, kv, heads, P, hd, T, scale);
        if (rc) return rc;
        softmax_bf16_forward(p, s, heads * P, T);
        // out[:, h*hd:(h+1)*hd] = p[h] v[h], written into this head's column slice.
        bf16_view ov = {out + (size_t)b * P * d, {hd, d, 1}};
        bf16_view pv = {p, {(int64_t)P * T, T, 1}};
        bf16_view vv = {(void *)(v + (size_t)b * T * ldkv), {hd, ldkv, 1}};
        if ((rc = bf16_bmm(c, ov, 1, pv, vv, heads, P, T, hd, 1.0f)) != 0) return rc;
    }
    return 0;
}

void attention_kv_forward(float *out /*[P,ldo]*/, int ldo, const float *q /*[P,ldq]*/, int ldq,
                          const float *k /*[T,ldkv]*/, const float *v /*[T,ldkv]*/, int ldkv,
                          float *scratch /*[P*T]*/, int P, int T, int d, int heads) {
    int hd = d / heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < heads; h++) {
        size_t off = (size_t)h * hd;
        blas_sgemm(0, 1, P, T, hd, scale, q + off, ldq, k + off, ldkv, 0.0f, scratch, T);
        softmax_forward(scratch, scratch, P, T);
        blas_sgemm(0, 0, P, hd, T, 1.0f, scratch, T, v + off, ldkv, 0.0f, out + off, ldo);
    }
}
