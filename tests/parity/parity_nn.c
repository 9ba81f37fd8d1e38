// parity_nn.c: golden adapters for the src/nn kernels (tools/golden/nn_kernels.py).
//
// Each adapter reads the case's tensors (sizes come from their shapes, settings from
// `config`), runs the kernel and compares out.y. The ops and tensor names are listed
// in tests/golden/README.md under "nn kernels". `attention` runs the whole timm
// Attention (qkv Linear, attention_forward, proj Linear), as the model code will.
#include <stdint.h>

#include "disa/nn.h"
#include "parity.h"

// ----------------------------------------------------------------------------
// helpers

static size_t numel(int nd, const int64_t *sh) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)sh[i];
    return n;
}

// An optional parameter: NULL when absent; on a shape other than [n] the case fails
// and *bad is set.
static const float *opt_vec(pcase *c, const char *name, int64_t n, int *bad) {
    int nd;
    int64_t sh[8];
    const float *p = pc_f32(c, name, &nd, sh);
    if (p && (nd != 1 || sh[0] != n)) {
        pc_fail(c, "tensor '%s' must have shape [%lld]", name, (long long)n);
        *bad = 1;
    }
    return p;
}

// A config pair such as "stride": [sh, sw]; a single number means both. Returns 0, or
// 1 after failing the case when the key is malformed (or missing without default).
static int cfg_pair(pcase *c, const char *key, int v[2], int d0, int d1, int def_ok) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(pc_config(c), key);
    if (!j) {
        if (!def_ok) return pc_fail(c, "config key '%s' missing", key);
        v[0] = d0, v[1] = d1;
        return 0;
    }
    if (cJSON_IsNumber(j)) {
        v[0] = v[1] = j->valueint;
        return 0;
    }
    if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 2 &&
        cJSON_IsNumber(cJSON_GetArrayItem(j, 0)) && cJSON_IsNumber(cJSON_GetArrayItem(j, 1))) {
        v[0] = cJSON_GetArrayItem(j, 0)->valueint;
        v[1] = cJSON_GetArrayItem(j, 1)->valueint;
        return 0;
    }
    return pc_fail(c, "config key '%s' must be a number or a pair [h, w]", key);
}

// in.x as NCHW; returns NULL (case failed) unless it is 4-d.
static const float *need_nchw(pcase *c, int *N, int *C, int *H, int *W) {
    static const int64_t any4[4] = {-1, -1, -1, -1};
    int nd;
    int64_t sh[8];
    if (!pc_need(c, "in.x", 4, any4)) return NULL;
    const float *x = pc_f32(c, "in.x", &nd, sh);
    *N = (int)sh[0], *C = (int)sh[1], *H = (int)sh[2], *W = (int)sh[3];
    return x;
}

// ----------------------------------------------------------------------------
// linear, norms

static int op_linear(pcase *c) {
    const int64_t xs[2] = {-1, -1};
    int nd;
    int64_t sh[8];
    if (!pc_need(c, "in.x", 2, xs)) return 1;
    const float *x = pc_f32(c, "in.x", &nd, sh);
    int N = (int)sh[0], Cin = (int)sh[1];
    const int64_t ws[2] = {-1, Cin};
    const float *w = pc_need(c, "param.weight", 2, ws);
    if (!w) return 1;
    pc_f32(c, "param.weight", &nd, sh);
    int Cout = (int)sh[0], bad = 0;
    const float *b = opt_vec(c, "param.bias", Cout, &bad);
    float *y = pc_alloc(c, (size_t)N * Cout);
    if (bad || !y) return bad ? 1 : pc_fail(c, "out of memory");
    linear_forward(y, x, w, b, N, Cin, Cout);
    return pc_check(c, "y", y, (size_t)N * Cout);
}

static int op_layernorm(pcase *c) {
    int nd;
    int64_t sh[8];
    const float *x = pc_f32(c, "in.x", &nd, sh);
    if (!x || nd < 1) return pc_fail(c, "need in.x with at least 1 dim");
    size_t n = numel(nd, sh);
    int C = (int)sh[nd - 1], N = C ? (int)(n / C) : 0, bad = 0;
    const float *w = opt_vec(c, "param.weight", C, &bad);
    const float *b = opt_vec(c, "param.bias", C, &bad);
    float eps = (float)pc_num(c, "eps", 1e-5, 1);
    float *y = pc_alloc(c, n);
    if (bad || !y) return bad ? 1 : pc_fail(c, "out of memory");
    layernorm_forward(y, x, w, b, N, C, eps);
    return pc_check(c, "y", y, n);
}

static int op_groupnorm(pcase *c) {
    int N, C, H, W, bad = 0;
    const float *x = need_nchw(c, &N, &C, &H, &W);
    if (!x) return 1;
    int G = pc_int(c, "num_groups", 0, 0);
    if (G <= 0 || C % G != 0) return pc_fail(c, "num_groups %d must divide C = %d", G, C);
    const float *w = opt_vec(c, "param.weight", C, &bad);
    const float *b = opt_vec(c, "param.bias", C, &bad);
    float eps = (float)pc_num(c, "eps", 1e-5, 1);
    size_t n = (size_t)N * C * H * W;
    float *y = pc_alloc(c, n);
    if (bad || !y) return bad ? 1 : pc_fail(c, "out of memory");
    groupnorm_forward(y, x, w, b, N, C, H * W, G, eps);
    return pc_check(c, "y", y, n);
}

// ----------------------------------------------------------------------------
// activations, softmax

static int run_eltwise(pcase *c, void (*fn)(float *, const float *, size_t)) {
    int nd;
    int64_t sh[8];
    const float *x = pc_f32(c, "in.x", &nd, sh);
    if (!x) return pc_fail(c, "required tensor 'in.x' is missing");
    size_t n = numel(nd, sh);
    float *y = pc_alloc(c, n);
    if (!y) return pc_fail(c, "out of memory");
    fn(y, x, n);
    return pc_check(c, "y", y, n);
}
static int op_gelu(pcase *c) { return run_eltwise(c, gelu_forward); }
static int op_silu(pcase *c) { return run_eltwise(c, silu_forward); }
static int op_relu(pcase *c) { return run_eltwise(c, relu_forward); }

static int op_softmax(pcase *c) {
    int nd;
    int64_t sh[8];
    const float *x = pc_f32(c, "in.x", &nd, sh);
    if (!x || nd < 1) return pc_fail(c, "need in.x with at least 1 dim");
    size_t n = numel(nd, sh);
    int C = (int)sh[nd - 1], N = C ? (int)(n / C) : 0;
    float *y = pc_alloc(c, n);
    if (!y) return pc_fail(c, "out of memory");
    softmax_forward(y, x, N, C);
    return pc_check(c, "y", y, n);
}

// ----------------------------------------------------------------------------
// attention: timm Attention = qkv Linear -> attention_forward -> proj Linear

static int op_attention(pcase *c) {
    const int64_t xs[3] = {-1, -1, -1};
    int nd, bad = 0;
    int64_t sh[8];
    if (!pc_need(c, "in.x", 3, xs)) return 1;
    const float *x = pc_f32(c, "in.x", &nd, sh);
    int B = (int)sh[0], T = (int)sh[1], d = (int)sh[2];
    int heads = pc_int(c, "num_heads", 0, 0);
    if (heads <= 0 || d % heads != 0) return pc_fail(c, "num_heads %d must divide d = %d", heads, d);
    const int64_t wq[2] = {3 * d, d}, wp[2] = {d, d};
    const float *wqkv = pc_need(c, "param.qkv.weight", 2, wq);
    const float *wproj = pc_need(c, "param.proj.weight", 2, wp);
    if (!wqkv || !wproj) return 1;
    const float *bqkv = opt_vec(c, "param.qkv.bias", 3 * d, &bad);
    const float *bproj = opt_vec(c, "param.proj.bias", d, &bad);
    if (bad) return 1;
    int rows = B * T;
    float *qkv = pc_alloc(c, (size_t)rows * 3 * d);
    float *att = pc_alloc(c, (size_t)rows * d);
    float *y = pc_alloc(c, (size_t)rows * d);
    float *scratch = pc_alloc(c, attention_scratch_floats(T, d, heads));
    if (!qkv || !att || !y || !scratch) return pc_fail(c, "out of memory");
    linear_forward(qkv, x, wqkv, bqkv, rows, d, 3 * d);
    attention_forward(att, qkv, scratch, B, T, d, heads);
    linear_forward(y, att, wproj, bproj, rows, d, d);
    return pc_check(c, "y", y, (size_t)rows * d);
}

// ----------------------------------------------------------------------------
// conv2d

static int op_conv2d(pcase *c) {
    int N, Cin, H, W, nd, bad = 0;
    int64_t sh[8];
    const float *x = need_nchw(c, &N, &Cin, &H, &W);
    if (!x) return 1;
    const int64_t ws[4] = {-1, Cin, -1, -1};
    const float *w = pc_need(c, "param.weight", 4, ws);
    if (!w) return 1;
    pc_f32(c, "param.weight", &nd, sh);
    int Cout = (int)sh[0], kh = (int)sh[2], kw = (int)sh[3];
    const float *b = opt_vec(c, "param.bias", Cout, &bad);
    int st[2], pad[2];
    if (bad || cfg_pair(c, "stride", st, 1, 1, 1) || cfg_pair(c, "padding", pad, 0, 0, 1)) return 1;
    int OH = conv2d_out_size(H, kh, st[0], pad[0]), OW = conv2d_out_size(W, kw, st[1], pad[1]);
    if (st[0] <= 0 || st[1] <= 0 || OH <= 0 || OW <= 0)
        return pc_fail(c, "conv2d: stride %dx%d / output %dx%d not positive", st[0], st[1], OH, OW);
    size_t n = (size_t)N * Cout * OH * OW;
    float *y = pc_alloc(c, n);
    float *scratch = pc_alloc(c, conv2d_scratch_floats(Cin, H, W, kh, kw, st[0], st[1], pad[0], pad[1]));
    if (!y || !scratch) return pc_fail(c, "out of memory");
    conv2d_forward(y, x, w, b, scratch, N, Cin, H, W, Cout, kh, kw, st[0], st[1], pad[0], pad[1]);
    return pc_check(c, "y", y, n);
}

// ----------------------------------------------------------------------------
// upsample, pooling, resize

static int op_upsample_nearest2x(pcase *c) {
    int N, C, H, W;
    const float *x = need_nchw(c, &N, &C, &H, &W);
    if (!x) return 1;
    size_t n = (size_t)N * C * 4 * H * W;
    float *y = pc_alloc(c, n);
    if (!y) return pc_fail(c, "out of memory");
    upsample_nearest2x_forward(y, x, N, C, H, W);
    return pc_check(c, "y", y, n);
}

// Shared by avg and max pooling: torch's stride defaults to the kernel.
static int run_pool(pcase *c, int is_max) {
    int N, C, H, W, k[2], st[2], pad[2];
    const float *x = need_nchw(c, &N, &C, &H, &W);
    if (!x) return 1;
    if (cfg_pair(c, "kernel", k, 0, 0, 0)) return 1;
    if (cfg_pair(c, "stride", st, k[0], k[1], 1) || cfg_pair(c, "padding", pad, 0, 0, 1)) return 1;
    // torch rejects padding above half the kernel: a window could then be all padding.
    if (k[0] <= 0 || k[1] <= 0 || st[0] <= 0 || st[1] <= 0 || pad[0] < 0 || pad[1] < 0 ||
        2 * pad[0] > k[0] || 2 * pad[1] > k[1])
        return pc_fail(c, "pool: bad kernel %dx%d / stride %dx%d / padding %dx%d", k[0], k[1],
                       st[0], st[1], pad[0], pad[1]);
    int OH = conv2d_out_size(H, k[0], st[0], pad[0]), OW = conv2d_out_size(W, k[1], st[1], pad[1]);
    if (OH <= 0 || OW <= 0) return pc_fail(c, "pool: empty output %dx%d", OH, OW);
    size_t n = (size_t)N * C * OH * OW;
    float *y = pc_alloc(c, n);
    if (!y) return pc_fail(c, "out of memory");
    if (is_max)
        maxpool2d_forward(y, x, N, C, H, W, k[0], k[1], st[0], st[1], pad[0], pad[1]);
    else
        avgpool2d_forward(y, x, N, C, H, W, k[0], k[1], st[0], st[1], pad[0], pad[1],
                          pc_int(c, "count_include_pad", 1, 1));
    return pc_check(c, "y", y, n);
}
static int op_avgpool2d(pcase *c) { return run_pool(c, 0); }
static int op_maxpool2d(pcase *c) { return run_pool(c, 1); }

static int op_adaptive_avgpool_1x1(pcase *c) {
    int N, C, H, W;
    const float *x = need_nchw(c, &N, &C, &H, &W);
    if (!x) return 1;
    float *y = pc_alloc(c, (size_t)N * C);
    if (!y) return pc_fail(c, "out of memory");
    adaptive_avgpool_1x1(y, x, N, C, H * W);
    return pc_check(c, "y", y, (size_t)N * C);
}

static int op_resize_bilinear(pcase *c) {
    int N, C, H, W;
    const float *x = need_nchw(c, &N, &C, &H, &W);
    if (!x) return 1;
    int OH = pc_int(c, "out_h", 0, 0), OW = pc_int(c, "out_w", 0, 0);
    if (OH <= 0 || OW <= 0) return pc_fail(c, "resize_bilinear: out_h/out_w must be > 0");
    size_t n = (size_t)N * C * OH * OW;
    float *y = pc_alloc(c, n);
    if (!y) return pc_fail(c, "out of memory");
    resize_bilinear_forward(y, x, N, C, H, W, OH, OW);
    return pc_check(c, "y", y, n);
}

const parity_op parity_ops_nn[] = {
    {"linear", op_linear},
    {"layernorm", op_layernorm},
    {"groupnorm", op_groupnorm},
    {"gelu", op_gelu},
    {"silu", op_silu},
    {"relu", op_relu},
    {"softmax", op_softmax},
    {"attention", op_attention},
    {"conv2d", op_conv2d},
    {"upsample_nearest2x", op_upsample_nearest2x},
    {"avgpool2d", op_avgpool2d},
    {"maxpool2d", op_maxpool2d},
    {"adaptive_avgpool_1x1", op_adaptive_avgpool_1x1},
    {"resize_bilinear", op_resize_bilinear},
    {NULL, NULL},
};
